"""``kaesong-thermal status``: every building's verdict as of a date, from the store.

Also holds the small helpers the ``detect`` and ``export`` commands share (store and config
options, table/CSV/JSON/GeoJSON rendering).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import pandas as pd

from kaesong_thermal.classify import STATUS_COLUMNS
from kaesong_thermal.config import Config, load_config, parse_baseline
from kaesong_thermal.errors import EXIT_OK, ConfigError, KaesongThermalError
from kaesong_thermal.pipeline import analyze_store, jsonable, stored_footprints

logger = logging.getLogger(__name__)


def baseline_arg(text: str) -> str:
    """argparse type for ``--baseline``: a usage error (exit 2) when malformed."""
    try:
        return parse_baseline(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: Dates a command accepts: what pandas' nanosecond timestamps hold, with a day to spare.
DATE_RANGE = (pd.Timestamp("1900-01-01"), pd.Timestamp("2261-12-31"))


def check_date(text: str) -> str | None:
    """Why ``text`` is not a usable date (None when it is one pandas parses, in range)."""
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, OverflowError):
        return f"not a date: {text!r}"
    if pd.isna(stamp):
        return f"not a date: {text!r}"
    naive = stamp.tz_convert(None) if stamp.tzinfo is not None else stamp
    if not DATE_RANGE[0] <= naive <= DATE_RANGE[1]:
        return (
            f"date {text!r} is out of range ({DATE_RANGE[0]:%Y-%m-%d} to {DATE_RANGE[1]:%Y-%m-%d})"
        )
    return None


def date_arg(text: str) -> str:
    """argparse type for ``--as-of``: any date pandas parses, 1900 to 2261."""
    problem = check_date(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--store``, ``--config`` and ``--baseline`` options shared by detect/status/export."""
    parser.add_argument(
        "--store", metavar="FILE", help="the store (default kaesong-thermal.db or the config file)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default ./kaesong-thermal.toml when present)",
    )
    parser.add_argument(
        "--baseline",
        type=baseline_arg,
        metavar="START:END|auto",
        help="idle baseline period (default 2016-03-01:2022-12-31, or that of the last run)",
    )


def config_from(args: argparse.Namespace) -> Config:
    """The configuration file's settings, overridden by the command-line flags."""
    config = load_config(getattr(args, "config", None))
    return config.override(
        store=getattr(args, "store", None),
        footprints=getattr(args, "footprints", None),
        workers=getattr(args, "workers", None),
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame as JSON-ready dicts."""
    return [{str(k): jsonable(v) for k, v in row.items()} for row in frame.to_dict("records")]


def flat_for_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """List-valued cells (``evidence``) joined with ``;`` so a CSV cell holds them."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].map(lambda v: isinstance(v, (list, tuple))).any():
            out[col] = out[col].map(
                lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v
            )
    return out


def geojson_text(frame: pd.DataFrame, footprints: Any, source: str) -> str:
    """A FeatureCollection: one feature per row, geometry of its ``building_id`` (EPSG:4326)."""
    import shapely.geometry

    if footprints is None:
        raise KaesongThermalError(f"store {source}: holds no footprint set to draw GeoJSON from")
    features = []
    for rec in records(frame):
        bid = rec.get("building_id")
        geom = footprints.geometry.get(bid) if bid is not None else None
        features.append(
            {
                "type": "Feature",
                "id": bid,
                "properties": rec,
                "geometry": None if geom is None else shapely.geometry.mapping(geom),
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": features})


def with_site(frame: pd.DataFrame, store: Any, footprints: Any = None) -> pd.DataFrame:
    """``frame`` with a ``site`` column after ``building_id`` when the footprints name sites.

    ``footprints`` defaults to the set stored in ``store``; a frame without sites is returned
    unchanged.
    """
    from kaesong_thermal.sites import SITE_COLUMN, has_sites, site_of

    if frame.empty or "building_id" not in frame.columns or SITE_COLUMN in frame.columns:
        return frame
    fp = stored_footprints(store) if footprints is None else footprints
    if fp is None or not has_sites(fp):
        return frame
    sites = site_of(fp)
    out = frame.copy()
    position = list(out.columns).index("building_id") + 1
    out.insert(position, SITE_COLUMN, out["building_id"].astype(str).map(sites).to_numpy())
    return out


def status_frame(
    config: Config, baseline: str | None, as_of: str | None, thresholds: Mapping[str, Any] | None
) -> pd.DataFrame:
    """Status per building (``building_id`` as a column); empty when the store has no data."""
    analysis = analyze_store(config.store, baseline=baseline, thresholds=thresholds)
    if analysis is None:
        return pd.DataFrame(columns=["building_id", *STATUS_COLUMNS])
    return with_site(analysis.status(as_of=as_of).reset_index(), config.store)


def write_status(frame: pd.DataFrame, fmt: str, out: TextIO, config: Config) -> None:
    """Render a status frame as a table, CSV, JSON or GeoJSON."""
    if fmt == "csv":
        flat_for_csv(frame).to_csv(out, index=False, float_format="%.4g")
    elif fmt == "json":
        json.dump(records(frame), out, indent=2)
        out.write("\n")
    elif fmt == "geojson":
        out.write(geojson_text(frame, stored_footprints(config.store), config.store))
        out.write("\n")
    else:
        if frame.empty:
            out.write("No observations in the store.\n")
            return
        shown = frame.drop(columns=["evidence"], errors="ignore").copy()
        for col in ("since", "last_valid"):
            if col in shown:
                shown[col] = pd.to_datetime(shown[col], utc=True).dt.strftime("%Y-%m-%d")
        out.write(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-"))
        out.write("\n")


def register(subparsers: Any) -> None:
    """Add the ``status`` subcommand."""
    parser = subparsers.add_parser(
        "status",
        help="every building's status (active / idle / uncertain / no_data) from the store",
        description=(
            "Analyse the observations in the store and print each building's status as of a "
            "date, with its confidence, the date it began, the latest anomaly (K) and z."
        ),
    )
    add_common(parser)
    parser.add_argument(
        "--as-of", type=date_arg, metavar="DATE", help="status as of this date (default: latest)"
    )
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json", "geojson"),
        default="table",
        help="output format (default table)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the status table; return the exit code."""
    config = config_from(args)
    baseline = args.baseline or (config.baseline if config.source else None)
    thresholds = config.thresholds if config.thresholds else None
    frame = status_frame(config, baseline, args.as_of, thresholds)
    write_status(frame, args.format, sys.stdout, config)
    return EXIT_OK
