"""Re-analyse stored stress draws with detector variants, scored as ``evaluate_stress.py`` does.

Tuning is done only on tuning draws (101-110): ``evaluate_stress.py --seeds 101-110 --label L``
extracts each draw once into ``<workdir>/stress<seed>.<L>.db``; this script then re-runs only
the analysis (``kt.analyze`` with the variant's keyword arguments and the store's footprints)
and scores the same export columns with ``evaluate_stress.score_draw``. Held-out draws are
scored with ``evaluate_stress.py`` alone, with the defaults chosen here.

Usage::

    python benchmarks/tune_stress.py --seeds 101,103,105,109 --label after \\
        --variants '{"default": {}, "k075": {"cusum_k": 0.75}}' [--workdir /tmp/stress] \\
        [--heat-scale 5] [--noise-scale 1] [--material-scale 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import evaluate_stress as es

import kaesong_thermal as kt
from kaesong_thermal.pipeline import stored_footprints
from kaesong_thermal.store import Store

KEYS = (
    "f1",
    "state_f1",
    "state_precision",
    "recall",
    "precision",
    "recall_large",
    "false_per_by_idle",
    "false_per_by",
    "confounders_flagged",
    "delay_median",
)
EXPORT_COLUMNS = ["scene_id", "building_id", "acquired", "state", "status", "contrast_k"]


def score_variant(
    workdir: Path,
    seed: int,
    label: str,
    name: str,
    kw: dict[str, Any],
    scales: tuple[float, float, float] = (1.0, 1.0, 1.0),
    keep_share: float = 1.0,
    period: tuple[str, str] = (es.START, es.END),
) -> dict:
    """Analyse one stored draw with ``kw`` and score it; returns the harness's figures.

    ``scales`` (heat, noise, material), ``keep_share`` and ``period`` select the draw's
    directory as ``evaluate_stress.py`` names it.
    """
    paths = es.Paths.of(workdir, seed, label, period, *scales, keep_share)
    with Store(paths.db, create=False) as st:
        obs = st.observations()
    use_fp = bool(kw.pop("footprints", True))
    analysis = kt.analyze(obs, footprints=stored_footprints(paths.db) if use_fp else None, **kw)
    out = workdir / f"{paths.detected.name}.tune-{name}.csv"
    analysis.observations[EXPORT_COLUMNS].to_csv(out, index=False)
    return es.score_draw(paths.detected, out)


def main(argv: list[str] | None = None) -> int:
    """Score every variant on every seed; print the per-draw rows and median / worst."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", required=True, help="comma-separated tuning seeds")
    ap.add_argument("--label", default="after", help="label of the stored draws to re-analyse")
    ap.add_argument("--variants", required=True, help="JSON: name -> analyze() keyword arguments")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/stress"))
    for what in ("heat", "noise", "material"):
        ap.add_argument(f"--{what}-scale", type=float, default=1.0, help="as evaluate_stress.py")
    ap.add_argument("--keep-share", type=float, default=1.0, help="as evaluate_stress.py")
    ap.add_argument("--start", default=es.START, help="as evaluate_stress.py")
    ap.add_argument("--end", default=es.END, help="as evaluate_stress.py")
    args = ap.parse_args(argv)
    scales = (args.heat_scale, args.noise_scale, args.material_scale)
    rows = []
    for name, kw in json.loads(args.variants).items():
        for seed in (int(s) for s in args.seeds.split(",")):
            res = score_variant(
                args.workdir,
                seed,
                args.label,
                name,
                dict(kw),
                scales,
                args.keep_share,
                (args.start, args.end),
            )
            rows.append({"variant": name, "seed": seed, **{k: res.get(k) for k in KEYS}})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print("median\n", table.groupby("variant")[list(KEYS)].median().round(3).to_string())
    worst = {k: ("min" if k.startswith(("f1", "recall", "precision")) else "max") for k in KEYS}
    print("worst\n", table.groupby("variant")[list(KEYS)].agg(worst).round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
