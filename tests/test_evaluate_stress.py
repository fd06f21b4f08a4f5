"""The stress-family scorer (benchmarks/evaluate_stress.py) on a hand-made export with known figures."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import ModuleType

import geopandas as gpd
import pandas as pd
import pytest
from _benchmarks import load_benchmark
from shapely.geometry import box


@pytest.fixture(scope="module")
def ev() -> ModuleType:
    return load_benchmark("evaluate_stress")


DATES = pd.date_range("2022-11-01 02:10", periods=10, freq="16D", tz="UTC")
# A: a 10,000 m2 hall switching on on 2023-01-10; B: a 400 m2 idle neighbour, falsely alerted
TRUTH_A = [0, 0, 0, 0, 0, 1, 1, 0, 1, 1]
STATE_A = ["idle"] * 5 + ["no_data", "active", "active", "active", "idle"]
STATUS_A = ["idle"] * 7 + ["active"] * 3
STATE_B = ["idle", "idle", "active", "active"] + ["idle"] * 6
STATUS_B = ["idle"] * 3 + ["active"] + ["idle"] * 4 + ["active"] * 2


def _write(tmp: Path) -> tuple[Path, Path]:
    sim = tmp / "sim"
    sim.mkdir()
    scenes = [f"LC08_L2SP_116034_{d:%Y%m%d}_X_02_T1" for d in DATES]
    truth, export = [], []
    for b, act, states, statuses, hot in (
        ("A", TRUTH_A, STATE_A, STATUS_A, [0.0] * 6 + [5.0] * 4),
        (
            "B",
            [0] * 10,
            STATE_B,
            STATUS_B,
            [0.1, -0.1, 0.0, 0.05, -0.05, 0.1, -0.1, 0.0, 1.0, -0.05],
        ),
    ):
        for k, d in enumerate(DATES):
            truth.append(
                {
                    "scene_id": scenes[k],
                    "building_id": b,
                    "acquired": d.isoformat(),
                    "active": act[k],
                    "roof_excess_k": 3.0 * act[k],
                    "cloud_fraction": 0.0,
                }
            )
            export.append(
                {
                    "building_id": b,
                    "scene_id": scenes[k],
                    "acquired": str(d),
                    "contrast_k": hot[k] + 0.01 * k if states[k] != "no_data" else None,
                    "state": states[k],
                    "status": statuses[k],
                }
            )
    pd.DataFrame(truth).to_csv(sim / "truth.csv", index=False)
    out = tmp / "export.csv"
    pd.DataFrame(export).to_csv(out, index=False)
    scen = {
        "scenario": "stress",
        "buildings": [
            {"building_id": "A", "roles": ["switch-on", "active-neighbour"]},
            {"building_id": "B", "roles": ["idle-neighbour"]},
        ],
        "stress": {"events": {"switch_on": {"A": "2023-01-10"}, "switch_off": {}}},
    }
    (sim / "scenario.json").write_text(json.dumps(scen))
    fp = gpd.GeoDataFrame(
        {"building_id": ["A", "B"]},
        geometry=[box(291000, 4201000, 291100, 4201100), box(291120, 4201000, 291140, 4201020)],
        crs="EPSG:32652",
    ).to_crs(4326)
    fp.to_file(sim / "footprints.geojson", driver="GeoJSON")
    return sim, out


def test_figures_of_a_hand_made_draw(ev: ModuleType, tmp_path: Path) -> None:
    sim, export = _write(tmp_path)
    r = ev.score_draw(sim, export)
    # status: TP A d8 d9; FP A d7, B d3 d8 d9; FN A d6 (A d5 is no_data and does not count)
    assert (r["tp"], r["fp"], r["fn"]) == (2, 4, 1)
    assert r["precision"] == pytest.approx(2 / 6)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(4 / 9)
    # state: TP A d6 d8; FP A d7, B d2 d3; FN A d9
    assert (r["state_tp"], r["state_fp"], r["state_fn"]) == (2, 3, 1)
    assert r["recall_large"] == pytest.approx(2 / 3)
    # alerts: A at d7 (not truly active then, but on d6: not false); B at d3 (idle years), d8
    assert r["n_alerts"] == 3
    assert (r["n_false"], r["n_false_idle"]) == (2, 1)
    years = (DATES[-1] - DATES[0]).days / 365.25
    idle = (pd.Timestamp("2023-01-01", tz="UTC") - DATES[0]).total_seconds() / 86400 / 365.25
    assert r["false_per_by"] == pytest.approx(2 / (2 * years))
    assert r["false_per_by_idle"] == pytest.approx(1 / (2 * idle))
    assert r["confounders"]["idle-neighbour"] == {"B": {"false_alert": True, "ends_active": True}}
    assert r["confounders_flagged"] == 1
    assert r["confounders"]["reclad"] == {}
    # switch-on 2023-01-10: valid rows d6 (idle), d7 (active): one scene late
    assert r["switch_on_events"] == [
        {"building_id": "A", "switch_on": "2023-01-10", "delay_scenes": 1}
    ]
    assert r["delay_median"] == 1.0 and r["switch_on_missed"] == 0
    # naive: A's contrast jumps by 5 K from d6, z >> 3: active from d7 (two of three)
    assert r["naive_n_alerts"] == 1 and r["naive_n_false"] == 0
    assert r["naive_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # naive single-scene: A active d6-d9 (TP d6 d8 d9, FP d7); B's one 1 K spike on d8 (z ~ 12
    # against its idle-years sd of 0.09 K) is a false alert the two-of-three rule never raises
    assert r["naive1_n_alerts"] == 2 and r["naive1_n_false"] == 1
    assert r["naive1_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 0))
    assert r["naive1_false_per_by"] == pytest.approx(1 / (2 * years))


def test_missing_status_column_is_an_error(ev: ModuleType, tmp_path: Path) -> None:
    sim, export = _write(tmp_path)
    pd.read_csv(export).drop(columns="status").to_csv(export, index=False)
    with pytest.raises(ValueError, match="status"):
        ev.score_draw(sim, export)


def test_seeds_sections_and_failures(ev: ModuleType, tmp_path: Path) -> None:
    assert ev.parse_seeds(["101-103", "105,101"]) == [101, 102, 103, 105]
    out = tmp_path / "r.md"
    out.write_text("# Results\n\nkept\n")
    draws = {"1": {"f1": 0.5, "false_per_by_idle": 0.1}, "2": {"error": "detect: boom"}}
    result = {"draws": draws, "summary": {"all": ev.summarise(draws, [1, 2])}}
    meta = {"command": "x", "machine": "m", "date": "d", "version": "v", "period": ["a", "b"]}
    ev.write_outputs(out, "before", meta, result)
    ev.write_outputs(out, "after", meta, result)
    ev.write_outputs(out, "before", meta, result)
    text = out.read_text()
    assert text.startswith("# Results\n\nkept\n")
    assert text.count("label `before`") == 1 and text.count("label `after`") == 1
    assert text.index("label `before`") < text.index("label `after`")
    assert "failed: detect: boom" in text
    s = result["summary"]["all"]
    assert s["n_draws"] == 1 and s["f1"] == {"median": 0.5, "worst": 0.5}
    assert s["delay_median"]["median"] is None
    csv = pd.read_csv(tmp_path / "r.stress.csv")
    assert sorted(csv["label"].unique()) == ["after", "before"] and len(csv) == 4
    js = json.loads((tmp_path / "r.stress.json").read_text())
    assert set(js) == {"before", "after"}
    assert math.isclose(js["before"]["draws"]["1"]["f1"], 0.5)


@pytest.mark.slow
def test_end_to_end_through_the_command_line(
    ev: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A short draw simulated, detected and exported by the CLI, scored, then re-scored."""
    work, out = tmp_path / "work", tmp_path / "res" / "detector.md"
    argv = ["--seeds", "5", "--workdir", str(work), "--out", str(out), "--label", "smoke"]
    argv += ["--workers", "1", "--start", "2024-01-01", "--end", "2024-03-31"]
    assert ev.main(argv) == 0
    js = json.loads(out.with_name("detector.stress.json").read_text())
    d = js["smoke"]["draws"]["5"]
    assert "error" not in d, d
    assert d["n_scenes"] > 5 and d["unmatched_rows"] == 0 and d["reused"] is False
    assert d["confounders_present"] == 4
    export = work / "stress5_2024-01-01_2024-03-31.smoke.observations.csv"
    stamp = export.stat().st_mtime_ns
    assert ev.main(argv) == 0  # re-scored from the same export
    js = json.loads(out.with_name("detector.stress.json").read_text())
    assert js["smoke"]["draws"]["5"]["reused"] is True
    assert js["smoke"]["draws"]["5"]["detect_s"] == d["detect_s"]
    assert export.stat().st_mtime_ns == stamp
    assert "label `smoke`" in out.read_text()
    assert "1 draw(s) scored" in capsys.readouterr().out
    # the same simulation thinned to half its acquisitions: detected apart, scored on its rows
    assert ev.main([*argv, "--keep-share", "0.5", "--label", "sparse"]) == 0
    js = json.loads(out.with_name("detector.stress.json").read_text())
    t = js["sparse"]["draws"]["5"]
    assert "error" not in t, t
    assert t["simulated"] is False and t["reused"] is False
    assert 0.2 * d["n_scenes"] <= t["n_scenes"] <= 0.8 * d["n_scenes"]
    thin = work / "stress5_2024-01-01_2024-03-31_keep0.5"
    assert (work / f"{thin.name}.sparse.observations.csv").is_file()
    assert all(x.is_symlink() for x in (thin / "products").iterdir())
    assert "--keep-share 0.5" in js["sparse"]["meta"]["command"]
    # re-analysing that store with the defaults scores what the export scored
    tune = load_benchmark("tune_stress")
    argv = ["--seeds", "5", "--label", "sparse", "--workdir", str(work), "--keep-share", "0.5"]
    argv += ["--start", "2024-01-01", "--end", "2024-03-31"]
    capsys.readouterr()
    assert tune.main([*argv, "--variants", '{"defaults": {}}']) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "'variant': 'defaults', 'seed': 5" in first
    assert f"'f1': {t['f1']}" in first or (math.isnan(t["f1"]) and "'f1': nan" in first)


def test_thinning_keeps_whole_acquisitions_deterministically(
    ev: ModuleType, tmp_path: Path
) -> None:
    sim = tmp_path / "stress7"
    (sim / "products").mkdir(parents=True)
    for k, d in enumerate(pd.date_range("2020-01-01", periods=200, freq="8D")):
        sensor = "LC08" if k % 2 else "LC09"
        for level in ("L2SP", "L1TP") if k % 5 == 0 else ("L2SP",):
            (sim / "products" / f"{sensor}_{level}_116034_{d:%Y%m%d}_20240101_02_T1").mkdir()
    for name in ev._THIN_FILES:
        (sim / name).write_text("{}")
    p = ev.Paths.of(tmp_path, 7, "x", keep_share=0.3)
    assert p.data == tmp_path / "stress7_keep0.3" and p.db.name == "stress7_keep0.3.x.db"
    assert ev.thin_draw(p, 7) is True
    kept = sorted(x.name for x in (p.data / "products").iterdir())
    dates = {n.split("_")[3] for n in kept}
    assert 40 <= len(dates) <= 80  # 30 % of 200 acquisitions
    # both levels of a kept acquisition go together
    twins = [n for n in kept if "_L1TP_" in n]
    assert twins and all(n.replace("_L1TP_", "_L2SP_") in kept for n in twins)
    assert ev.thin_draw(p, 7) is False  # complete and newer than the simulation: kept
    shutil.rmtree(p.data)
    assert ev.thin_draw(p, 7) is True
    assert sorted(x.name for x in (p.data / "products").iterdir()) == kept
    assert ev.Paths.of(tmp_path, 7, "x").data is None
