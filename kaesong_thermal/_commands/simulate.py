"""``kaesong-thermal simulate OUTDIR``: write synthetic Landsat C2 products with ground truth."""

from __future__ import annotations

import argparse
import logging
from datetime import date
from typing import Any

from kaesong_thermal.errors import EXIT_OK

logger = logging.getLogger(__name__)


def iso_date(text: str) -> date:
    """argparse type for ``--start`` / ``--end``: an ISO date (usage error otherwise)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from None


def workers_arg(text: str) -> int:
    """argparse type for ``--workers``: 0 (one per CPU) or a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 (one per CPU) or more, not {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand."""
    p = subparsers.add_parser(
        "simulate",
        help="write SYNTHETIC Landsat Collection 2 thermal products with ground truth",
        description=(
            "Simulate Landsat thermal products of the Kaesong complex (synthetic data in the "
            "official Collection 2 layout) plus truth.csv, scenes.csv, footprints.geojson and "
            "scenario.json."
        ),
    )
    p.add_argument("outdir", help="output directory")
    p.add_argument("--scenario", default="kaesong", choices=("kaesong", "idle", "stress"))
    p.add_argument(
        "--start", type=iso_date, default=None, help="first acquisition date, YYYY-MM-DD"
    )
    p.add_argument("--end", type=iso_date, default=None, help="last acquisition date, YYYY-MM-DD")
    p.add_argument("--level", default="L2", choices=("L1", "L2", "both"))
    p.add_argument(
        "--sensors",
        default="landsat-8,landsat-9",
        help="comma-separated: landsat-5, landsat-7, landsat-8, landsat-9",
    )
    p.add_argument("--footprints", default=None, help="footprint file (default: shipped set)")
    p.add_argument("--size", default="crop", choices=("crop", "full"))
    p.add_argument("--tar", action="store_true", help="bundle each product as <ID>.tar")
    p.add_argument("--stac", action="store_true", help="also write a STAC item per product")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=workers_arg, default=1, help="processes (0: one per CPU)")
    p.add_argument(
        "--heat-scale",
        type=float,
        default=1.0,
        help="stress scenario: factor on the working roofs' process heat (default 1)",
    )
    p.add_argument(
        "--noise-scale",
        type=float,
        default=1.0,
        help="stress scenario: factor on the range of the surface-noise sd (default 1)",
    )
    p.add_argument(
        "--material-scale",
        type=float,
        default=1.0,
        help="stress scenario: how much wider roof emissivity and solar gain are drawn, with "
        "Level-2 retrieved at a 90 m emissivity (at least 1; default 1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the simulation and print where its outputs are."""
    from kaesong_thermal.simulation import simulate

    res = simulate(
        args.outdir,
        scenario=args.scenario,
        start=args.start,
        end=args.end,
        level=args.level,
        sensors=args.sensors,
        footprints=args.footprints,
        size=args.size,
        tar=args.tar,
        stac=args.stac,
        seed=args.seed,
        workers=args.workers,
        heat_scale=args.heat_scale,
        noise_scale=args.noise_scale,
        material_scale=args.material_scale,
    )
    print(f"simulated {res.n_scenes} products (synthetic) in {res.outdir / 'products'}")
    print(f"truth: {res.truth_path}")
    print(f"scenario: {res.scenario_path}")
    return EXIT_OK
