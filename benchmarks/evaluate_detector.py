"""Score the detector on simulated Kaesong runs: the targets of issue 6, old vs new settings.

For every seed: simulate 2014-01-01..2025-11-30 (Landsat 8+9, L2; skipped when already there),
ingest the products with ``kaesong_thermal.pipeline.detect`` into a store, then analyse the
stored observations with several detector variants and score each with
``kaesong_thermal.evaluation.score`` against the simulator's truth (which the detector never sees):

- ``before``: the per-scene rule only (``contrast_k``, two of the last three scenes, no
  accumulation, unweighted scene effect) - the detector as it was;
- ``fixed-beta``: the previous defaults (weighted scene effect, accumulated statistic, every
  idle roof following the scene effect one for one: ``idle_regression=False``);
- ``contrast_k``: the current defaults (the same with the idle-roof regression: each building's
  own response to the scene effect, background-temperature departure and season);
- ``excess_k``: the current defaults with the PSF-aware roof excess as the per-scene signal.

Tuning seeds were 11 and 12; 2016 (the demo seed) and 2025 (the held-out evaluation seed) are
reported without tuning on them.

Usage::

    python benchmarks/evaluate_detector.py [--seeds 2016 2025] [--workdir /tmp/evaluate-detector]
        [--out benchmarks/results/detector.md] [--workers 2]

Writes the Markdown table and a JSON with every figure next to it (``detector.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import kaesong_thermal as kt
from kaesong_thermal.evaluation import operating_truth, score
from kaesong_thermal.pipeline import detect
from kaesong_thermal.store import Store

FACTORIES = (
    "amos",
    "samas-electronics",
    "jaeyoung-solutec",
    "in-the-f",
    "seokchon-ceramics",
    "support-center",
)
AS_OF = "2025-11-05"
VARIANTS: dict[str, dict[str, Any]] = {
    "before": {
        "signal": "contrast_k",
        "accumulate": 0,
        "weighted_scene_effect": False,
    },
    "fixed-beta": {"signal": "contrast_k", "idle_regression": False},
    "contrast_k": {"signal": "contrast_k"},
    "excess_k": {"signal": "excess_k"},
}


def _observations(workdir: Path, seed: int, workers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = workdir / f"sim{seed}"
    if not (sim / "truth.csv").is_file():
        kt.simulate(sim, start="2014-01-01", end="2025-11-30", seed=seed, workers=workers)
    db = workdir / f"seed{seed}.db"
    fp = kt.load_footprints(sim / "footprints.geojson")
    detect([sim / "products"], footprints=fp, store=db, workers=workers)
    with Store(db, create=False) as st:
        obs = st.observations()
    return obs, pd.read_csv(sim / "truth.csv")


def _truth_status(truth: pd.DataFrame) -> dict[str, bool]:
    """Operating (per the simulator) at the last truth scene on or before AS_OF."""
    t = truth.copy()
    t["acquired"] = pd.to_datetime(t["acquired"], utc=True)
    t["operating"] = operating_truth(t).to_numpy()
    t = t.loc[t["acquired"] <= pd.Timestamp(AS_OF, tz="UTC") + pd.Timedelta(days=1)]
    last = t.sort_values("acquired").groupby("building_id").tail(1)
    return {str(b): bool(o) for b, o in zip(last["building_id"], last["operating"], strict=True)}


def _mde_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median minimum detectable roof excess by area class."""
    out: dict[str, Any] = {}
    for name, lo, hi in (
        ("< 5,000 m2", 0, 5_000),
        ("5,000-10,000 m2", 5_000, 10_000),
        (">= 10,000 m2", 10_000, np.inf),
    ):
        sel = [r for r in rows if r["area_m2"] is not None and lo <= r["area_m2"] < hi]
        roof = [r["roof_excess_k"] for r in sel if r["roof_excess_k"] is not None]
        px = [r["pixel_excess_k"] for r in sel if r["pixel_excess_k"] is not None]
        out[name] = {
            "n": len(sel),
            "pixel_excess_k": float(np.nanmedian(px)) if px else None,
            "roof_excess_k": float(np.nanmedian(roof)) if roof else None,
        }
    return out


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def run(seeds: list[int], workdir: Path, workers: int) -> dict[str, Any]:
    """Every figure for every seed and variant."""
    results: dict[str, Any] = {}
    for seed in seeds:
        t0 = time.perf_counter()
        obs, truth = _observations(workdir, seed, workers)
        t_ingest = time.perf_counter() - t0
        truth_now = _truth_status(truth)
        per: dict[str, Any] = {"ingest_s": round(t_ingest, 1), "truth_operating": {}}
        per["truth_operating"] = {b: truth_now.get(b) for b in FACTORIES}
        per["truth_operating_other"] = sorted(
            b for b, o in truth_now.items() if o and b not in FACTORIES
        )
        for name, opts in VARIANTS.items():
            column = str(opts.get("signal", "contrast_k"))
            if column not in obs or not np.isfinite(obs[column].to_numpy(dtype=float)).any():
                # e.g. a store written by an extraction without the PSF estimator
                per[name] = {
                    "unavailable": f"no finite {column} in the store: detect extracts it only "
                    "with the opt-in PSF model (extract(..., psf_model=True))"
                }
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                analysis = kt.analyze(obs, **opts)
                res = score(analysis, truth, as_of=AS_OF)
            res["minimum_detectable_summary"] = _mde_summary(res["minimum_detectable"])
            per[name] = res
        results[str(seed)] = per
    return results


def _table(results: dict[str, Any]) -> str:
    lines = []
    head = "| figure | target | " + " | ".join(f"{s} {v}" for s in results for v in VARIANTS)
    lines.append(head + " |")
    lines.append("|---|---|" + "---:|" * (len(results) * len(VARIANTS)))

    def row(label: str, target: str, get: Any) -> None:
        cells = []
        for s in results:
            for v in VARIANTS:
                try:
                    cells.append(get(results[s][v], results[s]))
                except (KeyError, TypeError):
                    cells.append("-")
        lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")

    for b in FACTORIES:
        row(
            f"status {AS_OF}: {b}",
            "idle" if b == "support-center" else "active",
            lambda r, p, b=b: (
                r["status_as_of"]["status"].get(b, "-")
                + (" (truth on)" if p["truth_operating"].get(b) else " (truth off)")
            ),
        )
    row(
        "other buildings rated active (truth-operating ones marked *)",
        "only truly operating",
        lambda r, p: (
            ", ".join(
                b + ("*" if b in p["truth_operating_other"] else "")
                for b, st in r["status_as_of"]["status"].items()
                if st == "active" and b not in FACTORIES
            )
            or "none"
        ),
    )
    row(
        "false newly-active alerts / building-year, 2016-03..2022-12",
        "<= 0.02",
        lambda r, p: (
            f"{r['idle_years']['false_per_building_year']:.3f} "
            f"({r['idle_years']['n_false']} in {r['idle_years']['building_years']:.0f})"
        ),
    )
    row(
        "2014-2015 building-months rated active, >= 10,000 m2",
        ">= 0.90",
        lambda r, p: (
            f"{_fmt(r['operating_years']['large_rated_active'])} "
            f"(n={r['operating_years']['large_building_months']})"
        ),
    )
    row(
        "same, < 10,000 m2",
        "honest figure",
        lambda r, p: (
            f"{_fmt(r['operating_years']['small_rated_active'])} "
            f"(n={r['operating_years']['small_building_months']})"
        ),
    )
    row(
        "switch-on with pixel excess >= 2 K flagged within 2 valid scenes",
        "all",
        lambda r, p: f"{r['switch_on']['strong_within_2_scenes']} / {r['switch_on']['n_strong']}",
    )
    row(
        "switch-on events alerted (any excess) / delay median (scenes)",
        "-",
        lambda r, p: "{} / {} ({})".format(
            sum(e["alert_date"] is not None for e in r["switch_on"]["events"]),
            len(r["switch_on"]["events"]),
            _fmt(
                float(
                    np.median(
                        [
                            e["delay_scenes"]
                            for e in r["switch_on"]["events"]
                            if e["delay_scenes"] is not None
                        ]
                    )
                )
                if any(e["delay_scenes"] is not None for e in r["switch_on"]["events"])
                else None,
                1,
            ),
        ),
    )
    row("confidence ECE", "<= 0.05", lambda r, p: _fmt(r["calibration"]["ece"], 3))
    row(
        "observation P / R / F1",
        "-",
        lambda r, p: (
            f"{_fmt(r['observation']['precision'])} / "
            f"{_fmt(r['observation']['recall'])} / {_fmt(r['observation']['f1'])}"
        ),
    )
    row(
        "building-month P / R / F1",
        "-",
        lambda r, p: (
            f"{_fmt(r['building_month']['precision'])} / "
            f"{_fmt(r['building_month']['recall'])} / {_fmt(r['building_month']['f1'])}"
        ),
    )
    for cls in ("< 5,000 m2", "5,000-10,000 m2", ">= 10,000 m2"):
        row(
            f"min. detectable roof excess (K), {cls}, per scene",
            "-",
            lambda r, p, cls=cls: _fmt(r["minimum_detectable_summary"][cls]["roof_excess_k"], 1),
        )
    return "\n".join(lines)


def main() -> None:
    """Run and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2016, 2025])
    parser.add_argument("--workdir", default="/tmp/evaluate-detector")
    parser.add_argument("--out", default="benchmarks/results/detector.md")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = run(args.seeds, workdir, args.workers)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python benchmarks/evaluate_detector.py --seeds "
        + " ".join(str(s) for s in args.seeds),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "variants": VARIANTS,
    }
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2, default=str)
    )
    text = [
        "# Detector evaluation (simulated Kaesong, truth never seen by the detector)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; {meta['date']}. Simulation 2014-01-01..2025-11-30, "
        "Landsat 8+9 L2; tuning seeds were 11 and 12, the seeds below were not tuned on.",
        "",
        "Variants: *before* = per-scene rule only on `contrast_k`, unweighted scene effect; "
        "*fixed-beta* = the previous defaults (inverse-variance weighted scene effect, "
        "accumulated statistic Z_6 >= 3, every idle roof following the scene effect with "
        "beta = 1); *contrast_k* = current defaults (the same with the idle-roof regression: "
        "per-building robust ridge response to the scene effect, background-temperature "
        "departure and season); *excess_k* = current defaults on the PSF-aware roof excess.",
        "",
        _table(results),
        "",
        *[
            f"Variant {v} for seed {sd}: not run ({r[v]['unavailable']})."
            for sd, r in results.items()
            for v in VARIANTS
            if isinstance(r.get(v), dict) and "unavailable" in r[v]
        ],
        "",
        "Minimum detectable excess: 90 % detection at 5 % false alarm for a single scene, "
        "injected on the observed idle noise (roof excess = pixel-level excess / measured "
        "dilution); the accumulated test over 6 scenes needs about 1/sqrt(6) of it for a "
        "persistent excess.",
    ]
    write_block(out, "\n".join(text))


#: Markers of this script's block in a results file shared with ``evaluate_stress.py``.
START, END = "<!-- kaesong:start -->", "<!-- kaesong:end -->"


def write_block(out: Path, block: str) -> None:
    """Write ``block`` between :data:`START` and :data:`END` of ``out``, keeping the rest.

    The stress sections and every note around them stay as they are; a file from before the
    markers had this block above its first stress section, which is where it goes.  Written to
    a temporary file first and renamed, so an interrupted run leaves the old file whole.
    """
    old = out.read_text() if out.is_file() else ""
    new = f"{START}\n{block}\n{END}"
    if START in old and END in old:
        head, rest = old.split(START, 1)
        text = head + new + rest.split(END, 1)[1]
    else:
        cut = old.find("<!-- stress:")
        text = new + ("\n\n" + old[cut:] if cut >= 0 else "\n")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
