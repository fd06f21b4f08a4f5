"""``kaesong-thermal info``: metadata and QA summary; one-line errors with exit 1 on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from _landsat_factories import (
    L2_ID,
    LC8_ID,
    add_raw_member,
    l2_dir,
    lc8_dir,
    link_files,
    make_stac_item,
)
from rasterio.transform import from_origin

from kaesong_thermal.cli import main


def test_info_json_level2(fixtures_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["info", str(l2_dir(fixtures_dir)), "--json", "--max-sigma-k", "5"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["scene_id"] == L2_ID
    assert (record["sensor"], record["level"], record["collection"]) == ("LC08", "L2", "02")
    assert record["acquired"] == "2019-12-01T15:13:51.861099+00:00"
    assert (record["wrs_path"], record["wrs_row"], record["cloud_cover"]) == (8, 59, 81.02)
    assert record["crs"] == "EPSG:32618" and record["day"] is True
    qa = record["qa"]
    assert qa["pixels"] == 512 * 512
    assert 0.0 < qa["valid_fraction"] < 0.12  # ~81 % cloud plus shadow, cirrus, uncertainty
    assert qa["cloud_fraction"] > 0.8


def test_info_text_night_and_level1(fixtures_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(lc8_dir(fixtures_dir) / f"{LC8_ID}_MTL.txt")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(LC8_ID)
    assert "thermal_band       B10" in out
    # 1453 fill pixels of 727 x 727; no QA_PIXEL: all image pixels valid
    assert "fill_fraction      0.0027" in out and "valid_fraction     1.0000" in out


def _missing_mtl(tmp: Path, fx: Path) -> Path:
    return link_files(lc8_dir(fx), tmp / "p", [f"{LC8_ID}_B10.TIF"])


def _no_constants(tmp: Path, fx: Path) -> Path:
    folder = link_files(lc8_dir(fx), tmp / "p", [f"{LC8_ID}_B10.TIF"])
    text = (lc8_dir(fx) / f"{LC8_ID}_MTL.txt").read_text()
    (folder / f"{LC8_ID}_MTL.txt").write_text(text.replace("RADIANCE_MULT_BAND_10", "X_10"))
    return folder


def _truncated(tmp: Path, fx: Path) -> Path:
    folder = tmp / "p"
    folder.mkdir()
    shutil.copy(lc8_dir(fx) / f"{LC8_ID}_MTL.txt", folder)
    data = (lc8_dir(fx) / f"{LC8_ID}_B10.TIF").read_bytes()
    (folder / f"{LC8_ID}_B10.TIF").write_bytes(data[: len(data) // 3])
    return folder


def _other_product(tmp: Path, fx: Path) -> Path:
    folder = link_files(lc8_dir(fx), tmp / "p", [f"{LC8_ID}_MTL.txt"])
    name = "LT05_L1TP_040028_20060706_20160909_01_T1_B6.TIF"
    link_files(fx / "satellite_image/lt5_image", folder, [name])
    return folder / name


def _non_landsat(tmp: Path, fx: Path) -> Path:
    path = tmp / "dem.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=2,
        height=2,
        count=1,
        dtype="uint8",
        crs="EPSG:32652",
        transform=from_origin(0, 0, 30, 30),
    ) as ds:
        ds.write(np.zeros((1, 2, 2), dtype=np.uint8))
    return path


def _empty_tar(tmp: Path, fx: Path) -> Path:
    path = tmp / "empty.tar"
    with tarfile.open(path, "w"):
        pass
    return path


def _not_tar(tmp: Path, fx: Path) -> Path:
    path = tmp / "notatar.tar"
    path.write_bytes(b"\x00\x01garbage" * 100)
    return path


def _dotdot_member(tmp: Path, fx: Path) -> Path:
    return add_raw_member(tmp / "evil.tar", "../../LC08_X_MTL.txt", b"GROUP = A\n")


def _absolute_member(tmp: Path, fx: Path) -> Path:
    return add_raw_member(tmp / "abs.tar", "/etc/LC08_X_MTL.txt", b"GROUP = A\n")


def _stac_missing(tmp: Path, fx: Path) -> Path:
    item = make_stac_item(
        tmp / "item.json",
        l2_dir(fx),
        {"mtl.txt": f"{L2_ID}_MTL.txt", "lwir11": f"{L2_ID}_ST_B10.TIF"},
    )
    item.write_text(item.read_text().replace(f"{L2_ID}_ST_B10.TIF", "missing_ST_B10.TIF"))
    return item


CASES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "missing MTL": (_missing_mtl, "no Landsat MTL"),
    "no thermal constants": (_no_constants, f"{LC8_ID}_MTL.txt: MTL lacks"),
    "truncated GeoTIFF": (_truncated, f"{LC8_ID}_B10.TIF: cannot"),
    "different products": (_other_product, "_B6.TIF: band and MTL from different products"),
    "non-Landsat GeoTIFF": (_non_landsat, "dem.tif: not a file of a Landsat product"),
    "empty tar": (_empty_tar, "empty.tar: empty tar archive"),
    "not a tar": (_not_tar, "notatar.tar: not a tar archive"),
    "member with ..": (_dotdot_member, "evil.tar: archive member '../../LC08_X_MTL.txt'"),
    "absolute member": (_absolute_member, "abs.tar: archive member '/etc/LC08_X_MTL.txt'"),
    "STAC asset missing": (_stac_missing, "missing_ST_B10.TIF: file of"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_one_line_exit_1(
    case: str, tmp_path: Path, fixtures_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build, message = CASES[case]
    target = build(tmp_path, fixtures_dir)
    assert main(["-q", "info", str(target)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("kaesong-thermal: error: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err and "internal error" not in captured.err


def test_console_script_bad_tar_no_traceback(tmp_path: Path) -> None:
    target = _not_tar(tmp_path, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "kaesong_thermal", "info", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"kaesong-thermal: error: {target}: not a tar archive"
    ]
