"""Landsat thermal sensor constants and product naming.

Nominal Collection 2 values from the USGS Landsat 8-9 and Landsat 4-7 Collection 2 Level-1/Level-2
Data Format Control Books and Science Product Guides. A product's own MTL always wins over these:
they are used by the simulator (to write realistic MTLs) and as documented defaults.

References
----------
.. [1] USGS, "Landsat 8-9 OLI/TIRS Collection 2 Level 1 Data Format Control Book", LSDS-1822.
.. [2] USGS, "Landsat 8-9 Collection 2 Level 2 Science Product Guide", LSDS-1619.
.. [3] USGS, "Landsat 4-7 Collection 2 Level 2 Science Product Guide", LSDS-1618.
.. [4] B. N. Wenny et al., "Pre- and post-launch spatial quality of the Landsat 8 Thermal Infrared
   Sensor", Remote Sens. 7(2), 1962-1980, 2015; R. Eon et al., "Landsat 9 Thermal Infrared
   Sensor-2 (TIRS-2) pre- and post-launch spatial response performance", Remote Sens. 16(6),
   1065, 2024 (TIRS and TIRS-2 edge responses, consistent with each other).
.. [5] B. L. Markham, "The Landsat sensors' spatial responses", IEEE Trans. Geosci. Remote Sens.
   GE-23(6), 864-875, 1985 (TM line spread functions; band 6 sampled at 120 m).
.. [6] USGS, "Landsat 7 (L7) Data Users Handbook", LSDS-1927 (ETM+ band 6 sampled at 60 m,
   delivered at 30 m after cubic-convolution resampling).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Level-2 surface temperature scaling: kelvin = DN * ST_MULT + ST_ADD; DN 0 is fill [2]_.
ST_MULT_K = 0.00341802
ST_ADD_K = 149.0
ST_FILL_DN = 0
#: ST_QA (1-sigma surface temperature uncertainty) scale, K per DN; fill -9999 [2]_.
ST_QA_MULT_K = 0.01
ST_QA_FILL = -9999
#: Default ceiling on the ST_QA 1-sigma surface-temperature uncertainty, kelvin.  ST_QA is a
#: per-pixel uncertainty that grows near cloud and with humidity, and is largely common to a roof
#: and its background ring; it is used as a weight (it enters ``sigma_k``), not as a mask, so the
#: ceiling only removes the pixels no retrieval can be trusted on.  Clear pixels of humid scenes
#: carry 3-7 K (e.g. the real LC08_L2SP_008059_20191201 product: 3.4-6.7 K), which a 2.5 K
#: ceiling would mask entirely (USGS, *Landsat 8-9 Collection 2 Level 2 Science Product Guide*,
#: LSDS-1619, ST_QA); that product's clear pixels reach 13.25 K at most.
DEFAULT_MAX_SIGMA_K = 15.0


@dataclass(frozen=True)
class ThermalConstants:
    """Radiometric constants of one thermal band.

    Radiance L = ML * DN + AL (W m-2 sr-1 um-1); brightness temperature BT = K2 / ln(K1 / L + 1) (K).
    """

    sensor: str
    band: str
    radiance_mult: float
    radiance_add: float
    k1: float
    k2: float
    dn_max: int
    native_resolution_m: float


#: Nominal constants per (sensor code, Level-1 thermal band) [1]_.
NOMINAL_THERMAL: dict[str, ThermalConstants] = {
    "LC08": ThermalConstants("LC08", "B10", 3.3420e-04, 0.1, 774.8853, 1321.0789, 65535, 100.0),
    "LC09": ThermalConstants("LC09", "B10", 3.8000e-04, 0.1, 799.0284, 1329.2405, 65535, 100.0),
    "LE07": ThermalConstants("LE07", "B6_VCID_1", 0.067087, -0.06709, 666.09, 1282.71, 255, 60.0),
    "LT05": ThermalConstants("LT05", "B6", 0.055375, 1.18243, 607.76, 1260.56, 255, 120.0),
    "LT04": ThermalConstants("LT04", "B6", 0.055376, 1.18, 671.62, 1284.30, 255, 120.0),
}

#: Spacecraft names in MTL SPACECRAFT_ID -> sensor code.
SPACECRAFT_TO_SENSOR = {
    "LANDSAT_4": "LT04",
    "LANDSAT_5": "LT05",
    "LANDSAT_7": "LE07",
    "LANDSAT_8": "LC08",
    "LANDSAT_9": "LC09",
}


#: Full width at half maximum of the thermal band's system point spread function (detector
#: footprint, optics and image motion together), in native samples, used by the PSF-aware roof
#: excess estimator (``kaesong_thermal.zonal.psf_kernel``) [4]_ [5]_ [6]_. Every delivered
#: product is resampled from the native lattice to 30 m by cubic convolution, which the estimator
#: adds on top.
THERMAL_PSF_FWHM_NATIVE: dict[str, float] = {
    "LC08": 1.05,
    "LC09": 1.05,
    "LE07": 1.0,
    "LT05": 1.0,
    "LT04": 1.0,
}
