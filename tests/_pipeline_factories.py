"""Shared helpers of the pipeline and detect CLI tests: simulated product sets, store checks."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd


def simulated_set(
    root: Path, n: int, *, start: str = "2015-09-01", end: str = "2016-09-01"
) -> tuple[list[Path], Path]:
    """``n`` simulated Kaesong Level-2 products (oldest first) and their footprints file.

    The set is written once per ``root`` (a marker file says it is complete), so tests in
    several modules can share it.
    """
    from kaesong_thermal.simulation import simulate

    marker = root / "complete"
    if not marker.exists():
        simulate(root, scenario="kaesong", start=start, end=end, size="crop", seed=7)
        marker.write_text("ok")
    products = sorted((root / "products").iterdir(), key=lambda p: p.name.split("_")[3])
    if len(products) < n:
        raise RuntimeError(f"simulation gave {len(products)} products, {n} needed")
    return products[:n], root / "footprints.geojson"


def n_buildings(footprints: Path) -> int:
    """Number of features in a GeoJSON footprint file."""
    return len(json.loads(footprints.read_text())["features"])


def corrupt_copy(product: Path, dest: Path) -> Path:
    """A copy of a product directory whose thermal band is truncated to 100 bytes."""
    copy = dest / product.name
    shutil.copytree(product, copy)
    band = next(copy.glob("*_ST_B10.TIF"))
    band.write_bytes(band.read_bytes()[:100])
    return copy


def store_invariants(db: Path, expected_scenes: int, buildings: int) -> pd.DataFrame:
    """Check a store scene by scene: complete, not duplicated; return its scenes table."""
    con = sqlite3.connect(db)
    try:
        scenes = pd.read_sql_query("SELECT * FROM scenes ORDER BY acquired", con)
        counts = dict(
            con.execute("SELECT scene_id, count(*) FROM observations GROUP BY scene_id").fetchall()
        )
        pairs = con.execute(
            "SELECT count(*), count(DISTINCT scene_id || '/' || building_id) FROM observations"
        ).fetchone()
        orphans = con.execute(
            "SELECT count(*) FROM observations WHERE scene_id NOT IN (SELECT scene_id FROM scenes)"
        ).fetchone()[0]
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    assert len(scenes) == expected_scenes
    assert scenes["scene_id"].is_unique
    for sid, n_obs in zip(scenes["scene_id"], scenes["n_observations"], strict=True):
        assert n_obs == buildings and counts.get(sid) == buildings, sid
    assert pairs[0] == pairs[1] == expected_scenes * buildings
    assert orphans == 0
    return scenes


def observations_of(db: Path) -> pd.DataFrame:
    """The store's observations table, in (scene, building) order."""
    con = sqlite3.connect(db)
    try:
        frame = pd.read_sql_query("SELECT * FROM observations", con)
    finally:
        con.close()
    return frame.sort_values(["scene_id", "building_id"]).reset_index(drop=True)
