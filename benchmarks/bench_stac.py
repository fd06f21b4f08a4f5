"""Bytes, requests and wall time per scene of a STAC scene read window by window over HTTP.

A full-size (7,700 x 7,800) simulated Landsat 8 Level-2 product is written as Cloud-Optimized
GeoTIFFs and served with its STAC item by the loopback STAC server of the test suite
(``tests/_stac_server.py``, 127.0.0.1 only, HTTP Range support). For the shipped Kaesong
footprints we measure, on the server side:

- *window read*: ``kt.extract(kt.open_scene(item), footprints)``: the MTL, the COG headers and
  the tiles under the footprints' window (QA_PIXEL first for the cloud pre-filter, then ST_B10,
  ST_QA), each run in a fresh process (GDAL's caches empty);
- *whole download*: GET of the product's ST_B10 and QA_PIXEL COGs whole (what a download of
  the bands, before any crop, costs).

Usage (from the project root)::

    python benchmarks/bench_stac.py --out benchmarks/results/stac.md [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _stac_server import StacServer, publish_product  # noqa: E402


def _window_read(item: dict[str, Any], queue: Any) -> None:
    import kaesong_thermal as kt
    import kaesong_thermal.extraction
    import kaesong_thermal.landsat.remote
    import kaesong_thermal.zonal  # the imports are not part of the timing

    footprints = kt.load_footprints()
    t0 = time.perf_counter()
    scene = kt.open_scene(item)
    t1 = time.perf_counter()
    obs = kt.extract(scene, footprints)
    seconds = time.perf_counter() - t0
    queue.put(
        {
            "seconds": seconds,
            "open_seconds": t1 - t0,
            "valid": int(obs["t_roof_k"].notna().sum()),
            "buildings": len(obs),
            "clouded": bool(getattr(scene, "site_clouded", False)),
        }
    )


def _download(urls: list[str]) -> tuple[float, int]:
    import requests

    t0 = time.perf_counter()
    total = 0
    for url in urls:
        response = requests.get(url, timeout=120)
        response.raise_for_status()
        total += len(response.content)
    return time.perf_counter() - t0, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/stac.md")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--date", default="2025-11-05", help="acquisition date to simulate")
    parser.add_argument("--workdir", type=Path, help="keep the simulated product here")
    args = parser.parse_args(argv)

    import kaesong_thermal as kt

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-stac-"))
    sim_dir = work / "sim"
    products = sorted((sim_dir / "products").glob("*")) if (sim_dir / "products").exists() else []
    if not products:
        print("simulating one full-size product ...", file=sys.stderr)
        kt.simulate(
            sim_dir,
            start=args.date,
            end=args.date,
            size="full",
            sensors="landsat-8",
            stac=True,
            seed=3,
            workers=1,
        )
        products = sorted((sim_dir / "products").glob("*"))
    product = products[0]
    server = StacServer(work / "srv")
    try:
        t0 = time.perf_counter()
        item = publish_product(server, product, collection="landsat-c2-l2")
        cog_seconds = time.perf_counter() - t0
        folder = server.root / "data" / "landsat-c2-l2" / product.name
        sizes = {
            p.name.removeprefix(product.name + "_"): p.stat().st_size for p in folder.glob("*")
        }

        context = multiprocessing.get_context("spawn")
        reads = []
        for _ in range(args.runs):
            server.reset_counts()
            queue = context.Queue()
            proc = context.Process(target=_window_read, args=(item, queue))
            proc.start()
            result = queue.get(timeout=300)
            proc.join()
            requests, nbytes = server.totals("/data/")
            with server.lock:
                per_file = {
                    path.rsplit("/", 1)[-1].removeprefix(product.name + "_"): (s.requests, s.bytes)
                    for path, s in server.served.items()
                }
            reads.append({**result, "requests": requests, "bytes": nbytes, "per_file": per_file})

        downloads = []
        urls = [item["assets"][k]["href"] for k in ("lwir11", "qa_pixel")]
        for _ in range(args.runs):
            server.reset_counts()
            seconds, received = _download(urls)
            requests, nbytes = server.totals("/data/")
            downloads.append(
                {"seconds": seconds, "bytes": nbytes, "requests": requests, "received": received}
            )
    finally:
        server.close()

    read_bytes = statistics.median(r["bytes"] for r in reads)
    read_reqs = statistics.median(r["requests"] for r in reads)
    read_s = statistics.median(r["seconds"] for r in reads)
    open_s = statistics.median(r["open_seconds"] for r in reads)
    down_bytes = statistics.median(d["bytes"] for d in downloads)
    down_s = statistics.median(d["seconds"] for d in downloads)
    ratio = read_bytes / down_bytes
    per_file = reads[-1]["per_file"]
    lines = [
        "# STAC window reads against whole downloads",
        "",
        "Produced by `python benchmarks/bench_stac.py --out benchmarks/results/stac.md "
        f"--runs {args.runs}` (details in `docs/benchmarks.md`).",
        "",
        f"Product: `{product.name}` (simulated, 7,700 x 7,800, COGs of 256 px DEFLATE tiles, "
        f"written in {cog_seconds:.1f} s), served on 127.0.0.1 with its STAC item. Footprints: "
        f"the shipped Kaesong set ({reads[-1]['buildings']} buildings, "
        f"{reads[-1]['valid']} with valid temperatures; site clouded: {reads[-1]['clouded']}). "
        f"Medians of {args.runs} runs; bytes and requests counted by the server.",
        "",
        "| per scene | bytes | requests | wall time (s) |",
        "|---|---:|---:|---:|",
        f"| window read (`open_scene(item)` + `extract`) | {read_bytes:,.0f} | {read_reqs:.0f} "
        f"| {read_s:.3f} |",
        f"| whole download of ST_B10 + QA_PIXEL | {down_bytes:,.0f} | "
        f"{statistics.median(d['requests'] for d in downloads):.0f} | {down_s:.3f} |",
        f"| **ratio** | **{100 * ratio:.2f} %** | | {read_s / down_s:.2f} |",
        "",
        f"Of the window read's wall time, {open_s:.3f} s is `open_scene(item)` (MTL, band headers) "
        "and the rest `extract` (QA_PIXEL window, thermal and ST_QA windows, coverage weights "
        "computed cold in each fresh process).",
        "",
        "Requests and bytes of one window read, per file (HEAD requests count, with no body):",
        "",
        "| file | requests | bytes | file size |",
        "|---|---:|---:|---:|",
    ]
    for name, (n, b) in sorted(per_file.items()):
        lines.append(f"| {name} | {n} | {b:,} | {sizes.get(name, 0):,} |")
    lines += [
        "",
        "Raw runs:",
        "",
        "```json",
        json.dumps({"reads": reads, "downloads": downloads}, indent=1, default=str),
        "```",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"bytes ratio {100 * ratio:.2f} %, {read_reqs:.0f} requests, {read_s:.3f} s per scene")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
