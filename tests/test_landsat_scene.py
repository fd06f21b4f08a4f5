"""Scene discovery, radiometry against expected values, windows, equivalence of inputs, bad input."""

from __future__ import annotations

import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from _landsat_factories import (
    L2_ID,
    L2_SUFFIXES,
    LC8_ID,
    add_raw_member,
    l2_dir,
    lc8_dir,
    link_files,
    make_stac_item,
    make_tar,
)
from rasterio.transform import from_origin

from kaesong_thermal.errors import MetadataError, ProductError, RasterReadError
from kaesong_thermal.landsat import Scene, ThermalWindow, open_scene
from kaesong_thermal.landsat import qa as qa_mod

L2_NAMES = [f"{L2_ID}_{s}" for s in L2_SUFFIXES]
LC8_NAMES = [f"{LC8_ID}_MTL.txt", f"{LC8_ID}_B10.TIF", f"{LC8_ID}_B11.TIF"]


def read_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


# ------------------------------------------------------------------------ radiometry
def test_lc8_band10_matches_expected_brightness_temperature(fixtures_dir: Path) -> None:
    folder = lc8_dir(fixtures_dir)
    expected = read_band(folder / "LC8_brightemp_B10.TIF")
    with open_scene(folder) as scene:
        assert scene.metadata.thermal_band == "B10" and scene.metadata.level == "L1"
        window = scene.read_kelvin()
    assert window.kelvin.dtype == np.float32 and window.shape == (727, 727)
    fill = expected == 0.0
    assert fill.sum() == 1453  # DN 0 pixels of the subset
    assert np.array_equal(window.valid, ~fill)  # no QA_PIXEL: validity is fill only
    assert np.isnan(window.kelvin[fill]).all()
    assert np.abs(window.kelvin[~fill] - expected[~fill]).max() < 1e-3
    assert window.kelvin[300, 300] == pytest.approx(298.025726, abs=1e-3)
    assert window.sigma_k is None and not window.cloud.any()


def test_band11_readable_only_on_request(fixtures_dir: Path) -> None:
    folder = lc8_dir(fixtures_dir)
    expected = read_band(folder / "LC8_brightemp_B11.TIF")
    with open_scene(folder) as scene:
        default = scene.read_kelvin()
        b11 = scene.read_kelvin(band="B11")
    assert default.band == "B10" and b11.band == "B11"
    ok = expected > 0
    assert np.abs(b11.kelvin[ok] - expected[ok]).max() < 1e-3
    assert not np.allclose(b11.kelvin[ok], default.kelvin[ok])


def test_landsat5_and_landsat7_spot_values(fixtures_dir: Path) -> None:
    with open_scene(fixtures_dir / "satellite_image/lt5_image") as tm:
        assert (tm.metadata.sensor, tm.metadata.thermal_band) == ("LT05", "B6")
        assert tm.read_kelvin().kelvin[150, 150] == pytest.approx(298.55, abs=0.01)
    with open_scene(fixtures_dir / "satellite_image/le7_image") as etm:
        assert (etm.metadata.sensor, etm.metadata.thermal_band) == ("LE07", "B6_VCID_1")
        assert etm.read_kelvin().kelvin[300, 300] == pytest.approx(259.98, abs=0.01)
        # hand computation with the MTL's VCID_1 constants
        dn = int(read_band(Path(etm.files["B6_VCID_1"].gdal_path))[300, 300])
        radiance = 0.067087 * dn - 0.06709
        assert etm.read_kelvin().kelvin[300, 300] == pytest.approx(
            1282.71 / np.log(666.09 / radiance + 1), abs=1e-4
        )
        assert etm.read_kelvin(band="B6_VCID_2").band == "B6_VCID_2"


def test_level2_kelvin_and_qa_masks(fixtures_dir: Path) -> None:
    folder = l2_dir(fixtures_dir)
    dn = read_band(folder / f"{L2_ID}_ST_B10.TIF")
    qa_pixel = read_band(folder / f"{L2_ID}_QA_PIXEL.TIF")
    st_qa = read_band(folder / f"{L2_ID}_ST_QA.TIF")
    with open_scene(folder) as scene:
        meta = scene.metadata
        assert (meta.level, meta.sensor, meta.thermal_band, meta.collection) == (
            "L2",
            "LC08",
            "ST_B10",
            "02",
        )
        window = scene.read_kelvin(max_sigma_k=None)
        default = scene.read_kelvin()  # default ceiling 15 K
        strict = scene.read_kelvin(max_sigma_k=2.5)
        loose = scene.read_kelvin(max_sigma_k=5.0)
    image = (qa_pixel & 1) == 0
    cloudy = (qa_pixel & 0b11110) != 0
    expected_valid = image & ~cloudy & (dn != 0)
    assert np.array_equal(window.valid, expected_valid)
    expected_k = dn.astype(np.float64) * 0.00341802 + 149.0
    assert np.allclose(window.kelvin[expected_valid], expected_k[expected_valid], atol=1e-4)
    # the ~81 % cloud of the scene (MTL CLOUD_COVER 81.02) is all masked
    cloud_bit = (qa_pixel & (1 << 3)) != 0
    assert 0.80 < cloud_bit[image].mean() < 0.82
    assert not window.valid[cloud_bit].any()
    assert np.array_equal(window.cloud, cloudy & image)
    # ST_QA is the 1-sigma uncertainty x 0.01 K; the ceiling applies to it
    assert window.sigma_k is not None
    assert np.allclose(window.sigma_k[st_qa != -9999], st_qa[st_qa != -9999] * 0.01)
    assert np.array_equal(loose.valid, expected_valid & (st_qa != -9999) & (st_qa <= 500))
    assert 0 < loose.valid.sum() < expected_valid.sum()
    # this humid tropical scene has no clear pixel under 2.5 K uncertainty
    known = expected_valid & (st_qa != -9999)
    assert st_qa[known].min() > 250 and not strict.valid.any()
    # ST_QA is a weight, not a mask: the default keeps every QA-clear pixel of it (3.2-13.3 K)
    assert st_qa[known].max() < 1500
    assert np.array_equal(default.valid, known)
    assert default.valid.sum() == known.sum() > 0


# ------------------------------------------------------------------------ windows
def test_window_snaps_outward_and_reads_only_it(fixtures_dir: Path) -> None:
    with open_scene(lc8_dir(fixtures_dir)) as scene:
        full = scene.read_kelvin()
        t = scene.transform
        # bounds strictly inside pixels (col 10.5 .. 20.2, row 30.3 .. 40.9) snap to 10..21, 30..41
        left, right = t.c + 10.5 * 30, t.c + 20.2 * 30
        top, bottom = t.f - 30.3 * 30, t.f - 40.9 * 30
        win = scene.read_kelvin((left, bottom, right, top))
    assert win.shape == (11, 11)
    assert win.transform.c == t.c + 10 * 30 and win.transform.f == t.f - 30 * 30
    assert np.array_equal(win.kelvin, full.kelvin[30:41, 10:21], equal_nan=True)
    b = win.bounds
    assert b.left <= left and b.right >= right and b.bottom <= bottom and b.top >= top
    assert isinstance(win, ThermalWindow) and win.scene_id == LC8_ID
    assert win.acquired == scene.metadata.acquired


def test_window_on_pixel_edges_is_exact(fixtures_dir: Path) -> None:
    with open_scene(lc8_dir(fixtures_dir)) as scene:
        t = scene.transform
        win = scene.read_kelvin((t.c + 300, t.f - 600, t.c + 600, t.f - 300))
    assert win.shape == (10, 10)


def test_window_partly_outside_is_invalid_not_error(fixtures_dir: Path) -> None:
    with open_scene(lc8_dir(fixtures_dir)) as scene:
        full = scene.read_kelvin()
        b = scene.bounds
        win = scene.read_kelvin((b.left - 300, b.top - 600, b.left + 300, b.top + 150))
        away = scene.read_kelvin((b.right + 1e4, b.top + 1e4, b.right + 2e4, b.top + 2e4))
    assert win.shape == (25, 20)
    assert not win.valid[:5].any() and not win.valid[:, :10].any()
    assert np.array_equal(win.kelvin[5:, 10:], full.kelvin[:20, :10], equal_nan=True)
    assert not away.valid.any() and np.isnan(away.kelvin).all()


def test_bounds_in_another_crs(fixtures_dir: Path) -> None:
    with open_scene(lc8_dir(fixtures_dir)) as scene:
        from rasterio.warp import transform_bounds

        b = scene.bounds
        inner = (b.left + 3000, b.bottom + 3000, b.left + 6000, b.bottom + 6000)
        lonlat = transform_bounds(scene.crs, "EPSG:4326", *inner)
        win = scene.read_kelvin(lonlat, crs="EPSG:4326")
    wb = win.bounds
    assert wb.left <= inner[0] and wb.right >= inner[2] and wb.bottom <= inner[1]
    assert wb.top >= inner[3]
    assert win.shape[0] < 110 and win.shape[1] < 110  # not the whole scene


# ------------------------------------------------------------------------ inputs
def test_directory_tar_mtl_stac_and_band_give_identical_arrays(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    src = l2_dir(fixtures_dir)
    tar = make_tar(tmp_path / f"{L2_ID}.tar", src, L2_NAMES)
    (tmp_path / "stac").mkdir()
    item = make_stac_item(
        tmp_path / "stac" / "item.json",
        src,
        {
            "mtl.txt": f"{L2_ID}_MTL.txt",
            "lwir11": f"{L2_ID}_ST_B10.TIF",
            "qa": f"{L2_ID}_ST_QA.TIF",
            "qa_pixel": f"{L2_ID}_QA_PIXEL.TIF",
            "qa_radsat": f"{L2_ID}_QA_RADSAT.TIF",
        },
        relative=True,
    )
    inputs = [
        src,
        tar,
        src / f"{L2_ID}_MTL.json",
        src / f"{L2_ID}_MTL.xml",
        item,
        src / f"{L2_ID}_QA_PIXEL.TIF",
    ]
    windows = []
    checksums = set()
    for path in inputs:
        with open_scene(path) as scene:
            assert set(scene.files) == {"ST_B10", "ST_QA", "QA_PIXEL", "QA_RADSAT"}
            windows.append(scene.read_kelvin(max_sigma_k=5.0))
            checksums.add(scene.thermal_checksum())
            assert scene.metadata == open_scene(src).metadata
    for window in windows[1:]:
        assert np.array_equal(window.kelvin, windows[0].kelvin, equal_nan=True)
        assert np.array_equal(window.valid, windows[0].valid)
        assert window.sigma_k is not None and windows[0].sigma_k is not None
        assert np.array_equal(window.sigma_k, windows[0].sigma_k, equal_nan=True)
        assert window.transform == windows[0].transform
    import hashlib

    expected = hashlib.sha256((src / f"{L2_ID}_ST_B10.TIF").read_bytes()).hexdigest()
    assert checksums == {expected}


def test_tar_is_read_in_place(tmp_path: Path, fixtures_dir: Path) -> None:
    tar = make_tar(tmp_path / "bundle.tar", lc8_dir(fixtures_dir), LC8_NAMES)
    before = sorted(p.name for p in tmp_path.iterdir())
    with open_scene(tar) as scene:
        assert scene.files["B10"].gdal_path.startswith("/vsitar/")
        k = scene.read_kelvin().kelvin
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert k[300, 300] == pytest.approx(298.025726, abs=1e-3)


def test_stac_item_with_official_keys_and_absolute_hrefs(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    src = l2_dir(fixtures_dir)
    item = make_stac_item(
        tmp_path / "item.json",
        src,
        {
            "MTL.xml": f"{L2_ID}_MTL.xml",
            "ST_B10": f"{L2_ID}_ST_B10.TIF",
            "ST_QA": f"{L2_ID}_ST_QA.TIF",
            "QA_PIXEL": f"{L2_ID}_QA_PIXEL.TIF",
        },
    )
    with open_scene(item) as scene:
        assert set(scene.files) == {"ST_B10", "ST_QA", "QA_PIXEL"}
        assert scene.mtl.form == "xml"


def test_level2_preferred_when_directory_holds_two_products(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    both = link_files(l2_dir(fixtures_dir), tmp_path / "both", L2_NAMES)
    link_files(lc8_dir(fixtures_dir), both, LC8_NAMES)
    with open_scene(both) as scene:
        assert scene.metadata.level == "L2" and scene.scene_id == L2_ID
    # the L1 product is still reachable through its own MTL or band
    with open_scene(both / f"{LC8_ID}_B10.TIF") as scene:
        assert scene.scene_id == LC8_ID


def test_scene_pickles_and_reopens(tmp_path: Path, fixtures_dir: Path) -> None:
    tar = make_tar(tmp_path / "p.tar", l2_dir(fixtures_dir), L2_NAMES)
    scene = open_scene(tar)
    first = scene.read_kelvin(max_sigma_k=None)
    clone = pickle.loads(pickle.dumps(scene))
    assert isinstance(clone, Scene) and clone.metadata == scene.metadata
    again = clone.read_kelvin(max_sigma_k=None)
    assert np.array_equal(first.kelvin, again.kelvin, equal_nan=True)
    scene.close()
    assert np.array_equal(scene.read_kelvin(max_sigma_k=None).valid, first.valid)  # reopens
    scene.close()
    clone.close()


def test_qa_summary_fractions(fixtures_dir: Path) -> None:
    qa_pixel = read_band(l2_dir(fixtures_dir) / f"{L2_ID}_QA_PIXEL.TIF")
    with open_scene(l2_dir(fixtures_dir)) as scene:
        summary = scene.qa_summary(max_sigma_k=None)
        window = scene.read_kelvin(max_sigma_k=None)
    assert summary["pixels"] == 512 * 512
    assert summary["valid_fraction"] == window.valid.sum() / summary["image_pixels"]
    dn = read_band(l2_dir(fixtures_dir) / f"{L2_ID}_ST_B10.TIF")
    image = ~qa_mod.fill_mask(qa_pixel) & (dn != 0)
    assert summary["image_pixels"] == image.sum()
    assert summary["fill_fraction"] == pytest.approx(1 - image.mean())
    assert summary["cloud_fraction"] == pytest.approx(qa_mod.cloud_mask(qa_pixel)[image].mean())


# ------------------------------------------------------------------------ bad input
def test_missing_mtl(tmp_path: Path, fixtures_dir: Path) -> None:
    folder = link_files(lc8_dir(fixtures_dir), tmp_path / "p", [f"{LC8_ID}_B10.TIF"])
    with pytest.raises(ProductError, match=r"/p: no Landsat MTL"):
        open_scene(folder)
    with pytest.raises(ProductError, match=rf"{LC8_ID}_B10.TIF: not a file of a Landsat product"):
        open_scene(folder / f"{LC8_ID}_B10.TIF")
    with pytest.raises(ProductError, match=r"nowhere: no such file"):
        open_scene(tmp_path / "nowhere")


def test_mtl_without_thermal_constants(tmp_path: Path, fixtures_dir: Path) -> None:
    folder = link_files(lc8_dir(fixtures_dir), tmp_path / "p", [f"{LC8_ID}_B10.TIF"])
    text = (lc8_dir(fixtures_dir) / f"{LC8_ID}_MTL.txt").read_text()
    kept = [ln for ln in text.splitlines() if "K1_CONSTANT" not in ln and "K2_CONSTANT" not in ln]
    (folder / f"{LC8_ID}_MTL.txt").write_text("\n".join(kept))
    with pytest.raises(
        MetadataError, match=rf"{LC8_ID}_MTL.txt: MTL lacks the thermal constant K1"
    ):
        open_scene(folder)


def test_corrupt_and_truncated_geotiff(tmp_path: Path, fixtures_dir: Path) -> None:
    src = lc8_dir(fixtures_dir)
    truncated = tmp_path / "t"
    truncated.mkdir()
    shutil.copy(src / f"{LC8_ID}_MTL.txt", truncated)
    data = (src / f"{LC8_ID}_B10.TIF").read_bytes()
    (truncated / f"{LC8_ID}_B10.TIF").write_bytes(data[: len(data) // 2])
    with pytest.raises(RasterReadError, match=rf"{LC8_ID}_B10.TIF: cannot"):
        open_scene(truncated).read_kelvin()
    garbage = tmp_path / "g"
    garbage.mkdir()
    shutil.copy(src / f"{LC8_ID}_MTL.txt", garbage)
    (garbage / f"{LC8_ID}_B10.TIF").write_bytes(b"II*\x00" + b"\x17" * 4000)
    with pytest.raises(RasterReadError, match=rf"{LC8_ID}_B10.TIF: cannot open"):
        open_scene(garbage)


def test_band_and_mtl_from_different_products(tmp_path: Path, fixtures_dir: Path) -> None:
    # a band of another product next to an MTL
    folder = link_files(lc8_dir(fixtures_dir), tmp_path / "a", [f"{LC8_ID}_MTL.txt"])
    le7 = fixtures_dir / "satellite_image/le7_image"
    name = "LE07_L1TP_039028_20100702_20160915_01_T1_B6_VCID_1.TIF"
    link_files(le7, folder, [name])
    with pytest.raises(ProductError, match=rf"{name}: band and MTL from different products"):
        open_scene(folder / name)
    # a band file carrying the MTL's name but holding another scene (other UTM zone)
    other = tmp_path / "b"
    other.mkdir()
    shutil.copy(l2_dir(fixtures_dir) / f"{L2_ID}_MTL.txt", other)
    (other / f"{L2_ID}_ST_B10.TIF").symlink_to(lc8_dir(fixtures_dir) / f"{LC8_ID}_B10.TIF")
    with pytest.raises(ProductError, match=rf"{L2_ID}_ST_B10.TIF: band and MTL from different"):
        open_scene(other)


def test_non_landsat_geotiff(tmp_path: Path) -> None:
    path = tmp_path / "elevation.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=4,
        height=4,
        count=1,
        dtype="uint16",
        crs="EPSG:32652",
        transform=from_origin(300000, 4200000, 30, 30),
    ) as ds:
        ds.write(np.ones((1, 4, 4), dtype=np.uint16))
    with pytest.raises(ProductError, match=r"elevation.tif: not a file of a Landsat product"):
        open_scene(path)


def test_empty_and_non_tar(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    with pytest.raises(ProductError, match=r"empty.tar: empty file"):
        open_scene(empty)
    hollow = tmp_path / "hollow.tar"
    with tarfile.open(hollow, "w"):
        pass
    with pytest.raises(ProductError, match=r"hollow.tar: empty tar archive"):
        open_scene(hollow)
    fake = tmp_path / "fake.tar"
    fake.write_bytes(b"this is not a tar archive at all" * 40)
    with pytest.raises(ProductError, match=r"fake.tar: not a tar archive"):
        open_scene(fake)


@pytest.mark.parametrize(
    "member", ["../LC08_X_MTL.txt", "/tmp/LC08_X_MTL.txt", "a/../../b_MTL.txt"]
)
def test_tar_member_escaping_is_refused(tmp_path: Path, member: str) -> None:
    tar = add_raw_member(tmp_path / "evil.tar", member, b"GROUP = LANDSAT_METADATA_FILE\n")
    with pytest.raises(ProductError, match=r"evil.tar: archive member .* absolute path or '\.\.'"):
        open_scene(tar)


def test_stac_item_with_missing_asset(tmp_path: Path, fixtures_dir: Path) -> None:
    src = l2_dir(fixtures_dir)
    item = make_stac_item(
        tmp_path / "item.json",
        src,
        {"mtl.txt": f"{L2_ID}_MTL.txt", "lwir11": f"{L2_ID}_ST_B10.TIF"},
    )
    import json

    data = json.loads(item.read_text())
    data["assets"]["lwir11"]["href"] = str(tmp_path / "gone_ST_B10.TIF")
    item.write_text(json.dumps(data))
    with pytest.raises(ProductError, match=r"gone_ST_B10.TIF: file of .* is missing"):
        open_scene(item)
    del data["assets"]["lwir11"]
    item.write_text(json.dumps(data))
    with pytest.raises(ProductError, match=rf"item.json: thermal band {L2_ID}_ST_B10.TIF"):
        open_scene(item)
