"""Scenes on Dask (``detect --scheduler``, ``detect(client=)``): same stores as the process pool.

Every cluster here listens on 127.0.0.1 only or runs in this process; one cluster of two worker
processes is shared by the module.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import distributed
import pandas as pd
import pytest
from _dask_factories import install_killer
from _pipeline_factories import n_buildings, observations_of, simulated_set, store_invariants

import kaesong_thermal as kt
from kaesong_thermal import distributed as kt_dask
from kaesong_thermal.cli import main
from kaesong_thermal.errors import ConfigError, SchedulerError

N_SCENES = 8


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    return simulated_set(tmp_path_factory.mktemp("dask-sim"), n=N_SCENES)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[object, object]]:
    """A LocalCluster of two single-threaded worker processes on 127.0.0.1, and its client."""
    cl = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = distributed.Client(cl, set_as_default=False)
    try:
        yield cl, client
    finally:
        client.close()
        cl.close()


@pytest.fixture(scope="module")
def clean(sim: tuple[list[Path], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store of a plain run in this process."""
    products, fp = sim
    db = tmp_path_factory.mktemp("clean") / "clean.db"
    kt.detect(products, footprints=fp, store=db, workers=1)
    return db


def scenes_of(db: Path) -> pd.DataFrame:
    con = sqlite3.connect(db)
    try:
        frame = pd.read_sql_query(
            "SELECT scene_id, thermal_checksum, n_observations FROM scenes ORDER BY scene_id", con
        )
    finally:
        con.close()
    return frame


def test_cli_scheduler_local_and_workers_give_byte_identical_exports(
    sim: tuple[list[Path], Path], tmp_path: Path
) -> None:
    products, fp = sim
    outputs = {}
    for name, flag in (("pool", ["--workers", "2"]), ("dask", ["--scheduler", "local:2"])):
        db = tmp_path / f"{name}.db"
        argv = ["-q", "detect", *map(str, products), "--footprints", str(fp), "--store", str(db)]
        assert main([*argv, *flag]) == 0
        for what in ("observations", "status"):
            out = tmp_path / f"{name}-{what}.csv"
            assert main(["-q", "export", str(out), "--store", str(db), "--what", what]) == 0
            outputs[name, what] = out.read_bytes()
        store_invariants(db, N_SCENES, n_buildings(fp))
    assert outputs["pool", "observations"] == outputs["dask", "observations"]
    assert outputs["pool", "status"] == outputs["dask", "status"]
    assert len(outputs["dask", "observations"].splitlines()) == 1 + N_SCENES * n_buildings(fp)


def test_detect_with_an_in_process_client_equals_the_local_run(
    sim: tuple[list[Path], Path], clean: Path, tmp_path: Path
) -> None:
    products, fp = sim
    db = tmp_path / "inproc.db"
    calls: list[tuple[int, str]] = []
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2) as client:
        result = kt.detect(
            products,
            footprints=fp,
            store=db,
            client=client,
            progress=lambda done, total, path, outcome: calls.append((done, outcome)),
        )
        assert len(result.ingested) == N_SCENES
        again = kt.detect(products, footprints=fp, store=db, client=client)
        assert again.ingested == [] and len(again.skipped) == N_SCENES
        obs = kt.extract_products(products, fp, client=client)
    assert [d for d, _ in calls] == list(range(1, N_SCENES + 1))
    assert {o for _, o in calls} == {"ingested"}
    pd.testing.assert_frame_equal(observations_of(db), observations_of(clean))
    pd.testing.assert_frame_equal(scenes_of(db), scenes_of(clean))
    assert len(obs) == N_SCENES * n_buildings(fp)
    assert obs["t_roof_k"].notna().sum() > 0.5 * len(obs)


def test_worker_killed_mid_task_is_rescheduled(
    sim: tuple[list[Path], Path],
    clean: Path,
    cluster: tuple[object, object],
    tmp_path: Path,
) -> None:
    products, fp = sim
    _, client = cluster
    client.wait_for_workers(2)  # type: ignore[attr-defined]
    marker = tmp_path / "killed-once"
    assert len(client.run(install_killer, str(marker))) == 2  # type: ignore[attr-defined]
    db = tmp_path / "killed.db"
    result = kt.detect(products, footprints=fp, store=db, client=client)
    assert marker.exists()  # a worker did die in the middle of a scene
    killed_path = marker.read_text()
    assert killed_path in map(str, products)
    assert result.failed == [] and len(result.ingested) == N_SCENES
    again = kt.detect(products, footprints=fp, store=db, client=client)
    assert again.ingested == [] and again.failed == []
    store_invariants(db, N_SCENES, n_buildings(fp))
    pd.testing.assert_frame_equal(observations_of(db), observations_of(clean))


def test_task_lost_for_good_is_a_failed_scene_and_a_rerun_completes(
    sim: tuple[list[Path], Path],
    clean: Path,
    cluster: tuple[object, object],
    tmp_path: Path,
) -> None:
    products, fp = sim
    cl, client = cluster
    scheduler = cl.scheduler  # type: ignore[attr-defined]
    client.wait_for_workers(2)  # type: ignore[attr-defined]
    marker = tmp_path / "killed-once"
    client.run(install_killer, str(marker))  # type: ignore[attr-defined]
    allowed = scheduler.allowed_failures
    scheduler.allowed_failures = 0  # no second chance: the lost task fails for good
    try:
        db = tmp_path / "lost.db"
        result = kt.detect(products, footprints=fp, store=db, client=client)
    finally:
        scheduler.allowed_failures = allowed
    # the task that killed its worker is lost, with any other task queued on that worker
    lost = [p for p, _ in result.failed]
    assert marker.read_text() in lost and 1 <= len(lost) <= 3
    assert all("Dask task lost" in m for _, m in result.failed)
    assert len(result.ingested) == N_SCENES - len(lost)
    store_invariants(db, N_SCENES - len(lost), n_buildings(fp))  # nothing half-written
    rerun = kt.detect(products, footprints=fp, store=db, client=client)
    assert len(rerun.ingested) == len(lost) and len(rerun.skipped) == N_SCENES - len(lost)
    assert rerun.failed == []
    store_invariants(db, N_SCENES, n_buildings(fp))
    pd.testing.assert_frame_equal(observations_of(db), observations_of(clean))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_scheduler_is_one_line_and_the_store_untouched(
    sim: tuple[list[Path], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    products, fp = sim
    monkeypatch.setattr(kt_dask, "CONNECT_TIMEOUT_S", 1.0)
    db = tmp_path / "untouched.db"
    address = f"tcp://127.0.0.1:{_free_port()}"
    code = main(["-q", "detect", str(products[0]), "--footprints", str(fp), "--store", str(db)])
    assert code == 0
    before = db.read_bytes()
    capsys.readouterr()
    code = main(["-q", "detect", *map(str, products), "--store", str(db), "--scheduler", address])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"kaesong-thermal: error: scheduler {address}: cannot be reached")
    assert db.read_bytes() == before


@pytest.mark.parametrize("value", ["local:0", "local", "localhost:8786", "tcp://127.0.0.1"])
def test_malformed_scheduler_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["detect", "x", "--scheduler", value])
    assert info.value.code == 2
    assert "--scheduler" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        kt_dask.parse_scheduler(value)


def test_scheduler_and_workers_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["detect", "x", "--scheduler", "local:2", "--workers", "2"])
    assert info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_missing_dask_is_one_clear_line(
    sim: tuple[list[Path], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    products, _ = sim
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(SchedulerError, match=r"pip install kaesong-thermal\[dask\]"):
        kt_dask.require_distributed()
    db = tmp_path / "never.db"
    code = main(["-q", "detect", str(products[0]), "--store", str(db), "--scheduler", "local:2"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "pip install kaesong-thermal[dask]" in err
    assert not db.exists()


def test_importing_the_package_does_not_import_dask() -> None:
    code = (
        "import sys, kaesong_thermal as kt, kaesong_thermal.cli, kaesong_thermal.pipeline\n"
        "kt.detect; kt.analyze\n"
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
