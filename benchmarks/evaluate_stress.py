"""Score the detector on stress-family draws, as an outside scorer would.

For every seed: simulate the stress draw (``kaesong-thermal simulate --scenario stress``; skipped
when it is already there), run the detector through the command line exactly as an analyst
would (``kaesong-thermal detect <sim>/products --footprints <sim>/footprints.geojson --store
<db>``, then ``kaesong-thermal export <csv> --what observations --store <db>``), and score ONLY
from that export's columns ``scene_id, building_id, acquired, state, status`` (and
``contrast_k`` for the naive baseline) against the simulator's ``truth.csv`` and the roles and
events of its ``scenario.json``. The detector never sees the truth.

Usage::

    python benchmarks/evaluate_stress.py --seeds 101-120 [--workdir /tmp/stress]
        [--out benchmarks/results/detector.md] [--workers 2] [--label NAME] [--redetect]
        [--tuning 101-110]

Figures per draw (definitions in ``docs/simulator.md``, "Scoring the stress family"):

- observation precision / recall / F1 of "active": prediction ``status == "active"`` (and,
  separately, ``state == "active"``), truth the simulator's ``active`` on that scene; only rows
  with ``state != "no_data"`` count;
- recall on roofs >= 5,000 m2 (area of the footprint in EPSG:32652);
- false newly-active alerts: an alert is a change of ``status`` from anything else to
  ``active`` in time order over the building's exported rows; it is false when the building is
  not truly active at that scene and was not truly active on any truth scene of the previous 30
  days. Rates per building-year in the known-idle years (2016-03-01..2022-12-31) and overall
  (buildings x years spanned by the exported scenes);
- confounders (``idle-neighbour``, ``reclad``, ``demolished``, ``hot-yard``): flagged when the
  building got a false alert or ends with status ``active``;
- alert delay after each true switch-on: valid scenes (``state != "no_data"``) from the first
  one on or after the switch-on date until the status is ``active`` (0 = at once); a switch-on
  never followed by ``active`` before the building's switch-off (or the end) is missed;
- a naive baseline from the same export: per building z = (contrast_k - mean) / sd against its
  idle-years ``contrast_k``, a scene active at z >= 3, status active when two of the last three
  valid scenes are; its F1 and false-alert rates; and the same test scene by scene
  (``naive1_*``: status active on every scene at z >= 3, idle on every other valid one).

Writes a section per ``--label`` into ``--out`` (replacing a section of the same label, keeping
everything else in the file), ``<out stem>.stress.json`` (every figure, per label) and
``<out stem>.stress.csv`` (one row per label and draw, for tuning / held-out splits).
A draw that fails (simulation, detection, export or scoring) is reported, not fatal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger("evaluate_stress")

START, END = "2014-01-01", "2025-11-30"
IDLE_YEARS = (pd.Timestamp("2016-03-01", tz="UTC"), pd.Timestamp("2023-01-01", tz="UTC"))
CONFOUNDERS = ("idle-neighbour", "reclad", "demolished", "hot-yard")
LARGE_M2 = 5000.0
PRIOR_DAYS = 30
NAIVE_Z = 3.0
YEAR_DAYS = 365.25
GIT_STATUS = ("git", "status", "--porcelain", "--untracked-files=no")
#: Columns the score may use from the export (plus contrast_k for the naive baseline).
EXPORT_COLUMNS = ("scene_id", "building_id", "acquired", "state", "status")

#: (key, label, higher is better) of the figures summarised over draws.
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("f1", "observation F1 (status)", True),
    ("precision", "observation precision (status)", True),
    ("recall", "observation recall (status)", True),
    ("state_f1", "observation F1 (state)", True),
    ("state_precision", "observation precision (state)", True),
    ("state_recall", "observation recall (state)", True),
    ("recall_large", "recall, roofs >= 5,000 m2 (status)", True),
    ("false_per_by_idle", "false alerts / building-year, 2016-03..2022-12", False),
    ("false_per_by", "false alerts / building-year, all years", False),
    ("n_false", "false alerts (count)", False),
    ("confounders_flagged", "confounder roles flagged (of 4)", False),
    ("delay_median", "alert delay after switch-on, median (valid scenes)", False),
    ("switch_on_missed_share", "switch-ons missed (share)", False),
    ("naive_f1", "naive baseline: observation F1", True),
    ("naive_false_per_by_idle", "naive baseline: false alerts / building-year, idle years", False),
    ("naive_false_per_by", "naive baseline: false alerts / building-year, all years", False),
    ("naive1_f1", "naive single-scene z >= 3: observation F1", True),
    ("naive1_false_per_by_idle", "naive single-scene: false alerts / b-yr, idle years", False),
    ("naive1_false_per_by", "naive single-scene: false alerts / b-yr, all years", False),
)


# --------------------------------------------------------------------------------- commands


def parse_seeds(specs: Sequence[str]) -> list[int]:
    """Seeds from ``101-120``, ``101,105`` or several such arguments (order kept, no repeats)."""
    out: list[int] = []
    for spec in specs:
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise argparse.ArgumentTypeError(f"seed range {part!r}: end before start")
                out.extend(range(lo, hi + 1))
            elif part.isdigit():
                out.append(int(part))
            else:
                raise argparse.ArgumentTypeError(f"seed {part!r}: expected N or N-M")
    return list(dict.fromkeys(out))


def _cli(args: Sequence[str], cwd: Path, log: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run ``kaesong-thermal ARGS`` of this interpreter in ``cwd``; stderr appended to ``log``."""
    cmd = [sys.executable, "-m", "kaesong_thermal", "-q", *args]
    with log.open("a") as fh:
        fh.write("$ kaesong-thermal -q " + " ".join(args) + "\n")
        fh.flush()
        return subprocess.run(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=fh, text=True, timeout=timeout
        )


def _scales(heat_scale: float, noise_scale: float, material_scale: float = 1.0) -> dict[str, float]:
    """The simulation scales other than 1, by name, in the order of ``simulate``'s options."""
    named = (("heat", heat_scale), ("noise", noise_scale), ("material", material_scale))
    return {k: x for k, x in named if x != 1.0}


@dataclass(frozen=True)
class Paths:
    """Files of one draw in the work directory."""

    sim: Path
    db: Path
    export: Path
    log: Path
    sim_timing: Path
    timing: Path
    period: tuple[str, str]
    heat_scale: float = 1.0
    noise_scale: float = 1.0
    material_scale: float = 1.0
    keep_share: float = 1.0

    @property
    def data(self) -> Path | None:
        """The thinned copy of ``sim`` (:func:`thin_draw`), None when every acquisition is kept."""
        if self.keep_share == 1.0:
            return None
        return self.sim.with_name(f"{self.sim.name}_keep{self.keep_share:g}")

    @property
    def detected(self) -> Path:
        """The directory the detector reads and the score uses (``sim`` or its thinned copy)."""
        return self.data if self.data is not None else self.sim

    @property
    def scales(self) -> dict[str, float]:
        """The draw's scales other than 1, by name (``heat``, ``noise``, ``material``)."""
        return _scales(self.heat_scale, self.noise_scale, self.material_scale)

    @classmethod
    def of(
        cls,
        workdir: Path,
        seed: int,
        label: str,
        period: tuple[str, str] = (START, END),
        heat_scale: float = 1.0,
        noise_scale: float = 1.0,
        material_scale: float = 1.0,
        keep_share: float = 1.0,
    ) -> Paths:
        """The simulation is shared by every label; the store and export are the label's.

        A period other than the default gets its own simulation (``stress<seed>_<start>_<end>``),
        as does a heat, noise or material scale other than 1 (``stress<seed>_heat<scale>``,
        ``..._noise<scale>``, ``..._material<scale>``). A ``keep_share`` below 1 detects a
        thinned copy of the simulation (``<name>_keep<share>``, :func:`thin_draw`); its stores
        and exports are named after the copy.
        """
        tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
        name = f"stress{seed}" if period == (START, END) else f"stress{seed}_{'_'.join(period)}"
        scales = _scales(heat_scale, noise_scale, material_scale)
        name += "".join(f"_{k}{x:g}" for k, x in scales.items())
        thin = f"{name}_keep{keep_share:g}" if keep_share != 1.0 else name
        return cls(
            sim=workdir / name,
            db=workdir / f"{thin}.{tag}.db",
            export=workdir / f"{thin}.{tag}.observations.csv",
            log=workdir / f"{thin}.{tag}.log",
            sim_timing=workdir / f"{name}.simulate.json",
            timing=workdir / f"{thin}.{tag}.detect.json",
            period=period,
            heat_scale=heat_scale,
            noise_scale=noise_scale,
            material_scale=material_scale,
            keep_share=keep_share,
        )


def _stored(path: Path) -> dict[str, Any]:
    """Timings of an earlier run (empty when there are none)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def simulate_draw(p: Paths, seed: int, workers: int, timeout: float) -> dict[str, Any]:
    """Simulate the draw unless a complete one (scenario.json written last) is there.

    Returns ``simulate_s`` (of the run that made it) and ``simulated`` (made now).
    """
    from kaesong_thermal.simulation.stress import STRESS_VERSION

    scen = p.sim / "scenario.json"
    if scen.is_file():
        doc = json.loads(scen.read_text())
        same = (doc.get("scenario"), doc.get("start"), doc.get("end")) == ("stress", *p.period)
        stress = doc.get("stress", {})
        schedule = stress.get("schedule", {})
        same &= schedule.get("heat_scale", 1.0) == p.heat_scale
        same &= schedule.get("noise_scale", 1.0) == p.noise_scale
        same &= schedule.get("material_scale", 1.0) == p.material_scale
        if same and stress.get("version") == STRESS_VERSION:
            return {"simulate_s": _stored(p.sim_timing).get("simulate_s"), "simulated": False}
        logger.warning("%s: another period, scale or generator version: simulating again", p.sim)
    if p.sim.exists():
        shutil.rmtree(p.sim)
    t0 = time.perf_counter()
    args = ["simulate", str(p.sim), "--scenario", "stress", "--seed", str(seed)]
    args += ["--start", p.period[0], "--end", p.period[1], "--workers", str(workers)]
    for k, x in p.scales.items():
        args += [f"--{k}-scale", repr(x)]
    res = _cli(args, p.sim.parent, p.log, timeout)
    if res.returncode != 0 or not scen.is_file():
        raise RuntimeError(f"simulate exited with {res.returncode} (see {p.log})")
    out = {"simulate_s": round(time.perf_counter() - t0, 1)}
    p.sim_timing.write_text(json.dumps(out) + "\n")
    return out | {"simulated": True}


#: Files of a simulation linked into its thinned copy (the products are linked one by one).
_THIN_FILES = ("footprints.geojson", "truth.csv", "scenes.csv", "scenario.json")


def thin_draw(p: Paths, seed: int) -> bool:
    """Make ``p.data``, the thinned copy of ``p.sim``: each acquisition (sensor and date) kept
    with probability ``p.keep_share``, every product of a kept one linked, the rest left out.

    A sparse archive (few clear scenes a year, as on a cloudy site or where only some dates
    were downloaded) leaves each building a short baseline. The choice is deterministic in the
    seed and the share; truth, scenes, footprints and scenario are linked unchanged (the score
    only reads the exported rows). Returns True when the copy was made now (stale copies, older
    than the simulation, are made again).
    """
    if p.data is None:
        return False
    scen = p.sim / "scenario.json"
    done = p.data / "scenario.json"
    if done.is_symlink() and done.lstat().st_mtime >= scen.stat().st_mtime:
        return False
    if p.data.exists():
        shutil.rmtree(p.data)
    (p.data / "products").mkdir(parents=True)
    products = sorted(x.name for x in (p.sim / "products").iterdir())

    def key(name: str) -> tuple[str, str]:
        parts = name.split("_")  # LC08_L2SP_116034_20240103_...: sensor and acquisition date
        return parts[0], parts[3] if len(parts) > 3 else name

    keys = sorted({key(n) for n in products})
    rng = np.random.default_rng([seed, round(p.keep_share * 1_000_000)])
    kept = {k for k, u in zip(keys, rng.random(len(keys)), strict=True) if u < p.keep_share}
    for name in products:
        if key(name) in kept:
            (p.data / "products" / name).symlink_to(p.sim / "products" / name)
    for name in _THIN_FILES:  # scenario.json last: its link marks the copy whole
        (p.data / name).symlink_to(p.sim / name)
    return True


def detect_draw(p: Paths, workers: int, redetect: bool, timeout: float) -> dict[str, Any]:
    """Detect and export through the CLI (skipped when this label's export of the current
    simulation exists: it is newer than the simulation's scenario.json)."""
    scen = p.detected / "scenario.json"
    fresh = p.export.is_file() and p.export.stat().st_mtime >= scen.lstat().st_mtime
    if fresh and not redetect:
        return _stored(p.timing) | {"reused": True}
    for f in (p.db, p.export, Path(f"{p.db}-wal"), Path(f"{p.db}-shm")):
        f.unlink(missing_ok=True)
    t0 = time.perf_counter()
    src = p.detected
    args = ["detect", str(src / "products"), "--footprints", str(src / "footprints.geojson")]
    args += ["--store", str(p.db), "--workers", str(workers), "--json"]
    res = _cli(args, p.sim.parent, p.log, timeout)
    t_detect = time.perf_counter() - t0
    failed: int | None = None
    with contextlib.suppress(json.JSONDecodeError, AttributeError):
        failed = len(json.loads(res.stdout).get("failed", []))
    # exit 1 with a store: some products failed, the others are stored (scored all the same)
    if res.returncode not in (0, 1) or not p.db.is_file():
        raise RuntimeError(f"detect exited with {res.returncode} (see {p.log})")
    t1 = time.perf_counter()
    exp = _cli(
        ["export", str(p.export), "--what", "observations", "--store", str(p.db)],
        p.sim.parent,
        p.log,
        timeout,
    )
    if exp.returncode != 0 or not p.export.is_file():
        raise RuntimeError(f"export exited with {exp.returncode} (see {p.log})")
    out = {
        "detect_s": round(t_detect, 1),
        "export_s": round(time.perf_counter() - t1, 1),
        "detect_exit": res.returncode,
        "failed_products": failed,
        "detect_commit": _commit(),
    }
    p.timing.write_text(json.dumps(out) + "\n")
    return out | {"reused": False}


# --------------------------------------------------------------------------------- scoring


def _prf(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    tp = int(np.sum(pred & true))
    fp = int(np.sum(pred & ~true))
    fn = int(np.sum(~pred & true))
    prec = tp / (tp + fp) if tp + fp else math.nan
    rec = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
    return {"precision": prec, "recall": rec, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601")


def load_export(path: Path) -> pd.DataFrame:
    """The export's scoring columns (and contrast_k), sorted by building and time."""
    head = pd.read_csv(path, nrows=0).columns
    missing = [c for c in EXPORT_COLUMNS if c not in head]
    if missing:
        raise ValueError(f"{path}: export lacks column(s) {', '.join(missing)}")
    cols = [*EXPORT_COLUMNS, *(["contrast_k"] if "contrast_k" in head else [])]
    obs = pd.read_csv(path, usecols=cols, dtype={"scene_id": str, "building_id": str})
    obs["acquired"] = _utc(obs["acquired"])
    obs["state"] = obs["state"].fillna("no_data").astype(str)
    obs["status"] = obs["status"].fillna("no_data").astype(str)
    return obs.sort_values(["building_id", "acquired", "scene_id"], kind="stable").reset_index(
        drop=True
    )


def truly_active_before(
    truth: pd.DataFrame, building: np.ndarray, when: np.ndarray, days: int
) -> np.ndarray:
    """Whether each (building, time) had a truly active truth scene in the ``days`` before."""
    out = np.zeros(len(building), bool)
    act = truth.loc[truth["active"], ["building_id", "acquired"]]
    by = {
        b: np.sort(g["acquired"].to_numpy(dtype="datetime64[ns]"))
        for b, g in act.groupby("building_id")
    }
    span = np.timedelta64(days, "D")
    for k, (b, t) in enumerate(zip(building, when, strict=True)):
        times = by.get(b)
        if times is None or not len(times):
            continue
        i = np.searchsorted(times, t, side="left")  # strictly before t
        out[k] = i > 0 and times[i - 1] >= t - span
    return out


def alerts(frame: pd.DataFrame, status_col: str) -> pd.DataFrame:
    """Rows where ``status_col`` turns to ``active`` (time order within each building)."""
    st = frame[status_col].to_numpy()
    b = frame["building_id"].to_numpy()
    prev = np.empty(len(st), dtype=object)
    prev[1:] = st[:-1]
    first = np.ones(len(st), bool)
    first[1:] = b[1:] != b[:-1]
    prev[first] = "none"
    on = (st == "active") & (prev != "active")
    return frame.loc[on]


def false_alerts(frame: pd.DataFrame, status_col: str, truth: pd.DataFrame) -> pd.DataFrame:
    """Alerts at scenes where the building is not truly active, nor was in the last 30 days."""
    a = alerts(frame, status_col)
    prior = truly_active_before(
        truth,
        a["building_id"].to_numpy(),
        a["acquired"].to_numpy(dtype="datetime64[ns]"),
        PRIOR_DAYS,
    )
    return a.loc[~a["active"].to_numpy(dtype=bool) & ~prior]


def naive_status(frame: pd.DataFrame, need: int = 2, window: int = 3) -> pd.Series:
    """Naive detector: per building z of contrast_k against its idle-years mean and sd,
    active when z >= 3 on ``need`` of the last ``window`` valid scenes (default two of three;
    ``need=window=1`` is the single-scene rule); no_data rows keep the status."""
    out = pd.Series("no_data", index=frame.index, dtype=object)
    if "contrast_k" not in frame:
        return out
    valid = (frame["state"] != "no_data") & np.isfinite(frame["contrast_k"].astype(float))
    for _, g in frame.loc[valid].groupby("building_id", sort=False):
        base = g.loc[(g["acquired"] >= IDLE_YEARS[0]) & (g["acquired"] < IDLE_YEARS[1])]
        c = g["contrast_k"].astype(float).to_numpy()
        if len(base) >= 3:
            mu = float(base["contrast_k"].mean())
            sd = float(base["contrast_k"].std(ddof=1))
            hot = (c - mu) / sd >= NAIVE_Z if sd > 0 else np.zeros(len(c), bool)
        else:
            hot = np.zeros(len(c), bool)
        n_hot = pd.Series(hot.astype(float)).rolling(window, min_periods=1).sum().to_numpy()
        out.loc[g.index] = np.where(n_hot >= need, "active", "idle")
    # no_data rows keep the building's previous status
    s = out.where(valid)
    return s.groupby(frame["building_id"], sort=False).ffill().fillna("no_data")


def _rate(n: int, building_years: float) -> float:
    return n / building_years if building_years > 0 else math.nan


def score_draw(sim: Path, export: Path) -> dict[str, Any]:
    """Every figure of one draw from the export, ``truth.csv`` and ``scenario.json``."""
    import geopandas as gpd

    obs = load_export(export)
    truth = pd.read_csv(sim / "truth.csv", dtype={"scene_id": str, "building_id": str})
    truth["acquired"] = _utc(truth["acquired"])
    truth["active"] = truth["active"].astype(int) > 0
    scen = json.loads((sim / "scenario.json").read_text())
    roles = {b["building_id"]: list(b["roles"]) for b in scen["buildings"]}
    events = scen["stress"]["events"]
    fp = gpd.read_file(sim / "footprints.geojson").to_crs(32652)
    area = dict(zip(fp["building_id"].astype(str), fp.geometry.area, strict=True))

    merged = obs.merge(
        truth[["scene_id", "building_id", "active"]], on=["scene_id", "building_id"], how="left"
    )
    unmatched = int(merged["active"].isna().sum())
    merged["active"] = merged["active"].fillna(False).astype(bool)
    valid = merged["state"].to_numpy() != "no_data"
    v = merged.loc[valid]
    true = v["active"].to_numpy(dtype=bool)
    res: dict[str, Any] = {
        "n_buildings": int(merged["building_id"].nunique()),
        "n_scenes": int(merged["scene_id"].nunique()),
        "n_valid_rows": int(valid.sum()),
        "n_truly_active_rows": int(true.sum()),
        "unmatched_rows": unmatched,
    }
    res |= _prf(v["status"].to_numpy() == "active", true)
    res |= {f"state_{k}": x for k, x in _prf(v["state"].to_numpy() == "active", true).items()}
    large = v["building_id"].map(area).fillna(0.0).to_numpy() >= LARGE_M2
    res["recall_large"] = _prf(v["status"].to_numpy()[large] == "active", true[large])["recall"]
    res["n_large_buildings"] = int(sum(a >= LARGE_M2 for a in area.values()))

    # false newly-active alerts
    t_lo, t_hi = merged["acquired"].min(), merged["acquired"].max()
    n_b = res["n_buildings"]
    years = (t_hi - t_lo).total_seconds() / 86400 / YEAR_DAYS
    lo, hi = max(t_lo, IDLE_YEARS[0]), min(t_hi, IDLE_YEARS[1])
    idle_years = max(0.0, (hi - lo).total_seconds() / 86400 / YEAR_DAYS)

    def alert_figures(status_col: str, prefix: str) -> pd.DataFrame:
        fa = false_alerts(merged, status_col, truth)
        in_idle = (fa["acquired"] >= IDLE_YEARS[0]) & (fa["acquired"] < IDLE_YEARS[1])
        res[f"{prefix}n_alerts"] = len(alerts(merged, status_col))
        res[f"{prefix}n_false"] = len(fa)
        res[f"{prefix}n_false_idle"] = int(in_idle.sum())
        res[f"{prefix}false_per_by"] = _rate(len(fa), n_b * years)
        res[f"{prefix}false_per_by_idle"] = _rate(int(in_idle.sum()), n_b * idle_years)
        return fa

    fa = alert_figures("status", "")
    res["building_years"] = round(n_b * years, 2)
    res["building_years_idle"] = round(n_b * idle_years, 2)

    # confounders
    last = merged.groupby("building_id", sort=False)["status"].last()
    falsely = set(fa["building_id"])
    conf: dict[str, Any] = {}
    for role in CONFOUNDERS:
        ids = [b for b, r in roles.items() if role in r]
        conf[role] = {
            b: {"false_alert": b in falsely, "ends_active": last.get(b) == "active"} for b in ids
        }
    res["confounders"] = conf
    res["confounders_flagged"] = sum(
        any(x["false_alert"] or x["ends_active"] for x in conf[r].values()) for r in CONFOUNDERS
    )
    res["confounders_present"] = sum(bool(conf[r]) for r in CONFOUNDERS)
    for role in CONFOUNDERS:
        res[f"flag_{role}"] = int(
            any(x["false_alert"] or x["ends_active"] for x in conf[role].values())
        )

    # switch-on delay
    delays: list[int] = []
    missed = 0
    per_event = []
    for b, day in events.get("switch_on", {}).items():
        on = pd.Timestamp(day, tz="UTC")
        off = events.get("switch_off", {}).get(b)
        stop = pd.Timestamp(off, tz="UTC") if off else t_hi + pd.Timedelta(days=1)
        if on > t_hi:
            continue
        g = merged.loc[
            (merged["building_id"] == b)
            & (merged["acquired"] >= on)
            & (merged["acquired"] < stop)
            & (merged["state"] != "no_data")
        ]
        hit = np.flatnonzero(g["status"].to_numpy() == "active")
        d = int(hit[0]) if len(hit) else None
        per_event.append({"building_id": b, "switch_on": day, "delay_scenes": d})
        if d is None:
            missed += 1
        else:
            delays.append(d)
    res["switch_on_events"] = per_event
    res["n_switch_on"] = len(per_event)
    res["switch_on_missed"] = missed
    res["switch_on_missed_share"] = missed / len(per_event) if per_event else math.nan
    res["delay_median"] = float(np.median(delays)) if delays else math.nan

    # naive baseline: two hot scenes of three, and the same z >= 3 test scene by scene (every
    # hot scene after a cooler one is an alert)
    for name, need, window in (("naive", 2, 3), ("naive1", 1, 1)):
        col = f"{name}_status"
        merged[col] = naive_status(merged, need=need, window=window).to_numpy()
        res[f"{name}_f1"] = _prf(merged[col].to_numpy()[valid] == "active", true)["f1"]
        alert_figures(col, f"{name}_")
    return res


# --------------------------------------------------------------------------------- reporting


def _fmt(x: Any, key: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float):
        return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"
    return str(x)


def summarise(draws: dict[str, dict[str, Any]], seeds: Iterable[int]) -> dict[str, Any]:
    """Median and worst over the scored draws among ``seeds`` of every summarised figure."""
    ok = [draws[str(s)] for s in seeds if str(s) in draws and "error" not in draws[str(s)]]
    out: dict[str, Any] = {"n_draws": len(ok)}
    for key, _, higher in METRICS:
        vals = np.array([float(d[key]) for d in ok if d.get(key) is not None], float)
        vals = vals[np.isfinite(vals)]
        if not len(vals):
            out[key] = {"median": None, "worst": None}
            continue
        worst = float(vals.min() if higher else vals.max())
        out[key] = {"median": float(np.median(vals)), "worst": worst}
    for role in CONFOUNDERS:
        flags = [int(d[f"flag_{role}"]) for d in ok if f"flag_{role}" in d]
        out[f"flag_{role}"] = {"share_of_draws": float(np.mean(flags)) if flags else None}
    return out


PER_DRAW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("n_buildings", "bldg"),
    ("n_scenes", "scenes"),
    ("f1", "F1"),
    ("precision", "P"),
    ("recall", "R"),
    ("state_f1", "F1 state"),
    ("recall_large", "R >= 5,000 m2"),
    ("false_per_by_idle", "false/b-yr idle"),
    ("false_per_by", "false/b-yr all"),
    ("n_false", "false alerts"),
    ("confounders_flagged", "conf. flagged"),
    ("delay_median", "delay (scenes)"),
    ("switch_on_missed", "missed"),
    ("n_switch_on", "switch-ons"),
    ("naive_f1", "naive F1"),
    ("naive_false_per_by", "naive false/b-yr"),
    ("naive1_f1", "naive-1 F1"),
    ("naive1_false_per_by", "naive-1 false/b-yr"),
    ("simulate_s", "sim s"),
    ("detect_s", "detect s"),
)


def section(label: str, meta: dict[str, Any], result: dict[str, Any]) -> str:
    """Markdown section of one label: summary over draws (and splits), then the per-draw table."""
    draws = result["draws"]
    groups = result["summary"]
    lines = [
        f"<!-- stress:{label}:start -->",
        f"## Stress family, label `{label}`",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; {meta['date']}; detector version {meta['version']}. "
        f"Draws simulated {meta['period'][0]}..{meta['period'][1]}, Landsat 8+9; "
        f"scored at commit {meta.get('commit', '?')}, detected at "
        f"{', '.join(_detect_commits(draws)) or '?'}; scored only from "
        "`kaesong-thermal export --what observations` against truth.csv and scenario.json.",
        "",
    ]
    names = list(groups)
    head = "| figure | " + " | ".join(
        f"{g} median | {g} worst" if g != "all" else "median | worst" for g in names
    )
    lines.append(head + " |")
    lines.append("|---|" + "---:|---:|" * len(names))
    for key, text, higher in METRICS:
        cells = []
        for g in names:
            m = groups[g].get(key, {})
            cells += [_fmt(m.get("median")), _fmt(m.get("worst"))]
        lines.append(
            f"| {text} ({'higher' if higher else 'lower'} is better) | " + " | ".join(cells) + " |"
        )
    lines.append(
        "| draws scored | " + " | ".join(f"{groups[g]['n_draws']} | " for g in names) + " |"
    )
    lines += ["", "Confounders flagged (false alert or ending `active`), share of draws:", ""]
    lines.append("| role | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(names))
    for role in CONFOUNDERS:
        cells = [_fmt(groups[g].get(f"flag_{role}", {}).get("share_of_draws")) for g in names]
        lines.append(f"| `{role}` | " + " | ".join(cells) + " |")
    lines += ["", "Per draw:", ""]
    lines.append(
        "| seed | " + " | ".join(h for _, h in PER_DRAW_COLUMNS) + " | confounders flagged |"
    )
    lines.append("|---:|" + "---:|" * len(PER_DRAW_COLUMNS) + "---|")
    for seed, d in draws.items():
        if "error" in d:
            lines.append(f"| {seed} | failed: {d['error']} |")
            continue
        flagged = [r for r in CONFOUNDERS if d.get(f"flag_{r}")]
        lines.append(
            f"| {seed} | "
            + " | ".join(_fmt(d.get(k)) for k, _ in PER_DRAW_COLUMNS)
            + f" | {', '.join(flagged) or 'none'} |"
        )
    lines += ["", f"<!-- stress:{label}:end -->"]
    return "\n".join(lines)


def _detect_commits(draws: dict[str, dict[str, Any]]) -> list[str]:
    """The commits the draws' detections ran at (``?`` where unknown), in order of seeds."""
    return list(dict.fromkeys(str(d.get("detect_commit") or "?") for d in draws.values()))


def replace_section(path: Path, label: str, text: str) -> None:
    """Put ``text`` in place of the label's section of ``path`` (appended when absent)."""
    old = path.read_text() if path.is_file() else ""
    pat = re.compile(
        rf"<!-- stress:{re.escape(label)}:start -->.*?<!-- stress:{re.escape(label)}:end -->",
        re.S,
    )
    if pat.search(old):
        new = pat.sub(lambda _: text, old)
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def write_outputs(out: Path, label: str, meta: dict[str, Any], result: dict[str, Any]) -> None:
    """Markdown section, JSON (per label) and CSV (per label and draw) beside ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_section(out, label, section(label, meta, result))
    js = out.with_name(out.stem + ".stress.json")
    doc = json.loads(js.read_text()) if js.is_file() else {}
    doc[label] = _clean({"meta": meta, **result})
    js.write_text(json.dumps(doc, indent=1, default=_json_default, allow_nan=False) + "\n")
    csv = out.with_name(out.stem + ".stress.csv")
    rows = []
    for seed, d in result["draws"].items():
        row = {"label": label, "seed": int(seed), "error": d.get("error", "")}
        row |= {k: v for k, v in d.items() if not isinstance(v, dict | list)}
        rows.append(row)
    new = pd.DataFrame(rows)
    if csv.is_file():
        prev = pd.read_csv(csv)
        new = pd.concat([prev.loc[prev["label"].astype(str) != label], new], ignore_index=True)
    new.to_csv(csv, index=False)


def _clean(x: Any) -> Any:
    """JSON-ready copy: NaN and infinities become null (strict JSON), numpy scalars Python ones."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return str(x)


def summary_text(label: str, result: dict[str, Any]) -> str:
    """One screen: the summary over all draws and the failures."""
    s = result["summary"]["all"]
    lines = [f"stress evaluation, label {label!r}: {s['n_draws']} draw(s) scored"]
    for key, text, _ in METRICS:
        m = s.get(key, {})
        lines.append(
            f"  {text:<58} median {_fmt(m.get('median')):>7}  worst {_fmt(m.get('worst')):>7}"
        )
    for seed, d in result["draws"].items():
        if "error" in d:
            lines.append(f"  draw {seed} FAILED: {d['error']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- main


def _commit() -> str:
    """Commit of the source tree evaluated, ``+dirty`` with uncommitted changes outside
    ``benchmarks/results``, or ``?`` outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
        )
        # results files are outputs, not the code evaluated
        dirty = subprocess.run(
            [*GIT_STATUS, "--", "..", ":(exclude)../benchmarks/results"],
            cwd=here,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "?"
    if head.returncode != 0:
        return "?"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def run_draw(p: Paths, seed: int, workers: int, redetect: bool, timeout: float) -> dict[str, Any]:
    """Simulate (if needed), detect, export and score the draw ``seed`` (files ``p``); errors
    are returned, not raised."""
    out: dict[str, Any] = {}
    step = "simulate"
    try:
        sim = simulate_draw(p, seed, workers, timeout)
        out |= sim
        step = "thin"
        thinned = thin_draw(p, seed)
        step = "detect"
        # a new simulation (or thinned copy) makes every stored detection of it stale
        out |= detect_draw(p, workers, redetect or sim["simulated"] or thinned, timeout)
        step = "score"
        t0 = time.perf_counter()
        out |= score_draw(p.detected, p.export)
        out["score_s"] = round(time.perf_counter() - t0, 1)
    except Exception as exc:  # a failing draw is reported, not fatal
        logger.exception("draw %d failed at %s", seed, step)
        out["error"] = f"{step}: {type(exc).__name__}: {exc}"
    return out


def main(argv: Sequence[str] | None = None, progress: Callable[[str], None] = print) -> int:
    """Evaluate the draws and write the results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", nargs="+", default=["101-120"], help="e.g. 101-120 or 101,105")
    parser.add_argument("--workdir", default="/tmp/stress")
    parser.add_argument("--out", default="benchmarks/results/detector.md")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--label", default="current")
    parser.add_argument(
        "--redetect", action="store_true", help="detect again even if this label's export exists"
    )
    parser.add_argument(
        "--tuning", nargs="*", default=["101-110"], help="tuning seeds; the others are held out"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="per command, s")
    parser.add_argument(
        "--start",
        default=START,
        help=f"first date simulated (default {START}; shorter: smoke runs)",
    )
    parser.add_argument("--end", default=END, help=f"last date simulated (default {END})")
    parser.add_argument(
        "--heat-scale",
        type=float,
        default=1.0,
        help="factor on the working roofs' process heat (simulate --heat-scale; default 1)",
    )
    parser.add_argument(
        "--noise-scale",
        type=float,
        default=1.0,
        help="factor on the surface-noise sd range (simulate --noise-scale; default 1)",
    )
    parser.add_argument(
        "--material-scale",
        type=float,
        default=1.0,
        help="wider roof materials, L2 at a 90 m emissivity (simulate --material-scale; default 1)",
    )
    parser.add_argument(
        "--keep-share",
        type=float,
        default=1.0,
        help="detect a copy keeping this share of the acquisitions (a sparse archive; default 1)",
    )
    args = parser.parse_args(argv)
    if not 0.0 < args.keep_share <= 1.0:
        parser.error(f"--keep-share {args.keep_share}: must be in (0, 1]")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        seeds = parse_seeds(args.seeds)
        tuning = set(parse_seeds(args.tuning or []))
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "kaesong-thermal.toml").exists():
        progress(f"warning: {workdir / 'kaesong-thermal.toml'} changes the detector's settings")
    period = (args.start, args.end)
    t0 = time.perf_counter()
    draws: dict[str, Any] = {}
    for k, seed in enumerate(seeds):
        t = time.perf_counter()
        p = Paths.of(
            workdir,
            seed,
            args.label,
            period,
            args.heat_scale,
            args.noise_scale,
            args.material_scale,
            args.keep_share,
        )
        draws[str(seed)] = run_draw(p, seed, args.workers, args.redetect, args.timeout)
        d = draws[str(seed)]
        status = d.get("error") or (
            f"F1 {_fmt(d.get('f1'))}, false/b-yr idle {_fmt(d.get('false_per_by_idle'))}, "
            f"confounders flagged {d.get('confounders_flagged')}"
        )
        progress(f"[{k + 1}/{len(seeds)}] seed {seed}: {status} ({time.perf_counter() - t:.0f} s)")
    groups: dict[str, list[int]] = {"all": seeds}
    tun = [s for s in seeds if s in tuning]
    held = [s for s in seeds if s not in tuning]
    if tun and held:
        groups |= {"tuning": tun, "held-out": held}
    result = {
        "seeds": seeds,
        "groups": groups,
        "summary": {g: summarise(draws, s) for g, s in groups.items()},
        "draws": draws,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    import kaesong_thermal

    cmd = "python benchmarks/evaluate_stress.py --seeds " + " ".join(args.seeds)
    cmd += f" --workdir {args.workdir} --workers {args.workers} --label {args.label}"
    cmd += " --redetect" if args.redetect else ""
    if period != (START, END):
        cmd += f" --start {period[0]} --end {period[1]}"
    scales = _scales(args.heat_scale, args.noise_scale, args.material_scale)
    cmd += "".join(f" --{k}-scale {x:g}" for k, x in scales.items())
    cmd += f" --keep-share {args.keep_share:g}" if args.keep_share != 1.0 else ""
    meta = {
        "command": cmd,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "version": getattr(kaesong_thermal, "__version__", "?"),
        "period": list(period),
        "commit": _commit(),
    }
    write_outputs(Path(args.out), args.label, meta, result)
    progress(summary_text(args.label, result))
    progress(f"wrote {args.out} (section {args.label!r}) in {result['seconds']:.0f} s")
    return 0 if any("error" not in d for d in draws.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
