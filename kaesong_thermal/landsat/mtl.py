"""Landsat metadata (MTL) files: ODL ``.txt``, ``.json`` and ``.xml``; Collection 2, 1 and pre-collection.

All three forms are read into one structure, :class:`MTL`: a mapping from group name to a mapping from
key to the value as a string (quotes removed). Nested ODL groups are flattened to their innermost
group name (``L1_METADATA_FILE/PRODUCT_METADATA`` becomes ``PRODUCT_METADATA``); JSON numbers (older
rio-toa style JSON MTLs) are turned back into strings so every form gives the same values.

Group names differ between layouts [1]_ [2]_:

================================  =================================  ===========================
Collection 2                      Collection 1                       pre-collection (2012-2016)
================================  =================================  ===========================
``PRODUCT_CONTENTS``              ``METADATA_FILE_INFO`` /           ``METADATA_FILE_INFO`` /
                                  ``PRODUCT_METADATA``               ``PRODUCT_METADATA``
``IMAGE_ATTRIBUTES``              ``IMAGE_ATTRIBUTES`` /             same as Collection 1
                                  ``PRODUCT_METADATA`` (date, WRS)
``LEVEL1_RADIOMETRIC_RESCALING``  ``RADIOMETRIC_RESCALING``          ``RADIOMETRIC_RESCALING``
``LEVEL1_THERMAL_CONSTANTS``      ``TIRS_THERMAL_CONSTANTS`` (L8),   ``TIRS_THERMAL_CONSTANTS``
                                  ``THERMAL_CONSTANTS`` (L4/5/7)
``LEVEL2_SURFACE_TEMPERATURE_``   (no Level-2 in MTL)                (none)
``PARAMETERS``
================================  =================================  ===========================

A Collection 2 Level-2 MTL also carries the ``LEVEL1_*`` groups of the Level-1 product it was made
from, including a *different* ``LANDSAT_PRODUCT_ID`` and ``FILE_NAME_*`` entries of the Level-1
files: product identity and file names are therefore only taken from the product groups
(``PRODUCT_CONTENTS``, ``METADATA_FILE_INFO``, ``PRODUCT_METADATA``).

References
----------
.. [1] USGS, "Landsat 8-9 OLI/TIRS Collection 2 Level 1 Data Format Control Book", LSDS-1822.
.. [2] USGS, "Landsat 8 (L8) Data Users Handbook", LSDS-1574, section 5 (Level-1 metadata file).
.. [3] USGS, "Landsat 8-9 Collection 2 Level 2 Science Product Guide", LSDS-1619.
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kaesong_thermal.errors import MetadataError
from kaesong_thermal.landsat import bands

logger = logging.getLogger(__name__)

#: Groups holding the product's own identity and file names, in lookup order.
PRODUCT_GROUPS = ("PRODUCT_CONTENTS", "METADATA_FILE_INFO", "PRODUCT_METADATA")
#: Groups holding acquisition attributes, in lookup order.
IMAGE_GROUPS = ("IMAGE_ATTRIBUTES", "PRODUCT_METADATA", "METADATA_FILE_INFO")
RESCALING_GROUPS = ("LEVEL1_RADIOMETRIC_RESCALING", "RADIOMETRIC_RESCALING")
THERMAL_CONSTANT_GROUPS = (
    "LEVEL1_THERMAL_CONSTANTS",
    "TIRS_THERMAL_CONSTANTS",
    "THERMAL_CONSTANTS",
)
PIXEL_VALUE_GROUPS = ("LEVEL1_MIN_MAX_PIXEL_VALUE", "MIN_MAX_PIXEL_VALUE")
ST_GROUPS = ("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS",)
PROJECTION_GROUPS = (
    "PROJECTION_ATTRIBUTES",
    "PROJECTION_PARAMETERS",
    "LEVEL1_PROJECTION_PARAMETERS",
)

#: Root group names of a Landsat MTL (C2 and C1/pre-collection).
ROOT_GROUPS = ("LANDSAT_METADATA_FILE", "L1_METADATA_FILE")

#: MTL file-name suffixes (case-insensitive).
MTL_SUFFIXES = ("_MTL.txt", "_MTL.json", "_MTL.xml")

_ODL_LINE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True)
class L2Scaling:
    """Level-2 surface temperature scaling: kelvin = DN * mult_k + add_k; DN ``fill_dn`` is fill [3]_."""

    band: str
    mult_k: float
    add_k: float
    fill_dn: int = bands.ST_FILL_DN


@dataclass(frozen=True)
class MTL:
    """A parsed Landsat metadata file.

    Attributes
    ----------
    groups : mapping of str to mapping of str to str
        Group name -> key -> value (string, quotes removed).
    source : str
        The file (or archive member) it was read from, for error messages.
    form : str
        ``"txt"``, ``"json"`` or ``"xml"``.
    """

    groups: Mapping[str, Mapping[str, str]]
    source: str
    form: str

    # ------------------------------------------------------------------ lookup
    def get(self, key: str, groups: Iterable[str] | None = None) -> str | None:
        """Value of ``key`` in the first of ``groups`` that has it (any group if None)."""
        if groups is None:
            for values in self.groups.values():
                if key in values:
                    return values[key]
            return None
        for name in groups:
            group = self.groups.get(name)
            if group is not None and key in group:
                return group[key]
        return None

    def require(self, key: str, groups: Iterable[str] | None = None) -> str:
        """Like :meth:`get` but raise :class:`MetadataError` naming the file when missing."""
        value = self.get(key, groups)
        if value is None or value == "":
            raise MetadataError(f"{self.source}: MTL has no {key}")
        return value

    def number(self, key: str, groups: Iterable[str] | None = None) -> float | None:
        """Value of ``key`` as float, None when absent."""
        value = self.get(key, groups)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except ValueError as exc:
            raise MetadataError(f"{self.source}: {key} = {value!r} is not a number") from exc

    # ---------------------------------------------------------------- identity
    @property
    def product_id(self) -> str:
        """Product id (``LANDSAT_PRODUCT_ID``), else ``LANDSAT_SCENE_ID`` (pre-collection)."""
        value = self.get("LANDSAT_PRODUCT_ID", PRODUCT_GROUPS)
        if not value:
            value = self.get("LANDSAT_SCENE_ID", PRODUCT_GROUPS)
        if not value:
            raise MetadataError(
                f"{self.source}: MTL has neither LANDSAT_PRODUCT_ID nor LANDSAT_SCENE_ID"
            )
        return value

    @property
    def sensor(self) -> str:
        """Sensor code ``LC08``, ``LC09``, ``LE07``, ``LT05`` or ``LT04``."""
        spacecraft = self.get("SPACECRAFT_ID", IMAGE_GROUPS)
        sensor_id = (self.get("SENSOR_ID", IMAGE_GROUPS) or "").upper()
        if spacecraft is None:
            raise MetadataError(f"{self.source}: MTL has no SPACECRAFT_ID")
        code = bands.SPACECRAFT_TO_SENSOR.get(spacecraft.upper().replace(" ", "_"))
        if code is None:
            raise MetadataError(f"{self.source}: unsupported spacecraft {spacecraft!r}")
        if sensor_id == "MSS":
            raise MetadataError(f"{self.source}: MSS products have no thermal band")
        return code

    @property
    def processing_level(self) -> str:
        """Product type as written (``L1TP``, ``L1GT``, ``L1GS``, ``L2SP``, ``L1T`` ...)."""
        value = self.get("PROCESSING_LEVEL", PRODUCT_GROUPS) or self.get(
            "DATA_TYPE", PRODUCT_GROUPS
        )
        if not value:
            raise MetadataError(f"{self.source}: MTL has neither PROCESSING_LEVEL nor DATA_TYPE")
        return value.upper()

    @property
    def level(self) -> str:
        """``"L2"`` for Level-2 products, ``"L1"`` otherwise."""
        return "L2" if self.processing_level.startswith("L2") else "L1"

    @property
    def collection(self) -> str:
        """``"02"``, ``"01"`` or ``"pre"`` (pre-collection)."""
        value = self.get("COLLECTION_NUMBER", PRODUCT_GROUPS)
        if value is None:
            return "pre"
        return f"{int(float(value)):02d}"

    @property
    def acquired(self) -> datetime:
        """Scene centre time, timezone-aware UTC (DATE_ACQUIRED + SCENE_CENTER_TIME)."""
        date = self.require("DATE_ACQUIRED", IMAGE_GROUPS)
        time = self.get("SCENE_CENTER_TIME", IMAGE_GROUPS) or "00:00:00"
        return parse_acquired(date, time, self.source)

    @property
    def wrs_path(self) -> int:
        """WRS-2 path."""
        return int(float(self.require("WRS_PATH", IMAGE_GROUPS)))

    @property
    def wrs_row(self) -> int:
        """WRS-2 row."""
        return int(float(self.require("WRS_ROW", IMAGE_GROUPS)))

    @property
    def cloud_cover(self) -> float | None:
        """Scene cloud cover, percent (None if unknown; USGS writes -1 for "not computed")."""
        value = self.number("CLOUD_COVER", IMAGE_GROUPS)
        return None if value is None or value < 0 else value

    @property
    def sun_elevation(self) -> float | None:
        """Sun elevation at scene centre, degrees."""
        return self.number("SUN_ELEVATION", IMAGE_GROUPS)

    @property
    def sun_azimuth(self) -> float | None:
        """Sun azimuth at scene centre, degrees."""
        return self.number("SUN_AZIMUTH", IMAGE_GROUPS)

    @property
    def day(self) -> bool:
        """False for night acquisitions (a day/night flag saying NIGHT, or the sun below the horizon)."""
        for values in self.groups.values():
            for key, value in values.items():
                if "DAY_NIGHT" in key and value.strip().upper() == "NIGHT":
                    return False
        elevation = self.sun_elevation
        return not (elevation is not None and elevation < 0)

    def file_name(self, key: str) -> str | None:
        """``FILE_NAME_<key>`` of this product (never of the Level-1 record inside a Level-2 MTL)."""
        return self.get(f"FILE_NAME_{key}", PRODUCT_GROUPS)

    # -------------------------------------------------------------- radiometry
    def thermal_constants(self, band: str) -> bands.ThermalConstants:
        """Level-1 radiance rescaling and K1/K2 of a thermal band (``B10``, ``B11``, ``B6``, ``B6_VCID_1``).

        Raises
        ------
        MetadataError
            When any of RADIANCE_MULT, RADIANCE_ADD, K1 or K2 is missing for the band.
        """
        suffix = band_key(band)
        values: dict[str, float] = {}
        for name, groups in (
            ("RADIANCE_MULT", RESCALING_GROUPS),
            ("RADIANCE_ADD", RESCALING_GROUPS),
            ("K1_CONSTANT", THERMAL_CONSTANT_GROUPS),
            ("K2_CONSTANT", THERMAL_CONSTANT_GROUPS),
        ):
            value = self.number(f"{name}_BAND_{suffix}", groups)
            if value is None:
                raise MetadataError(
                    f"{self.source}: MTL lacks the thermal constant {name}_BAND_{suffix}"
                )
            values[name] = value
        if (
            values["RADIANCE_MULT"] == 0.0
            or values["K1_CONSTANT"] <= 0
            or values["K2_CONSTANT"] <= 0
        ):
            raise MetadataError(
                f"{self.source}: MTL thermal constants of band {suffix} are unusable "
                f"(RADIANCE_MULT_BAND_{suffix} = {values['RADIANCE_MULT']}, "
                f"K1 = {values['K1_CONSTANT']}, K2 = {values['K2_CONSTANT']})"
            )
        sensor = self.sensor
        nominal = bands.NOMINAL_THERMAL.get(sensor)
        dn_max = self.number(f"QUANTIZE_CAL_MAX_BAND_{suffix}", PIXEL_VALUE_GROUPS)
        return bands.ThermalConstants(
            sensor=sensor,
            band=band,
            radiance_mult=values["RADIANCE_MULT"],
            radiance_add=values["RADIANCE_ADD"],
            k1=values["K1_CONSTANT"],
            k2=values["K2_CONSTANT"],
            dn_max=int(dn_max) if dn_max is not None else (nominal.dn_max if nominal else 65535),
            native_resolution_m=nominal.native_resolution_m if nominal else float("nan"),
        )

    def st_scaling(self, band: str) -> L2Scaling:
        """Level-2 surface temperature scaling of ``band`` (``ST_B10`` / ``ST_B6``).

        The MTL's TEMPERATURE_MULT/ADD_BAND_ST_* are used when present, the published
        constants (0.00341802, 149.0) otherwise [3]_.
        """
        mult = self.number(f"TEMPERATURE_MULT_BAND_{band}", ST_GROUPS)
        add = self.number(f"TEMPERATURE_ADD_BAND_{band}", ST_GROUPS)
        if mult is None or add is None:
            logger.info(
                "%s: no TEMPERATURE_MULT/ADD for %s, using 0.00341802 / 149.0", self.source, band
            )
            return L2Scaling(band, bands.ST_MULT_K, bands.ST_ADD_K)
        return L2Scaling(band, mult, add)

    # -------------------------------------------------------------- projection
    @property
    def utm_zone(self) -> int | None:
        """UTM zone of the product grid (None for polar stereographic products)."""
        value = self.number("UTM_ZONE", PROJECTION_GROUPS)
        return int(value) if value is not None else None

    def corner_extent_m(self) -> tuple[float, float, float, float] | None:
        """Projected extent of the full scene's pixel centres (xmin, ymin, xmax, ymax), metres."""
        xs, ys = [], []
        for corner in ("UL", "UR", "LL", "LR"):
            x = self.number(
                f"CORNER_{corner}_PROJECTION_X_PRODUCT", IMAGE_GROUPS + PROJECTION_GROUPS
            )
            y = self.number(
                f"CORNER_{corner}_PROJECTION_Y_PRODUCT", IMAGE_GROUPS + PROJECTION_GROUPS
            )
            if x is None or y is None:
                return None
            xs.append(x)
            ys.append(y)
        return min(xs), min(ys), max(xs), max(ys)


# ---------------------------------------------------------------------- helpers
def band_key(band: str) -> str:
    """MTL key suffix of a Level-1 band name: ``"B10"`` -> ``"10"``, ``"B6_VCID_1"`` -> ``"6_VCID_1"``."""
    return band[1:] if band.upper().startswith("B") else band


def parse_acquired(date: str, time: str, source: str = "MTL") -> datetime:
    """Combine DATE_ACQUIRED and SCENE_CENTER_TIME into a UTC datetime.

    SCENE_CENTER_TIME carries 7 fractional digits (``"02:10:31.1234567Z"``); Python keeps
    microseconds, so the fraction is truncated to 6 digits.
    """
    text = time.strip().strip('"').rstrip("Zz")
    match = re.fullmatch(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?", text)
    if match is None:
        raise MetadataError(f"{source}: SCENE_CENTER_TIME {time!r} is not HH:MM:SS[.f]")
    hh, mm, ss, frac = match.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        day = datetime.strptime(date.strip().strip('"'), "%Y-%m-%d")
    except ValueError as exc:
        raise MetadataError(f"{source}: DATE_ACQUIRED {date!r} is not YYYY-MM-DD") from exc
    return day.replace(
        hour=int(hh), minute=int(mm), second=int(ss), microsecond=micro, tzinfo=timezone.utc
    )


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse_odl(text: str, source: str) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped == "END":
            continue
        match = _ODL_LINE.match(stripped)
        if match is None:
            raise MetadataError(
                f"{source}: line {number} is not 'KEY = value' ODL: {stripped[:60]!r}"
            )
        key, value = match.group(1).upper(), _unquote(match.group(2))
        if key == "GROUP":
            stack.append(value)
            groups.setdefault(value, {})
        elif key == "END_GROUP":
            if not stack:
                raise MetadataError(f"{source}: line {number}: END_GROUP without GROUP")
            stack.pop()
        else:
            groups.setdefault(stack[-1] if stack else "", {})[key] = value
    return groups


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "Y" if value else "N"
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _parse_json(text: str, source: str) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetadataError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise MetadataError(f"{source}: JSON MTL is not an object")
    groups: dict[str, dict[str, str]] = {}

    def walk(name: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(key, value)
            else:
                groups.setdefault(name, {})[key.upper()] = _stringify(value)

    walk("", data)
    return groups


def _parse_xml(text: str, source: str) -> dict[str, dict[str, str]]:
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise MetadataError(f"{source}: XML MTL with a DOCTYPE/ENTITY declaration is refused")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise MetadataError(f"{source}: not valid XML ({exc})") from exc
    groups: dict[str, dict[str, str]] = {}

    def walk(name: str, node: ET.Element) -> None:
        for child in node:
            tag = child.tag.split("}")[-1]
            if len(child):
                walk(tag, child)
            else:
                groups.setdefault(name, {})[tag.upper()] = (child.text or "").strip()

    walk(root.tag.split("}")[-1], root)
    return groups


def parse_mtl(text: str | bytes, source: str = "MTL") -> MTL:
    """Parse the text of an MTL in any of its three forms (detected from the content).

    Parameters
    ----------
    text : str or bytes
        Content of an ODL ``.txt``, ``.json`` or ``.xml`` MTL.
    source : str
        Name used in error messages (the file path).

    Raises
    ------
    MetadataError
        When the content is none of the three forms or is not a Landsat MTL.
    """
    if isinstance(text, bytes):
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            decoded = text.decode("latin-1")
    else:
        decoded = text
    stripped = decoded.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{"):
        form, groups = "json", _parse_json(stripped, source)
    elif stripped.startswith("<"):
        form, groups = "xml", _parse_xml(stripped, source)
    elif stripped.upper().startswith("GROUP"):
        form, groups = "txt", _parse_odl(stripped, source)
    else:
        raise MetadataError(f"{source}: not a Landsat MTL (neither ODL, JSON nor XML)")
    if not any(name in groups for name in (*PRODUCT_GROUPS, "IMAGE_ATTRIBUTES")):
        raise MetadataError(f"{source}: not a Landsat MTL (no {' / '.join(ROOT_GROUPS)} group)")
    return MTL(groups=groups, source=source, form=form)


def read_mtl(path: str | Path) -> MTL:
    """Read and parse an MTL file (``*_MTL.txt``, ``*_MTL.json`` or ``*_MTL.xml``).

    Raises
    ------
    MetadataError
        When the file cannot be read or parsed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read MTL ({exc.strerror or exc})") from exc
    return parse_mtl(data, str(path))


def is_mtl_name(name: str) -> bool:
    """True when a file name looks like a Landsat MTL (``*_MTL.txt|json|xml``, any case)."""
    lower = name.lower()
    return any(lower.endswith(suffix.lower()) for suffix in MTL_SUFFIXES)


def mtl_product_id(name: str) -> str:
    """Product id prefix of an MTL file name (``X_MTL.txt`` -> ``X``)."""
    base = name.rsplit("/", 1)[-1]
    return base[: base.upper().rfind("_MTL.")]
