"""End-to-end throughput of ``detect`` for the Kaesong scenario: scenes per second.

Simulates ``--scenes`` Level-2 Kaesong products (crop size, 200 x 200 pixels around the complex,
Landsat 8 and 9), then times ``kaesong_thermal.pipeline.detect`` into a fresh store for each
worker count: open product, thermal checksum, extraction of all buildings, one transaction per
scene, analysis of the whole store. A second run over the same products (everything already
stored) measures the cost of the idempotency check. Results go to
``benchmarks/results/pipeline.md``.

Usage::

    python benchmarks/bench_pipeline.py [--scenes 100] [--workers 1 2] [--workdir /tmp/bench]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from kaesong_thermal.pipeline import detect
from kaesong_thermal.simulation import simulate

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sim_dir = work / "sim"
    if not (sim_dir / "products").is_dir():
        simulate(sim_dir, start="2019-04-01", end="2025-11-30", size="crop", seed=1, workers=2)
    products = sorted((sim_dir / "products").iterdir(), key=lambda p: p.name.split("_")[3])
    products = products[: args.scenes]
    fp = sim_dir / "footprints.geojson"
    rows = []
    for workers in args.workers:
        db = work / f"bench-{workers}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        t0 = time.perf_counter()
        res = detect(products, footprints=fp, store=db, workers=workers)
        t_new = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = detect(products, footprints=fp, store=db, workers=workers)
        t_again = time.perf_counter() - t0
        assert len(res.ingested) == len(products) and len(again.skipped) == len(products)
        rows.append((workers, len(products), t_new, t_again))
        print(
            f"workers={workers}: {len(products) / t_new:.1f} scenes/s new, "
            f"{len(products) / t_again:.1f} scenes/s already stored"
        )
    lines = [
        "# Pipeline throughput (`detect`, Kaesong scenario, end to end)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Products: {len(products)} simulated Level-2 "
        "scenes (crop, 200 x 200 px, 28 buildings), run `python benchmarks/bench_pipeline.py "
        f"--scenes {args.scenes}`. Times include process-pool start-up (spawn), extraction, "
        "one SQLite transaction per scene and the analysis of the whole store.",
        "",
        "| workers | scenes | new: seconds | new: scenes/s | re-run (all stored): seconds "
        "| re-run: scenes/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for workers, n, t_new, t_again in rows:
        lines.append(
            f"| {workers} | {n} | {t_new:.1f} | {n / t_new:.1f} | {t_again:.1f} "
            f"| {n / t_again:.1f} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written {RESULTS}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
