"""Simulator speed: seconds per simulated Landsat product, crop and full size.

Times :func:`kaesong_thermal.simulate` for one year of Landsat 8 + 9 crop products (Level-2, Level-1
and both) with 1 and 2 workers, and one full-size (7,800 x 7,700) Level-2 product. The demo needs
about 370 crop scenes, so the crop figure decides how long `kaesong-thermal demo` takes.
Results go to ``benchmarks/results/simulate.md``.

Usage::

    python benchmarks/bench_simulate.py [--skip-full] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from kaesong_thermal.simulation import simulate

RESULTS = Path(__file__).resolve().parent / "results" / "simulate.md"


def _timed(outdir: Path, **kwargs: object) -> tuple[int, float]:
    shutil.rmtree(outdir, ignore_errors=True)
    t0 = time.perf_counter()
    res = simulate(outdir, **kwargs)  # type: ignore[arg-type]
    return res.n_scenes, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-full", action="store_true", help="skip the full-size product")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kt-bench-sim-"))
    rows: list[tuple[str, str, int, int, float]] = []
    for level in ("L2", "L1", "both"):
        for workers in (1, 2):
            n, secs = _timed(
                work / f"crop-{level}-{workers}",
                start="2024-01-01",
                end="2024-12-31",
                level=level,
                seed=1,
                workers=workers,
            )
            rows.append(("crop 200 x 200", level, workers, n, secs))
            print(f"crop {level} workers={workers}: {n} products, {secs / n:.3f} s each")
    if not args.skip_full:
        n, secs = _timed(
            work / "full", start="2024-01-01", end="2024-01-10", size="full", seed=1, workers=1
        )
        rows.append(("full 7,800 x 7,700", "L2", 1, n, secs))
        print(f"full L2: {n} product(s), {secs / max(n, 1):.1f} s each")
    lines = [
        "# Simulator speed",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; command `python benchmarks/bench_simulate.py`. Crop runs "
        "simulate 2024 (Landsat 8 + 9, 28 shipped footprints); times include writing every "
        "GeoTIFF (tiled DEFLATE) and MTL (txt, json, xml).",
        "",
        "| size | level | workers | products | seconds | seconds per product |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for size, level, workers, n, secs in rows:
        lines.append(
            f"| {size} | {level} | {workers} | {n} | {secs:.1f} | {secs / max(n, 1):.3f} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
