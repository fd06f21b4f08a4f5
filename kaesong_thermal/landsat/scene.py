"""Landsat scenes: discovery (directory, any file, ``.tar``, STAC item), metadata and kelvin windows.

:func:`open_scene` finds a product's MTL and its thermal and quality bands, opens the thermal band
lazily (header only) and returns a :class:`Scene`. :meth:`Scene.read_kelvin` reads only the window of
the scene grid that covers the requested bounds and converts digital numbers to kelvin:

- Level-1 (L1TP/L1GT/L1GS, Collection 2, 1 and pre-collection): at-sensor brightness temperature
  ``BT = K2 / ln(K1 / L + 1)`` with radiance ``L = ML * DN + AL`` and the scene's own MTL constants
  [1]_ [2]_. DN 0 is fill; DN at QUANTIZE_CAL_MAX is saturated.
- Level-2 (L2SP): surface temperature ``kelvin = DN * 0.00341802 + 149.0`` (or the MTL's
  TEMPERATURE_MULT/ADD), DN 0 fill; ST_QA x 0.01 is the 1-sigma uncertainty in kelvin [3]_.

Validity = not fill, not cloud / dilated cloud / cirrus / cloud shadow (QA_PIXEL; snow on request),
not saturated where QA_RADSAT flags the thermal band, and ``sigma_k <= max_sigma_k`` where ST_QA
exists. See :mod:`kaesong_thermal.landsat.qa` for the bit layouts and ``docs/landsat.md``.

References
----------
.. [1] USGS, "Landsat 8 (L8) Data Users Handbook", LSDS-1574, section 5.1 (conversion to TOA
   radiance and at-satellite brightness temperature).
.. [2] Chander, G., Markham, B. L., Helder, D. L. (2009). Summary of current radiometric calibration
   coefficients for Landsat MSS, TM, ETM+, and EO-1 ALI sensors. Remote Sensing of Environment
   113(5), 893-903.
.. [3] USGS, "Landsat 8-9 Collection 2 Level 2 Science Product Guide", LSDS-1619.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.coords import BoundingBox
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.transform import array_bounds
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform

from kaesong_thermal.errors import ConfigError, ProductError, RasterReadError
from kaesong_thermal.landsat import bands, qa
from kaesong_thermal.landsat.mtl import MTL, is_mtl_name, mtl_product_id, parse_mtl

logger = logging.getLogger(__name__)

#: Default thermal band per (level, sensor).
DEFAULT_THERMAL_BAND: dict[tuple[str, str], str] = {
    ("L1", "LC08"): "B10",
    ("L1", "LC09"): "B10",
    ("L1", "LE07"): "B6_VCID_1",
    ("L1", "LT05"): "B6",
    ("L1", "LT04"): "B6",
    ("L2", "LC08"): "ST_B10",
    ("L2", "LC09"): "ST_B10",
    ("L2", "LE07"): "ST_B6",
    ("L2", "LT05"): "ST_B6",
    ("L2", "LT04"): "ST_B6",
}
#: Thermal bands that may be asked for with ``band=`` per (level, sensor family).
ALLOWED_BANDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("L1", "LC"): ("B10", "B11"),
    ("L1", "LE"): ("B6_VCID_1", "B6_VCID_2"),
    ("L1", "LT"): ("B6",),
    ("L2", "LC"): ("ST_B10",),
    ("L2", "LE"): ("ST_B6",),
    ("L2", "LT"): ("ST_B6",),
}
#: File role -> (MTL FILE_NAME_* key, official file-name suffix).
FILE_ROLES: dict[str, tuple[str, str]] = {
    "B10": ("BAND_10", "_B10.TIF"),
    "B11": ("BAND_11", "_B11.TIF"),
    "B6": ("BAND_6", "_B6.TIF"),
    "B6_VCID_1": ("BAND_6_VCID_1", "_B6_VCID_1.TIF"),
    "B6_VCID_2": ("BAND_6_VCID_2", "_B6_VCID_2.TIF"),
    "ST_B10": ("BAND_ST_B10", "_ST_B10.TIF"),
    "ST_B6": ("BAND_ST_B6", "_ST_B6.TIF"),
    "QA_PIXEL": ("QUALITY_L1_PIXEL", "_QA_PIXEL.TIF"),
    "QA_RADSAT": ("QUALITY_L1_RADIOMETRIC_SATURATION", "_QA_RADSAT.TIF"),
    "ST_QA": ("QUALITY_L2_SURFACE_TEMPERATURE", "_ST_QA.TIF"),
}
#: STAC asset keys (lower case) -> file role, per level. Used when hrefs do not carry official names.
STAC_KEYS: dict[str, dict[str, str]] = {
    "L1": {
        "lwir11": "B10",
        "lwir12": "B11",
        "lwir": "B6",
        "lwir_low": "B6_VCID_1",
        "lwir_high": "B6_VCID_2",
    },
    "L2": {"lwir11": "ST_B10", "lwir": "ST_B6"},
    "any": {"qa_pixel": "QA_PIXEL", "qa_radsat": "QA_RADSAT", "qa": "ST_QA", "st_qa": "ST_QA"},
}
_MTL_FORM_ORDER = ("_mtl.txt", "_mtl.xml", "_mtl.json")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
_REMOTE_VSI = ("/vsis3/", "/vsicurl/")
_STRIP_ROWS = 1024
_CHUNK_BYTES = 1 << 20

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


# ---------------------------------------------------------------------------- records
@dataclass(frozen=True)
class SceneMetadata:
    """Identity and acquisition attributes of one Landsat product.

    Attributes
    ----------
    scene_id : str
        LANDSAT_PRODUCT_ID (LANDSAT_SCENE_ID for pre-collection products).
    sensor : str
        ``"LC08"``, ``"LC09"``, ``"LE07"``, ``"LT05"`` or ``"LT04"``.
    level : str
        ``"L1"`` or ``"L2"``.
    acquired : datetime
        Scene centre time, timezone-aware UTC.
    wrs_path, wrs_row : int
        WRS-2 path and row.
    cloud_cover : float or None
        Scene cloud cover, percent.
    sun_elevation, sun_azimuth : float or None
        Sun angles at scene centre, degrees.
    crs : rasterio.crs.CRS
        CRS of the thermal band.
    day : bool
        False for night scenes.
    collection : str
        ``"02"``, ``"01"`` or ``"pre"``.
    thermal_band : str
        ``"B10"``, ``"B6"``, ``"B6_VCID_1"``, ``"ST_B10"`` or ``"ST_B6"``.
    processing_level : str
        Product type as written in the MTL (``"L2SP"``, ``"L1TP"``, ``"L1T"`` ...).
    """

    scene_id: str
    sensor: str
    level: str
    acquired: datetime
    wrs_path: int
    wrs_row: int
    cloud_cover: float | None
    sun_elevation: float | None
    sun_azimuth: float | None
    crs: CRS
    day: bool
    collection: str
    thermal_band: str
    processing_level: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``acquired`` ISO 8601, ``crs`` as a string)."""
        return {
            "scene_id": self.scene_id,
            "sensor": self.sensor,
            "level": self.level,
            "processing_level": self.processing_level,
            "collection": self.collection,
            "acquired": self.acquired.isoformat(),
            "wrs_path": self.wrs_path,
            "wrs_row": self.wrs_row,
            "cloud_cover": self.cloud_cover,
            "sun_elevation": self.sun_elevation,
            "sun_azimuth": self.sun_azimuth,
            "day": self.day,
            "crs": self.crs.to_string() if self.crs else None,
            "thermal_band": self.thermal_band,
        }


@dataclass(frozen=True, eq=False)
class ThermalWindow:
    """Kelvin and validity of one window of a scene's thermal band.

    Attributes
    ----------
    kelvin : ndarray of float32
        Temperature in kelvin (brightness temperature for L1, surface temperature for L2);
        NaN where invalid.
    valid : ndarray of bool
        True where the pixel is usable (see module docstring).
    sigma_k : ndarray of float32 or None
        1-sigma uncertainty in kelvin from ST_QA (Level-2 only), NaN where unknown.
    cloud : ndarray of bool
        Cloud, dilated cloud, cirrus or cloud shadow per QA_PIXEL (for plots).
    transform : affine.Affine
        Affine transform of the window.
    crs : rasterio.crs.CRS
        CRS of the window (the scene's).
    metadata : SceneMetadata
        The scene's metadata.
    band : str
        The band read.
    """

    kelvin: FloatArray
    valid: BoolArray
    sigma_k: FloatArray | None
    cloud: BoolArray
    transform: Affine
    crs: CRS
    metadata: SceneMetadata
    band: str = ""

    @property
    def scene_id(self) -> str:
        """Product id of the scene."""
        return self.metadata.scene_id

    @property
    def acquired(self) -> datetime:
        """Acquisition time (UTC)."""
        return self.metadata.acquired

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        rows, cols = self.kelvin.shape
        return int(rows), int(cols)

    @property
    def bounds(self) -> BoundingBox:
        """Outer bounds of the window in its CRS."""
        rows, cols = self.shape
        west, south, east, north = array_bounds(rows, cols, self.transform)
        return BoundingBox(west, south, east, north)


@dataclass(frozen=True)
class FileRef:
    """One file of a product: a local file or a member of a tar archive.

    Attributes
    ----------
    name : str
        Human-readable location for messages (``path`` or ``archive.tar!member``).
    gdal_path : str
        Path GDAL opens (``/vsitar/...`` for archive members).
    tar_path : str or None
        The archive, for members.
    member : str or None
        Member name inside the archive.
    """

    name: str
    gdal_path: str
    tar_path: str | None = None
    member: str | None = None
    url: str | None = None

    @property
    def basename(self) -> str:
        """File name without directories (nor the query string of a URL)."""
        if self.url is not None:
            return PurePosixPath(urlsplit(self.url).path).name
        return PurePosixPath(self.member).name if self.member else Path(self.gdal_path).name

    def exists(self) -> bool:
        """True when the file exists (members of a listed archive and remote files always do:
        a missing remote file is reported when it is read)."""
        return (
            self.tar_path is not None
            or self.url is not None
            or self.gdal_path.startswith(_REMOTE_VSI)
            or Path(self.gdal_path).is_file()
        )

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the file's bytes in 1 MiB chunks (archive members are streamed, never unpacked;
        remote files are fetched, see :mod:`kaesong_thermal.landsat.remote`)."""
        if self.url is not None:
            from kaesong_thermal.landsat.remote import fetch_bytes

            yield fetch_bytes(self.url, self.name)
            return
        if self.gdal_path.startswith(_REMOTE_VSI):
            from kaesong_thermal.landsat.cloud import read_vsi_bytes

            yield read_vsi_bytes(self.gdal_path, self.name)
            return
        try:
            if self.tar_path is not None and self.member is not None:
                with tarfile.open(self.tar_path) as archive:
                    stream = archive.extractfile(self.member)
                    if stream is None:
                        raise ProductError(f"{self.name}: not a regular file in the archive")
                    while chunk := stream.read(_CHUNK_BYTES):
                        yield chunk
            else:
                with open(self.gdal_path, "rb") as handle:
                    while chunk := handle.read(_CHUNK_BYTES):
                        yield chunk
        except (OSError, tarfile.TarError) as exc:
            raise ProductError(f"{self.name}: cannot read ({exc})") from exc

    def read_bytes(self) -> bytes:
        """The whole file's bytes."""
        return b"".join(self.iter_bytes())


# ----------------------------------------------------------------------------- listings
@dataclass
class _Listing:
    """Files available to a product: by base name, plus STAC asset-key hints."""

    where: str
    files: dict[str, FileRef]
    hints: dict[str, FileRef] = field(default_factory=dict)

    def find(self, name: str) -> FileRef | None:
        ref = self.files.get(name)
        if ref is None:
            lower = name.lower()
            for key, candidate in self.files.items():
                if key.lower() == lower:
                    return candidate
        return ref


def _dir_listing(directory: Path) -> _Listing:
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise ProductError(f"{directory}: cannot list directory ({exc.strerror})") from exc
    files = {
        name: FileRef(str(directory / name), str(directory / name))
        for name in names
        if (directory / name).is_file()
    }
    return _Listing(str(directory), files)


def _tar_listing(path: Path) -> _Listing:
    tar_path = str(path.resolve())
    try:
        if path.stat().st_size == 0:
            raise ProductError(f"{path}: empty file, not a tar archive")
        with tarfile.open(tar_path) as archive:
            members = archive.getmembers()
    except (tarfile.TarError, EOFError) as exc:
        raise ProductError(f"{path}: not a tar archive") from exc
    except OSError as exc:
        raise ProductError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not members:
        raise ProductError(f"{path}: empty tar archive")
    files: dict[str, FileRef] = {}
    for member in members:
        name = member.name
        parts = PurePosixPath(name).parts
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise ProductError(
                f"{path}: archive member {name!r} has an absolute path or '..'; refused"
            )
        if not member.isfile():
            continue
        files[PurePosixPath(name).name] = FileRef(
            f"{path}!{name}", f"/vsitar/{tar_path}/{name}", tar_path=tar_path, member=name
        )
    if not files:
        raise ProductError(f"{path}: tar archive holds no regular files")
    return _Listing(str(path), files)


def _stac_listing(path: Path, item: Mapping[str, Any]) -> _Listing:
    assets = item.get("assets")
    if not isinstance(assets, dict) or not assets:
        raise ProductError(f"{path}: STAC item has no assets")
    files: dict[str, FileRef] = {}
    keyed: dict[str, FileRef] = {}
    for key, asset in assets.items():
        if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
            continue
        href: str = asset["href"]
        if href.startswith("file://"):
            href = href[len("file://") :]
        elif "://" in href:
            logger.debug("%s: asset %s is remote (%s); skipped", path, key, href)
            continue
        local = Path(href) if Path(href).is_absolute() else path.parent / href
        ref = FileRef(str(local), str(local))
        files[local.name] = ref
        keyed[str(key).lower()] = ref
    return _Listing(str(path), files, hints=keyed)


# ---------------------------------------------------------------------------- discovery
def _pick_mtl(listing: _Listing, prefer: str | None = None) -> FileRef:
    """Choose the MTL of a listing (Level-2 first; the product named by ``prefer`` if given)."""
    by_product: dict[str, list[FileRef]] = {}
    for name, ref in listing.files.items():
        if is_mtl_name(name):
            by_product.setdefault(mtl_product_id(name), []).append(ref)
    for key in ("mtl.txt", "mtl.xml", "mtl.json", "mtl"):
        hinted = listing.hints.get(key)
        if hinted is not None and not by_product:
            by_product.setdefault(mtl_product_id(hinted.basename) or "", []).append(hinted)
    if not by_product:
        raise ProductError(
            f"{listing.where}: no Landsat MTL (*_MTL.txt, *_MTL.json, *_MTL.xml) found"
        )
    products = sorted(by_product)
    if prefer is not None:
        matching = [p for p in products if prefer.upper().startswith(p.upper())]
        if not matching:
            raise ProductError(
                f"{prefer}: band and MTL from different products (MTL in {listing.where} "
                f"describes {', '.join(products)})"
            )
        products = matching
    if len(products) > 1:
        level2 = [p for p in products if _is_level2_id(p)]
        if len(level2) == 1:
            logger.info("%s: several products, using the Level-2 one %s", listing.where, level2[0])
            products = level2
        else:
            raise ProductError(
                f"{listing.where}: several Landsat products ({', '.join(products)}); open one by its MTL"
            )
    refs = by_product[products[0]]
    refs.sort(
        key=lambda r: next(
            (i for i, s in enumerate(_MTL_FORM_ORDER) if r.basename.lower().endswith(s)), 9
        )
    )
    return refs[0]


def _is_level2_id(product_id: str) -> bool:
    parts = product_id.upper().split("_")
    return len(parts) > 1 and parts[1].startswith("L2")


def _resolve_role(role: str, mtl: MTL, listing: _Listing, product_id: str) -> FileRef | None:
    """Find a file role: the MTL's FILE_NAME_* entry first, then the official name pattern,
    then (STAC) the asset key."""
    key, suffix = FILE_ROLES[role]
    named = mtl.file_name(key)
    if named:
        ref = listing.find(named)
        if ref is not None:
            return ref
    ref = listing.find(f"{product_id}{suffix}")
    if ref is not None:
        return ref
    for hint_key, hint_role in {**STAC_KEYS.get(mtl.level, {}), **STAC_KEYS["any"]}.items():
        if hint_role == role and hint_key in listing.hints:
            return listing.hints[hint_key]
    return listing.hints.get(role.lower())


def open_scene(path: str | os.PathLike[str] | Mapping[str, Any] | Any) -> Scene:
    """Open a Landsat product for reading thermal windows.

    Parameters
    ----------
    path : str, path-like, STAC item
        A product directory, any one file of a product (its MTL or a band), a ``.tar`` bundle as
        delivered by USGS (read in place through GDAL's ``/vsitar/``, never unpacked), or a
        STAC Item: a local JSON file (``landsat-c2-l1`` / ``landsat-c2-l2`` layout; hrefs
        relative or absolute), a ``pystac.Item``, an item dict or a product of
        :func:`kaesong_thermal.sources.stac.search_scenes`, or the http(s) URL of an item.
        Items whose assets are http(s) or ``s3://`` hrefs are read remotely, window by window
        (:func:`kaesong_thermal.landsat.remote.open_item`).

    Returns
    -------
    Scene

    Raises
    ------
    ProductError
        Missing MTL or thermal band, unsafe or unreadable archive, mismatched files.
    MetadataError
        MTL unreadable or without the thermal constants.
    RasterReadError
        The thermal band cannot be opened as a GeoTIFF.
    """
    if not isinstance(path, (str, os.PathLike)):
        from kaesong_thermal.landsat.remote import open_item

        return open_item(path)
    if isinstance(path, str) and path.lower().startswith(("http://", "https://")):
        from kaesong_thermal.landsat.remote import open_url

        return open_url(path)
    source = Path(os.fspath(path))
    if not source.exists():
        raise ProductError(f"{source}: no such file or directory")
    prefer: str | None = None
    lower = source.name.lower()
    if source.is_dir():
        listing = _dir_listing(source)
    elif lower.endswith(_TAR_SUFFIXES):
        listing = _tar_listing(source)
    elif is_mtl_name(source.name):
        mtl_ref = FileRef(str(source), str(source))
        return _build_scene(str(source), _dir_listing(source.parent), mtl_ref)
    elif lower.endswith(".json"):
        item = _load_json(source)
        if item.get("type") == "Feature" and "assets" in item:
            from kaesong_thermal.landsat import remote

            if remote.has_remote_assets(item):
                return remote.open_item(item, base=source)
            return _build_scene(str(source), _stac_listing(source, item), None)
        raise ProductError(f"{source}: JSON is neither a STAC item nor a *_MTL.json")
    else:
        listing = _dir_listing(source.parent)
        prefer = source.name
        if not any(is_mtl_name(n) for n in listing.files):
            raise ProductError(
                f"{source}: not a file of a Landsat product (no *_MTL.txt/.json/.xml beside it)"
            )
    return _build_scene(str(source), listing, _pick_mtl(listing, prefer))


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProductError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict):
        raise ProductError(f"{path}: JSON is not an object")
    return data


def _build_scene(
    source: str,
    listing: _Listing,
    mtl_ref: FileRef | None,
    factory: Callable[..., Scene] | None = None,
) -> Scene:
    if mtl_ref is None:
        mtl_ref = _pick_mtl(listing)
    if not mtl_ref.exists():
        raise ProductError(f"{mtl_ref.name}: MTL file is missing")
    mtl = parse_mtl(mtl_ref.read_bytes(), mtl_ref.name)
    product_id = mtl.product_id
    sensor = mtl.sensor
    level = mtl.level
    thermal = DEFAULT_THERMAL_BAND[(level, sensor)]
    # Validate the radiometric constants now: an MTL without them is not usable.
    if level == "L1":
        mtl.thermal_constants(thermal)
    files: dict[str, FileRef] = {}
    for role in (*ALLOWED_BANDS[(level, sensor[:2])], "QA_PIXEL", "QA_RADSAT", "ST_QA"):
        ref = _resolve_role(role, mtl, listing, product_id)
        if ref is not None:
            if not ref.exists():
                raise ProductError(f"{ref.name}: file of {product_id} is missing ({source})")
            files[role] = ref
    if thermal not in files:
        named = mtl.file_name(FILE_ROLES[thermal][0]) or f"{product_id}{FILE_ROLES[thermal][1]}"
        raise ProductError(f"{listing.where}: thermal band {named} of {product_id} not found")
    if "QA_PIXEL" not in files:
        logger.info("%s: no QA_PIXEL band; validity is based on fill only", product_id)
    scene = (factory or Scene)(source=source, mtl=mtl, files=files, thermal_band=thermal)
    scene._check_consistency()
    return scene


# --------------------------------------------------------------------------------- scene
class Scene:
    """One Landsat product, opened lazily.

    Datasets are opened on first use and kept open until :meth:`close` (or the end of a
    ``with`` block). A Scene pickles without its open datasets and reopens them on demand, so it
    can be sent to worker processes; ``open_scene(scene.path)`` is equally cheap.

    Attributes
    ----------
    path : str
        What was opened (directory, file, archive or STAC item).
    mtl : MTL
        The parsed metadata file.
    files : dict of str to FileRef
        Files by role (``"B10"``, ``"ST_B10"``, ``"QA_PIXEL"``, ``"QA_RADSAT"``, ``"ST_QA"`` ...).
    metadata : SceneMetadata
    """

    def __init__(self, *, source: str, mtl: MTL, files: dict[str, FileRef], thermal_band: str):
        self.path = source
        self.mtl = mtl
        self.files = files
        self._thermal_band = thermal_band
        self._datasets: dict[str, Any] = {}
        ds = self._dataset(thermal_band)
        self.metadata = SceneMetadata(
            scene_id=mtl.product_id,
            sensor=mtl.sensor,
            level=mtl.level,
            acquired=mtl.acquired,
            wrs_path=mtl.wrs_path,
            wrs_row=mtl.wrs_row,
            cloud_cover=mtl.cloud_cover,
            sun_elevation=mtl.sun_elevation,
            sun_azimuth=mtl.sun_azimuth,
            crs=ds.crs,
            day=mtl.day,
            collection=mtl.collection,
            thermal_band=thermal_band,
            processing_level=mtl.processing_level,
        )
        self.transform: Affine = ds.transform
        self.crs: CRS = ds.crs
        self.width: int = int(ds.width)
        self.height: int = int(ds.height)

    # ------------------------------------------------------------------ lifecycle
    def __repr__(self) -> str:
        return f"Scene({self.metadata.scene_id!r}, band={self._thermal_band!r}, path={self.path!r})"

    def __enter__(self) -> Scene:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every open dataset (the Scene stays usable: they reopen on demand)."""
        for ds in self._datasets.values():
            ds.close()
        self._datasets.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_datasets"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ properties
    @property
    def bounds(self) -> BoundingBox:
        """Outer bounds of the thermal band in the scene CRS."""
        west, south, east, north = array_bounds(self.height, self.width, self.transform)
        return BoundingBox(west, south, east, north)

    @property
    def scene_id(self) -> str:
        """Product id."""
        return self.metadata.scene_id

    @property
    def thermal_band(self) -> str:
        """The default thermal band."""
        return self._thermal_band

    # ------------------------------------------------------------------ datasets
    def _dataset(self, role: str) -> Any:
        ds = self._datasets.get(role)
        if ds is not None and not ds.closed:
            return ds
        ref = self.files[role]
        try:
            with self._env():
                ds = rasterio.open(ref.gdal_path)
        except RasterioError as exc:
            raise RasterReadError(f"{ref.name}: cannot open as GeoTIFF ({_short(exc)})") from exc
        if ds.driver != "GTiff":
            ds.close()
            raise RasterReadError(f"{ref.name}: not a GeoTIFF (GDAL driver {ds.driver})")
        if ds.crs is None:
            ds.close()
            raise ProductError(f"{ref.name}: GeoTIFF has no CRS; not a Landsat band")
        if role != self._thermal_band and self._thermal_band in self._datasets:
            base = self._datasets[self._thermal_band]
            if (ds.width, ds.height) != (base.width, base.height) or not ds.transform.almost_equals(
                base.transform
            ):
                ds.close()
                raise ProductError(
                    f"{ref.name}: pixel grid differs from the thermal band {self.files[self._thermal_band].name}"
                )
        self._datasets[role] = ds
        return ds

    def _env(self) -> rasterio.Env:
        """GDAL settings of this scene's reads (remote scenes use the cloud settings)."""
        return rasterio.Env(**_GDAL_ENV)

    def _st_scaling(self, band: str) -> Any:
        """Level-2 DN to kelvin scaling of ``band`` (the MTL's; STAC items may carry their own)."""
        return self.mtl.st_scaling(band)

    def _check_consistency(self) -> None:
        """Check that the thermal band lies on the MTL's grid (same UTM zone, inside the scene)."""
        ref = self.files[self._thermal_band]
        zone = self.mtl.utm_zone
        epsg = self.crs.to_epsg() if self.crs else None
        if (
            zone is not None
            and epsg is not None
            and 32601 <= epsg <= 32660
            and epsg - 32600 != zone
        ):
            raise ProductError(
                f"{ref.name}: band and MTL from different products (band in UTM zone "
                f"{epsg - 32600}, {self.mtl.source} says zone {zone})"
            )
        extent = self.mtl.corner_extent_m()
        if extent is not None and self.crs is not None and self.crs.is_projected:
            tol = max(abs(self.transform.a), abs(self.transform.e), 30.0) * 2.0
            b = self.bounds
            inside = (
                b.left >= extent[0] - tol
                and b.bottom >= extent[1] - tol
                and b.right <= extent[2] + tol
                and b.top <= extent[3] + tol
            )
            if not inside:
                raise ProductError(
                    f"{ref.name}: band and MTL from different products (band extent "
                    f"{tuple(round(v) for v in b)} outside the scene in {self.mtl.source})"
                )

    def _read(self, role: str, window: Window, fill: float | int) -> npt.NDArray[Any]:
        """Read ``window`` of a band; pixels outside the band are ``fill`` (boundless read)."""
        ds = self._dataset(role)
        ref = self.files[role]
        row_off, col_off = int(window.row_off), int(window.col_off)
        rows, cols = int(window.height), int(window.width)
        out = np.full((rows, cols), fill, dtype=ds.dtypes[0])
        r0, r1 = max(row_off, 0), min(row_off + rows, ds.height)
        c0, c1 = max(col_off, 0), min(col_off + cols, ds.width)
        if r1 > r0 and c1 > c0:
            try:
                data = ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
            except RasterioError as exc:
                raise RasterReadError(
                    f"{ref.name}: cannot read pixels, truncated or corrupt ({_short(exc)})"
                ) from exc
            out[r0 - row_off : r1 - row_off, c0 - col_off : c1 - col_off] = data
        return out

    # ------------------------------------------------------------------ windows
    def window_for(
        self,
        bounds: tuple[float, float, float, float] | None = None,
        crs: Any = None,
    ) -> Window:
        """Window of the scene grid covering ``bounds``, snapped outward to whole pixels.

        Parameters
        ----------
        bounds : (left, bottom, right, top) or None
            In ``crs`` (default the scene CRS). None means the whole band.
        crs : CRS-like, optional
            Anything :meth:`rasterio.crs.CRS.from_user_input` accepts.

        Returns
        -------
        rasterio.windows.Window
            Integer offsets and sizes; may extend beyond the band (read boundless).
        """
        if bounds is None:
            return Window(0, 0, self.width, self.height)
        left, bottom, right, top = (float(v) for v in bounds)
        if crs is not None:
            src = CRS.from_user_input(crs)
            if src != self.crs:
                left, bottom, right, top = transform_bounds(
                    src, self.crs, left, bottom, right, top, densify_pts=21
                )
        if not (left <= right and bottom <= top) or not all(
            math.isfinite(v) for v in (left, bottom, right, top)
        ):
            raise ConfigError(f"bounds {tuple(bounds)} are not (left, bottom, right, top)")
        win = from_bounds(left, bottom, right, top, transform=self.transform)
        eps = 1e-6
        col0 = math.floor(win.col_off + eps)
        row0 = math.floor(win.row_off + eps)
        col1 = max(math.ceil(win.col_off + win.width - eps), col0 + 1)
        row1 = max(math.ceil(win.row_off + win.height - eps), row0 + 1)
        return Window(col0, row0, col1 - col0, row1 - row0)

    def _band(self, band: str | None) -> str:
        if band is None:
            return self._thermal_band
        name = band.upper()
        allowed = ALLOWED_BANDS[(self.metadata.level, self.metadata.sensor[:2])]
        if name not in allowed:
            raise ConfigError(
                f"{self.scene_id}: band {band!r} is not a thermal band of this product "
                f"(choose from {', '.join(allowed)})"
            )
        if name not in self.files:
            raise ProductError(f"{self.scene_id}: band {name} file not found in {self.path}")
        return name

    def _arrays(
        self, window: Window, band: str, max_sigma_k: float | None, mask_snow: bool
    ) -> dict[str, Any]:
        """Kelvin, validity and the individual reasons for invalidity over ``window``."""
        meta = self.metadata
        ds = self._dataset(band)
        fill_dn = ds.nodata if ds.nodata is not None else bands.ST_FILL_DN
        dn = self._read(band, window, fill_dn)
        fill = dn == fill_dn
        saturated = np.zeros(dn.shape, dtype=bool)
        values = dn.astype(np.float64)
        if band.startswith("ST_"):
            scaling = self._st_scaling(band)
            kelvin = values * scaling.mult_k + scaling.add_k
        else:
            c = self.mtl.thermal_constants(band)
            radiance = values * c.radiance_mult + c.radiance_add
            with np.errstate(divide="ignore", invalid="ignore"):
                kelvin = c.k2 / np.log(c.k1 / radiance + 1.0)
            kelvin[radiance <= 0] = np.nan
            saturated |= dn >= c.dn_max
        kelvin32 = kelvin.astype(np.float32)
        invalid = fill | ~np.isfinite(kelvin32)

        cloud = np.zeros(dn.shape, dtype=bool)
        snow = np.zeros(dn.shape, dtype=bool)
        if "QA_PIXEL" in self.files:
            qa_pixel = self._read("QA_PIXEL", window, qa.QA_PIXEL_OUTSIDE)
            qa_fill = qa.fill_mask(qa_pixel)
            fill |= qa_fill
            cloud = qa.cloud_mask(qa_pixel) & ~qa_fill
            snow = qa.snow_mask(qa_pixel) & ~qa_fill
            invalid |= qa_fill | cloud
            if mask_snow:
                invalid |= snow
        if "QA_RADSAT" in self.files and (
            qa.radsat_bit(meta.sensor, band) is not None or meta.sensor[:2] in ("LT", "LE")
        ):
            radsat = self._read("QA_RADSAT", window, 0)
            saturated |= qa.saturated_mask(radsat, meta.sensor, band)
        saturated &= ~fill
        invalid |= saturated

        sigma: FloatArray | None = None
        uncertain = np.zeros(dn.shape, dtype=bool)
        if band.startswith("ST_") and "ST_QA" in self.files:
            sigma = qa.sigma_k(self._read("ST_QA", window, bands.ST_QA_FILL))
            if max_sigma_k is not None:
                with np.errstate(invalid="ignore"):
                    uncertain = ~(sigma <= np.float32(max_sigma_k)) & ~fill
                invalid |= uncertain
        valid = ~invalid
        kelvin32[~valid] = np.nan
        return {
            "kelvin": kelvin32,
            "valid": valid,
            "sigma_k": sigma,
            "cloud": cloud,
            "fill": fill,
            "snow": snow,
            "saturated": saturated,
            "uncertain": uncertain,
        }

    def read_kelvin(
        self,
        bounds: tuple[float, float, float, float] | None = None,
        crs: Any = None,
        *,
        max_sigma_k: float | None = bands.DEFAULT_MAX_SIGMA_K,
        mask_snow: bool = False,
        band: str | None = None,
    ) -> ThermalWindow:
        """Read temperature and validity over the window covering ``bounds``.

        Only that window is read from each band. It is snapped outward to whole pixels of the scene
        grid; parts outside the scene come back invalid (NaN), never an error.

        Parameters
        ----------
        bounds : (left, bottom, right, top), optional
            Area to read, in ``crs``; None reads the whole band.
        crs : CRS-like, optional
            CRS of ``bounds``; default the scene CRS.
        max_sigma_k : float or None, default 15.0
            Ceiling on the ST_QA 1-sigma uncertainty, kelvin (Level-2 only); None disables it.
            The default (:data:`kaesong_thermal.landsat.bands.DEFAULT_MAX_SIGMA_K`) keeps every
            QA-clear pixel of humid scenes (ST_QA 3-7 K): ST_QA is meant as a weight, carried in
            ``sigma_k``, not as a mask.
        mask_snow : bool, default False
            Also mark QA_PIXEL snow / ice as invalid.
        band : str, optional
            Another thermal band of the product (e.g. ``"B11"``; never used by default).

        Returns
        -------
        ThermalWindow
        """
        name = self._band(band)
        window = self.window_for(bounds, crs)
        arrays = self._arrays(window, name, max_sigma_k, mask_snow)
        return ThermalWindow(
            kelvin=arrays["kelvin"],
            valid=arrays["valid"],
            sigma_k=arrays["sigma_k"],
            cloud=arrays["cloud"],
            transform=window_transform(window, self.transform),
            crs=self.crs,
            metadata=self.metadata,
            band=name,
        )

    def qa_summary(
        self, *, max_sigma_k: float | None = bands.DEFAULT_MAX_SIGMA_K, mask_snow: bool = False
    ) -> dict[str, float | int]:
        """Pixel counts and fractions over the whole thermal band, read in strips.

        Returns
        -------
        dict
            ``pixels`` (all), ``image_pixels`` (not fill), ``fill_fraction`` (of all pixels) and,
            as fractions of the image pixels: ``cloud_fraction`` (cloud, dilated cloud, cirrus,
            shadow), ``snow_fraction``, ``saturated_fraction``, ``uncertain_fraction`` (sigma over
            the ceiling) and ``valid_fraction``.
        """
        counts = dict.fromkeys(
            ("pixels", "fill", "cloud", "snow", "saturated", "uncertain", "valid"), 0
        )
        for row in range(0, self.height, _STRIP_ROWS):
            window = Window(0, row, self.width, min(_STRIP_ROWS, self.height - row))
            arrays = self._arrays(window, self._thermal_band, max_sigma_k, mask_snow)
            counts["pixels"] += int(arrays["valid"].size)
            image = ~arrays["fill"]
            counts["fill"] += int(np.count_nonzero(arrays["fill"]))
            for key in ("cloud", "snow", "saturated", "uncertain", "valid"):
                counts[key] += int(np.count_nonzero(arrays[key] & image))
        image = counts["pixels"] - counts["fill"]
        denominator = image if image > 0 else 1
        return {
            "pixels": counts["pixels"],
            "image_pixels": image,
            "fill_fraction": counts["fill"] / max(counts["pixels"], 1),
            "cloud_fraction": counts["cloud"] / denominator,
            "snow_fraction": counts["snow"] / denominator,
            "saturated_fraction": counts["saturated"] / denominator,
            "uncertain_fraction": counts["uncertain"] / denominator,
            "valid_fraction": counts["valid"] / denominator,
        }

    def thermal_checksum(self, band: str | None = None) -> str:
        """SHA-256 (hex) of the thermal band file's bytes (archive members streamed in place)."""
        digest = hashlib.sha256()
        for chunk in self.files[self._band(band)].iter_bytes():
            digest.update(chunk)
        return digest.hexdigest()


def _short(exc: BaseException) -> str:
    """First line of an exception message (GDAL's own when rasterio only points to it)."""
    cause = exc.__cause__ or exc.__context__
    if cause is not None and "see previous exception" in str(exc).lower():
        exc = cause
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = [
    "FileRef",
    "Scene",
    "SceneMetadata",
    "ThermalWindow",
    "open_scene",
]
