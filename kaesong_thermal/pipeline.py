"""Scenes x footprints -> observations -> store -> analysis: the engine behind ``detect``.

Everything upstream of the store is per scene and independent, so scenes are processed in
parallel by a process pool (or, given a ``distributed.Client``, on a Dask cluster:
:mod:`kaesong_thermal.distributed`); the parent process alone writes the store, one transaction per scene
as each finishes, so a crash loses at most the scenes in flight and a re-run finishes the job
(:class:`kaesong_thermal.store.Store` skips what is already stored).

The method per scene is the one of :func:`kaesong_thermal.extraction.extract` (coverage-weighted
roof temperature against a background ring, on Level-2 surface temperature [1]_); the analysis
is :func:`kaesong_thermal.analysis.analyze`.

References
----------
.. [1] U.S. Geological Survey, "Landsat 8-9 Collection 2 Level 2 Science Product Guide",
   LSDS-1619, version 6.0, 2024 (ST_B10 scaling and ST_QA uncertainty).
"""

from __future__ import annotations

import glob
import json
import logging
import multiprocessing
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kaesong_thermal.classify import TRANSITION_COLUMNS, episode_starts
from kaesong_thermal.config import DEFAULT_BASELINE, DEFAULT_STORE, parse_baseline
from kaesong_thermal.errors import (
    ConfigError,
    FootprintError,
    KaesongThermalError,
    ProductError,
)
from kaesong_thermal.store import Store

if TYPE_CHECKING:
    import geopandas as gpd

    from kaesong_thermal.analysis import Analysis

logger = logging.getLogger(__name__)

#: Called after each product: ``progress(done, total, path, outcome)`` with outcome one of
#: ``"ingested"``, ``"replaced"``, ``"skipped"``, ``"failed"``.
ProgressCallback = Callable[[int, int, str, str], None]

_MTL_RE = re.compile(r"_MTL\.(txt|json|xml)$", re.IGNORECASE)
_TAR_RE = re.compile(r"\.(tar|tar\.gz|tgz)$", re.IGNORECASE)
_GLOB_CHARS = re.compile(r"[*?\[]")


# --------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------


def _product_mtls(directory: Path) -> dict[str, Path]:
    """Map product id -> MTL file for every product whose MTL lies in ``directory``."""
    try:
        names = sorted(p.name for p in directory.iterdir() if p.is_file())
    except OSError:
        return {}
    order = {"txt": 0, "xml": 1, "json": 2}
    found: dict[str, Path] = {}
    for name in sorted(names, key=lambda n: order.get(n.rsplit(".", 1)[-1].lower(), 3)):
        match = _MTL_RE.search(name)
        if match:
            found.setdefault(name[: match.start()], directory / name)
    return found


def _products_of_dir(directory: Path) -> list[Path]:
    """The directory if it is one product; each MTL if it holds several; else nothing."""
    mtls = _product_mtls(directory)
    if len(mtls) == 1:
        return [directory]
    return list(mtls.values())


def _is_stac_item(path: Path) -> bool:
    if path.suffix.lower() != ".json" or _MTL_RE.search(path.name):
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
        data = json.loads(head) if len(head) < (1 << 16) else json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("type") == "Feature" and "assets" in data


def _products_in_dir(directory: Path, depth: int) -> Iterator[Path]:
    """Products inside a directory that is not itself one, ``depth`` levels deep at most."""
    try:
        children = sorted(directory.iterdir())
    except OSError as exc:
        raise ProductError(f"{directory}: cannot be listed ({exc.strerror})") from exc
    for child in children:
        try:
            is_dir = child.is_dir()
        except OSError as exc:  # e.g. a subdirectory without read permission
            logger.warning(
                "%s: cannot be read (%s); not searched for products", child, exc.strerror
            )
            continue
        if is_dir:
            own = _products_of_dir(child)
            if own:
                yield from own
            elif depth > 1:
                yield from _products_in_dir(child, depth - 1)
        elif _TAR_RE.search(child.name) or _is_stac_item(child):
            yield child


def _product_of(path: Path) -> list[Path]:
    if path.is_dir():
        return _products_of_dir(path) or list(_products_in_dir(path, depth=2))
    standalone = _TAR_RE.search(path.name) or (
        path.suffix.lower() == ".json" and not _MTL_RE.search(path.name)
    )
    if path.is_file() and not standalone:
        # any file of a product (a band, the MTL): the product is its directory, or its MTL
        # when the directory holds the files of several products
        mtls = _product_mtls(path.parent)
        if len(mtls) == 1:
            return [path.parent]
        for product_id, mtl in mtls.items():
            if path.name.startswith(product_id):
                return [mtl]
    return [path]


def discover_products(
    items: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> list[Path]:
    """Expand command-line product arguments into one path per Landsat product.

    Parameters
    ----------
    items : path-like or iterable of path-like
        Product directories, any file of a product (MTL or band: its directory is used),
        ``.tar`` bundles, STAC item JSON files, directories holding many products (searched two
        levels deep, e.g. ``outdir`` holding ``products/<PRODUCT_ID>/``) and glob patterns
        (``**`` allowed) not expanded by the shell.

    Returns
    -------
    list of pathlib.Path
        Unique products in argument order. A path that does not exist is kept, so that it is
        reported by name as a failed product.

    Raises
    ------
    ProductError
        No item is given, a glob pattern matches nothing, or a directory holds no product.
    """
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    items = list(items)
    if not items:
        raise ProductError("products: none given (expected directories, files, tars or globs)")
    found: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        text = os.fspath(item)
        path = Path(text).expanduser()
        if not path.exists() and _GLOB_CHARS.search(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            if not matches:
                raise ProductError(f"{text}: no file matches this pattern")
            candidates = [q for m in matches for q in _product_of(Path(m))]
        else:
            candidates = _product_of(path)
            if path.is_dir() and not candidates:
                raise ProductError(f"{path}: no Landsat product found in this directory")
        for candidate in candidates:
            key = candidate.resolve() if candidate.exists() else candidate.absolute()
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found


# --------------------------------------------------------------------------------------------
# per-scene work (runs in worker processes)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    path: str
    scene: dict[str, Any] | None = None
    observations: pd.DataFrame | None = None
    skipped: bool = False
    error: str | None = None


@dataclass
class _WorkerState:
    """What every scene's task needs besides its path (shipped once to each worker)."""

    footprints: Any = None
    extract_options: dict[str, Any] = field(default_factory=dict)
    known: dict[str, str] = field(default_factory=dict)
    force: bool = False
    groups: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not self.groups and self.footprints is not None:
            from kaesong_thermal.sites import site_groups

            options = self.extract_options
            reach = float(options.get("ring_outer_m", 200.0)) + float(
                options.get("exclusion_margin_m", 30.0)
            )
            self.groups = site_groups(self.footprints, reach_m=reach)


_STATE = _WorkerState()


def _init_worker(state: _WorkerState) -> None:
    global _STATE
    _STATE = state


def _one_line(exc: BaseException) -> str:
    from kaesong_thermal.landsat.cloud import redact  # no URL query (signing token) in a message

    lines = redact(str(exc)).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, KaesongThermalError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _scene_record(metadata: Any, source: str, checksum: str) -> dict[str, Any]:
    return {
        "scene_id": metadata.scene_id,
        "sensor": metadata.sensor,
        "level": metadata.level,
        "acquired": pd.Timestamp(metadata.acquired),
        "wrs_path": metadata.wrs_path,
        "wrs_row": metadata.wrs_row,
        "cloud_cover": metadata.cloud_cover,
        "sun_elevation": metadata.sun_elevation,
        "day": metadata.day,
        "source_path": source,
        "thermal_checksum": checksum,
    }


def _process(product: Any, state: _WorkerState | None = None) -> _Outcome:
    """Open one product, skip it if already stored, else extract its observations.

    ``product`` is a path, or a remote product (a STAC search result: ``str()`` names it,
    ``source`` is what the store records, ``open_scene`` accepts it). ``state`` defaults to the
    one :func:`_init_worker` installed in this process.
    """
    from kaesong_thermal.landsat import open_scene
    from kaesong_thermal.sites import extract_sites

    state = _STATE if state is None else state
    path = str(product)
    try:
        scene = open_scene(product)
        try:
            checksum = scene.thermal_checksum()
            source = getattr(product, "source", None) or (
                path if "://" in path else os.path.abspath(path)
            )
            record = _scene_record(scene.metadata, source, checksum)
            if not state.force and state.known.get(record["scene_id"]) == checksum:
                return _Outcome(path, scene=record, skipped=True)
            obs = extract_sites(scene, state.groups, state.extract_options)
        finally:
            close = getattr(scene, "close", None)
            if close is not None:
                close()
    except Exception as exc:  # reported by name at the end; the other scenes go on
        logger.debug("%s failed", path, exc_info=True)
        return _Outcome(path, error=_one_line(exc))
    return _Outcome(path, scene=record, observations=obs)


#: The executor seam: maps :func:`_process` over product paths with one shared state and yields
#: the outcomes as scenes finish, in any order (the local pool below, or
#: :func:`kaesong_thermal.distributed.map_scenes` on a Dask cluster).
Executor = Callable[[Sequence[str], _WorkerState], Iterator[_Outcome]]


def _run_all(
    products: Sequence[Any],
    *,
    footprints: Any,
    extract_options: Mapping[str, Any],
    known: Mapping[str, str],
    force: bool,
    workers: int,
    client: Any = None,
) -> Iterator[_Outcome]:
    """Yield outcomes as scenes finish: on a Dask ``client`` when given, else locally."""
    state = _WorkerState(footprints, dict(extract_options), dict(known), force)
    if client is not None:
        from kaesong_thermal.distributed import map_scenes

        yield from map_scenes(client, products, state)
        return
    yield from _local_pool(products, state, workers)


def _local_pool(products: Sequence[Any], state: _WorkerState, workers: int) -> Iterator[_Outcome]:
    """In this process for one worker, else a pool of ``workers`` spawned processes."""
    if workers <= 1 or len(products) <= 1:
        for path in products:
            yield _process(path, state)
        return
    # spawn: workers start clean (no inherited SQLite connection or GDAL state) on every OS
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(state,)
    )
    try:
        futures: dict[Future[_Outcome], str] = {pool.submit(_process, p): str(p) for p in products}
        for future in as_completed(futures):
            try:
                yield future.result()
            except BrokenProcessPool:
                yield _Outcome(futures[future], error="worker process died while reading it")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------


def _load_footprints(footprints: Any) -> gpd.GeoDataFrame:
    from kaesong_thermal.footprints import load_footprints

    return load_footprints(footprints)


def footprints_geojson(footprints: gpd.GeoDataFrame) -> str:
    """GeoJSON text (EPSG:4326) of a footprint set, ``id`` = ``building_id``, for the store.

    Parameters
    ----------
    footprints : geopandas.GeoDataFrame
        Indexed by ``building_id`` (or with a ``building_id`` column).

    Returns
    -------
    str
        A FeatureCollection; dates as ISO text, missing values as null.
    """
    import shapely.geometry

    table = (
        footprints
        if footprints.index.name == "building_id"
        else footprints.set_index("building_id")
    )
    wgs84 = table.to_crs(4326)
    geom_col = wgs84.geometry.name
    features = []
    for bid, row in wgs84.iterrows():
        props = {k: jsonable(v) for k, v in row.items() if k != geom_col}
        geom = row[geom_col]
        features.append(
            {
                "type": "Feature",
                "id": str(bid),
                "properties": props,
                "geometry": None if geom is None else shapely.geometry.mapping(geom),
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": features}, default=str)


def jsonable(value: Any) -> Any:
    """JSON-ready copy of a value: NaN/NaT null, ISO-8601 timestamps, plain numpy values.

    A midnight timestamp (a date such as ``valid_from``) is written as its date; containers are
    converted recursively.
    """
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def extract_products(
    products: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    footprints: Any = None,
    workers: int = 1,
    *,
    extract_options: Mapping[str, Any] | None = None,
    errors: str = "raise",
    client: Any = None,
) -> pd.DataFrame:
    """Observations of many products, without a store (evaluation, notebooks).

    Parameters
    ----------
    products : path-like or iterable of path-like
        Anything :func:`discover_products` accepts.
    footprints : GeoDataFrame, path or None
        Building footprints; None is the shipped Kaesong set.
    workers : int, default 1
        Worker processes (1: in this process).
    extract_options : mapping, optional
        Keyword arguments for :func:`kaesong_thermal.extraction.extract`.
    errors : {"raise", "skip"}
        On a bad product raise its error (default) or log a warning and go on.
    client : distributed.Client, optional
        Read the products on this Dask cluster instead (``workers`` is then ignored).

    Returns
    -------
    pandas.DataFrame
        The extraction columns (docs/interfaces.md) for every product x building, sorted by
        ``acquired`` then ``building_id``.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    paths = [str(p) for p in discover_products(products)]
    fp = _load_footprints(footprints)
    frames: list[pd.DataFrame] = []
    seen: dict[str, str] = {}
    for outcome in _run_all(
        paths,
        footprints=fp,
        extract_options=extract_options or {},
        known={},
        force=False,
        workers=workers,
        client=client,
    ):
        if outcome.error is not None:
            if errors == "raise":
                raise ProductError(f"{outcome.path}: {outcome.error}")
            logger.warning("skipped %s: %s", outcome.path, outcome.error)
            continue
        assert outcome.scene is not None and outcome.observations is not None
        sid = outcome.scene["scene_id"]
        if sid in seen:  # the same scene given twice (a tar and its directory)
            logger.info("%s: scene %s already read from %s", outcome.path, sid, seen[sid])
            continue
        seen[sid] = outcome.path
        frames.append(outcome.observations)
    if not frames:
        return pd.DataFrame()
    obs = pd.concat(frames, ignore_index=True)
    return obs.sort_values(["acquired", "building_id"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class DetectResult:
    """What a :func:`detect` run did and found.

    Attributes
    ----------
    ingested : list of str
        Scene ids stored by this run (new, or replaced with ``force``).
    skipped : list of str
        Scene ids already in the store (same id and thermal checksum).
    failed : list of (str, str)
        ``(path, one-line message)`` of every product that could not be read.
    analysis : Analysis or None
        The analysis of the whole store after this run (None for an empty store).
    newly_active : pandas.DataFrame
        Transitions into ``active`` dated after the previous run's as-of date (all of them on
        the first run); columns of ``Analysis.transitions``.
    store : pathlib.Path
        The store file.
    as_of : pandas.Timestamp or None
        Acquisition time of the latest stored scene (UTC).
    since : pandas.Timestamp or None
        The previous run's as-of date (None on the first run).
    run_id : int
        The run's id in the store's ``runs`` table.
    """

    ingested: list[str]
    skipped: list[str]
    failed: list[tuple[str, str]]
    analysis: Analysis | None
    newly_active: pd.DataFrame
    store: Path
    as_of: pd.Timestamp | None = None
    since: pd.Timestamp | None = None
    run_id: int = 0


def detect(
    products: str | os.PathLike[str] | Iterable[str | os.PathLike[str] | Any],
    *,
    footprints: Any = None,
    store: str | os.PathLike[str] | Store = DEFAULT_STORE,
    baseline: str = DEFAULT_BASELINE,
    workers: int | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
    thresholds: Mapping[str, Any] | None = None,
    extract_options: Mapping[str, Any] | None = None,
    reextract: bool = False,
    command: str | None = None,
    allow_empty: bool = False,
    client: Any = None,
) -> DetectResult:
    """Add new scenes to the store, re-analyse, and return the buildings newly active.

    Parameters
    ----------
    products : path-like or iterable of path-like
        Anything :func:`discover_products` accepts (directories, files, tars, STAC items,
        directories of products, globs).
    footprints : GeoDataFrame, path or None
        Building footprints; None is the shipped Kaesong set.
    store : path or Store, default ``"kaesong-thermal.db"``
        The store; created when missing.
    baseline : str
        Idle baseline period ``"START:END"`` or ``"auto"`` (see ``analyze``).
    workers : int, optional
        Worker processes; default ``os.cpu_count()``. 1 runs in this process.
    force : bool
        Re-extract and replace products already stored.
    progress : callable, optional
        ``progress(done, total, path, outcome)`` after every product.
    thresholds : mapping, optional
        Keyword arguments for ``analyze``.
    extract_options : mapping, optional
        Keyword arguments for ``extract`` (ring distances...).
    reextract : bool
        When the footprints differ from those the store was built with, re-extract every stored
        scene from its source path with the new footprints (otherwise that is an error).
    command : str, optional
        Command line recorded in the store's ``runs`` table.
    allow_empty : bool
        Accept an empty ``products`` (a STAC search that found nothing new): the store is
        re-analysed and the run recorded. Remote products (STAC search results) may be mixed
        with paths; they are not passed through :func:`discover_products`.
    client : distributed.Client, optional
        Run one task per scene on this Dask cluster instead of the local process pool
        (``workers`` is then ignored); the store is written here, as with the pool, and the
        store is the same (:mod:`kaesong_thermal.distributed`). Needs ``kaesong-thermal[dask]``.

    Returns
    -------
    DetectResult

    Raises
    ------
    ProductError
        No product given, an empty glob or a directory without products.
    ConfigError
        ``workers`` below 1, or a malformed ``baseline``.
    FootprintError
        The footprints changed since the store was built and ``reextract`` is False.
    StoreError
        The store cannot be opened or written (not a store, newer schema, read-only).

    Notes
    -----
    Each scene is committed in its own transaction by this (parent) process as soon as its
    worker returns, so an interrupted run keeps every finished scene and the next run only
    processes the rest. Two runs on one store at once both succeed: writes wait for each other
    (busy timeout) and a scene stored by the other run is skipped.
    """
    baseline = parse_baseline(baseline)
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ConfigError(f"workers {workers!r}: expected a positive number of processes")
    paths = _product_list(products, allow_empty)
    fp = _load_footprints(footprints)
    from kaesong_thermal.footprints import footprints_hash

    fp_hash = footprints_hash(fp)
    fp_source = str(fp.attrs.get("source", footprints if footprints is not None else "shipped"))
    owns_store = not isinstance(store, Store)
    st = Store(store) if not isinstance(store, Store) else store
    try:
        geojson = footprints_geojson(fp)
        check = st.check_footprints(fp_hash, geojson)
        replace_ids: set[str] = set()
        if check.changed:
            if not reextract:
                raise FootprintError(
                    f"footprints {fp_source}: {check.explain()}; rerun with --reextract to "
                    f"re-extract them, or use another --store than {st.path}"
                )
            stale = st.scenes_needing_reextraction(fp_hash)
            replace_ids = set(stale["scene_id"])
            extra = [p for p in stale["source_path"].dropna() if p not in paths]
            logger.info("re-extracting %d stored scene(s) with the new footprints", len(stale))
            paths.extend(extra)
            st.register_footprints(fp_hash, geojson, source=fp_source)
        elif check.stored_hash is None:
            st.register_footprints(fp_hash, geojson, source=fp_source)
        elif reextract:
            logger.info("footprints unchanged: nothing to re-extract")

        known = {k: v for k, v in st.scene_checksums().items() if k not in replace_ids}
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(paths) or 1))
        if client is not None:
            from kaesong_thermal.distributed import n_workers as dask_workers

            n_workers = dask_workers(client)
        run_id = st.start_run(
            command=command,
            footprints_hash=fp_hash,
            baseline=baseline,
            params={"thresholds": dict(thresholds or {}), "extract": dict(extract_options or {})},
            n_products=len(paths),
        )
        logger.info("%d product(s), %d worker(s), store %s", len(paths), n_workers, st.path)
        ingested: list[str] = []
        skipped: list[str] = []
        failed: list[tuple[str, str]] = []
        for done, outcome in enumerate(
            _run_all(
                paths,
                footprints=fp,
                extract_options=extract_options or {},
                known=known,
                force=force,
                workers=n_workers,
                client=client,
            ),
            start=1,
        ):
            status = _land(st, outcome, fp_hash, force, replace_ids, ingested, skipped, failed)
            if progress is not None:
                progress(done, len(paths), outcome.path, status)
        failed.sort()
        if check.changed and replace_ids - set(ingested):
            logger.warning(
                "%d stored scene(s) could not be re-extracted and keep their old observations",
                len(replace_ids - set(ingested)),
            )

        analysis, newly, since = _analyse(st, run_id, baseline, thresholds or {})
        as_of = st.as_of()
        st.finish_run(
            run_id,
            n_ingested=len(ingested),
            n_skipped=len(skipped),
            n_failed=len(failed),
            n_newly_active=len(newly),
            as_of=as_of,
        )
        return DetectResult(
            ingested=ingested,
            skipped=skipped,
            failed=failed,
            analysis=analysis,
            newly_active=newly,
            store=st.path,
            as_of=as_of,
            since=since,
            run_id=run_id,
        )
    finally:
        if owns_store:
            st.close()


def _product_list(products: Any, allow_empty: bool) -> list[Any]:
    """Paths discovered as by :func:`discover_products`; remote products passed through."""
    if isinstance(products, (str, os.PathLike)):
        products = [products]
    items = list(products)
    local = [p for p in items if isinstance(p, (str, os.PathLike))]
    remote = [p for p in items if not isinstance(p, (str, os.PathLike))]
    if not local and (remote or allow_empty):
        return remote
    return [str(p) for p in discover_products(local)] + remote


def _land(
    st: Store,
    outcome: _Outcome,
    fp_hash: str,
    force: bool,
    replace_ids: set[str],
    ingested: list[str],
    skipped: list[str],
    failed: list[tuple[str, str]],
) -> str:
    """Store one outcome (one transaction); return what happened to it."""
    if outcome.error is not None or outcome.scene is None:
        message = outcome.error or "unreadable"
        # the reader's messages name the file already: keep the path once, in its own field
        message = message.removeprefix(f"{outcome.path}: ")
        logger.debug("%s: %s (skipped)", outcome.path, message)
        failed.append((outcome.path, message))
        return "failed"
    sid = str(outcome.scene["scene_id"])
    if outcome.skipped or outcome.observations is None:
        logger.debug("%s: scene %s already stored", outcome.path, sid)
        skipped.append(sid)
        return "skipped"
    result = st.add_scene(
        outcome.scene,
        outcome.observations,
        footprints_hash=fp_hash,
        force=force or sid in replace_ids,
    )
    if result == "skipped":  # stored meanwhile (same product twice, or a concurrent run)
        logger.debug("%s: scene %s already stored", outcome.path, sid)
        skipped.append(sid)
        return "skipped"
    replace_ids.discard(sid)
    logger.debug("%s: scene %s %s", outcome.path, sid, result)
    ingested.append(sid)
    return "replaced" if result == "replaced" else "ingested"


def _analyse(
    st: Store, run_id: int, baseline: str, thresholds: Mapping[str, Any]
) -> tuple[Analysis | None, pd.DataFrame, pd.Timestamp | None]:
    """Analyse the whole store; newly active = transitions into active after the last as-of."""
    previous = st.last_run(before=run_id)
    since = None if previous is None else previous["as_of"]
    obs = st.observations()
    if obs.empty:
        return None, pd.DataFrame(columns=list(TRANSITION_COLUMNS)), since
    from kaesong_thermal.analysis import analyze

    analysis = analyze(obs, baseline=baseline, footprints=_store_footprints(st), **dict(thresholds))
    return analysis, newly_active(analysis, since), since


def _store_footprints(st: Store) -> gpd.GeoDataFrame | None:
    """The store's current footprints for the spill correction (None when it holds none)."""
    return stored_footprints(st)


def newly_active(analysis: Analysis, since: Any = None) -> pd.DataFrame:
    """Transitions into ``active`` strictly after ``since`` (all of them when None).

    Parameters
    ----------
    analysis : Analysis
        From :func:`kaesong_thermal.analysis.analyze`.
    since : date-like, optional
        Usually the previous run's as-of date (UTC).

    Returns
    -------
    pandas.DataFrame
        Rows of ``Analysis.transitions`` with ``to_status == "active"`` that start an active
        period (:func:`kaesong_thermal.classify.episode_starts`: a return within 60 days of the
        previous active period, after a day or weeks off, is not new), sorted by date.
    """
    trans = analysis.transitions()
    trans = trans[episode_starts(trans)]
    if since is not None and len(trans):
        cutoff = pd.Timestamp(since)
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
        dates = pd.to_datetime(trans["date"], utc=True)
        trans = trans[dates > cutoff]
    return trans.sort_values(["date", "building_id"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# reading a store back (status, export, notebooks)
# --------------------------------------------------------------------------------------------


def analyze_store(
    store: str | os.PathLike[str] | Store,
    *,
    baseline: str | None = None,
    thresholds: Mapping[str, Any] | None = None,
) -> Analysis | None:
    """Analyse every observation of a store.

    Parameters
    ----------
    store : path or Store
        An existing store (a missing file is a :class:`~kaesong_thermal.errors.StoreError`).
    baseline : str, optional
        ``"START:END"`` or ``"auto"``; default: the baseline of the store's last run (else the
        Kaesong default).
    thresholds : mapping, optional
        Keyword arguments for ``analyze``; default: those of the store's last run.

    Returns
    -------
    Analysis or None
        None when the store holds no observation.
    """
    st = store if isinstance(store, Store) else Store(store, create=False)
    try:
        last = st.last_run()
        if baseline is None:
            baseline = (last or {}).get("baseline") or DEFAULT_BASELINE
        if thresholds is None:
            thresholds = ((last or {}).get("params") or {}).get("thresholds") or {}
        obs = st.observations()
        footprints = _store_footprints(st)
    finally:
        if not isinstance(store, Store):
            st.close()
    if obs.empty:
        return None
    from kaesong_thermal.analysis import analyze

    return analyze(
        obs, baseline=parse_baseline(baseline), footprints=footprints, **dict(thresholds)
    )


def stored_footprints(store: str | os.PathLike[str] | Store) -> gpd.GeoDataFrame | None:
    """The store's current footprint set (EPSG:4326, indexed by ``building_id``), or None."""
    import geopandas as gpd

    st = store if isinstance(store, Store) else Store(store, create=False)
    try:
        text = st.footprints_geojson()
    finally:
        if not isinstance(store, Store):
            st.close()
    if text is None:
        return None
    features = json.loads(text)["features"]
    gdf = gpd.GeoDataFrame.from_features(features, crs="EPSG:4326")
    gdf.index = pd.Index([str(f["id"]) for f in features], name="building_id")
    return gdf
