"""Analysis at scale: ``kt.analyze`` on 30 / 1,000 / 10,000 buildings x 400 scenes.

No rasters: a synthetic observations table with the extraction columns is generated directly
(``docs/interfaces.md``): 400 Landsat 8/9 Level-2 scenes every 8 days from 2015-01 (about 8.8
years, so the default idle baseline 2016-03-01:2022-12-31 holds some 290 of them), a quarter of
the observations clouded (NaN temperatures, ``valid_fraction`` 0), a per-scene effect shared by
all roofs, per-building noise, and 10 % of the buildings that switch on (+3 K contrast) at a
random date after 2023. Each size runs in a fresh subprocess, which reports the wall time of
``analyze`` and of ``Analysis.status()`` / ``transitions()`` (what ``status`` and ``report``
call), the process's resident memory before ``analyze`` and its peak (``ru_maxrss``). The time
exponent is fitted on log time against log rows. One size is also profiled (cProfile), and the
functions that dominate are listed.

Usage::

    python benchmarks/bench_analyze.py [--sizes 30 1000 10000] [--scenes 400] [--profile 1000]

Output: ``benchmarks/results/analyze.md`` (and ``analyze.json``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import platform
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_observations(n_buildings: int, n_scenes: int, seed: int = 0) -> pd.DataFrame:
    """An observations table of ``n_buildings`` x ``n_scenes`` with the extraction columns."""
    rng = np.random.default_rng(seed)
    acquired = pd.date_range("2015-01-03 02:10", periods=n_scenes, freq="8D", tz="UTC")
    sensors = np.where(np.arange(n_scenes) % 2 == 0, "LC08", "LC09")
    scene_ids = [
        f"{s}_L2SP_116034_{a:%Y%m%d}_{a:%Y%m%d}_02_T1"
        for s, a in zip(sensors, acquired, strict=True)
    ]
    ids = np.array([f"b{i:05d}" for i in range(n_buildings)], dtype=object)
    n = n_buildings * n_scenes
    b_idx = np.tile(np.arange(n_buildings), n_scenes)
    s_idx = np.repeat(np.arange(n_scenes), n_buildings)
    season = 4.0 * np.sin(2 * np.pi * (acquired.day_of_year.to_numpy() - 100) / 365.25)
    scene_effect = season + rng.normal(0.0, 1.0, n_scenes)
    own = rng.normal(1.0, 1.5, n_buildings)
    contrast = scene_effect[s_idx] + own[b_idx] + rng.normal(0.0, 0.6, n)
    switch = rng.random(n_buildings) < 0.10
    on_from = np.where(switch, rng.integers(int(n_scenes * 0.9), n_scenes, n_buildings), n_scenes)
    contrast = contrast + np.where(s_idx >= on_from[b_idx], 3.0, 0.0)
    background = 290.0 + 8.0 * np.sin(2 * np.pi * (acquired.day_of_year.to_numpy() - 110) / 365.25)
    t_bg = background[s_idx] + rng.normal(0.0, 0.3, n)
    clouded = rng.random(n) < 0.25
    valid_fraction = np.where(clouded, 0.0, rng.uniform(0.8, 1.0, n))
    area = rng.uniform(800.0, 20_000.0, n_buildings)

    def masked(values: np.ndarray) -> np.ndarray:
        return np.where(clouded, np.nan, values)

    frame = pd.DataFrame(
        {
            "building_id": ids[b_idx],
            "scene_id": np.asarray(scene_ids, dtype=object)[s_idx],
            "acquired": acquired[s_idx],
            "sensor": sensors[s_idx].astype(object),
            "level": np.full(n, "L2", dtype=object),
            "t_roof_k": masked(t_bg + contrast),
            "t_roof_max_k": masked(t_bg + contrast + 1.5),
            "t_background_k": masked(t_bg),
            "t_background_iqr_k": masked(rng.uniform(0.5, 2.0, n)),
            "contrast_k": masked(contrast),
            "sigma_k": masked(rng.uniform(0.4, 1.2, n)),
            "cover_px": (area / 900.0)[b_idx],
            "valid_fraction": valid_fraction,
            "ring_valid_px": np.where(clouded, 0, rng.integers(20, 120, n)).astype(np.int64),
            "area_m2": area[b_idx],
            "excess_k": np.full(n, np.nan),
            "excess_sigma_k": np.full(n, np.nan),
        }
    )
    return frame


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return float("nan")


def run_one(n_buildings: int, n_scenes: int, profile: bool) -> dict[str, Any]:
    """Time one size in this process; optionally profile ``analyze``."""
    # imported before the clock starts: the first use of analyze imports scipy.stats (about 1 s)
    from kaesong_thermal.analysis import analyze

    t0 = time.perf_counter()
    obs = synthetic_observations(n_buildings, n_scenes)
    t_gen = time.perf_counter() - t0
    rss_before = _rss_mb()
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if profiler is not None:
        profiler.enable()
    analysis = analyze(obs)
    t_analyze = time.perf_counter() - t0
    cpu_analyze = time.process_time() - cpu0
    t0 = time.perf_counter()
    status = analysis.status()
    t_status = time.perf_counter() - t0
    t0 = time.perf_counter()
    transitions = analysis.transitions()
    t_trans = time.perf_counter() - t0
    if profiler is not None:
        profiler.disable()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # kB on Linux
    out: dict[str, Any] = {
        "buildings": n_buildings,
        "scenes": n_scenes,
        "rows": len(obs),
        "generate_s": round(t_gen, 3),
        "analyze_s": round(t_analyze, 3),
        "analyze_cpu_s": round(cpu_analyze, 3),
        "status_s": round(t_status, 3),
        "transitions_s": round(t_trans, 3),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "input_mb": round(obs.memory_usage(deep=True).sum() / 1e6, 1),
        "n_active": int((status["status"] == "active").sum()),
        "n_transitions": len(transitions),
    }
    if profiler is not None:
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats("tottime").print_stats(25)
        out["profile_tottime"] = stream.getvalue()
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats("cumulative").print_stats(40)
        out["profile_cumulative"] = stream.getvalue()
    return out


def _cpu(row: dict[str, Any]) -> str:
    value = row.get("analyze_cpu_s")
    return "-" if value is None else f"{value:.2f}"


def _exponent(rows: list[dict[str, Any]], key: str) -> float | None:
    pts = [(math.log(r["rows"]), math.log(r[key])) for r in rows if r.get(key, 0) > 0]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def _profile_lines(text: str, n: int) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith("ncalls")), 0)
    return lines[start : start + n + 1]


def write_markdown(rows: list[dict[str, Any]], profiled: dict[str, Any] | None) -> str:
    lines = [
        "# Analysis at scale (`benchmarks/bench_analyze.py`)",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores. Synthetic observations (no rasters), 25 % clouded, default "
        "`kt.analyze(obs)` (baseline 2016-03-01:2022-12-31, `contrast_k`). One fresh process "
        "per size; memory is the process's resident set (RSS) before `analyze` (the input "
        "table, Python and the imports) and its peak over the run.",
        "",
        "| buildings | scenes | rows | analyze s | analyze CPU s | status() s | transitions() s | "
        "input MB | RSS before MB | peak RSS MB | active | transitions |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['buildings']:,} | {r['scenes']} | {r['rows']:,} | {r['analyze_s']:.2f} | "
            f"{_cpu(r)} | "
            f"{r['status_s']:.2f} | {r['transitions_s']:.2f} | {r['input_mb']:.0f} | "
            f"{r['rss_before_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['n_active']} | "
            f"{r['n_transitions']} |"
        )
    big = [r for r in rows if r["buildings"] >= 1000]
    for label, subset in (("all sizes", rows), ("1,000 and more buildings", big)):
        e_time = _exponent(subset, "analyze_s")
        if e_time is not None:
            lines.append("")
            lines.append(
                f"Fitted exponent of `analyze` time against rows ({label}): {e_time:.2f} "
                "(1 = linear)."
            )
    extra = [(r["rows"], r["peak_rss_mb"] - r["rss_before_mb"]) for r in big]
    if len(extra) >= 2 and all(v > 0 for _, v in extra):
        x, y = np.log(np.array(extra, dtype=float)).T
        lines.append("")
        lines.append(
            "Fitted exponent of the memory `analyze` adds (peak RSS minus RSS before) against "
            f"rows: {float(np.polyfit(x, y, 1)[0]):.2f}."
        )
    if profiled is not None:
        lines += [
            "",
            f"## Profile ({profiled['buildings']:,} buildings x {profiled['scenes']} scenes, "
            "cProfile, `analyze` + `status()` + `transitions()`)",
            "",
            "By own time:",
            "",
            "```",
            *_profile_lines(profiled["profile_tottime"], 20),
            "```",
            "",
            "By cumulative time:",
            "",
            "```",
            *_profile_lines(profiled["profile_cumulative"], 30),
            "```",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 1000, 10000])
    parser.add_argument("--scenes", type=int, default=400)
    parser.add_argument("--profile", type=int, default=1000, help="size to profile (0: none)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--with-profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "analyze.md")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of other sizes from the existing analyze.json",
    )
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.scenes, args.with_profile)))
        return
    rows: list[dict[str, Any]] = []
    profiled = None
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(size), "--scenes", str(args.scenes)]
        print(f"{size} buildings x {args.scenes} scenes ...", flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"  analyze {result['analyze_s']:.2f} s, status {result['status_s']:.2f} s, "
            f"peak RSS {result['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        rows.append(result)
    if args.profile:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(args.profile),
            "--scenes",
            str(args.scenes),
            "--with-profile",
        ]
        print(f"profiling {args.profile} buildings ...", flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        profiled = json.loads(done.stdout.strip().splitlines()[-1])
    previous = args.out.with_suffix(".json")
    if args.merge and previous.exists():
        done_sizes = {r["buildings"] for r in rows}
        kept = [
            r for r in json.loads(previous.read_text())["rows"] if r["buildings"] not in done_sizes
        ]
        rows = sorted([*kept, *rows], key=lambda r: r["buildings"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(write_markdown(rows, profiled))
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"rows": rows, "profiled": None if profiled is None else profiled["buildings"]},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
