"""``kaesong-thermal evaluate SIM_DIR``: score the detector against a simulator run's truth."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from kaesong_thermal.anomaly import DEFAULT_BASELINE
from kaesong_thermal.errors import EXIT_OK

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score the detector against a simulator output's ground truth",
        description=(
            "Run the detector on a simulator output directory (products/, truth.csv, "
            "footprints.geojson) and write evaluation.json plus PNG plots: observation and "
            "building-month precision/recall/F1, false newly-active alerts per building-year, "
            "switch-on delays, minimum detectable excess vs footprint area, confidence calibration."
        ),
    )
    parser.add_argument("sim_dir", help="output directory of `kaesong-thermal simulate`")
    parser.add_argument("--store", help="read observations from this store instead of extracting")
    parser.add_argument(
        "--out", help="directory for evaluation.json and plots (default SIM_DIR/evaluation)"
    )
    parser.add_argument(
        "--baseline",
        default=DEFAULT_BASELINE,
        help=f"idle baseline period START:END or 'auto' (default {DEFAULT_BASELINE})",
    )
    parser.add_argument("--workers", type=int, default=1, help="extraction workers (default 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the headline figures; return the exit code."""
    from pathlib import Path

    from kaesong_thermal.evaluation import evaluate

    out = args.out if args.out else str(Path(args.sim_dir) / "evaluation")
    res = evaluate(
        args.sim_dir, store=args.store, out=out, baseline=args.baseline, workers=args.workers
    )
    head = {
        "observation_f1": res["observation"]["f1"],
        "building_month_f1": res["building_month"]["f1"],
        "idle_false_alerts_per_building_year": res.get("idle_years", {}).get(
            "false_per_building_year"
        ),
        "operating_years": res["operating_years"],
        "switch_on_strong_within_2_scenes": (
            f"{res['switch_on']['strong_within_2_scenes']}/{res['switch_on']['n_strong']}"
        ),
        "confidence_ece": res["calibration"]["ece"],
        "output": str(Path(out) / "evaluation.json"),
    }
    json.dump(head, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return EXIT_OK
