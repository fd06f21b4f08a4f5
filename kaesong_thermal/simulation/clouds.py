"""Clouds, cloud shadows, cirrus and the Collection 2 QA_PIXEL bits of the simulator.

References
----------
.. [1] USGS, "Landsat 8-9 Collection 2 Level 2 Science Product Guide", LSDS-1619, table of
   QA_PIXEL bits: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow, 6 clear,
   7 water; 8-9 cloud, 10-11 shadow, 12-13 snow/ice, 14-15 cirrus confidence (0 none, 1 low,
   2 medium, 3 high). Clear land is 21824, high-confidence cloud 22280.
.. [2] Korea Meteorological Administration, climatological normals 1991-2020 (Seoul and the
   central-western stations): mean total cloud amount about 3.5-4 tenths in winter, 7 tenths in
   July (Changma monsoon), 5-6 in August; Ju, J. and Roy, D. P. (2008), "The availability of
   cloud-free Landsat ETM+ data over the conterminous United States and globally", Remote
   Sensing of Environment 112:1196-1211 (scene cloud cover is U-shaped: many clear and many
   overcast scenes).
.. [3] Foga, S. et al. (2017), "Cloud detection algorithm comparison and validation for
   operational Landsat data products", Remote Sensing of Environment 194:379-390 (CFMask
   dilates clouds by 3 pixels; cloud edges and thin cloud are the main omissions).
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
from numpy.typing import NDArray

#: Mean scene cloud fraction at Kaesong by month, January..December [2]_.
MONTHLY_CLOUD_FRACTION: tuple[float, ...] = (
    0.25,
    0.27,
    0.33,
    0.36,
    0.40,
    0.52,
    0.72,
    0.62,
    0.45,
    0.30,
    0.33,
    0.26,
)

FILL_BIT, DILATED_BIT, CIRRUS_BIT, CLOUD_BIT, SHADOW_BIT, SNOW_BIT, CLEAR_BIT, WATER_BIT = range(8)
CLOUD_CONF_SHIFT, SHADOW_CONF_SHIFT, SNOW_CONF_SHIFT, CIRRUS_CONF_SHIFT = 8, 10, 12, 14
#: QA_PIXEL of a clear land pixel (clear bit and every confidence low) [1]_.
QA_CLEAR_LAND = 21824
#: USGS dilation of CFMask clouds, pixels [3]_.
DILATION_PX = 3


def draw_cloud_fraction(day: date, rng: np.random.Generator) -> float:
    """Scene cloud fraction drawn from a U-shaped Beta around the month's climatology [2]_.

    ``Beta(a, b)`` with mean the monthly value and ``a + b = 1.2`` (many clear and many overcast
    scenes, as the Landsat archive shows); values under 1 % count as clear.
    """
    mean = MONTHLY_CLOUD_FRACTION[day.month - 1]
    conc = 1.2
    f = float(rng.beta(mean * conc, (1 - mean) * conc))
    return 0.0 if f < 0.01 else min(f, 0.995)


def cloud_emissivity(field: NDArray[np.floating], threshold: float, softness: float) -> NDArray:
    """Cloud thermal emissivity from a smooth field: 0 below ``threshold - softness``, 1 above
    ``threshold + softness``, linear between (thin edges are partly transparent) [3]_."""
    return np.clip((field - (threshold - softness)) / (2 * softness), 0.0, 1.0).astype(np.float32)


def compose_qa_pixel(
    *,
    fill: NDArray[np.bool_],
    cloud: NDArray[np.bool_],
    dilated: NDArray[np.bool_],
    shadow: NDArray[np.bool_],
    cirrus: NDArray[np.bool_],
    water: NDArray[np.bool_],
    cirrus_low: NDArray[np.bool_] | None = None,
) -> NDArray[np.uint16]:
    """QA_PIXEL words from boolean masks with Collection 2 bit semantics [1]_.

    Clear (bit 6) means neither cloud nor dilated cloud; shadow, cirrus and water keep it.
    Confidences: high (3) where the flag is set, low (1) elsewhere; fill pixels are exactly 1.
    """
    qa = np.full(cloud.shape, QA_CLEAR_LAND, np.uint32)
    cl_or_dil = cloud | dilated
    qa[cl_or_dil] &= ~np.uint32(1 << CLEAR_BIT)
    qa[dilated & ~cloud] |= np.uint32(1 << DILATED_BIT)
    qa[cloud] |= np.uint32((1 << CLOUD_BIT) | (3 << CLOUD_CONF_SHIFT))
    qa[shadow & ~cloud] |= np.uint32((1 << SHADOW_BIT) | (3 << SHADOW_CONF_SHIFT))
    qa[cirrus] |= np.uint32((1 << CIRRUS_BIT) | (3 << CIRRUS_CONF_SHIFT))
    qa[water & ~cl_or_dil] |= np.uint32(1 << WATER_BIT)
    qa[fill] = 1
    return qa.astype(np.uint16)


def shadow_offset_px(
    cloud_height_m: float, sun_elevation_deg: float, sun_azimuth_deg: float, pixel_m: float = 30.0
) -> tuple[float, float]:
    """(row, col) displacement of a cloud's shadow from the cloud, pixels.

    The shadow lies ``h / tan(elevation)`` away from the sun on the ground: towards
    ``azimuth + 180``; rows grow southwards, columns eastwards.
    """
    dist = cloud_height_m / math.tan(math.radians(max(sun_elevation_deg, 5.0)))
    az = math.radians(sun_azimuth_deg)
    return (dist * math.cos(az) / pixel_m, -dist * math.sin(az) / pixel_m)
