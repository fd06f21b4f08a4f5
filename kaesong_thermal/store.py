"""The observation store: one SQLite file holding every scene, observation, run and report.

This is the only module that writes the store. Design choices, each for a failure an analyst
would otherwise meet:

- **One transaction per scene** (the scene row and all its observations): a crash or ``kill -9``
  leaves the store as it was before that scene; a re-run finishes the job.
- **Idempotent ingest**: a scene is identified by ``scene_id`` *and* the sha256 of its thermal band,
  so the same product read from a ``.tar`` and then from a directory is stored once (unless forced).
- **WAL journal and a busy timeout**, so readers never block the writer and two ``detect`` runs on
  one store wait for each other instead of failing [1]_ [2]_.
- **A schema version** (``PRAGMA user_version`` plus a ``meta`` table) with forward migrations; a
  store written by a newer version is refused rather than damaged.
- **Never overwrite something that is not a store**: the file header is checked before SQLite may
  touch the file [3]_.

References
----------
.. [1] SQLite, "Write-Ahead Logging", https://www.sqlite.org/wal.html
.. [2] SQLite, "Atomic Commit In SQLite", https://www.sqlite.org/atomiccommit.html
.. [3] SQLite, "Database File Format" (the 100-byte header, ``user_version`` at offset 60,
   ``application_id`` at offset 68), https://www.sqlite.org/fileformat.html
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import pandas as pd

from kaesong_thermal.errors import StoreError
from kaesong_thermal.extraction import VALUE_COLUMNS

logger = logging.getLogger(__name__)

#: Current schema version written to ``PRAGMA user_version`` and ``meta.schema_version``.
SCHEMA_VERSION = 3
#: ``PRAGMA application_id`` of a kaesong-thermal store ("KTST" in ASCII).
APPLICATION_ID = 0x4B545354
#: Default busy timeout in seconds: how long a writer waits for another writer's lock.
DEFAULT_BUSY_TIMEOUT_S = 60.0

_SQLITE_HEADER = b"SQLite format 3\x00"

#: Columns of the ``scenes`` table, in order (see docs/interfaces.md, ``SceneMetadata``).
SCENE_COLUMNS: tuple[str, ...] = (
    "scene_id",
    "sensor",
    "level",
    "acquired",
    "wrs_path",
    "wrs_row",
    "cloud_cover",
    "sun_elevation",
    "day",
    "source_path",
    "thermal_checksum",
    "footprints_hash",
    "n_observations",
    "ingested",
)

#: Numeric extraction columns stored per (scene, building) (docs/interfaces.md, ``extract``).
OBSERVATION_VALUE_COLUMNS: tuple[str, ...] = VALUE_COLUMNS

#: Columns of :meth:`Store.observations`, in order.
OBSERVATION_COLUMNS: tuple[str, ...] = (
    "building_id",
    "scene_id",
    "acquired",
    "sensor",
    "level",
    "sun_elevation",
    *OBSERVATION_VALUE_COLUMNS,
)

AddOutcome = Literal["inserted", "replaced", "skipped"]


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def to_utc_text(value: Any) -> str:
    """Format a date/time as sortable ISO-8601 UTC text (naive values are taken as UTC).

    Parameters
    ----------
    value : str, datetime, numpy.datetime64 or pandas.Timestamp
        The instant to format.

    Returns
    -------
    str
        ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``; fixed width, so text order is time order.
    """
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        raise StoreError(f"invalid date/time {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _sql_value(value: Any) -> Any:
    """Python value SQLite accepts: NaN/NaT/None -> NULL, numpy scalars -> Python scalars."""
    if value is None:
        return None
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, datetime, np.datetime64)):
        return to_utc_text(value)
    if isinstance(value, bool):
        return int(value)
    return value


# --------------------------------------------------------------------------------------------
# schema and migrations
# --------------------------------------------------------------------------------------------


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    """Create the version-1 schema in an empty database."""
    _execute_script(
        conn,
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE footprint_sets (
            hash        TEXT PRIMARY KEY,
            geojson     TEXT NOT NULL,
            n_buildings INTEGER NOT NULL,
            source      TEXT,
            created     TEXT NOT NULL
        );
        CREATE TABLE scenes (
            scene_id         TEXT PRIMARY KEY,
            sensor           TEXT NOT NULL,
            level            TEXT NOT NULL,
            acquired         TEXT NOT NULL,
            wrs_path         INTEGER,
            wrs_row          INTEGER,
            cloud_cover      REAL,
            sun_elevation    REAL,
            day              INTEGER,
            source_path      TEXT,
            thermal_checksum TEXT NOT NULL,
            footprints_hash  TEXT REFERENCES footprint_sets(hash),
            n_observations   INTEGER NOT NULL,
            ingested         TEXT NOT NULL
        );
        CREATE INDEX scenes_acquired ON scenes(acquired);
        CREATE TABLE observations (
            scene_id           TEXT NOT NULL REFERENCES scenes(scene_id) ON DELETE CASCADE,
            building_id        TEXT NOT NULL,
            t_roof_k           REAL,
            t_roof_max_k       REAL,
            t_background_k     REAL,
            t_background_iqr_k REAL,
            contrast_k         REAL,
            sigma_k            REAL,
            cover_px           REAL,
            valid_fraction     REAL,
            ring_valid_px      INTEGER,
            area_m2            REAL,
            PRIMARY KEY (scene_id, building_id)
        ) WITHOUT ROWID;
        CREATE INDEX observations_building ON observations(building_id);
        CREATE TABLE runs (
            run_id          INTEGER PRIMARY KEY AUTOINCREMENT,
            started         TEXT NOT NULL,
            finished        TEXT,
            command         TEXT,
            footprints_hash TEXT,
            baseline        TEXT,
            params          TEXT,
            n_products      INTEGER,
            n_ingested      INTEGER,
            n_skipped       INTEGER,
            n_failed        INTEGER,
            n_newly_active  INTEGER,
            as_of           TEXT
        );
        CREATE TABLE reports (
            report_id INTEGER PRIMARY KEY AUTOINCREMENT,
            path      TEXT NOT NULL,
            created   TEXT NOT NULL,
            as_of     TEXT,
            since     TEXT
        );
        """,
    )


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements inside the caller's transaction.

    ``Connection.executescript`` would COMMIT first, breaking the one-transaction migration.
    """
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """Version 2: the PSF-aware roof excess ``excess_k`` and its uncertainty ``excess_sigma_k``.

    Observations stored before keep NULL there (read back as NaN); ``analyze`` then falls back to
    ``contrast_k`` until those scenes are re-extracted (``detect --force``).
    """
    _execute_script(
        conn,
        """
        ALTER TABLE observations ADD COLUMN excess_k REAL;
        ALTER TABLE observations ADD COLUMN excess_sigma_k REAL
        """,
    )


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    """Version 3: the ring's warmest quadrant, ``ring_hot_sector_k`` and ``ring_hot_sector``.

    Observations stored before keep NULL there (read back as NaN: no quadrant evidence).
    """
    _execute_script(
        conn,
        """
        ALTER TABLE observations ADD COLUMN ring_hot_sector_k REAL;
        ALTER TABLE observations ADD COLUMN ring_hot_sector REAL
        """,
    )


#: Forward migrations: ``MIGRATIONS[v]`` turns a version ``v - 1`` store into version ``v``.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_to_1,
    2: _migrate_to_2,
    3: _migrate_to_3,
}


# --------------------------------------------------------------------------------------------
# footprint comparison
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FootprintCheck:
    """Outcome of comparing a footprint set with the one a store was built with.

    Attributes
    ----------
    stored_hash, new_hash : str or None
        Content hashes (``footprints.footprints_hash``); ``stored_hash`` is None for a new store.
    added, removed, modified : tuple of str
        Building ids only in the new set, only in the stored set, and in both with a different
        outline or validity period.
    """

    stored_hash: str | None
    new_hash: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    n_scenes_affected: int = 0

    @property
    def changed(self) -> bool:
        """True when the store holds observations made with different footprints."""
        return self.stored_hash is not None and self.stored_hash != self.new_hash

    def explain(self) -> str:
        """One line saying what changed between the stored and the new footprint set."""
        if not self.changed:
            return "footprints unchanged"
        parts = []
        for label, ids in (
            ("added", self.added),
            ("removed", self.removed),
            ("outline or dates changed", self.modified),
        ):
            if ids:
                shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
                parts.append(f"{len(ids)} {label} ({shown})")
        detail = "; ".join(parts) if parts else "attributes changed"
        return (
            f"footprints changed since the store was built (hash {self.stored_hash[:12]} -> "  # type: ignore[index]
            f"{self.new_hash[:12]}): {detail}; {self.n_scenes_affected} stored scene(s) were "
            "extracted with the old set"
        )


def _feature_digests(geojson: str) -> dict[str, str]:
    """Map building id -> canonical JSON of its geometry and validity dates."""
    try:
        data = json.loads(geojson)
    except json.JSONDecodeError:
        return {}
    digests: dict[str, str] = {}
    for feature in data.get("features", []):
        props = feature.get("properties") or {}
        bid = feature.get("id", props.get("building_id"))
        if bid is None:
            continue
        key = {
            "geometry": feature.get("geometry"),
            "valid_from": props.get("valid_from"),
            "valid_to": props.get("valid_to"),
        }
        digests[str(bid)] = json.dumps(key, sort_keys=True, default=str)
    return digests


# --------------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------------


class Store:
    """A kaesong-thermal observation store (one SQLite file).

    Parameters
    ----------
    path : str or os.PathLike
        The store file. Created (with its schema) when missing, unless ``create=False``.
    create : bool, default True
        Create a new store when ``path`` does not exist. With False a missing store is a
        :class:`~kaesong_thermal.errors.StoreError` (``status`` and ``export`` use this).
    busy_timeout_s : float, default 60
        Seconds a write waits for another process holding the write lock [1]_.

    Raises
    ------
    StoreError
        The file is not a SQLite database or not a kaesong-thermal store (it is left untouched),
        its schema is newer than this version understands, or the location is read-only.

    Notes
    -----
    The connection runs in autocommit mode; every write is wrapped in an explicit
    ``BEGIN IMMEDIATE ... COMMIT`` so a write lock is taken before anything is read, which is what
    makes two concurrent ``detect`` runs serialize cleanly [1]_ [2]_.

    References
    ----------
    .. [1] SQLite, "Write-Ahead Logging", https://www.sqlite.org/wal.html
    .. [2] SQLite, "Transaction" (``BEGIN IMMEDIATE``), https://www.sqlite.org/lang_transaction.html
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "kaesong-thermal.db",
        *,
        create: bool = True,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_s = float(busy_timeout_s)
        self._check_file(create=create)
        self._conn = self._connect()
        try:
            self._ensure_schema()
        except BaseException:
            self._conn.close()
            raise

    # -- opening -------------------------------------------------------------------------

    def _check_file(self, *, create: bool) -> None:
        path = self.path
        if path.is_dir():
            raise StoreError(f"store {path}: is a directory, not a store file")
        if not path.exists():
            if not create:
                raise StoreError(
                    f"store {path}: does not exist (run `kaesong-thermal detect` first)"
                )
            parent = path.parent if str(path.parent) else Path(".")
            if not parent.is_dir():
                raise StoreError(f"store {path}: directory {parent} does not exist")
            return
        try:
            with path.open("rb") as fh:
                header = fh.read(len(_SQLITE_HEADER))
        except OSError as exc:
            raise StoreError(f"store {path}: cannot be read ({exc.strerror})") from exc
        if not header and not create:
            raise StoreError(
                f"store {path}: empty file, not a kaesong-thermal store "
                "(run `kaesong-thermal detect` first)"
            )
        if header and header != _SQLITE_HEADER:
            raise StoreError(
                f"store {path}: not a kaesong-thermal store (not a SQLite database); "
                "left untouched, choose another --store"
            )

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise self._error("cannot be opened", exc) from exc
        return conn

    def _error(self, what: str, exc: sqlite3.Error) -> StoreError:
        name = getattr(exc, "sqlite_errorname", "")
        if name in ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM") or (
            "readonly" in str(exc) or "read-only" in str(exc)
        ):
            return StoreError(f"store {self.path}: {what}: location is read-only or not writable")
        if name == "SQLITE_NOTADB" or "not a database" in str(exc):
            return StoreError(f"store {self.path}: not a kaesong-thermal store (not a SQLite file)")
        return StoreError(f"store {self.path}: {what}: {exc}")

    def _ensure_schema(self) -> None:
        conn = self._conn
        try:
            version = self._read_version()
            if version == SCHEMA_VERSION:
                self._set_wal()
                return
            self._set_wal()
            with self.transaction():
                version = self._read_version()  # again, under the write lock
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    logger.info("store %s: migrating schema to version %d", self.path, target)
                    MIGRATIONS[target](conn)
                    conn.execute(f"PRAGMA user_version = {target}")
                if version == 0:
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('application', "
                        "'kaesong_thermal'), ('created', ?)",
                        (_utc_now(),),
                    )
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except StoreError:
            raise
        except sqlite3.Error as exc:
            raise self._error("cannot be initialised", exc) from exc

    def _read_header(self) -> tuple[int, int, set[str]]:
        """User version, application id and table names, read from one snapshot.

        In autocommit mode each statement is its own read transaction, so three separate reads
        can straddle another process's schema-creating commit (version 0 read before it, the new
        tables after it) and make a fresh store look foreign. One explicit read transaction
        gives a consistent view [1]_.

        References
        ----------
        .. [1] SQLite, "Transaction", https://www.sqlite.org/lang_transaction.html
        """
        conn = self._conn
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN DEFERRED")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        finally:
            if own:
                conn.execute("COMMIT")
        return version, app_id, tables

    def _read_version(self) -> int:
        """Schema version of the open file; raise for foreign or newer databases."""
        conn = self._conn
        version, app_id, tables = self._read_header()
        if app_id not in (0, APPLICATION_ID) or (version == 0 and tables):
            raise StoreError(
                f"store {self.path}: a SQLite database but not a kaesong-thermal store; "
                "left untouched, choose another --store"
            )
        if version > 0 and "meta" not in tables:
            raise StoreError(f"store {self.path}: not a kaesong-thermal store (no meta table)")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path}: schema version {version} is newer than this kaesong-thermal "
                f"supports ({SCHEMA_VERSION}); upgrade kaesong-thermal to use it"
            )
        if version > 0:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path}: schema version {row[0]} is newer than this "
                    f"kaesong-thermal supports ({SCHEMA_VERSION}); upgrade kaesong-thermal"
                )
        return version

    def _set_wal(self) -> None:
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            logger.warning("store %s: journal mode is %s, not WAL", self.path, mode)
        self._conn.execute("PRAGMA synchronous = FULL")

    # -- life cycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock for a block: ``BEGIN IMMEDIATE`` ... ``COMMIT`` (or rollback)."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error("cannot start a write", exc) from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise self._error("cannot commit", exc) from exc

    @property
    def schema_version(self) -> int:
        """Schema version of the store (``PRAGMA user_version``)."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict (application, schema_version, created, footprints_hash)."""
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    # -- scenes --------------------------------------------------------------------------

    def scene_checksums(self) -> dict[str, str]:
        """Map ``scene_id`` -> thermal-band sha256 of every stored scene."""
        return dict(self._conn.execute("SELECT scene_id, thermal_checksum FROM scenes").fetchall())

    def n_scenes(self) -> int:
        """Number of stored scenes."""
        return int(self._conn.execute("SELECT count(*) FROM scenes").fetchone()[0])

    def n_observations(self) -> int:
        """Number of stored observations (scene x building rows)."""
        return int(self._conn.execute("SELECT count(*) FROM observations").fetchone()[0])

    def has_scene(self, scene_id: str, thermal_checksum: str | None = None) -> bool:
        """True if ``scene_id`` is stored (with this thermal checksum, when one is given)."""
        row = self._conn.execute(
            "SELECT thermal_checksum FROM scenes WHERE scene_id = ?", (scene_id,)
        ).fetchone()
        return row is not None and (thermal_checksum is None or row[0] == thermal_checksum)

    def add_scene(
        self,
        scene: Mapping[str, Any],
        observations: pd.DataFrame,
        *,
        footprints_hash: str | None = None,
        force: bool = False,
    ) -> AddOutcome:
        """Store one scene and all its observations in a single transaction.

        Parameters
        ----------
        scene : mapping
            ``scene_id, sensor, level, acquired`` (UTC), ``thermal_checksum`` (sha256 hex of the
            thermal band) and optionally ``wrs_path, wrs_row, cloud_cover, sun_elevation, day,
            source_path``.
        observations : pandas.DataFrame
            One row per building, the extraction columns of ``extract`` (``building_id`` and the
            ``*_k``, ``cover_px``, ``valid_fraction``, ``ring_valid_px``, ``area_m2`` columns).
        footprints_hash : str, optional
            Hash of the footprint set the observations were extracted with.
        force : bool, default False
            Replace a scene already stored (its observations too) instead of skipping it.

        Returns
        -------
        {"inserted", "replaced", "skipped"}
            ``skipped`` when the scene is already stored with the same thermal checksum (or with a
            different one: a warning says so) and ``force`` is False.
        """
        record = self._scene_record(scene, len(observations), footprints_hash)
        rows = self._observation_rows(record["scene_id"], observations)
        placeholders = ", ".join("?" for _ in SCENE_COLUMNS)
        obs_cols = ("scene_id", "building_id", *OBSERVATION_VALUE_COLUMNS)
        obs_sql = (
            f"INSERT INTO observations ({', '.join(obs_cols)}) "
            f"VALUES ({', '.join('?' for _ in obs_cols)})"
        )
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT thermal_checksum FROM scenes WHERE scene_id = ?", (record["scene_id"],)
            ).fetchone()
            outcome: AddOutcome = "inserted"
            if row is not None:
                if not force:
                    if row[0] != record["thermal_checksum"]:
                        logger.warning(
                            "scene %s is already stored from a product with a different thermal "
                            "band (checksum %s, now %s); kept the stored one (use force to "
                            "replace it)",
                            record["scene_id"],
                            row[0][:12],
                            record["thermal_checksum"][:12],
                        )
                    return "skipped"
                conn.execute("DELETE FROM scenes WHERE scene_id = ?", (record["scene_id"],))
                outcome = "replaced"
            if (
                footprints_hash is not None
                and not conn.execute(
                    "SELECT 1 FROM footprint_sets WHERE hash = ?", (footprints_hash,)
                ).fetchone()
            ):
                raise StoreError(
                    f"store {self.path}: footprint set {footprints_hash[:12]} is not registered "
                    "(call register_footprints first)"
                )
            conn.execute(
                f"INSERT INTO scenes ({', '.join(SCENE_COLUMNS)}) VALUES ({placeholders})",
                tuple(record[c] for c in SCENE_COLUMNS),
            )
            conn.executemany(obs_sql, rows)
        logger.debug("store %s: %s scene %s", self.path, outcome, record["scene_id"])
        return outcome

    def _scene_record(
        self, scene: Mapping[str, Any], n_obs: int, footprints_hash: str | None
    ) -> dict[str, Any]:
        missing = [
            k
            for k in ("scene_id", "sensor", "level", "acquired", "thermal_checksum")
            if scene.get(k) is None
        ]
        if missing:
            raise StoreError(
                f"store {self.path}: scene {scene.get('scene_id', '?')} lacks {', '.join(missing)}"
            )
        record = {c: _sql_value(scene.get(c)) for c in SCENE_COLUMNS}
        record["acquired"] = to_utc_text(scene["acquired"])
        record["source_path"] = (
            None if scene.get("source_path") is None else str(scene["source_path"])
        )
        record["footprints_hash"] = footprints_hash
        record["n_observations"] = n_obs
        record["ingested"] = _utc_now()
        return record

    def _observation_rows(self, scene_id: str, obs: pd.DataFrame) -> list[tuple[Any, ...]]:
        frame = obs.reset_index() if "building_id" not in obs.columns else obs
        if "building_id" not in frame.columns:
            raise StoreError(f"store {self.path}: observations of {scene_id} lack building_id")
        if "scene_id" in frame.columns:
            other = set(frame["scene_id"].dropna().astype(str)) - {scene_id}
            if other:
                raise StoreError(
                    f"store {self.path}: observations for scene {scene_id} also name "
                    f"{sorted(other)[0]}"
                )
        ids = frame["building_id"]
        if ids.isna().any() or ids.duplicated().any():
            raise StoreError(
                f"store {self.path}: observations of {scene_id} have missing or duplicated "
                "building_id"
            )
        rows: list[tuple[Any, ...]] = []
        present = [c for c in OBSERVATION_VALUE_COLUMNS if c in frame.columns]
        for rec in frame[["building_id", *present]].to_dict("records"):
            values = {c: _sql_value(rec.get(c)) for c in present}
            rows.append(
                (
                    scene_id,
                    str(rec["building_id"]),
                    *(values.get(c) for c in OBSERVATION_VALUE_COLUMNS),
                )
            )
        return rows

    def delete_scene(self, scene_id: str) -> bool:
        """Remove a scene and its observations; True if it was stored."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM scenes WHERE scene_id = ?", (scene_id,))
        return cur.rowcount > 0

    def scenes(self) -> pd.DataFrame:
        """Stored scenes, one row each, sorted by ``acquired`` (``datetime64[ns, UTC]``).

        Columns are :data:`SCENE_COLUMNS`; ``ingested`` is also a UTC datetime and ``day`` a bool.
        """
        frame = pd.read_sql_query(
            f"SELECT {', '.join(SCENE_COLUMNS)} FROM scenes ORDER BY acquired, scene_id",
            self._conn,
        )
        for col in ("acquired", "ingested"):
            frame[col] = _to_utc(frame[col])
        frame["day"] = frame["day"].astype("boolean")
        for col in ("cloud_cover", "sun_elevation"):
            frame[col] = frame[col].astype("float64")
        return frame

    def observations(
        self,
        *,
        building_ids: Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
    ) -> pd.DataFrame:
        """Stored observations joined with their scene's identity columns.

        Parameters
        ----------
        building_ids : sequence of str, optional
            Only these buildings.
        start, end : date-like, optional
            Only scenes acquired in ``[start, end]`` (UTC; naive values are taken as UTC).

        Returns
        -------
        pandas.DataFrame
            Columns :data:`OBSERVATION_COLUMNS` (``acquired`` as ``datetime64[ns, UTC]``, the
            scene's ``sun_elevation`` in degrees, kelvin in
            ``*_k``), sorted by ``acquired`` then ``building_id``; NULLs come back as NaN.
        """
        where: list[str] = []
        params: list[Any] = []
        if building_ids is not None:
            ids = [str(b) for b in building_ids]
            where.append(f"o.building_id IN ({', '.join('?' for _ in ids)})")
            params.extend(ids)
        if start is not None:
            where.append("s.acquired >= ?")
            params.append(to_utc_text(start))
        if end is not None:
            where.append("s.acquired <= ?")
            params.append(to_utc_text(end))
        sql = (
            "SELECT o.building_id, o.scene_id, s.acquired, s.sensor, s.level, s.sun_elevation, "
            + ", ".join(f"o.{c}" for c in OBSERVATION_VALUE_COLUMNS)
            + " FROM observations o JOIN scenes s ON s.scene_id = o.scene_id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY s.acquired, o.scene_id, o.building_id"
        )
        frame = pd.read_sql_query(sql, self._conn, params=params)
        frame["acquired"] = _to_utc(frame["acquired"])
        for col in ("sun_elevation", *OBSERVATION_VALUE_COLUMNS):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        if frame["ring_valid_px"].notna().all():
            frame["ring_valid_px"] = frame["ring_valid_px"].astype("int64")
        for col in ("building_id", "scene_id", "sensor", "level"):
            frame[col] = frame[col].astype(object)
        return frame.reset_index(drop=True)

    def as_of(self) -> pd.Timestamp | None:
        """Acquisition time of the latest stored scene (UTC), None for an empty store."""
        row = self._conn.execute("SELECT max(acquired) FROM scenes").fetchone()
        return None if row[0] is None else pd.Timestamp(row[0]).tz_convert("UTC")

    # -- footprints ----------------------------------------------------------------------

    def footprints_hash(self) -> str | None:
        """Hash of the footprint set the store is built with (None for a new store)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'footprints_hash'").fetchone()
        return None if row is None else str(row[0])

    def footprints_geojson(self, footprints_hash: str | None = None) -> str | None:
        """GeoJSON text (EPSG:4326) of a stored footprint set (default: the current one)."""
        key = footprints_hash or self.footprints_hash()
        if key is None:
            return None
        row = self._conn.execute(
            "SELECT geojson FROM footprint_sets WHERE hash = ?", (key,)
        ).fetchone()
        return None if row is None else str(row[0])

    def check_footprints(self, footprints_hash: str, geojson: str | None = None) -> FootprintCheck:
        """Compare a footprint set with the one the store was built with.

        Parameters
        ----------
        footprints_hash : str
            Hash of the new set (``footprints.footprints_hash``).
        geojson : str, optional
            GeoJSON text of the new set (features with ``id`` = building_id); with it the
            check names the buildings added, removed and modified.

        Returns
        -------
        FootprintCheck
            ``changed`` is True when stored observations were made with a different set.
        """
        stored = self.footprints_hash()
        if stored is None or stored == footprints_hash:
            return FootprintCheck(stored, footprints_hash)
        n_affected = int(
            self._conn.execute(
                "SELECT count(*) FROM scenes WHERE footprints_hash IS NOT ?", (footprints_hash,)
            ).fetchone()[0]
        )
        old = _feature_digests(self.footprints_geojson(stored) or "")
        new = _feature_digests(geojson) if geojson else {}
        if not new:
            return FootprintCheck(stored, footprints_hash, n_scenes_affected=n_affected)
        return FootprintCheck(
            stored,
            footprints_hash,
            added=tuple(sorted(set(new) - set(old))),
            removed=tuple(sorted(set(old) - set(new))),
            modified=tuple(sorted(k for k in set(old) & set(new) if old[k] != new[k])),
            n_scenes_affected=n_affected,
        )

    def register_footprints(
        self, footprints_hash: str, geojson: str, *, source: str | None = None
    ) -> None:
        """Record a footprint set and make it the store's current one.

        Parameters
        ----------
        footprints_hash : str
            Content hash of the set.
        geojson : str
            The set as GeoJSON text (EPSG:4326), kept so that ``status --format geojson`` and
            footprint-change explanations work without the original file.
        source : str, optional
            Where the set was read from.
        """
        try:
            n = len(json.loads(geojson).get("features", []))
        except json.JSONDecodeError as exc:
            raise StoreError(f"store {self.path}: footprint GeoJSON is not valid JSON") from exc
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO footprint_sets(hash, geojson, n_buildings, source, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (footprints_hash, geojson, n, source, _utc_now()),
            )
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('footprints_hash', ?)",
                (footprints_hash,),
            )

    def scenes_needing_reextraction(self, footprints_hash: str) -> pd.DataFrame:
        """Stored scenes extracted with a footprint set other than ``footprints_hash``."""
        scenes = self.scenes()
        return scenes[scenes["footprints_hash"].ne(footprints_hash)].reset_index(drop=True)

    # -- runs and reports ----------------------------------------------------------------

    def start_run(
        self,
        *,
        command: str | None = None,
        footprints_hash: str | None = None,
        baseline: str | None = None,
        params: Mapping[str, Any] | None = None,
        n_products: int = 0,
    ) -> int:
        """Record the start of a ``detect`` run and return its ``run_id``."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO runs(started, command, footprints_hash, baseline, params, n_products) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    _utc_now(),
                    command,
                    footprints_hash,
                    baseline,
                    json.dumps(dict(params or {}), default=str, sort_keys=True),
                    n_products,
                ),
            )
        return int(cur.lastrowid or 0)

    def finish_run(
        self,
        run_id: int,
        *,
        n_ingested: int,
        n_skipped: int,
        n_failed: int,
        n_newly_active: int,
        as_of: Any = None,
    ) -> None:
        """Record the end of a run: counts and the as-of date (latest scene) it analysed."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET finished = ?, n_ingested = ?, n_skipped = ?, n_failed = ?, "
                "n_newly_active = ?, as_of = ? WHERE run_id = ?",
                (
                    _utc_now(),
                    n_ingested,
                    n_skipped,
                    n_failed,
                    n_newly_active,
                    None if as_of is None else to_utc_text(as_of),
                    run_id,
                ),
            )

    def runs(self) -> pd.DataFrame:
        """All runs, oldest first (``started``, ``finished``, ``as_of`` as UTC datetimes)."""
        frame = pd.read_sql_query("SELECT * FROM runs ORDER BY run_id", self._conn)
        for col in ("started", "finished", "as_of"):
            frame[col] = _to_utc(frame[col])
        return frame

    def last_run(self, *, before: int | None = None) -> dict[str, Any] | None:
        """The latest *finished* run (optionally with ``run_id < before``) as a dict, or None."""
        sql = "SELECT * FROM runs WHERE finished IS NOT NULL"
        params: tuple[Any, ...] = ()
        if before is not None:
            sql += " AND run_id < ?"
            params = (before,)
        cur = self._conn.execute(sql + " ORDER BY run_id DESC LIMIT 1", params)
        row = cur.fetchone()
        if row is None:
            return None
        rec = dict(zip([d[0] for d in cur.description], row, strict=True))
        rec["params"] = json.loads(rec["params"]) if rec.get("params") else {}
        for col in ("started", "finished", "as_of"):
            rec[col] = None if rec[col] is None else pd.Timestamp(rec[col]).tz_convert("UTC")
        return rec

    def record_report(
        self, path: str | os.PathLike[str], *, as_of: Any = None, since: Any = None
    ) -> int:
        """Record that a report was written (its path and the period it covers)."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO reports(path, created, as_of, since) VALUES (?, ?, ?, ?)",
                (
                    str(path),
                    _utc_now(),
                    None if as_of is None else to_utc_text(as_of),
                    None if since is None else to_utc_text(since),
                ),
            )
        return int(cur.lastrowid or 0)

    def last_report(self) -> dict[str, Any] | None:
        """The latest recorded report (``path, created, as_of, since``) or None."""
        cur = self._conn.execute("SELECT * FROM reports ORDER BY report_id DESC LIMIT 1")
        row = cur.fetchone()
        if row is None:
            return None
        rec = dict(zip([d[0] for d in cur.description], row, strict=True))
        for col in ("created", "as_of", "since"):
            rec[col] = None if rec[col] is None else pd.Timestamp(rec[col]).tz_convert("UTC")
        return rec


def _to_utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
