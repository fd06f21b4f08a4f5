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
    pool = np.asarray(pool, dtype=bool) & np.isfinite(weights) & (np.asarray(weights) > 0)
    out = np.full(codes.size, np.nan)
    if codes.size == 0 or not pool.any():
        return out
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for rows in np.split(order, bounds):
        members = rows[pool[rows]]
        if members.size == 0:
            continue
        srt = members[np.argsort(values[members], kind="stable")]
        v = values[srt]
        w = np.asarray(weights, dtype=float)[srt]
        # other-members weight matrix: row r = the group's rows, column k = sorted members
        own = rows[:, None] == srt[None, :]
        wk = np.where(own, 0.0, w[None, :])
        cum = np.cumsum(wk, axis=1)
        total = cum[:, -1]
        reach = (cum >= 0.5 * total[:, None]) & ~own & (total[:, None] > 0)
        has = reach.any(axis=1)
        first = np.argmax(reach, axis=1)
        out[rows[has]] = v[first[has]]
    return out


def _group_median(codes: np.ndarray, values: np.ndarray, use: np.ndarray, n: int) -> np.ndarray:
    """Median of ``values[use]`` per group code (NaN for empty groups)."""
    out = np.full(n, np.nan)
    if use.any():
        med = pd.Series(values[use]).groupby(codes[use]).median()
        out[med.index.to_numpy()] = med.to_numpy()
    return out


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
        for _ in range(4):
            A = np.zeros((n_groups, 3, 3))
            B = np.zeros((n_groups, 3))
            for i in range(3):
                B[:, i] = np.bincount(c, weights=w * Xr[:, i] * yr, minlength=n_groups)
                for j in range(i, 3):
                    s = np.bincount(c, weights=w * Xr[:, i] * Xr[:, j], minlength=n_groups)
                    A[:, i, j] = s
                    A[:, j, i] = s
            fit_groups = seasonal & (np.abs(np.linalg.det(A)) > 1e-9)
            sol = np.linalg.solve(A[fit_groups], B[fit_groups][..., None])[..., 0]
            coef[fit_groups] = sol
            r = yr - np.einsum("ij,ij->i", Xr, coef[c])
            mad = _group_median(c, np.abs(r), np.ones(r.size, bool), n_groups)
            scale = np.maximum(MAD_TO_SIGMA * mad[c], 1e-6) * 4.685
            u = r / scale
            w = np.where(np.abs(u) < 1.0, (1.0 - u**2) ** 2, 0.0)
    return np.einsum("ij,ij->i", X, coef[codes])


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


def compute_anomalies(
    observations: pd.DataFrame,
    baseline: str | None = DEFAULT_BASELINE,
    params: AnomalyParams | None = None,
    *,
    signal: str = "contrast_k",
    signal_sigma: str | None = None,
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

    Returns
    -------
    pandas.DataFrame
        A copy of ``observations`` (sorted by ``building_id, acquired``, fresh index) with columns
        ``valid`` (bool), ``scene_effect_k``, ``residual_k`` (contrast - scene effect),
        ``baseline_k``, ``baseline_sigma_k``, ``anomaly_k`` (residual - baseline), ``z`` and
        ``baseline_method``.  Non-valid rows carry NaN in the numeric columns.

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
    obs = observations.copy()
    obs["acquired"] = pd.to_datetime(obs["acquired"], utc=True)
    obs = obs.sort_values(["building_id", "acquired"], kind="stable").reset_index(drop=True)

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

    if period is not None:
        in_period = ((acquired >= period[0]) & (acquired <= period[1])).to_numpy()
        n_period = np.bincount(b_codes[valid & in_period], minlength=n_b)
        fallback = n_period < p.min_baseline_scenes
    else:
        in_period = np.zeros(len(obs), bool)
        fallback = np.ones(n_b, bool)
    n_valid_b = np.bincount(b_codes[valid], minlength=n_b)

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
        centred = contrast - level
        pool = valid & ~looks_active
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
        fit, sigma_g, _, _ = _fit_baseline(b_codes, doy, np.where(ok, resid, 0.0), use, n_b, p)
        level = np.where(np.isfinite(fit), fit, 0.0)
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
        total = np.sqrt(sigma_g[b_codes] ** 2 + extra + scene_sigma**2)
        z = (resid - fit) / total
        looks_active = ok & (z > p.pool_z_max)
        logger.debug(
            "anomaly iteration %d: %d of %d valid look active", it, looks_active.sum(), ok.sum()
        )

    resid = contrast - scene_effect
    ok = valid & np.isfinite(resid) & np.isfinite(fit) & np.isfinite(sigma_g[b_codes])
    nan = np.full(len(obs), np.nan)
    obs["valid"] = valid
    obs["scene_effect_k"] = np.where(valid, scene_effect, nan)
    obs["residual_k"] = np.where(valid, resid, nan)
    obs["baseline_k"] = np.where(ok, fit, nan)
    obs["baseline_sigma_k"] = np.where(ok, sigma_g[b_codes], nan)
    obs["anomaly_k"] = np.where(ok, resid - fit, nan)
    obs["z"] = np.where(ok, z, nan)
    method = np.where(fallback, "auto-fallback" if period is not None else "auto", "period")
    method = np.where(n_valid_b == 0, "none", method)
    obs["baseline_method"] = method[b_codes]
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
