"""The analyst's workflow through the CLI: ``detect``, ``status``, ``export``.

Simulated Kaesong products (kaesong_thermal.simulation) stand in for downloads. The long runs
(200 + 5 scenes, a SIGKILL mid-run, two concurrent runs) are marked ``slow``; they still run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from _pipeline_factories import (
    corrupt_copy,
    n_buildings,
    observations_of,
    simulated_set,
    store_invariants,
)

from kaesong_thermal.cli import main
from kaesong_thermal.pipeline import analyze_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """Eight simulated products (2015-16) and their footprints."""
    return simulated_set(tmp_path_factory.mktemp("small"), n=8)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """205 simulated products, 2019-04-11 to 2025-01-05 (Landsat 8 and 9)."""
    return simulated_set(
        tmp_path_factory.mktemp("big"), n=205, start="2019-04-01", end="2025-01-10"
    )


def cli(*argv: object) -> int:
    return main([str(a) for a in argv])


def detect_cmd(*argv: object) -> list[str]:
    return [sys.executable, "-m", "kaesong_thermal", "-q", "detect", *map(str, argv)]


# ---------------------------------------------------------------------------- must show


@pytest.mark.slow
def test_200_scenes_then_5_more(
    big: tuple[list[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    products, fp = big
    db = tmp_path / "kt.db"
    code = cli(
        "detect", *products[:200], "--store", db, "--footprints", fp, "--workers", 2, "--json"
    )
    first = json.loads(capsys.readouterr().out)
    assert code == 0
    assert len(first["ingested"]) == 200 and first["skipped"] == [] and first["failed"] == []
    ingest_times = pd.read_sql_query(
        "SELECT scene_id, ingested FROM scenes", sqlite3.connect(db)
    ).set_index("scene_id")["ingested"]

    # the second run is given the whole products directory: only the 5 new scenes are processed
    code = cli(
        "detect",
        products[0].parent,
        "--store",
        db,
        "--footprints",
        fp,
        "--workers",
        2,
        "--fail-on-new",
    )
    out = capsys.readouterr().out
    new_ids = {p.name for p in products[200:]}
    con = sqlite3.connect(db)
    scenes = pd.read_sql_query("SELECT scene_id, ingested FROM scenes", con).set_index("scene_id")
    runs = pd.read_sql_query("SELECT * FROM runs ORDER BY run_id", con)
    con.close()
    assert runs["n_ingested"].tolist() == [200, 5]
    assert runs["n_skipped"].tolist() == [0, 200]
    assert set(scenes.index) - set(ingest_times.index) == new_ids
    pd.testing.assert_series_equal(scenes["ingested"].loc[ingest_times.index], ingest_times)
    store_invariants(db, 205, n_buildings(fp))

    # newly active since the first run's as-of (2024-11-26): printed, and true in the truth
    analysis = analyze_store(db)
    assert analysis is not None
    trans = analysis.transitions(since=first["as_of"])
    newly = trans[trans["to_status"] == "active"]
    assert len(newly) >= 1 and code == 3  # --fail-on-new
    assert f"{len(newly)} building(s) became active since 2024-11-26" in out
    truth = pd.read_csv(fp.parent / "truth.csv")
    truly_active = set(
        truth.loc[truth["active"].astype(bool), ["scene_id", "building_id"]].itertuples(
            index=False, name=None
        )
    )
    for row in newly.itertuples():
        assert row.building_id in out and row.scene_id in out
        assert row.scene_id in new_ids
        assert (row.scene_id, row.building_id) in truly_active


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_completes(big: tuple[list[Path], Path], tmp_path: Path) -> None:
    products, fp = big
    subset = products[:40]
    db = tmp_path / "kt.db"
    proc = subprocess.Popen(
        detect_cmd(*subset, "--store", db, "--footprints", fp, "--workers", 2),
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stored = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                    stored = con.execute("SELECT count(*) FROM scenes").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    stored = 0  # schema not created yet
                if stored >= 5:
                    break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the detect process itself, mid-run
        proc.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):  # its orphaned worker processes
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    scenes = store_invariants(db, scenes_in(db), n_buildings(fp))
    n_killed_at = len(scenes)
    assert 5 <= n_killed_at < len(subset)

    done = subprocess.run(
        detect_cmd(*subset, "--store", db, "--footprints", fp, "--workers", 2, "--json"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["ingested"]) == len(subset) - n_killed_at
    assert len(result["skipped"]) == n_killed_at
    store_invariants(db, len(subset), n_buildings(fp))


@pytest.mark.slow
def test_two_concurrent_runs_equal_one_sequential_run(
    big: tuple[list[Path], Path], tmp_path: Path
) -> None:
    products, fp = big
    subset = products[100:124]
    shared, sequential = tmp_path / "shared.db", tmp_path / "sequential.db"
    # one run gets the products in order, the other in reverse, so they collide on every scene
    runs = [
        subprocess.Popen(
            detect_cmd(*order, "--store", shared, "--footprints", fp, "--workers", 1, "--json"),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for order in (subset, subset[::-1])
    ]
    outputs = [p.communicate(timeout=300) for p in runs]
    for proc, (_, err) in zip(runs, outputs, strict=True):
        assert proc.returncode == 0, err
    results = [json.loads(out) for out, _ in outputs]
    ingested = [set(r["ingested"]) for r in results]
    assert ingested[0].isdisjoint(ingested[1])
    assert ingested[0] | ingested[1] == {p.name for p in subset}
    for r in results:
        assert set(r["ingested"]) | set(r["skipped"]) == {p.name for p in subset}

    seq = subprocess.run(
        detect_cmd(*subset, "--store", sequential, "--footprints", fp, "--workers", 1),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert seq.returncode == 0, seq.stderr
    store_invariants(shared, len(subset), n_buildings(fp))
    pd.testing.assert_frame_equal(observations_of(shared), observations_of(sequential))


# ---------------------------------------------------------------------------- bad inputs


def test_corrupt_product_among_good_ones(
    small: tuple[list[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    products, fp = small
    bad = corrupt_copy(products[2], tmp_path / "downloads")
    db = tmp_path / "kt.db"
    code = cli(
        "detect",
        products[0],
        bad,
        products[1],
        "--store",
        db,
        "--footprints",
        fp,
        "--workers",
        1,
        "--json",
    )
    captured = capsys.readouterr()
    assert code == 1  # data error: one product failed; the good ones landed
    result = json.loads(captured.out)
    assert [f["path"] for f in result["failed"]] == [str(bad)]
    assert len(result["ingested"]) == 2
    store_invariants(db, 2, n_buildings(fp))


def test_store_that_is_not_a_store(
    small: tuple[list[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    products, fp = small
    db = tmp_path / "results.csv"
    db.write_text("building_id,active\namos,1\n")
    code = cli("detect", products[0], "--store", db, "--footprints", fp, "--workers", 1)
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "results.csv: not a kaesong-thermal store" in err
    assert "Traceback" not in err
    assert db.read_text() == "building_id,active\namos,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_store_from_a_newer_schema(
    small: tuple[list[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    products, fp = small
    db = tmp_path / "kt.db"
    assert cli("detect", products[0], "--store", db, "--footprints", fp, "--workers", 1) == 0
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.close()
    capsys.readouterr()
    assert cli("status", "--store", db) == 1
    assert (
        "schema version 99 is newer than this kaesong-thermal supports" in capsys.readouterr().err
    )


def test_footprints_changed_since_the_store_was_built(
    small: tuple[list[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    products, fp = small
    db = tmp_path / "kt.db"
    assert cli("detect", *products[:2], "--store", db, "--footprints", fp, "--workers", 1) == 0
    gdf = gpd.read_file(fp)
    moved = gdf.copy()
    moved.loc[0, "geometry"] = gdf.geometry.iloc[0].buffer(0.0002)
    new_fp = tmp_path / "edited.geojson"
    moved.to_file(new_fp, driver="GeoJSON")
    capsys.readouterr()
    code = cli("detect", products[2], "--store", db, "--footprints", new_fp, "--workers", 1)
    err = capsys.readouterr().err
    assert code == 1
    assert f"1 outline or dates changed ({gdf['building_id'].iloc[0]})" in err
    assert "2 stored scene(s)" in err and "--reextract" in err
    store_invariants(db, 2, n_buildings(fp))  # nothing written
    code = cli(
        "detect",
        products[2],
        "--store",
        db,
        "--footprints",
        new_fp,
        "--workers",
        1,
        "--reextract",
        "--json",
    )
    assert code == 0
    assert len(json.loads(capsys.readouterr().out)["ingested"]) == 3


def test_empty_glob(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli("detect", str(tmp_path / "LC09_*.tar"), "--store", tmp_path / "kt.db")
    err = capsys.readouterr().err
    assert code == 1 and "LC09_*.tar: no file matches this pattern" in err
    assert not (tmp_path / "kt.db").exists()


def test_read_only_store_location(
    small: tuple[list[Path], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    products, fp = small
    code = cli("detect", products[0], "--store", "/proc/kt.db", "--footprints", fp)
    err = capsys.readouterr().err
    assert code == 1 and "/proc/kt.db" in err and "read-only" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["detect", "x", "--baseline", "2020-01-01"],
        ["detect", "x", "--workers", "0"],
        ["status", "--format", "xml"],
        ["status", "--as-of", "yesterday-ish"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


# ---------------------------------------------------------------------------- status / export


@pytest.fixture(scope="module")
def small_store(small: tuple[list[Path], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    products, fp = small
    db = tmp_path_factory.mktemp("store") / "kt.db"
    assert (
        cli(
            "detect",
            *products,
            "--store",
            db,
            "--footprints",
            fp,
            "--workers",
            2,
            "--baseline",
            "auto",
        )
        == 0
    )
    return db


def test_status_formats(
    small_store: Path, small: tuple[list[Path], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, fp = small
    analysis = analyze_store(small_store)
    assert analysis is not None
    expected = analysis.status(as_of="2016-03-31")
    capsys.readouterr()
    assert cli("status", "--store", small_store, "--as-of", "2016-03-31", "--format", "json") == 0
    rows = {r["building_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(expected.index) and len(rows) == n_buildings(fp)
    for bid, rec in expected.iterrows():
        assert rows[bid]["status"] == rec["status"]
        assert rows[bid]["n_valid"] == rec["n_valid"]
    assert cli("status", "--store", small_store, "--format", "csv") == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(csv) == n_buildings(fp) and {"status", "anomaly_k", "z"} <= set(csv.columns)
    assert cli("status", "--store", small_store, "--format", "geojson") == 0
    gj = json.loads(capsys.readouterr().out)
    assert len(gj["features"]) == n_buildings(fp)
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in gj["features"])
    assert cli("status", "--store", small_store) == 0
    table = capsys.readouterr().out
    assert all(bid in table for bid in expected.index)


def test_status_of_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("status", "--store", tmp_path / "none.db") == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("obs.csv", None), ("obs.parquet", None), ("obs.gpq", "geoparquet"), ("obs.geojson", None)],
)
def test_export_observations(small_store: Path, tmp_path: Path, name: str, fmt: str | None) -> None:
    out = tmp_path / name
    argv: list[object] = ["export", out, "--store", small_store]
    if fmt:
        argv += ["--format", fmt]
    assert cli(*argv) == 0
    n_obs = sqlite3.connect(small_store).execute("SELECT count(*) FROM observations").fetchone()[0]
    if name.endswith(".csv"):
        frame = pd.read_csv(out)
    elif name.endswith(".parquet"):
        frame = pd.read_parquet(out)
    else:
        frame = gpd.read_parquet(out) if fmt == "geoparquet" else gpd.read_file(out)
        assert frame.geometry.notna().all()
    assert len(frame) == n_obs
    assert {"anomaly_k", "z", "state", "t_roof_k", "scene_id", "building_id"} <= set(frame.columns)
    assert {"status", "confidence", "spill_k", "ring_contaminated"} <= set(frame.columns)
    assert set(frame["state"]) <= {"active", "idle", "uncertain", "no_data"}
    assert set(frame["status"]) <= {"active", "changed", "idle", "uncertain", "no_data"}
    assert frame["confidence"].between(0.0, 1.0).all()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_export_status_per_observation_is_the_persisted_verdict(
    small_store: Path, tmp_path: Path
) -> None:
    # every exported row carries the status after it: the timeline's on valid rows, carried over
    # no-data rows; the changes of that column are exactly the analysis's transitions
    out = tmp_path / "obs.csv"
    assert cli("export", out, "--store", small_store) == 0
    frame = pd.read_csv(out, parse_dates=["acquired"])
    analysis = analyze_store(small_store)
    assert analysis is not None
    status = analysis.status()
    ordered = frame.sort_values(["building_id", "acquired"], kind="stable")
    last = ordered.groupby("building_id").tail(1).set_index("building_id")
    fresh = status["status"] != "no_data"
    assert (last.loc[status.index[fresh], "status"] == status.loc[fresh, "status"]).all()
    prev = ordered.groupby("building_id")["status"].shift()
    flips = ordered.loc[prev.notna() & (prev != ordered["status"]) & (prev != "no_data")]
    tr = analysis.transitions()
    assert len(flips) == len(tr)
    assert sorted(flips["scene_id"]) == sorted(tr["scene_id"])
    # a no-data row keeps the verdict of the building's previous valid row
    nd = ordered.loc[(ordered["state"] == "no_data") & prev.notna()]
    assert (nd["status"].to_numpy() == prev.loc[nd.index].to_numpy()).all()


def test_export_status_and_atomic_replace(
    small_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "status.csv"
    assert cli("export", out, "--store", small_store, "--what", "status") == 0
    before = out.read_bytes()
    assert (
        len(pd.read_csv(out))
        == sqlite3.connect(small_store)
        .execute("SELECT count(DISTINCT building_id) FROM observations")
        .fetchone()[0]
    )

    from kaesong_thermal._commands import export

    def broken(frame: pd.DataFrame, path: Path, *args: object) -> None:
        path.write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(export, "_write", broken)
    with pytest.raises(OSError, match="disk full"):
        export.write_atomic(pd.DataFrame(), out, "csv", None, str(small_store))
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["status.csv"]


def test_export_refuses_to_overwrite_the_store(
    small_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = small_store.stat().st_size
    with pytest.raises(SystemExit) as exc:
        cli("export", small_store, "--store", small_store, "--format", "csv")
    assert exc.value.code == 2 and "is the store itself" in capsys.readouterr().err
    assert small_store.stat().st_size == before


# ---------------------------------------------------------------------------- config, progress


def test_config_file_and_flags(
    small: tuple[list[Path], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    products, fp = small
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaesong-thermal.toml").write_text(
        f'footprints = "{fp}"\nstore = "site.db"\nbaseline = "auto"\nworkers = 1\n'
    )
    assert cli("detect", products[0]) == 0
    assert scenes_in(tmp_path / "site.db") == 1
    assert cli("detect", products[1], "--store", "other.db") == 0
    assert scenes_in(tmp_path / "other.db") == 1 and scenes_in(tmp_path / "site.db") == 1


def scenes_in(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM scenes").fetchone()[0])
    finally:
        con.close()


def test_progress_bar_on_a_terminal(
    small: tuple[list[Path], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    products, fp = small
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert (
        cli(
            "detect",
            *products[:3],
            "--store",
            tmp_path / "kt.db",
            "--footprints",
            fp,
            "--workers",
            1,
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "detect: 100%" in err and "3/3" in err


def test_log_lines_without_a_terminal(
    small: tuple[list[Path], Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    products, fp = small
    caplog.set_level("INFO")
    assert (
        cli(
            "detect",
            *products[:2],
            "--store",
            tmp_path / "kt.db",
            "--footprints",
            fp,
            "--workers",
            1,
        )
        == 0
    )
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("_commands.detect")]
    assert lines[0].startswith("[1/2] ") and lines[0].endswith(": ingested")
    assert lines[1].startswith("[2/2] ")
