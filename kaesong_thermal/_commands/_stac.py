"""``kaesong-thermal detect --stac API_URL``: the STAC flags of ``detect`` and their run."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from kaesong_thermal.pipeline import DetectResult

logger = logging.getLogger(__name__)


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage 0-100, not {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction 0-1, not {text!r}")
    return value


def add_stac_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--stac``, ``--collection``, ``--since``, ``--max-cloud``, ``--max-site-cloud``."""
    parser.set_defaults(_stac_parser=parser)
    group = parser.add_argument_group(
        "STAC", "search a STAC API instead of reading local products (docs/stac.md)"
    )
    group.add_argument("--stac", metavar="API_URL", help="STAC API root to search for new scenes")
    group.add_argument(
        "--collection",
        action="append",
        metavar="ID",
        help="collection to search (repeatable; default landsat-c2-l2)",
    )
    group.add_argument(
        "--since",
        default="last",
        metavar="last|DATE",
        help="search from the previous run (default 'last', with a 32-day look-back) or a date",
    )
    group.add_argument(
        "--until", metavar="DATE", help="search up to this acquisition date (default: now)"
    )
    group.add_argument(
        "--max-cloud",
        type=_percent,
        metavar="P",
        help="skip scenes whose whole-scene eo:cloud_cover exceeds P percent",
    )
    group.add_argument(
        "--max-site-cloud",
        type=_fraction,
        default=None,
        metavar="F",
        help="skip the thermal read when at least F of the site is clouded (default 1: all of it)",
    )


def check_stac_arguments(args: argparse.Namespace) -> None:
    """Products xor ``--stac``; the STAC-only flags only with ``--stac`` (usage errors, exit 2)."""
    parser: argparse.ArgumentParser | None = getattr(args, "_stac_parser", None)

    def fail(message: str) -> None:
        if parser is not None:
            parser.error(message)
        raise SystemExit(2)

    if args.stac and args.products:
        fail("give PRODUCT arguments or --stac API_URL, not both")
    if not args.stac and not args.products:
        fail("the following arguments are required: PRODUCT (or --stac API_URL)")
    if not args.stac and (
        args.collection or args.max_cloud is not None or args.max_site_cloud is not None
    ):
        fail("--collection, --max-cloud and --max-site-cloud need --stac")


def run_stac(args: argparse.Namespace, options: dict[str, Any]) -> DetectResult:
    """Search, skip what is stored, ingest the rest; log what was skipped and why."""
    from kaesong_thermal.landsat.remote import DEFAULT_MAX_SITE_CLOUD
    from kaesong_thermal.sources.stac import detect_stac

    since = None if str(args.since).lower() in ("all", "none") else args.since
    run = detect_stac(
        args.stac,
        collections=args.collection,
        since=since,
        end=args.until,
        max_cloud=args.max_cloud,
        max_site_cloud=DEFAULT_MAX_SITE_CLOUD
        if args.max_site_cloud is None
        else args.max_site_cloud,
        **options,
    )
    for item_id, reason in run.unusable:
        logger.info("skipped %s: %s", item_id, reason)
    logger.info(
        "STAC search from %s: %d item(s), %d already stored, %d unusable, %d read",
        run.start or "the start of the record",
        run.found,
        len(run.already_stored),
        len(run.unusable),
        len(run.result.ingested) + len(run.result.failed) + len(run.result.skipped),
    )
    return run.result
