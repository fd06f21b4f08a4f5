"""Collection 2 quality bands: QA_PIXEL bit decoding, QA_RADSAT saturation, ST_QA uncertainty.

QA_PIXEL (uint16, identical in Level-1 and Level-2 products of Landsat 4-9) [1]_ [2]_:

=====  ===================  ==========================================================
bit    flag                 meaning when set
=====  ===================  ==========================================================
0      fill                 no image data
1      dilated cloud        within the dilation buffer around cloud
2      cirrus               high-confidence cirrus (Landsat 8/9 only; 0 for 4-7)
3      cloud                high-confidence cloud
4      cloud shadow         high-confidence cloud shadow
5      snow                 high-confidence snow / ice
6      clear                none of cloud and dilated cloud is set
7      water                water
8-9    cloud confidence     0 none, 1 low, 2 medium, 3 high
10-11  shadow confidence    0 none, 1 low, 3 high (2 reserved)
12-13  snow/ice confidence  0 none, 1 low, 3 high (2 reserved)
14-15  cirrus confidence    0 none, 1 low, 3 high (2 reserved; Landsat 8/9 only)
=====  ===================  ==========================================================

Examples: 21824 = clear (all confidences low); 22280 = cloud, high confidence; 1 = fill.

QA_RADSAT (uint16) flags saturation per band [1]_ [3]_. Landsat 8/9: bits 0-6 bands 1-7, bit 8 band 9,
bit 11 terrain occlusion; the TIRS bands 10 and 11 have *no* bit. Landsat 4-7: bits 0-6 bands 1-7
(bit 5 is band 6 for TM and band 6L, low gain, i.e. B6_VCID_1, for ETM+), bit 8 ETM+ band 6H (high gain,
B6_VCID_2), bit 9 dropped pixel (detector without a value).

ST_QA (int16, Level-2 only) is the 1-sigma uncertainty of the surface temperature in 0.01 K, fill
-9999 [2]_.

References
----------
.. [1] USGS, "Landsat 8-9 OLI/TIRS Collection 2 Level 1 Data Format Control Book", LSDS-1822,
   tables "Pixel Quality Assessment (QA_PIXEL) Bit Index" and "Radiometric Saturation QA".
.. [2] USGS, "Landsat 8-9 Collection 2 Level 2 Science Product Guide", LSDS-1619, section 6.
.. [3] USGS, "Landsat 7 ETM+ Collection 2 Level 1 Data Format Control Book", LSDS-1414.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from kaesong_thermal.landsat import bands

# QA_PIXEL single-bit flags
FILL: Final = 0
DILATED_CLOUD: Final = 1
CIRRUS: Final = 2
CLOUD: Final = 3
CLOUD_SHADOW: Final = 4
SNOW: Final = 5
CLEAR: Final = 6
WATER: Final = 7
# QA_PIXEL two-bit confidence fields: name -> first bit
CONFIDENCE_FIELDS: Final = {"cloud": 8, "cloud_shadow": 10, "snow_ice": 12, "cirrus": 14}

#: Bits of QA_PIXEL that make a pixel unusable for temperature (cloud in all its forms, shadow).
CLOUD_BITS_MASK: Final = (1 << DILATED_CLOUD) | (1 << CIRRUS) | (1 << CLOUD) | (1 << CLOUD_SHADOW)
#: The fill bit.
FILL_MASK: Final = 1 << FILL
#: The snow bit (masked only on request).
SNOW_MASK: Final = 1 << SNOW

#: QA_PIXEL value that marks pixels outside the product (fill).
QA_PIXEL_OUTSIDE: Final = FILL_MASK

# QA_RADSAT bits of the thermal bands, per (sensor, band). Absent -> not flagged in QA_RADSAT.
_RADSAT_BITS: Final[dict[tuple[str, str], int]] = {
    ("LT04", "B6"): 5,
    ("LT05", "B6"): 5,
    ("LE07", "B6_VCID_1"): 5,
    ("LE07", "B6_VCID_2"): 8,
    ("LT04", "ST_B6"): 5,
    ("LT05", "ST_B6"): 5,
    ("LE07", "ST_B6"): 5,
}
#: Landsat 4-7 dropped-pixel bit of QA_RADSAT.
DROPPED_PIXEL_BIT: Final = 9

UInt16Array = npt.NDArray[np.uint16]
BoolArray = npt.NDArray[np.bool_]


def bit(qa: npt.ArrayLike, index: int) -> BoolArray:
    """True where bit ``index`` of ``qa`` is set."""
    shifted = np.asarray(qa).astype(np.uint16, copy=False) >> np.uint16(index)
    return (shifted & np.uint16(1)) == 1


def confidence(qa: npt.ArrayLike, name: str) -> npt.NDArray[np.uint8]:
    """Two-bit confidence (0 none, 1 low, 2 medium, 3 high) of ``cloud``, ``cloud_shadow``,
    ``snow_ice`` or ``cirrus``."""
    first = CONFIDENCE_FIELDS[name]
    value = (np.asarray(qa).astype(np.uint16, copy=False) >> np.uint16(first)) & np.uint16(3)
    return value.astype(np.uint8)


def fill_mask(qa: npt.ArrayLike) -> BoolArray:
    """True on fill pixels (bit 0)."""
    return bit(qa, FILL)


def cloud_mask(qa: npt.ArrayLike) -> BoolArray:
    """True where cloud, dilated cloud, cirrus or cloud shadow is flagged (bits 1-4)."""
    return (np.asarray(qa).astype(np.uint16, copy=False) & np.uint16(CLOUD_BITS_MASK)) != 0


def snow_mask(qa: npt.ArrayLike) -> BoolArray:
    """True where snow / ice is flagged (bit 5)."""
    return bit(qa, SNOW)


def invalid_mask(qa: npt.ArrayLike, *, mask_snow: bool = False) -> BoolArray:
    """True where a pixel is fill, cloud, dilated cloud, cirrus or cloud shadow (and snow if asked)."""
    bits = FILL_MASK | CLOUD_BITS_MASK | (SNOW_MASK if mask_snow else 0)
    return (np.asarray(qa).astype(np.uint16, copy=False) & np.uint16(bits)) != 0


def radsat_bit(sensor: str, band: str) -> int | None:
    """QA_RADSAT bit of a thermal band, None when the band has no saturation bit (Landsat 8/9 TIRS)."""
    return _RADSAT_BITS.get((sensor, band))


def saturated_mask(radsat: npt.ArrayLike, sensor: str, band: str) -> BoolArray:
    """True where QA_RADSAT flags the thermal ``band`` of ``sensor`` as saturated or, for Landsat 4-7,
    the pixel as dropped."""
    values = np.asarray(radsat).astype(np.uint16, copy=False)
    bits = 0
    index = radsat_bit(sensor, band)
    if index is not None:
        bits |= 1 << index
    if sensor in ("LT04", "LT05", "LE07"):
        bits |= 1 << DROPPED_PIXEL_BIT
    if bits == 0:
        return np.zeros(values.shape, dtype=bool)
    return (values & np.uint16(bits)) != 0


def sigma_k(st_qa: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """ST_QA to 1-sigma surface temperature uncertainty in kelvin (NaN where fill -9999)."""
    raw = np.asarray(st_qa)
    out = raw.astype(np.float32) * np.float32(bands.ST_QA_MULT_K)
    out[raw == bands.ST_QA_FILL] = np.nan
    return out


def describe(value: int) -> dict[str, int | bool]:
    """Decode one QA_PIXEL value into named flags and confidences (for reports and debugging)."""
    out: dict[str, int | bool] = {
        name: bool((value >> index) & 1)
        for name, index in (
            ("fill", FILL),
            ("dilated_cloud", DILATED_CLOUD),
            ("cirrus", CIRRUS),
            ("cloud", CLOUD),
            ("cloud_shadow", CLOUD_SHADOW),
            ("snow", SNOW),
            ("clear", CLEAR),
            ("water", WATER),
        )
    }
    for name, first in CONFIDENCE_FIELDS.items():
        out[f"{name}_confidence"] = (value >> first) & 3
    return out
