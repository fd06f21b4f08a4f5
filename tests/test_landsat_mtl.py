"""MTL parsing: every real fixture MTL, all three forms, all key layouts."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from kaesong_thermal.errors import MetadataError
from kaesong_thermal.landsat.mtl import parse_acquired, parse_mtl, read_mtl

THERMAL = {"LC08": "B10", "LC09": "B10", "LE07": "B6_VCID_1", "LT05": "B6", "LT04": "B6"}


def all_mtls(fixtures_dir: Path) -> list[Path]:
    found = sorted(fixtures_dir.rglob("*_MTL.*")) + sorted((fixtures_dir / "satpy").glob("*.xml"))
    return [p for p in found if p.suffix in (".txt", ".json", ".xml")]


def test_every_fixture_mtl_parses(fixtures_dir: Path) -> None:
    paths = all_mtls(fixtures_dir)
    assert len(paths) == 26
    sensors, forms, collections = set(), set(), set()
    for path in paths:
        mtl = read_mtl(path)
        sensors.add(mtl.sensor)
        forms.add(mtl.form)
        collections.add(mtl.collection)
        assert mtl.acquired.tzinfo is timezone.utc
        assert 1 <= mtl.wrs_path <= 233 and 1 <= mtl.wrs_row <= 248
        assert mtl.level in ("L1", "L2")
        band = THERMAL[mtl.sensor]
        if mtl.number(f"RADIANCE_MULT_BAND_{band[1:]}") not in (None, 0.0):
            constants = mtl.thermal_constants(band)
            assert 400 < constants.k1 < 900 and 1100 < constants.k2 < 1400
        if mtl.level == "L2":
            scaling = mtl.st_scaling("ST_" + ("B10" if mtl.sensor[:2] == "LC" else "B6"))
            assert (scaling.mult_k, scaling.add_k) == (0.00341802, 149.0)
    assert sensors == {"LC08", "LC09", "LE07", "LT05", "LT04"}
    assert forms == {"txt", "json", "xml"}
    assert collections == {"02", "01", "pre"}


@pytest.mark.parametrize(
    "stem, forms",
    [
        (
            "stactools-landsat/LC08_L2SP_008059_20191201_20200825_02_T1/"
            "LC08_L2SP_008059_20191201_20200825_02_T1_MTL",
            ("txt", "json", "xml"),
        ),
        (
            "stactools-landsat/mtl_examples/LC09_L2SP_010065_20220129_20220131_02_T1_MTL",
            ("txt", "xml"),
        ),
        ("rio-toa/LC80100202015018LGN00_MTL", ("txt", "json")),
    ],
)
def test_same_values_whichever_form(fixtures_dir: Path, stem: str, forms: tuple[str, ...]) -> None:
    parsed = [read_mtl(fixtures_dir / f"{stem}.{form}") for form in forms]
    keys = (
        "RADIANCE_MULT_BAND_10",
        "RADIANCE_ADD_BAND_10",
        "K1_CONSTANT_BAND_10",
        "K2_CONSTANT_BAND_10",
        "SUN_ELEVATION",
        "CLOUD_COVER",
    )
    first = parsed[0]
    for other in parsed[1:]:
        assert other.product_id == first.product_id
        assert other.acquired == first.acquired
        assert other.level == first.level and other.sensor == first.sensor
        for key in keys:
            assert other.number(key) == first.number(key), key
        if first.level == "L2":
            assert other.st_scaling("ST_B10") == first.st_scaling("ST_B10")
            assert other.file_name("BAND_ST_B10") == first.file_name("BAND_ST_B10")


def test_landsat9_constants_differ_from_landsat8(fixtures_dir: Path) -> None:
    l9 = read_mtl(
        fixtures_dir / "stactools-landsat/mtl_examples/"
        "LC09_L2SP_010065_20220129_20220131_02_T1_MTL.xml"
    ).thermal_constants("B10")
    l8 = read_mtl(
        fixtures_dir / "xlandsat/LC08_L1TP_204023_20200927_20201006_02_T1_MTL.txt"
    ).thermal_constants("B10")
    assert (l9.radiance_mult, l9.radiance_add, l9.k1, l9.k2) == (3.8e-4, 0.1, 799.0284, 1329.2405)
    assert (l8.radiance_mult, l8.radiance_add, l8.k1, l8.k2) == (3.342e-4, 0.1, 774.8853, 1321.0789)


def test_c2_level2_identity_is_the_level2_product(fixtures_dir: Path) -> None:
    mtl = read_mtl(fixtures_dir / "satpy/oli_tirs_l2_metadata.xml")
    # the LEVEL1_PROCESSING_RECORD group holds the Level-1 id and L1 file names: never used
    assert mtl.product_id == "LC09_L2SP_029030_20240616_20240617_02_T1"
    assert mtl.file_name("BAND_10") is None
    assert mtl.file_name("BAND_ST_B10") == "LC09_L2SP_029030_20240616_20240617_02_T1_ST_B10.TIF"
    assert (mtl.sensor, mtl.level, mtl.collection) == ("LC09", "L2", "02")


def test_night_scene_reports_day_false(fixtures_dir: Path) -> None:
    night = read_mtl(fixtures_dir / "satpy/oli_tirs_l1_metadata.xml")
    assert night.sun_elevation == pytest.approx(-41.46228969)
    assert night.day is False
    assert read_mtl(fixtures_dir / "satpy/etm_l1_metadata.xml").day is True


def test_pre_collection_and_collection1_layouts(fixtures_dir: Path) -> None:
    pre = read_mtl(fixtures_dir / "satellite_image/lc8_image/LC80400282014193LGN00_MTL.txt")
    assert (pre.product_id, pre.collection, pre.processing_level) == (
        "LC80400282014193LGN00",
        "pre",
        "L1T",
    )
    c = pre.thermal_constants("B10")
    assert (c.radiance_mult, c.radiance_add, c.k1, c.k2) == (3.342e-4, 0.1, 774.89, 1321.08)
    c1 = read_mtl(
        fixtures_dir / "satellite_image/le7_image/LE07_L1TP_039028_20100702_20160915_01_T1_MTL.txt"
    )
    assert (c1.collection, c1.sensor, c1.wrs_path, c1.wrs_row) == ("01", "LE07", 39, 28)
    v1 = c1.thermal_constants("B6_VCID_1")
    assert (v1.radiance_mult, v1.radiance_add, v1.k1, v1.k2, v1.dn_max) == (
        0.067087,
        -0.06709,
        666.09,
        1282.71,
        255,
    )
    # rio-toa's older JSON carries numbers, not strings: same values as its ODL twin
    js = read_mtl(fixtures_dir / "rio-toa/LC80460282016177LGN00_MTL.json")
    assert js.thermal_constants("B10").k1 == 774.8853
    assert js.wrs_path == 46 and js.cloud_cover == 11.3


def test_acquired_truncates_seven_digit_fraction() -> None:
    assert parse_acquired("2019-12-01", '"15:13:51.8610990Z"') == datetime(
        2019, 12, 1, 15, 13, 51, 861099, tzinfo=timezone.utc
    )
    assert parse_acquired("2014-07-12", "18:18:49.9576939Z").microsecond == 957693
    with pytest.raises(MetadataError, match=r"SCENE_CENTER_TIME"):
        parse_acquired("2014-07-12", "noon")


def test_zero_thermal_gain_is_missing_constants(fixtures_dir: Path) -> None:
    # real pre-collection MTL whose band-10 gain is 0.0 (unusable thermal calibration)
    path = fixtures_dir / "rio-toa/LC80100202015018LGN00_MTL.txt"
    with pytest.raises(
        MetadataError, match=r"LC80100202015018LGN00_MTL.txt.*RADIANCE_MULT_BAND_10"
    ):
        read_mtl(path).thermal_constants("B10")


def test_missing_thermal_constant_is_named(tmp_path: Path, fixtures_dir: Path) -> None:
    text = (fixtures_dir / "satellite_image/lc8_image/LC80400282014193LGN00_MTL.txt").read_text()
    cut = "\n".join(line for line in text.splitlines() if "K2_CONSTANT_BAND_10" not in line)
    mtl = parse_mtl(cut, "cut_MTL.txt")
    with pytest.raises(MetadataError, match=r"cut_MTL.txt: .*K2_CONSTANT_BAND_10"):
        mtl.thermal_constants("B10")


@pytest.mark.parametrize(
    "content, message",
    [
        ("hello world", "not a Landsat MTL"),
        ("{not json", "not valid JSON"),
        ("<LANDSAT_METADATA_FILE><PRODUCT_CONTENTS>", "not valid XML"),
        ('{"something": {"A": "1"}}', "not a Landsat MTL"),
        ("GROUP = X\n  just words\nEND_GROUP = X\nEND\n", "line 2"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><LANDSAT_METADATA_FILE/>', "DOCTYPE"),
    ],
)
def test_malformed_mtl(content: str, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_mtl(content, "bad_MTL.txt")


def test_unreadable_mtl_names_file(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"nothing_MTL.txt"):
        read_mtl(tmp_path / "nothing_MTL.txt")
