"""Tests of ``kaesong-thermal footprints``: summary, JSON output and exit codes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from shapely.geometry import box

from kaesong_thermal.cli import main
from kaesong_thermal.footprints import load_footprints

# Three UTM 52N (EPSG:32652) rectangles inside the complex: 10,000, 3,000 and 400 m2 on the grid.
E0, N0 = 291_300.0, 4_201_000.0


def frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"building_id": ["a", "b", "c"], "name": ["A", "B", "C"]},
        geometry=[
            box(E0, N0, E0 + 100, N0 + 100),
            box(E0 + 300, N0, E0 + 360, N0 + 50),
            box(E0, N0 + 300, E0 + 20, N0 + 320),
        ],
        crs="EPSG:32652",
    )


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["-q", "footprints", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run_cli(capsys, *argv, "--json")
    return code, json.loads(out)


def test_shipped_summary(capsys: pytest.CaptureFixture[str]) -> None:
    count = len(load_footprints())
    code, out, _ = run_cli(capsys)
    assert code == 0
    assert f"buildings:  {count}\n" in out
    assert "CRS:        EPSG:4326\n" in out
    assert "problems:   none\n" in out
    assert out.endswith("status:     OK\n")


def test_shipped_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys)
    assert code == 0
    assert data["ok"] is True and data["problems"] == []
    assert data["count"] == len(load_footprints()) >= 25
    assert data["crs"] == "EPSG:4326"
    assert data["area_min_m2"] < 900.0 < 10_000.0 < data["area_max_m2"] <= 15_000.0


def test_utm_geopackage_areas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "roofs.gpkg"
    frame().to_file(path, driver="GPKG")
    code, data = run_json(capsys, str(path))
    assert code == 0
    assert data["count"] == 3 and data["crs"] == "EPSG:32652" and data["layer"] == "roofs"
    # ground areas are smaller than grid areas by k^2 (k = 1.000133 at 126.6 E, 37.9 N)
    assert data["area_max_m2"] == pytest.approx(10_000.0 / 1.000133**2, abs=0.5)
    assert data["area_min_m2"] == pytest.approx(400.0 / 1.000133**2, abs=0.05)
    code, out, _ = run_cli(capsys, str(path))
    assert "area:       400 m2 to 9,997 m2 (median 2,999 m2, total 13,396 m2)" in out


def test_bad_feature_exits_1_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = frame()
    bad.loc[1, "geometry"] = None
    path = tmp_path / "bad.gpkg"
    bad.to_file(path, driver="GPKG")
    code, out, _ = run_cli(capsys, str(path))
    assert code == 1
    assert "  error: feature 'b' (index 1): null geometry\n" in out
    assert "problems:   1 error(s), 0 warning(s)" in out
    assert out.endswith("status:     INVALID\n")
    code, data = run_json(capsys, str(path))
    assert code == 1 and data["ok"] is False and data["n_errors"] == 1
    assert data["problems"][0]["building_id"] == "b" and data["problems"][0]["index"] == 1


def test_assume_crs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "noprj.shp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # building_id is cut to building_i, restored on reading
        frame().to_file(path, driver="ESRI Shapefile")
    path.with_suffix(".prj").unlink()
    code, out, _ = run_cli(capsys, str(path))
    assert code == 1
    assert "error: layer has no CRS" in out and "CRS:        none" in out
    code, data = run_json(capsys, str(path), "--assume-crs", "32652")
    assert code == 0 and data["crs"] == "EPSG:32652" and data["count"] == 3


def test_layer_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.gpkg"
    frame().to_file(path, layer="roofs", driver="GPKG")
    frame().iloc[:2].to_file(path, layer="plots", driver="GPKG")
    code, out, err = run_cli(capsys, str(path))
    assert code == 1 and out == ""
    assert f"{path}: 2 layers (" in err and "--layer" in err
    code, data = run_json(capsys, str(path), "--layer", "plots")
    assert code == 0 and data["count"] == 2 and data["layer"] == "plots"


def test_generate_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dup = frame()
    dup["building_id"] = ["a", "a", None]
    path = tmp_path / "dup.gpkg"
    dup.to_file(path, driver="GPKG")
    code, data = run_json(capsys, str(path))
    assert code == 1
    assert [p["message"] for p in data["problems"]] == [
        "feature 'a' (index 1): duplicate building_id (first at index 0)",
        "feature at index 2: missing building_id",
    ]
    code, data = run_json(capsys, str(path), "--generate-ids")
    assert code == 0 and data["n_warnings"] == 2
    assert [p["building_id"] for p in data["problems"]] == ["a-2", "c"]


def test_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.geojson"
    code, out, err = run_cli(capsys, str(missing))
    assert code == 1 and out == ""
    assert f"kaesong-thermal: error: {missing}: footprint file not found" in err
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    code, _, err = run_cli(capsys, str(text))
    assert code == 1 and f"{text}: not a readable vector file" in err
