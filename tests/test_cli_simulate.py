"""Tests of ``kaesong-thermal simulate``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import kaesong_thermal as kt
from kaesong_thermal.cli import main
from kaesong_thermal.simulation import synthetic_footprints


@pytest.fixture()
def footprint_file(tmp_path: Path) -> Path:
    path = tmp_path / "fp.geojson"
    synthetic_footprints().reset_index().to_file(path, driver="GeoJSON")
    return path


def test_simulate_writes_products_and_truth(
    tmp_path: Path, footprint_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim"
    code = main(
        [
            "simulate",
            str(out),
            "--start",
            "2025-11-01",
            "--end",
            "2025-11-16",
            "--footprints",
            str(footprint_file),
            "--seed",
            "4",
            "--tar",
            "--level",
            "both",
        ]
    )
    assert code == 0
    tars = sorted((out / "products").glob("*.tar"))
    # 2025-11-05 (Landsat 8) and 2025-11-13 (Landsat 9), L1 and L2 each
    assert [t.name[:25] for t in tars] == [
        "LC08_L1TP_116034_20251105",
        "LC08_L2SP_116034_20251105",
        "LC09_L1TP_116034_20251113",
        "LC09_L2SP_116034_20251113",
    ]
    assert kt.open_scene(tars[1]).metadata.level == "L2"
    truth = pd.read_csv(out / "truth.csv")
    assert len(truth) == 4 * 14
    printed = capsys.readouterr().out
    assert "simulated 4 products" in printed and "truth.csv" in printed


def test_simulate_bad_dates_exit_1(
    tmp_path: Path, footprint_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "simulate",
            str(tmp_path),
            "--start",
            "2025-02-01",
            "--end",
            "2025-01-01",
            "--footprints",
            str(footprint_file),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "after" in err and len(err.strip().splitlines()) == 1


def test_simulate_unknown_sensor_exit_1(
    tmp_path: Path, footprint_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "simulate",
                str(tmp_path),
                "--sensors",
                "landsat-3",
                "--footprints",
                str(footprint_file),
            ]
        )
        == 1
    )
    assert "landsat-3" in capsys.readouterr().err


def test_simulate_bad_level_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(tmp_path), "--level", "L3"])
    assert exc.value.code == 2
