"""From roof-minus-background contrasts to per-building anomalies and robust z-scores.

Pure functions on DataFrames; nothing here opens a file.

The model is an additive, robustly fitted two-way decomposition of the contrast of building
``b`` in scene ``k``::

    contrast_k[b, k] = scene_effect_k[k] + baseline_k[b](day of year) + anomaly_k[b, k] + noise

* ``scene_effect_k`` removes what every roof did that day (sun, season, atmosphere, wind): the
  median, over the *other* buildings believed idle in the scene (leave-one-out), of their contrasts
  centred on their own idle baselines.  A building never contributes to its own scene effect, and
  buildings that currently look active (``z > pool_z_max``) are dropped from the pool, so a
  complex that switches on as a whole does not cancel itself.  The fit alternates scene effects and
  baselines, as Tukey's median polish does for a two-way table [5]_.
* ``baseline_k`` is the building's own idle level: the robust centre (median) of its residuals
  ``contrast_k - scene_effect_k`` over a baseline period known to be idle (Kaesong:
  2016-03-01 to 2022-12-31), plus an annual harmonic in day of year when the baseline holds at
  least ``min_seasonal_scenes`` scenes (roofs and fields respond differently to the sun, so the
  building-specific part of the seasonal cycle remains after the scene effect).  The harmonic is
  fitted by iteratively reweighted least squares with Tukey bisquare weights.
* ``baseline_sigma_k`` is the spread of the idle residuals around that baseline,
  ``1.4826 * MAD`` (consistent with the standard deviation for Gaussian noise [1]_, [2]_), with the
  standard error of the baseline centre (``1.2533 * sigma / sqrt(n)``) added in quadrature and a
  floor ``sigma_floor_k``.
* ``z = anomaly_k / sqrt(baseline_sigma_k**2 + max(sigma_k**2 - s0**2, 0))`` where ``sigma_k`` is the
  observation's own measurement uncertainty and ``s0`` the median ``sigma_k`` of the baseline
  scenes: the baseline spread already contains typical measurement noise, so only the excess
  uncertainty of a hazier-than-usual scene is added in quadrature.  This is the robust z-score of
  Iglewicz and Hoaglin [1]_ applied against a local background, the same construction as the
  background-sigma tests of VIIRS Nightfire [3]_ and the heat-island indices used to follow steel
  plant output with Landsat thermal data [4]_.

Idle-roof regression (``AnomalyParams.idle_regression``, the default).  The fixed model above
assumes every idle roof follows the scene effect one for one, but roofs of different materials
answer the same sun and weather differently, and that day-to-day behaviour of the idle roof
relative to its surroundings, not sensor noise, dominates the residual spread.  So the idle
level of building ``b`` in scene ``k`` is instead::

    residual_k = contrast_k - S_k = c_b + (beta_b - 1) S_k + gamma_b G_k [+ delta_b E_k]
                 + a_b cos(wt) + b_b sin(wt) + noise

with ``S_k`` the scene effect, ``G_k`` the scene's median background temperature minus its
seasonal norm, ``E_k`` the sun-elevation departure when present (:func:`scene_covariates`), fitted
per building on its baseline scenes by ridge regression on standardised covariates [6]_ with
robust IRLS weights (Huber [7]_, then Tukey bisquare [8]_), shrunk towards ``beta = 1`` and no
covariates by ``ridge_scenes`` pseudo-scenes (:func:`fit_idle_regression`).  The spread is the
``1.4826 MAD`` of the fitted residuals inflated by ``sqrt(n / (n - df))`` (``df`` the effective
degrees of freedom), and the prediction error of the fitted level at each scene (its leverage)
is added in quadrature, so an extrapolated day is not over-trusted.  The scene effect itself is
still estimated with the fixed model's centring (its role is "what the other roofs did"), and
where it is the climatology its scatter enters ``z`` scaled by ``|beta_b|``.

``baseline="auto"`` estimates the idle level without a given period, from the lower part of each
building's residual distribution: start at its 25th percentile with a spread from the 5th-25th
percentile distance, then iterate ``median`` / ``1.4826 MAD`` over the residuals within
``+/- auto_clip`` sigma of the current centre (a one-sided seeded sigma clipping).  It assumes the
building is idle in a sizeable share of its record (roughly a third or more); a building that was
active throughout has no idle self to compare with, and no method without a period can find it.

With a period, buildings with fewer than ``min_baseline_scenes`` valid scenes inside it fall back to
``auto``; the column ``baseline_method`` says which applies ("period", "auto", "auto-fallback" or
"none" when a building has no valid scene at all).

References
----------
.. [1] Iglewicz, B. and Hoaglin, D. C. (1993). *How to Detect and Handle Outliers*. ASQC Basic
   References in Quality Control, vol. 16. Milwaukee: ASQC Quality Press.
.. [2] Rousseeuw, P. J. and Croux, C. (1993). Alternatives to the median absolute deviation.
   *Journal of the American Statistical Association* 88(424), 1273-1283.
.. [3] Elvidge, C. D., Zhizhin, M., Hsu, F.-C. and Baugh, K. E. (2013). VIIRS Nightfire: satellite
   pyrometry at night. *Remote Sensing* 5(9), 4423-4449.
.. [4] A method for monitoring iron and steel factory economic activity based on satellites (2020).
   *Remote Sensing* 12(3), 498, doi:10.3390/rs12030498 (Landsat 8 TIRS heat-island intensity
   index of a plant against its seasonal idle level).
.. [5] Tukey, J. W. (1977). *Exploratory Data Analysis*. Reading, MA: Addison-Wesley (median polish).
.. [6] Hoerl, A. E. and Kennard, R. W. (1970). Ridge regression: biased estimation for
   nonorthogonal problems. *Technometrics* 12(1), 55-67.
.. [7] Huber, P. J. (1964). Robust estimation of a location parameter. *The Annals of
   Mathematical Statistics* 35(1), 73-101.
.. [8] Beaton, A. E. and Tukey, J. W. (1974). The fitting of power series, meaning polynomials,
   illustrated on band-spectroscopic data. *Technometrics* 16(2), 147-185.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kaesong_thermal.errors import AnalysisError

logger = logging.getLogger(__name__)

DEFAULT_BASELINE = "2016-03-01:2022-12-31"
MAD_TO_SIGMA = 1.4826
MEDIAN_SE_FACTOR = 1.2533  # sqrt(pi / 2): standard error of a median relative to sigma / sqrt(n)
DAYS_PER_YEAR = 365.2425

REQUIRED_COLUMNS = ("building_id", "scene_id", "acquired", "contrast_k")
OUTPUT_COLUMNS = (
    "scene_effect_k",
    "residual_k",
    "baseline_k",
    "baseline_sigma_k",
    "anomaly_k",
    "anomaly_sigma_k",
    "z",
    "baseline_method",
)


@dataclass(frozen=True)
class AnomalyParams:
    """Parameters of the anomaly model (all have defended defaults; see ``docs/method.md``).

    Attributes
    ----------
    min_valid_fraction : float
        Minimum share of the roof coverage that must be valid (cloud-free) for an observation to
        count; 0.5, the extractor's own default.
    min_ring_px : int
        Minimum number of valid background-ring pixels (8, about one native 100 m TIRS pixel).
    n_iter : int
        Alternations of scene effect and baseline (3; the fit changes by < 0.01 K afterwards).
    pool_z_max : float
        Observations with ``z`` above this are left out of the scene-effect pool (2.0: anything
        more than two sigma warm is not "believed idle").
    min_pool : int
        Fewest pool buildings for a leave-one-out scene effect; below it every valid building of the
        scene is used (3).
    min_baseline_scenes : int
        Fewest valid baseline scenes for a period baseline (10); fewer falls back to ``auto``.
    min_seasonal_scenes : int
        Fewest baseline scenes to fit the annual harmonic (30: ten per fitted parameter).
    sigma_floor_k : float
        Floor of ``baseline_sigma_k`` in kelvin (0.2 K, about the stated 1-sigma accuracy floor of
        Landsat 8/9 TIRS relative measurements after the stray-light correction).
    auto_clip : float
        Half-width, in sigma, of the window of the ``auto`` baseline's clipping (3.0).
    weighted_scene_effect : bool
        After the first pass, weight the pool by the inverse square of each building's baseline
        spread (a weighted median), so that noisy small roofs do not dominate the scene effect of
        well-measured large ones (True).
    idle_regression : bool
        Idle-roof model (True): each building's residual is regressed, on its baseline scenes,
        on the scene effect (its own response ``beta`` to what the other roofs did), the scene's
        background-temperature departure from its seasonal norm, the sun-elevation departure
        when the observations carry ``sun_elevation``, and the annual harmonic; robust
        (Huber, then Tukey bisquare) and ridge-shrunk towards ``beta = 1`` and no covariates
        (:func:`fit_idle_regression`).  False keeps the fixed-response model ``beta = 1`` with
        an unshrunk harmonic from ``min_seasonal_scenes`` scenes on.
    ridge_scenes : float
        Strength of that shrinkage in pseudo-scenes (5, about one per free coefficient): every
        standardised coefficient is pulled towards 0 as if ``ridge_scenes`` extra scenes said
        so, i.e. by about ``n / (n + ridge_scenes)`` for a building with ``n`` baseline scenes
        (0.67 at 10 scenes, 0.89 at 40).  On the tuning seeds less shrinkage separated better
        (20 and 50 lost a third and two thirds of the gain) with no false alert at any value.
    calibrate_levels : bool
        With L1 scenes pooled onto the L2 scale, give each level its own noise scale (True):
        a building's spread is fitted on its L1 and L2 baseline rows together, but an at-sensor
        L1 contrast mapped to L2 carries the atmosphere's residual and the mapping's error, so
        the pooled spread is too wide for L2 rows and too narrow for L1 rows.  The roof-noise
        part of each level's ``anomaly_sigma_k`` is multiplied by the spread of that level's
        baseline ``z`` over all buildings (:func:`level_noise_factors`).
    baseline_steps : bool
        Let each building's idle level step once inside the baseline period (True): the period
        is known idle, so a lasting shift of a roof's contrast there (a roof re-clad, a
        building demolished, a yard paved beside it) is a change of the site, not activity.
        A building whose baseline residuals carry a step significant at ``step_alpha``
        (:func:`baseline_change_points`) gets two more columns in its idle regression, the step
        and the step times ``sin(sun elevation)`` (a change of the roof's solar gain), carried
        on to every later scene: the idle level after the change is the one later scenes are
        tested against.
    step_alpha : float
        Per-building false-step rate of that test (0.001).
    scene_noise : bool
        Give every scene its own noise scale (True): the roof-to-ring noise of a scene (the
        structure of its surface and atmosphere at the roofs' scale) differs from scene to scene,
        while a building's spread is its average over the baseline.  The spread of the ``z`` of
        a scene's believed-idle buildings, relative to that of a typical scene and shrunk
        towards 1, scales the scene's ``anomaly_sigma_k`` (:func:`scene_noise_factors`): a noisy
        day no longer looks like heat at several roofs, a quiet one counts fully.
    """

    min_valid_fraction: float = 0.5
    min_ring_px: int = 8
    n_iter: int = 3
    pool_z_max: float = 2.0
    min_pool: int = 3
    min_baseline_scenes: int = 10
    min_seasonal_scenes: int = 30
    sigma_floor_k: float = 0.2
    auto_clip: float = 3.0
    weighted_scene_effect: bool = True
    idle_regression: bool = True
    ridge_scenes: float = 5.0
    calibrate_levels: bool = True
    scene_noise: bool = True
    baseline_steps: bool = True
    step_alpha: float = 0.001


def parse_baseline(baseline: str | None) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Parse a baseline specification.

    Parameters
    ----------
    baseline : str or None
        ``"START:END"`` (ISO dates, inclusive, UTC) or ``"auto"`` / ``None``.

    Returns
    -------
    tuple of pandas.Timestamp or None
        ``(start, end)`` with ``end`` at the end of its day, or ``None`` for ``auto``.

    Raises
    ------
    AnalysisError
        If the string is neither ``auto`` nor two parseable, ordered dates.
    """
    if baseline is None or str(baseline).strip().lower() == "auto":
        return None
    text = str(baseline).strip()
    parts = text.split(":")
    if len(parts) != 2:
        raise AnalysisError(
            f"baseline {text!r}: expected 'START:END' (e.g. {DEFAULT_BASELINE}) or 'auto'"
        )
    try:
        start = pd.Timestamp(parts[0].strip(), tz="UTC")
        end = pd.Timestamp(parts[1].strip(), tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(1)
    except (ValueError, TypeError) as exc:
        raise AnalysisError(f"baseline {text!r}: dates not understood ({exc})") from None
    if end < start:
        raise AnalysisError(f"baseline {text!r}: END is before START")
    return start, end


def valid_mask(
    obs: pd.DataFrame,
    *,
    min_valid_fraction: float = 0.5,
    min_ring_px: int = 8,
    signal: str = "contrast_k",
) -> np.ndarray:
    """Observations usable for the model: finite contrast, enough valid roof and ring.

    Parameters
    ----------
    obs : pandas.DataFrame
        Observations with ``contrast_k`` and, when present, ``valid_fraction`` and
        ``ring_valid_px``.
    min_valid_fraction : float
        Minimum valid share of the roof coverage.
    min_ring_px : int
        Minimum valid background-ring pixels.
    signal : str
        Column holding the per-scene signal (``contrast_k`` or ``excess_k``).

    Returns
    -------
    numpy.ndarray
        Boolean mask, one value per row.
    """
    ok = np.isfinite(obs[signal].to_numpy(dtype=float))
    if "valid_fraction" in obs:
        vf = obs["valid_fraction"].to_numpy(dtype=float)
        ok &= np.nan_to_num(vf, nan=0.0) >= min_valid_fraction
    if "ring_valid_px" in obs:
        ring = obs["ring_valid_px"].to_numpy(dtype=float)
        ok &= np.nan_to_num(ring, nan=0.0) >= min_ring_px
    return ok


def loo_group_median(codes: np.ndarray, values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Leave-one-out median of ``values`` over the pool members of each group, for every row.

    Rows inside the pool get the median of the *other* pool members of their group; rows outside
    it get the median of all pool members of their group.  Fully vectorised: one sort.

    Parameters
    ----------
    codes : numpy.ndarray
        Integer group code per row (``>= 0``).
    values : numpy.ndarray
        Value per row (only pool rows are read; they must be finite).
    pool : numpy.ndarray
        Boolean pool membership per row.

    Returns
    -------
    numpy.ndarray
        Float array, NaN where the remaining pool of the group is empty.
    """
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    pool = np.asarray(pool, dtype=bool)
    n_rows = codes.size
    out = np.full(n_rows, np.nan)
    if n_rows == 0:
        return out
    n_groups = int(codes.max()) + 1
    idx = np.flatnonzero(pool)
    order = idx[np.lexsort((values[idx], codes[idx]))]
    sorted_vals = values[order]
    counts = np.bincount(codes[idx], minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.full(n_rows, np.iinfo(np.int64).max, dtype=np.int64)
    rank[order] = np.arange(order.size) - starts[codes[order]]
    n = counts[codes]
    m = n - pool.astype(np.int64)
    ok = m > 0
    j1 = (m - 1) // 2
    j2 = m // 2
    j1 = np.where(j1 < rank, j1, j1 + 1)
    j2 = np.where(j2 < rank, j2, j2 + 1)
    base = starts[codes]
    i1 = np.clip(base + j1, 0, max(sorted_vals.size - 1, 0))
    i2 = np.clip(base + j2, 0, max(sorted_vals.size - 1, 0))
    if sorted_vals.size:
        out[ok] = 0.5 * (sorted_vals[i1[ok]] + sorted_vals[i2[ok]])
    return out


def loo_group_weighted_median(
    codes: np.ndarray, values: np.ndarray, pool: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Leave-one-out *weighted* median of the pool members of each group, for every row.

    As :func:`loo_group_median`, with each pool member weighted (e.g. by its inverse variance):
    the value at which the cumulative weight of the sorted *other* members first reaches half of
    their total weight (the lower weighted median).  With equal weights and an odd number of
    others it is the ordinary median.

    Parameters
    ----------
    codes : numpy.ndarray
        Integer group code per row (``>= 0``).
    values : numpy.ndarray
        Value per row (only pool rows are read).
    pool : numpy.ndarray
        Boolean pool membership per row.
    weights : numpy.ndarray
        Positive weight per row (only pool rows are read).

    Returns
    -------
    numpy.ndarray
        Float array, NaN where the remaining pool of the group is empty.
    """
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    w_all = np.asarray(weights, dtype=float)
    pool = np.asarray(pool, dtype=bool) & np.isfinite(w_all) & (w_all > 0)
    out = np.full(codes.size, np.nan)
    if codes.size == 0 or not pool.any():
        return out
    # one sort of the pool by (group, value); cumulative weights over all groups at once, so a
    # group's partial sums are Cg - (Cg at the group's start): one searchsorted answers every row
    members = np.flatnonzero(pool)
    order = members[np.lexsort((values[members], codes[members]))]
    sv = values[order]
    sw = w_all[order]
    sc = codes[order]
    cum = np.cumsum(sw)
    n_groups = int(codes.max()) + 1
    total = np.bincount(sc, weights=sw, minlength=n_groups)
    first = np.searchsorted(sc, np.arange(n_groups), side="left")
    base = np.concatenate(([0.0], cum))[first]  # cumulative weight before each group
    rank = np.full(codes.size, -1, dtype=np.int64)
    rank[order] = np.arange(order.size)
    g = codes
    own_w = np.where(rank >= 0, w_all, 0.0)
    rest = total[g] - own_w  # weight of the other members
    half = 0.5 * rest
    # first sorted member (global position) whose cumulative weight reaches half of the rest,
    # counted without the row itself: before its own position the row does not count yet
    j1 = np.searchsorted(cum, base[g] + half, side="left")
    j2 = np.searchsorted(cum, base[g] + half + own_w, side="left")
    inside = rank >= 0
    pick = np.where(inside & (j1 >= rank), j2, j1)
    pick = np.where(inside & (pick == rank), pick + 1, pick)
    ok = (rest > 0) & (pick < order.size)
    ok &= np.where(ok, sc[np.minimum(pick, order.size - 1)] == g, False)
    out[ok] = sv[pick[ok]]
    return out


def _group_median(codes: np.ndarray, values: np.ndarray, use: np.ndarray, n: int) -> np.ndarray:
    """Median of ``values[use]`` per group code (NaN for empty groups)."""
    out = np.full(n, np.nan)
    if use.any():
        med = pd.Series(values[use]).groupby(codes[use]).median()
        out[med.index.to_numpy()] = med.to_numpy()
    return out


def _group_centre_mad(
    codes: np.ndarray, values: np.ndarray, use: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Median and median absolute deviation of ``values[use]`` per group code (NaN if empty)."""
    centre = _group_median(codes, values, use, n)
    dev = np.abs(values - np.nan_to_num(centre)[codes])
    return centre, _group_median(codes, dev, use, n)


def _fit_harmonic(
    codes: np.ndarray,
    doy: np.ndarray,
    resid: np.ndarray,
    use: np.ndarray,
    n_groups: int,
    seasonal: np.ndarray,
) -> np.ndarray:
    """Robust per-group fit of ``c + a cos(wt) + b sin(wt)`` (or just ``c``); returns the fit per row.

    Starts from the group median and refines with three iterations of Tukey-bisquare IRLS
    (tuning constant 4.685 times the MAD sigma), solving the 3 x 3 normal equations of all groups
    at once.  Groups with ``seasonal`` False keep the median.
    """
    centre = _group_median(codes, resid, use, n_groups)
    coef = np.zeros((n_groups, 3))
    coef[:, 0] = centre
    w_ang = 2.0 * np.pi * doy / DAYS_PER_YEAR
    X = np.column_stack([np.ones_like(w_ang), np.cos(w_ang), np.sin(w_ang)])
    rows = use & seasonal[codes]
    if rows.any():
        c = codes[rows]
        Xr = X[rows]
        yr = resid[rows]
        w = np.ones(yr.size)
        gram = _GroupGram(c, Xr, yr, n_groups)
        for _ in range(4):
            A, B = gram.normal_equations(w)
            fit_groups = seasonal & (np.abs(np.linalg.det(A)) > 1e-9)
            sol = np.linalg.solve(A[fit_groups], B[fit_groups][..., None])[..., 0]
            coef[fit_groups] = sol
            r = yr - _row_dot(Xr, coef, c)
            mad = _group_median(c, np.abs(r), np.ones(r.size, bool), n_groups)
            scale = np.maximum(MAD_TO_SIGMA * mad[c], 1e-6) * 4.685
            u = r / scale
            w = np.where(np.abs(u) < 1.0, (1.0 - u**2) ** 2, 0.0)
    return _row_dot(X, coef, codes)


def _fit_baseline(
    codes: np.ndarray,
    doy: np.ndarray,
    resid: np.ndarray,
    use: np.ndarray,
    n_groups: int,
    params: AnomalyParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Baseline fit per row, spread per group, count per group, median sigma_k placeholder."""
    n_base = np.bincount(codes[use], minlength=n_groups)
    seasonal = n_base >= params.min_seasonal_scenes
    fit = _fit_harmonic(codes, doy, resid, use, n_groups, seasonal)
    mad = _group_median(codes, np.abs(resid - fit), use, n_groups)
    spread = MAD_TO_SIGMA * mad
    with np.errstate(divide="ignore", invalid="ignore"):
        se = MEDIAN_SE_FACTOR * spread / np.sqrt(n_base)
    sigma = np.maximum(np.sqrt(spread**2 + se**2), params.sigma_floor_k)
    sigma[n_base == 0] = np.nan
    return fit, sigma, n_base, seasonal


def _auto_use(
    codes: np.ndarray,
    doy: np.ndarray,
    resid: np.ndarray,
    valid: np.ndarray,
    n_groups: int,
    params: AnomalyParams,
) -> np.ndarray:
    """Rows forming the ``auto`` baseline: seeded at the lower quartile, then clipped median/MAD."""
    if not valid.any():
        return valid.copy()
    q = pd.Series(resid[valid]).groupby(codes[valid]).quantile(np.array([0.05, 0.25])).unstack()
    q05 = np.full(n_groups, np.nan)
    q25 = np.full(n_groups, np.nan)
    q05[q.index.to_numpy()] = q[0.05].to_numpy()
    q25[q.index.to_numpy()] = q[0.25].to_numpy()
    centre_row = q25[codes]
    # Phi^-1(0.25) - Phi^-1(0.05) = 0.9704: spread of the idle cluster from its lower tail
    sigma_g = np.maximum((q25 - q05) / 0.9704, params.sigma_floor_k)
    sigma_row = sigma_g[codes]
    use = valid.copy()
    for _ in range(5):
        use = valid & (np.abs(resid - centre_row) <= params.auto_clip * sigma_row)
        centre = _group_median(codes, resid, use, n_groups)
        mad = _group_median(codes, np.abs(resid - centre[codes]), use, n_groups)
        sigma_g = np.maximum(MAD_TO_SIGMA * mad, params.sigma_floor_k)
        centre_row = centre[codes]
        sigma_row = sigma_g[codes]
    use = valid & (np.abs(resid - centre_row) <= params.auto_clip * sigma_row)
    return use


HUBER_C = 1.345  # Huber (1964): 95 % efficiency at the normal
BISQUARE_C = 4.685  # Beaton and Tukey (1974): 95 % efficiency at the normal


def _weights(r: np.ndarray, c: float, scale: np.ndarray, kind: str) -> np.ndarray:
    """Huber or Tukey-bisquare IRLS weights of residuals ``r`` at ``c * scale``."""
    u = np.abs(r) / np.maximum(scale, 1e-6)
    if kind == "huber":
        return np.where(u <= c, 1.0, c / np.maximum(u, 1e-12))
    return np.where(u < c, (1.0 - (u / c) ** 2) ** 2, 0.0)


def _row_dot(X: np.ndarray, coef: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``x_i' b_{g(i)}`` for every row, one column at a time (no ``(n, p)`` gather of ``b``)."""
    out = np.zeros(X.shape[0])
    for j in range(X.shape[1]):
        out += X[:, j] * coef[codes, j]
    return out


def _row_quadratic(X: np.ndarray, M: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``x_i' M_{g(i)} x_i`` for every row (``M`` symmetric), without an ``(n, p, p)`` gather."""
    p = X.shape[1]
    out = np.zeros(X.shape[0])
    for j in range(p):
        out += X[:, j] * X[:, j] * M[codes, j, j]
        for k in range(j + 1, p):
            out += 2.0 * X[:, j] * X[:, k] * M[codes, j, k]
    return out


class _GroupGram:
    """Per-group weighted normal equations ``X' W X`` and ``X' W y`` for many small groups.

    The rows are laid out once as a zero-padded ``(groups, rows, p)`` block, so that each
    reweighting is one batched matrix product (BLAS) instead of ``p (p + 3) / 2`` passes of
    ``bincount``.  When the groups are so uneven that the block would hold more than four times
    the rows, the ``bincount`` passes are used instead (same sums).
    """

    def __init__(self, codes: np.ndarray, X: np.ndarray, y: np.ndarray, n_groups: int) -> None:
        self.codes = codes
        self.X = X
        self.y = y
        self.n_groups = n_groups
        self.p = X.shape[1]
        counts = np.bincount(codes, minlength=n_groups)
        width = int(counts.max()) if codes.size else 0
        self.padded = codes.size > 0 and n_groups * width <= 4 * codes.size + 1024
        if self.padded:
            order = np.argsort(codes, kind="stable")
            sc = codes[order]
            start = np.concatenate(([0], np.cumsum(counts)[:-1]))
            self.order = order
            self.slot = (sc, np.arange(sc.size) - start[sc])
            self.Xp = np.zeros((n_groups, width, self.p))
            self.Xp[self.slot] = X[order]
            self.yp = np.zeros((n_groups, width))
            self.yp[self.slot] = y[order]

    def normal_equations(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A = X' W X`` ``(groups, p, p)`` and ``B = X' W y`` ``(groups, p)`` for weights ``w``."""
        p, n_groups = self.p, self.n_groups
        if self.padded:
            wp = np.zeros(self.yp.shape)
            wp[self.slot] = w[self.order]
            Xw = self.Xp * wp[..., None]
            Xt = np.swapaxes(self.Xp, 1, 2)
            A = np.matmul(Xt, Xw)
            B = np.matmul(Xt, (wp * self.yp)[..., None])[..., 0]
            return A, B
        A = np.zeros((n_groups, p, p))
        B = np.zeros((n_groups, p))
        c, X, y = self.codes, self.X, self.y
        for i in range(p):
            B[:, i] = np.bincount(c, weights=w * X[:, i] * y, minlength=n_groups)
            for j in range(i, p):
                s = np.bincount(c, weights=w * X[:, i] * X[:, j], minlength=n_groups)
                A[:, i, j] = s
                A[:, j, i] = s
        return A, B


def fit_idle_regression(
    codes: np.ndarray,
    design: np.ndarray,
    y: np.ndarray,
    use: np.ndarray,
    n_groups: int,
    ridge_scenes: float,
    penalised: np.ndarray | None = None,
    n_huber: int = 4,
    n_bisquare: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Robust ridge regression of ``y`` on ``design``, one coefficient vector per group.

    For every group ``g`` (a building), on its rows with ``use`` True, minimises
    ``sum_i w_i (y_i - x_i' b)**2 + ridge_scenes * sum_j v_gj b_j**2`` where ``v_gj`` is the
    variance of column ``j`` over the group's rows (a ridge penalty on standardised covariates
    [1]_, i.e. ``ridge_scenes`` pseudo-observations saying "no effect"; the first column, the
    intercept, and columns with ``penalised`` False are not penalised).  The weights ``w_i``
    come from iteratively reweighted least squares: ``n_huber`` iterations with Huber's weights
    [2]_ (``c = 1.345``, a convex loss, so the start does not matter), then ``n_bisquare`` with
    Tukey's bisquare [3]_ (``c = 4.685``, rejects gross outliers such as an undetected hot
    scene), each at the current ``1.4826 MAD`` scale of the group's residuals.

    Parameters
    ----------
    codes : numpy.ndarray
        Group code per row (``>= 0``).
    design : numpy.ndarray
        ``(n_rows, p)`` design matrix; column 0 must be the intercept (ones).
    y : numpy.ndarray
        Response per row (only ``use`` rows are read).
    use : numpy.ndarray
        Rows entering the fit.
    n_groups : int
        Number of groups.
    ridge_scenes : float
        Penalty strength in pseudo-scenes (0: no shrinkage).
    penalised : numpy.ndarray, optional
        Boolean per column; default every column but the intercept.
    n_huber, n_bisquare : int
        IRLS iterations of each kind.

    Returns
    -------
    fit : numpy.ndarray
        ``x_i' b_g`` for every row (NaN for groups without rows).
    coef : numpy.ndarray
        ``(n_groups, p)`` coefficients (NaN rows for groups without rows).
    spread : numpy.ndarray
        Per group ``1.4826 MAD`` of the fitted rows' residuals, inflated by
        ``sqrt(n / (n - df))`` with ``df`` the effective degrees of freedom of the ridge fit
        (trace of its hat matrix), so that a fit with more free coefficients does not look
        less noisy than it is.
    leverage : numpy.ndarray
        Per row ``x_i' A_g^-1 x_i`` with ``A_g`` the penalised normal matrix: the variance of
        the fitted idle level at that row in units of the residual variance.
    n_fit : numpy.ndarray
        Rows fitted per group.

    References
    ----------
    .. [1] Hoerl, A. E. and Kennard, R. W. (1970). Ridge regression: biased estimation for
       nonorthogonal problems. *Technometrics* 12(1), 55-67.
    .. [2] Huber, P. J. (1964). Robust estimation of a location parameter. *The Annals of
       Mathematical Statistics* 35(1), 73-101.
    .. [3] Beaton, A. E. and Tukey, J. W. (1974). The fitting of power series, meaning
       polynomials, illustrated on band-spectroscopic data. *Technometrics* 16(2), 147-185.
    """
    codes = np.asarray(codes, dtype=np.int64)
    X = np.asarray(design, dtype=float)
    p = X.shape[1]
    pen = np.ones(p, bool) if penalised is None else np.asarray(penalised, bool).copy()
    pen[0] = False
    rows = np.asarray(use, bool) & np.isfinite(y) & np.all(np.isfinite(X), axis=1)
    c = codes[rows]
    Xr = X[rows]
    yr = np.asarray(y, dtype=float)[rows]
    n_fit = np.bincount(c, minlength=n_groups).astype(float)
    have = n_fit > 0
    # per-group variance of each column (the ridge's standardisation)
    mean = np.zeros((n_groups, p))
    var = np.zeros((n_groups, p))
    for j in range(p):
        s1 = np.bincount(c, weights=Xr[:, j], minlength=n_groups)
        s2 = np.bincount(c, weights=Xr[:, j] ** 2, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean[:, j] = np.where(have, s1 / np.maximum(n_fit, 1.0), 0.0)
            second = np.where(have, s2 / np.maximum(n_fit, 1.0), 0.0)
            var[:, j] = np.maximum(second - mean[:, j] ** 2, 0.0)
    penalty = ridge_scenes * np.where(pen[None, :], var, 0.0)
    # a column with no variance in a group cannot be estimated there: pin it at 0
    dead = pen[None, :] & (var <= 1e-12)
    penalty = np.where(dead, 1.0, penalty)
    # start at the group median with the covariates at zero (Huber's loss is convex: any
    # start converges; the median keeps the first scale estimate robust)
    coef = np.zeros((n_groups, p))
    coef[:, 0] = _group_median(c, yr, np.ones(yr.size, bool), n_groups)
    w = np.ones(yr.size)
    gram = _GroupGram(c, Xr, yr, n_groups)
    A = np.zeros((n_groups, p, p))
    ok = np.zeros(n_groups, bool)
    for it in range(max(n_huber + n_bisquare, 1)):
        r = yr - _row_dot(Xr, np.nan_to_num(coef), c)
        scale = MAD_TO_SIGMA * _group_median(c, np.abs(r), np.ones(r.size, bool), n_groups)[c]
        if it < n_huber:
            w = _weights(r, HUBER_C, scale, "huber")
        else:
            w = _weights(r, BISQUARE_C, scale, "bisquare")
        A, B = gram.normal_equations(w)
        # pseudo-scenes count like the weighted scenes: scale the penalty by the mean weight
        mean_w = np.bincount(c, weights=w, minlength=n_groups) / np.maximum(n_fit, 1.0)
        A[:, np.arange(p), np.arange(p)] += penalty * np.where(dead, 1.0, mean_w[:, None])
        ok = have & (np.abs(np.linalg.det(A)) > 1e-12)
        coef[ok] = np.linalg.solve(A[ok], B[ok][..., None])[..., 0]
    coef[~have] = np.nan
    A_inv = np.full((n_groups, p, p), np.nan)
    A_inv[ok] = np.linalg.inv(A[ok])
    fit = _row_dot(X, coef, codes)
    leverage = _row_quadratic(X, A_inv, codes)
    # effective degrees of freedom: trace of W^1/2 X A^-1 X' W^1/2 over the fitted rows
    h_fit = w * _row_quadratic(Xr, A_inv, c)
    df = np.bincount(c, weights=np.nan_to_num(h_fit), minlength=n_groups)
    r = yr - _row_dot(Xr, coef, c)
    mad = _group_median(c, np.abs(r), np.ones(r.size, bool), n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        inflate = np.sqrt(n_fit / np.maximum(n_fit - df, 1.0))
    spread = MAD_TO_SIGMA * mad * inflate
    spread[~have] = np.nan
    return fit, coef, spread, leverage, n_fit


def bridge_critical_value(alpha: float) -> float:
    """Critical value ``c`` with ``P(sup |B(t)| > c) = alpha`` for a Brownian bridge ``B``.

    The limiting null distribution of the standardised CUSUM of a series without a change
    (Kolmogorov's distribution, ``P(sup |B| > c) = 2 sum_k (-1)**(k-1) exp(-2 k**2 c**2)``;
    Ploberger and Kraemer 1992); solved by bisection.

    Parameters
    ----------
    alpha : float
        Tail probability in (0, 1).

    Returns
    -------
    float
        ``c`` (1.358 at 0.05, 1.628 at 0.01, 1.949 at 0.001).

    References
    ----------
    .. [1] Ploberger, W. and Kraemer, W. (1992). The CUSUM test with OLS residuals.
       *Econometrica* 60(2), 271-285.
    """
    if not 0.0 < alpha < 1.0:
        raise AnalysisError(f"step_alpha {alpha}: must lie between 0 and 1")

    def tail(c: float) -> float:
        k = np.arange(1, 101)
        return float(2.0 * np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k**2 * c**2)))

    lo, hi = 0.3, 5.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tail(mid) > alpha else (lo, mid)
    return 0.5 * (lo + hi)


def baseline_change_points(
    codes: np.ndarray,
    times: np.ndarray,
    resid: np.ndarray,
    use: np.ndarray,
    n_groups: int,
    alpha: float = 0.001,
    min_side: int = 10,
    solar: np.ndarray | None = None,
) -> np.ndarray:
    """Time of a lasting step in each group's residuals, where a fluctuation test finds one.

    On each group's ``use`` rows in time order, the residuals ``r`` are winsorised at three
    robust sigma (``1.4826 MAD``; a sporadic hot scene does not make a step) and centred.  Two
    cumulative-sum processes are tested: the level, ``sum_{i<=k} r_i / (sigma sqrt(n))`` (the
    OLS-CUSUM of Ploberger and Kraemer 1992), and, given ``solar``, the solar response,
    ``sum_{i<=k} s_i r_i / (sigma sqrt(n))`` with ``s`` the group's standardised ``solar`` (a
    score-based CUSUM of that coefficient, Zeileis and Hornik 2007): a change of a roof's solar
    gain shows in the second even when its mean over the year is small.  Each is compared with
    the Brownian-bridge critical value (:func:`bridge_critical_value`) at ``alpha`` split
    between the processes (Bonferroni).  The step is placed after the row where the larger
    process peaks, with at least ``min_side`` rows on either side.

    Parameters
    ----------
    codes : numpy.ndarray
        Group (building) code per row.
    times : numpy.ndarray
        ``int64`` time per row (nanoseconds); rows of a group need not be sorted.
    resid : numpy.ndarray
        Residuals of the idle fit per row.
    use : numpy.ndarray
        Rows entering the test (the baseline rows).
    n_groups : int
        Number of groups.
    alpha : float
        Per-group false-step rate.
    min_side : int
        Fewest rows before and after a step.
    solar : numpy.ndarray, optional
        Solar term per row (e.g. ``sin`` of the sun elevation).

    Returns
    -------
    numpy.ndarray
        ``int64`` per group: the time of the first row after the step, or the largest
        ``int64`` where no step is found.

    References
    ----------
    .. [1] Ploberger, W. and Kraemer, W. (1992). The CUSUM test with OLS residuals.
       *Econometrica* 60(2), 271-285.
    .. [2] Zeileis, A. and Hornik, K. (2007). Generalized M-fluctuation tests for parameter
       instability. *Statistica Neerlandica* 61(4), 488-508.
    """
    none = np.iinfo(np.int64).max
    out = np.full(n_groups, none, dtype=np.int64)
    n_proc = 1 if solar is None else 2
    crit = bridge_critical_value(alpha / n_proc)
    rows = np.flatnonzero(np.asarray(use, bool) & np.isfinite(resid))
    if solar is not None:
        rows = rows[np.isfinite(solar[rows])]
    if rows.size == 0:
        return out
    order = rows[np.lexsort((times[rows], codes[rows]))]
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for part in np.split(order, bounds):
        n = part.size
        if n < 2 * min_side:
            continue
        r = resid[part].astype(float)
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r))))
        if not sigma > 0:
            continue
        r = np.clip(r - np.median(r), -3.0 * sigma, 3.0 * sigma)
        r = r - r.mean()
        scores = [r]
        if solar is not None:
            sv = solar[part].astype(float)
            sd = float(sv.std())
            if sd > 1e-6:
                sr = (sv - sv.mean()) / sd * r
                scores.append(sr - sr.mean())
        best, where = 0.0, -1
        for score in scores:
            cusum = np.abs(np.cumsum(score)[min_side - 1 : n - min_side]) / (sigma * np.sqrt(n))
            k = int(np.argmax(cusum))
            if cusum[k] > max(best, crit):
                best, where = float(cusum[k]), k
        if where >= 0:
            out[codes[part[0]]] = times[part[where + min_side]]
    return out


def scene_covariates(
    obs: pd.DataFrame,
    s_codes: np.ndarray,
    doy: np.ndarray,
    valid: np.ndarray,
    base_scene_rows: np.ndarray,
    n_s: int,
) -> dict[str, np.ndarray]:
    """Scene-level covariates of the idle-roof model, per row, as departures from their season.

    * ``background_k``: the scene's median ``t_background_k`` over its valid observations (how
      warm the surroundings were that day), minus its robust annual harmonic fitted over the
      scenes holding baseline observations;
    * ``sun_elevation``: the scene's ``sun_elevation`` (degrees) when the observations carry it,
      minus its annual harmonic (at a fixed site and overpass time it is nearly a function of
      the day of year, which the harmonic already holds; then it drops out).

    A covariate whose departures have a standard deviation below 1e-3 (or that is absent) is
    left out.  Only scene-level quantities enter: nothing of the building itself.

    Parameters
    ----------
    obs : pandas.DataFrame
        Observations (rows aligned with ``s_codes``).
    s_codes : numpy.ndarray
        Scene code per row.
    doy : numpy.ndarray
        Day of year per row.
    valid : numpy.ndarray
        Valid rows.
    base_scene_rows : numpy.ndarray
        Rows inside the baseline (their scenes define the seasonal norm).
    n_s : int
        Number of scenes.

    Returns
    -------
    dict of str to numpy.ndarray
        Covariate name to its per-row departure (0 where the scene has none).
    """
    out: dict[str, np.ndarray] = {}
    scene_doy = np.zeros(n_s)
    scene_doy[s_codes] = doy
    in_base = np.zeros(n_s, bool)
    in_base[s_codes[base_scene_rows]] = True
    for name in ("t_background_k", "sun_elevation"):
        if name not in obs.columns:
            continue
        values = obs[name].to_numpy(dtype=float)
        use = valid & np.isfinite(values)
        per_scene = _group_median(s_codes, values, use, n_s)
        base = in_base & np.isfinite(per_scene)
        if base.sum() < 10:
            continue
        zeros = np.zeros(n_s, dtype=np.int64)
        norm = _fit_harmonic(zeros, scene_doy, np.nan_to_num(per_scene), base, 1, np.array([True]))
        dep = per_scene - norm
        if not np.isfinite(dep[base]).any():
            continue
        if float(np.std(dep[base])) < 1e-3:
            continue
        out[name] = np.nan_to_num(dep, nan=0.0)[s_codes]
    return out


def _scene_climatology(
    s_codes: np.ndarray,
    doy: np.ndarray,
    centred: np.ndarray,
    valid: np.ndarray,
    use: np.ndarray,
    n_s: int,
    params: AnomalyParams,
) -> tuple[np.ndarray, float]:
    """Expected scene effect by day of year, and the scatter of real scene effects around it.

    Each scene's effect is the median of the centred contrasts of its valid buildings; an annual
    harmonic is fitted robustly to the effects of the scenes holding baseline observations.  Used
    where too few buildings are believed idle to measure the scene effect (e.g. a whole complex
    working), with its scatter added to the uncertainty of those observations.
    """
    effect = _group_median(s_codes, centred, valid, n_s)
    scene_doy = np.zeros(n_s)
    scene_doy[s_codes] = doy
    in_base = np.zeros(n_s, bool)
    in_base[s_codes[use]] = True
    base = in_base & np.isfinite(effect)
    if base.sum() < max(params.min_seasonal_scenes // 3, 3):
        return np.zeros(s_codes.size), float("nan")
    zeros = np.zeros(n_s, dtype=np.int64)
    seasonal = np.array([base.sum() >= params.min_seasonal_scenes])
    fit = _fit_harmonic(zeros, scene_doy, np.nan_to_num(effect), base, 1, seasonal)
    sigma = float(MAD_TO_SIGMA * np.median(np.abs(effect[base] - fit[base])))
    return fit[s_codes], max(sigma, params.sigma_floor_k)


#: Pseudo-buildings (at ``tau = 1``) shrinking each L1 scene's scale estimate; bounds of ``tau``.
LEVEL1_SCALE_PRIOR = 0.5
LEVEL1_SCALE_BOUNDS = (0.3, 1.5)


def level1_scale(
    s_codes: np.ndarray,
    contrast: np.ndarray,
    level: np.ndarray,
    pool: np.ndarray,
    scaled_scene: np.ndarray,
) -> np.ndarray:
    """Per-scene scale ``tau`` of the buildings' idle levels in Level-1 scenes.

    An at-sensor brightness temperature contrast is the surface contrast times the scene's
    band transmittance (plus terms common to roof and ring), ``L_sensor = tau eps B(T) +
    (1 - eps) tau L_down + L_up`` [1]_, so in a Level-1 scene the building-to-building
    differences of the idle contrasts shrink by ``tau`` (0.6 in a humid summer, 0.9 in a dry
    winter).  Per scene, over its pool (believed-idle, valid) buildings, ``tau`` is the least
    squares slope of the centred contrasts on the centred idle levels, shrunk towards 1 by
    :data:`LEVEL1_SCALE_PRIOR` pseudo-buildings and bounded by :data:`LEVEL1_SCALE_BOUNDS`.

    Parameters
    ----------
    s_codes : numpy.ndarray
        Scene code per row.
    contrast : numpy.ndarray
        Contrast per row (as observed), K.
    level : numpy.ndarray
        The row's building's current idle level on the L2 scale, K.
    pool : numpy.ndarray
        Rows that may inform the scale.
    scaled_scene : numpy.ndarray
        Per scene: estimate a scale (True) or keep 1.

    Returns
    -------
    numpy.ndarray
        ``tau`` per scene code.

    References
    ----------
    .. [1] Barsi, J. A., Schott, J. R., Palluconi, F. D. and Hook, S. J. (2005). Validation of a
       web-based atmospheric correction tool for single thermal band instruments. *Proc. SPIE*
       5882, 58820E.
    """
    n_s = scaled_scene.size
    tau = np.ones(n_s)
    use = pool & scaled_scene[s_codes] & np.isfinite(contrast) & np.isfinite(level)
    if not use.any():
        return tau
    med_c = _group_median(s_codes, contrast, use, n_s)
    med_l = _group_median(s_codes, level, use, n_s)
    dc = np.where(use, contrast - med_c[s_codes], 0.0)
    dl = np.where(use, level - med_l[s_codes], 0.0)
    n = np.bincount(s_codes[use], minlength=n_s).astype(float)
    sxy = np.bincount(s_codes, weights=dc * dl, minlength=n_s)
    sxx = np.bincount(s_codes, weights=dl * dl, minlength=n_s)
    prior = LEVEL1_SCALE_PRIOR * sxx / np.maximum(n, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = (sxy + prior) / (sxx + prior)
    ok = scaled_scene & (n >= 3) & (sxx > 1e-9)
    tau[ok] = np.clip(est[ok], *LEVEL1_SCALE_BOUNDS)
    return tau


#: Fewest baseline rows of a level to estimate its noise factor (else 1).
MIN_LEVEL_ROWS = 50
#: Baseline z further than this many robust sigmas from the median are left out of a level's
#: noise factor (gross outliers); the shoulders of the distribution stay in.
TRIM_MADS = 4.0
#: Range a level's noise factor is held to.
LEVEL_FACTOR_RANGE = (0.25, 4.0)


def level_noise_factors(z: np.ndarray, use: np.ndarray, is_l1: np.ndarray) -> np.ndarray:
    """Per-row factor that gives the baseline ``z`` of each level a unit robust spread.

    For the L1 rows and for the L2 rows apart, over the baseline rows (``use``) of all
    buildings, ``f`` is the root mean square departure of ``z`` from its median once the points
    beyond :data:`TRIM_MADS` robust sigmas (1.4826 MAD, Hampel 1974 [1]_) are left out: the few
    active rows of a baseline do not move it, while the shoulders of the distribution, which
    the CUSUM feels, stay in.  A building's own spread mixes both levels, so its ``z`` is
    deflated for the quieter level and inflated for the noisier one.  A level with fewer than
    :data:`MIN_LEVEL_ROWS` baseline rows keeps 1; factors are held to
    :data:`LEVEL_FACTOR_RANGE`.

    Parameters
    ----------
    z : numpy.ndarray
        Score per row.
    use : numpy.ndarray
        Baseline rows (finite ``z``).
    is_l1 : numpy.ndarray
        True for rows of L1 scenes mapped onto the L2 scale.

    Returns
    -------
    numpy.ndarray
        Factor per row (multiply ``anomaly_sigma_k`` by it).

    References
    ----------
    .. [1] Hampel, F. R. (1974). The influence curve and its role in robust estimation.
       *Journal of the American Statistical Association* 69(346), 383-393.
    """
    factor = np.ones(z.size)
    for rows in (is_l1, ~is_l1):
        sample = z[use & rows]
        if sample.size < MIN_LEVEL_ROWS:
            continue
        centre = float(np.median(sample))
        mad = MAD_TO_SIGMA * float(np.median(np.abs(sample - centre)))
        kept = sample[np.abs(sample - centre) <= TRIM_MADS * mad]
        f = float(np.clip(np.sqrt(np.mean((kept - centre) ** 2)), *LEVEL_FACTOR_RANGE))
        factor[rows] = f
        logger.debug("noise factor of the %s rows: %.2f", "L1" if rows is is_l1 else "L2", f)
    return factor


#: Pseudo-rows at factor 1 that shrink a scene's noise factor (a scene with 10 believed-idle
#: buildings is weighted half by its own spread).
SCENE_NOISE_PRIOR = 10.0
#: Fewest believed-idle rows for a scene to get a factor of its own (else 1).
MIN_SCENE_ROWS = 5
#: Range a scene's noise factor is held to.
SCENE_FACTOR_RANGE = (0.5, 3.0)


def scene_noise_factors(
    z: np.ndarray, s_codes: np.ndarray, pool: np.ndarray, n_s: int
) -> np.ndarray:
    """Per-scene factor on ``anomaly_sigma_k``: the scene's spread of believed-idle ``z``.

    For each scene, ``s_k`` is the robust spread (1.4826 MAD, Rousseeuw and Croux 1993 [1]_)
    of the ``z`` of its pool rows (valid, believed idle) across buildings; the scene-wide part
    of the error is already in the scene effect, so ``s_k`` measures the building-to-building
    noise of that day.  Relative to the root mean square of ``s_k`` over the pool rows (the
    average day, which the buildings' spreads describe), shrunk towards 1 by
    :data:`SCENE_NOISE_PRIOR` pseudo-rows in the variance (``f^2 = (n r^2 + m) / (n + m)``,
    ``r = s_k / rms``) and held to :data:`SCENE_FACTOR_RANGE`; a scene with fewer than
    :data:`MIN_SCENE_ROWS` pool rows keeps 1 (a lone building's day says nothing about its
    noise).

    Parameters
    ----------
    z : numpy.ndarray
        Score per row.
    s_codes : numpy.ndarray
        Scene code per row.
    pool : numpy.ndarray
        Rows believed idle with a finite ``z``.
    n_s : int
        Number of scene codes.

    Returns
    -------
    numpy.ndarray
        Factor per scene code.

    References
    ----------
    .. [1] Rousseeuw, P. J. and Croux, C. (1993). Alternatives to the median absolute
       deviation. *Journal of the American Statistical Association* 88(424), 1273-1283.
    """
    factor = np.ones(n_s)
    use = pool & np.isfinite(z)
    if not use.any():
        return factor
    n = np.bincount(s_codes[use], minlength=n_s).astype(float)
    _, mad = _group_centre_mad(s_codes, z, use, n_s)
    spread = MAD_TO_SIGMA * mad
    ok = (n >= MIN_SCENE_ROWS) & np.isfinite(spread) & (spread > 0)
    if not ok.any():
        return factor
    # relative to the root mean square over the rows, so that the factors keep the average
    # variance of the buildings' spreads (the median scene would inflate it: the spreads of
    # the scenes are skewed, and with it every z would shrink)
    typical = float(np.sqrt(np.sum(n[ok] * spread[ok] ** 2) / np.sum(n[ok])))
    ratio = spread[ok] / typical
    f2 = (n[ok] * ratio**2 + SCENE_NOISE_PRIOR) / (n[ok] + SCENE_NOISE_PRIOR)
    factor[ok] = np.clip(np.sqrt(f2), *SCENE_FACTOR_RANGE)
    return factor


def compute_anomalies(
    observations: pd.DataFrame,
    baseline: str | None = DEFAULT_BASELINE,
    params: AnomalyParams | None = None,
    *,
    signal: str = "contrast_k",
    signal_sigma: str | None = None,
    map_level1: bool = False,
) -> pd.DataFrame:
    """Scene effect, baseline, anomaly and robust z for every observation.

    Parameters
    ----------
    observations : pandas.DataFrame
        One row per (scene, building) with at least ``building_id, scene_id, acquired,
        contrast_k``; ``sigma_k``, ``valid_fraction`` and ``ring_valid_px`` are used when present
        (see ``docs/interfaces.md``).
    baseline : str or None
        ``"START:END"`` idle period, or ``"auto"`` (see the module docstring).
    params : AnomalyParams, optional
        Model parameters; defaults when omitted.
    signal : str
        Column modelled as the "contrast": ``contrast_k`` (roof mean minus ring median, diluted
        by the PSF) or ``excess_k`` (the PSF-aware roof excess of the extractor).
    signal_sigma : str, optional
        Column of the signal's measurement uncertainty; default ``sigma_k`` for ``contrast_k``
        and ``excess_sigma_k`` for ``excess_k`` (``<signal without _k>_sigma_k`` otherwise).
    map_level1 : bool
        When the observations hold both L1 and L2 rows, put every L1 scene on the L2 scale
        (:func:`level1_scale`): the atmosphere attenuates every roof-to-ring contrast of an
        at-sensor brightness temperature by the scene's transmittance, so the contrasts of an L1
        scene are ``S_k + tau_k * (idle level of each building) + tau_k * anomaly``; ``tau_k``
        is estimated per L1 scene across its believed-idle buildings and the L1 residuals,
        anomalies and uncertainties are divided by it.  One baseline then serves both levels.

    Returns
    -------
    pandas.DataFrame
        A copy of ``observations`` (sorted by ``building_id, acquired``, fresh index) with columns
        ``valid`` (bool), ``scene_effect_k``, ``residual_k`` (contrast - scene effect),
        ``baseline_k``, ``baseline_sigma_k``, ``anomaly_k`` (residual - baseline),
        ``anomaly_sigma_k`` (its total 1-sigma, the denominator of ``z``), ``z``,
        ``baseline_method``, ``level_scale`` (``tau`` of the row's scene, 1 but for mapped L1
        scenes) and ``baseline_step`` (True on the rows after a step of the building's idle
        level found inside the baseline period; see ``baseline_steps``).  Non-valid rows carry
        NaN in the numeric columns.

    Raises
    ------
    AnalysisError
        If a required column is missing or the baseline specification is malformed.

    References
    ----------
    .. [1] Iglewicz, B. and Hoaglin, D. C. (1993). *How to Detect and Handle Outliers*. ASQC.
    .. [2] Elvidge, C. D. et al. (2013). VIIRS Nightfire: satellite pyrometry at night.
       *Remote Sensing* 5(9), 4423-4449.
    """
    p = params or AnomalyParams()
    if signal_sigma is None:
        signal_sigma = (
            "sigma_k" if signal == "contrast_k" else signal.removesuffix("_k") + "_sigma_k"
        )
    required = [c for c in REQUIRED_COLUMNS if c != "contrast_k"] + [signal]
    missing = [c for c in required if c not in observations.columns]
    if missing:
        raise AnalysisError(f"observations: missing column(s) {', '.join(missing)}")
    period = parse_baseline(baseline)
    # one copy of the table, already in (building, time) order (a stable sort, as
    # ``sort_values(["building_id", "acquired"], kind="stable")``, without a second full copy)
    acquired = pd.to_datetime(observations["acquired"], utc=True)
    b_sorted, _ = pd.factorize(observations["building_id"], sort=True)
    b_sorted = np.where(b_sorted < 0, np.iinfo(np.int64).max, b_sorted)  # missing ids last
    t_arr = pd.DatetimeIndex(acquired).asi8
    t_key = np.where(acquired.isna().to_numpy(), np.iinfo(np.int64).max, t_arr)  # NaT last
    order = np.lexsort((t_key, b_sorted))
    obs = observations.take(order)
    obs.index = pd.RangeIndex(len(obs))
    obs["acquired"] = acquired.array.take(order)

    valid = valid_mask(
        obs, min_valid_fraction=p.min_valid_fraction, min_ring_px=p.min_ring_px, signal=signal
    )
    contrast = obs[signal].to_numpy(dtype=float)
    b_codes, b_uniques = pd.factorize(obs["building_id"], sort=False)
    s_codes, _ = pd.factorize(obs["scene_id"], sort=False)
    n_b = len(b_uniques)
    n_s = int(s_codes.max()) + 1 if s_codes.size else 0
    acquired = obs["acquired"]
    doy = acquired.dt.day_of_year.to_numpy(dtype=float)
    if signal_sigma in obs:
        sig_meas = np.nan_to_num(obs[signal_sigma].to_numpy(dtype=float), nan=0.0)
    else:
        sig_meas = np.zeros(len(obs))
    scaled_scene = np.zeros(n_s, dtype=bool)
    if map_level1 and "level" in obs.columns:
        is_l1 = (obs["level"].astype(str).str.strip().str.upper() == "L1").to_numpy()
        if is_l1.any() and not is_l1.all():
            scaled_scene[s_codes[is_l1]] = True
    tau = np.ones(len(obs))
    contrast_raw = contrast
    sig_raw = sig_meas

    if period is not None:
        in_period = ((acquired >= period[0]) & (acquired <= period[1])).to_numpy()
        n_period = np.bincount(b_codes[valid & in_period], minlength=n_b)
        fallback = n_period < p.min_baseline_scenes
    else:
        in_period = np.zeros(len(obs), bool)
        fallback = np.ones(n_b, bool)
    n_valid_b = np.bincount(b_codes[valid], minlength=n_b)
    covariates: dict[str, np.ndarray] = {}
    if p.idle_regression:
        base_rows = valid & (in_period if period is not None else np.ones(len(obs), bool))
        covariates = scene_covariates(obs, s_codes, doy, valid, base_rows, n_s)
        if scaled_scene.any():
            # each roof's own L1 - L2 offset: the at-sensor temperature of a roof also carries
            # the sky radiance it reflects, (1 - eps) L_down, which depends on its emissivity
            covariates["level1"] = scaled_scene[s_codes].astype(float)
        w_ang = 2.0 * np.pi * doy / DAYS_PER_YEAR
        harmonic = np.column_stack([np.ones(len(obs)), np.cos(w_ang), np.sin(w_ang)])
        logger.debug("idle-roof regression covariates: scene effect, %s", ", ".join(covariates))
    beta = np.ones(len(obs))
    row_sigma = np.full(len(obs), np.nan)
    t_rows = pd.DatetimeIndex(obs["acquired"]).asi8
    after = np.zeros(len(obs), bool)  # rows after a step of their building's idle level
    step_cols: list[np.ndarray] = []  # the step's columns of the idle regression, once found

    level = np.zeros(len(obs))  # building's idle level per row (0 before the first fit)
    looks_active = np.zeros(len(obs), bool)
    fit = np.zeros(len(obs))
    sigma_g = np.full(n_b, np.nan)
    z = np.full(len(obs), np.nan)
    scene_effect = np.full(len(obs), np.nan)
    scene_sigma = np.zeros(len(obs))
    clim = np.zeros(len(obs))
    sigma_clim = np.nan
    for it in range(max(1, p.n_iter) + 1):
        pool = valid & ~looks_active
        if it > 0 and scaled_scene.any():
            tau = level1_scale(s_codes, contrast_raw, level, pool, scaled_scene)[s_codes]
            contrast = contrast_raw / tau
            sig_meas = sig_raw / tau
        centred = contrast - level
        n_pool = np.bincount(s_codes[pool], minlength=n_s)
        if p.weighted_scene_effect and it > 0:
            w_pool = 1.0 / np.maximum(np.nan_to_num(sigma_g[b_codes], nan=np.inf), 1e-6) ** 2
            scene_effect = loo_group_weighted_median(
                s_codes, np.where(pool, centred, 0.0), pool, w_pool
            )
        else:
            scene_effect = loo_group_median(s_codes, np.where(pool, centred, 0.0), pool)
        scene_sigma = np.zeros(len(obs))
        if it > 0 and np.isfinite(sigma_clim):
            # too few buildings believed idle: the scene's expected effect (climatology) stands in
            thin = n_pool[s_codes] - pool.astype(int) < p.min_pool
            scene_effect = np.where(thin, clim, scene_effect)
            scene_sigma = np.where(thin, sigma_clim, 0.0)
        resid = contrast - scene_effect
        ok = valid & np.isfinite(resid)
        use = ok & in_period & ~fallback[b_codes] & (scene_sigma == 0.0)
        if fallback.any():
            auto = _auto_use(b_codes, doy, np.where(ok, resid, 0.0), ok, n_b, p)
            use = use | (auto & fallback[b_codes])
        if it == 0 and scaled_scene.any():
            # screening pass: the idle levels from L2 rows alone where a building has them, so
            # that the first L1 scales are not diluted by the not yet scaled L1 rows
            use2 = use & ~scaled_scene[s_codes]
            enough = np.bincount(b_codes[use2], minlength=n_b) >= 3
            use = np.where(enough[b_codes], use2, use)
        fit, sigma_g, n_base, _ = _fit_baseline(b_codes, doy, np.where(ok, resid, 0.0), use, n_b, p)
        level = np.where(np.isfinite(fit), fit, 0.0)
        row_sigma = sigma_g[b_codes]
        if p.idle_regression and it > 0:
            # the building's own response to the day: resid = contrast - S is regressed on
            # S itself (coefficient beta - 1), the scene covariates and the harmonic
            design = np.column_stack(
                [harmonic, np.nan_to_num(scene_effect), *covariates.values(), *step_cols]
            )
            y = np.where(ok, resid, np.nan)
            fit, coef, spread, leverage, _ = fit_idle_regression(
                b_codes, design, y, use, n_b, p.ridge_scenes
            )
            if p.baseline_steps and period is not None and it == 1:
                # one search, on the first regression's residuals; its steps enter every later
                # pass's design from the start
                sun = None
                if "sun_elevation" in obs.columns:
                    sun = np.sin(np.radians(obs["sun_elevation"].to_numpy(dtype=float)))
                step_at = baseline_change_points(
                    b_codes, t_rows, y - fit, use & ~fallback[b_codes], n_b, p.step_alpha, solar=sun
                )
                after = t_rows >= step_at[b_codes]
                if after.any():
                    step_cols = [after.astype(float)]
                    if sun is not None:
                        step_cols.append(np.where(after, np.nan_to_num(sun), 0.0))
                    design = np.column_stack([design, *step_cols])
                    fit, coef, spread, leverage, _ = fit_idle_regression(
                        b_codes, design, y, use, n_b, p.ridge_scenes
                    )
            sigma_g = np.maximum(spread, p.sigma_floor_k)
            sigma_g[n_base == 0] = np.nan
            # prediction error of the fitted idle level, robust fit at 95 % efficiency
            row_sigma = np.maximum(
                spread[b_codes] * np.sqrt(1.0 + leverage / 0.95), p.sigma_floor_k
            )
            row_sigma[(n_base == 0)[b_codes]] = np.nan
            beta = 1.0 + np.nan_to_num(coef[b_codes, 3])
        if fallback.any() and (~fallback & np.isfinite(sigma_g)).any():
            # a fallback (auto) baseline is fitted on the lower part of a building's own record,
            # which is tighter than an idle period: never trust it more than a typical building
            # with a period baseline
            pooled = float(np.nanmedian(sigma_g[~fallback]))
            sigma_g = np.where(fallback, np.maximum(sigma_g, pooled), sigma_g)
            row_sigma = np.where(fallback[b_codes], np.maximum(row_sigma, pooled), row_sigma)
        if it == 0:
            clim, sigma_clim = _scene_climatology(
                s_codes, doy, contrast - level, valid & np.isfinite(fit), use, n_s, p
            )
            scene_effect_screen = clim
            resid_screen = contrast - scene_effect_screen
            sig_screen = np.sqrt(sigma_g[b_codes] ** 2 + np.nan_to_num(sigma_clim) ** 2)
            z_screen = (resid_screen - fit) / sig_screen
            looks_active = ok & (z_screen > p.pool_z_max)
            continue
        s0 = _group_median(b_codes, sig_meas, use, n_b)
        extra = np.maximum(sig_meas**2 - np.nan_to_num(s0[b_codes]) ** 2, 0.0)
        total = np.sqrt(row_sigma**2 + extra + (beta * scene_sigma) ** 2)
        z = (resid - fit) / total
        if p.calibrate_levels and scaled_scene.any():
            # each level its own noise scale, before the pool of the next pass is chosen
            # (the roof's own noise only: a thin pool's climatology term keeps its own sigma)
            factor = level_noise_factors(z, use & np.isfinite(z), scaled_scene[s_codes])
            own = factor**2 * (row_sigma**2 + extra)
            total = np.maximum(np.sqrt(own + (beta * scene_sigma) ** 2), p.sigma_floor_k)
            z = (resid - fit) / total
        if p.scene_noise:
            # each scene its own noise scale, measured on the buildings believed idle in it
            f_scene = scene_noise_factors(z, s_codes, pool & ok, n_s)[s_codes]
            total = total * f_scene
            z = (resid - fit) / total
        looks_active = ok & (z > p.pool_z_max)
        logger.debug(
            "anomaly iteration %d: %d of %d valid look active", it, looks_active.sum(), ok.sum()
        )

    resid = contrast - scene_effect
    ok = valid & np.isfinite(resid) & np.isfinite(fit) & np.isfinite(row_sigma)
    nan = np.full(len(obs), np.nan)
    obs["valid"] = valid
    obs["scene_effect_k"] = np.where(valid, scene_effect, nan)
    obs["residual_k"] = np.where(valid, resid, nan)
    obs["baseline_k"] = np.where(ok, fit, nan)
    obs["baseline_sigma_k"] = np.where(ok, row_sigma, nan)
    obs["anomaly_k"] = np.where(ok, resid - fit, nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        obs["anomaly_sigma_k"] = np.where(ok, total, nan)
    obs["z"] = np.where(ok, z, nan)
    method = np.where(fallback, "auto-fallback" if period is not None else "auto", "period")
    method = np.where(n_valid_b == 0, "none", method)
    obs["baseline_method"] = method[b_codes]
    obs["level_scale"] = tau
    obs["baseline_step"] = after
    if period is not None and fallback.any():
        names = [str(b_uniques[int(i)]) for i in np.flatnonzero(fallback & (n_valid_b > 0))]
        if names:
            logger.warning(
                "%d building(s) have fewer than %d valid scenes in the baseline period; "
                "using the auto baseline for them: %s",
                len(names),
                p.min_baseline_scenes,
                ", ".join(names[:10]) + (" ..." if len(names) > 10 else ""),
            )
    return obs


#: A ring quadrant this much warmer than usual (and than ``RING_HOT_SIGMA`` of its own spread)
#: marks the ring as contaminated, K.
RING_HOT_MIN_K = 1.0
RING_HOT_SIGMA = 4.0
#: ... unless the roof's own anomaly is at least this multiple of the quadrant's excess (a
#: working roof warms its own ring a little, evenly for a compact roof).
RING_HOT_OWN_SHARE = 2.0
#: ... or a mapped warm neighbour explains it (its spill onto the roof above this), K.
RING_HOT_SPILL_K = 0.1


def ring_contamination(obs: pd.DataFrame, baseline: str | None = DEFAULT_BASELINE) -> np.ndarray:
    """Observations whose background ring is warmed on one side by something unmapped.

    A paved yard, a new shed or any hot surface that is not a footprint raises one quadrant of
    the ring (``ring_hot_sector_k``, the warmest quadrant's mean minus the median of the four)
    and spills onto the roof as well: the roof then looks warmer than its idle self without
    working.  A row is flagged when its ``ring_hot_sector_k`` exceeds the building's usual level
    (median over its valid baseline-period rows, or over all its valid rows without a period) by
    more than ``max(RING_HOT_MIN_K, RING_HOT_SIGMA x 1.4826 MAD)``, the roof's own anomaly is
    not large beside it (below ``RING_HOT_OWN_SHARE`` times that excess) and no mapped warm
    neighbour spills onto it (``spill_k`` below ``RING_HOT_SPILL_K``).  Such a scene says
    nothing about the building's activity: it is ``uncertain`` and enters no accumulated test.

    Parameters
    ----------
    obs : pandas.DataFrame
        Analysed observations (``building_id, acquired, valid, anomaly_k`` and, when present,
        ``ring_hot_sector_k``, ``spill_k``).
    baseline : str or None
        The analysis baseline (``"START:END"`` or ``"auto"``).

    Returns
    -------
    numpy.ndarray
        Boolean per row (all False without ``ring_hot_sector_k``).
    """
    n = len(obs)
    if "ring_hot_sector_k" not in obs.columns or n == 0:
        return np.zeros(n, dtype=bool)
    hot = obs["ring_hot_sector_k"].to_numpy(dtype=float)
    valid = obs["valid"].to_numpy(dtype=bool) if "valid" in obs else np.ones(n, bool)
    use = valid & np.isfinite(hot)
    period = parse_baseline(baseline)
    if period is not None:
        t = pd.to_datetime(obs["acquired"], utc=True)
        in_period = ((t >= period[0]) & (t <= period[1])).to_numpy()
        codes, _ = pd.factorize(obs["building_id"], sort=False)
        n_b = int(codes.max()) + 1
        enough = np.bincount(codes[use & in_period], minlength=n_b) >= 5
        use = use & np.where(enough[codes], in_period, True)
    else:
        codes, _ = pd.factorize(obs["building_id"], sort=False)
        n_b = int(codes.max()) + 1
    centre, mad = _group_centre_mad(codes, hot, use, n_b)
    limit = np.maximum(RING_HOT_MIN_K, RING_HOT_SIGMA * MAD_TO_SIGMA * mad)
    excess = hot - centre[codes]
    anomaly = np.nan_to_num(obs["anomaly_k"].to_numpy(dtype=float), nan=0.0)
    spill = (
        np.nan_to_num(obs["spill_k"].to_numpy(dtype=float), nan=0.0)
        if "spill_k" in obs.columns
        else np.zeros(n)
    )
    with np.errstate(invalid="ignore"):
        flag = (
            valid
            & np.isfinite(excess)
            & (excess > limit[codes])
            & (anomaly < RING_HOT_OWN_SHARE * excess)
            & (spill < RING_HOT_SPILL_K)
        )
    return np.asarray(flag)
