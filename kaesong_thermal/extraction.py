"""Per-building thermal observations of one scene: ``extract(scene_or_window, footprints)``.

The I/O edge around :mod:`kaesong_thermal.zonal`: it reprojects the footprints to the scene CRS,
reads only the window around them (``Scene.read_kelvin``), fetches or computes the coverage and ring
weights of that pixel grid, and assembles one row per building (columns in ``docs/interfaces.md``).

Weights are cached per (CRS, window transform, shape, footprints hash, ring parameters) in a small
LRU: Landsat scenes of one WRS-2 path/row sit on the same 30 m UTM lattice, so the window snapped to
the grid is the same for every scene of a time series and the geometry is computed once. The
footprints' content hash is itself memoised on the (immutable) shapely geometry objects, so a
time series over one GeoDataFrame hashes its coordinates once.

References
----------
.. [1] USGS, "Landsat 8-9 Collection 2 Level 2 Science Product Guide", LSDS-1619 (ST_B10, ST_QA).
.. [2] D. Baston, "exactextract", https://github.com/isciences/exactextract (coverage-weighted mean).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections import OrderedDict
from os import PathLike
from typing import Any, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine

from kaesong_thermal import zonal
from kaesong_thermal._time import utc_timestamp
from kaesong_thermal.errors import FootprintError, ProductError
from kaesong_thermal.landsat import bands

logger = logging.getLogger(__name__)

#: Numeric columns of one building in one scene, in order (docs/interfaces.md); the store keeps
#: exactly these per (scene, building).
VALUE_COLUMNS = (
    "t_roof_k",
    "t_roof_max_k",
    "t_background_k",
    "t_background_iqr_k",
    "contrast_k",
    "sigma_k",
    "cover_px",
    "valid_fraction",
    "ring_valid_px",
    "area_m2",
    "excess_k",
    "excess_sigma_k",
    "ring_hot_sector_k",
    "ring_hot_sector",
)
#: Output columns, in order: identity, then :data:`VALUE_COLUMNS`.
COLUMNS = ("building_id", "scene_id", "acquired", "sensor", "level", *VALUE_COLUMNS)

#: Maximum number of cached weight sets (each holds a few sparse matrices).
WEIGHTS_CACHE_SIZE = 8
#: Maximum number of cached footprint reprojections.
FOOTPRINTS_CACHE_SIZE = 8

_lock = threading.Lock()
_weights_cache: OrderedDict[tuple[Any, ...], zonal.ZonalWeights] = OrderedDict()
_footprints_cache: OrderedDict[tuple[str, str], _ProjectedFootprints] = OrderedDict()
_key_memo: OrderedDict[bytes, _KeyMemo] = OrderedDict()


class _ProjectedFootprints:
    """Footprints reprojected to one CRS, as plain arrays, with what every scene reuses."""

    __slots__ = (
        "area_m2",
        "bounds",
        "day_from",
        "day_to",
        "geometries",
        "has_dates",
        "id_array",
        "ids",
        "valid_from",
        "valid_to",
    )

    def __init__(
        self,
        ids: np.ndarray,
        geometries: np.ndarray,
        area_m2: np.ndarray,
        valid_from: pd.DatetimeIndex,
        valid_to: pd.DatetimeIndex,
    ) -> None:
        self.ids = ids
        self.geometries = geometries
        self.area_m2 = area_m2
        self.valid_from = valid_from
        self.valid_to = valid_to
        # per-scene constants, computed once per footprint set and CRS
        self.id_array = pd.Series(ids).array
        present = ~shapely.is_missing(geometries) & ~shapely.is_empty(geometries)
        self.bounds: tuple[float, float, float, float] | None = (
            tuple(float(v) for v in shapely.total_bounds(geometries[present]))  # type: ignore[assignment]
            if present.any()
            else None
        )
        self.day_from = valid_from.normalize()
        self.day_to = valid_to.normalize()
        self.has_dates = bool(valid_from.notna().any() or valid_to.notna().any())


class _KeyMemo:
    """A computed footprint key and what it was computed from (kept alive, so never reused)."""

    __slots__ = ("crs", "dates", "geometries", "index", "key")

    def __init__(
        self,
        geometries: np.ndarray,
        index: pd.Index,
        crs: Any,
        dates: tuple[pd.Series | None, pd.Series | None],
        key: str,
    ) -> None:
        self.geometries = geometries
        self.index = index
        self.crs = crs
        self.dates = dates
        self.key = key


def clear_cache() -> None:
    """Drop every cached weight set and footprint reprojection."""
    with _lock:
        _weights_cache.clear()
        _footprints_cache.clear()
        _key_memo.clear()


def cache_info() -> dict[str, int]:
    """Number of cached weight sets and reprojections, and the bytes held by the weights."""
    with _lock:
        return {
            "weights": len(_weights_cache),
            "footprints": len(_footprints_cache),
            "weights_bytes": sum(w.nbytes for w in _weights_cache.values()),
        }


def _lru_get(cache: OrderedDict[Any, Any], key: Any) -> Any:
    with _lock:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value


def _lru_put(cache: OrderedDict[Any, Any], key: Any, value: Any, maxsize: int) -> None:
    with _lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > maxsize:
            cache.popitem(last=False)


def _to_utc(values: Any, n: int) -> pd.DatetimeIndex:
    if values is None:
        return pd.DatetimeIndex([pd.NaT] * n, tz="UTC")
    out = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce")
    return pd.DatetimeIndex(out)


def _normalise_footprints(footprints: Any) -> gpd.GeoDataFrame:
    """Accept a GeoDataFrame (indexed by or with a ``building_id`` column) or a path."""
    if isinstance(footprints, (str, PathLike)):
        from kaesong_thermal.footprints import load_footprints

        footprints = load_footprints(footprints)
    if isinstance(footprints, gpd.GeoSeries):
        footprints = gpd.GeoDataFrame(geometry=footprints)
    if not isinstance(footprints, gpd.GeoDataFrame):
        raise FootprintError(
            f"footprints: expected a GeoDataFrame or a path, got {type(footprints).__name__}"
        )
    if footprints.index.name != "building_id" and "building_id" in footprints.columns:
        footprints = footprints.set_index("building_id")
    if footprints.crs is None:
        raise FootprintError("footprints: the GeoDataFrame has no CRS")
    if not footprints.index.is_unique:
        dup = footprints.index[footprints.index.duplicated()][0]
        raise FootprintError(f"footprints: building_id {dup!r} is not unique")
    return footprints


def _content_key(fp: gpd.GeoDataFrame, geoms: np.ndarray) -> str:
    """Content hash: ids, geometry (structure and coordinates in the file CRS), CRS, dates."""
    h = hashlib.sha256()
    h.update(fp.crs.to_wkt().encode())
    h.update(pd.util.hash_pandas_object(fp.index.astype(str), index=False).to_numpy().tobytes())
    for part in (
        shapely.get_type_id(geoms),
        shapely.get_num_geometries(geoms),
        shapely.get_num_interior_rings(geoms),
        shapely.get_num_coordinates(geoms),
        shapely.get_coordinates(geoms),
    ):
        h.update(np.ascontiguousarray(part).tobytes())
    for col in ("valid_from", "valid_to"):
        if col in fp.columns:
            values = fp[col].astype(str)
            h.update(
                col.encode() + pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes()
            )
    return h.hexdigest()


def _date_columns(fp: gpd.GeoDataFrame) -> tuple[pd.Series | None, pd.Series | None]:
    return tuple(  # type: ignore[return-value]
        fp[col] if col in fp.columns else None for col in ("valid_from", "valid_to")
    )


def _same_dates(a: pd.Series | None, b: pd.Series | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a is b or (a.dtype == b.dtype and a.equals(b))


def _footprints_key(fp: gpd.GeoDataFrame) -> str:
    """Content hash of a footprint set (:func:`_content_key`), computed once per content.

    Shapely 2 geometries are immutable, so the array of geometry object addresses identifies the
    geometries as long as those objects are alive; the memo keeps a reference to them, so an
    address in the memo can never be reused by another geometry. The ids, CRS and date columns
    are compared on every call (cheap), so a GeoDataFrame edited in place gets a new key.
    """
    geoms = np.asarray(fp.geometry.values, dtype=object)
    addresses = geoms.tobytes()
    dates = _date_columns(fp)
    with _lock:
        memo = _key_memo.get(addresses)
    if (
        memo is not None
        and (memo.index is fp.index or memo.index.equals(fp.index))
        and memo.index.dtype == fp.index.dtype
        and (memo.crs is fp.crs or memo.crs == fp.crs)
        and all(_same_dates(a, b) for a, b in zip(memo.dates, dates, strict=True))
    ):
        with _lock:
            _key_memo.move_to_end(addresses)
        return memo.key
    key = _content_key(fp, geoms)
    # keep copies of the date columns: an in-place edit of the caller's frame must not match
    kept = tuple(None if d is None else d.copy(deep=True) for d in dates)
    memo = _KeyMemo(geoms.copy(), fp.index, fp.crs, kept, key)  # type: ignore[arg-type]
    _lru_put(_key_memo, addresses, memo, FOOTPRINTS_CACHE_SIZE)
    return key


def _crs_metres(crs: Any, what: str) -> float:
    """Metres per CRS unit of a projected CRS; raise for a geographic one."""
    if crs is None:
        raise ProductError(f"{what}: the thermal window has no CRS")
    if not getattr(crs, "is_projected", False):
        raise ProductError(f"{what}: CRS {crs} is not projected; extraction needs metres")
    factor = getattr(crs, "linear_units_factor", None)
    try:
        return float(factor[1]) if factor is not None else 1.0
    except (TypeError, IndexError, ValueError):
        return 1.0


def _project(fp: gpd.GeoDataFrame, fp_key: str, crs: Any) -> _ProjectedFootprints:
    crs_key = crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)
    key = (fp_key, crs_key)
    hit = _lru_get(_footprints_cache, key)
    if hit is not None:
        return cast(_ProjectedFootprints, hit)
    geo = fp.geometry.to_crs(crs)
    geoms = np.asarray(geo.values, dtype=object)
    unit_m = _crs_metres(crs, "footprints")
    area = np.where(shapely.is_missing(geoms), np.nan, shapely.area(geoms)) * unit_m**2
    n = len(fp)
    proj = _ProjectedFootprints(
        ids=np.asarray([str(i) for i in fp.index], dtype=object),
        geometries=geoms,
        area_m2=area,
        valid_from=_to_utc(fp["valid_from"] if "valid_from" in fp.columns else None, n),
        valid_to=_to_utc(fp["valid_to"] if "valid_to" in fp.columns else None, n),
    )
    _lru_put(_footprints_cache, key, proj, FOOTPRINTS_CACHE_SIZE)
    return proj


def _metadata_fields(window: Any) -> tuple[Any, Any, Any, Any]:
    meta = getattr(window, "metadata", None)
    scene_id = getattr(meta, "scene_id", None) or getattr(window, "scene_id", None)
    acquired = getattr(meta, "acquired", None) or getattr(window, "acquired", None)
    sensor = getattr(meta, "sensor", None)
    level = getattr(meta, "level", None)
    return scene_id, acquired, sensor, level


def _weights_for(
    proj: _ProjectedFootprints,
    fp_key: str,
    crs: Any,
    transform: Affine,
    shape: tuple[int, int],
    radii_crs: tuple[float, float, float],
    cache: bool,
    psf: tuple[float | None, float],
) -> zonal.ZonalWeights:
    crs_key = crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)
    key = (crs_key, tuple(transform)[:6], shape, fp_key, radii_crs, psf)
    if cache:
        hit = _lru_get(_weights_cache, key)
        if hit is not None:
            logger.debug("weights cache hit for grid %s %s", tuple(transform)[:6], shape)
            return cast(zonal.ZonalWeights, hit)
    inner, outer, margin = radii_crs
    weights = zonal.zonal_weights(
        proj.geometries,
        transform,
        shape,
        ring_inner_m=inner,
        ring_outer_m=outer,
        exclusion_margin_m=margin,
        native_pixel_m=psf[0],
        psf_fwhm_native=psf[1],
    )
    if cache:
        _lru_put(_weights_cache, key, weights, WEIGHTS_CACHE_SIZE)
    return weights


def psf_parameters(sensor: str | None, unit_m: float = 1.0) -> tuple[float, float]:
    """Native sample spacing (CRS units) and system PSF FWHM (native samples) of a sensor.

    Parameters
    ----------
    sensor : str or None
        Sensor code (``LC08``, ``LC09``, ``LE07``, ``LT05``, ``LT04``); unknown codes or None take
        Landsat 8/9 TIRS (100 m, :data:`kaesong_thermal.landsat.bands.THERMAL_PSF_FWHM_NATIVE`).
    unit_m : float
        Metres per CRS unit.

    Returns
    -------
    tuple of float
        ``(native_pixel, fwhm_native)``.
    """
    code = str(sensor).upper() if sensor else "LC08"
    const = bands.NOMINAL_THERMAL.get(code, bands.NOMINAL_THERMAL["LC08"])
    fwhm = bands.THERMAL_PSF_FWHM_NATIVE.get(const.sensor, zonal.DEFAULT_PSF_FWHM_NATIVE)
    return const.native_resolution_m / unit_m, fwhm


def _empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    for c in ("building_id", "scene_id", "sensor", "level"):
        frame[c] = frame[c].astype(object)
    frame["acquired"] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


def extract(
    scene_or_window: Any,
    footprints: Any,
    *,
    ring_inner_m: float = 60.0,
    ring_outer_m: float = 200.0,
    exclusion_margin_m: float = 30.0,
    min_valid_fraction: float = 0.5,
    min_ring_px: int = 8,
    cache: bool = True,
    psf_model: bool = False,
    max_sigma_k: float | None = bands.DEFAULT_MAX_SIGMA_K,
) -> pd.DataFrame:
    """Per-building roof, background and contrast temperatures of one scene.

    Parameters
    ----------
    scene_or_window : Scene, ThermalWindow, str or os.PathLike
        A :class:`kaesong_thermal.landsat.Scene` (only the window around the footprints is read,
        via ``Scene.read_kelvin``), an already read ``ThermalWindow`` (any object with ``kelvin``,
        ``valid``, ``sigma_k``, ``transform``, ``crs`` and ``metadata``), or a product path opened
        with :func:`kaesong_thermal.landsat.open_scene`.
    footprints : geopandas.GeoDataFrame, str or os.PathLike
        Footprints indexed by ``building_id`` (as from
        :func:`kaesong_thermal.footprints.load_footprints`, or a path to load), any CRS; optional
        ``valid_from`` / ``valid_to`` dates (inclusive) limit when a building exists.
    ring_inner_m, ring_outer_m : float
        Background ring between these distances from each footprint outline, m.
    exclusion_margin_m : float
        Pixels touching any footprint buffered by this distance never enter a ring, m.
    min_valid_fraction : float
        Minimum valid share of a roof's coverage; below it the temperatures are NaN.
    min_ring_px : int
        Minimum number of valid ring pixels; below it the temperatures are NaN.
    cache : bool
        Reuse the coverage/ring weights of an identical pixel grid and footprint set (LRU of
        :data:`WEIGHTS_CACHE_SIZE`).
    max_sigma_k : float or None
        Level-2 ST_QA ceiling passed to ``Scene.read_kelvin``: pixels whose 1-sigma surface
        temperature uncertainty exceeds it are invalid (None: no ceiling). Default 15 K
        (:data:`kaesong_thermal.landsat.bands.DEFAULT_MAX_SIGMA_K`): humid scenes have ST_QA of
        3-7 K on clear pixels, and ST_QA, largely common to a roof and its ring, enters
        ``sigma_k`` as a weight rather than removing pixels.
    psf_model : bool
        Estimate ``excess_k`` / ``excess_sigma_k`` with the sensor's PSF (the sensor's native
        sampling and PSF width from :func:`psf_parameters`); False (the default) leaves them NaN.
        Opt in to separate neighbouring hot roofs: it costs about 0.4 s per scene at 1,000
        footprints (some 20x the default warm extraction on simulated full-size scenes), and on
        simulated Kaesong series it separated active from idle scenes no better than
        ``contrast_k`` (``docs/method.md``), which the analysis uses by default.

    Returns
    -------
    pandas.DataFrame
        One row per footprint, in the footprints' order, columns :data:`COLUMNS` (meanings in
        :func:`kaesong_thermal.zonal.zonal_statistics`; ``area_m2`` is the footprint area in the
        scene's projection). A building outside the window, fully invalid, or not valid on the
        acquisition date has NaN temperatures and ``valid_fraction`` 0; nothing raises for it.

    Notes
    -----
    ``t_roof_k`` is the exact coverage-weighted mean of exactextract [2]_ over valid pixels;
    ``sigma_k`` combines ST_QA [1]_ (or NEdT) for the roof with the ring's robust spread.
    ``excess_k`` is the roof's own excess over its ring background, estimated jointly for all
    buildings by least squares with each roof's expected pixel footprint (coverage convolved with
    the sensor's PSF, :func:`kaesong_thermal.zonal.psf_excess`).
    Every footprint, whatever its dates, is kept out of every background ring.
    """
    fp = _normalise_footprints(footprints)
    fp_key = _footprints_key(fp)
    source = scene_or_window
    if isinstance(source, (str, PathLike)):
        from kaesong_thermal.landsat import open_scene

        source = open_scene(source)

    if hasattr(source, "read_kelvin") and not hasattr(source, "kelvin"):
        crs = source.crs
        unit_m = _crs_metres(crs, str(getattr(source.metadata, "scene_id", "scene")))
        proj = _project(fp, fp_key, crs)
        if proj.bounds is not None:
            xmin, ymin, xmax, ymax = proj.bounds
            pad = (ring_outer_m + exclusion_margin_m) / unit_m + abs(source.transform.a)
            window = source.read_kelvin(
                (xmin - pad, ymin - pad, xmax + pad, ymax + pad), max_sigma_k=max_sigma_k
            )
        else:
            window = None
    else:
        window = source
        crs = window.crs
        unit_m = _crs_metres(crs, str(_metadata_fields(window)[0] or "window"))
        proj = _project(fp, fp_key, crs)

    meta_src = window if window is not None else source
    scene_id, acquired, sensor, level = _metadata_fields(meta_src)
    n = len(proj.ids)
    if n == 0:
        return _empty_frame()

    if window is not None:
        kelvin = np.asarray(window.kelvin)
        shape = (int(kelvin.shape[0]), int(kelvin.shape[1]))
        transform = Affine(*tuple(window.transform)[:6])
        radii = (ring_inner_m / unit_m, ring_outer_m / unit_m, exclusion_margin_m / unit_m)
        psf = psf_parameters(sensor, unit_m) if psf_model else (None, 0.0)
        weights = _weights_for(proj, fp_key, crs, transform, shape, radii, cache, psf)
        stats = zonal.zonal_statistics(
            weights,
            kelvin,
            getattr(window, "valid", None),
            getattr(window, "sigma_k", None),
            min_valid_fraction=min_valid_fraction,
            min_ring_px=min_ring_px,
        )
    else:
        stats = {c: np.full(n, np.nan) for c in zonal.STAT_COLUMNS}
        stats["cover_px"] = np.zeros(n)
        stats["valid_fraction"] = np.zeros(n)
        stats["ring_valid_px"] = np.zeros(n)

    acq = utc_timestamp(acquired)
    if acq is not None and proj.has_dates:
        day = acq.normalize()
        vf, vt = proj.day_from, proj.day_to
        before = np.asarray(vf.notna() & (day < vf), dtype=bool)
        after = np.asarray(vt.notna() & (day > vt), dtype=bool)
        out_of_date = before | after
        if out_of_date.any():
            logger.debug("%d buildings not valid on %s", int(out_of_date.sum()), day.date())
            for c in zonal.STAT_COLUMNS:
                if c not in ("cover_px", "valid_fraction", "ring_valid_px"):
                    stats[c] = np.where(out_of_date, np.nan, stats[c])
            stats["valid_fraction"] = np.where(out_of_date, 0.0, stats["valid_fraction"])
            stats["ring_valid_px"] = np.where(out_of_date, 0.0, stats["ring_valid_px"])

    frame = _assemble(proj, stats, scene_id, acq, sensor, level)
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "%s: %d buildings, %d with valid statistics",
            scene_id,
            n,
            int(np.isfinite(stats["t_roof_k"]).sum()),
        )
    return frame


@functools.lru_cache(maxsize=64)
def _one_value_array(value: Any) -> Any:
    """A one-element pandas array of ``value``, with the dtype pandas infers for a column of it."""
    return pd.Series([value]).array


def _constant_column(value: Any, n: int) -> Any:
    """``n`` copies of one value (a ``take`` of a cached one-element array)."""
    try:
        one = _one_value_array(value)
    except TypeError:  # unhashable
        one = pd.Series([value]).array
    return one.take(np.zeros(n, dtype=np.intp))


def _assemble(
    proj: _ProjectedFootprints,
    stats: dict[str, np.ndarray],
    scene_id: Any,
    acq: pd.Timestamp | None,
    sensor: Any,
    level: Any,
) -> pd.DataFrame:
    """The output frame, columns :data:`COLUMNS`, built once from ready-typed arrays."""
    n = len(proj.ids)
    if acq is not None:
        naive_ns = np.full(n, acq.tz_convert(None).as_unit("ns").asm8)
        acquired = pd.Series(pd.array(naive_ns).tz_localize("UTC"))
    else:
        acquired = pd.Series(pd.NaT, index=pd.RangeIndex(n), dtype="datetime64[ns, UTC]")
    data: dict[str, Any] = {
        "building_id": proj.id_array,
        "scene_id": _constant_column(scene_id, n),
        "acquired": acquired,
        "sensor": _constant_column(sensor, n),
        "level": _constant_column(level, n),
    }
    for c in VALUE_COLUMNS:
        if c == "area_m2":
            data[c] = proj.area_m2.astype(np.float64, copy=False)
        elif c == "ring_valid_px":
            data[c] = stats[c].astype(np.int64)
        else:
            data[c] = stats[c].astype(np.float64, copy=False)
    return pd.DataFrame(data)
