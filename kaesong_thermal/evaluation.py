"""Score the detector against a simulator run's ground truth.

The metric functions are pure (arrays / DataFrames in, numbers out); only :func:`evaluate` reads
files: the simulator's ``truth.csv`` (which the detector itself never sees), the observations (from
a store, or extracted from the simulated products) and it writes ``evaluation.json`` and PNG plots.

Truth for a *status* is whether the building is operating: the share of the building's scenes
within +/- ``operating_window_days`` that the simulator marks active is at least one half (a
Sunday or a day off inside a working period is still "operating"; a single sporadic day in an idle
year is not).  Observation-level metrics use the per-scene ``active`` flag.

References
----------
.. [1] Naeini, M. P., Cooper, G. F. and Hauskrecht, M. (2015). Obtaining well calibrated
   probabilities using Bayesian binning. *Proceedings of AAAI* 29, 2901-2907 (expected
   calibration error).
.. [2] Currie, L. A. (1968). Limits for qualitative detection and quantitative determination.
   *Analytical Chemistry* 40(3), 586-593 (detection limit at given false-alarm and miss rates).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kaesong_thermal.anomaly import DEFAULT_BASELINE, parse_baseline
from kaesong_thermal.errors import AnalysisError

logger = logging.getLogger(__name__)

NATIVE_PIXEL_M2 = 10_000.0  # one 100 m TIRS native pixel


# ------------------------------------------------------------------------------------------
# pure metrics


def precision_recall_f1(predicted: Any, truth: Any) -> dict[str, float]:
    """Precision, recall and F1 of a boolean prediction.

    Parameters
    ----------
    predicted, truth : array-like of bool
        Same length.

    Returns
    -------
    dict
        ``precision, recall, f1, tp, fp, fn, tn, n`` (NaN where a ratio is 0/0).
    """
    p = np.asarray(predicted, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise AnalysisError(f"metrics: predicted {p.shape} and truth {t.shape} differ in shape")
    tp = int(np.sum(p & t))
    fp = int(np.sum(p & ~t))
    fn = int(np.sum(~p & t))
    tn = int(np.sum(~p & ~t))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "n": int(p.size),
    }


def expected_calibration_error(confidence: Any, correct: Any, n_bins: int = 10) -> float:
    """Expected calibration error: bin-weighted mean |accuracy - mean confidence| [1]_.

    Parameters
    ----------
    confidence : array-like of float
        Predicted probability of being right, in [0, 1].
    correct : array-like of bool
        Whether each prediction was right.
    n_bins : int
        Equal-width bins over [0, 1]; 1.0 falls in the last bin.

    Returns
    -------
    float
        ECE in [0, 1]; NaN for no predictions.
    """
    c = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=float)
    if c.size == 0:
        return float("nan")
    idx = np.clip((c * n_bins).astype(int), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        sel = idx == b
        if sel.any():
            total += sel.sum() / c.size * abs(ok[sel].mean() - c[sel].mean())
    return float(total)


def operating_truth(truth: pd.DataFrame, window_days: float = 21.0) -> pd.Series:
    """Whether each building is operating around each truth row.

    Parameters
    ----------
    truth : pandas.DataFrame
        ``building_id, acquired, active`` (one row per scene and building).
    window_days : float
        Half-width of the centred window, days.

    Returns
    -------
    pandas.Series of bool
        Aligned with ``truth``'s index: share of active rows within +/- ``window_days`` >= 0.5.
    """
    t = truth[["building_id", "acquired", "active"]].copy()
    t["acquired"] = pd.to_datetime(t["acquired"], utc=True)
    t = t.sort_values(["building_id", "acquired"])
    out = pd.Series(False, index=truth.index)
    span = pd.Timedelta(days=window_days)
    for _, g in t.groupby("building_id", sort=False):
        times = g["acquired"].to_numpy(dtype="datetime64[ns]")
        act = g["active"].to_numpy(dtype=float)
        cs = np.concatenate(([0.0], np.cumsum(act)))
        lo = np.searchsorted(times, times - span.to_timedelta64(), side="left")
        hi = np.searchsorted(times, times + span.to_timedelta64(), side="right")
        share = (cs[hi] - cs[lo]) / np.maximum(hi - lo, 1)
        out.loc[g.index] = share >= 0.5
    return out


def false_alert_rate(alerts: pd.DataFrame, n_building_years: float) -> dict[str, float]:
    """False newly-active alerts per building-year.

    Parameters
    ----------
    alerts : pandas.DataFrame
        Transitions into active within the period, with a boolean column ``true_alert``.
    n_building_years : float
        Building-years observed in the period.

    Returns
    -------
    dict
        ``n_alerts, n_false, building_years, false_per_building_year``.
    """
    n_false = int((~alerts["true_alert"].astype(bool)).sum()) if len(alerts) else 0
    rate = n_false / n_building_years if n_building_years > 0 else float("nan")
    return {
        "n_alerts": len(alerts),
        "n_false": n_false,
        "building_years": float(n_building_years),
        "false_per_building_year": rate,
    }


def switch_on_events(truth_op: pd.DataFrame, min_idle_days: float = 60.0) -> pd.DataFrame:
    """True switch-on dates: first operating scene after at least ``min_idle_days`` not operating.

    Parameters
    ----------
    truth_op : pandas.DataFrame
        ``building_id, acquired, operating`` (bool).
    min_idle_days : float
        Minimum preceding idle span, days.

    Returns
    -------
    pandas.DataFrame
        ``building_id, switch_on`` (UTC), one row per event.
    """
    rows = []
    t = truth_op.sort_values(["building_id", "acquired"])
    for bid, g in t.groupby("building_id", sort=False):
        op = g["operating"].to_numpy(dtype=bool)
        times = pd.DatetimeIndex(g["acquired"])
        idle_since = times[0] if len(times) and not op[0] else None
        for i in range(1, len(op)):
            started = op[i] and not op[i - 1]
            if started and idle_since is not None and (times[i] - idle_since).days >= min_idle_days:
                rows.append({"building_id": bid, "switch_on": times[i]})
            if not op[i] and op[i - 1]:
                idle_since = times[i]
    return pd.DataFrame(rows, columns=["building_id", "switch_on"])


def alert_delays(
    events: pd.DataFrame, alerts: pd.DataFrame, valid_obs: pd.DataFrame, max_days: float = 365.0
) -> pd.DataFrame:
    """Delay from each true switch-on to the first alert after it.

    Parameters
    ----------
    events : pandas.DataFrame
        ``building_id, switch_on``.
    alerts : pandas.DataFrame
        Transitions into active: ``building_id, date``.
    valid_obs : pandas.DataFrame
        Valid observations: ``building_id, acquired``.
    max_days : float
        Alerts later than this do not count (the event is missed).

    Returns
    -------
    pandas.DataFrame
        ``building_id, switch_on, alert_date, delay_days, delay_scenes`` (``delay_scenes`` = number
        of valid scenes from the switch-on up to and including the alert scene; NaN if missed).
    """
    out: list[tuple[Any, ...]] = []
    for bid, on_any in zip(events["building_id"], events["switch_on"], strict=True):
        on = pd.Timestamp(on_any)
        a = alerts.loc[(alerts["building_id"] == bid) & (alerts["date"] >= on)]
        a = a.loc[a["date"] <= on + pd.Timedelta(days=max_days)]
        if len(a):
            when = pd.Timestamp(a["date"].min())
            v = valid_obs.loc[valid_obs["building_id"] == bid, "acquired"]
            n = int(((v >= on) & (v <= when)).sum())
            out.append((bid, on, when, (when - on).days, n))
        else:
            out.append((bid, on, pd.NaT, math.nan, math.nan))
    return pd.DataFrame(
        out, columns=["building_id", "switch_on", "alert_date", "delay_days", "delay_scenes"]
    )


def minimum_detectable_excess(
    z_idle: Any,
    sigma_total_k: Any,
    false_alarm: float = 0.05,
    detection: float = 0.90,
) -> float:
    """Smallest pixel-level excess detected with probability ``detection`` at ``false_alarm``.

    The threshold is the ``1 - false_alarm`` quantile of ``z`` over truly idle observations; an
    excess ``d`` shifts each idle observation's ``z`` by ``d / sigma_total_k``.  Returns the least
    ``d`` for which a share ``detection`` of the shifted values reach the threshold (Currie's
    detection limit [2]_ applied to the observed, not assumed, noise).

    Parameters
    ----------
    z_idle : array-like
        ``z`` of truly idle valid observations of one building (or class).
    sigma_total_k : array-like
        Their z denominators (``anomaly_k / z``), K.
    false_alarm, detection : float
        Target rates.

    Returns
    -------
    float
        Excess in kelvin; NaN with fewer than 20 observations.
    """
    z = np.asarray(z_idle, dtype=float)
    s = np.asarray(sigma_total_k, dtype=float)
    ok = np.isfinite(z) & np.isfinite(s) & (s > 0)
    z, s = z[ok], s[ok]
    if z.size < 20:
        return float("nan")
    thr = float(np.quantile(z, 1.0 - false_alarm))
    # d needed per observation to reach the threshold; detection share of them reached
    need = (thr - z) * s
    return float(max(np.quantile(need, detection), 0.0))


# ------------------------------------------------------------------------------------------
# orchestration


def _load_observations(sim_dir: Path, footprints: Any, store: Any, workers: int) -> pd.DataFrame:
    if store is not None:
        from kaesong_thermal.store import Store

        with Store(store, create=False) as st:
            return st.observations()
    products = sorted(p for p in (sim_dir / "products").iterdir() if not p.name.startswith("."))
    if not products:
        raise AnalysisError(f"{sim_dir / 'products'}: no products to evaluate")
    try:
        from kaesong_thermal.pipeline import extract_products
    except ImportError:
        extract_products = None  # type: ignore[assignment]
    if extract_products is not None:
        return extract_products(products, footprints, workers=workers)
    from kaesong_thermal.extraction import extract
    from kaesong_thermal.landsat import open_scene

    frames = [extract(open_scene(p), footprints) for p in products]
    return pd.concat(frames, ignore_index=True)


def _year_fraction(start: pd.Timestamp, end: pd.Timestamp) -> float:
    return max((end - start).total_seconds(), 0.0) / (365.25 * 86400.0)


def score(
    analysis: Any,
    truth: pd.DataFrame,
    *,
    idle_period: str = DEFAULT_BASELINE,
    operating_period: tuple[str, str] = ("2014-01-01", "2015-12-31"),
    as_of: str = "2025-11-05",
) -> dict[str, Any]:
    """All evaluation figures of one analysis against one truth table.

    Parameters
    ----------
    analysis : kaesong_thermal.analysis.Analysis
        The detector's result.
    truth : pandas.DataFrame
        ``truth.csv`` content: ``scene_id, building_id, acquired, active, roof_excess_k``.
    idle_period : str
        ``START:END`` of the idle years (false alerts are counted there).
    operating_period : tuple of str
        Inclusive dates of the known-operating years (share of building-months rated active).
    as_of : str
        Date of the reported statuses.

    Returns
    -------
    dict
        JSON-serialisable figures (see ``docs/method.md``).
    """
    truth = truth.copy()
    truth["acquired"] = pd.to_datetime(truth["acquired"], utc=True)
    truth["active"] = truth["active"].astype(int).astype(bool)
    truth["operating"] = operating_truth(truth).to_numpy()
    obs = analysis.observations
    key = ["scene_id", "building_id"]
    m = obs.merge(truth[[*key, "active", "operating", "roof_excess_k"]], on=key, how="left")
    valid = (m["state"] != "no_data") & m["active"].notna()
    mv = m.loc[valid]
    res: dict[str, Any] = {}
    res["observation"] = precision_recall_f1(mv["state"] == "active", mv["active"].astype(bool))
    res["n_valid_observations"] = int(valid.sum())

    # building-month status
    tl = analysis.timeline.merge(truth[[*key, "operating"]], on=key, how="left")
    tl = tl.loc[tl["operating"].notna()].copy()
    tl["month"] = tl["acquired"].dt.tz_convert(None).dt.to_period("M")
    bm = tl.groupby(["building_id", "month"]).agg(
        status=("status", "last"), operating=("operating", "mean")
    )
    bm = bm.join(obs.groupby("building_id")["area_m2"].first() if "area_m2" in obs else None)
    res["building_month"] = precision_recall_f1(bm["status"] == "active", bm["operating"] >= 0.5)
    op0, op1 = (pd.Period(d, "M") for d in operating_period)
    sel = (bm.index.get_level_values("month") >= op0) & (bm.index.get_level_values("month") <= op1)
    op = bm.loc[sel & (bm["operating"] >= 0.5)]
    area = op["area_m2"] if "area_m2" in op else pd.Series(np.nan, index=op.index)
    big = area >= NATIVE_PIXEL_M2
    res["operating_years"] = {
        "period": list(operating_period),
        "large_rated_active": float((op.loc[big, "status"] == "active").mean())
        if big.any()
        else None,
        "large_building_months": int(big.sum()),
        "small_rated_active": float((op.loc[~big, "status"] == "active").mean())
        if (~big).any()
        else None,
        "small_building_months": int((~big).sum()),
    }

    # false alerts in the idle years
    period = parse_baseline(idle_period)
    tr = analysis.transitions()
    alerts = tr.loc[tr["to_status"] == "active"].copy()
    tk = truth.set_index(key)
    true_flags = []
    for a in alerts.itertuples(index=False):
        scenes = list(a.evidence)
        flags = [
            bool(tk["active"].get((s, a.building_id), False))
            or bool(tk["operating"].get((s, a.building_id), False))
            for s in scenes
        ]
        true_flags.append(any(flags))
    alerts["true_alert"] = true_flags
    if period is not None:
        in_idle = (alerts["date"] >= period[0]) & (alerts["date"] <= period[1])
        vo = obs.loc[obs["state"] != "no_data"]
        vo = vo.loc[(vo["acquired"] >= period[0]) & (vo["acquired"] <= period[1])]
        n_by = 0.0
        for _, g in vo.groupby("building_id"):
            n_by += _year_fraction(g["acquired"].min(), g["acquired"].max())
        res["idle_years"] = {"period": idle_period, **false_alert_rate(alerts.loc[in_idle], n_by)}
    res["all_alerts"] = {
        "n_alerts": len(alerts),
        "n_false": int((~alerts["true_alert"]).sum()),
    }

    # switch-on delays
    events = switch_on_events(truth[["building_id", "acquired", "operating"]])
    valid_obs = obs.loc[obs["state"] != "no_data", ["building_id", "acquired"]]
    delays = alert_delays(events, alerts, valid_obs)
    px = []
    for bid, on_any in zip(delays["building_id"], delays["switch_on"], strict=True):
        on = pd.Timestamp(on_any)
        w = mv.loc[
            (mv["building_id"] == bid)
            & (mv["acquired"] >= on)
            & (mv["acquired"] <= on + pd.Timedelta(days=120))
            & mv["active"].astype(bool)
        ]
        px.append(float(w["anomaly_k"].median()) if len(w) else float("nan"))
    delays["pixel_excess_k"] = px
    strong = delays.loc[delays["pixel_excess_k"] >= 2.0]
    res["switch_on"] = {
        "events": [
            _event_record({str(k): v for k, v in r.items()}) for r in delays.to_dict("records")
        ],
        "n_strong": len(strong),
        "strong_within_2_scenes": int((strong["delay_scenes"] <= 2).sum()),
    }

    # calibration of confidence
    tv = tl.loc[tl["status"].isin(["active", "idle"])]
    correct = (tv["status"] == "active").to_numpy() == tv["operating"].astype(bool).to_numpy()
    res["calibration"] = {
        "ece": expected_calibration_error(tv["confidence"], correct),
        "n": len(tv),
        "accuracy": float(correct.mean()) if len(tv) else None,
        "mean_confidence": float(tv["confidence"].mean()) if len(tv) else None,
    }

    # minimum detectable excess vs area (injection on the observed idle noise)
    idle_obs = mv.loc[~mv["operating"].astype(bool) & ~mv["active"].astype(bool)].copy()
    idle_obs["sigma_total_k"] = idle_obs["anomaly_k"] / idle_obs["z"]
    act = mv.loc[mv["active"].astype(bool) & (mv["roof_excess_k"] >= 1.0)]
    dilution = (act["anomaly_k"] / act["roof_excess_k"]).groupby(act["building_id"]).median()
    mde = []
    for bid, g in idle_obs.groupby("building_id"):
        d_px = minimum_detectable_excess(g["z"], g["sigma_total_k"])
        dil = float(dilution.get(bid, np.nan))
        mde.append(
            {
                "building_id": str(bid),
                "area_m2": float(g["area_m2"].iloc[0]) if "area_m2" in g else None,
                "pixel_excess_k": d_px,
                "dilution": dil,
                "roof_excess_k": d_px / dil if dil and dil > 0.05 else None,
            }
        )
    res["minimum_detectable"] = sorted(mde, key=lambda r: r["area_m2"] or 0.0)

    # statuses as of the reporting date
    st = analysis.status(as_of=as_of)
    res["status_as_of"] = {
        "date": as_of,
        "status": {str(k): str(v) for k, v in st["status"].items()},
        "confidence": {str(k): round(float(v), 3) for k, v in st["confidence"].items()},
    }
    return res


def _event_record(r: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready record of one switch-on event."""

    def _num(x: Any) -> float | None:
        return None if x is None or pd.isna(x) else float(x)

    alert = r["alert_date"]
    scenes = _num(r["delay_scenes"])
    excess = _num(r["pixel_excess_k"])
    return {
        "building_id": str(r["building_id"]),
        "switch_on": str(pd.Timestamp(r["switch_on"]).isoformat()),
        "alert_date": None if pd.isna(alert) else str(pd.Timestamp(alert).isoformat()),
        "delay_days": _num(r["delay_days"]),
        "delay_scenes": None if scenes is None else int(scenes),
        "pixel_excess_k": None if excess is None else round(excess, 2),
    }


def _plots(res: dict[str, Any], analysis: Any, truth: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    mde = [r for r in res["minimum_detectable"] if r["area_m2"] and r["roof_excess_k"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    if mde:
        ax.scatter([r["area_m2"] for r in mde], [r["roof_excess_k"] for r in mde], label="roof")
        ax.scatter(
            [r["area_m2"] for r in mde],
            [r["pixel_excess_k"] for r in mde],
            marker="x",
            label="pixel",
        )
    ax.set_xscale("log")
    ax.set_xlabel("footprint area (m²)")
    ax.set_ylabel("minimum detectable excess (K)")
    ax.set_title("90 % detection at 5 % false alarm")
    ax.axvline(NATIVE_PIXEL_M2, color="grey", lw=0.8, ls=":")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "minimum_detectable.png", dpi=100)
    plt.close(fig)
    written.append("minimum_detectable.png")

    tl = analysis.timeline
    fig, ax = plt.subplots(figsize=(6, 4))
    tv = tl.loc[tl["status"].isin(["active", "idle"])]
    op = operating_truth(truth)
    tr = truth.assign(operating=op.to_numpy())
    tv = tv.merge(tr[["scene_id", "building_id", "operating"]], on=["scene_id", "building_id"])
    correct = (tv["status"] == "active") == tv["operating"].astype(bool)
    bins = np.linspace(0, 1, 11)
    idx = np.clip(np.digitize(tv["confidence"], bins) - 1, 0, 9)
    xs, ys = [], []
    for b in range(10):
        sel = idx == b
        if sel.any():
            xs.append(float(tv["confidence"][sel].mean()))
            ys.append(float(correct[sel].mean()))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.plot(xs, ys, marker="o")
    ax.set_xlabel("confidence")
    ax.set_ylabel("share correct")
    ax.set_title(f"calibration (ECE {res['calibration']['ece']:.3f})")
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=100)
    plt.close(fig)
    written.append("calibration.png")
    return written


def evaluate(
    sim_dir: str | os.PathLike[str],
    *,
    store: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    baseline: str = DEFAULT_BASELINE,
    workers: int = 1,
    **thresholds: Any,
) -> dict[str, Any]:
    """Run the detector on a simulator output and score it against its truth.

    Parameters
    ----------
    sim_dir : str or os.PathLike
        Output directory of :func:`kaesong_thermal.simulation` (``products/``, ``truth.csv``,
        ``footprints.geojson``).
    store : str or os.PathLike, optional
        Read the observations from this store instead of extracting the products.
    out : str or os.PathLike, optional
        Write ``evaluation.json`` and PNG plots here.
    baseline : str
        Baseline passed to :func:`kaesong_thermal.analyze`.
    workers : int
        Extraction workers.
    **thresholds
        Passed to :func:`kaesong_thermal.analyze`.

    Returns
    -------
    dict
        The figures (also in ``evaluation.json``).
    """
    from kaesong_thermal.analysis import analyze

    sim = Path(sim_dir)
    truth_path = sim / "truth.csv"
    if not truth_path.is_file():
        raise AnalysisError(f"{truth_path}: missing (not a simulator output directory?)")
    truth = pd.read_csv(truth_path)
    fp_path = sim / "footprints.geojson"
    footprints: Any = None
    if store is None:
        from kaesong_thermal.footprints import load_footprints

        footprints = load_footprints(fp_path) if fp_path.is_file() else load_footprints()
    obs = _load_observations(sim, footprints, store, workers)
    analysis = analyze(obs, baseline=baseline, **thresholds)
    res = score(analysis, truth)
    res["sim_dir"] = str(sim)
    res["baseline"] = baseline
    res["params"] = {k: v for k, v in analysis.params.items()}
    scen = sim / "scenario.json"
    if scen.is_file():
        try:
            res["seed"] = json.loads(scen.read_text()).get("seed")
        except (ValueError, OSError):
            res["seed"] = None
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        res["plots"] = _plots(res, analysis, truth, out_dir)
        (out_dir / "evaluation.json").write_text(json.dumps(res, indent=2, default=str))
        logger.info("evaluation written to %s", out_dir / "evaluation.json")
    return res
