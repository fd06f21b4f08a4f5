"""Tests of kaesong_thermal.store: schema, idempotent per-scene transactions, bad store files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kaesong_thermal import store as store_mod
from kaesong_thermal.errors import StoreError
from kaesong_thermal.store import SCHEMA_VERSION, Store

BUILDINGS = ("amos", "romanson", "shinwon")


def scene_record(day: int, checksum: str = "c0ffee", **extra: object) -> dict[str, object]:
    """A scene row as the pipeline builds it (Landsat 8, path 116 row 34, November 2025)."""
    rec: dict[str, object] = {
        "scene_id": f"LC08_L2SP_116034_202511{day:02d}_20251110_02_T1",
        "sensor": "LC08",
        "level": "L2",
        "acquired": pd.Timestamp(f"2025-11-{day:02d}T02:10:00", tz="UTC"),
        "wrs_path": 116,
        "wrs_row": 34,
        "cloud_cover": 12.5,
        "sun_elevation": 31.0,
        "day": True,
        "source_path": f"/data/scene{day}",
        "thermal_checksum": checksum,
    }
    rec.update(extra)
    return rec


def observation_frame(scene: dict[str, object], base_k: float = 280.0) -> pd.DataFrame:
    """Three buildings; the third fully clouded (NaN temperatures, valid_fraction 0)."""
    n = len(BUILDINGS)
    roof = np.array([base_k + 2.0, base_k + 0.5, np.nan])
    background = np.array([base_k, base_k, np.nan])
    return pd.DataFrame(
        {
            "building_id": list(BUILDINGS),
            "scene_id": [scene["scene_id"]] * n,
            "acquired": [scene["acquired"]] * n,
            "sensor": ["LC08"] * n,
            "level": ["L2"] * n,
            "t_roof_k": roof,
            "t_roof_max_k": roof + 1.0,
            "t_background_k": background,
            "t_background_iqr_k": [0.8, 0.6, np.nan],
            "contrast_k": roof - background,
            "sigma_k": [0.4, 0.5, np.nan],
            "cover_px": [10.25, 3.5, 2.0],
            "valid_fraction": [1.0, 0.75, 0.0],
            "ring_valid_px": [40, 25, 0],
            "area_m2": [9225.0, 3150.0, 1800.0],
        }
    )


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "kaesong-thermal.db"


def test_new_store_has_schema_wal_and_foreign_keys(db: Path) -> None:
    with Store(db) as st:
        assert st.schema_version == SCHEMA_VERSION
        assert st.meta()["application"] == "kaesong_thermal"
        assert st.meta()["schema_version"] == str(SCHEMA_VERSION)
        conn = st._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 60000
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"scenes", "observations", "footprint_sets", "runs", "reports", "meta"} <= tables
    # reopening an existing store does not migrate again
    with Store(db) as st:
        assert st.schema_version == SCHEMA_VERSION


def test_roundtrip_observations_and_scenes(db: Path) -> None:
    s1, s2 = scene_record(5, "aa"), scene_record(13, "bb")
    with Store(db) as st:
        with pytest.raises(StoreError, match="footprint set fh is not registered"):
            st.add_scene(s1, observation_frame(s1), footprints_hash="fh")
        st.register_footprints("fh", '{"type": "FeatureCollection", "features": []}')
        assert st.add_scene(s2, observation_frame(s2, 290.0), footprints_hash="fh") == "inserted"
        assert st.add_scene(s1, observation_frame(s1), footprints_hash="fh") == "inserted"
        obs = st.observations()
        scenes = st.scenes()
        assert st.as_of() == pd.Timestamp("2025-11-13T02:10:00", tz="UTC")
    assert str(obs["acquired"].dtype) == "datetime64[ns, UTC]"
    assert len(obs) == 6
    # sorted by time: the 5 November scene comes first
    assert list(obs["scene_id"].iloc[:3]) == [s1["scene_id"]] * 3
    first = obs.iloc[0]
    assert first["building_id"] == "amos"
    assert first["t_roof_k"] == pytest.approx(282.0)
    assert first["contrast_k"] == pytest.approx(2.0)
    assert first["cover_px"] == pytest.approx(10.25)
    assert first["sensor"] == "LC08" and first["level"] == "L2"
    clouded = obs[(obs["building_id"] == "shinwon")].iloc[1]
    assert np.isnan(clouded["t_roof_k"]) and clouded["valid_fraction"] == 0.0
    assert obs["ring_valid_px"].tolist() == [40, 25, 0, 40, 25, 0]
    assert obs.loc[3, "t_roof_k"] == pytest.approx(292.0)
    assert list(scenes["scene_id"]) == [s1["scene_id"], s2["scene_id"]]
    assert scenes["n_observations"].tolist() == [3, 3]
    assert scenes["day"].tolist() == [True, True]
    assert scenes["wrs_path"].tolist() == [116, 116]
    assert str(scenes["acquired"].dtype) == "datetime64[ns, UTC]"


def test_observation_filters(db: Path) -> None:
    with Store(db) as st:
        for day in (5, 13, 21):
            s = scene_record(day, f"c{day}")
            st.add_scene(s, observation_frame(s, 270.0 + day))
        sub = st.observations(building_ids=["romanson"], start="2025-11-10", end="2025-11-30")
    assert sub["building_id"].unique().tolist() == ["romanson"]
    assert sub["t_roof_k"].tolist() == pytest.approx([270.0 + 13 + 0.5, 270.0 + 21 + 0.5])


def test_same_product_twice_is_stored_once_unless_forced(db: Path) -> None:
    s = scene_record(5, "abc")
    with Store(db) as st:
        assert st.add_scene(s, observation_frame(s)) == "inserted"
        # same scene id and thermal checksum from another path (a .tar instead of the directory)
        again = dict(s, source_path="/data/scene5.tar")
        assert st.add_scene(again, observation_frame(s, 300.0)) == "skipped"
        assert st.n_scenes() == 1 and st.n_observations() == 3
        assert st.observations()["t_roof_k"].iloc[0] == pytest.approx(282.0)
        assert st.add_scene(again, observation_frame(s, 300.0), force=True) == "replaced"
        assert st.n_scenes() == 1 and st.n_observations() == 3
        assert st.observations()["t_roof_k"].iloc[0] == pytest.approx(302.0)
        assert st.scenes()["source_path"].iloc[0] == "/data/scene5.tar"


def test_different_checksum_is_not_silently_replaced(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = scene_record(5, "abc")
    with Store(db) as st:
        st.add_scene(s, observation_frame(s))
        other = dict(s, thermal_checksum="def")
        assert st.add_scene(other, observation_frame(s, 300.0)) == "skipped"
        assert st.scene_checksums() == {s["scene_id"]: "abc"}
    assert "different thermal band" in caplog.text


def test_failed_scene_transaction_leaves_store_unchanged(db: Path) -> None:
    s1, s2 = scene_record(5, "a"), scene_record(13, "b")
    with Store(db) as st:
        st.add_scene(s1, observation_frame(s1))
        bad = observation_frame(s2)
        bad.loc[2, "building_id"] = "amos"  # duplicated building id
        with pytest.raises(StoreError, match="duplicated building_id"):
            st.add_scene(s2, bad)
        # an insert that fails inside the transaction (NOT NULL violated) rolls back the scene row
        with pytest.raises(sqlite3.IntegrityError), st.transaction() as conn:
            conn.execute(
                "INSERT INTO scenes(scene_id, sensor, level, acquired, thermal_checksum, "
                "n_observations, ingested) VALUES ('X', 'LC08', 'L2', '2025', 'x', 1, 'now')"
            )
            conn.execute("INSERT INTO observations(scene_id, building_id) VALUES ('X', NULL)")
        assert st.scene_checksums() == {s1["scene_id"]: "a"}
        assert st.n_observations() == 3


def test_foreign_key_cascade_on_delete(db: Path) -> None:
    s = scene_record(5, "a")
    with Store(db) as st:
        st.add_scene(s, observation_frame(s))
        assert st.delete_scene(str(s["scene_id"])) is True
        assert st.n_observations() == 0
        with pytest.raises(sqlite3.IntegrityError):
            st._conn.execute("INSERT INTO observations(scene_id, building_id) VALUES ('nope', 'a')")


def test_file_that_is_not_a_store_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    content = b"these are my field notes, not a database\n" * 10
    path.write_bytes(content)
    with pytest.raises(StoreError, match=r"notes\.db.*not a kaesong-thermal store"):
        Store(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE birds (name TEXT)")
    conn.execute("INSERT INTO birds VALUES ('crane')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"other\.sqlite.*not a kaesong-thermal store"):
        Store(path)
    assert path.read_bytes() == before


def test_store_from_newer_schema_is_refused(db: Path) -> None:
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1} is newer"):
        Store(db)


def test_migration_runs_registered_steps_in_order(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = scene_record(5, "a")
    with Store(db) as st:
        st.add_scene(s, observation_frame(s))

    def to_next(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE scenes ADD COLUMN note TEXT")

    nxt = SCHEMA_VERSION + 1
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", nxt)
    monkeypatch.setitem(store_mod.MIGRATIONS, nxt, to_next)
    with Store(db) as st:
        assert st.schema_version == nxt
        assert st.meta()["schema_version"] == str(nxt)
        cols = [r[1] for r in st._conn.execute("PRAGMA table_info(scenes)")]
        assert cols[-1] == "note"
        assert st.n_observations() == 3  # data kept through the migration


def test_missing_store_without_create(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "none.db", create=False)
    assert not (tmp_path / "none.db").exists()


def test_empty_file_is_not_opened_as_a_store_for_reading(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match=r"notes\.json: empty file, not a kaesong-thermal store"):
        Store(path, create=False)
    assert path.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json"]


def test_read_only_location(tmp_path: Path) -> None:
    # /proc refuses new files even for root, so this holds whoever runs the tests
    with pytest.raises(StoreError, match=r"/proc/kaesong-thermal\.db.*read-only"):
        Store("/proc/kaesong-thermal.db")
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "no" / "such" / "dir.db")


def test_footprint_change_is_detected_and_explained(db: Path) -> None:
    def gj(features: dict[str, list[list[float]]]) -> str:
        return json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "id": bid,
                        "properties": {"valid_from": None, "valid_to": None},
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                    }
                    for bid, ring in features.items()
                ],
            }
        )

    square = [[126.0, 37.9], [126.001, 37.9], [126.001, 37.901], [126.0, 37.9]]
    moved = [[126.01, 37.9], [126.011, 37.9], [126.011, 37.901], [126.01, 37.9]]
    old = gj({"amos": square, "romanson": square, "shinwon": square})
    new = gj({"amos": square, "romanson": moved, "sj-tech": square})
    s = scene_record(5, "a")
    with Store(db) as st:
        assert st.check_footprints("h-old", old).changed is False  # new store
        st.register_footprints("h-old", old, source="old.geojson")
        st.add_scene(s, observation_frame(s), footprints_hash="h-old")
        assert st.check_footprints("h-old", old).changed is False
        check = st.check_footprints("h-new", new)
        assert check.changed
        assert check.added == ("sj-tech",)
        assert check.removed == ("shinwon",)
        assert check.modified == ("romanson",)
        assert check.n_scenes_affected == 1
        text = check.explain()
        assert "1 added (sj-tech)" in text and "1 removed (shinwon)" in text
        assert "romanson" in text and "1 stored scene(s)" in text
        assert st.scenes_needing_reextraction("h-new")["scene_id"].tolist() == [s["scene_id"]]
        st.register_footprints("h-new", new)
        assert st.footprints_hash() == "h-new"
        assert json.loads(st.footprints_geojson() or "")["features"][2]["id"] == "sj-tech"
        assert json.loads(st.footprints_geojson("h-old") or "")["features"][2]["id"] == "shinwon"


def test_runs_and_reports(db: Path) -> None:
    with Store(db) as st:
        assert st.last_run() is None and st.last_report() is None
        r1 = st.start_run(command="detect a", baseline="auto", n_products=3)
        assert st.last_run() is None  # not finished yet
        st.finish_run(
            r1, n_ingested=2, n_skipped=0, n_failed=1, n_newly_active=1, as_of="2025-11-05T02:10Z"
        )
        r2 = st.start_run(command="detect b", params={"z_active": 3.0})
        last = st.last_run()
        assert last is not None and last["run_id"] == r1 and last["n_failed"] == 1
        assert last["as_of"] == pd.Timestamp("2025-11-05T02:10", tz="UTC")
        st.finish_run(r2, n_ingested=0, n_skipped=3, n_failed=0, n_newly_active=0)
        assert st.last_run()["run_id"] == r2  # type: ignore[index]
        assert st.last_run(before=r2)["run_id"] == r1  # type: ignore[index]
        assert st.runs()["params"].iloc[1] == '{"z_active": 3.0}'
        st.record_report("out/report.html", as_of="2025-11-05", since="2025-10-01")
        rep = st.last_report()
        assert rep is not None and rep["path"] == "out/report.html"
        assert rep["since"] == pd.Timestamp("2025-10-01", tz="UTC")


def test_version_1_store_migrates_to_excess_columns(db: Path) -> None:
    # a store written by schema version 1 (no excess columns) opens, keeps its rows, gains the
    # PSF-aware excess columns (version 2) and the ring-quadrant columns (version 3) as
    # NULL -> NaN, and accepts new rows that carry them
    conn = sqlite3.connect(db)
    with conn:
        store_mod._migrate_to_1(conn)
        conn.execute("PRAGMA user_version = 1")
        conn.execute(f"PRAGMA application_id = {store_mod.APPLICATION_ID}")
        conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '1')")
        conn.execute(
            "INSERT INTO scenes(scene_id, sensor, level, acquired, thermal_checksum, "
            "n_observations, ingested) VALUES ('old', 'LC08', 'L2', "
            "'2015-01-01T02:00:00.000000+00:00', 'x', 1, '2015-01-02T00:00:00.000000+00:00')"
        )
        conn.execute(
            "INSERT INTO observations(scene_id, building_id, contrast_k, ring_valid_px) "
            "VALUES ('old', 'amos', 1.25, 20)"
        )
    conn.close()
    with Store(db) as st:
        assert st.schema_version == SCHEMA_VERSION == 3
        cols = [r[1] for r in st._conn.execute("PRAGMA table_info(observations)")]
        assert cols[-4:] == ["excess_k", "excess_sigma_k", "ring_hot_sector_k", "ring_hot_sector"]
        obs = st.observations()
        assert obs.loc[0, "contrast_k"] == 1.25
        assert np.isnan(obs.loc[0, "excess_k"]) and np.isnan(obs.loc[0, "excess_sigma_k"])
        assert np.isnan(obs.loc[0, "ring_hot_sector_k"]) and np.isnan(obs.loc[0, "ring_hot_sector"])
        s = scene_record(5, "a")
        frame = observation_frame(s).assign(
            excess_k=4.5, excess_sigma_k=1.5, ring_hot_sector_k=2.25, ring_hot_sector=3.0
        )
        st.add_scene(s, frame)
        new = st.observations(start=s["acquired"])
        assert (new["excess_k"] == 4.5).all() and (new["excess_sigma_k"] == 1.5).all()
        assert (new["ring_hot_sector_k"] == 2.25).all() and (new["ring_hot_sector"] == 3.0).all()


def test_a_store_created_by_another_process_mid_check_is_not_taken_for_foreign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two `detect` runs creating one new store at once: the second reads the schema version
    # (0) just before the first commits the schema, then the table list just after. Here the
    # other creator runs in a thread, started between our first two header reads and given a
    # second to finish; the open must still succeed and the store be whole.
    import threading

    path = tmp_path / "shared.db"
    other: list[str] = []
    threads: list[threading.Thread] = []

    def create_other() -> None:
        try:
            with Store(path) as s:
                other.append(str(s.schema_version))
        except StoreError as exc:
            other.append(str(exc))

    class Interleaving(sqlite3.Connection):
        fired = False

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql.strip() == "PRAGMA application_id" and not Interleaving.fired:
                Interleaving.fired = True
                threads.append(threading.Thread(target=create_other))
                threads[0].start()
                threads[0].join(timeout=1.0)
            return super().execute(sql, *args)

    real_connect = sqlite3.connect
    calls = {"n": 0}

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        calls["n"] += 1
        if calls["n"] == 1:
            kwargs["factory"] = Interleaving
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(store_mod.sqlite3, "connect", connect)
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION
    monkeypatch.setattr(store_mod.sqlite3, "connect", real_connect)
    threads[0].join(timeout=120)
    assert other == [str(SCHEMA_VERSION)]
    with Store(path) as s:
        assert s.meta()["application"] == "kaesong_thermal"
