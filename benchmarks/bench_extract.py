"""Benchmark per-building extraction against exactextract, rasterstats and raw window reads.

Usage (from the project root)::

    python benchmarks/bench_extract.py --out benchmarks/results/extract.md

Simulates (once, cached under ``benchmarks/_data/``) five full-size Landsat 8/9 Collection 2
Level-2 products of WRS-2 116/034 (7,700 lines x 7,800 samples, tiled DEFLATE GeoTIFFs: ST_B10,
ST_QA, QA_PIXEL, ...) with ``kaesong_thermal.simulate(size="full")``, and the same acquisitions as
200 x 200 crops. Footprints: 100 / 1,000 / 10,000 buildings in industrial parks of ~250 on a 110 m
block grid around Kaesong, ~20 % of them smaller than a 30 m pixel, all inside the full scene.
Every product is opened through the project reader (``kaesong_thermal.landsat.open_scene``).
For each size it times, in the same run:

- ``kt.extract(scene, footprints)`` cold (weights computed, on the clear scene) and warm (weights
  cached: the other scenes of the same path/row, i.e. the time-series case);
- the raw read of the same window through the project reader, ``scene.read_kelvin(bounds)``
  (ST_B10 + QA_PIXEL + ST_QA, scaling and masks), and a plain rasterio read of the ST_B10 window;
- exactextract ``exact_extract(..., ["mean"])`` (coverage-weighted mean) and rasterstats
  ``zonal_stats(..., stats=["mean"])`` on the ST_B10 file (skip rasterstats with
  ``--skip-rasterstats``);
- peak traced memory (tracemalloc) cold and warm, and, for 100 footprints inside the crop, warm
  on the crop product and on the full product of the same acquisition;
- agreement: max |t_roof_k - exactextract mean| over the buildings whose roof pixels are all
  valid in the project reader (the same pixels enter both means), sub-pixel roofs included.

Each timed call opens the product afresh (so GDAL's block cache never serves a window twice),
the files sit in the OS page cache. Writes a Markdown table to ``--out`` and the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.crs import CRS
from shapely import affinity

import kaesong_thermal as kt
from kaesong_thermal import extraction as ex
from kaesong_thermal.landsat import open_scene
from kaesong_thermal.landsat.scene import Scene

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "_data"
CRS_UTM = CRS.from_epsg(32652)
#: Kaesong industrial region (UTM 52N metres): centre of the clusters.
CENTRE_XY = (286_000.0, 4_203_000.0)
#: Simulated acquisitions: Landsat 8 and 9 of path 116 row 34 over five weeks.
SIMULATION = {"start": "2024-01-01", "end": "2024-02-10", "seed": 5}
#: Ring outer radius + exclusion margin + one pixel: the pad ``extract`` reads around the roofs, m.
PAD_M = 200.0 + 30.0 + 30.0


# ------------------------------------------------------------------------------- test data
def simulated_products(size: str) -> list[Path]:
    """Product directories of the simulated acquisitions (simulated on first use)."""
    out = DATA / f"sim_{size}"
    if not (out / "scenes.csv").exists():
        print(f"simulating {size} products into {out} ...", flush=True)
        kt.simulate(out, size=size, workers=1, **SIMULATION)  # type: ignore[arg-type]
    ids = pd.read_csv(out / "scenes.csv")["scene_id"]
    return [out / "products" / str(i) for i in ids]


def clearest(products: list[Path]) -> Path:
    """The product with the lowest simulated cloud fraction."""
    table = pd.read_csv(products[0].parents[1] / "scenes.csv").set_index("scene_id")
    return min(products, key=lambda p: float(table.loc[p.name, "cloud_fraction"]))


def make_footprints(
    n: int,
    seed: int = 1,
    *,
    centre: tuple[float, float] = CENTRE_XY,
    spread: float | None = None,
) -> gpd.GeoDataFrame:
    """``n`` footprints in industrial parks of ~250 buildings on a block grid around ``centre``.

    Park centres are uniform within +-``spread`` m (default 4 km x sqrt(number of parks)).
    """
    rng = np.random.default_rng(seed)
    n_parks = max(1, n // 250)
    if spread is None:
        spread = 4_000.0 * math.sqrt(n_parks)
    geoms: list[shapely.Polygon] = []
    left = n
    for _ in range(n_parks):
        k = left if _ == n_parks - 1 else n // n_parks
        left -= k
        px = centre[0] + rng.uniform(-spread, spread)
        py = centre[1] + rng.uniform(-spread, spread)
        angle = rng.uniform(0, 90)
        side = math.ceil(math.sqrt(k))
        spacing = 110.0
        for i in range(k):
            gx, gy = (i % side - side / 2) * spacing, (i // side - side / 2) * spacing
            # ~20 % smaller than a 30 m pixel, the rest 30-95 m
            if rng.random() < 0.2:
                bw, bh = rng.uniform(8, 28), rng.uniform(8, 28)
            else:
                bw, bh = rng.uniform(30, 95), rng.uniform(25, 60)
            poly = shapely.box(gx - bw / 2, gy - bh / 2, gx + bw / 2, gy + bh / 2)
            poly = affinity.rotate(poly, angle + rng.normal(0, 3), origin=(0, 0))
            geoms.append(affinity.translate(poly, px, py))
    ids = pd.Index([f"b{i:05d}" for i in range(n)], name="building_id")
    return gpd.GeoDataFrame(geometry=geoms, index=ids, crs=CRS_UTM)


# ------------------------------------------------------------------------------- timing
def fresh(path: Path, fn: Callable[[Scene], Any]) -> tuple[float, Any]:
    """Wall time (s) of ``fn`` on a newly opened product (no GDAL block cache reuse)."""
    scene = open_scene(path)
    try:
        t0 = time.perf_counter()
        out = fn(scene)
        return time.perf_counter() - t0, out
    finally:
        scene.close()


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls (s) and the last result."""
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def peak_mib(fn: Callable[[], Any]) -> float:
    """Peak traced memory (MiB) of one call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def read_bounds(fp: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    """The bounds ``extract`` reads around the footprints (same CRS as the scene)."""
    xmin, ymin, xmax, ymax = (float(v) for v in fp.total_bounds)
    return xmin - PAD_M, ymin - PAD_M, xmax + PAD_M, ymax + PAD_M


def band_path(product: Path, band: str = "ST_B10") -> Path:
    return product / f"{product.name}_{band}.TIF"


def run_size(
    n: int, clear: Path, warm: list[Path], *, rasterstats: bool, repeat: int
) -> dict[str, Any]:
    from exactextract import exact_extract

    fp = make_footprints(n)
    bounds = read_bounds(fp)
    with open_scene(clear) as scene:
        win = scene.window_for(bounds)
        scaling = scene.mtl.st_scaling("ST_B10")

    # cold: weights computed (once per path/row), on the clear scene
    ex.clear_cache()
    t_cold, _ = fresh(clear, lambda s: kt.extract(s, fp))
    # warm (time series) vs raw reads of the same window, interleaved scene by scene
    warm_t: list[float] = []
    read_t: list[float] = []
    rio_t: list[float] = []
    for _ in range(repeat):
        for product in warm:
            read_t.append(fresh(product, lambda s: s.read_kelvin(bounds))[0])
            warm_t.append(fresh(product, lambda s: kt.extract(s, fp))[0])
            t0 = time.perf_counter()
            with rasterio.open(band_path(product)) as ds:
                ds.read(1, window=win)
            rio_t.append(time.perf_counter() - t0)
    t_warm, t_read, t_rio = (statistics.median(v) for v in (warm_t, read_t, rio_t))

    # memory: cold and warm (weights cached) on the full scene
    ex.clear_cache()
    mem_cold = peak_mib(lambda: fresh(clear, lambda s: kt.extract(s, fp)))
    mem_warm = peak_mib(lambda: fresh(warm[0], lambda s: kt.extract(s, fp)))

    # peers, on the ST_B10 file of the clear scene
    vec = fp.reset_index()
    t_ee, ref = timed(
        lambda: exact_extract(
            str(band_path(clear)), vec, ["mean"], include_cols=["building_id"], output="pandas"
        ),
        max(1, repeat // 2),
    )
    t_rs = None
    rs_missing = None
    if rasterstats:
        from rasterstats import zonal_stats

        t0 = time.perf_counter()
        rs = zonal_stats(list(fp.geometry.values), str(band_path(clear)), stats=["mean"], nodata=0)
        t_rs = time.perf_counter() - t0
        rs_missing = int(sum(r["mean"] is None for r in rs))

    # agreement on buildings whose roof pixels are all valid (no quality thresholds)
    _, loose = fresh(clear, lambda s: kt.extract(s, fp, min_valid_fraction=0.0, min_ring_px=0))
    merged = loose.merge(ref, on="building_id")
    merged["ee_k"] = merged["mean"] * scaling.mult_k + scaling.add_k
    all_valid = (merged["valid_fraction"] >= 1.0 - 1e-9) & merged["ee_k"].notna()
    diff = (merged.loc[all_valid, "t_roof_k"] - merged.loc[all_valid, "ee_k"]).abs()
    sub = (fp.geometry.area < 900.0).to_numpy()
    sub_ids = set(fp.index[sub])
    ex.clear_cache()
    return {
        "n": n,
        "subpixel": int(sub.sum()),
        "window_px": [int(win.height), int(win.width)],
        "ours_cold_s": t_cold,
        "ours_warm_s": t_warm,
        "read_kelvin_s": t_read,
        "rasterio_st_b10_s": t_rio,
        "exactextract_s": t_ee,
        "rasterstats_s": t_rs,
        "rasterstats_missing": rs_missing,
        "peak_cold_mib": mem_cold,
        "peak_warm_mib": mem_warm,
        "warm_over_read_kelvin": t_warm / t_read,
        "warm_over_rasterio": t_warm / t_rio,
        "exactextract_over_warm": t_ee / t_warm,
        "exactextract_over_cold": t_ee / t_cold,
        "max_abs_diff_k": float(diff.max()),
        "compared": int(all_valid.sum()),
        "compared_subpixel": int(merged.loc[all_valid, "building_id"].isin(sub_ids).sum()),
        "warm_samples": len(warm_t),
    }


def scene_size_memory(full: Path, crop: Path) -> dict[str, Any]:
    """Peak warm memory of 100 footprints inside the crop, on the crop and on the full product."""
    with open_scene(crop) as c:
        b = c.bounds
    centre = ((b.left + b.right) / 2.0, (b.bottom + b.top) / 2.0)
    fp = make_footprints(100, seed=3, centre=centre, spread=300.0)
    out: dict[str, Any] = {}
    for name, product in (("crop", crop), ("full", full)):

        def run(path: Path = product) -> Any:
            return fresh(path, lambda s: kt.extract(s, fp))

        ex.clear_cache()
        run()  # weights cached
        out[f"peak_warm_{name}_mib"] = peak_mib(run)
        with open_scene(product) as s:
            out[f"{name}_shape"] = [s.height, s.width]
            w = s.window_for(read_bounds(fp))
            out["window_px"] = [int(w.height), int(w.width)]
    ex.clear_cache()
    return out


def to_markdown(results: list[dict[str, Any]], memory: dict[str, Any], meta: dict[str, Any]) -> str:
    def f(v: Any, fmt: str = "{:.3f}") -> str:
        return "skipped" if v is None else fmt.format(v)

    fh, fw = memory["full_shape"]
    ch, cw = memory["crop_shape"]
    lines = [
        "# Extraction benchmark",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; Python {meta['python']}; {meta['date']}; load average "
        f"(1 min) {meta['load_before']:.2f} before, {meta['load_after']:.2f} after (2 cores "
        "shared with other jobs)  ",
        f"Scenes: simulated Landsat 8/9 C2 Level-2 products of 116/034, {fh:,} x {fw:,} "
        "(tiled DEFLATE GeoTIFF), read with `kaesong_thermal.landsat.open_scene`; each timed call "
        "opens the product afresh, files in the OS page cache; warm and read times are medians "
        f"over {results[0]['warm_samples']} scene opens.",
        "",
        "| footprints | < 900 m2 | window (px) | ours cold (s) | ours warm (s) "
        "| read_kelvin (s) | rasterio ST_B10 (s) | exactextract (s) | rasterstats (s) "
        "| warm / read_kelvin | warm / rasterio | exactextract / warm | peak cold (MiB) "
        "| peak warm (MiB) | max abs diff (K) | compared (sub-pixel) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['n']:,} | {r['subpixel']:,} | {r['window_px'][0]} x {r['window_px'][1]} "
            f"| {f(r['ours_cold_s'])} | {f(r['ours_warm_s'], '{:.4f}')} "
            f"| {f(r['read_kelvin_s'], '{:.4f}')} | {f(r['rasterio_st_b10_s'], '{:.4f}')} "
            f"| {f(r['exactextract_s'])} | {f(r['rasterstats_s'], '{:.1f}')} "
            f"| {f(r['warm_over_read_kelvin'], '{:.2f}')} | {f(r['warm_over_rasterio'], '{:.2f}')} "
            f"| {f(r['exactextract_over_warm'], '{:.1f}')} "
            f"| {f(r['peak_cold_mib'], '{:.1f}')} | {f(r['peak_warm_mib'], '{:.1f}')} "
            f"| {r['max_abs_diff_k']:.1e} | {r['compared']:,} ({r['compared_subpixel']:,}) |"
        )
    wh, ww = memory["window_px"]
    lines += [
        "",
        f"Peak memory against scene size (100 footprints inside the crop, window {wh} x {ww} px, "
        "weights cached):",
        "",
        "| product | scene (px) | peak warm (MiB) |",
        "|---|---|---:|",
        f"| crop | {ch:,} x {cw:,} | {memory['peak_warm_crop_mib']:.2f} |",
        f"| full | {fh:,} x {fw:,} | {memory['peak_warm_full_mib']:.2f} |",
        "",
        "- *ours*: `kt.extract(scene, footprints)` on the project's `Scene`; *cold* computes the "
        "coverage and ring weights (clear scene), *warm* reuses them on the other scenes of the "
        "same path/row (the time-series case).",
        "- *read_kelvin*: `scene.read_kelvin(bounds)` of the same window (ST_B10, QA_PIXEL and "
        "ST_QA, scaling and masks): the I/O floor of any extraction through the reader. "
        "*rasterio ST_B10*: open the ST_B10 file and read the uint16 window, nothing else.",
        "- *exactextract*: `exact_extract(ST_B10 file, polygons, ['mean'])` (coverage-weighted "
        "mean, DN scaled to kelvin for the comparison); *rasterstats*: `zonal_stats(..., "
        "stats=['mean'], nodata=0)` (pixel-centre rule); both on the clear scene's file.",
        "- *max abs diff*: max |t_roof_k - exactextract mean| over the buildings whose roof "
        "pixels are all valid in the reader (clouds, fill and ST_QA above 2.5 K excluded), "
        "without quality thresholds; *compared*: how many (of them smaller than a pixel).",
        "- *peak*: tracemalloc peak of one `extract` call, opening the product included "
        "(Python and numpy allocations; GDAL's block cache is not traced).",
    ]
    for r in results:
        if r["rasterstats_missing"] is not None:
            lines.append(
                f"- rasterstats returned no value for {r['rasterstats_missing']:,} of {r['n']:,} "
                f"footprints ({r['subpixel']:,} are smaller than a pixel)."
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "extract.md")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument(
        "--repeat", type=int, default=3, help="passes over the warm scenes (and exactextract runs)"
    )
    parser.add_argument("--skip-rasterstats", action="store_true", help="skip the slow peer")
    args = parser.parse_args(argv)

    full = simulated_products("full")
    crop = simulated_products("crop")
    clear = clearest(full)
    warm = [p for p in full if p != clear]
    load_before = os.getloadavg()[0]
    results = []
    for n in args.sizes:
        print(f"{n} footprints ...", flush=True)
        r = run_size(n, clear, warm, rasterstats=not args.skip_rasterstats, repeat=args.repeat)
        print(json.dumps(r), flush=True)
        results.append(r)
    crop_same = next(p for p in crop if p.name == clear.name)
    memory = scene_size_memory(clear, crop_same)
    print(json.dumps(memory), flush=True)
    meta = {
        "command": "python benchmarks/bench_extract.py " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "simulation": SIMULATION,
        "clear_scene": clear.name,
        "warm_scenes": [p.name for p in warm],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_markdown(results, memory, meta))
    args.out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "results": results, "scene_size_memory": memory}, indent=2)
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
