"""``kaesong-thermal export OUT``: observations or statuses, with the analysis, to a file.

The file is written to a temporary name beside ``OUT`` and renamed over it only once complete
(``os.replace`` is atomic on POSIX and Windows), so an interrupted export never leaves a
half-written file, and the store itself is only read.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from kaesong_thermal._files import replace_atomically
from kaesong_thermal.errors import EXIT_OK, EXIT_USAGE_ERROR, KaesongThermalError, StoreError
from kaesong_thermal.pipeline import analyze_store, stored_footprints

from .status import (
    add_common,
    config_from,
    date_arg,
    flat_for_csv,
    geojson_text,
    status_frame,
    with_site,
)

logger = logging.getLogger(__name__)

FORMATS = ("csv", "parquet", "geoparquet", "geojson")
_SUFFIX_FORMAT = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".geoparquet": "geoparquet",
    ".geojson": "geojson",
    ".json": "geojson",
}


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="write observations or statuses (with anomaly_k, z, state) to CSV/Parquet/GeoJSON",
        description=(
            "Analyse the store and write every observation (extraction columns plus "
            "scene_effect_k, baseline_k, anomaly_k, z, state) or every building's status to OUT. "
            "The format follows OUT's suffix unless --format says otherwise."
        ),
    )
    parser.add_argument("out", metavar="OUT", help="output file")
    add_common(parser)
    parser.add_argument("--format", choices=FORMATS, help="output format (default: from OUT)")
    parser.add_argument(
        "--what",
        choices=("observations", "status"),
        default="observations",
        help="one row per observation (default) or per building",
    )
    parser.add_argument(
        "--as-of", type=date_arg, metavar="DATE", help="with --what status: status as of DATE"
    )
    parser.set_defaults(func=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Write the export; return the exit code."""
    config = config_from(args)
    out = Path(args.out)
    fmt: str | None = args.format or _SUFFIX_FORMAT.get(out.suffix.lower())
    if fmt is None:
        args._parser.error(f"cannot tell the format of {out} from its suffix: give --format")
        return EXIT_USAGE_ERROR  # not reached: error() exits with status 2
    if out.exists() and out.resolve() == Path(config.store).resolve():
        args._parser.error(f"{out} is the store itself: choose another output file")
    if out.is_dir():
        raise KaesongThermalError(f"{out}: is a directory; give a file name")
    if not out.parent.is_dir():
        raise KaesongThermalError(f"{out}: directory {out.parent} does not exist")
    baseline = args.baseline or (config.baseline if config.source else None)
    thresholds = config.thresholds or None
    if args.what == "status":
        frame = status_frame(config, baseline, args.as_of, thresholds)
    else:
        analysis = analyze_store(config.store, baseline=baseline, thresholds=thresholds)
        if analysis is None:  # an empty table has no columns: nothing a reader could load
            raise StoreError(f"store {config.store}: no observations to export (run detect first)")
        frame = with_site(analysis.observations, config.store)
    footprints = stored_footprints(config.store) if fmt in ("geoparquet", "geojson") else None
    try:
        write_atomic(frame, out, fmt, footprints, config.store)
    except OSError as exc:  # unwritable location, disk full...
        raise KaesongThermalError(f"{out}: cannot be written ({exc.strerror or exc})") from exc
    logger.info("wrote %d row(s) to %s (%s)", len(frame), out, fmt)
    return EXIT_OK


def write_atomic(frame: pd.DataFrame, out: Path, fmt: str, footprints: Any, store: str) -> None:
    """Write ``frame`` to ``out`` in ``fmt`` through a temporary file and a rename."""
    replace_atomically(out, lambda tmp: _write(frame, tmp, fmt, footprints, store))


def _write(frame: pd.DataFrame, path: Path, fmt: str, footprints: Any, store: str) -> None:
    if fmt == "csv":
        flat_for_csv(frame).to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "geojson":
        path.write_text(geojson_text(frame, footprints, store) + "\n", encoding="utf-8")
    else:  # geoparquet
        import geopandas as gpd

        if footprints is None:
            raise KaesongThermalError(f"store {store}: holds no footprint set for GeoParquet")
        geometry = footprints.geometry.reindex(frame["building_id"]).to_numpy()
        gdf = gpd.GeoDataFrame(frame.reset_index(drop=True), geometry=geometry, crs=footprints.crs)
        gdf.to_parquet(path, index=False)
