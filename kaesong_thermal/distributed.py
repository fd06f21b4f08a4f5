"""Scenes on a Dask distributed cluster: ``detect(client=...)`` and ``detect --scheduler``.

The executor behind the pipeline's seam (:data:`kaesong_thermal.pipeline.Executor`) when one
machine is not enough. One task per scene runs :func:`kaesong_thermal.pipeline._process` where
the workers are (each worker reads its products from the paths given, so they must be visible
there under the same names); the footprints, their site groups and the checksums of the scenes
already stored are scattered once to every worker, and each worker keeps its own cache of
coverage weights per pixel grid (:mod:`kaesong_thermal.extraction`), so the geometry of a path/row
is computed once per worker. Results stream back with ``as_completed`` to the one process that
writes the store, one transaction per scene, exactly as with the local process pool, so both give
the same store.

A worker that dies while reading a scene loses that task: the scheduler gives it to another
worker (``distributed.scheduler.allowed-failures`` times, 3 by default); an exception inside a
task is retried ``retries`` times. A scene still lost after that is recorded as failed, and a
re-run reads it again. Nothing is half-written: only whole results reach the store.

dask.distributed is an optional dependency (``pip install kaesong-thermal[dask]``); importing
:mod:`kaesong_thermal` never imports it.

References
----------
.. [1] Dask Development Team, "Dask.distributed", https://distributed.dask.org (Client.scatter,
   Client.map, as_completed, LocalCluster).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from kaesong_thermal import pipeline
from kaesong_thermal.errors import ConfigError, SchedulerError

logger = logging.getLogger(__name__)

#: What a missing dask.distributed tells the user to run.
INSTALL_HINT = "pip install kaesong-thermal[dask]"
#: Seconds to wait for a remote scheduler before giving up.
CONNECT_TIMEOUT_S = 10.0
#: Retries of a scene whose task raised (a dead worker is rescheduled by the scheduler anyway).
DEFAULT_RETRIES = 2

_LOCAL_RE = re.compile(r"^local:(\d+)$")
_REMOTE_RE = re.compile(r"^(tcp|tls)://[^\s:/]+:\d+$")


def require_distributed() -> ModuleType:
    """The ``distributed`` module, or a :class:`SchedulerError` saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise SchedulerError(
            f"the Dask scheduler needs dask.distributed, which is not installed "
            f"({exc.name or exc}): {INSTALL_HINT}"
        ) from None
    return distributed


@dataclass(frozen=True)
class SchedulerSpec:
    """A parsed ``--scheduler`` value: a local cluster of ``n_workers`` or a remote address."""

    address: str | None = None
    n_workers: int = 0

    @property
    def local(self) -> bool:
        """Whether this starts a LocalCluster."""
        return self.address is None


def parse_scheduler(text: str) -> SchedulerSpec:
    """Parse ``local:N`` (N worker processes on this machine) or ``tcp://HOST:PORT``.

    Raises
    ------
    ConfigError
        Anything else, or ``local:0``.
    """
    value = str(text).strip()
    match = _LOCAL_RE.match(value)
    if match:
        n = int(match.group(1))
        if n < 1:
            raise ConfigError(f"scheduler {text!r}: local needs at least one worker (local:N)")
        return SchedulerSpec(n_workers=n)
    if _REMOTE_RE.match(value):
        return SchedulerSpec(address=value)
    raise ConfigError(
        f"scheduler {text!r}: expected local:N or the address of a running scheduler "
        "(tcp://HOST:PORT)"
    )


@contextlib.contextmanager
def connect(scheduler: str | SchedulerSpec, *, timeout: float | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for a ``--scheduler`` value, closed (with its cluster) on exit.

    ``local:N`` starts a LocalCluster of N single-threaded worker processes listening on
    127.0.0.1 only, without dashboard; ``tcp://HOST:PORT`` connects to a running scheduler,
    waiting ``timeout`` seconds at most (default :data:`CONNECT_TIMEOUT_S`).

    Raises
    ------
    ConfigError
        A malformed value.
    SchedulerError
        dask.distributed is missing, or the scheduler cannot be reached or started.
    """
    spec = scheduler if isinstance(scheduler, SchedulerSpec) else parse_scheduler(scheduler)
    distributed = require_distributed()
    cluster = None
    if spec.local:
        try:
            cluster = distributed.LocalCluster(
                n_workers=spec.n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster, set_as_default=False)
        except (OSError, RuntimeError, TimeoutError) as exc:
            if cluster is not None:
                cluster.close()
            raise SchedulerError(
                f"scheduler local:{spec.n_workers}: cannot start ({_first_line(exc)})"
            ) from exc
        logger.info("started a local Dask cluster of %d worker(s)", spec.n_workers)
    else:
        wait = CONNECT_TIMEOUT_S if timeout is None else float(timeout)
        try:
            client = distributed.Client(spec.address, timeout=wait, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(
                f"scheduler {spec.address}: cannot be reached within {wait:g} s "
                f"({_first_line(exc)})"
            ) from exc
        logger.info("connected to the Dask scheduler at %s", spec.address)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def n_workers(client: Any) -> int:
    """Number of workers the client's scheduler knows of now."""
    try:
        return len(client.scheduler_info().get("workers", {}))
    except Exception:  # a scheduler that went away: the tasks will say so
        return 0


def _shared(state: pipeline._WorkerState) -> pipeline._WorkerState:
    """The shared state, as a task's result (held by the workers, rebuilt if lost)."""
    return state


def _run_scene(path: str, state: pipeline._WorkerState) -> pipeline._Outcome:
    """One scene's task, on a worker (``state`` is the scattered shared state)."""
    return pipeline._process(path, state)


def map_scenes(
    client: Any,
    products: Sequence[str],
    state: pipeline._WorkerState,
    *,
    retries: int = DEFAULT_RETRIES,
) -> Iterator[pipeline._Outcome]:
    """Run one task per product on a Dask cluster; yield outcomes as they complete.

    Parameters
    ----------
    client : distributed.Client
        A client of a running cluster (its workers must see the product paths).
    products : sequence of str
        Product paths, one task each.
    state : _WorkerState
        Footprints, site groups, extraction options and stored checksums: scattered once to
        every worker (not once per task).
    retries : int
        Retries of a task that raised; a worker that died is handled by the scheduler, which
        reschedules its tasks.

    Yields
    ------
    _Outcome
        One per product, in completion order; a task lost for good gives a failed outcome.
    """
    distributed = require_distributed()
    paths = list(products)
    if not paths:
        return
    workers = n_workers(client)
    if workers == 0:
        logger.warning("the Dask scheduler has no worker yet: tasks wait until one joins")
    logger.info("%d scene task(s) on %d Dask worker(s)", len(paths), workers)
    # The shared state is one task of its own rather than scattered data: each worker fetches
    # it once (from the worker that made it, or from a peer), and if every copy is lost with
    # its workers the scheduler makes it again from the task, where scattered data is gone.
    shared = client.submit(_shared, state, pure=False)
    futures = client.map(_run_scene, paths, state=shared, pure=False, retries=retries)
    path_of = {future.key: path for future, path in zip(futures, paths, strict=True)}
    try:
        for future in distributed.as_completed(futures, loop=client.loop):
            path = path_of[future.key]
            try:
                outcome = future.result()
            except Exception as exc:  # lost for good (KilledWorker, cancelled...): re-run it
                logger.debug("%s: task lost", path, exc_info=True)
                outcome = pipeline._Outcome(
                    path, error=f"Dask task lost while reading it ({pipeline._one_line(exc)})"
                )
            future.release()
            yield outcome
    finally:
        with contextlib.suppress(Exception):
            client.cancel([*futures, shared])
