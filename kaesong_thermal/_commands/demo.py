"""``kaesong-thermal demo``: the whole pipeline on simulated Kaesong scenes, ending with the report."""

from __future__ import annotations

import argparse
from typing import Any

from .detect import _positive_int
from .simulate import iso_date


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="simulate Kaesong scenes, detect, analyse and write the report (synthetic data)",
        description=(
            "Simulate the Kaesong scenario (synthetic Landsat 8/9 Level-2 products), run detection "
            "into a store, analyse, and write the HTML/Markdown/JSON report. Prints the report path."
        ),
    )
    parser.add_argument(
        "--workdir", default="demo-output", help="output directory (default: %(default)s)"
    )
    parser.add_argument("--start", type=iso_date, default=None, help="first date (YYYY-MM-DD)")
    parser.add_argument("--end", type=iso_date, default=None, help="last date (YYYY-MM-DD)")
    parser.add_argument(
        "--seed", type=int, default=2016, help="simulator seed (default: %(default)s)"
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=None, help="processes (default: all cores)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print a short summary ending with the report path."""
    from kaesong_thermal.demo import DEMO_END, DEMO_START, REPORT_SINCE, run_demo

    result = run_demo(
        args.workdir,
        start=args.start or DEMO_START,
        end=args.end or DEMO_END,
        seed=args.seed,
        workers=args.workers,
    )
    print(f"simulated scenes: {result.n_scenes} (synthetic data) in {result.simulation_dir}")
    print(f"store:            {result.store_path}")
    print(f"active now:       {', '.join(result.active) or 'none'}")
    print(f"newly active since {REPORT_SINCE}: {', '.join(result.newly_active) or 'none'}")
    print(f"elapsed:          {result.seconds:.0f} s")
    print(f"report: {result.report_html}")
    return 0
