"""Command-line interface: ``kaesong-thermal <command> ...``.

Thin by design: each subcommand lives in ``kaesong_thermal/_commands/<name>.py`` and calls the
same public functions the notebooks use. This module only parses arguments, configures logging
(``-v`` / ``-q``) and maps errors to exit codes; a traceback never reaches the user unless ``-vv``
asks for it.

Exit codes: 0 ok, 1 data error, 2 usage error, 3 newly active buildings (``detect --fail-on-new``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from kaesong_thermal import __version__
from kaesong_thermal.errors import EXIT_DATA_ERROR, EXIT_USAGE_ERROR, KaesongThermalError

COMMANDS = (
    "info",
    "footprints",
    "simulate",
    "demo",
    "detect",
    "status",
    "export",
    "evaluate",
    "plot",
    "report",
)

PROG = "kaesong-thermal"


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Which factory buildings are running? Landsat thermal analysis per building.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"kaesong_thermal._commands.{name}")
        except ModuleNotFoundError as exc:  # a command module not present in this build
            if exc.name == f"kaesong_thermal._commands.{name}":
                continue
            raise
        module.register(sub)
    # -v / -q are also accepted after the command (`kaesong-thermal detect ... -v`); SUPPRESS keeps
    # the top-level value when the command does not repeat them
    for command_parser in sub.choices.values():
        command_parser.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output"
        )
        command_parser.add_argument(
            "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="less log output"
        )
    return parser


class _Redact(logging.Filter):
    """Remove URL query strings (where signing tokens live) from every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from kaesong_thermal.landsat.cloud import redact

        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for handler in logging.getLogger().handlers:  # signing tokens never reach a log line
        if not any(isinstance(f, _Redact) for f in handler.filters):
            handler.addFilter(_Redact())
    if verbose < 2:
        # Dask logs every connection and cancelled key at INFO (and closed comms with tracebacks)
        for noisy in (
            "rasterio",
            "fiona",
            "pyogrio",
            "matplotlib",
            "PIL",
            "numexpr",
            "distributed",
            "tornado",
        ):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE_ERROR
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args))
    except KaesongThermalError as exc:
        from kaesong_thermal.landsat.cloud import redact

        print(f"{PROG}: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_DATA_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # an unexpected failure is a bug: one line unless -vv
        if args.verbose >= 2:
            raise
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc} (rerun with -vv for details)",
            file=sys.stderr,
        )
        return EXIT_DATA_ERROR


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
