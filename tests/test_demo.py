"""`kaesong-thermal demo`: the README's main job, end to end on simulated scenes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kaesong_thermal.cli import main


def test_demo_runs_end_to_end_and_ends_with_the_report_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "demo"
    code = main(["-q", "demo", "--workdir", str(workdir), "--workers", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    # the last line names the report, and the report is there and self-contained
    assert out[-1].startswith("report: ")
    html = Path(out[-1].removeprefix("report: "))
    assert html == workdir / "report" / "report.html"
    text = html.read_text(encoding="utf-8")
    assert "synthetic" in text.lower()
    assert "<script" not in text.lower()
    facts = json.loads((workdir / "report" / "report.json").read_text(encoding="utf-8"))
    assert isinstance(facts, dict) and facts
    # every simulated product is in the store, once, with one row per building
    products = sorted((workdir / "simulation" / "products").iterdir())
    assert len(products) > 300  # 2014-2025, Landsat 8 and 9
    with sqlite3.connect(workdir / "kaesong-thermal.db") as db:
        n_scenes = db.execute("SELECT COUNT(*) FROM scenes").fetchone()[0]
        n_obs = db.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
    assert n_scenes == len(products)
    assert n_obs == n_scenes * 28  # the shipped footprint set has 28 buildings
    # a second run on the same workdir is idempotent: nothing duplicated
    assert main(["-q", "demo", "--workdir", str(workdir), "--workers", "2"]) == 0
    with sqlite3.connect(workdir / "kaesong-thermal.db") as db:
        assert db.execute("SELECT COUNT(*) FROM scenes").fetchone()[0] == n_scenes
