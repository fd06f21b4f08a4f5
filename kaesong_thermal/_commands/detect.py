"""``kaesong-thermal detect PRODUCT...``: add scenes to the store, print what became active.

Exit codes: 0 ok; 1 a data error (including any product that could not be read: the others are
stored all the same); 2 a usage error; 3 with ``--fail-on-new`` when buildings became active
since the previous run (takes precedence over 1, for cron).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import sys
from collections.abc import Callable
from typing import Any

import pandas as pd

from kaesong_thermal.errors import EXIT_DATA_ERROR, EXIT_NEWLY_ACTIVE, EXIT_OK
from kaesong_thermal.pipeline import DetectResult, detect

from ._stac import add_stac_arguments, check_stac_arguments, run_stac
from .status import add_common, config_from, records

logger = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def _scheduler_arg(text: str) -> str:
    """argparse type for ``--scheduler``: ``local:N`` or ``tcp://HOST:PORT`` (else exit 2)."""
    from kaesong_thermal.distributed import parse_scheduler
    from kaesong_thermal.errors import ConfigError

    try:
        parse_scheduler(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register(subparsers: Any) -> None:
    """Add the ``detect`` subcommand."""
    parser = subparsers.add_parser(
        "detect",
        help="add Landsat scenes to the store and print the buildings newly active",
        description=(
            "Read Landsat products (directories, any file of a product, .tar bundles, STAC items, "
            "directories holding many products, glob patterns), extract per-building "
            "temperatures in parallel, store each scene in one transaction (already stored "
            "scenes are skipped), analyse the whole record and print the buildings that became "
            "active since the previous run."
        ),
    )
    parser.add_argument("products", nargs="*", metavar="PRODUCT", help="products or globs")
    parser.add_argument(
        "--footprints", metavar="FILE", help="building footprints (default: the shipped set)"
    )
    add_common(parser)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="worker processes (default: number of cores)",
    )
    where.add_argument(
        "--scheduler",
        type=_scheduler_arg,
        metavar="ADDRESS",
        help=(
            "run the scenes on Dask: tcp://HOST:PORT of a running dask.distributed scheduler, "
            "or local:N to start N local worker processes (needs kaesong-thermal[dask])"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--fail-on-new",
        action="store_true",
        help="exit with status 3 when any building became active (for cron)",
    )
    parser.add_argument(
        "--force", action="store_true", help="re-extract and replace scenes already stored"
    )
    parser.add_argument(
        "--reextract",
        action="store_true",
        help="footprints changed since the store was built: re-extract every stored scene",
    )
    add_stac_arguments(parser)
    parser.set_defaults(func=run)


def _progress(quiet: bool) -> tuple[Callable[[int, int, str, str], None], Callable[[], None]]:
    """A progress callback: a tqdm bar on a terminal, log lines otherwise."""
    if sys.stderr.isatty() and not quiet:
        from tqdm import tqdm

        bar: Any = None

        def update(done: int, total: int, path: str, outcome: str) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="scene", desc="detect", file=sys.stderr)
            bar.set_postfix_str(outcome, refresh=False)
            bar.update(1)

        def close() -> None:
            if bar is not None:
                bar.close()

        return update, close

    def log(done: int, total: int, path: str, outcome: str) -> None:
        logger.info("[%d/%d] %s: %s", done, total, path, outcome)

    return log, lambda: None


def run(args: argparse.Namespace) -> int:
    """Run ``detect``; print newly active buildings; return the exit code."""
    check_stac_arguments(args)
    config = config_from(args)
    with contextlib.ExitStack() as stack:
        client = None
        if getattr(args, "scheduler", None):
            from kaesong_thermal.distributed import connect, require_distributed

            require_distributed()
            if getattr(args, "verbose", 0) < 2:  # its import sets its own loggers to INFO
                for name in ("distributed", "tornado"):
                    logging.getLogger(name).setLevel(logging.WARNING)
            # connected before the store is opened: an unreachable scheduler leaves it untouched
            client = stack.enter_context(connect(args.scheduler))
        result = _detect(args, config, client)
    return _print_result(args, result)


def _detect(args: argparse.Namespace, config: Any, client: Any) -> DetectResult:
    update, close = _progress(bool(getattr(args, "quiet", False)))
    options: dict[str, Any] = {
        "footprints": config.footprints,
        "store": config.store,
        "baseline": args.baseline or config.baseline,
        "workers": config.workers,
        "force": args.force,
        "progress": update,
        "thresholds": config.thresholds,
        "extract_options": config.extract,
        "reextract": args.reextract,
        "command": shlex.join(["kaesong-thermal", "detect", *sys.argv[2:]])
        if len(sys.argv) > 1 and sys.argv[1] == "detect"
        else None,
        "client": client,
    }
    try:
        return run_stac(args, options) if args.stac else detect(args.products, **options)
    finally:
        close()


def _print_result(args: argparse.Namespace, result: DetectResult) -> int:
    for path, message in result.failed:
        logger.error("failed: %s: %s", path, message)
    logger.info(
        "%d scene(s) ingested, %d already stored, %d failed; store %s, as of %s",
        len(result.ingested),
        len(result.skipped),
        len(result.failed),
        result.store,
        "-" if result.as_of is None else f"{result.as_of:%Y-%m-%d}",
    )
    if args.json:
        json.dump(_as_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_as_table(result))
    if args.fail_on_new and len(result.newly_active):
        return EXIT_NEWLY_ACTIVE
    return EXIT_DATA_ERROR if result.failed else EXIT_OK


def _as_json(result: DetectResult) -> dict[str, Any]:
    return {
        "store": str(result.store),
        "as_of": None if result.as_of is None else result.as_of.isoformat(),
        "since": None if result.since is None else result.since.isoformat(),
        "ingested": result.ingested,
        "skipped": result.skipped,
        "failed": [{"path": p, "message": m} for p, m in result.failed],
        "newly_active": records(result.newly_active),
    }


def _as_table(result: DetectResult) -> str:
    since = "the start of the record" if result.since is None else f"{result.since:%Y-%m-%d}"
    if result.newly_active.empty:
        return f"No building became active since {since}.\n"
    shown = result.newly_active[
        ["building_id", "date", "scene_id", "from_status", "anomaly_k", "z"]
    ].copy()
    shown["date"] = pd.to_datetime(shown["date"], utc=True).dt.strftime("%Y-%m-%d")
    table = shown.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-")
    return f"{len(shown)} building(s) became active since {since}:\n{table}\n"
