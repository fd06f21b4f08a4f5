"""Building footprints: load, validate, repair; the shipped Kaesong set.

Buildings are the unit of every answer, so a footprint file is checked before anything is measured
against it. :func:`load_footprints` reads any vector format GDAL reads through pyogrio (GeoJSON,
GeoPackage, Shapefile, FlatGeobuf, ...) and GeoParquet through :func:`geopandas.read_parquet`, in any
CRS, and returns a GeoDataFrame indexed by ``building_id`` in the CRS of the file (reprojection to a
scene's grid happens at extraction time). :func:`validate_footprints` runs the same checks and returns
a :class:`FootprintReport` instead of raising on feature problems.

Checks, each naming the feature by ``building_id`` and/or 0-based position in the file:

* missing or duplicate ids (errors, or generated with ``generate_ids=True``);
* null, empty or non-polygonal geometry (errors; MultiPolygon is fine);
* invalid geometry, repaired with :func:`shapely.make_valid` [1]_ and reported, never dropped;
* a layer without CRS (error unless ``assume_crs`` is given);
* coordinates that look swapped (latitude, longitude order), judged against the area of use of the
  CRS [2]_;
* footprints overlapping each other heavily (warnings, also logged).

Areas are computed in a Lambert azimuthal equal-area projection centred on the data [3]_, so they are
true ground areas whatever the CRS of the file.

References
----------
.. [1] OGC, "OpenGIS Implementation Standard for Geographic information - Simple feature access -
   Part 1: Common architecture", 06-103r4, 2011 (polygon validity rules); GEOS ``MakeValid``
   as exposed by shapely 2 (``shapely.make_valid``).
.. [2] IOGP, "EPSG Geodetic Parameter Dataset" (area of use of each coordinate reference system),
   https://epsg.org; H. Butler et al., "The GeoJSON Format", RFC 7946, 2016, sec. 3.1.1 and 4
   (longitude before latitude, WGS 84).
.. [3] J. P. Snyder, "Map Projections - A Working Manual", USGS Professional Paper 1395, 1987,
   pp. 182-190 (Lambert azimuthal equal-area projection).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as PyprojCRSError

from kaesong_thermal.errors import FootprintError

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "KINDS",
    "OVERLAP_WARN_FRACTION",
    "FootprintProblem",
    "FootprintReport",
    "area_m2",
    "footprints_hash",
    "load_footprints",
    "shipped_footprints_path",
    "validate_footprints",
]

#: Attribute columns of a loaded footprint table, in order (``geometry`` follows them).
COLUMNS: tuple[str, ...] = (
    "name",
    "company",
    "sector",
    "products",
    "kind",
    "outline_quality",
    "notes",
    "sources",
    "valid_from",
    "valid_to",
)
#: Values of ``kind`` understood by the rest of the toolkit.
KINDS: frozenset[str] = frozenset({"factory", "office", "utility", "demolished"})
#: Two footprints overlapping by at least this fraction of the smaller one are reported.
OVERLAP_WARN_FRACTION = 0.25
#: Degrees added around a CRS area of use before a point counts as outside it.
AREA_OF_USE_MARGIN_DEG = 2.0
#: Number of feature messages quoted in one error line before "and N more".
MAX_QUOTED_PROBLEMS = 5

_TEXT_COLUMNS = ("name", "company", "sector", "products", "kind", "outline_quality", "notes")
_DATE_COLUMNS = ("valid_from", "valid_to")
_PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")
_GEOJSON_SUFFIXES = (".geojson", ".json")
_POLYGONAL = ("Polygon", "MultiPolygon")

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class FootprintProblem:
    """One problem found in a footprint layer.

    Attributes
    ----------
    severity : {"error", "warning"}
        Errors make :func:`load_footprints` raise; warnings are logged and the data are used
        (repaired where the message says so).
    message : str
        One line naming the feature and what is wrong.
    building_id : str or None
        The feature's id when it has one.
    index : int or None
        0-based position of the feature in the layer; None for layer-wide problems.
    """

    severity: Severity
    message: str
    building_id: str | None = None
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for JSON output)."""
        return {
            "severity": self.severity,
            "message": self.message,
            "building_id": self.building_id,
            "index": self.index,
        }


@dataclass(frozen=True)
class FootprintReport:
    """Summary of a validated footprint layer.

    Attributes
    ----------
    source : str
        Path of the file (or ``"<GeoDataFrame>"``).
    layer : str or None
        Layer read, for multi-layer formats.
    count : int
        Number of features in the layer (before anything is rejected).
    crs : str or None
        CRS of the layer as an authority string (``"EPSG:4326"``) or WKT name; None if missing.
    area_min_m2, area_median_m2, area_max_m2, area_total_m2 : float or None
        Ground areas of the usable footprints, m2 (equal-area projection); None when no area
        could be computed (no CRS or no usable geometry).
    problems : list of FootprintProblem
        Everything found, errors first.
    """

    source: str
    layer: str | None
    count: int
    crs: str | None
    area_min_m2: float | None
    area_median_m2: float | None
    area_max_m2: float | None
    area_total_m2: float | None
    problems: list[FootprintProblem] = field(default_factory=list)

    @property
    def errors(self) -> list[FootprintProblem]:
        """Problems of severity ``"error"``."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[FootprintProblem]:
        """Problems of severity ``"warning"``."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for ``kaesong-thermal footprints --json``)."""
        return {
            "source": self.source,
            "layer": self.layer,
            "count": self.count,
            "crs": self.crs,
            "area_min_m2": self.area_min_m2,
            "area_median_m2": self.area_median_m2,
            "area_max_m2": self.area_max_m2,
            "area_total_m2": self.area_total_m2,
            "ok": self.ok,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "problems": [p.to_dict() for p in self.problems],
        }


# --------------------------------------------------------------------------------------------
# public functions


def shipped_footprints_path() -> Path:
    """Path of the shipped Kaesong footprint file.

    Looked up as package data (``kaesong_thermal/data/kaesong.geojson``, a link to
    ``footprints/kaesong.geojson`` in the source tree) and, failing that, in the source tree.

    Returns
    -------
    pathlib.Path
        An existing file.

    Raises
    ------
    FootprintError
        If neither location holds the file.
    """
    candidates: list[Path] = []
    try:
        resource = importlib.resources.files("kaesong_thermal").joinpath("data/kaesong.geojson")
        if isinstance(resource, Path):
            candidates.append(resource)
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - odd installs only
        pass
    candidates.append(Path(__file__).resolve().parent.parent / "footprints" / "kaesong.geojson")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FootprintError(
        f"shipped footprints not found (looked in {', '.join(str(c) for c in candidates)})"
    )


def load_footprints(
    path: str | Path | gpd.GeoDataFrame | None = None,
    *,
    layer: str | None = None,
    assume_crs: str | int | CRS | None = None,
    generate_ids: bool = False,
    id_column: str = "building_id",
) -> gpd.GeoDataFrame:
    """Load and validate building footprints.

    Parameters
    ----------
    path : str, pathlib.Path, geopandas.GeoDataFrame or None
        A vector file (GeoJSON, GeoPackage, Shapefile, FlatGeobuf or anything GDAL reads via
        pyogrio; ``.parquet``/``.geoparquet`` through :func:`geopandas.read_parquet`) or an
        in-memory GeoDataFrame. None loads the shipped Kaesong set.
    layer : str, optional
        Layer to read from a multi-layer source (GeoPackage...). Required when there are several.
    assume_crs : str, int or pyproj.CRS, optional
        CRS to use when the layer declares none (e.g. a Shapefile without ``.prj``), as
        ``"EPSG:32652"``, ``32652`` or any pyproj input. Also used when a layer declared
        geographic (GeoJSON always is) holds coordinates that cannot be longitude/latitude.
    generate_ids : bool, default False
        Generate missing ids (from the ``name`` slug, else ``feature-<index>``) and rename
        duplicates (``<id>-2``...) instead of failing; each change is logged as a warning.
    id_column : str, default "building_id"
        Column holding the ids in the file; the result is always indexed by ``building_id``.

    Returns
    -------
    geopandas.GeoDataFrame
        Indexed by ``building_id`` (str); columns ``name, company, sector, products, kind,
        outline_quality, notes, sources`` (list of str), ``valid_from, valid_to``
        (``datetime64[ns]``, calendar dates, NaT when open), then any other columns of the file,
        then ``geometry`` (Polygon/MultiPolygon, CRS of the file). ``attrs["events"]``: list of
        ``{"date": "YYYY-MM-DD", "label": str}`` from the top-level ``events`` member of a
        GeoJSON (empty otherwise); ``attrs["source"]``: the path as a string.

    Raises
    ------
    FootprintError
        File missing or unreadable, ambiguous layer, no CRS, or any feature error; one line
        naming the file and the features at fault.

    Notes
    -----
    Invalid polygons are repaired with :func:`shapely.make_valid` (GEOS MakeValid [1]_) and kept;
    footprints overlapping by more than :data:`OVERLAP_WARN_FRACTION` of the smaller one are
    logged as warnings.

    References
    ----------
    .. [1] OGC 06-103r4, Simple feature access - Part 1, 2011, sec. 6.1.11 (valid polygons).
    """
    gdf, report = _load_and_check(
        path, layer=layer, assume_crs=assume_crs, generate_ids=generate_ids, id_column=id_column
    )
    if gdf is None or report.errors:
        raise FootprintError(_error_line(report.source, report.errors))
    return gdf


def validate_footprints(
    path: str | Path | gpd.GeoDataFrame | None = None,
    *,
    layer: str | None = None,
    assume_crs: str | int | CRS | None = None,
    generate_ids: bool = False,
    id_column: str = "building_id",
) -> FootprintReport:
    """Check a footprint layer and summarise it without raising on feature problems.

    Parameters are those of :func:`load_footprints`.

    Returns
    -------
    FootprintReport
        Count, CRS, area range (m2, equal-area projection [1]_) and every problem found.

    Raises
    ------
    FootprintError
        Only when the source cannot be read at all (missing, not a vector file, ambiguous or
        unknown layer).

    References
    ----------
    .. [1] J. P. Snyder, "Map Projections - A Working Manual", USGS PP 1395, 1987, pp. 182-190.
    """
    _, report = _load_and_check(
        path, layer=layer, assume_crs=assume_crs, generate_ids=generate_ids, id_column=id_column
    )
    return report


def area_m2(gdf: gpd.GeoDataFrame | gpd.GeoSeries) -> pd.Series:
    """Ground area of each footprint, m2.

    Computed in a Lambert azimuthal equal-area projection centred on the data [1]_, which keeps
    areas exact whatever the CRS of the input (a UTM zone would be off by up to ~0.2 %).

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame or geopandas.GeoSeries
        Footprints with a CRS.

    Returns
    -------
    pandas.Series
        Named ``area_m2``, same index as ``gdf``; NaN for null geometries.

    Raises
    ------
    FootprintError
        If ``gdf`` has no CRS.

    References
    ----------
    .. [1] J. P. Snyder, "Map Projections - A Working Manual", USGS PP 1395, 1987, pp. 182-190.
    """
    geoms = gdf.geometry if isinstance(gdf, gpd.GeoDataFrame) else gdf
    if geoms.crs is None:
        raise FootprintError("footprints have no CRS: cannot compute areas in m2")
    if len(geoms) == 0:
        return pd.Series([], index=geoms.index, dtype="float64", name="area_m2")
    laea = _equal_area_crs(geoms)
    areas = geoms.to_crs(laea).area
    return pd.Series(np.asarray(areas, dtype="float64"), index=geoms.index, name="area_m2")


def footprints_hash(gdf: gpd.GeoDataFrame) -> str:
    """Content hash of a footprint table: ids, geometry in EPSG:4326 and validity dates.

    Independent of row order, of the CRS the footprints are stored in (up to coordinates rounded
    to 1e-9 degree, about 0.1 mm) and of the other attributes; used as a cache key for coverage
    weights.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        As returned by :func:`load_footprints` (indexed by ``building_id``, or with a
        ``building_id`` column).

    Returns
    -------
    str
        sha256 hex digest.
    """
    if gdf.crs is None:
        raise FootprintError("footprints have no CRS: cannot hash them in EPSG:4326")
    table = gdf if gdf.index.name == "building_id" else gdf.set_index("building_id")
    wgs84 = table.geometry.to_crs(4326)
    rounded = shapely.transform(np.asarray(wgs84.array), lambda xy: np.round(xy, 9))
    wkb = shapely.to_wkb(shapely.normalize(rounded), hex=True)
    starts = _date_strings(table, "valid_from")
    ends = _date_strings(table, "valid_to")
    digest = hashlib.sha256()
    rows = sorted(zip((str(i) for i in table.index), wkb, starts, ends, strict=True))
    for bid, geom_hex, start, end in rows:
        digest.update(f"{bid}\x1f{geom_hex}\x1f{start}\x1f{end}\x1e".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# reading


def _load_and_check(
    path: str | Path | gpd.GeoDataFrame | None,
    *,
    layer: str | None,
    assume_crs: str | int | CRS | None,
    generate_ids: bool,
    id_column: str,
) -> tuple[gpd.GeoDataFrame | None, FootprintReport]:
    if path is None:
        path = shipped_footprints_path()
    if isinstance(path, gpd.GeoDataFrame):
        try:
            path.geometry  # noqa: B018 - raises when no geometry column is set
        except AttributeError:
            raise FootprintError("<GeoDataFrame>: has no active geometry column") from None
        raw = path.copy()
        source, layer_name, events = "<GeoDataFrame>", None, list(path.attrs.get("events", []))
        if id_column not in raw.columns and raw.index.name == id_column:
            raw = raw.reset_index()
        raw = raw.reset_index(drop=True)
        event_problems: list[FootprintProblem] = []
    else:
        if not isinstance(path, (str, os.PathLike)):
            raise FootprintError(
                f"footprints: expected a file path or a GeoDataFrame, not {type(path).__name__}"
            )
        source = os.fspath(path)
        raw, layer_name = _read_layer(source, layer)
        events, event_problems = _read_events(source)
    raw = _untruncate_columns(raw, (id_column, *COLUMNS))
    checker = _Checker(raw, source, id_column=id_column)
    gdf = checker.run(assume_crs=_parse_crs(assume_crs, source), generate_ids=generate_ids)
    problems = sorted(
        checker.problems + event_problems,
        key=lambda p: (p.severity != "error", -1 if p.index is None else p.index),
    )
    for problem in problems:
        if problem.severity == "warning":
            logger.warning("%s: %s", source, problem.message)
    report = FootprintReport(
        source=source,
        layer=layer_name,
        count=len(raw),
        crs=_crs_label(checker.crs),
        area_min_m2=checker.area_stats.get("min"),
        area_median_m2=checker.area_stats.get("median"),
        area_max_m2=checker.area_stats.get("max"),
        area_total_m2=checker.area_stats.get("total"),
        problems=problems,
    )
    if gdf is not None:
        gdf.attrs["events"] = events
        gdf.attrs["source"] = source
    return gdf, report


def _untruncate_columns(raw: gpd.GeoDataFrame, wanted: Sequence[str]) -> gpd.GeoDataFrame:
    """Restore column names cut to 10 characters by the Shapefile format (``building_i``)."""
    renames = {
        name[:10]: name
        for name in wanted
        if len(name) > 10 and name not in raw.columns and name[:10] in raw.columns
    }
    return raw.rename(columns=renames) if renames else raw


def _is_virtual(source: str) -> bool:
    return source.startswith("/vsi") or "://" in source


def _read_layer(source: str, layer: str | None) -> tuple[gpd.GeoDataFrame, str | None]:
    """Read one layer of a vector source; errors name the file."""
    if not _is_virtual(source) and not Path(source).exists():
        raise FootprintError(f"{source}: footprint file not found")
    if source.lower().endswith(_PARQUET_SUFFIXES):
        if layer is not None:
            logger.warning("%s: GeoParquet has a single layer; layer=%r ignored", source, layer)
        try:
            return gpd.read_parquet(source), None
        except Exception as exc:  # pyarrow and geopandas raise several unrelated types
            raise FootprintError(
                f"{source}: cannot read as GeoParquet ({_first_line(exc)})"
            ) from exc
    try:
        layers = pyogrio.list_layers(source)
    except Exception as exc:  # DataSourceError, or OSError from GDAL
        raise FootprintError(f"{source}: not a readable vector file ({_first_line(exc)})") from exc
    names = [str(name) for name in layers[:, 0]] if len(layers) else []
    if not names:
        raise FootprintError(f"{source}: the file holds no vector layer")
    if layer is None:
        if len(names) > 1:
            raise FootprintError(
                f"{source}: {len(names)} layers ({', '.join(names)}); choose one with "
                "layer= (CLI: --layer)"
            )
        layer = names[0]
    elif layer not in names:
        raise FootprintError(f"{source}: no layer {layer!r}; layers are: {', '.join(names)}")
    try:
        gdf = pyogrio.read_dataframe(source, layer=layer)
    except Exception as exc:  # pyogrio errors: DataLayerError, FieldError, GeometryError...
        raise FootprintError(f"{source}: cannot read layer {layer!r} ({_first_line(exc)})") from exc
    if not isinstance(gdf, gpd.GeoDataFrame) or "geometry" not in gdf.columns:
        raise FootprintError(f"{source}: layer {layer!r} has no geometry column")
    return gdf, layer


def _read_events(source: str) -> tuple[list[dict[str, str]], list[FootprintProblem]]:
    """Top-level ``events`` member of a GeoJSON file: ``[{"date", "label"}]``."""
    if _is_virtual(source) or not source.lower().endswith(_GEOJSON_SUFFIXES):
        return [], []
    try:
        with open(source, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return [], []  # GDAL read it; a non-JSON-parsable variant simply has no events
    raw_events = document.get("events", []) if isinstance(document, dict) else []
    if not isinstance(raw_events, list):
        return [], [FootprintProblem("warning", "top-level 'events' is not a list; ignored")]
    events: list[dict[str, str]] = []
    problems: list[FootprintProblem] = []
    for i, item in enumerate(raw_events):
        date = item.get("date") if isinstance(item, dict) else None
        label = item.get("label") if isinstance(item, dict) else None
        try:
            day = pd.Timestamp(str(date)).strftime("%Y-%m-%d") if date else None
        except ValueError:
            day = None
        if day is None or not isinstance(label, str):
            problems.append(
                FootprintProblem(
                    "warning",
                    f"event {i}: needs a 'date' (YYYY-MM-DD) and a 'label' string; ignored",
                )
            )
            continue
        events.append({"date": day, "label": label})
    events.sort(key=lambda e: e["date"])
    return events, problems


def _parse_crs(value: str | int | CRS | None, source: str) -> CRS | None:
    if value is None:
        return None
    try:
        if isinstance(value, str) and value.strip().isdigit():
            return CRS.from_epsg(int(value))
        return CRS.from_user_input(value)
    except PyprojCRSError as exc:
        raise FootprintError(
            f"{source}: assume_crs {value!r} is not a CRS ({_first_line(exc)})"
        ) from exc


# --------------------------------------------------------------------------------------------
# checking


class _Checker:
    """Runs every check on one raw layer, collecting problems instead of raising."""

    def __init__(self, raw: gpd.GeoDataFrame, source: str, *, id_column: str) -> None:
        self.raw = raw.reset_index(drop=True)
        self.source = source
        self.id_column = id_column
        self.problems: list[FootprintProblem] = []
        self.ids: list[str | None] = [None] * len(self.raw)
        self.crs: CRS | None = None
        self.area_stats: dict[str, float] = {}

    # -- helpers
    def label(self, i: int) -> str:
        bid = self.ids[i]
        return f"feature {bid!r} (index {i})" if bid is not None else f"feature at index {i}"

    def add(self, severity: Severity, message: str, index: int | None = None) -> None:
        bid = self.ids[index] if index is not None else None
        self.problems.append(FootprintProblem(severity, message, bid, index))

    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    # -- main
    def run(self, *, assume_crs: CRS | None, generate_ids: bool) -> gpd.GeoDataFrame | None:
        self.check_ids(generate_ids)
        geoms = self.check_geometries()
        self.check_crs(assume_crs, geoms)
        if self.crs is not None:
            self.check_coordinates(geoms)
        attrs = self.check_attributes()
        usable = np.array([g is not None for g in geoms], dtype=bool)
        if self.crs is not None and usable.any():
            series = gpd.GeoSeries(np.asarray(geoms, dtype=object)[usable], crs=self.crs)
            if not self.has_coordinate_errors():
                areas = area_m2(series).to_numpy()
                self.area_stats = {
                    "min": float(areas.min()),
                    "median": float(np.median(areas)),
                    "max": float(areas.max()),
                    "total": float(areas.sum()),
                }
                self.check_overlaps(series, np.flatnonzero(usable))
        if self.has_errors():
            return None
        return self.build(geoms, attrs)

    def has_coordinate_errors(self) -> bool:
        return any(p.severity == "error" and "coordinates" in p.message for p in self.problems)

    # -- ids
    def check_ids(self, generate_ids: bool) -> None:
        n = len(self.raw)
        if (
            self.id_column == "building_id"
            and "building_id" not in self.raw.columns
            and "id" in self.raw.columns
        ):
            # GeoJSON feature ids and many GIS exports name the identifier "id"
            self.add("warning", "no 'building_id' column: the 'id' column gives the building ids")
            self.id_column = "id"
        if self.id_column not in self.raw.columns:
            if not generate_ids:
                columns = ", ".join(c for c in self.raw.columns if c != "geometry") or "none"
                self.add(
                    "error",
                    f"no {self.id_column!r} column (columns: {columns}); pass generate_ids=True "
                    "(CLI: --generate-ids) or id_column=",
                )
                return
            raw_ids: list[str | None] = [None] * n
        else:
            raw_ids = [_clean_id(v) for v in self.raw[self.id_column]]
        names = self.raw["name"] if "name" in self.raw.columns else pd.Series([None] * n)
        seen: dict[str, int] = {}
        for i, bid in enumerate(raw_ids):
            if bid is not None and bid not in seen:
                seen[bid] = i
        taken = set(seen)
        for i, bid in enumerate(raw_ids):
            if bid is None:
                if not generate_ids:
                    self.add("error", f"feature at index {i}: missing {self.id_column}", i)
                    continue
                new = _unique(_slug(names.iloc[i]) or f"feature-{i}", taken)
                self.ids[i] = new
                self.add("warning", f"feature at index {i}: no id, generated {new!r}", i)
            elif seen[bid] != i:
                if not generate_ids:
                    self.ids[i] = bid
                    self.add(
                        "error",
                        f"feature {bid!r} (index {i}): duplicate {self.id_column} "
                        f"(first at index {seen[bid]})",
                        i,
                    )
                    continue
                new = _unique(bid, taken)
                self.ids[i] = new
                self.add(
                    "warning",
                    f"feature {bid!r} (index {i}): duplicate id (first at index {seen[bid]}), "
                    f"renamed {new!r}",
                    i,
                )
            else:
                self.ids[i] = bid

    # -- geometry
    def check_geometries(self) -> list[Any]:
        """Return one usable (2-D, valid, polygonal) geometry per feature or None."""
        out: list[Any] = []
        for i, geom in enumerate(self.raw.geometry.array):
            out.append(self._check_geometry(i, geom))
        return out

    def _check_geometry(self, i: int, geom: Any) -> Any:
        if geom is None or (isinstance(geom, float) and math.isnan(geom)):
            self.add("error", f"{self.label(i)}: null geometry", i)
            return None
        if geom.is_empty:
            self.add("error", f"{self.label(i)}: empty geometry", i)
            return None
        if geom.geom_type not in _POLYGONAL:
            self.add(
                "error",
                f"{self.label(i)}: {geom.geom_type} geometry; footprints must be Polygon or "
                "MultiPolygon",
                i,
            )
            return None
        if shapely.has_z(geom):
            geom = shapely.force_2d(geom)
        if shapely.is_valid(geom):
            return geom
        reason = shapely.is_valid_reason(geom)
        repaired = _polygonal_part(shapely.make_valid(geom))
        if repaired is None or repaired.is_empty:
            self.add(
                "error",
                f"{self.label(i)}: invalid geometry ({reason}) that make_valid cannot turn "
                "into a polygon",
                i,
            )
            return None
        self.add(
            "warning",
            f"{self.label(i)}: invalid geometry ({reason}) repaired with shapely.make_valid "
            f"into a {repaired.geom_type}",
            i,
        )
        return repaired

    # -- CRS and coordinates
    def check_crs(self, assume_crs: CRS | None, geoms: list[Any]) -> None:
        declared = self.raw.crs
        if declared is None:
            if assume_crs is None:
                self.add(
                    "error",
                    "layer has no CRS; pass assume_crs= (CLI: --assume-crs EPSG) with the CRS "
                    "its coordinates are in",
                )
                return
            logger.info("%s: no CRS declared, assuming %s", self.source, _crs_label(assume_crs))
            self.crs = assume_crs
            return
        self.crs = CRS.from_user_input(declared)
        if assume_crs is None or assume_crs == self.crs:
            return
        bounds = _bounds(geoms)
        if (
            self.crs.is_geographic
            and bounds is not None
            and not _in_geographic_range(*bounds)
            and not assume_crs.is_geographic
        ):
            self.add(
                "warning",
                f"layer declared {_crs_label(self.crs)} but its coordinates are not "
                f"longitude/latitude; using assume_crs {_crs_label(assume_crs)}",
            )
            self.crs = assume_crs
        else:
            logger.warning(
                "%s: layer declares %s; assume_crs %s ignored",
                self.source,
                _crs_label(self.crs),
                _crs_label(assume_crs),
            )

    def check_coordinates(self, geoms: list[Any]) -> None:
        """Flag features whose x/y look swapped (lat/lon order) or lie outside the CRS."""
        assert self.crs is not None
        idx = [i for i, g in enumerate(geoms) if g is not None]
        if not idx:
            return
        bounds = shapely.bounds(np.asarray([geoms[i] for i in idx], dtype=object))
        x = (bounds[:, 0] + bounds[:, 2]) / 2.0
        y = (bounds[:, 1] + bounds[:, 3]) / 2.0
        as_is = _inside_area_of_use(self.crs, x, y)
        swapped = _inside_area_of_use(self.crs, y, x)
        label = _crs_label(self.crs)
        degrees_like: np.ndarray = np.zeros(len(idx), dtype=bool)
        if not self.crs.is_geographic:  # a projected layer holding degrees
            degrees_like = np.asarray(
                (np.abs(bounds[:, [0, 2]]) <= 180.0).all(axis=1)
                & (np.abs(bounds[:, [1, 3]]) <= 90.0).all(axis=1),
                dtype=bool,
            )
        for k, i in enumerate(idx):
            if degrees_like[k]:
                self.add(
                    "error",
                    f"{self.label(i)}: coordinates (x={x[k]:.6g}, y={y[k]:.6g}) look like "
                    f"longitude/latitude but the layer declares {label} (in metres); wrong CRS?",
                    i,
                )
                continue
            if as_is[k]:
                continue
            if swapped[k]:
                self.add(
                    "error",
                    f"{self.label(i)}: coordinates look swapped (x={x[k]:.6g}, y={y[k]:.6g} lie "
                    f"outside {label} but fit it as y, x): write longitude/easting first",
                    i,
                )
            else:
                self.add(
                    "error",
                    f"{self.label(i)}: coordinates (x={x[k]:.6g}, y={y[k]:.6g}) lie outside "
                    f"the area where {label} is defined; wrong CRS?",
                    i,
                )

    # -- attributes
    def check_attributes(self) -> dict[str, list[Any]]:
        n = len(self.raw)
        out: dict[str, list[Any]] = {}
        for column in _TEXT_COLUMNS:
            values = self.raw[column] if column in self.raw.columns else [None] * n
            out[column] = [_clean_text(v) for v in values]
        sources = self.raw["sources"] if "sources" in self.raw.columns else [None] * n
        out["sources"] = [_clean_sources(v) for v in sources]
        for column in _DATE_COLUMNS:
            values = self.raw[column] if column in self.raw.columns else [None] * n
            parsed: list[Any] = []
            for i, value in enumerate(values):
                try:
                    parsed.append(_clean_date(value))
                except (ValueError, TypeError):
                    self.add("error", f"{self.label(i)}: {column} {value!r} is not a date", i)
                    parsed.append(pd.NaT)
            out[column] = parsed
        for i, (start, end) in enumerate(zip(out["valid_from"], out["valid_to"], strict=True)):
            if pd.notna(start) and pd.notna(end) and start > end:
                self.add(
                    "error",
                    f"{self.label(i)}: valid_from {start:%Y-%m-%d} is after valid_to "
                    f"{end:%Y-%m-%d}",
                    i,
                )
        for i, kind in enumerate(out["kind"]):
            if kind is not None and kind not in KINDS:
                self.add(
                    "warning",
                    f"{self.label(i)}: kind {kind!r} is not one of {', '.join(sorted(KINDS))}",
                    i,
                )
        return out

    # -- overlaps
    def check_overlaps(self, series: gpd.GeoSeries, positions: np.ndarray) -> None:
        """Warn about pairs overlapping by >= OVERLAP_WARN_FRACTION of the smaller footprint."""
        if len(series) < 2:
            return
        metric = np.asarray(series.to_crs(_equal_area_crs(series)).array)
        tree = shapely.STRtree(metric)
        left, right = tree.query(metric, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        if left.size == 0:
            return
        shared = shapely.area(shapely.intersection(metric[left], metric[right]))
        smaller = np.minimum(shapely.area(metric[left]), shapely.area(metric[right]))
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.where(smaller > 0, shared / smaller, 0.0)
        for a, b, frac, area in zip(left, right, fraction, shared, strict=True):
            if frac < OVERLAP_WARN_FRACTION:
                continue
            i, j = int(positions[a]), int(positions[b])
            self.add(
                "warning",
                f"{self.label(i)} and {self.label(j)} overlap by {frac:.0%} of the smaller "
                f"footprint ({area:,.0f} m2)",
                i,
            )

    # -- result
    def build(self, geoms: list[Any], attrs: dict[str, list[Any]]) -> gpd.GeoDataFrame:
        data: dict[str, Any] = {}
        for column in COLUMNS:
            if column in _DATE_COLUMNS:
                data[column] = pd.to_datetime(pd.Series(attrs[column], dtype="object")).astype(
                    "datetime64[ns]"
                )
            else:
                data[column] = pd.Series(attrs[column], dtype="object")
        frame = pd.DataFrame(data)
        reserved = {*COLUMNS, self.id_column, "building_id", "geometry"}
        extra = [c for c in self.raw.columns if c not in reserved]
        for column in extra:
            frame[column] = self.raw[column].to_numpy()
        frame.index = pd.Index(self.ids, name="building_id", dtype="object")
        gdf = gpd.GeoDataFrame(
            frame, geometry=gpd.GeoSeries(geoms, index=frame.index), crs=self.crs
        )
        return gdf


# --------------------------------------------------------------------------------------------
# small helpers


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0].split("; It might help")[0] if lines else ""
    return text or type(exc).__name__


def _error_line(source: str, errors: Sequence[FootprintProblem]) -> str:
    if not errors:  # pragma: no cover - defensive: callers only pass non-empty lists
        return f"{source}: footprints could not be loaded"
    if len(errors) == 1 and errors[0].index is None:
        return f"{source}: {errors[0].message}"
    quoted = "; ".join(p.message for p in errors[:MAX_QUOTED_PROBLEMS])
    more = len(errors) - MAX_QUOTED_PROBLEMS
    tail = f"; and {more} more" if more > 0 else ""
    noun = "error" if len(errors) == 1 else "errors"
    return f"{source}: {len(errors)} footprint {noun}: {quoted}{tail}"


def _clean_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    return text or None


def _clean_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _clean_sources(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError:
                return [text]
            if isinstance(decoded, list):
                return [str(v) for v in decoded]
        return [text] if text else []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    return [str(value)]


def _clean_date(value: Any) -> pd.Timestamp | Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return pd.NaT
    if isinstance(value, str) and not value.strip():
        return pd.NaT
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        return pd.NaT
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.normalize()


def _date_strings(table: pd.DataFrame, column: str) -> list[str]:
    if column not in table.columns:
        return [""] * len(table)
    return ["" if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d") for v in table[column]]


def _slug(value: Any) -> str | None:
    text = _clean_text(value)
    if text is None:
        return None
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or None


def _unique(base: str, taken: set[str]) -> str:
    candidate, k = base, 1
    while candidate in taken:
        k += 1
        candidate = f"{base}-{k}"
    taken.add(candidate)
    return candidate


def _polygonal_part(geom: Any) -> Any:
    """Polygonal part of a make_valid result (which may mix lines and points)."""
    if geom.geom_type in _POLYGONAL:
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in _POLYGONAL]
    if not parts:
        return None
    return shapely.union_all(parts)


def _bounds(geoms: list[Any]) -> tuple[float, float, float, float] | None:
    present = [g for g in geoms if g is not None]
    if not present:
        return None
    b = shapely.total_bounds(np.asarray(present, dtype=object))
    return float(b[0]), float(b[1]), float(b[2]), float(b[3])


def _in_geographic_range(x0: float, y0: float, x1: float, y1: float) -> bool:
    return x0 >= -180.0 and x1 <= 180.0 and y0 >= -90.0 and y1 <= 90.0


def _inside_area_of_use(crs: CRS, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether points (in ``crs``) fall inside the CRS area of use (plus a margin)."""
    area = crs.area_of_use
    west, south, east, north = (
        (area.west, area.south, area.east, area.north) if area else (-180.0, -90.0, 180.0, 90.0)
    )
    m = AREA_OF_USE_MARGIN_DEG
    if crs.is_geographic:
        lon, lat = x, y  # GeoDataFrames keep x = longitude, whatever the CRS axis order
        valid = (np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0)
    else:
        transformer = Transformer.from_crs(crs, 4326, always_xy=True)
        with np.errstate(all="ignore"):
            lon, lat = transformer.transform(x, y, errcheck=False)
        lon, lat = np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
        valid = np.isfinite(lon) & np.isfinite(lat)
        # round trip: points far outside a projection's domain come back elsewhere
        back = Transformer.from_crs(4326, crs, always_xy=True)
        with np.errstate(all="ignore"):
            bx, by = back.transform(np.where(valid, lon, 0.0), np.where(valid, lat, 0.0))
        scale = np.maximum(1.0, np.hypot(x, y)) * 1e-6
        valid &= np.hypot(np.asarray(bx) - x, np.asarray(by) - y) <= np.maximum(scale, 1.0)
    if east >= west:
        in_lon = (lon >= west - m) & (lon <= east + m)
    else:  # area crossing the antimeridian
        in_lon = (lon >= west - m) | (lon <= east + m)
    in_lat = (lat >= south - m) & (lat <= north + m)
    return np.asarray(valid & in_lon & in_lat, dtype=bool)


def _equal_area_crs(geoms: gpd.GeoSeries) -> CRS:
    """Lambert azimuthal equal-area CRS centred on the data (Snyder 1987, pp. 182-190)."""
    x0, y0, x1, y1 = geoms.to_crs(4326).total_bounds
    lon0, lat0 = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return CRS.from_proj4(
        f"+proj=laea +lat_0={lat0:.6f} +lon_0={lon0:.6f} +x_0=0 +y_0=0 +datum=WGS84 +units=m"
    )


def _crs_label(crs: CRS | None) -> str | None:
    if crs is None:
        return None
    authority = crs.to_authority(min_confidence=90)
    if authority is not None:
        return f"{authority[0]}:{authority[1]}"
    return str(crs.name)
