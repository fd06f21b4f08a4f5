"""``kaesong-thermal info PRODUCT [--json]``: a Landsat product's metadata and QA summary."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import Any

from kaesong_thermal.errors import EXIT_OK
from kaesong_thermal.landsat import open_scene
from kaesong_thermal.landsat.bands import DEFAULT_MAX_SIGMA_K

logger = logging.getLogger(__name__)


def _positive_kelvin(text: str) -> float:
    """argparse type for ``--max-sigma-k``: a finite number of kelvin above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of kelvin, not {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``info`` subcommand."""
    parser = subparsers.add_parser(
        "info",
        help="show a Landsat product's metadata and QA summary",
        description=(
            "Read a Landsat product (directory, any file of it, .tar bundle or STAC item JSON) and "
            "print its metadata and a QA summary of the thermal band (valid fraction after fill, "
            "cloud, saturation and uncertainty masks)."
        ),
    )
    parser.add_argument("product", help="product directory, MTL or band file, .tar, or STAC item")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--max-sigma-k",
        type=_positive_kelvin,
        default=DEFAULT_MAX_SIGMA_K,
        help=f"ST_QA uncertainty ceiling in kelvin for Level-2 products (default {DEFAULT_MAX_SIGMA_K:g})",
    )
    parser.add_argument("--mask-snow", action="store_true", help="count snow/ice as invalid")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print metadata and QA summary of ``args.product``; return the exit code."""
    with open_scene(args.product) as scene:
        summary = scene.qa_summary(max_sigma_k=args.max_sigma_k, mask_snow=args.mask_snow)
        record: dict[str, Any] = {
            **scene.metadata.to_dict(),
            "path": scene.path,
            "width": scene.width,
            "height": scene.height,
            "bounds": list(scene.bounds),
            "files": {role: ref.name for role, ref in scene.files.items()},
            "qa": summary,
        }
    if args.json:
        json.dump(record, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    lines = [f"{record['scene_id']}  ({record['path']})"]
    for key in (
        "sensor",
        "level",
        "processing_level",
        "collection",
        "acquired",
        "wrs_path",
        "wrs_row",
        "cloud_cover",
        "sun_elevation",
        "sun_azimuth",
        "day",
        "crs",
        "thermal_band",
    ):
        lines.append(f"  {key:<18} {record[key]}")
    lines.append(f"  {'size_px':<18} {record['width']} x {record['height']}")
    lines.append(f"  {'bounds':<18} {', '.join(f'{v:.1f}' for v in record['bounds'])}")
    lines.append("  files:")
    lines.extend(f"    {role:<16} {name}" for role, name in record["files"].items())
    lines.append("  QA summary (fractions of image pixels; fill of all pixels):")
    for key, value in summary.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"    {key:<18} {shown}")
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK
