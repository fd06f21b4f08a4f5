"""Writing simulated scenes as Landsat Collection 2 products (GeoTIFF, MTL txt/json/xml, STAC, tar).

File names, MTL groups and keys, data types, fill values and scale factors follow the USGS
Collection 2 Data Format Control Books; the values are the simulator's own.

References
----------
.. [1] USGS, "Landsat 8-9 OLI/TIRS Collection 2 Level 1 Data Format Control Book", LSDS-1822.
.. [2] USGS, "Landsat 8-9 OLI/TIRS Collection 2 Level 2 Data Format Control Book", LSDS-1328.
.. [3] USGS, "Landsat 4-7 Collection 2 Level 1 / Level 2 Data Format Control Books",
   LSDS-1415 / LSDS-1337.
.. [4] STAC Item specification 1.0 and the ``landsat-c2-l2`` / ``landsat-c2-l1`` collections
   (asset keys ``lwir11``, ``qa_pixel``, ``qa_radsat``, ``qa``, ``cdist``, ``mtl.txt``...).
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from numpy.typing import NDArray

from kaesong_thermal.landsat.bands import (
    NOMINAL_THERMAL,
    ST_ADD_K,
    ST_FILL_DN,
    ST_MULT_K,
    ST_QA_FILL,
    ST_QA_MULT_K,
)
from kaesong_thermal.simulation.scenario import EPSG, WRS_PATH, WRS_ROW, Grid, stable_u01

logger = logging.getLogger(__name__)

#: One MTL entry: (key, value text, quoted in ODL?)
Entry = tuple[str, str, bool]
Groups = list[tuple[str, list[Entry]]]

SPACECRAFT = {"LC08": "LANDSAT_8", "LC09": "LANDSAT_9", "LE07": "LANDSAT_7", "LT05": "LANDSAT_5"}
SENSOR_ID = {"LC08": "OLI_TIRS", "LC09": "OLI_TIRS", "LE07": "ETM", "LT05": "TM"}
PLATFORM = {"LC08": "landsat-8", "LC09": "landsat-9", "LE07": "landsat-7", "LT05": "landsat-5"}
INSTRUMENTS = {
    "LC08": ["oli", "tirs"],
    "LC09": ["oli", "tirs"],
    "LE07": ["etm+"],
    "LT05": ["tm"],
}
#: MTL band-key suffix of the Level-1 thermal band per sensor.
L1_BAND_KEY = {"LC08": "10", "LC09": "10", "LE07": "6_VCID_1", "LT05": "6"}
#: File-name suffix of the Level-1 thermal band per sensor.
L1_BAND_FILE = {"LC08": "B10", "LC09": "B10", "LE07": "B6_VCID_1", "LT05": "B6"}
#: Level-2 surface temperature band per sensor.
L2_BAND = {"LC08": "ST_B10", "LC09": "ST_B10", "LE07": "ST_B6", "LT05": "ST_B6"}
DOI_L1 = "https://doi.org/10.5066/P975CC9B"
DOI_L2 = "https://doi.org/10.5066/P9OGBGM6"


def processing_date(code: str, acquired: date, seed: int) -> date:
    """Deterministic processing date: the 2020 Collection 2 reprocessing for older scenes,
    a few days after acquisition for newer ones [1]_."""
    u = stable_u01(seed, "processed", code, acquired.isoformat())
    if acquired < date(2020, 8, 1):
        return date(2020, 8, 20) + timedelta(days=int(u * 40))
    return acquired + timedelta(days=3 + int(u * 8))


def product_id(code: str, level: str, acquired: date, processed: date) -> str:
    """Collection 2 product id, e.g. ``LC08_L2SP_116034_20251105_20251110_02_T1`` [1]_."""
    kind = "L2SP" if level == "L2" else "L1TP"
    return f"{code}_{kind}_{WRS_PATH:03d}{WRS_ROW:03d}_{acquired:%Y%m%d}_{processed:%Y%m%d}_02_T1"


@dataclass(frozen=True)
class ProductInfo:
    """What the MTL and STAC writers need to know about one product."""

    pid: str
    code: str
    level: str
    acquired: datetime
    processed: date
    generated_time: str  # "HH:MM:SSZ"
    cloud_cover: float
    sun_azimuth: float
    sun_elevation: float
    grid: Grid
    corners_lonlat: dict[str, tuple[float, float]]
    files: dict[str, str]  # logical name -> file name


def corners_lonlat(grid: Grid) -> dict[str, tuple[float, float]]:
    """(lon, lat) of the four corner pixel centres of ``grid`` (MTL convention)."""
    from pyproj import Transformer

    tr = Transformer.from_crs(EPSG, 4326, always_xy=True)
    xs = {"UL": grid.x0 + 15, "LL": grid.x0 + 15}
    xs["UR"] = xs["LR"] = grid.x0 + grid.width * 30 - 15
    ys = {"UL": grid.y0 - 15, "UR": grid.y0 - 15}
    ys["LL"] = ys["LR"] = grid.y0 - grid.height * 30 + 15
    out = {}
    for k in ("UL", "UR", "LL", "LR"):
        lon, lat = tr.transform(xs[k], ys[k])
        out[k] = (float(lon), float(lat))
    return out


def _q(key: str, value: str) -> Entry:
    return (key, value, True)


def _n(key: str, value: str) -> Entry:
    return (key, value, False)


def build_mtl(info: ProductInfo) -> Groups:
    """The MTL groups of one product, in Collection 2 order [1]_ [2]_ [3]_."""
    c = NOMINAL_THERMAL[info.code]
    bk = L1_BAND_KEY[info.code]
    l2 = info.level == "L2"
    kind = "L2SP" if l2 else "L1TP"
    l1_pid = info.pid.replace("_L2SP_", "_L1TP_")
    g = info.grid
    acq = info.acquired
    frac = f"{acq.microsecond * 10:07d}"
    gen = f"{info.processed.isoformat()}T{info.generated_time}"
    contents: list[Entry] = [
        _q("ORIGIN", "Image courtesy of the U.S. Geological Survey"),
        _q("DIGITAL_OBJECT_IDENTIFIER", DOI_L2 if l2 else DOI_L1),
        _q("LANDSAT_PRODUCT_ID", info.pid),
        _q("PROCESSING_LEVEL", kind),
        _n("COLLECTION_NUMBER", "02"),
        _q("COLLECTION_CATEGORY", "T1"),
        _q("OUTPUT_FORMAT", "GEOTIFF"),
    ]
    f = info.files
    if l2:
        st = L2_BAND[info.code]
        contents += [
            _q(f"FILE_NAME_BAND_{st}", f["thermal"]),
            _q("FILE_NAME_CLOUD_DISTANCE", f["cdist"]),
            _q("FILE_NAME_QUALITY_L2_SURFACE_TEMPERATURE", f["st_qa"]),
        ]
    else:
        contents.append(_q(f"FILE_NAME_BAND_{bk}", f["thermal"]))
    contents += [
        _q("FILE_NAME_QUALITY_L1_PIXEL", f["qa_pixel"]),
        _q("FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION", f["qa_radsat"]),
        _q("FILE_NAME_METADATA_ODL", f["mtl_txt"]),
        _q("FILE_NAME_METADATA_XML", f["mtl_xml"]),
    ]
    if l2:
        contents += [
            _q(f"DATA_TYPE_BAND_{L2_BAND[info.code]}", "UINT16"),
            _q("DATA_TYPE_CLOUD_DISTANCE", "INT16"),
            _q("DATA_TYPE_QUALITY_L2_SURFACE_TEMPERATURE", "INT16"),
        ]
    else:
        contents.append(_q(f"DATA_TYPE_BAND_{bk}", "UINT8" if c.dn_max == 255 else "UINT16"))
    contents += [
        _q("DATA_TYPE_QUALITY_L1_PIXEL", "UINT16"),
        _q("DATA_TYPE_QUALITY_L1_RADIOMETRIC_SATURATION", "UINT16"),
    ]
    image: list[Entry] = [
        _q("SPACECRAFT_ID", SPACECRAFT[info.code]),
        _q("SENSOR_ID", SENSOR_ID[info.code]),
        _n("WRS_TYPE", "2"),
        _n("WRS_PATH", str(WRS_PATH)),
        _n("WRS_ROW", str(WRS_ROW)),
        _q("NADIR_OFFNADIR", "NADIR"),
        _n("TARGET_WRS_PATH", str(WRS_PATH)),
        _n("TARGET_WRS_ROW", str(WRS_ROW)),
        _n("DATE_ACQUIRED", acq.date().isoformat()),
        _q("SCENE_CENTER_TIME", f"{acq:%H:%M:%S}.{frac}Z"),
        _q("STATION_ID", "LGN"),
        _n("CLOUD_COVER", f"{info.cloud_cover:.2f}"),
        _n("CLOUD_COVER_LAND", f"{info.cloud_cover:.2f}"),
        _n("IMAGE_QUALITY_OLI" if info.code in ("LC08", "LC09") else "IMAGE_QUALITY", "9"),
    ]
    if info.code in ("LC08", "LC09"):
        image.append(_n("IMAGE_QUALITY_TIRS", "9"))
    image += [
        _n("SUN_AZIMUTH", f"{info.sun_azimuth:.8f}"),
        _n("SUN_ELEVATION", f"{info.sun_elevation:.8f}"),
        _n("EARTH_SUN_DISTANCE", f"{_earth_sun_distance(acq.date()):.7f}"),
    ]
    if info.code in ("LC08", "LC09"):
        image += [_q("TIRS_SSM_MODEL", "FINAL"), _q("TIRS_SSM_POSITION_STATUS", "ESTIMATED")]
    proj: list[Entry] = [
        _q("MAP_PROJECTION", "UTM"),
        _q("DATUM", "WGS84"),
        _q("ELLIPSOID", "WGS84"),
        _n("UTM_ZONE", "52"),
        _n("GRID_CELL_SIZE_REFLECTIVE", "30.00"),
        _n("GRID_CELL_SIZE_THERMAL", "30.00"),
        _n("REFLECTIVE_LINES", str(g.height)),
        _n("REFLECTIVE_SAMPLES", str(g.width)),
        _n("THERMAL_LINES", str(g.height)),
        _n("THERMAL_SAMPLES", str(g.width)),
        _q("ORIENTATION", "NORTH_UP"),
    ]
    for k in ("UL", "UR", "LL", "LR"):
        lon, lat = info.corners_lonlat[k]
        proj += [
            _n(f"CORNER_{k}_LAT_PRODUCT", f"{lat:.5f}"),
            _n(f"CORNER_{k}_LON_PRODUCT", f"{lon:.5f}"),
        ]
    xl, xr = g.x0 + 15, g.x0 + 30 * g.width - 15
    yt, yb = g.y0 - 15, g.y0 - 30 * g.height + 15
    for k, (x, y) in {"UL": (xl, yt), "UR": (xr, yt), "LL": (xl, yb), "LR": (xr, yb)}.items():
        proj += [
            _n(f"CORNER_{k}_PROJECTION_X_PRODUCT", f"{x:.3f}"),
            _n(f"CORNER_{k}_PROJECTION_Y_PRODUCT", f"{y:.3f}"),
        ]
    groups: Groups = [
        ("PRODUCT_CONTENTS", contents),
        ("IMAGE_ATTRIBUTES", image),
        ("PROJECTION_ATTRIBUTES", proj),
    ]
    if l2:
        st = L2_BAND[info.code]
        groups.append(
            (
                "LEVEL2_PROCESSING_RECORD",
                [
                    _q("ORIGIN", "Image courtesy of the U.S. Geological Survey"),
                    _q("DIGITAL_OBJECT_IDENTIFIER", DOI_L2),
                    _q("LANDSAT_PRODUCT_ID", info.pid),
                    _q("PROCESSING_LEVEL", "L2SP"),
                    _q("OUTPUT_FORMAT", "GEOTIFF"),
                    _q("DATE_PRODUCT_GENERATED", gen),
                    _q("PROCESSING_SOFTWARE_VERSION", "LPGS_16.3.0"),
                    _q("ALGORITHM_SOURCE_SURFACE_TEMPERATURE", "st_1.5.0"),
                    _q("DATA_SOURCE_REANALYSIS", "GEOS-5 IT"),
                ],
            )
        )
        groups.append(
            (
                "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS",
                [
                    _n(f"TEMPERATURE_MAXIMUM_BAND_{st}", "372.999941"),
                    _n(f"TEMPERATURE_MINIMUM_BAND_{st}", "149.003418"),
                    _n(f"QUANTIZE_CAL_MAXIMUM_BAND_{st}", "65535"),
                    _n(f"QUANTIZE_CAL_MINIMUM_BAND_{st}", "1"),
                    _n(f"TEMPERATURE_MULT_BAND_{st}", f"{ST_MULT_K:.8f}"),
                    _n(f"TEMPERATURE_ADD_BAND_{st}", f"{ST_ADD_K:.1f}"),
                ],
            )
        )
    l1_record: list[Entry] = [
        _q("ORIGIN", "Image courtesy of the U.S. Geological Survey"),
        _q("DIGITAL_OBJECT_IDENTIFIER", DOI_L1),
        _q("LANDSAT_PRODUCT_ID", l1_pid),
        _q("PROCESSING_LEVEL", "L1TP"),
        _q("COLLECTION_CATEGORY", "T1"),
        _q("OUTPUT_FORMAT", "GEOTIFF"),
        _q("DATE_PRODUCT_GENERATED", gen),
        _q("PROCESSING_SOFTWARE_VERSION", "LPGS_16.3.0"),
        _q("DATA_SOURCE_ELEVATION", "GLS2000"),
        _n("GEOMETRIC_RMSE_MODEL", "7.412"),
    ]
    lmin = c.radiance_mult * 1 + c.radiance_add
    lmax = c.radiance_mult * c.dn_max + c.radiance_add
    groups += [
        ("LEVEL1_PROCESSING_RECORD", l1_record),
        (
            "LEVEL1_MIN_MAX_RADIANCE",
            [
                _n(f"RADIANCE_MAXIMUM_BAND_{bk}", f"{lmax:.5f}"),
                _n(f"RADIANCE_MINIMUM_BAND_{bk}", f"{lmin:.5f}"),
            ],
        ),
        (
            "LEVEL1_MIN_MAX_PIXEL_VALUE",
            [
                _n(f"QUANTIZE_CAL_MAX_BAND_{bk}", str(c.dn_max)),
                _n(f"QUANTIZE_CAL_MIN_BAND_{bk}", "1"),
            ],
        ),
        (
            "LEVEL1_RADIOMETRIC_RESCALING",
            [
                _n(f"RADIANCE_MULT_BAND_{bk}", f"{c.radiance_mult:.4E}"),
                _n(f"RADIANCE_ADD_BAND_{bk}", f"{c.radiance_add:.5f}"),
            ],
        ),
        (
            "LEVEL1_THERMAL_CONSTANTS",
            [
                _n(f"K1_CONSTANT_BAND_{bk}", f"{c.k1:.4f}"),
                _n(f"K2_CONSTANT_BAND_{bk}", f"{c.k2:.4f}"),
            ],
        ),
        (
            "LEVEL1_PROJECTION_PARAMETERS",
            [
                _q("MAP_PROJECTION", "UTM"),
                _q("DATUM", "WGS84"),
                _q("ELLIPSOID", "WGS84"),
                _n("UTM_ZONE", "52"),
                _n("GRID_CELL_SIZE_REFLECTIVE", "30.00"),
                _n("GRID_CELL_SIZE_THERMAL", "30.00"),
                _q("ORIENTATION", "NORTH_UP"),
                _q("RESAMPLING_OPTION", "CUBIC_CONVOLUTION"),
            ],
        ),
    ]
    return groups


def _earth_sun_distance(day: date) -> float:
    """Earth-Sun distance in AU (first-order eccentricity term)."""
    import math

    doy = day.timetuple().tm_yday
    return 1 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4)))


def mtl_txt(groups: Groups) -> str:
    """ODL text of an MTL, as USGS writes it (two-space indentation per level)."""
    lines = ["GROUP = LANDSAT_METADATA_FILE"]
    for name, entries in groups:
        lines.append(f"  GROUP = {name}")
        for key, value, quoted in entries:
            lines.append(f'    {key} = "{value}"' if quoted else f"    {key} = {value}")
        lines.append(f"  END_GROUP = {name}")
    lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END", ""]
    return "\n".join(lines)


def mtl_json(groups: Groups) -> str:
    """JSON MTL: every value a string, as in Collection 2."""
    doc = {"LANDSAT_METADATA_FILE": {n: {k: v for k, v, _ in e} for n, e in groups}}
    return json.dumps(doc, indent=2) + "\n"


def mtl_xml(groups: Groups) -> str:
    """XML MTL with the Collection 2 element layout."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<LANDSAT_METADATA_FILE>"]
    for name, entries in groups:
        out.append(f"  <{name}>")
        out += [f"    <{k}>{escape(v)}</{k}>" for k, v, _ in entries]
        out.append(f"  </{name}>")
    out += ["</LANDSAT_METADATA_FILE>", ""]
    return "\n".join(out)


def stac_item(info: ProductInfo) -> dict[str, Any]:
    """STAC Item of one product with landsat-c2 asset keys and relative hrefs [4]_."""
    ll = info.corners_lonlat
    ring = [list(ll["UL"]), list(ll["LL"]), list(ll["LR"]), list(ll["UR"]), list(ll["UL"])]
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    g = info.grid
    tiff = "image/tiff; application=geotiff; profile=cloud-optimized"
    f = info.files
    assets: dict[str, Any] = {}
    st_band = {
        "nodata": 0,
        "data_type": "uint16",
        "unit": "kelvin",
        "scale": ST_MULT_K,
        "offset": ST_ADD_K,
    }
    if info.level == "L2":
        assets["lwir11" if info.code in ("LC08", "LC09") else "lwir"] = {
            "href": f"./{f['thermal']}",
            "type": tiff,
            "title": "Surface Temperature Band",
            "roles": ["temperature"],
            "raster:bands": [st_band],
        }
        assets["qa"] = {
            "href": f"./{f['st_qa']}",
            "type": tiff,
            "title": "Surface Temperature Quality Assessment Band",
            "roles": ["data"],
            "raster:bands": [
                {
                    "nodata": ST_QA_FILL,
                    "data_type": "int16",
                    "unit": "kelvin",
                    "scale": ST_QA_MULT_K,
                }
            ],
        }
        assets["cdist"] = {
            "href": f"./{f['cdist']}",
            "type": tiff,
            "title": "Cloud Distance Band",
            "roles": ["data"],
            "raster:bands": [
                {"nodata": ST_QA_FILL, "data_type": "int16", "unit": "kilometer", "scale": 0.01}
            ],
        }
    else:
        key = {"LC08": "lwir11", "LC09": "lwir11", "LE07": "lwir_low"}.get(info.code, "lwir")
        assets[key] = {
            "href": f"./{f['thermal']}",
            "type": tiff,
            "title": "Thermal Infrared Band (digital numbers)",
            "roles": ["data"],
        }
    assets["qa_pixel"] = {
        "href": f"./{f['qa_pixel']}",
        "type": tiff,
        "title": "Pixel Quality Assessment Band",
        "roles": ["cloud"],
    }
    assets["qa_radsat"] = {
        "href": f"./{f['qa_radsat']}",
        "type": tiff,
        "title": "Radiometric Saturation Quality Assessment Band",
        "roles": ["saturation"],
    }
    assets["mtl.txt"] = {
        "href": f"./{f['mtl_txt']}",
        "type": "text/plain",
        "title": "Product Metadata File (txt)",
        "roles": ["metadata"],
    }
    assets["mtl.json"] = {
        "href": f"./{f['mtl_json']}",
        "type": "application/json",
        "title": "Product Metadata File (json)",
        "roles": ["metadata"],
    }
    assets["mtl.xml"] = {
        "href": f"./{f['mtl_xml']}",
        "type": "application/xml",
        "title": "Product Metadata File (xml)",
        "roles": ["metadata"],
    }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": info.pid,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {
            "datetime": info.acquired.isoformat().replace("+00:00", "Z"),
            "platform": PLATFORM[info.code],
            "instruments": INSTRUMENTS[info.code],
            "eo:cloud_cover": round(info.cloud_cover, 2),
            "view:sun_azimuth": round(info.sun_azimuth, 8),
            "view:sun_elevation": round(info.sun_elevation, 8),
            "landsat:wrs_type": "2",
            "landsat:wrs_path": f"{WRS_PATH:03d}",
            "landsat:wrs_row": f"{WRS_ROW:03d}",
            "landsat:collection_category": "T1",
            "landsat:collection_number": "02",
            "landsat:correction": "L2SP" if info.level == "L2" else "L1TP",
            "landsat:product_id": info.pid,
            "landsat:simulated": True,
            "proj:epsg": EPSG,
            "proj:shape": [g.height, g.width],
            "proj:transform": [30.0, 0.0, g.x0, 0.0, -30.0, g.y0],
        },
        "links": [],
        "assets": assets,
    }


def geotiff_profile(grid: Grid, dtype: str, nodata: float | None) -> dict[str, Any]:
    """Tiled DEFLATE GeoTIFF profile of the product grid (as Landsat COGs)."""
    tile = 256
    prof: dict[str, Any] = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": dtype,
        "crs": f"EPSG:{EPSG}",
        "transform": grid.transform,
        "tiled": True,
        "blockxsize": tile,
        "blockysize": tile,
        "compress": "deflate",
        "predictor": 2,
        "zlevel": 6,
    }
    if nodata is not None:
        prof["nodata"] = nodata
    return prof


class ProductWriter:
    """Open the GeoTIFFs of one product, accept row strips, then write the MTLs (and STAC/tar)."""

    def __init__(self, directory: Path, info: ProductInfo) -> None:
        import rasterio

        self.directory = directory
        self.info = info
        directory.mkdir(parents=True, exist_ok=True)
        f = info.files
        l1 = NOMINAL_THERMAL[info.code]
        specs: dict[str, tuple[str, float | None]] = {
            "qa_pixel": ("uint16", None),
            "qa_radsat": ("uint16", None),
        }
        if info.level == "L2":
            specs["thermal"] = ("uint16", float(ST_FILL_DN))
            specs["st_qa"] = ("int16", float(ST_QA_FILL))
            specs["cdist"] = ("int16", float(ST_QA_FILL))
        else:
            specs["thermal"] = ("uint8" if l1.dn_max == 255 else "uint16", 0.0)
        self.datasets = {}
        for name, (dtype, nodata) in specs.items():
            ds = rasterio.open(
                directory / f[name], "w", **geotiff_profile(info.grid, dtype, nodata)
            )
            ds.update_tags(AREA_OR_POINT="Point")
            self.datasets[name] = ds

    def write(self, name: str, r0: int, arr: NDArray) -> None:
        """Write rows starting at ``r0`` of the array named ``name``."""
        from rasterio.windows import Window

        ds = self.datasets[name]
        ds.write(arr.astype(ds.dtypes[0]), 1, window=Window(0, r0, arr.shape[1], arr.shape[0]))

    def close(self, *, stac: bool, tar: bool) -> Path:
        """Close rasters, write MTL txt/json/xml (and STAC); bundle as tar if asked."""
        for ds in self.datasets.values():
            ds.close()
        groups = build_mtl(self.info)
        f = self.info.files
        (self.directory / f["mtl_txt"]).write_text(mtl_txt(groups))
        (self.directory / f["mtl_json"]).write_text(mtl_json(groups))
        (self.directory / f["mtl_xml"]).write_text(mtl_xml(groups))
        names = [
            f[k] for k in ("mtl_txt", "mtl_json", "mtl_xml", "thermal", "qa_pixel", "qa_radsat")
        ]
        if self.info.level == "L2":
            names += [f["st_qa"], f["cdist"]]
        if stac:
            (self.directory / f["stac"]).write_text(json.dumps(stac_item(self.info), indent=2))
            names.append(f["stac"])
        if not tar:
            return self.directory
        return bundle_tar(self.directory, names, self.info)


def bundle_tar(directory: Path, names: Sequence[str], info: ProductInfo) -> Path:
    """Bundle the product files into ``<PRODUCT_ID>.tar`` (flat members, as USGS delivers)
    with fixed member metadata (deterministic bytes), then remove the directory."""
    import shutil

    out = directory.parent / f"{info.pid}.tar"
    mtime = datetime(
        info.processed.year, info.processed.month, info.processed.day, tzinfo=timezone.utc
    ).timestamp()
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name in names:
            data = (directory / name).read_bytes()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = int(mtime)
            ti.mode = 0o644
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            tf.addfile(ti, io.BytesIO(data))
    shutil.rmtree(directory)
    return out


def file_names(pid: str, code: str, level: str) -> dict[str, str]:
    """File names of a product's members [1]_ [2]_."""
    thermal = L2_BAND[code] if level == "L2" else L1_BAND_FILE[code]
    out = {
        "thermal": f"{pid}_{thermal}.TIF",
        "qa_pixel": f"{pid}_QA_PIXEL.TIF",
        "qa_radsat": f"{pid}_QA_RADSAT.TIF",
        "mtl_txt": f"{pid}_MTL.txt",
        "mtl_json": f"{pid}_MTL.json",
        "mtl_xml": f"{pid}_MTL.xml",
        "stac": f"{pid}_stac.json",
    }
    if level == "L2":
        out["st_qa"] = f"{pid}_ST_QA.TIF"
        out["cdist"] = f"{pid}_ST_CDIST.TIF"
    return out


def scale_st(surface_k: NDArray, fill: NDArray[np.bool_]) -> NDArray[np.uint16]:
    """Kelvin to ST_B10 DN (``(T - 149.0) / 0.00341802``, clipped to 1..65535; fill 0) [2]_."""
    dn = np.clip(np.rint((surface_k - ST_ADD_K) / ST_MULT_K), 1, 65535).astype(np.uint16)
    dn[fill] = ST_FILL_DN
    return dn


def scale_l1(radiance: NDArray, code: str, fill: NDArray[np.bool_]) -> NDArray:
    """Radiance to Level-1 DN (``(L - AL) / ML``, clipped to 1..DN max; fill 0) [1]_."""
    c = NOMINAL_THERMAL[code]
    dn = np.clip(np.rint((radiance - c.radiance_add) / c.radiance_mult), 1, c.dn_max)
    dn[fill] = 0
    return dn.astype(np.uint8 if c.dn_max == 255 else np.uint16)


def scale_int16(values: NDArray, mult: float, fill: NDArray[np.bool_]) -> NDArray[np.int16]:
    """Scaled int16 band (ST_QA, ST_CDIST) with fill -9999 [2]_."""
    v = np.clip(np.rint(values / mult), 0, 32767).astype(np.int16)
    v[fill] = ST_QA_FILL
    return v
