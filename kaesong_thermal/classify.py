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
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from kaesong_thermal.errors import AnalysisError

logger = logging.getLogger(__name__)

STATES = ("active", "idle", "uncertain", "no_data")

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

    def __post_init__(self) -> None:
        if self.window < 1 or not (self.window / 2 < self.need <= self.window):
            raise AnalysisError(
                f"classifier: need={self.need} must be more than half of window={self.window}"
            )
        if self.z_idle > self.z_active:
            raise AnalysisError(
                f"classifier: z_idle={self.z_idle} must not exceed z_active={self.z_active}"
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
    t = pd.to_datetime(acquired, utc=True)
    years = (t - t.min()).dt.total_seconds().to_numpy() / (365.25 * 86400.0)
    n_b = int(codes.max()) + 1
    count = np.bincount(codes, minlength=n_b).astype(float)
    lo = np.full(n_b, np.inf)
    hi = np.full(n_b, -np.inf)
    np.minimum.at(lo, codes, years)
    np.maximum.at(hi, codes, years)
    per_year = count / np.maximum(hi - lo, 1.0)
    if p.accumulated_false_rate <= 0:
        return np.full(codes.size, np.inf)
    tail = np.clip(p.accumulated_false_rate / per_year, 1e-12, 0.5)
    thr = np.maximum(p.z_accumulated_active, stats.norm.isf(tail))
    return np.asarray(thr[codes])


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
        confidence``.
    """
    p = params or ClassifyParams()
    v = obs.loc[obs["state"].to_numpy() != "no_data", ["building_id", "scene_id", "acquired"]]
    v = v.copy()
    state = obs.loc[v.index, "state"].to_numpy()
    v["state"] = state
    n = len(v)
    codes, _ = pd.factorize(v["building_id"], sort=False)
    pos = np.arange(n)
    first = np.ones(n, bool)
    if n:
        first[1:] = codes[1:] != codes[:-1]
    group_start = np.maximum.accumulate(np.where(first, pos, 0)) if n else pos
    n_valid = pos - group_start + 1

    act = _window_matrix((state == "active").astype(float), group_start, p.window)
    idl = _window_matrix((state == "idle").astype(float), group_start, p.window)
    n_act = np.nansum(act, axis=1)
    n_idl = np.nansum(idl, axis=1)
    z_acc = accumulated_z(obs.loc[v.index, "z"].to_numpy(dtype=float), group_start, p.accumulate)
    decision = np.full(n, np.nan)
    over = np.nan_to_num(z_acc, nan=-np.inf) >= accumulated_threshold(v["acquired"], codes, p)
    # the accumulated test must hold on two consecutive valid scenes of the building
    acc_on = over.copy()
    if n:
        acc_on[1:] &= over[:-1] & ~first[1:]
        acc_on[0] = False
    acc_hold = np.nan_to_num(z_acc, nan=-np.inf) >= p.z_accumulated_idle
    decision[(n_idl >= p.need) & ~acc_hold] = 0.0
    decision[(n_act >= p.need) | acc_on] = 1.0
    dec = pd.Series(decision).groupby(codes).ffill().to_numpy()
    status = np.where(dec == 1.0, "active", np.where(dec == 0.0, "idle", "uncertain")).astype(
        object
    )
    prev = np.empty(n, dtype=object)
    if n:
        prev[1:] = status[:-1]
    prev[first] = "uncertain"
    changed = (status != prev) & ~first
    run_start = first | changed
    acq = v["acquired"].to_numpy(dtype="datetime64[ns]")
    since = pd.Series(np.where(run_start, acq, np.datetime64("NaT", "ns"))).groupby(codes).ffill()

    zw = _window_matrix(obs.loc[v.index, "z"].to_numpy(dtype=float), group_start, p.window)
    aw = _window_matrix(obs.loc[v.index, "anomaly_k"].to_numpy(dtype=float), group_start, p.window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        z_med = np.nanmedian(zw, axis=1) if n else np.zeros(0)
        a_med = np.nanmedian(aw, axis=1) if n else np.zeros(0)
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
    v["confidence"] = confidence_from_features(status, z_med, agree, z_acc)
    return v


def _evidence(timeline: pd.DataFrame, rows: np.ndarray, window: int) -> list[list[str]]:
    """Scene ids of the ``window`` valid observations ending at each of ``rows`` (positions)."""
    codes, _ = pd.factorize(timeline["building_id"], sort=False)
    scenes = timeline["scene_id"].to_numpy()
    out = []
    for r in rows:
        lo = r
        while lo > 0 and r - lo + 1 < window and codes[lo - 1] == codes[r]:
            lo -= 1
        out.append([str(s) for s in scenes[lo : r + 1]])
    return out


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
    t = timeline.reset_index(drop=True)
    if as_of is not None:
        t = t.loc[t["acquired"] <= as_of].reset_index(drop=True)
    last_pos = t.groupby("building_id", sort=False).tail(1).index.to_numpy()
    last = t.loc[last_pos].set_index("building_id")
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
    t = timeline.reset_index()
    rows = np.flatnonzero(t["changed"].to_numpy(dtype=bool))
    if since is not None:
        rows = rows[(t["acquired"].iloc[rows] > since).to_numpy(dtype=bool)]
    sel = t.iloc[rows]
    src = sel["index"].to_numpy()
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
