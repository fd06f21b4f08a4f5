"""``kaesong-thermal plot``: one figure to a PNG file (time series, heatmap, scene map, status)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from kaesong_thermal._files import replace_atomically
from kaesong_thermal.errors import EXIT_OK, AnalysisError, KaesongThermalError, StoreError

from .detect import _positive_int

logger = logging.getLogger(__name__)

KINDS = ("timeseries", "heatmap", "map", "status", "multiples")


def register(subparsers: Any) -> None:
    """Add the ``plot`` subcommand."""
    parser = subparsers.add_parser(
        "plot",
        help="draw a figure to a PNG: timeseries BUILDING, heatmap, map SCENE, status, multiples",
        description=(
            "timeseries BUILDING...: one building's history (one file per building when several; "
            "the building id is appended to the name). heatmap: anomaly per building and scene. "
            "map PRODUCT: the scene's thermal window around the footprints, coloured by status. "
            "status: the footprints coloured by status. multiples: the most anomalous buildings."
        ),
    )
    parser.add_argument("kind", choices=KINDS, help="which figure")
    parser.add_argument("targets", nargs="*", metavar="BUILDING_OR_SCENE", help="ids or products")
    parser.add_argument("--out", required=True, metavar="FILE.png", help="output PNG")
    parser.add_argument(
        "--store", metavar="FILE", help="the store (default kaesong-thermal.db or the config file)"
    )
    parser.add_argument("--config", metavar="FILE", help="configuration file")
    parser.add_argument(
        "--footprints", metavar="FILE", help="footprint file (default: the store's set)"
    )
    parser.add_argument(
        "--value", choices=("z", "anomaly_k"), default="z", help="heatmap value (default z)"
    )
    parser.add_argument(
        "--dpi", type=_positive_int, default=120, help="resolution (default %(default)s)"
    )
    parser.set_defaults(func=run, _parser=parser)


def _check_usage(args: argparse.Namespace) -> None:
    """Usage errors (exit 2) before any work: stray targets, a non-PNG or directory output."""
    parser = args._parser
    if args.kind in ("heatmap", "status", "multiples") and args.targets:
        parser.error(f"plot {args.kind} takes no BUILDING_OR_SCENE, got {' '.join(args.targets)}")
    out = Path(args.out)
    if out.suffix and out.suffix.lower() != ".png":
        parser.error(f"--out {out}: figures are written as PNG; name the file *.png")
    if out.is_dir():
        parser.error(f"--out {out}: is a directory; give a file name")
    blocker = next((a for a in out.parents if a.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise KaesongThermalError(f"{out}: {blocker} is a file, not a directory")
    if args.kind == "map" and args.store and not Path(args.store).is_file():
        raise StoreError(f"store {args.store}: no such file")


def _footprints(args: argparse.Namespace, store: str) -> Any:
    from kaesong_thermal.footprints import load_footprints
    from kaesong_thermal.pipeline import stored_footprints

    if args.footprints:
        return load_footprints(args.footprints)
    gdf = stored_footprints(store) if Path(store).is_file() else None
    return gdf if gdf is not None else load_footprints()


def _analysis(store: str) -> Any:
    from kaesong_thermal.pipeline import analyze_store

    analysis = analyze_store(store)
    if analysis is None:
        raise StoreError(f"store {store}: no observations to plot (run detect first)")
    return analysis


def _save(fig: Any, out: Path, dpi: int) -> None:
    from kaesong_thermal.plots import figure_to_png

    data = figure_to_png(fig, dpi=dpi)

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(out, write)  # never a half-written PNG, even when interrupted
    except OSError as exc:
        raise KaesongThermalError(f"{out}: cannot write the figure ({exc.strerror})") from exc
    print(out)


def run(args: argparse.Namespace) -> int:
    """Draw the requested figure(s)."""
    from kaesong_thermal import plots
    from kaesong_thermal._commands.status import config_from

    _check_usage(args)
    config = config_from(args)
    out = Path(args.out)
    if args.kind == "timeseries":
        if not args.targets:
            raise AnalysisError("plot timeseries: name at least one building id")
        analysis = _analysis(config.store)
        footprints = _footprints(args, config.store)
        names = plots._names(footprints)
        for bid in args.targets:
            target = out if len(args.targets) == 1 else out.with_name(f"{out.stem}-{bid}.png")
            fig = plots.plot_timeseries(analysis, bid, events=footprints, name=names.get(bid))
            _save(fig, target, args.dpi)
    elif args.kind == "heatmap":
        analysis = _analysis(config.store)
        names = plots._names(_footprints(args, config.store))
        _save(plots.plot_heatmap(analysis, args.value, names=names), out, args.dpi)
    elif args.kind == "multiples":
        analysis = _analysis(config.store)
        names = plots._names(_footprints(args, config.store))
        _save(plots.plot_small_multiples(analysis, names=names), out, args.dpi)
    elif args.kind == "status":
        analysis = _analysis(config.store)
        _save(
            plots.plot_status_map(_footprints(args, config.store), analysis.status()), out, args.dpi
        )
    else:  # map
        from kaesong_thermal.landsat import open_scene

        if len(args.targets) != 1:
            raise AnalysisError("plot map: name exactly one product (directory, tar, MTL or STAC)")
        footprints = _footprints(args, config.store)
        status = _analysis(config.store).status() if Path(config.store).is_file() else None
        scene = open_scene(args.targets[0])
        local = footprints.to_crs(scene.crs)
        x0, y0, x1, y1 = local.total_bounds
        pad = 300.0
        window = scene.read_kelvin(bounds=(x0 - pad, y0 - pad, x1 + pad, y1 + pad), crs=scene.crs)
        _save(plots.plot_scene_map(window, local, status=status), out, args.dpi)
    return EXIT_OK
