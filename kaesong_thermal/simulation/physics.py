"""Physical models of the simulator: sun, climate, surface temperature, sensor, atmosphere.

Every function is pure (arrays and numbers in, arrays out) and deterministic given its
``numpy.random.Generator``. Temperatures are in kelvin unless a name says ``_c``.

References
----------
.. [1] NOAA Global Monitoring Laboratory, "General Solar Position Calculations"
   (after Spencer, J. W., 1971, "Fourier series representation of the position of the sun",
   Search 2(5):172).
.. [2] Deutscher Wetterdienst / WMO, climate normals 1961-1990 for Kaesong (station 47065),
   monthly mean air temperature; the same figures appear in the Kaesong climate table of the
   encyclopaedias (about -6 C in January, 25 C in August).
.. [3] Reuter, D. C. et al. (2015), "The Thermal Infrared Sensor (TIRS) on Landsat 8: design
   overview and pre-launch characterization", Remote Sensing 7(1):1135-1153 (100 m native
   ground sampling, NEdT about 0.05 K at 300 K).
.. [4] USGS, "Landsat 8-9 OLI/TIRS Collection 2 Level 1 Data Format Control Book", LSDS-1822
   (thermal bands resampled to 30 m by cubic convolution; radiance = ML * DN + AL;
   BT = K2 / ln(K1 / L + 1)).
.. [5] Keys, R. (1981), "Cubic convolution interpolation for digital image processing",
   IEEE Trans. Acoustics, Speech and Signal Processing 29(6):1153-1160.
.. [6] Barsi, J. A., Schott, J. R. et al. (2005), "Validation of a web-based atmospheric
   correction tool for single thermal band instruments", Proc. SPIE 5882 (at-sensor radiance
   L = tau * eps * B(Ts) + tau * (1 - eps) * L_down + L_up; mid-latitude summer tau about 0.6-0.75,
   L_up 1.5-3 W m-2 sr-1 um-1; winter tau about 0.9).
.. [7] Oke, T. R. et al. (2017), "Urban Climates", Cambridge University Press, ch. 6-7
   (daytime surface temperature excess of roofs, roads and paved ground over vegetation,
   roughly proportional to absorbed solar radiation).
.. [8] Cook, M. et al. (2014), "Development of an operational calibration methodology for the
   Landsat thermal data archive and initial testing of the atmospheric compensation component
   of a Land Surface Temperature (LST) product from the archive", Remote Sensing 6:11244-11266
   (Landsat surface temperature errors of about 1-2 K, larger in humid atmospheres).
.. [9] Hulley, G. C. et al. (2015), "The ASTER Global Emissivity Dataset (ASTER GED): mapping
   Earth's emissivity at 100 meter spatial scale", Geophysical Research Letters 42:7966-7976;
   USGS, "Landsat 8-9 Collection 2 Level 2 Science Product Guide", LSDS-1619 (the Level-2
   surface temperature inverts the at-sensor radiance with ASTER GED emissivity at 100 m).
.. [10] Salisbury, J. W. and D'Aria, D. M. (1992), "Emissivity of terrestrial materials in the
   8-14 um atmospheric window", Remote Sensing of Environment 42:83-106 (construction materials
   and paints near 0.9-0.97; bare and weathered metal surfaces far lower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
from numpy.typing import NDArray

#: Kaesong complex centre (degrees) [2]_.
KAESONG_LAT_DEG = 37.933
KAESONG_LON_DEG = 126.633

#: Monthly mean air temperature normals of Kaesong, degrees C, January..December [2]_.
KAESONG_MONTHLY_AIR_C: tuple[float, ...] = (
    -5.9,
    -3.0,
    2.6,
    9.6,
    15.6,
    20.4,
    23.9,
    24.9,
    19.9,
    12.8,
    5.2,
    -2.3,
)
#: Late-morning (about 11:10 local) air temperature above the daily mean, K, by month.
LATE_MORNING_EXCESS_K: tuple[float, ...] = (
    2.0,
    2.4,
    2.8,
    3.0,
    3.0,
    2.5,
    1.8,
    2.0,
    2.5,
    3.0,
    2.6,
    2.1,
)

# Land-cover classes of the background map.
FIELD, URBAN, ROAD, WATER, FOREST, PAVED, ROOF, RUBBLE = range(8)
CLASS_NAMES: tuple[str, ...] = (
    "field",
    "urban",
    "road",
    "water",
    "forest",
    "paved",
    "roof",
    "rubble",
)
#: Solar heating of the surface above air, K per unit sin(sun elevation), by class [7]_.
CLASS_SOLAR_GAIN_K: tuple[float, ...] = (8.0, 11.0, 15.0, 0.0, 4.0, 16.0, 0.0, 12.0)
#: Offset from air temperature independent of the sun, K, by class (water handled apart).
CLASS_OFFSET_K: tuple[float, ...] = (0.0, 1.0, 0.5, 0.0, -1.0, 0.5, 0.0, 0.3)
#: Broadband thermal emissivity by class (used only for the Level-1 at-sensor radiance).
CLASS_EMISSIVITY: tuple[float, ...] = (0.975, 0.965, 0.955, 0.99, 0.985, 0.96, 0.96, 0.955)

#: Roof types: solar gain K per unit sin(sun elevation), and emissivity.
ROOF_TYPES: dict[str, tuple[float, float]] = {
    "light-metal": (11.5, 0.93),
    "concrete": (13.0, 0.95),
    "dark-bitumen": (20.0, 0.96),
}


@dataclass(frozen=True)
class SunPosition:
    """Sun elevation and azimuth in degrees (azimuth clockwise from north)."""

    elevation_deg: float
    azimuth_deg: float


def sun_position(
    when: datetime, lat_deg: float = KAESONG_LAT_DEG, lon_deg: float = KAESONG_LON_DEG
) -> SunPosition:
    """Sun elevation and azimuth from the NOAA Fourier-series solar position equations [1]_.

    Parameters
    ----------
    when
        Instant (naive values are taken as UTC).
    lat_deg, lon_deg
        Observer latitude and longitude in degrees.

    Returns
    -------
    SunPosition
        Elevation above the horizon and azimuth clockwise from north, degrees (about 0.1 degree
        accuracy, ample for a heating model and the MTL).
    """
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    gamma = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqtime_min = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    true_solar_min = hour * 60 + eqtime_min + 4 * lon_deg
    hour_angle = math.radians(true_solar_min / 4 - 180)
    lat = math.radians(lat_deg)
    cos_zen = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    cos_zen = min(1.0, max(-1.0, cos_zen))
    zen = math.acos(cos_zen)
    # azimuth clockwise from north
    az = math.degrees(
        math.atan2(
            math.sin(hour_angle),
            math.cos(hour_angle) * math.sin(lat) - math.tan(decl) * math.cos(lat),
        )
    )
    return SunPosition(90.0 - math.degrees(zen), (az + 180.0) % 360.0)


def climatological_air_k(day: date) -> float:
    """Late-morning climatological air temperature at Kaesong on ``day``, K.

    Monthly normals [2]_ are placed at mid-month and interpolated linearly (cyclic), then the
    late-morning excess over the daily mean is added (Landsat passes about 11:10 local).
    """
    doy = day.timetuple().tm_yday
    mids = np.array([15.5 + 30.44 * m for m in range(12)])
    vals = np.array(KAESONG_MONTHLY_AIR_C) + np.array(LATE_MORNING_EXCESS_K)
    x = np.concatenate([mids - 365.25, mids, mids + 365.25])
    y = np.concatenate([vals, vals, vals])
    return float(np.interp(doy, x, y)) + 273.15


def water_offset_k(day: date) -> float:
    """Water surface minus air temperature, K: lagging water is cooler in spring-summer late
    mornings and warmer in autumn-winter (ice near 0 C takes over in the coldest weeks)."""
    doy = day.timetuple().tm_yday
    return float(-4.0 * math.cos(2 * math.pi * (doy - 300) / 365.25))


def surface_temperature_k(
    landcover: NDArray[np.uint8],
    air_k: float,
    sin_elev: float,
    water_off_k: float,
    variation_k: NDArray[np.float32],
) -> NDArray[np.float32]:
    """Background surface temperature per class: air + offset + solar gain * sin(elevation).

    Parameters
    ----------
    landcover
        Class codes (FIELD, URBAN, ROAD, WATER, FOREST, PAVED, ROOF, RUBBLE).
    air_k
        Late-morning air temperature of the day, K.
    sin_elev
        Sine of the sun elevation (clear-sky insolation proxy) [1]_.
    water_off_k
        Water minus air temperature of the day, K (see :func:`water_offset_k`).
    variation_k
        Spatially correlated variation (soil moisture, shading), K, same shape.

    Returns
    -------
    numpy.ndarray
        float32 surface temperature, K. ROOF pixels get the field value here; roofs are
        painted on top by the caller with their own roof type. Water never drops below 272.5 K
        (ice) [7]_.
    """
    s = max(0.0, sin_elev)
    lut = np.array(CLASS_OFFSET_K, np.float32) + s * np.array(CLASS_SOLAR_GAIN_K, np.float32)
    lut[WATER] = water_off_k
    lut[ROOF] = lut[FIELD]
    t = (air_k + lut[landcover]).astype(np.float32) + variation_k
    water = landcover == WATER
    if water.any():
        t[water] = np.maximum(t[water], 272.5)
    return t


def planck_radiance(t_k: NDArray[np.floating] | float, k1: float, k2: float) -> NDArray[np.float64]:
    """Band radiance of a blackbody, W m-2 sr-1 um-1, from the band's K1/K2 constants [4]_.

    ``L = K1 / (exp(K2 / T) - 1)``, the exact inverse of ``T = K2 / ln(K1 / L + 1)``.
    """
    return k1 / np.expm1(k2 / np.asarray(t_k, np.float64))


def brightness_temperature_k(
    radiance: NDArray[np.floating], k1: float, k2: float
) -> NDArray[np.float64]:
    """Brightness temperature, K, from band radiance: ``BT = K2 / ln(K1 / L + 1)`` [4]_."""
    return k2 / np.log(k1 / np.asarray(radiance, np.float64) + 1.0)


@dataclass(frozen=True)
class Atmosphere:
    """Thermal-band atmosphere of one scene [6]_.

    Attributes
    ----------
    transmittance
        Band-effective transmittance tau (0-1).
    upwelling
        Path radiance L_up, W m-2 sr-1 um-1.
    downwelling
        Sky radiance L_down, W m-2 sr-1 um-1.
    st_error_k
        Scene-wide error of the Level-2 surface temperature retrieval, K [8]_.
    """

    transmittance: float
    upwelling: float
    downwelling: float
    st_error_k: float


def seasonal_atmosphere(day: date, rng: np.random.Generator) -> Atmosphere:
    """Draw a scene atmosphere from a humid-summer / dry-winter cycle [6]_ [8]_.

    Water vapour peaks in late July (monsoon): tau about 0.62 and L_up about 2.8 in summer,
    tau about 0.92 and L_up about 0.45 in winter, with day-to-day scatter. The Level-2
    retrieval error grows with humidity (sd 0.4 K in winter, 1.1 K in summer).
    """
    doy = day.timetuple().tm_yday
    humid = 0.5 * (1 + math.cos(2 * math.pi * (doy - 205) / 365.25))  # 1 late July, 0 January
    humid = float(np.clip(humid + rng.normal(0, 0.12), 0.0, 1.15))
    tau = 0.93 - 0.31 * humid
    l_up = 0.40 + 2.4 * humid
    l_down = 0.70 + 3.9 * humid
    err = float(rng.normal(0.0, 0.4 + 0.7 * humid))
    return Atmosphere(tau, l_up, l_down, err)


def at_sensor_radiance(
    surface_k: NDArray[np.floating],
    emissivity: NDArray[np.floating] | float,
    atm: Atmosphere,
    k1: float,
    k2: float,
) -> NDArray[np.float64]:
    """Top-of-atmosphere band radiance over a surface [6]_.

    ``L = tau * eps * B(Ts) + tau * (1 - eps) * L_down + L_up`` with ``B`` from the band's
    K1/K2 (:func:`planck_radiance`).
    """
    eps = np.asarray(emissivity, np.float64)
    return (
        atm.transmittance * eps * planck_radiance(surface_k, k1, k2)
        + atm.transmittance * (1 - eps) * atm.downwelling
        + atm.upwelling
    )


def retrieved_surface_k(
    surface_k: NDArray[np.floating],
    emissivity: NDArray[np.floating] | float,
    assumed_emissivity: NDArray[np.floating] | float,
    atm: Atmosphere,
    k1: float,
    k2: float,
) -> NDArray[np.float64]:
    """Surface temperature a single-channel retrieval gives with an assumed emissivity [6]_ [9]_.

    The at-sensor radiance of the true surface (:func:`at_sensor_radiance`) is inverted with
    the scene's atmosphere and the emissivity the retrieval assumes,
    ``B(T) = ((L - L_up) / tau - (1 - eps_a) L_down) / eps_a``. Where ``eps_a`` equals the
    true emissivity this returns ``surface_k``; a roof darker in the thermal band than its
    100 m surroundings (``eps < eps_a``) reads colder by about
    ``(eps_a - eps) (B(T) - L_down) / (eps_a dB/dT)``, which changes with the atmosphere and
    the season.
    """
    rad = at_sensor_radiance(surface_k, emissivity, atm, k1, k2)
    eps_a = np.asarray(assumed_emissivity, np.float64)
    b = ((rad - atm.upwelling) / atm.transmittance - (1 - eps_a) * atm.downwelling) / eps_a
    return brightness_temperature_k(np.maximum(b, 1e-6), k1, k2)


def psf_kernel_1d(native_m: float, fine_m: float, optical_sigma_m: float = 20.0) -> NDArray:
    """One-dimensional thermal point-spread function sampled on the fine grid [3]_.

    The detector integrates over its native ground footprint (a box ``native_m`` wide: 100 m
    for TIRS, 60 m ETM+, 120 m TM) blurred by the optics (a Gaussian of ``optical_sigma_m``).
    The 2-D PSF is the outer product of this kernel with itself (separable). Weights sum to 1.
    """
    half = math.ceil((native_m / 2 + 3 * optical_sigma_m) / fine_m)
    x = np.arange(-half, half + 1) * fine_m
    # box of width native_m convolved with a Gaussian: difference of error functions
    from scipy.special import erf

    s = optical_sigma_m * math.sqrt(2)
    k = erf((x + native_m / 2) / s) - erf((x - native_m / 2) / s)
    return (k / k.sum()).astype(np.float64)


def cubic_convolution_weights(u: NDArray[np.floating], a: float = -0.5) -> NDArray[np.float64]:
    """Keys cubic-convolution kernel with ``a = -0.5`` evaluated at offsets ``u`` (samples) [5]_."""
    x = np.abs(np.asarray(u, np.float64))
    w = np.zeros_like(x)
    m1 = x <= 1
    m2 = (x > 1) & (x < 2)
    w[m1] = (a + 2) * x[m1] ** 3 - (a + 3) * x[m1] ** 2 + 1
    w[m2] = a * x[m2] ** 3 - 5 * a * x[m2] ** 2 + 8 * a * x[m2] - 4 * a
    return w


def psf_sampling_matrix(
    n_fine: int, native_positions: NDArray[np.floating], kernel: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Matrix taking a fine-grid profile to PSF-weighted native samples.

    Row ``i`` holds the PSF kernel centred on fine index ``round(native_positions[i])``; the
    2-D native samples of an image ``F`` are ``A @ F @ B.T`` (the PSF is separable) [3]_.
    """
    half = (len(kernel) - 1) // 2
    m = np.zeros((len(native_positions), n_fine))
    for i, p in enumerate(np.rint(native_positions).astype(int)):
        lo, hi = p - half, p + half + 1
        klo, khi = max(0, -lo), len(kernel) - max(0, hi - n_fine)
        m[i, max(lo, 0) : min(hi, n_fine)] = kernel[klo:khi]
    return m


def cubic_resampling_matrix(
    out_positions: NDArray[np.floating], native_positions: NDArray[np.floating], spacing: float
) -> NDArray[np.float64]:
    """Matrix resampling native samples to output positions by cubic convolution [4]_ [5]_.

    Positions are in any common unit; ``spacing`` is the native sample spacing in that unit.
    Rows are normalised to sum to one (flat fields stay flat at the edges).
    """
    u = (out_positions[:, None] - native_positions[None, :]) / spacing
    w = cubic_convolution_weights(u)
    return w / w.sum(axis=1, keepdims=True)


def cubic_taps(
    out_positions: NDArray[np.floating], first: float, spacing: float, n: int
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Four-tap cubic-convolution indices and weights onto a regular native lattice [5]_.

    The native samples sit at ``first + k * spacing`` (k = 0..n-1). Returns ``(index, weight)``
    of shape ``(len(out_positions), 4)``; indices are clamped to the lattice (edge samples
    repeat) and weights sum to one. Equivalent to :func:`cubic_resampling_matrix` but needs no
    dense matrix product.
    """
    x = (np.asarray(out_positions, np.float64) - first) / spacing
    j = np.floor(x).astype(np.intp)
    k = j[:, None] + np.arange(-1, 3)[None, :]
    w = cubic_convolution_weights(x[:, None] - k)
    w /= w.sum(axis=1, keepdims=True)
    return np.clip(k, 0, n - 1), w


def apply_taps(
    samples: NDArray[np.floating],
    rows: tuple[NDArray[np.intp], NDArray[np.float64]],
    cols: tuple[NDArray[np.intp], NDArray[np.float64]],
) -> NDArray[np.float64]:
    """Separable resampling of a 2-D array with row and column taps from :func:`cubic_taps`."""
    ri, rw = rows
    ci, cw = cols
    a = np.einsum("rk,rkc->rc", rw, samples[ri])
    return np.einsum("ck,rck->rc", cw, a[:, ci])


def correlated_field(
    shape: tuple[int, int], sigma_px: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``sigma_px``.

    Smooth fields (``sigma_px > 8``) are drawn on a grid coarser by ``sigma_px // 4`` and
    interpolated bilinearly (same statistics, a fraction of the cost).
    """
    from scipy.ndimage import gaussian_filter, zoom

    f_c = int(sigma_px // 4) if sigma_px > 8 else 1
    if f_c > 1:
        cshape = (shape[0] // f_c + 2, shape[1] // f_c + 2)
        c = gaussian_filter(
            rng.standard_normal(cshape).astype(np.float32), sigma_px / f_c, mode="wrap"
        )
        f = zoom(c, f_c, order=1)[: shape[0], : shape[1]]
    else:
        f = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px, mode="wrap")
    sd = float(f.std())
    return (f - f.mean()) / (sd if sd > 0 else 1.0)


def roof_excess_k(base_k: float, air_k: float, duty: float, rng: np.random.Generator) -> float:
    """Roof temperature excess of a working building on one day, K.

    Waste heat through the roof scales with the inside-outside temperature difference: an
    18 C interior against the day's air gives a heating factor (1 at 15 C air, about 1.8 in
    January). ``duty`` (0-1) is the share of the building in use (partial operation); the day
    varies log-normally (sd 25 %).
    """
    heating = 1.0 + max(0.0, (288.15 - air_k)) / 25.0
    return float(base_k * heating * duty * math.exp(rng.normal(0.0, 0.25)))
