"""Optional project configuration: ``kaesong-thermal.toml``.

Looked up in the working directory (or given with ``--config``); every key is optional and any
command-line flag overrides it::

    footprints = "footprints/kaesong.geojson"   # relative paths: relative to this file
    store = "kaesong-thermal.db"
    baseline = "2016-03-01:2022-12-31"           # or "auto"
    workers = 2

    [thresholds]      # keyword arguments of kaesong_thermal.analysis.analyze
    z_active = 3.0

    [extract]         # keyword arguments of kaesong_thermal.extraction.extract
    ring_outer_m = 200

Read with :mod:`tomllib` (Python >= 3.11) or its backport ``tomli`` [1]_.

References
----------
.. [1] T. Preston-Werner et al., "TOML v1.0.0", https://toml.io/en/v1.0.0
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from kaesong_thermal.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

logger = logging.getLogger(__name__)

#: File name looked up in the working directory.
CONFIG_NAME = "kaesong-thermal.toml"
#: Default store file, in the working directory.
DEFAULT_STORE = "kaesong-thermal.db"
#: Default idle baseline of Kaesong: closure (Feb 2016) to the end of 2022.
DEFAULT_BASELINE = "2016-03-01:2022-12-31"

#: ``[extract]`` keys and their type (keyword arguments of ``extract``).
_EXTRACT_TYPES: dict[str, str] = {
    "ring_inner_m": "float",
    "ring_outer_m": "float",
    "exclusion_margin_m": "float",
    "min_valid_fraction": "float",
    "min_ring_px": "int",
    "max_sigma_k": "float",
}


def _threshold_types() -> dict[str, str]:
    """``[thresholds]`` keys (fields of the anomaly and classification parameters) -> type."""
    import dataclasses

    from kaesong_thermal.anomaly import AnomalyParams
    from kaesong_thermal.classify import ClassifyParams

    return {
        f.name: f.type if isinstance(f.type, str) else f.type.__name__
        for params in (AnomalyParams, ClassifyParams)
        for f in dataclasses.fields(params)
    }


def _check_table(
    table: str, values: Mapping[str, Any], types: Mapping[str, str], cfg: Path
) -> None:
    """Every key of a ``[table]`` known and of its type (int for int, number for float)."""
    for key, value in values.items():
        kind = types.get(key)
        if kind is None:
            raise ConfigError(
                f"config {cfg}: unknown [{table}] key {key!r} (known: {', '.join(sorted(types))})"
            )
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            expected = {"bool": "true or false", "int": "an integer"}.get(kind, "a number")
            raise ConfigError(f"config {cfg}: [{table}] {key} = {value!r}: expected {expected}")


@dataclass(frozen=True)
class Config:
    """Settings shared by ``detect``, ``status`` and ``export``.

    Attributes
    ----------
    footprints : str or None
        Footprint file; None means the shipped Kaesong set.
    store : str
        Store file.
    baseline : str
        ``"START:END"`` (ISO dates, inclusive) or ``"auto"``.
    workers : int or None
        Worker processes for ``detect``; None means the core count.
    thresholds : dict
        Keyword arguments for ``analyze`` (classification thresholds).
    extract : dict
        Keyword arguments for ``extract`` (ring distances, validity limits).
    source : str or None
        The configuration file read, if any.
    """

    footprints: str | None = None
    store: str = DEFAULT_STORE
    baseline: str = DEFAULT_BASELINE
    workers: int | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    extract: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def override(self, **values: Any) -> Config:
        """A copy with every non-None keyword replacing the configured value (CLI flags)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def parse_baseline(text: str) -> str:
    """Validate a baseline period: ``"auto"`` or ``"START:END"`` with START before END.

    Parameters
    ----------
    text : str
        The period as given on the command line or in the configuration file.

    Returns
    -------
    str
        The normalised period (``"auto"`` or ``"YYYY-MM-DD:YYYY-MM-DD"``).

    Raises
    ------
    ConfigError
        The text is neither ``auto`` nor two ISO dates separated by ``:`` in order.
    """
    value = str(text).strip()
    if value.lower() == "auto":
        return "auto"
    parts = value.split(":")
    if len(parts) != 2:
        raise ConfigError(f"baseline {text!r}: expected START:END (ISO dates) or 'auto'")
    try:
        start, end = (pd.Timestamp(p) for p in parts)
    except ValueError as exc:
        raise ConfigError(f"baseline {text!r}: {exc}") from exc
    if pd.isna(start) or pd.isna(end) or start >= end:
        raise ConfigError(f"baseline {text!r}: START must be a date before END")
    return f"{start:%Y-%m-%d}:{end:%Y-%m-%d}"


def find_config(directory: str | os.PathLike[str] | None = None) -> Path | None:
    """The ``kaesong-thermal.toml`` of ``directory`` (default: the working directory), if any."""
    candidate = Path(directory or Path.cwd()) / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read a configuration file; without one, the defaults.

    Parameters
    ----------
    path : str or path-like, optional
        The TOML file. None looks for ``kaesong-thermal.toml`` in the working directory and
        returns the defaults when there is none.

    Returns
    -------
    Config
        Relative ``footprints`` / ``store`` paths are resolved against the file's directory.

    Raises
    ------
    ConfigError
        The file is missing (when given explicitly), is not valid TOML, has an unknown key or a
        value of the wrong type.
    """
    if path is None:
        found = find_config()
        if found is None:
            return Config()
        cfg_path = found
    else:
        cfg_path = Path(path)
        if cfg_path.is_dir():
            raise ConfigError(f"config {cfg_path}: is a directory, not a TOML file")
        if not cfg_path.is_file():
            raise ConfigError(f"config {cfg_path}: no such file")
    try:
        with cfg_path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {cfg_path}: invalid TOML ({exc})") from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8: a binary or mis-encoded file
        raise ConfigError(
            f"config {cfg_path}: not a UTF-8 text file (byte {exc.start}), not TOML"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"config {cfg_path}: cannot be read ({exc.strerror})") from exc
    logger.debug("configuration read from %s", cfg_path)
    return _from_mapping(data, cfg_path)


def _from_mapping(data: Mapping[str, Any], cfg_path: Path) -> Config:
    known = {"footprints", "store", "baseline", "workers", "thresholds", "extract"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"config {cfg_path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    base = cfg_path.parent

    def path_value(key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"config {cfg_path}: {key} must be a non-empty string")
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else base / p)

    workers = data.get("workers")
    if workers is not None and (
        not isinstance(workers, int) or isinstance(workers, bool) or workers < 1
    ):
        raise ConfigError(f"config {cfg_path}: workers must be a positive integer")
    tables: dict[str, dict[str, Any]] = {}
    for key in ("thresholds", "extract"):
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"config {cfg_path}: [{key}] must be a table")
        tables[key] = dict(value)
    _check_table("thresholds", tables["thresholds"], _threshold_types(), cfg_path)
    _check_table("extract", tables["extract"], _EXTRACT_TYPES, cfg_path)
    baseline = data.get("baseline", DEFAULT_BASELINE)
    try:
        baseline = parse_baseline(baseline)
    except ConfigError as exc:
        raise ConfigError(f"config {cfg_path}: {exc}") from exc
    return Config(
        footprints=path_value("footprints"),
        store=path_value("store") or DEFAULT_STORE,
        baseline=baseline,
        workers=workers,
        thresholds=tables["thresholds"],
        extract=tables["extract"],
        source=str(cfg_path),
    )
