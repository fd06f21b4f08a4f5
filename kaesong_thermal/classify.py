"""States per observation, statuses with persistence and hysteresis, transitions, confidence.

Pure functions on the DataFrame produced by :func:`kaesong_thermal.anomaly.compute_anomalies`
(sorted by ``building_id, acquired``); nothing here opens a file.

Per observation (``state``):

* ``no_data`` - too little valid roof or ring (see ``anomaly.valid_mask``), a NaN contrast, or no
  baseline to compare with;
* ``active`` - ``z >= z_active`` and ``anomaly_k >= min_anomaly_k``;
* ``idle`` - ``z < z_idle``;
* ``uncertain`` - in between.

The default ``z_active = 2.5`` is a one-sided test with a false-alarm probability of 0.62 % per
scene for Gaussian noise, in the family of robust z-score outlier rules [1]_ and the
background-sigma tests of VIIRS Nightfire [2]_ (which use 3-3.5 for a *single* observation); the
persistence rule below turns it into about ``3 p**2 = 1.2e-4`` false switches per valid scene, so a
single-scene three-sigma test is not needed.  ``z_idle = 1.5`` (the one-sided 93 % point) calls a
scene idle only when it sits well inside the baseline's spread; in between is ``uncertain``.

Per building (``status``), scene after scene over its *valid* observations only: a building becomes
active when at least ``need`` of its last ``window`` valid states are ``active`` (default two of the
last three) and becomes idle when ``need`` of them are ``idle``; otherwise it keeps its status
(hysteresis), so a single hot scene only makes a *candidate*.  Before the first decision the status
is ``uncertain``; when no valid observation falls within ``stale_days`` before the date asked for,
the status is ``no_data`` (e.g. a building demolished or a footprint no longer valid).  With
independent scenes and a per-scene false-alarm probability ``p``, a false switch to active needs two
hot scenes in three, probability about ``3 p**2`` per scene.

A persistent moderate excess (``z`` of 1-2 in every scene) never satisfies that rule, so the status
also accumulates evidence: ``Z_k = sum(z) / sqrt(k)`` over the last ``k = accumulate`` valid scenes
(a moving-sum chart of statistical process control [4]_; standard normal for independent unit
``z``).  ``Z_k`` at or above a threshold on two consecutive valid scenes makes the building
active as well (one more scene of delay, far fewer runs of noise): 2.5, raised for
buildings with many valid scenes a year so that the test's false switches stay below
``accumulated_false_rate`` (0.02, the project's budget) per building-year (:func:`accumulated_threshold`); while
``Z_k >= z_accumulated_idle`` (1.0) two idle scenes of three do not make it idle (hysteresis).

``confidence`` is the probability that the status is right, from a logistic model of the
accumulated statistic ``Z_k`` (signed towards the verdict; the median ``z`` of the evidence window
where ``Z_k`` is undefined);
its constants were fitted on simulator runs with seeds kept apart from the evaluation seeds
(``benchmarks/calibrate_confidence.py``).  ``uncertain`` and ``no_data`` carry confidence 0: there is
no verdict to be confident in.

References
----------
.. [1] Iglewicz, B. and Hoaglin, D. C. (1993). *How to Detect and Handle Outliers*. ASQC.
.. [2] Elvidge, C. D., Zhizhin, M., Hsu, F.-C. and Baugh, K. E. (2013). VIIRS Nightfire: satellite
   pyrometry at night. *Remote Sensing* 5(9), 4423-4449.
.. [3] Platt, J. (1999). Probabilistic outputs for support vector machines and comparisons to
   regularized likelihood methods. *Advances in Large Margin Classifiers*, 61-74 (logistic
   calibration of a score).
.. [4] Montgomery, D. C. (2009). *Introduction to Statistical Quality Control*, 6th ed. Wiley,
   ch. 9 (cumulative-sum and moving-average charts: accumulating small persistent shifts).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from kaesong_thermal.errors import AnalysisError

logger = logging.getLogger(__name__)

STATES = ("active", "idle", "uncertain", "no_data")
#: Statuses: the states plus ``changed``, a lasting departure that only grows with the sun (a
#: re-clad or removed roof, a new hot surface beside it): not activity, the baseline is stale.
STATUSES = ("active", "changed", "idle", "uncertain", "no_data")
RULES = ("cusum", "window")

# Logistic calibration of confidence: P(correct) = 1 / (1 + exp(-(a + b * f + c * agree)))
# f = accumulated statistic Z_k of the status (median z of the evidence window where Z_k is not
# defined) signed towards the verdict (clipped to [-10, 10]), agree = share of the window whose
# state equals the verdict. Fitted by benchmarks/calibrate_confidence.py on simulator seeds 11 and
# 12 (the agreement weight c is held at 0; evaluation seeds are kept apart, see docs/method.md).
CONFIDENCE_COEF: dict[str, tuple[float, float, float]] = {
    "active": (-0.636, 0.46, 0.0),
    "idle": (2.22, 0.2, 0.0),
}


@dataclass(frozen=True)
class ClassifyParams:
    """Thresholds of the classifier (defaults defended in the module docstring).

    Attributes
    ----------
    z_active : float
        ``z`` at or above which an observation is ``active`` (2.5: one-sided 0.62 % per scene).
    z_idle : float
        ``z`` below which an observation is ``idle`` (1.5: the one-sided 93 % point).
    min_anomaly_k : float
        Minimum anomaly in kelvin for ``active`` (0.0: let ``z`` decide).
    window : int
        Number of most recent valid observations considered for a status change (3).
    need : int
        How many of them must agree (2); must be more than half of ``window``.
    stale_days : float
        A status without a valid observation within this many days becomes ``no_data`` (180).
    accumulate : int
        Number ``k`` of most recent valid observations in the accumulated statistic
        ``Z_k = sum(z) / sqrt(k)`` (6; 0 or 1 disables it). A persistent excess of ``z = 1.25``
        per scene, invisible to the per-scene rule, gives ``Z_6 = 3``.
    z_accumulated_active : float
        Floor of the ``Z_k`` threshold at which the building becomes active (2.5: one-sided
        0.62 % for independent Gaussian scenes; the rate rule below usually sets a higher one).
    z_accumulated_idle : float
        While ``Z_k`` is at or above this, two idle scenes of three do not make the building idle
        (1.0; hysteresis of the accumulated test).
    accumulated_false_rate : float
        Target false switches of the accumulated test per building-year (0.02, the project's
        budget of false newly-active alerts). A building with ``m`` valid scenes a year tests
        ``m`` windows a year, so its threshold is ``max(z_accumulated_active,
        Phi^-1(1 - rate / m))`` (a Bonferroni bound over the year's windows, conservative since
        neighbouring windows share scenes and two consecutive exceedances are needed): 2.65 at
        5 scenes a year, 2.94 at 12, 3.09 at 20. Chosen on training seeds 11 and 12 (0 false
        alerts in 377 idle building-years; 0.05 and above began to flag a hot-yard neighbour).
        (``rule="window"`` only.)
    rule : str
        ``"cusum"`` (default): the verdict is a switching CUSUM of the scene ``z`` (see
        :func:`status_timeline`), so accumulated evidence makes the per-scene state as well as the
        status; ``"window"``: the earlier rule, ``need`` of the last ``window`` states plus the
        moving-sum test ``Z_k``.
    cusum_k : float
        Reference value of the up-CUSUM, in sigma (1.0: optimal for a shift of two sigma [5]_;
        on tuning draws of the stress simulator 0.75 found a little more (F1 0.243 against
        0.228) at three times the false alerts, and a lower ``k`` also accumulates every slight
        bias of an imperfect model, e.g. a neighbour's spill removed at 80 %).
    cusum_false_rate : float
        Target false switches to active per building-year of the up-CUSUM under Gaussian
        ``z`` (0.02, the project's budget); the decision interval ``h`` follows from Siegmund's
        approximation of the in-control run length and the building's valid scenes a year
        (:func:`cusum_threshold`); below about 2,500 valid scenes a year the floor
        ``cusum_h_min`` is the stricter bound.
    cusum_h_min : float
        Floor of ``h`` (5.0: with clipped scores one scene of z >= 6, two of z >= 3.5 or three
        of z >= 2.67; an in-control run length of about 110,000 scenes for Gaussian z, under
        0.001 false switches per building-year at 27 valid scenes a year).
    z_cap, z_floor : float
        ``z`` is clipped to ``[z_floor, z_cap]`` before it enters a CUSUM (6, -3, a Huber-type
        CUSUM [6]_): one outlying scene adds at most ``z_cap - cusum_k`` = 5, so a single scene
        switches only at z >= 6 (a one-in-10^9 event for Gaussian noise, and the "strong heat"
        of a working hall that an analyst wants at once). Chosen with ``cusum_h_min`` on stress
        draws 101-110: against (4, 4), with working roofs warmer by 0.5 / 1 x their excess
        (``benchmarks/stress_signal.py``) status F1 0.645 -> 0.698 and 0.652 -> 0.717, recall
        of large roofs 0.838 -> 0.856 and 0.842 -> 0.911, delay 2 -> 1.75 and 1 valid scenes,
        false alerts per building-year 0.012 -> 0.008 and 0.027 -> 0.021; at the simulated
        signal F1 0.398 -> 0.381 and recall of large roofs 0.685 -> 0.627 (a weak roof needs
        more evidence under the higher floor).
    idle_k, idle_h : float
        Down-CUSUM ``D = max(0, D + step)`` switching to idle at ``idle_h`` (1.0, 8.0); the
        step is ``idle_k - z`` for a weak roof (and with ``idle_llr=False``), larger for a
        strong one (:func:`idle_step`): eight scenes near ``z = 0`` in a row for a weak roof
        (two to four months of valid scenes), fewer of clearly negative ones; an intermittent
        roof (idle days, weeks off) stays active through its quiet scenes.  8 was chosen on stress draws 101-110 once each level had its
        own noise scale (F1 0.243 -> 0.262, false alerts unchanged; 12 gave 0.258).
    solar_margin : float
        How many standard errors the high-sun median excess of a run must exceed its low-sun
        one for a roof change (3.0).
    pi_on : float
        Share of working scenes inside an operating period, the prior of the per-scene decision
        in an alarm (:func:`scene_thresholds`) and of the run's level (:func:`run_level`).
        0.85 (Sundays and days off; 55-95 % of the working days worked). 1 gives the fixed rule
        ``z >= 0`` active, ``z < -cusum_k`` idle. Chosen on stress draws 101-110 with
        ``idle_llr`` and ``head_start`` (see ``docs/method.md``); at 0.75 a weak roof working
        at ``z`` ~ 1 / ~ 3 on alternate scenes lost a third of its active scenes.
    idle_llr : bool
        Step the idle CUSUM by half the log-likelihood ratio of stopped against working at the
        run's level (:func:`idle_step`; True). False: the fixed step ``idle_k - z``.
    head_start : float
        Share of ``h`` the up-CUSUM starts from after an active building went idle (0.5, the
        fast initial response of Lucas and Crosier 1982 [6]_): a pause is bridged at the first
        warm scene after it.
    """

    z_active: float = 2.5
    z_idle: float = 1.5
    min_anomaly_k: float = 0.0
    window: int = 3
    need: int = 2
    stale_days: float = 180.0
    accumulate: int = 6
    z_accumulated_active: float = 2.5
    z_accumulated_idle: float = 1.0
    accumulated_false_rate: float = 0.02
    rule: str = "cusum"
    cusum_k: float = 1.0
    cusum_false_rate: float = 0.02
    cusum_h_min: float = 5.0
    z_cap: float = 6.0
    z_floor: float = -3.0
    idle_k: float = 1.0
    idle_h: float = 8.0
    solar_margin: float = 3.0
    pi_on: float = 0.85
    idle_llr: bool = True
    head_start: float = 0.5

    def __post_init__(self) -> None:
        if self.window < 1 or not (self.window / 2 < self.need <= self.window):
            raise AnalysisError(
                f"classifier: need={self.need} must be more than half of window={self.window}"
            )
        if self.z_idle > self.z_active:
            raise AnalysisError(
                f"classifier: z_idle={self.z_idle} must not exceed z_active={self.z_active}"
            )
        if self.rule not in RULES:
            raise AnalysisError(
                f"classifier: rule={self.rule!r}: expected one of {', '.join(RULES)}"
            )
        if not 0.0 < self.pi_on <= 1.0:
            raise AnalysisError(f"classifier: pi_on={self.pi_on} must be in (0, 1]")
        if not 0.0 <= self.head_start < 1.0:
            raise AnalysisError(f"classifier: head_start={self.head_start} must be in [0, 1)")
        if not (self.z_floor < 0 < self.cusum_k < self.z_cap) or self.idle_h <= 0:
            raise AnalysisError(
                f"classifier: need z_floor < 0 < cusum_k < z_cap and idle_h > 0 (got "
                f"{self.z_floor}, {self.cusum_k}, {self.z_cap}, {self.idle_h})"
            )
        if self.accumulate < 0 or self.z_accumulated_idle > self.z_accumulated_active:
            raise AnalysisError(
                f"classifier: accumulate={self.accumulate} must be >= 0 and "
                f"z_accumulated_idle={self.z_accumulated_idle} must not exceed "
                f"z_accumulated_active={self.z_accumulated_active}"
            )


def observation_states(obs: pd.DataFrame, params: ClassifyParams | None = None) -> np.ndarray:
    """State of each observation in {active, idle, uncertain, no_data}.

    Parameters
    ----------
    obs : pandas.DataFrame
        Output of :func:`kaesong_thermal.anomaly.compute_anomalies` (``valid``, ``anomaly_k``, ``z``).
    params : ClassifyParams, optional
        Thresholds.

    Returns
    -------
    numpy.ndarray
        Object array of state strings, one per row.
    """
    p = params or ClassifyParams()
    z = obs["z"].to_numpy(dtype=float)
    anomaly = obs["anomaly_k"].to_numpy(dtype=float)
    valid = obs["valid"].to_numpy(dtype=bool) if "valid" in obs else np.ones(len(obs), bool)
    ok = valid & np.isfinite(z) & np.isfinite(anomaly)
    state = np.full(len(obs), "no_data", dtype=object)
    state[ok] = "uncertain"
    state[ok & (z < p.z_idle)] = "idle"
    state[ok & (z >= p.z_active) & (anomaly >= p.min_anomaly_k)] = "active"
    if "ring_contaminated" in obs.columns:
        state[ok & obs["ring_contaminated"].to_numpy(dtype=bool)] = "uncertain"
    return state


def _window_matrix(values: np.ndarray, group_start: np.ndarray, window: int) -> np.ndarray:
    """Columns ``values[i], values[i-1], ...`` (``window`` of them), NaN before the group start."""
    n = values.size
    out = np.full((n, window), np.nan)
    pos = np.arange(n)
    for lag in range(window):
        src = pos - lag
        ok = src >= group_start
        out[ok, lag] = values[src[ok]]
    return out


def accumulated_z(z: np.ndarray, group_start: np.ndarray, k: int) -> np.ndarray:
    """``sum(z) / sqrt(m)`` over the last ``m = min(k, available)`` valid scenes of each building.

    The standardised mean of the recent anomalies (for independent scenes with unit-variance
    ``z`` it is again standard normal), the fixed-window form of the accumulation tests of
    statistical process control [4]_: a persistent moderate excess adds up while noise averages
    out.  NaN for ``k <= 1`` or before a building's second valid scene.

    Parameters
    ----------
    z : numpy.ndarray
        ``z`` of the valid observations, grouped by building, in time order.
    group_start : numpy.ndarray
        Index of each row's first row of its building.
    k : int
        Window length.

    Returns
    -------
    numpy.ndarray
        Accumulated statistic per row.
    """
    if k <= 1 or z.size == 0:
        return np.full(z.size, np.nan)
    zw = _window_matrix(z, group_start, k)
    m = np.sum(np.isfinite(zw), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.nansum(zw, axis=1) / np.sqrt(m)
    return np.where(m >= 2, out, np.nan)


def scenes_per_year(acquired: pd.Series, codes: np.ndarray) -> np.ndarray:
    """Valid scenes per year of each building code over its record (spans under a year: a year).

    Parameters
    ----------
    acquired : pandas.Series
        Acquisition times of the valid observations.
    codes : numpy.ndarray
        Building code per row.

    Returns
    -------
    numpy.ndarray
        One rate per building code.
    """
    if codes.size == 0:
        return np.zeros(0)
    t = pd.to_datetime(acquired, utc=True)
    years = (t - t.min()).dt.total_seconds().to_numpy() / (365.25 * 86400.0)
    n_b = int(codes.max()) + 1
    count = np.bincount(codes, minlength=n_b).astype(float)
    lo = np.full(n_b, np.inf)
    hi = np.full(n_b, -np.inf)
    np.minimum.at(lo, codes, years)
    np.maximum.at(hi, codes, years)
    return np.asarray(count / np.maximum(hi - lo, 1.0))


def accumulated_threshold(
    acquired: pd.Series, codes: np.ndarray, params: ClassifyParams | None = None
) -> np.ndarray:
    """Per-row threshold of the accumulated statistic, from each building's valid-scene rate.

    Parameters
    ----------
    acquired : pandas.Series
        Acquisition times of the valid observations.
    codes : numpy.ndarray
        Building code per row.
    params : ClassifyParams, optional
        ``z_accumulated_active`` (the floor) and ``accumulated_false_rate``.

    Returns
    -------
    numpy.ndarray
        ``max(z_accumulated_active, Phi^-1(1 - rate / m))`` per row, ``m`` the building's valid
        scenes per year over its record (spans under a year count as a year).
    """
    p = params or ClassifyParams()
    if codes.size == 0:
        return np.zeros(0)
    per_year = scenes_per_year(acquired, codes)
    if p.accumulated_false_rate <= 0:
        return np.full(codes.size, np.inf)
    tail = np.clip(p.accumulated_false_rate / per_year, 1e-12, 0.5)
    thr = np.maximum(p.z_accumulated_active, stats.norm.isf(tail))
    return np.asarray(thr[codes])


def cusum_threshold(per_year: np.ndarray, params: ClassifyParams | None = None) -> np.ndarray:
    """Decision interval ``h`` of the up-CUSUM for a target false-switch rate per year.

    Siegmund's approximation of the in-control average run length of a one-sided CUSUM of unit
    Gaussian scores with reference value ``k`` [5]_::

        ARL0(h) = (exp(2 k b) - 2 k b - 1) / (2 k^2),   b = h + 1.166

    is set to ``m / rate`` scenes (``m`` valid scenes a year) and solved for ``h`` (bisection;
    ``ARL0`` increases with ``h``), floored at ``cusum_h_min``.

    Parameters
    ----------
    per_year : numpy.ndarray
        Valid scenes per year of each building (or row).
    params : ClassifyParams, optional
        ``cusum_k``, ``cusum_false_rate``, ``cusum_h_min``.

    Returns
    -------
    numpy.ndarray
        ``h`` per entry (e.g. 6.0 at 12 scenes a year and a rate of 0.005).
    """
    p = params or ClassifyParams()
    m = np.maximum(np.asarray(per_year, dtype=float), 1.0)
    if p.cusum_false_rate <= 0:
        return np.full(m.shape, np.inf)
    target = m / p.cusum_false_rate
    k2 = 2.0 * p.cusum_k
    lo = np.zeros(m.shape)
    hi = np.full(m.shape, 60.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        b = k2 * (mid + 1.166)
        arl = (np.exp(b) - b - 1.0) / (2.0 * p.cusum_k**2)
        below = arl < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return np.asarray(np.maximum(hi, p.cusum_h_min))


#: Observation columns :func:`solar_term` reads.
SOLAR_COLUMNS = ("acquired", "sun_elevation")


def solar_term(obs: pd.DataFrame) -> np.ndarray:
    """Sine of the sun elevation of each observation (the solar forcing of a roof).

    ``sun_elevation`` (degrees, from the scene's MTL) where present; otherwise the noon elevation
    at 38 N from the solar declination of the day (Cooper 1969), a seasonal stand-in.

    Parameters
    ----------
    obs : pandas.DataFrame
        Observations with ``acquired`` and optionally ``sun_elevation``.

    Returns
    -------
    numpy.ndarray
        ``sin(elevation)`` per row, in [0, 1].
    """
    doy = pd.to_datetime(obs["acquired"], utc=True).dt.day_of_year.to_numpy(dtype=float)
    declination = 23.44 * np.sin(2.0 * np.pi * (284.0 + doy) / 365.0)
    proxy = np.sin(np.radians(90.0 - 38.0 + declination))
    if "sun_elevation" in obs.columns:
        elev = pd.to_numeric(obs["sun_elevation"], errors="coerce").to_numpy(dtype=float)
        x = np.where(np.isfinite(elev), np.sin(np.radians(elev)), proxy)
    else:
        x = proxy
    return np.asarray(np.clip(x, 0.0, 1.0))


def _padded(
    values: np.ndarray, codes: np.ndarray, pos: np.ndarray, n_b: int, width: int
) -> np.ndarray:
    out = np.full((n_b, width), np.nan)
    out[codes, pos] = values
    return out


#: Scenes of a CUSUM run kept for the roof-change test (one to three years of valid scenes).
RUN_BUFFER = 48
#: Scenes with a solar term at or below this are "low sun" (a new dark roof's excess has mostly
#: gone, process heat has not; sin(elevation) is about 0.5 in December, 0.7 in March and 0.95
#: in June at 38 N, so about mid-October to early March) ...
LOW_SUN = 0.65
#: ... at or above this "high sun" (about April to August).
HIGH_SUN = 0.85
#: Fewest scenes of each kind in a run for the test to say anything.
MIN_SUN_SCENES = 3
#: A run whose low-sun median excess is below this share of its high-sun median is sun-driven
#: (``b x`` gives about 0.55, ``b (x - 0.45)`` about 0.1), one at or above ``HEAT_RATIO`` is not
#: (process heat is as large or larger in winter).
ROOF_RATIO = 0.65
HEAT_RATIO = 0.9


def _sun_ratio(Yb: np.ndarray, Wb: np.ndarray, Xb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Low-sun over high-sun median excess of each run, and the significance of their gap.

    Medians, so that a few odd scenes (a scene effect that absorbed the excess, a missed cloud)
    cannot make or unmake a seasonal pattern.  The gap ``hi - lo`` is in units of its standard
    error ``1.2533 s sqrt(1/n_lo + 1/n_hi)`` (``s`` the median scene sigma of the run, the
    median's efficiency factor sqrt(pi/2)).  NaN where the run lacks :data:`MIN_SUN_SCENES`
    scenes of either kind.
    """
    inside = Wb > 0
    low = inside & (Xb <= LOW_SUN)
    high = inside & (Xb >= HIGH_SUN)
    n_lo = low.sum(axis=1)
    n_hi = high.sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanmedian(np.where(low, Yb, np.nan), axis=1)
        hi = np.nanmedian(np.where(high, Yb, np.nan), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.nanmedian(np.where(inside, 1.0 / np.sqrt(Wb), np.nan), axis=1)
            se = 1.2533 * s * np.sqrt(1.0 / np.maximum(n_lo, 1) + 1.0 / np.maximum(n_hi, 1))
            ratio = np.where(hi > 0, lo / hi, np.nan)
            gap = (hi - lo) / se
    enough = (n_lo >= MIN_SUN_SCENES) & (n_hi >= MIN_SUN_SCENES)
    return np.where(enough, ratio, np.nan), np.where(enough, gap, np.nan)


def run_level(run_sum: np.ndarray, run_n: np.ndarray, pi_on: float) -> np.ndarray:
    """Signal level ``mu`` of a run: its mean clipped ``z`` over the share of working scenes.

    The clip is the CUSUM's (``[z_floor, z_cap]``): one outlying scene cannot make a roof look
    strong, and a strong roof's level is at most ``z_cap / pi_on``.

    Parameters
    ----------
    run_sum, run_n : numpy.ndarray
        Per building, the sum of the run's clipped ``z`` and its number of scenes.
    pi_on : float
        Share of working scenes inside an operating period (``ClassifyParams.pi_on``).

    Returns
    -------
    numpy.ndarray
        ``mu`` per building (0 for a building without a run).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(run_n > 0, run_sum / np.maximum(run_n, 1.0), 0.0)
    return np.asarray(mean / pi_on)


def idle_step(
    c: np.ndarray, run_sum: np.ndarray, run_n: np.ndarray, params: ClassifyParams | None = None
) -> np.ndarray:
    """Step of the idle CUSUM for clipped scores ``c``.

    ``idle_k - c`` by default.  With ``idle_llr`` the step is half the log-likelihood ratio of
    "stopped" (``z`` ~ N(0, 1)) against "working at the run's level ``mu``" (N(mu, 1)),
    ``mu (mu / 2 - c) / 2`` with ``mu`` at least ``2 idle_k`` (Page 1954; equal to the default
    step at ``mu = 2``): a strongly working roof that scores ``z`` ~ 0 once or twice has
    stopped, a weak one needs about eight such scenes as before.

    Parameters
    ----------
    c : numpy.ndarray
        This scene's clipped ``z`` per building.
    run_sum, run_n : numpy.ndarray
        The run before this scene (:func:`run_level`).
    params : ClassifyParams, optional
        ``idle_k``, ``idle_llr``, ``pi_on``.

    Returns
    -------
    numpy.ndarray
        The step added to ``D`` per building.
    """
    p = params or ClassifyParams()
    if not p.idle_llr:
        return np.asarray(p.idle_k - c)
    mu = np.maximum(run_level(run_sum, run_n, p.pi_on), 2.0 * p.idle_k)
    return np.asarray(mu * (mu / 2.0 - c) / 2.0)


def scene_thresholds(
    run_sum: np.ndarray, run_n: np.ndarray, params: ClassifyParams | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-scene decision points inside an alarm, from the run's own signal level.

    Inside an operating period a scene is either a working day, whose ``z`` is about the
    building's signal level ``mu``, or a day off (Sunday, a week off) at ``z`` ~ N(0, 1). With a
    share ``pi`` of working days (``pi_on``) the posterior log-odds of "working on this
    scene" is ``L(z) = log(pi / (1 - pi)) + mu z - mu^2 / 2`` (two unit-variance Gaussians,
    e.g. Bishop 2006, ch. 4.2), so the scene is ``active`` at ``L >= 0``::

        t_on = mu / 2 - log(pi / (1 - pi)) / mu,   clipped to [0, z_active]

    and ``idle`` where the posterior is under 10 % (``t_off = t_on - log(9) / mu`` before the
    clipping, never below ``-cusum_k``: under it a scene is idle in any alarm). ``mu`` is the
    run's level (:func:`run_level`, since the CUSUM was last 0): a strongly working roof (level
    3.5 or more) gets ``t_on`` ~ 1.3-2 and most of its days off are no longer counted as
    activity; a weak one (``mu`` ~ 1.5) keeps ``t_on`` ~ 0, the rule for weak persistent work.

    Parameters
    ----------
    run_sum, run_n : numpy.ndarray
        Per building, the sum of the clipped ``z`` of the run and its number of scenes.
    params : ClassifyParams, optional
        ``z_active``, ``cusum_k``, ``pi_on``.

    Returns
    -------
    tuple of numpy.ndarray
        ``t_on`` and ``t_off`` per building.
    """
    p = params or ClassifyParams()
    if p.pi_on >= 1.0:
        return np.zeros(run_n.shape), np.full(run_n.shape, -p.cusum_k)
    mu = np.maximum(run_level(run_sum, run_n, p.pi_on), 0.5)
    prior = math.log(p.pi_on / (1.0 - p.pi_on))
    raw = mu / 2.0 - prior / mu
    t_on = np.clip(raw, 0.0, p.z_active)
    t_off = np.minimum(np.maximum(raw - math.log(9.0) / mu, -p.cusum_k), t_on)
    return t_on, t_off


def cusum_decisions(
    z: np.ndarray,
    anomaly: np.ndarray,
    sigma: np.ndarray,
    x: np.ndarray,
    codes: np.ndarray,
    per_year: np.ndarray,
    params: ClassifyParams | None = None,
) -> dict[str, np.ndarray]:
    """Switching CUSUM over each building's valid scenes, with a roof-change test.

    For each building, scene after scene (its valid observations, in time order; vectorised
    across buildings), with ``c = clip(z, z_floor, z_cap)``:

    * up-CUSUM ``C = max(0, C + c - k)`` (Page 1954 [5]_; Huber-clipped scores [6]_);
    * down-CUSUM ``D = max(0, D + step)``, ``step`` from the run's level (:func:`idle_step`);
    * a building that is not active becomes active when ``C >= h`` (:func:`cusum_threshold`),
      and an active or undecided one becomes idle when ``D >= idle_h`` (the run's evidence is
      then reset, ``C`` restarts at ``head_start x h`` after an active period, else at 0);
      ``D`` is a CUSUM of its own, never reset by one warm scene (a roof that stopped keeps
      scoring near ``z = 0`` with the odd ``z >= 1`` among them, and each such scene would
      restart the count); ``changed`` is lasting;
    * the run's evidence (its last :data:`RUN_BUFFER` scenes from its first scene with
      ``z >= z_active`` after ``C`` last was 0, the change point) tells a
      lasting excess that follows the sun from one that does not: a darker roof absorbs more
      sunlight (its excess scales with ``x = sin(sun elevation)``, gone or halved under a low
      sun), process heat does not (and is larger in winter).  With enough low-sun and high-sun
      scenes in the run, a low-sun median excess under ``ROOF_RATIO`` of the high-sun one, the
      gap ``solar_margin`` standard errors wide, makes the verdict ``changed``; a ratio of
      ``HEAT_RATIO`` or more makes a changed building active again (on a scene with
      ``z >= z_active``).  Evidence from one season cannot tell them apart and stays with
      activity; an active building becomes ``changed`` once its run holds both seasons.
      ``changed`` lasts through the low sun, and ends (idle) when the excess is gone under a
      high sun.

    The per-scene state follows the evidence: in an alarm (``C >= h``) a scene at or above the
    posterior decision point of the run (:func:`scene_thresholds`, ``z >= 0`` for a weak roof)
    is ``active`` and one with a posterior under 10 % ``idle``; outside an alarm ``active``
    needs ``z >= z_active`` and ``idle`` is ``z < z_idle``.

    Parameters
    ----------
    z, anomaly, sigma, x : numpy.ndarray
        Per valid row (grouped by building, time order): score, anomaly (K), its total 1-sigma
        (K) and solar term (:func:`solar_term`).
    codes : numpy.ndarray
        Building code per row (rows of a building contiguous).
    per_year : numpy.ndarray
        Valid scenes per year per building code.
    params : ClassifyParams, optional
        Thresholds.

    Returns
    -------
    dict of str to numpy.ndarray
        Per row: ``status`` (active | changed | idle | uncertain), ``state``, ``cusum`` (C),
        ``cusum_idle`` (D), ``h`` and ``sun_ratio`` (the run's low-sun over high-sun median
        excess, NaN until it holds both).

    References
    ----------
    .. [5] Page, E. S. (1954). Continuous inspection schemes. *Biometrika* 41(1/2), 100-115;
       Siegmund, D. (1985). *Sequential Analysis*. Springer (run-length approximation).
    .. [6] Lucas, J. M. and Crosier, R. B. (1982). Robust CUSUM: a robustness study for CUSUM
       quality control schemes. *Communications in Statistics - Theory and Methods* 11(23).
    """
    p = params or ClassifyParams()
    n = z.size
    out_status = np.full(n, "uncertain", dtype=object)
    out_state = np.full(n, "uncertain", dtype=object)
    out_c = np.zeros(n)
    out_d = np.zeros(n)
    out_chi = np.zeros(n)
    if n == 0:
        return {
            "status": out_status,
            "state": out_state,
            "cusum": out_c,
            "cusum_idle": out_d,
            "h": np.zeros(0),
            "sun_ratio": out_chi,
        }
    n_b = int(codes.max()) + 1
    pos = np.arange(n) - _run_starts(codes)
    width = int(pos.max()) + 1
    h_b = cusum_threshold(per_year, p)
    Z = _padded(np.clip(z, p.z_floor, p.z_cap), codes, pos, n_b, width)
    Zraw = _padded(z, codes, pos, n_b, width)
    w_all = np.where(np.isfinite(sigma) & (sigma > 0), 1.0 / np.maximum(sigma, 1e-6) ** 2, 0.0)
    W = _padded(w_all, codes, pos, n_b, width)
    Y = _padded(np.nan_to_num(anomaly), codes, pos, n_b, width)
    X = _padded(x, codes, pos, n_b, width)
    C = np.zeros(n_b)
    D = np.zeros(n_b)
    L = RUN_BUFFER
    armed = np.zeros(n_b, dtype=bool)
    run_sum = np.zeros(n_b)  # clipped z summed over the run (since C last was 0) ...
    run_n = np.zeros(n_b)  # ... and its scenes: the run's signal level
    Yb = np.zeros((n_b, L))
    Wb = np.zeros((n_b, L))
    Xb = np.zeros((n_b, L))
    status = np.zeros(n_b, dtype=np.int8)  # 0 uncertain, 1 idle, 2 active, 3 changed
    S_st = np.zeros((n_b, width), dtype=np.int8)
    S_state = np.zeros((n_b, width), dtype=np.int8)
    S_c = np.zeros((n_b, width))
    S_d = np.zeros((n_b, width))
    S_chi = np.zeros((n_b, width))
    # the run test is a function of the run buffers only: recompute it where they changed
    ratio = np.full(n_b, np.nan)
    gap = np.full(n_b, np.nan)
    dirty = np.ones(n_b, dtype=bool)
    for t in range(width):
        live = np.isfinite(Z[:, t])
        xt = np.nan_to_num(X[:, t])
        c = np.where(live, Z[:, t], 0.0)
        zr = np.where(live, Zraw[:, t], 0.0)
        newc = np.where(live, np.maximum(0.0, C + c - p.cusum_k), C)
        # the run's signal level before this scene scales the idle CUSUM's step
        step = idle_step(c, run_sum, run_n, p)
        restart = live & (C == 0.0) & (newc > 0.0)
        run_sum[restart] = 0.0
        run_n[restart] = 0.0
        in_run = live & (newc > 0.0)
        run_sum[in_run] += c[in_run]
        run_n[in_run] += 1.0
        Wb[restart] = 0.0
        dirty |= restart
        armed &= ~restart
        C = newc
        D = np.where(live, np.minimum(np.maximum(0.0, D + step), p.idle_h), D)
        # the run's evidence starts at its first clearly warm scene (the change point): the
        # near-zero scenes of the CUSUM's build-up would make any switch-on look sun-driven
        armed |= live & (C > 0.0) & (zr >= p.z_active)
        grow = np.flatnonzero(live & (C > 0.0) & armed)
        if grow.size:
            for buf, val in ((Yb, Y[:, t]), (Wb, W[:, t]), (Xb, X[:, t])):
                buf[grow, :-1] = buf[grow, 1:]
                buf[grow, -1] = np.nan_to_num(val[grow])
            dirty[grow] = True
        todo = np.flatnonzero(dirty)
        if todo.size:
            ratio[todo], gap[todo] = _sun_ratio(Yb[todo], Wb[todo], Xb[todo])
            dirty[todo] = False
        alarm = live & (h_b <= C)
        roof_like = (ratio < ROOF_RATIO) & (gap > p.solar_margin)
        heat_like = ratio >= HEAT_RATIO
        # switches
        # a changed roof stays changed through its low-sun (idle-looking) scenes: the change is
        # lasting, the building's idle baseline no longer holds
        was_active = status == 2
        to_idle = live & (p.idle_h <= D) & (status != 1) & (status != 3)
        on = alarm & (status == 1) | (alarm & (status == 0) & ~to_idle)
        held = alarm & ~to_idle
        # a changed roof turns active only on a scene that clearly carries the excess
        warm = held & (zr >= p.z_active)
        status = np.where(on & roof_like, 3, np.where(on, 2, status))
        # an active building whose run now shows a sun-driven excess is a changed roof, be it on
        # a warm scene or as its excess fades under a low sun
        fading = live & (p.idle_h <= D) & (status == 2) & roof_like
        status = np.where((held | fading) & (status == 2) & roof_like, 3, status)
        to_idle &= ~fading
        status = np.where(warm & (status == 3) & heat_like, 2, status)
        # a changed roof whose excess is gone under a high sun has changed back (or never had)
        gone = live & (p.idle_h <= D) & (status == 3) & (xt >= HIGH_SUN)
        status = np.where(gone, 1, status)
        to_idle |= gone
        status = np.where(to_idle & ~on, 1, status)
        to_idle &= ~on
        reset = to_idle
        run_sum[reset] = 0.0
        run_n[reset] = 0.0
        # a building that just stopped starts its next CUSUM with a head start: a restart after
        # a pause is then seen at its first warm scene (fast initial response, Lucas and
        # Crosier 1982)
        C = np.where(reset, np.where(was_active, p.head_start * h_b, 0.0), C)
        Wb[reset] = 0.0
        dirty |= reset
        armed &= ~reset
        # per-scene state, evidence-aware
        st = np.zeros(n_b, dtype=np.int8)  # 0 uncertain
        st = np.where(zr < p.z_idle, 1, st)
        st = np.where(zr >= p.z_active, 2, st)
        in_alarm = h_b <= C
        t_on, t_off = scene_thresholds(run_sum, run_n, p)
        st = np.where(in_alarm & (zr >= t_on), 2, st)
        st = np.where(in_alarm & (zr < t_on), np.where(zr < t_off, 1, 0), st)
        st = np.where((status == 3) & (st == 2), 0, st)  # a changed roof's warm scene: not activity
        S_st[:, t] = status
        S_state[:, t] = st
        S_c[:, t] = C
        S_d[:, t] = D
        S_chi[:, t] = ratio
    names_status = np.array(["uncertain", "idle", "active", "changed"], dtype=object)
    names_state = np.array(["uncertain", "idle", "active"], dtype=object)
    out_status = names_status[S_st[codes, pos]]
    out_state = names_state[S_state[codes, pos]]
    return {
        "status": out_status,
        "state": out_state,
        "cusum": S_c[codes, pos],
        "cusum_idle": S_d[codes, pos],
        "h": h_b[codes],
        "sun_ratio": S_chi[codes, pos],
    }


def confidence_from_features(
    status: np.ndarray, z_med: np.ndarray, agree: np.ndarray, z_acc: np.ndarray | None = None
) -> np.ndarray:
    """Calibrated probability that ``status`` is right (0 for uncertain / no_data).

    Parameters
    ----------
    status : numpy.ndarray
        Status strings.
    z_med : numpy.ndarray
        Median ``z`` of the evidence window.
    agree : numpy.ndarray
        Share (0-1) of the evidence window whose state equals the status.
    z_acc : numpy.ndarray, optional
        Accumulated statistic (:func:`accumulated_z`); where finite it is the feature instead of
        ``z_med``.

    Returns
    -------
    numpy.ndarray
        Confidence in [0, 1].

    References
    ----------
    .. [1] Platt, J. (1999). Probabilistic outputs for support vector machines. *Advances in Large
       Margin Classifiers*, 61-74.
    """
    conf = np.zeros(status.size)
    for name, (a, b, c) in CONFIDENCE_COEF.items():
        sel = status == name
        sign = 1.0 if name == "active" else -1.0
        feature = z_med if z_acc is None else np.where(np.isfinite(z_acc), z_acc, z_med)
        f = np.clip(sign * np.nan_to_num(feature[sel]), -10.0, 10.0)
        conf[sel] = 1.0 / (1.0 + np.exp(-(a + b * f + c * np.nan_to_num(agree[sel]))))
    return conf


def status_timeline(obs: pd.DataFrame, params: ClassifyParams | None = None) -> pd.DataFrame:
    """The status each building has after each of its valid observations.

    Parameters
    ----------
    obs : pandas.DataFrame
        Output of :func:`kaesong_thermal.anomaly.compute_anomalies` with a ``state`` column,
        sorted by ``building_id, acquired``.
    params : ClassifyParams, optional
        Thresholds.

    Returns
    -------
    pandas.DataFrame
        One row per valid observation (index = row label in ``obs``): ``building_id, scene_id,
        acquired, state, status, prev_status, changed, since, n_valid, z_med, anomaly_med_k, agree,
        z_acc, confidence`` and, with ``rule="cusum"``, ``cusum, cusum_idle, h, sun_ratio``
        (:func:`cusum_decisions`; ``state`` is then the evidence-aware state of that function).
        ``changed`` is True where the status differs from the previous one (the status
        ``"changed"`` is a roof change, see :data:`STATUSES`).
    """
    p = params or ClassifyParams()
    v = obs.loc[obs["state"].to_numpy() != "no_data", ["building_id", "scene_id", "acquired"]]
    v = v.copy()
    if p.rule != "cusum":  # the CUSUM rule writes its own, evidence-aware state below
        state = obs.loc[v.index, "state"].to_numpy()
        v["state"] = state
    n = len(v)
    codes, _ = pd.factorize(v["building_id"], sort=False)
    pos = np.arange(n)
    first = np.ones(n, bool)
    if n:
        first[1:] = codes[1:] != codes[:-1]
    group_start = _run_starts(codes)
    n_valid = pos - group_start + 1

    z_valid = obs.loc[v.index, "z"].to_numpy(dtype=float)
    z_acc = accumulated_z(z_valid, group_start, p.accumulate)
    extra: dict[str, np.ndarray] = {}
    if p.rule == "cusum":
        anomaly = obs.loc[v.index, "anomaly_k"].to_numpy(dtype=float)
        if "anomaly_sigma_k" in obs.columns:
            sig = obs.loc[v.index, "anomaly_sigma_k"].to_numpy(dtype=float)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                sig = np.where(z_valid != 0, anomaly / z_valid, np.nan)
        per_year = scenes_per_year(v["acquired"], codes)
        blind = (
            obs.loc[v.index, "ring_contaminated"].to_numpy(dtype=bool)
            if "ring_contaminated" in obs.columns
            else np.zeros(n, dtype=bool)
        )
        # a scene whose ring is contaminated says nothing about activity: no evidence either way
        z_cusum = np.where(blind, np.nan, z_valid)
        extra = cusum_decisions(
            z_cusum,
            anomaly,
            sig,
            # only the columns the solar term reads: a full-row copy would cost the whole table
            solar_term(obs.loc[v.index, [c for c in SOLAR_COLUMNS if c in obs.columns]]),
            codes,
            per_year,
            p,
        )
        status = extra.pop("status")
        state = np.where(blind, "uncertain", extra.pop("state")).astype(object)
        v["state"] = state
    # window matrices are (rows x window): reduce and free each at once (memory at scale)
    n_act = np.nansum(_window_matrix((state == "active").astype(float), group_start, p.window), 1)
    n_idl = np.nansum(_window_matrix((state == "idle").astype(float), group_start, p.window), 1)
    if p.rule != "cusum":
        status = _window_status(n_act, n_idl, z_acc, v["acquired"], codes, first, p)
    prev = np.empty(n, dtype=object)
    if n:
        prev[1:] = status[:-1]
    prev[first] = "uncertain"
    changed = (status != prev) & ~first
    run_start = first | changed
    acq = v["acquired"].to_numpy(dtype="datetime64[ns]")
    since = pd.Series(np.where(run_start, acq, np.datetime64("NaT", "ns"))).groupby(codes).ffill()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        z_med = np.zeros(0)
        a_med = np.zeros(0)
        if n:
            z_med = np.nanmedian(_window_matrix(z_valid, group_start, p.window), axis=1)
            aw = obs.loc[v.index, "anomaly_k"].to_numpy(dtype=float)
            a_med = np.nanmedian(_window_matrix(aw, group_start, p.window), axis=1)
    n_win = np.minimum(n_valid, p.window)
    agree = np.where(status == "active", n_act, np.where(status == "idle", n_idl, 0.0)) / n_win
    v["status"] = status
    v["prev_status"] = prev
    v["changed"] = changed
    v["since"] = pd.to_datetime(since.to_numpy(), utc=True)
    v["n_valid"] = n_valid
    v["z_med"] = z_med
    v["anomaly_med_k"] = a_med
    v["agree"] = agree
    v["z_acc"] = z_acc
    for key, values in extra.items():
        v[key] = values
    v["confidence"] = confidence_from_features(status, z_med, agree, z_acc)
    return v


def _window_status(
    n_act: np.ndarray,
    n_idl: np.ndarray,
    z_acc: np.ndarray,
    acquired: pd.Series,
    codes: np.ndarray,
    first: np.ndarray,
    p: ClassifyParams,
) -> np.ndarray:
    """Statuses of the ``rule="window"`` classifier: ``need`` of ``window`` states, plus ``Z_k``.

    ``n_act`` / ``n_idl``: active / idle states among each row's last ``window`` valid scenes.
    """
    n = n_act.size
    decision = np.full(n, np.nan)
    over = np.nan_to_num(z_acc, nan=-np.inf) >= accumulated_threshold(acquired, codes, p)
    # the accumulated test must hold on two consecutive valid scenes of the building
    acc_on = over.copy()
    if n:
        acc_on[1:] &= over[:-1] & ~first[1:]
        acc_on[0] = False
    acc_hold = np.nan_to_num(z_acc, nan=-np.inf) >= p.z_accumulated_idle
    decision[(n_idl >= p.need) & ~acc_hold] = 0.0
    decision[(n_act >= p.need) | acc_on] = 1.0
    dec = pd.Series(decision).groupby(codes).ffill().to_numpy()
    return np.where(dec == 1.0, "active", np.where(dec == 0.0, "idle", "uncertain")).astype(object)


def _run_starts(codes: np.ndarray) -> np.ndarray:
    """Position of the first row of each row's run of equal ``codes`` (a building's rows)."""
    n = codes.size
    first = np.ones(n, bool)
    first[1:] = codes[1:] != codes[:-1]
    return np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, np.int64)


def _evidence(timeline: pd.DataFrame, rows: np.ndarray, window: int) -> list[list[str]]:
    """Scene ids of the ``window`` valid observations ending at each of ``rows`` (positions)."""
    codes, _ = pd.factorize(timeline["building_id"], sort=False)
    end = np.asarray(rows, dtype=np.int64)
    lo = np.maximum(end - window + 1, _run_starts(codes)[end]) if end.size else end
    # only the scene ids of these windows become Python strings, not the whole column
    need = np.array([i for a, b in zip(lo, end, strict=True) for i in range(a, b + 1)], np.int64)
    picked = [str(s) for s in timeline["scene_id"].take(need).to_numpy()]
    cuts = np.cumsum(end - lo + 1)
    return [picked[b - (e - a + 1) : b] for a, e, b in zip(lo, end, cuts, strict=True)]


STATUS_COLUMNS = (
    "status",
    "confidence",
    "since",
    "last_valid",
    "n_valid",
    "anomaly_k",
    "z",
    "evidence",
)


def status_at(
    timeline: pd.DataFrame,
    building_ids: pd.Index,
    as_of: pd.Timestamp | None = None,
    params: ClassifyParams | None = None,
) -> pd.DataFrame:
    """Status of every building as of a date.

    Parameters
    ----------
    timeline : pandas.DataFrame
        Output of :func:`status_timeline`.
    building_ids : pandas.Index
        Every building to report (those without valid observations get ``no_data``).
    as_of : pandas.Timestamp, optional
        Only observations acquired at or before it count; default: all.
    params : ClassifyParams, optional
        Thresholds (``window`` for the evidence, ``stale_days``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``building_id`` with the columns of ``docs/interfaces.md``: ``status,
        confidence, since, last_valid, n_valid, anomaly_k, z, evidence``; ``anomaly_k`` and ``z``
        are medians over the evidence window.
    """
    p = params or ClassifyParams()
    t = timeline  # positions below, not labels: no full copy of a large timeline
    if as_of is not None:
        t = t.loc[(t["acquired"] <= as_of).to_numpy(dtype=bool)]
    codes, _ = pd.factorize(t["building_id"], sort=False)
    last_pos = np.flatnonzero(~pd.Series(codes).duplicated(keep="last").to_numpy())
    last = t.iloc[last_pos].set_index("building_id")
    out = pd.DataFrame(index=pd.Index(building_ids, name="building_id"))
    out["status"] = last["status"].reindex(out.index).fillna("no_data")
    out["confidence"] = last["confidence"].reindex(out.index).fillna(0.0).astype(float)
    out["since"] = last["since"].reindex(out.index)
    out["last_valid"] = last["acquired"].reindex(out.index)
    out["n_valid"] = last["n_valid"].reindex(out.index).fillna(0).astype(int)
    out["anomaly_k"] = last["anomaly_med_k"].reindex(out.index).astype(float)
    out["z"] = last["z_med"].reindex(out.index).astype(float)
    ev = pd.Series(_evidence(t, last_pos, p.window), index=last.index, dtype=object)
    out["evidence"] = [x if isinstance(x, list) else [] for x in ev.reindex(out.index)]
    ref = as_of if as_of is not None else (t["acquired"].max() if len(t) else None)
    if ref is not None and not pd.isna(ref):
        stale = (ref - out["last_valid"]) > pd.Timedelta(days=p.stale_days)
        stale = stale.fillna(False).to_numpy(dtype=bool)
        out.loc[stale, "status"] = "no_data"
        out.loc[stale, "confidence"] = 0.0
        out.loc[stale, "since"] = pd.NaT
    return out[list(STATUS_COLUMNS)]


TRANSITION_COLUMNS = (
    "building_id",
    "date",
    "scene_id",
    "from_status",
    "to_status",
    "anomaly_k",
    "z",
    "evidence",
)


#: An activation within this many days of the end of the building's previous active period
#: resumes it (a day or weeks off): the building is not newly active (:func:`episode_starts`).
RESUME_DAYS = 60.0


def episode_starts(transitions: pd.DataFrame, within_days: float = RESUME_DAYS) -> np.ndarray:
    """Which transitions into ``active`` start a new active period rather than resume one.

    A strongly working roof is rated idle on a decisive day off and active again at its next
    working scene (:func:`cusum_decisions`): each return is a status change, but an analyst
    watching for newly active buildings wants the building once, when its activity began.
    A transition into ``active`` resumes when the building's previous active period ended (its
    last transition out of ``active``) at most ``within_days`` before it.

    Parameters
    ----------
    transitions : pandas.DataFrame
        :func:`transitions_from` over the whole record (``building_id, date, from_status,
        to_status``); a window that starts inside an active period misses its end.
    within_days : float
        Longest pause that still counts as the same active period (60 days: the longest week
        off of a working plant, with the valid scenes of a cloudy season).

    Returns
    -------
    numpy.ndarray
        Boolean per row, in the rows' order: True for a transition into ``active`` that starts
        an active period.
    """
    n = len(transitions)
    if n == 0:
        return np.zeros(0, dtype=bool)
    bid = transitions["building_id"].astype(str).to_numpy()
    date = pd.to_datetime(transitions["date"], utc=True).to_numpy(dtype="datetime64[ns]")
    order = np.lexsort((date, bid))
    d = date[order]
    is_end = transitions["from_status"].astype(str).to_numpy()[order] == "active"
    # the latest end of an active period strictly before each row, within the building
    last_end = np.maximum.accumulate(np.where(is_end, np.arange(n), -1))
    prev = np.r_[-1, last_end[:-1]]
    has_prev = prev >= _run_starts(bid[order])
    gap = (d - d[np.maximum(prev, 0)]) / np.timedelta64(1, "D")
    to_active = transitions["to_status"].astype(str).to_numpy()[order] == "active"
    start = to_active & ~(has_prev & (gap <= within_days))
    out = np.empty(n, dtype=bool)
    out[order] = start
    return out


def transitions_from(
    timeline: pd.DataFrame,
    obs: pd.DataFrame,
    since: pd.Timestamp | None = None,
    params: ClassifyParams | None = None,
) -> pd.DataFrame:
    """Every status change, with the scene that made it and its evidence.

    Parameters
    ----------
    timeline : pandas.DataFrame
        Output of :func:`status_timeline`.
    obs : pandas.DataFrame
        The observations the timeline was made from (for ``anomaly_k`` and ``z`` of the scene).
    since : pandas.Timestamp, optional
        Only changes acquired strictly after it.
    params : ClassifyParams, optional
        Thresholds (``window`` for the evidence).

    Returns
    -------
    pandas.DataFrame
        Columns ``building_id, date, scene_id, from_status, to_status, anomaly_k, z, evidence``
        sorted by date; newly active buildings are the rows with ``to_status == "active"``.
    """
    p = params or ClassifyParams()
    t = timeline  # positions, not labels: no full copy of a large timeline
    rows = np.flatnonzero(t["changed"].to_numpy(dtype=bool))
    if since is not None:
        rows = rows[(t["acquired"].iloc[rows] > since).to_numpy(dtype=bool)]
    sel = t.iloc[rows]
    src = t.index.to_numpy()[rows]
    out = pd.DataFrame(
        {
            "building_id": sel["building_id"].to_numpy(),
            "date": pd.to_datetime(sel["acquired"].to_numpy(), utc=True),
            "scene_id": sel["scene_id"].to_numpy(),
            "from_status": sel["prev_status"].to_numpy(),
            "to_status": sel["status"].to_numpy(),
            "anomaly_k": obs.loc[src, "anomaly_k"].to_numpy(dtype=float),
            "z": obs.loc[src, "z"].to_numpy(dtype=float),
            "evidence": pd.Series(_evidence(t, rows, p.window), dtype=object).to_numpy(),
        }
    )
    return out.sort_values(["date", "building_id"], kind="stable").reset_index(drop=True)
