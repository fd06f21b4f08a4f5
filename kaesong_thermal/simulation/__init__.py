"""Synthetic Landsat Collection 2 thermal products of Kaesong with ground truth.

The data are SYNTHETIC: a physically motivated simulator (see ``docs/simulator.md``) writes
products in the official Collection 2 layout so that the whole toolkit can be run, tested and
scored end to end. Its truth (``truth.csv``, ``scenario.json``) is for evaluation only; the
detector never reads it.

Example
-------
>>> import kaesong_thermal as kt
>>> sim = kt.simulate("/tmp/sim", start="2024-06-01", end="2024-08-31")  # doctest: +SKIP
>>> sim.n_scenes, sim.truth_path.name  # doctest: +SKIP
(12, 'truth.csv')
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from kaesong_thermal.errors import ConfigError
from kaesong_thermal.simulation import physics as ph
from kaesong_thermal.simulation import render as rd
from kaesong_thermal.simulation import writer as wr
from kaesong_thermal.simulation.scenario import (
    DEFAULT_END,
    EPSG,
    SENSORS,
    acquisition_dates,
    as_date,
    load_scenario_footprints,
    plan_buildings,
    plans_to_json,
    stable_seed,
    stable_u01,
    synthetic_footprints,
)
from kaesong_thermal.simulation.stress import draw_stress, stress_products

__all__ = ["SimulationResult", "simulate", "synthetic_footprints"]

logger = logging.getLogger(__name__)

LEVELS = ("L1", "L2", "both")
SIZES = ("crop", "full")
STRIP_ROWS = 512
TRUTH_COLUMNS = ("scene_id", "building_id", "acquired", "active", "roof_excess_k", "cloud_fraction")
SCENE_COLUMNS = (
    "scene_id",
    "sensor",
    "level",
    "acquired",
    "air_k",
    "sun_elevation",
    "sun_azimuth",
    "transmittance",
    "upwelling",
    "downwelling",
    "st_error_k",
    "cloud_fraction",
    "cloud_height_m",
    "cirrus",
    "jitter_x_m",
    "jitter_y_m",
)


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` wrote.

    Attributes
    ----------
    outdir
        Output directory.
    products
        Product directories (or ``.tar`` files) in acquisition order.
    truth_path
        ``truth.csv``: one row per (scene_id, building_id).
    footprints_path
        ``footprints.geojson``: the footprints used (EPSG:4326).
    scenario_path
        ``scenario.json``: every parameter of the run.
    scenes_path
        ``scenes.csv``: per-scene draws (air temperature, atmosphere, clouds, jitter).
    n_scenes
        Number of products written.
    seconds
        Wall time of the run (not written to any file).
    """

    outdir: Path
    products: tuple[Path, ...]
    truth_path: Path
    footprints_path: Path
    scenario_path: Path
    scenes_path: Path
    n_scenes: int
    seconds: float


@dataclass(frozen=True)
class _Options:
    outdir: Path
    levels: tuple[str, ...]
    size: str
    tar: bool
    stac: bool
    seed: int


_WORKER: dict[str, Any] = {}


def _init_worker(static: rd.StaticScene, opts: _Options, corners: dict[str, Any]) -> None:
    _WORKER["static"] = static
    _WORKER["opts"] = opts
    _WORKER["corners"] = corners


def _run_task(task: tuple[str, date]) -> dict[str, Any]:
    return simulate_acquisition(
        _WORKER["static"], _WORKER["opts"], task[0], task[1], _WORKER["corners"]
    )


def simulate_acquisition(
    static: rd.StaticScene,
    opts: _Options,
    sensor: str,
    day: date,
    corners: dict[str, tuple[float, float]],
) -> dict[str, Any]:
    """Render one acquisition and write its product(s); return truth rows and scene records."""
    spec = SENSORS[sensor]
    d = rd.draw_scene(static, sensor, day, opts.seed)
    rng = np.random.default_rng(stable_seed(opts.seed, "pixels", sensor, day.isoformat()))
    window_t = rd.sensor_window(static, d, rng)
    cf = rd.draw_clouds(static, d, rng)
    processed = wr.processing_date(spec.code, day, opts.seed)
    u = stable_u01(opts.seed, "generated", sensor, day)
    gen_time = f"{int(u * 24):02d}:{int(u * 1440) % 60:02d}:{int(u * 86400) % 60:02d}Z"
    g = static.grid
    # the cloud cover of the MTL is known only after rendering: render strips first (crop: one)
    strips = []
    n_cloud = n_valid = 0
    window_any = np.zeros(static.win_shape, bool)
    for r0 in range(0, g.height, STRIP_ROWS):
        r1 = min(g.height, r0 + STRIP_ROWS)
        s = rd.render_strip(static, d, cf, r0, r1, window_t, rng)
        n_cloud += int((s.cloud_flag & ~s.fill).sum())
        n_valid += int((~s.fill).sum())
        a, b = max(r0, static.win_row), min(r1, static.win_row + static.win_shape[0])
        if a < b:
            c0 = static.win_col
            window_any[a - static.win_row : b - static.win_row] = s.cloud_any[
                a - r0 : b - r0, c0 : c0 + static.win_shape[1]
            ]
        strips.append((r0, s))
    cloud_cover = 100.0 * n_cloud / max(1, n_valid)
    products = []
    scene_rows = []
    pids = []
    stress = static.stress
    levels = opts.levels if stress is None else stress.levels_on(spec.code, day)
    for level in levels:
        pid = wr.product_id(spec.code, level, day, processed)
        pids.append(pid)
        info = wr.ProductInfo(
            pid=pid,
            code=spec.code,
            level=level,
            acquired=d.acquired,
            processed=processed,
            generated_time=gen_time,
            cloud_cover=cloud_cover,
            sun_azimuth=d.sun.azimuth_deg,
            sun_elevation=d.sun.elevation_deg,
            grid=g,
            corners_lonlat=corners,
            files=wr.file_names(pid, spec.code, level),
        )
        pw = wr.ProductWriter(opts.outdir / "products" / pid, info)
        c = wr.NOMINAL_THERMAL[spec.code]
        for r0, s in strips:
            if level == "L2":
                st_k: np.ndarray = s.surface_k
                if stress is not None and stress.l2_emissivity_px > 0:
                    eps_a = stress.assumed_emissivity(s.emissivity)
                    st_k = ph.retrieved_surface_k(st_k, s.emissivity, eps_a, d.atm, c.k1, c.k2)
                pw.write("thermal", r0, wr.scale_st(st_k + d.atm.st_error_k, s.fill))
                pw.write("st_qa", r0, wr.scale_int16(s.sigma_k, wr.ST_QA_MULT_K, s.fill))
                pw.write("cdist", r0, wr.scale_int16(s.cdist_km, 0.01, s.fill))
            else:
                rad = ph.at_sensor_radiance(s.surface_k, s.emissivity, d.atm, c.k1, c.k2)
                pw.write("thermal", r0, wr.scale_l1(rad, spec.code, s.fill))
            pw.write("qa_pixel", r0, s.qa_pixel)
            pw.write("qa_radsat", r0, np.zeros_like(s.qa_pixel))
        tar = opts.tar or (stress is not None and stress.tar_on(pid))
        products.append(str(pw.close(stac=opts.stac, tar=tar)))
        scene_rows.append(
            {
                "scene_id": pid,
                "sensor": spec.code,
                "level": level,
                "acquired": d.acquired.isoformat(),
                "air_k": round(d.air_k, 3),
                "sun_elevation": round(d.sun.elevation_deg, 4),
                "sun_azimuth": round(d.sun.azimuth_deg, 4),
                "transmittance": round(d.atm.transmittance, 5),
                "upwelling": round(d.atm.upwelling, 5),
                "downwelling": round(d.atm.downwelling, 5),
                "st_error_k": round(d.atm.st_error_k, 4),
                "cloud_fraction": round(cloud_cover / 100.0, 4),
                "cloud_height_m": round(d.cloud_height_m, 1),
                "cirrus": int(d.cirrus),
                "jitter_x_m": round(d.jitter_x_m, 2),
                "jitter_y_m": round(d.jitter_y_m, 2),
            }
        )
    flat_any = window_any.ravel()
    truth = []
    for pid in pids:
        for k, p in enumerate(static.plans):
            px = static.building_px[k]
            frac = float(flat_any[px].mean()) if len(px) else float("nan")
            exc = d.excess_k[k]
            truth.append(
                {
                    "scene_id": pid,
                    "building_id": p.building_id,
                    "acquired": d.acquired.isoformat(),
                    "active": int(exc > 0),
                    "roof_excess_k": round(exc, 3),
                    "cloud_fraction": round(frac, 4),
                }
            )
    return {"products": products, "truth": truth, "scenes": scene_rows}


def _levels(level: str) -> tuple[str, ...]:
    if level not in LEVELS:
        raise ConfigError(f"level {level!r}: use one of {', '.join(LEVELS)}")
    return ("L1", "L2") if level == "both" else (level,)


def simulate(
    outdir: str | os.PathLike[str],
    *,
    scenario: str = "kaesong",
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    level: str = "L2",
    sensors: Sequence[str] | str = ("landsat-8", "landsat-9"),
    footprints: Any = None,
    size: str = "crop",
    tar: bool = False,
    stac: bool = False,
    seed: int = 0,
    workers: int | None = 1,
    heat_scale: float = 1.0,
    noise_scale: float = 1.0,
    material_scale: float = 1.0,
) -> SimulationResult:
    """Simulate Landsat Collection 2 thermal products of Kaesong with ground truth.

    Parameters
    ----------
    outdir
        Output directory; products go to ``outdir/products/<PRODUCT_ID>/`` (or ``.tar``).
    scenario
        ``"kaesong"`` (public reporting, see docs/simulator.md), ``"idle"`` (nothing runs) or
        ``"stress"`` (each seed an independent random park and physics; ``footprints`` may not
        be given, and the mix of L1-only, L2 and L1 + L2 acquisitions and of ``.tar`` products
        is part of the draw: ``level`` is not used and ``tar=True`` bundles every product).
    start, end
        First and last acquisition dates (date, datetime or ISO string). Defaults: the first
        operating day of the earliest sensor asked for, and 2025-11-30.
    level
        ``"L2"`` (L2SP surface temperature), ``"L1"`` (L1TP radiance DN) or ``"both"``.
    sensors
        Any of ``landsat-5``, ``landsat-7``, ``landsat-8``, ``landsat-9`` (a comma-separated
        string is accepted); each images path 116 every 16 days within its operating dates.
    footprints
        Path to a footprint file or a GeoDataFrame; default the shipped Kaesong set.
    size
        ``"crop"`` (200 x 200 pixels, 6 km around the complex) or ``"full"`` (7,700 lines x
        7,800 samples, for benchmarks).
    tar
        Bundle each product as ``<PRODUCT_ID>.tar`` (flat members, as USGS delivers).
    stac
        Also write a STAC Item ``<PRODUCT_ID>_stac.json`` into each product.
    seed
        Seed: the same seed gives byte-identical products.
    workers
        Processes; 1 = in this process, 0 or None = one per CPU.
    heat_scale
        ``"stress"`` only: factor on every building's process-heat roof excess
        (:func:`kaesong_thermal.simulation.stress.draw_stress`); 1 for the other scenarios.
    noise_scale
        ``"stress"`` only: factor on the range of each scene's surface-noise sd; 1 for the
        other scenarios.
    material_scale
        ``"stress"`` only, at least 1: how much wider the roofs' emissivity and solar gain are
        drawn, with Level-2 surface temperature retrieved at a 90 m emissivity above 1
        (:func:`kaesong_thermal.simulation.stress.draw_stress`); 1 for the other scenarios.

    Returns
    -------
    SimulationResult
        Paths of the products, ``truth.csv``, ``footprints.geojson``, ``scenario.json`` and
        ``scenes.csv``.

    Raises
    ------
    kaesong_thermal.errors.ConfigError
        Unknown scenario, level, sensor or size, a malformed date, ``start`` after ``end``, no
        acquisition of the sensors in the period, negative ``workers``, a ``heat_scale``,
        ``noise_scale`` or ``material_scale`` that is out of range or not 1 outside
        ``"stress"``, or an ``outdir`` that
        cannot be created.
    kaesong_thermal.errors.FootprintError
        The footprints cannot be read or have no usable features.
    """
    t0 = time.perf_counter()
    levels = _levels(level)
    if size not in SIZES:
        raise ConfigError(f"size {size!r}: use 'crop' or 'full'")
    if isinstance(sensors, str):
        sensors = [s.strip() for s in sensors.split(",") if s.strip()]
    sensors = list(dict.fromkeys(sensors))
    for s in sensors:
        if s not in SENSORS:
            raise ConfigError(f"sensor {s!r}: use any of {', '.join(SENSORS)}")
    if not sensors:
        raise ConfigError("sensors: none given")
    first = min(SENSORS[s].first for s in sensors)
    start_d = as_date(start, first, name="start")
    end_d = as_date(end, DEFAULT_END, name="end")
    if start_d > end_d:
        raise ConfigError(f"start {start_d} is after end {end_d}")
    if workers is not None and (isinstance(workers, bool) or int(workers) < 0):
        raise ConfigError(f"workers {workers!r}: expected 0 (one per CPU) or more")
    for what, scale in (("heat", heat_scale), ("noise", noise_scale), ("material", material_scale)):
        if scale != 1.0 and scenario != "stress":
            raise ConfigError(f"{what} scale {scale}: only the 'stress' scenario has one")
    tasks = sorted(
        ((s, d) for s in sensors for d in acquisition_dates(s, start_d, end_d)),
        key=lambda t: (t[1], t[0]),
    )
    if not tasks:
        operating = "; ".join(
            f"{s} from {SENSORS[s].first}"
            + ("" if SENSORS[s].last >= DEFAULT_END else f" to {SENSORS[s].last}")
            for s in sensors
        )
        raise ConfigError(
            f"no acquisition of {', '.join(sensors)} between {start_d} and {end_d} "
            f"(16-day repeat; operating: {operating})"
        )
    # everything that can be checked is checked before the output directory is touched
    drawn = None
    if scenario == "stress":
        if footprints is not None:
            raise ConfigError("scenario 'stress' draws its own park: do not give footprints")
        drawn = draw_stress(seed, heat_scale, noise_scale, material_scale)
        fp = drawn.footprints
    else:
        fp = load_scenario_footprints(footprints)
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"outdir {out}: exists and is not a directory")
    try:
        (out / "products").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"outdir {out}: cannot be created ({exc.strerror})") from exc

    fp_utm = fp.to_crs(EPSG)
    if drawn is not None:
        plans = drawn.plans
        static = rd.build_static(fp_utm, plans, size, seed, stress=drawn.physics)
    else:
        plans = plan_buildings(fp_utm, scenario, seed)
        static = rd.build_static(fp_utm, plans, size, seed)
    corners = wr.corners_lonlat(static.grid)
    opts = _Options(out, levels, size, tar, stac, seed)
    n_workers = (os.cpu_count() or 1) if not workers or workers < 1 else int(workers)
    n_workers = min(n_workers, max(1, len(tasks)))
    logger.info(
        "simulating %d acquisitions (%s, %s) with %d worker(s)",
        len(tasks),
        ", ".join(sensors),
        "+".join(levels),
        n_workers,
    )
    if n_workers > 1:
        with ProcessPoolExecutor(
            n_workers, initializer=_init_worker, initargs=(static, opts, corners)
        ) as pool:
            results = list(
                pool.map(_run_task, tasks, chunksize=max(1, len(tasks) // (8 * n_workers)))
            )
    else:
        results = [simulate_acquisition(static, opts, s, d, corners) for s, d in tasks]

    truth_path = out / "truth.csv"
    scenes_path = out / "scenes.csv"
    _write_csv(truth_path, TRUTH_COLUMNS, [r for res in results for r in res["truth"]])
    _write_csv(scenes_path, SCENE_COLUMNS, [r for res in results for r in res["scenes"]])
    fp_path = out / "footprints.geojson"
    _write_footprints(fp, fp_path)
    scen_path = out / "scenario.json"
    doc: dict[str, Any] = {
        "synthetic": True,
        "scenario": scenario,
        "seed": seed,
        "start": start_d.isoformat(),
        "end": end_d.isoformat(),
        "sensors": {s: asdict(SENSORS[s]) for s in sensors},
        "levels": list(levels),
        "size": size,
        "grid": asdict(static.grid) | {"epsg": EPSG, "wrs_path": 116, "wrs_row": 34},
        "physics": {
            "monthly_air_c": ph.KAESONG_MONTHLY_AIR_C,
            "late_morning_excess_k": ph.LATE_MORNING_EXCESS_K,
            "classes": ph.CLASS_NAMES,
            "class_solar_gain_k": ph.CLASS_SOLAR_GAIN_K,
            "class_offset_k": ph.CLASS_OFFSET_K,
            "class_emissivity": ph.CLASS_EMISSIVITY,
            "roof_types": ph.ROOF_TYPES,
            "fine_grid_m": rd.FINE_M,
            "psf": "box(native resolution) * gaussian(sigma 20 m), separable",
            "resampling": "cubic convolution a=-0.5 from the native lattice",
            "geolocation_jitter_max_m": 12.0,
            "monthly_cloud_fraction": rd.cl.MONTHLY_CLOUD_FRACTION,
            "cloud_dilation_px": rd.cl.DILATION_PX,
        },
        "buildings": plans_to_json(plans),
        "n_products": sum(len(r["products"]) for r in results),
    }
    if drawn is not None:
        doc["levels"] = "drawn per acquisition (stress.products)"
        doc["physics"]["psf"] = (
            "(1 - wing_fraction) x box(detector_footprint_m) * gaussian(optical_sigma_m) "
            "+ wing_fraction x gaussian(wing_sigma_m), see stress.physics"
        )
        doc["physics"]["geolocation_jitter_max_m"] = 12.0
        doc["stress"] = drawn.to_json() | {
            "products": stress_products(static.stress, tasks, results),
        }
    scen_path.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    products = tuple(Path(p) for res in results for p in res["products"])
    seconds = time.perf_counter() - t0
    logger.info(
        "wrote %d products in %.1f s (%.3f s per acquisition)",
        len(products),
        seconds,
        seconds / max(1, len(tasks)),
    )
    return SimulationResult(
        outdir=out,
        products=products,
        truth_path=truth_path,
        footprints_path=fp_path,
        scenario_path=scen_path,
        scenes_path=scenes_path,
        n_scenes=len(products),
        seconds=seconds,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(
                {k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            )


def _write_footprints(fp: Any, path: Path) -> None:
    """Write the footprints used (EPSG:4326 GeoJSON, ``building_id`` property, events kept)."""
    import pandas as pd

    gdf = fp.to_crs(4326).reset_index()
    for col in gdf.columns:
        if col == "geometry":
            continue
        if pd.api.types.is_datetime64_any_dtype(gdf[col]):
            gdf[col] = gdf[col].dt.strftime("%Y-%m-%d").where(gdf[col].notna(), None)
    doc = json.loads(gdf.to_json(na="null", drop_id=True))
    events = fp.attrs.get("events") if hasattr(fp, "attrs") else None
    if events:
        doc["events"] = events
    path.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
