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

import numpy as np
import pandas as pd

from kaesong_thermal._time import utc_timestamp
from kaesong_thermal.anomaly import (
    DEFAULT_BASELINE,
    AnomalyParams,
    compute_anomalies,
    ring_contamination,
)
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
        ts = utc_timestamp(value)
    except (ValueError, TypeError) as exc:
        raise AnalysisError(f"{what} {value!r}: not a date ({exc})") from None
    if ts is None:
        raise AnalysisError(f"{what} {value!r}: not a date")
    if not 1900 <= ts.year <= 2261:  # nanosecond timestamps end in April 2262
        raise AnalysisError(f"{what} {value!r}: outside the supported years 1900-2261")
    return ts


@dataclass
class Analysis:
    """Result of :func:`analyze`.

    Attributes
    ----------
    observations : pandas.DataFrame
        Input columns plus ``valid, scene_effect_k, residual_k, baseline_k, baseline_sigma_k,
        anomaly_k, anomaly_sigma_k, z, baseline_method, stratum, state, status, confidence``,
        sorted by ``building_id, acquired`` (``stratum``: the group with its own scene effects
        and baselines; ``status`` / ``confidence``: the persisted verdict after the row,
        :func:`attach_status`).
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


#: Signal columns ``analyze`` knows, best first, with their uncertainty columns.
SIGNALS: dict[str, str] = {"excess_k": "excess_sigma_k", "contrast_k": "sigma_k"}
#: ``signal="auto"`` takes ``excess_k`` only if it is finite for at least this share of the rows
#: whose ``contrast_k`` is finite (a store partly extracted before the PSF estimator existed
#: falls back to ``contrast_k`` rather than mixing two signals in one baseline).
AUTO_SIGNAL_MIN_SHARE = 0.98


def choose_signal(observations: pd.DataFrame, signal: str = "auto") -> str:
    """The signal column ``analyze`` models.

    Parameters
    ----------
    observations : pandas.DataFrame
        Extraction rows.
    signal : str
        ``"auto"`` (``excess_k`` when present for practically every usable row, else
        ``contrast_k``) or a column name.

    Returns
    -------
    str
        The column name.

    Raises
    ------
    AnalysisError
        If a named column is missing.
    """
    if signal != "auto":
        if signal not in observations.columns:
            raise AnalysisError(f"analyze: signal column {signal!r} is not in the observations")
        return signal
    if "excess_k" in observations.columns and "contrast_k" in observations.columns:
        base = np.isfinite(observations["contrast_k"].to_numpy(dtype=float))
        have = np.isfinite(observations["excess_k"].to_numpy(dtype=float))
        if base.sum() == 0 or (have & base).sum() >= AUTO_SIGNAL_MIN_SHARE * base.sum():
            return "excess_k"
        logger.warning(
            "analyze: excess_k is missing for %d of %d usable observations (extracted before "
            "the PSF estimator? re-extract with --force); using contrast_k",
            int((base & ~have).sum()),
            int(base.sum()),
        )
    elif "excess_k" in observations.columns:
        return "excess_k"
    return "contrast_k"


#: Thermal instrument family of each sensor code: TM (Landsat 4/5, 120 m native) and ETM+
#: (Landsat 7, 60 m) on one side, TIRS (Landsat 8/9, 100 m) on the other.  A roof is diluted
#: into its pixels differently by each, so their contrasts get separate baselines.
SENSOR_FAMILY: dict[str, str] = {
    "LT04": "TM/ETM+",
    "LT05": "TM/ETM+",
    "LE07": "TM/ETM+",
    "LC08": "TIRS",
    "LC09": "TIRS",
}
#: Two products of one sensor acquired within this time are the same acquisition (an L1 and an
#: L2 product of a scene carry the same scene-centre time; different passes are days apart).
SAME_ACQUISITION = pd.Timedelta(minutes=5)
LEVEL_RULES = ("pooled", "separate", "l2-only")


def _level(obs: pd.DataFrame) -> pd.Series:
    """``L1`` / ``L2`` per row (``L2`` when the column is absent: the extractor's default)."""
    if "level" not in obs.columns:
        return pd.Series("L2", index=obs.index, dtype=object)
    return obs["level"].astype(str).str.strip().str.upper()


def drop_level1_duplicates(observations: pd.DataFrame) -> pd.DataFrame:
    """Drop L1 rows whose acquisition is also present as L2 (same building and sensor).

    An L1 and an L2 product of the same acquisition (same sensor, acquisition times within
    :data:`SAME_ACQUISITION`) measure the same roof at the same moment; the L2 surface
    temperature is kept (atmospherically corrected, with a per-pixel uncertainty) and the L1
    at-sensor brightness temperature dropped, as the design prefers L2 when both exist [1]_.

    Parameters
    ----------
    observations : pandas.DataFrame
        Rows with ``building_id, acquired`` and, when present, ``sensor, level``.

    Returns
    -------
    pandas.DataFrame
        The rows kept (original index and order).

    References
    ----------
    .. [1] U.S. Geological Survey (2022). *Landsat 8-9 Collection 2 Level 2 Science Product
       Guide*, LSDS-1619 (surface temperature from the Level-1 thermal band).
    """
    level = _level(observations)
    is1 = (level == "L1").to_numpy()
    is2 = (level == "L2").to_numpy()
    if not is1.any() or not is2.any():
        return observations
    keys = ["building_id"] + (["sensor"] if "sensor" in observations.columns else [])
    frame = observations[keys].copy()
    frame["acquired"] = pd.to_datetime(observations["acquired"], utc=True)
    frame["_pos"] = np.arange(len(frame))
    for key in keys:
        frame[key] = frame[key].astype(str)
    left = frame.loc[is1].sort_values("acquired")
    right = frame.loc[is2, [*keys, "acquired"]].sort_values("acquired")
    right["_l2"] = True
    matched = pd.merge_asof(
        left, right, on="acquired", by=keys, tolerance=SAME_ACQUISITION, direction="nearest"
    )
    drop = matched.loc[matched["_l2"].eq(True), "_pos"].to_numpy(dtype=np.int64)
    if drop.size == 0:
        return observations
    keep = np.ones(len(observations), bool)
    keep[drop] = False
    logger.info(
        "analyze: %d L1 observation(s) dropped: the same acquisitions are present as L2",
        int(drop.size),
    )
    return observations.loc[keep]


def strata(observations: pd.DataFrame, levels: str = "separate") -> pd.Series:
    """The analysis group of each row: thermal instrument family, and level unless pooled.

    Parameters
    ----------
    observations : pandas.DataFrame
        Rows with, when present, ``level`` and ``sensor``.
    levels : str
        ``"separate"`` / ``"l2-only"``: processing level and family, e.g. ``"L2 TIRS"``;
        ``"pooled"``: the family alone (``"TIRS"``), L1 and L2 sharing one baseline.

    Returns
    -------
    pandas.Series
        One label per row (same index); an unknown sensor code keeps its own code as family.
    """
    if "sensor" in observations.columns:
        code = observations["sensor"].astype(str).str.strip().str.upper()
        # map each distinct code once (a dict lookup per row would cost seconds on millions)
        family = code.map({c: SENSOR_FAMILY.get(c, c) for c in code.unique()})
    else:
        family = pd.Series("TIRS", index=observations.index, dtype=object)
    if levels == "pooled":
        # categorical: one byte per row, not one string object per row
        return family.astype("category")
    return (_level(observations) + " " + family).astype("category")


def unmix_by_sensor(result: pd.DataFrame, footprints: Any) -> pd.DataFrame:
    """Remove neighbours' spill from the anomalies, with each sensor's own PSF.

    Parameters
    ----------
    result : pandas.DataFrame
        Analysed observations.
    footprints : geopandas.GeoDataFrame
        Indexed by ``building_id``.

    Returns
    -------
    pandas.DataFrame
        Same rows and order, ``anomaly_k, anomaly_sigma_k, z`` unmixed, ``spill_k`` added
        (:func:`kaesong_thermal.spill.unmix_anomalies`).
    """
    from kaesong_thermal.extraction import psf_parameters
    from kaesong_thermal.spill import spill_matrix, unmix_anomalies

    codes = (
        result["sensor"].astype(str).str.upper()
        if "sensor" in result.columns
        else pd.Series("LC08", index=result.index)
    )
    params = {c: psf_parameters(c) for c in codes.unique()}
    out = result.copy()
    out["spill_k"] = np.nan
    for psf in sorted(set(params.values())):
        rows = codes.map(lambda c, psf=psf: params[c] == psf).to_numpy(dtype=bool)
        matrix = spill_matrix(footprints, native_pixel_m=psf[0], psf_fwhm_native=psf[1])
        part = unmix_anomalies(result.loc[rows], matrix)
        for col in ("anomaly_k", "anomaly_sigma_k", "z", "spill_k"):
            out.loc[rows, col] = part[col].to_numpy()
    return out


def attach_status(result: pd.DataFrame, timeline: pd.DataFrame) -> None:
    """Write each observation's evidence-aware ``state`` and its persisted verdict, in place.

    ``status`` / ``confidence`` on a row are the building's verdict after that observation (what
    :meth:`Analysis.status` would say as of its acquisition): set on valid rows from the
    timeline and carried forward over the no-data rows that follow; ``no_data`` / 0 before a
    building's first valid observation.  Alerts are changes of ``status``, never flips of
    ``state``.

    Parameters
    ----------
    result : pandas.DataFrame
        Analysed observations (sorted by ``building_id, acquired``).
    timeline : pandas.DataFrame
        From :func:`kaesong_thermal.classify.status_timeline` on ``result``.
    """
    # labels as small integer codes throughout: a per-row string object costs ~60 bytes, which
    # at millions of rows is gigabytes (the result columns hold the same strings as before)
    rows = result.index.get_indexer(timeline.index)
    names: list[Any] = []
    state = _label_codes(result["state"], names)
    state[rows] = _label_codes(timeline["state"], names)
    status = np.full(len(result), np.nan)
    status[rows] = _label_codes(timeline["status"], names)
    confidence = np.full(len(result), np.nan)
    confidence[rows] = timeline["confidence"].to_numpy(dtype=float)
    keys, _ = pd.factorize(result["building_id"])
    by_building = pd.DataFrame({"status": status, "confidence": confidence}).groupby(keys)
    filled = by_building.ffill()
    if "no_data" not in names:
        names.append("no_data")
    status_codes = filled["status"].fillna(names.index("no_data")).to_numpy().astype(np.int64)
    table = np.array(names, dtype=object)
    result["state"] = table[state]
    result["status"] = pd.Series(table[status_codes], index=result.index, dtype=object)
    result["confidence"] = filled["confidence"].fillna(0.0).to_numpy()


def _label_codes(labels: pd.Series, names: list[Any]) -> np.ndarray:
    """Integer codes of ``labels`` into ``names`` (extended in place with new labels)."""
    codes, uniques = pd.factorize(labels, use_na_sentinel=False)
    lookup = []
    for u in uniques:
        value = None if pd.isna(u) else u
        if value not in names:
            names.append(value)
        lookup.append(names.index(value))
    return np.asarray(lookup, dtype=np.int64)[codes] if len(codes) else np.zeros(0, np.int64)


def analyze(
    observations: pd.DataFrame,
    baseline: str | None = DEFAULT_BASELINE,
    *,
    signal: str = "contrast_k",
    levels: str = "pooled",
    footprints: Any = None,
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
    signal : str
        Per-scene signal to model: ``"contrast_k"`` (default), ``"excess_k"`` (the PSF-aware
        roof excess of the extractor) or ``"auto"`` (``excess_k`` when the observations have it
        for practically every row, else ``contrast_k``; see :func:`choose_signal`). Its
        uncertainty column is ``sigma_k`` / ``excess_sigma_k``. ``contrast_k`` stays the default
        because on the tuning seeds ``excess_k`` separated active from idle scenes no better and
        made the scene effect noisier (``docs/method.md``).
    levels : str
        How L1 and L2 and the two thermal instrument families are combined.  Always: an L1
        observation whose acquisition is also present as L2 is dropped
        (:func:`drop_level1_duplicates`, logged), and each thermal instrument family (TM/ETM+,
        TIRS) is analysed on its own.  ``"pooled"`` (default): L1 and L2 rows of a family share
        scene effects' model and one baseline per building, every L1 scene being put on the L2
        scale by its own attenuation of the idle contrasts
        (:func:`kaesong_thermal.anomaly.level1_scale`): with a third or more of the dates only
        in L1, separate L1 baselines are too short to hold a season and too tight.
        ``"separate"``: every stratum of
        processing level x instrument family (:func:`strata`: L1 at-sensor brightness
        temperature vs L2 surface temperature, whose contrasts differ by the atmosphere's
        attenuation; TM/ETM+ vs TIRS, whose pixels dilute a roof differently) is analysed
        against its own scene effects and its own baselines and spreads, so that only the
        standardised ``z`` and the states are merged into one series per building; a stratum
        with too few scenes in the baseline period uses the ``auto`` baseline, as any building
        does.  ``"l2-only"``: L1 rows are excluded (with a warning) when any L2 row exists.
    footprints : geopandas.GeoDataFrame, optional
        The footprints the observations were extracted with (indexed by ``building_id``).
        Given, each scene's anomalies are unmixed: the spill of warm neighbours through the
        sensor's point-spread function is removed from every building's anomaly
        (:mod:`kaesong_thermal.spill`; column ``spill_k``).  ``detect``, ``status``, ``export``
        and ``report`` pass the store's footprints.
    **thresholds
        Any field of :class:`kaesong_thermal.anomaly.AnomalyParams` (``min_valid_fraction,
        min_ring_px, n_iter, pool_z_max, min_pool, min_baseline_scenes, min_seasonal_scenes,
        sigma_floor_k, auto_clip, weighted_scene_effect, idle_regression, ridge_scenes,
        calibrate_levels, scene_noise``) or :class:`kaesong_thermal.classify.ClassifyParams`
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
    if levels not in LEVEL_RULES:
        raise AnalysisError(f"analyze: levels={levels!r}: expected one of {', '.join(LEVEL_RULES)}")
    if "acquired" in obs.columns and "building_id" in obs.columns:
        obs = drop_level1_duplicates(obs)
        if levels == "l2-only":
            lvl = _level(obs)
            if (lvl == "L2").any() and (lvl == "L1").any():
                logger.warning(
                    "analyze: %d L1 observation(s) excluded (levels='l2-only'): brightness "
                    "temperatures are not comparable with L2 surface temperatures",
                    int((lvl == "L1").sum()),
                )
                obs = obs.loc[(lvl != "L1").to_numpy()]
    column = choose_signal(obs, signal)
    stratum = strata(obs, levels)
    labels = sorted(stratum.unique())
    if len(labels) > 1:
        logger.info(
            "analyze: %d strata analysed against their own baselines: %s",
            len(labels),
            ", ".join(f"{lab} ({int((stratum == lab).sum())} rows)" for lab in labels),
        )
    parts = []
    for lab in labels:
        # one stratum (the usual case): no boolean-mask copy of the whole table
        part = compute_anomalies(
            obs if len(labels) == 1 else obs.loc[(stratum == lab).to_numpy()],
            baseline,
            a_params,
            signal=column,
            signal_sigma=SIGNALS.get(column),
            map_level1=levels == "pooled",
        )
        part["stratum"] = lab
        parts.append(part)
    if len(parts) == 1:
        result = parts[0]
    elif parts:
        result = pd.concat(parts, ignore_index=True)
        result = result.sort_values(["building_id", "acquired"], kind="stable")
        result = result.reset_index(drop=True)
    else:
        result = compute_anomalies(
            obs, baseline, a_params, signal=column, signal_sigma=SIGNALS.get(column)
        )
        result["stratum"] = pd.Series(dtype=object)
    if footprints is not None and len(result):
        result = unmix_by_sensor(result, footprints)
    result["ring_contaminated"] = ring_contamination(result, baseline)
    result["state"] = observation_states(result, c_params)
    timeline = status_timeline(result, c_params)
    attach_status(result, timeline)
    params: dict[str, Any] = {
        "baseline": baseline if baseline is not None else "auto",
        "signal": column,
        "levels": levels,
    }
    params.update(dataclasses.asdict(a_params))
    params.update(dataclasses.asdict(c_params))
    logger.info(
        "analyzed %d observations of %d buildings in %d scenes",
        len(result),
        result["building_id"].nunique(),
        result["scene_id"].nunique(),
    )
    return Analysis(observations=result, params=params, _timeline=timeline, _classify=c_params)
