"""``kaesong-thermal footprints [FILE]``: validate and summarise a footprint file.

Prints the number of buildings, the CRS, the range of footprint areas (m2, equal-area projection)
and every problem found; ``--json`` prints the same as one JSON object. Exit code 1 when the file
has errors (warnings such as repaired geometry or overlaps keep exit code 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kaesong_thermal.errors import EXIT_DATA_ERROR, EXIT_OK
from kaesong_thermal.footprints import FootprintReport, validate_footprints


def register(subparsers: Any) -> None:
    """Add the ``footprints`` subcommand to the CLI parser."""
    parser = subparsers.add_parser(
        "footprints",
        help="validate and summarise a building footprint file",
        description=(
            "Validate a footprint file (GeoJSON, GeoPackage, Shapefile, GeoParquet, FlatGeobuf; "
            "any CRS) and summarise it: count, CRS, area range, problems. Without FILE, the "
            "shipped Kaesong set. Exit code 1 if the file has errors."
        ),
    )
    parser.add_argument("file", nargs="?", default=None, metavar="FILE", help="footprint file")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--layer", default=None, help="layer to read (GeoPackage...)")
    parser.add_argument(
        "--assume-crs",
        default=None,
        metavar="EPSG",
        help="CRS of a layer that declares none, e.g. 32652 or EPSG:32652",
    )
    parser.add_argument(
        "--generate-ids",
        action="store_true",
        help="generate missing ids and rename duplicates instead of failing",
    )
    parser.add_argument(
        "--id-column",
        default="building_id",
        help="column holding the building ids (default: building_id)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate ``args.file`` and print the summary; return the exit code."""
    report = validate_footprints(
        args.file,
        layer=args.layer,
        assume_crs=args.assume_crs,
        generate_ids=args.generate_ids,
        id_column=args.id_column,
    )
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(format_report(report))
    return EXIT_OK if report.ok else EXIT_DATA_ERROR


def _m2(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} m2"


def format_report(report: FootprintReport) -> str:
    """Human-readable summary of a :class:`FootprintReport` (several lines, newline-terminated)."""
    layer = f" (layer {report.layer})" if report.layer else ""
    lines = [
        f"footprints: {report.source}{layer}",
        f"buildings:  {report.count}",
        f"CRS:        {report.crs or 'none'}",
        f"area:       {_m2(report.area_min_m2)} to {_m2(report.area_max_m2)} "
        f"(median {_m2(report.area_median_m2)}, total {_m2(report.area_total_m2)})",
    ]
    if not report.problems:
        lines.append("problems:   none")
    else:
        lines.append(
            f"problems:   {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
        )
        lines.extend(f"  {p.severity}: {p.message}" for p in report.problems)
    lines.append("status:     " + ("OK" if report.ok else "INVALID"))
    return "\n".join(lines) + "\n"
