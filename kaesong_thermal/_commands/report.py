"""``kaesong-thermal report``: the self-contained HTML (plus Markdown and JSON) report."""

from __future__ import annotations

import argparse
from typing import Any

from kaesong_thermal.errors import EXIT_OK


def _since_arg(text: str) -> str | None:
    """``last``, ``all`` (the whole record) or a date."""
    from kaesong_thermal._commands.status import check_date

    if text in ("last", "all"):
        return None if text == "all" else "last"
    problem = check_date(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"expected 'last', 'all' or a date ({problem})")
    return text


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="write the HTML/Markdown/JSON report of what became active",
        description=(
            "Analyse the store and write report.html (one self-contained file), report.md and "
            "report.json: newly active buildings first, their histories and scenes, the status of "
            "every building, data quality, method and caveats. The report is recorded in the store."
        ),
    )
    parser.add_argument(
        "--store", metavar="FILE", help="the store (default kaesong-thermal.db or the config file)"
    )
    parser.add_argument("--config", metavar="FILE", help="configuration file")
    parser.add_argument(
        "--since",
        type=_since_arg,
        default="last",
        metavar="last|all|DATE",
        help="transitions after the previous report (default), the whole record, or a date",
    )
    parser.add_argument(
        "--out", default="report", metavar="DIR", help="output directory (default: %(default)s)"
    )
    parser.add_argument(
        "--footprints",
        metavar="FILE",
        help="footprint file for names and maps (default: the set stored in the store)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report and print where it is and what became active."""
    from kaesong_thermal._commands.status import config_from
    from kaesong_thermal.report import write_report

    config = config_from(args)
    result = write_report(
        config.store, args.out, since=args.since, footprints=args.footprints or None
    )
    since = "the whole record" if result.since is None else f"{result.since:%Y-%m-%d}"
    as_of = "-" if result.as_of is None else f"{result.as_of:%Y-%m-%d}"
    print(f"window: after {since} up to {as_of}")
    print(f"newly active: {', '.join(result.newly_active) or 'none'}")
    print(f"markdown: {result.md}")
    print(f"json:     {result.json}")
    print(f"report: {result.html}")
    return EXIT_OK
