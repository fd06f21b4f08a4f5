"""``analyze``: observations in, per-building verdicts out.

Chains :mod:`kaesong_thermal.anomaly` (scene effect, idle baseline, anomaly, robust z) and
:mod:`kaesong_thermal.classify` (states, statuses with persistence, transitions, confidence).
The model and its defaults are described in ``docs/method.md``.

Example
-------
>>> import kaesong_thermal as kt                                    # doctest: +SKIP
>>> analysis = kt.analyze(observations)                             # doctest: +SKIP
>>> analysis.status(as_of="2025-11-05")                             # doctest: +SKIP
>>> analysis.transitions(since="2025-01-01").query("to_status == 'active'")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kaesong_thermal.anomaly import DEFAULT_BASELINE, AnomalyParams, compute_anomalies
from kaesong_thermal.classify import (
    ClassifyParams,
    observation_states,
    status_at,
    status_timeline,
    transitions_from,
)
from kaesong_thermal.errors import AnalysisError

logger = logging.getLogger(__name__)

_ANOMALY_FIELDS = {f.name for f in dataclasses.fields(AnomalyParams)}
_CLASSIFY_FIELDS = {f.name for f in dataclasses.fields(ClassifyParams)}


def _timestamp(value: Any, what: str) -> pd.Timestamp | None:
    """A UTC timestamp from a date-like value (None stays None)."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise AnalysisError(f"{what} {value!r}: not a date ({exc})") from None
    if ts is pd.NaT or pd.isna(ts):
        raise AnalysisError(f"{what} {value!r}: not a date")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@dataclass
class Analysis:
    """Result of :func:`analyze`.

    Attributes
    ----------
    observations : pandas.DataFrame
        Input columns plus ``valid, scene_effect_k, residual_k, baseline_k, baseline_sigma_k,
        anomaly_k, z, baseline_method, state``, sorted by ``building_id, acquired``.
    params : dict
        Every threshold used (baseline included).
    """

    observations: pd.DataFrame
    params: dict[str, Any]
    _timeline: pd.DataFrame = field(repr=False)
    _classify: ClassifyParams = field(repr=False)

    def status(self, as_of: Any = None) -> pd.DataFrame:
        """Status of every building as of a date (default: after the last observation).

        Parameters
        ----------
        as_of : str, datetime or pandas.Timestamp, optional
            Only observations acquired on or before it count (a bare date means the end of that
            day, UTC).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``building_id``: ``status, confidence, since, last_valid, n_valid,
            anomaly_k, z, evidence`` (see ``docs/interfaces.md``).
        """
        ts = _timestamp(as_of, "as_of")
        if ts is not None and isinstance(as_of, str) and len(as_of.strip()) <= 10:
            ts = ts + pd.Timedelta(days=1) - pd.Timedelta(1)
        ids = pd.Index(self.observations["building_id"].unique())
        return status_at(self._timeline, ids, ts, self._classify)

    def transitions(self, since: Any = None) -> pd.DataFrame:
        """Every status change after ``since`` (default: all), oldest first.

        Parameters
        ----------
        since : str, datetime or pandas.Timestamp, optional
            Only changes on scenes acquired strictly after it.

        Returns
        -------
        pandas.DataFrame
            ``building_id, date, scene_id, from_status, to_status, anomaly_k, z, evidence``;
            newly active buildings are the rows with ``to_status == "active"``.
        """
        ts = _timestamp(since, "since")
        return transitions_from(self._timeline, self.observations, ts, self._classify)

    @property
    def timeline(self) -> pd.DataFrame:
        """Status after every valid observation (``status, confidence, since, ...``)."""
        return self._timeline


def analyze(
    observations: pd.DataFrame,
    baseline: str | None = DEFAULT_BASELINE,
    **thresholds: Any,
) -> Analysis:
    """Anomalies, states, statuses and transitions for a table of observations.

    Parameters
    ----------
    observations : pandas.DataFrame
        Rows from :func:`kaesong_thermal.extraction` (``building_id, scene_id, acquired, contrast_k,
        sigma_k, valid_fraction, ring_valid_px`` are used; other columns are carried along).
        Duplicate (building, scene) rows keep the last one.
    baseline : str, optional
        ``"START:END"`` idle period (default ``"2016-03-01:2022-12-31"``, Kaesong's closure) or
        ``"auto"``.
    **thresholds
        Any field of :class:`kaesong_thermal.anomaly.AnomalyParams` (``min_valid_fraction,
        min_ring_px, n_iter, pool_z_max, min_pool, min_baseline_scenes, min_seasonal_scenes,
        sigma_floor_k, auto_clip``) or :class:`kaesong_thermal.classify.ClassifyParams`
        (``z_active, z_idle, min_anomaly_k, window, need, stale_days``).

    Returns
    -------
    Analysis

    Raises
    ------
    AnalysisError
        Unknown threshold, missing columns, malformed baseline.

    References
    ----------
    .. [1] Iglewicz, B. and Hoaglin, D. C. (1993). *How to Detect and Handle Outliers*. ASQC.
    .. [2] Elvidge, C. D. et al. (2013). VIIRS Nightfire: satellite pyrometry at night.
       *Remote Sensing* 5(9), 4423-4449.
    """
    unknown = set(thresholds) - _ANOMALY_FIELDS - _CLASSIFY_FIELDS
    if unknown:
        raise AnalysisError(f"analyze: unknown threshold(s) {', '.join(sorted(unknown))}")
    if not isinstance(observations, pd.DataFrame):
        raise AnalysisError(f"analyze: observations must be a DataFrame, not {type(observations)}")
    a_params = AnomalyParams(**{k: v for k, v in thresholds.items() if k in _ANOMALY_FIELDS})
    c_params = ClassifyParams(**{k: v for k, v in thresholds.items() if k in _CLASSIFY_FIELDS})
    obs = observations
    if {"building_id", "scene_id"} <= set(obs.columns):
        dup = obs.duplicated(["building_id", "scene_id"], keep="last")
        if dup.any():
            logger.warning("analyze: %d duplicate (building, scene) rows dropped", int(dup.sum()))
            obs = obs.loc[~dup]
    result = compute_anomalies(obs, baseline, a_params)
    result["state"] = observation_states(result, c_params)
    timeline = status_timeline(result, c_params)
    params: dict[str, Any] = {"baseline": baseline if baseline is not None else "auto"}
    params.update(dataclasses.asdict(a_params))
    params.update(dataclasses.asdict(c_params))
    logger.info(
        "analyzed %d observations of %d buildings in %d scenes",
        len(result),
        result["building_id"].nunique(),
        result["scene_id"].nunique(),
    )
    return Analysis(observations=result, params=params, _timeline=timeline, _classify=c_params)
