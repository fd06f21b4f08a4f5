"""Tests of kaesong_thermal.extraction: one row per building, windows, caching, dates, exactextract."""

from __future__ import annotations

import importlib
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from shapely import affinity

from kaesong_thermal.landsat import SceneMetadata, ThermalWindow

ex = importlib.import_module("kaesong_thermal.extraction")

PX = 30.0
CRS_UTM = CRS.from_epsg(32652)
ORIGIN_X, ORIGIN_Y = 360_000.0, 4_200_000.0
ACQUIRED = datetime(2015, 12, 5, 2, 10, tzinfo=timezone.utc)


META = SceneMetadata(
    scene_id="LC08_L2SP_116034_20151205_20200908_02_T1",
    sensor="LC08",
    level="L2",
    acquired=ACQUIRED,
    wrs_path=116,
    wrs_row=34,
    cloud_cover=0.0,
    sun_elevation=30.0,
    sun_azimuth=160.0,
    crs=CRS_UTM,
    day=True,
    collection="02",
    thermal_band="ST_B10",
)


def make_window(
    kelvin: np.ndarray, transform: Affine, sigma: np.ndarray | None = None
) -> ThermalWindow:
    kelvin = kelvin.astype(np.float32)
    valid = np.isfinite(kelvin)
    return ThermalWindow(kelvin, valid, sigma, ~valid, transform, CRS_UTM, META, "ST_B10")


class FakeScene:
    """Scene stand-in (arrays in memory): read_kelvin snaps the bounds outward to the grid, NaN outside the scene."""

    def __init__(self, kelvin: np.ndarray, transform: Affine) -> None:
        self.full = kelvin.astype(np.float32)
        self.transform = transform
        self.crs = CRS_UTM
        self.height, self.width = kelvin.shape
        self.metadata = META
        self.calls: list[tuple[float, float, float, float]] = []
        self.ceilings: list[float | None] = []

    def read_kelvin(
        self, bounds: tuple[float, float, float, float], max_sigma_k: float | None = 15.0
    ) -> ThermalWindow:
        self.calls.append(bounds)
        self.ceilings.append(max_sigma_k)
        xmin, ymin, xmax, ymax = bounds
        t = self.transform
        c0 = math.floor((xmin - t.c) / t.a)
        c1 = math.ceil((xmax - t.c) / t.a)
        r0 = math.floor((ymax - t.f) / t.e)
        r1 = math.ceil((ymin - t.f) / t.e)
        out = np.full((r1 - r0, c1 - c0), np.nan, dtype=np.float32)
        rr0, rr1 = max(r0, 0), min(r1, self.height)
        cc0, cc1 = max(c0, 0), min(c1, self.width)
        if rr1 > rr0 and cc1 > cc0:
            out[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = self.full[rr0:rr1, cc0:cc1]
        wt = Affine(t.a, 0, t.c + c0 * t.a, 0, t.e, t.f + r0 * t.e)
        return make_window(out, wt)


def grid(origin_x: float = ORIGIN_X, origin_y: float = ORIGIN_Y) -> Affine:
    return Affine(PX, 0.0, origin_x, 0.0, -PX, origin_y)


def box_px(t: Affine, c0: float, r0: float, c1: float, r1: float) -> shapely.Polygon:
    return shapely.box(t.c + c0 * t.a, t.f + r1 * t.e, t.c + c1 * t.a, t.f + r0 * t.e)


def footprints(geoms: dict[str, Any], crs: Any = CRS_UTM, **cols: Any) -> gpd.GeoDataFrame:
    gdf = gpd.GeoDataFrame(
        {"geometry": list(geoms.values()), **cols},
        index=pd.Index(list(geoms), name="building_id"),
        crs=crs,
    )
    return gdf


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    ex.clear_cache()


def test_columns_and_hand_computed_row() -> None:
    t = grid()
    kelvin = np.full((20, 20), 290.0)
    kelvin[10, 10], kelvin[10, 11] = 300.0, 310.0
    sigma = np.full((20, 20), 1.0, dtype=np.float32)
    fp = footprints({"half-two": box_px(t, 10.5, 10, 11.5, 11)})
    df = ex.extract(make_window(kelvin, t, sigma), fp)
    assert list(df.columns) == list(ex.COLUMNS)
    row = df.iloc[0]
    assert row.building_id == "half-two"
    assert row.scene_id == META.scene_id and row.sensor == "LC08" and row.level == "L2"
    assert row.acquired == pd.Timestamp(ACQUIRED)
    assert str(df["acquired"].dtype) == "datetime64[ns, UTC]"
    assert row.t_roof_k == pytest.approx(305.0)
    assert row.t_roof_max_k == pytest.approx(310.0)
    assert row.t_background_k == pytest.approx(290.0)
    assert row.contrast_k == pytest.approx(15.0)
    assert row.sigma_k == pytest.approx(math.sqrt(0.5), rel=1e-6)
    assert row.cover_px == pytest.approx(1.0)
    assert row.area_m2 == pytest.approx(900.0)
    assert row.valid_fraction == pytest.approx(1.0)
    assert row.ring_valid_px > 8


def test_footprints_in_another_crs_are_reprojected() -> None:
    t = grid()
    rng = np.random.default_rng(0)
    kelvin = rng.uniform(280, 300, (30, 30))
    poly = box_px(t, 12.3, 11.1, 14.8, 13.9)
    utm = footprints({"a": poly})
    wgs = utm.to_crs(4326)
    w = make_window(kelvin, t)
    a = ex.extract(w, utm)
    b = ex.extract(w, wgs)
    assert b.t_roof_k.iloc[0] == pytest.approx(a.t_roof_k.iloc[0], abs=1e-3)
    assert b.area_m2.iloc[0] == pytest.approx(poly.area, rel=1e-4)
    # a building_id column instead of the index is accepted too
    c = ex.extract(w, utm.reset_index())
    assert c.building_id.tolist() == ["a"]


def test_outside_clouded_and_out_of_date_buildings_get_nan_rows() -> None:
    t = grid()
    kelvin = np.full((30, 30), 295.0)
    kelvin[5:8, 5:8] = np.nan  # a cloud
    geoms = {
        "ok": box_px(t, 20, 20, 21, 21),
        "outside": box_px(t, 500, 500, 501, 501),
        "clouded": box_px(t, 5.2, 5.2, 6.8, 6.8),
        "demolished": box_px(t, 15, 20, 16, 21),
        "future": box_px(t, 20, 15, 21, 16),
    }
    fp = footprints(
        geoms,
        valid_from=[None, None, None, None, "2016-01-01"],
        valid_to=[None, None, None, "2015-12-04", None],
    )
    df = ex.extract(make_window(kelvin, t), fp).set_index("building_id")
    assert df.loc["ok", "t_roof_k"] == pytest.approx(295.0)
    assert df.loc["ok", "contrast_k"] == pytest.approx(0.0)
    for bid in ["outside", "clouded", "demolished", "future"]:
        assert np.isnan(df.loc[bid, "t_roof_k"]), bid
        assert np.isnan(df.loc[bid, "contrast_k"]), bid
        assert df.loc[bid, "valid_fraction"] == 0.0, bid
    assert df.loc["clouded", "cover_px"] == pytest.approx(1.6 * 1.6)
    # valid on its last day: valid_to is inclusive
    fp2 = fp.copy()
    fp2.loc["demolished", "valid_to"] = "2015-12-05"
    df2 = ex.extract(make_window(kelvin, t), fp2).set_index("building_id")
    assert df2.loc["demolished", "t_roof_k"] == pytest.approx(295.0)


def test_min_ring_and_min_valid_fraction_keep_measured_values() -> None:
    t = grid()
    kelvin = np.full((30, 30), 300.0)
    kelvin[10, 10] = np.nan
    fp = footprints({"a": box_px(t, 10, 10, 12, 11)})  # one of two pixels invalid
    w = make_window(kelvin, t)
    df = ex.extract(w, fp, min_valid_fraction=0.6)
    assert np.isnan(df.t_roof_k.iloc[0])
    assert df.valid_fraction.iloc[0] == pytest.approx(0.5)
    df = ex.extract(w, fp, min_ring_px=10_000)
    assert np.isnan(df.contrast_k.iloc[0]) and df.ring_valid_px.iloc[0] > 0


def test_scene_reads_only_the_window_and_matches_the_full_array() -> None:
    t = grid()
    rng = np.random.default_rng(5)
    kelvin = rng.uniform(270, 320, (200, 200))
    scene = FakeScene(kelvin, t)
    geoms = {
        "a": box_px(t, 100.2, 100.4, 102.7, 101.9),
        "b": box_px(t, 108, 104, 110.5, 106),
        "edge": box_px(t, 199.5, 50, 200.5, 51),  # half outside the scene
    }
    fp = footprints(geoms)
    df = ex.extract(scene, fp)
    assert len(scene.calls) == 1
    xmin, ymin, xmax, ymax = scene.calls[0]
    fxmin, fymin, fxmax, fymax = fp.total_bounds
    assert xmin <= fxmin - 230 and xmax >= fxmax + 230  # ring (200 m) + margin (30 m)
    assert ymin <= fymin - 230 and ymax >= fymax + 230
    assert (xmax - xmin) / PX < 200  # a window, not the whole band
    full = ex.extract(make_window(kelvin, t), fp)
    cols = ["t_roof_k", "t_roof_max_k", "t_background_k", "t_background_iqr_k", "contrast_k"]
    a = df.set_index("building_id").loc[["a", "b"], cols]
    b = full.set_index("building_id").loc[["a", "b"], cols]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-6)
    edge = df.set_index("building_id").loc["edge"]
    assert edge.cover_px == pytest.approx(1.0) and edge.valid_fraction == pytest.approx(0.5)


def test_weights_are_cached_per_grid_and_reused_across_scenes() -> None:
    t = grid()
    rng = np.random.default_rng(1)
    fp = footprints({"a": box_px(t, 100.5, 100.5, 103, 102), "b": box_px(t, 90, 95, 91, 96)})
    s1 = FakeScene(rng.uniform(280, 300, (200, 200)), t)
    s2 = FakeScene(rng.uniform(280, 300, (200, 200)), t)
    ex.extract(s1, fp)
    assert ex.cache_info()["weights"] == 1
    ex.extract(s2, fp)  # same path/row lattice: same window, same weights
    assert ex.cache_info()["weights"] == 1
    # a scene on a shifted grid (15 m) gets its own weights
    s3 = FakeScene(rng.uniform(280, 300, (200, 200)), grid(ORIGIN_X + 15.0))
    r3 = ex.extract(s3, fp)
    assert ex.cache_info()["weights"] == 2
    ex.clear_cache()
    r3_cold = ex.extract(s3, fp, cache=False)
    assert ex.cache_info()["weights"] == 0
    pd.testing.assert_frame_equal(r3, r3_cold)


def test_empty_footprints_and_bad_inputs() -> None:
    t = grid()
    w = make_window(np.full((5, 5), 290.0), t)
    empty = footprints({})
    df = ex.extract(w, empty)
    assert list(df.columns) == list(ex.COLUMNS) and len(df) == 0
    from kaesong_thermal.errors import FootprintError, ProductError

    nocrs = gpd.GeoDataFrame(
        {"geometry": [box_px(t, 1, 1, 2, 2)]}, index=pd.Index(["a"], name="building_id")
    )
    with pytest.raises(FootprintError, match="no CRS"):
        ex.extract(w, nocrs)
    geo = ThermalWindow(w.kelvin, w.valid, None, w.cloud, t, CRS.from_epsg(4326), META)
    with pytest.raises(ProductError, match="not projected"):
        ex.extract(geo, footprints({"a": box_px(t, 1, 1, 2, 2)}))


def test_roof_mean_equals_exactextract(tmp_path: Path) -> None:
    from exactextract import exact_extract

    t = grid()
    rng = np.random.default_rng(42)
    h, w = 60, 60
    kelvin = rng.uniform(260.0, 330.0, (h, w)).astype(np.float32)
    kelvin[rng.random((h, w)) < 0.05] = np.nan
    path = tmp_path / "st.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="float32",
        crs=CRS_UTM,
        transform=t,
        nodata=-9999.0,
    ) as dst:
        dst.write(np.where(np.isfinite(kelvin), kelvin, -9999.0), 1)
    geoms: dict[str, Any] = {}
    for i in range(120):
        cx = rng.uniform(5, 55)
        cy = rng.uniform(5, 55)
        size = rng.choice([0.15, 0.4, 0.9, 1.7, 3.5])  # in pixels: many sub-pixel roofs
        poly = box_px(t, cx - size / 2, cy - size * 0.35, cx + size / 2, cy + size * 0.35)
        geoms[f"b{i:03d}"] = affinity.rotate(poly, rng.uniform(0, 90))
    fp = footprints(geoms)
    ours = ex.extract(make_window(kelvin, t), fp, min_valid_fraction=0.0, min_ring_px=0)
    ref = exact_extract(
        str(path), fp.reset_index(), ["mean"], include_cols=["building_id"], output="pandas"
    )
    merged = ours.merge(ref, on="building_id")
    has = merged["t_roof_k"].notna()
    assert has.sum() >= 110
    assert (merged.loc[has, "cover_px"] < 1.0).sum() >= 40  # sub-pixel roofs are included
    np.testing.assert_allclose(merged.loc[has, "t_roof_k"], merged.loc[has, "mean"], atol=1e-4)
    # and a building exactextract finds no valid pixel for is NaN here too
    assert merged.loc[~has, "mean"].isna().all()


def test_package_level_extract_is_callable() -> None:
    import inspect

    import kaesong_thermal as kt
    import kaesong_thermal.evaluation
    import kaesong_thermal.extraction
    import kaesong_thermal.simulation  # importing submodules must not shadow the API

    for name in ("extract", "simulate", "evaluate", "analyze", "detect"):
        assert inspect.isfunction(getattr(kt, name)), name
    t = grid()
    df = kt.extract(
        make_window(np.full((20, 20), 300.0), t), footprints({"a": box_px(t, 9, 9, 10, 10)})
    )
    assert df.t_roof_k.iloc[0] == pytest.approx(300.0)


def test_real_scene_reader_window_and_fully_invalid_scene(fixtures_dir: Path) -> None:
    from kaesong_thermal.landsat import open_scene

    product = fixtures_dir / "stactools-landsat" / "LC08_L2SP_008059_20191201_20200825_02_T1"
    scene = open_scene(product)
    t = scene.transform
    cx, cy = t.c + 200.3 * t.a, t.f + 250.6 * t.e
    fp = footprints(
        {
            "inside": shapely.box(cx, cy, cx + 600.0, cy + 300.0),
            "outside": shapely.box(t.c - 5_000.0, t.f + 5_000.0, t.c - 4_000.0, t.f + 6_000.0),
        },
        crs=scene.crs,
    )
    df = ex.extract(str(product), fp, max_sigma_k=2.5).set_index("building_id")
    assert df.loc["inside", "scene_id"] == "LC08_L2SP_008059_20191201_20200825_02_T1"
    assert df.loc["inside", "sensor"] == "LC08" and df.loc["inside", "level"] == "L2"
    # under a 2.5 K ST_QA ceiling this humid fixture has no valid thermal pixel: every row is NaN
    # with valid_fraction 0
    window = scene.read_kelvin(max_sigma_k=2.5)
    assert not window.valid.any()
    assert (df["valid_fraction"] == 0.0).all()
    assert df["t_roof_k"].isna().all() and df["contrast_k"].isna().all()
    pixel_area = abs(t.a * t.e)
    assert df.loc["inside", "cover_px"] == pytest.approx(600.0 * 300.0 / pixel_area)
    assert df.loc["outside", "area_m2"] == pytest.approx(1_000_000.0)


def test_psf_estimator_is_opt_in() -> None:
    # a 60 x 60 m roof 5 K warmer than 290 K surroundings: default extraction leaves the PSF
    # columns NaN (fast path); psf_model=True fills them; the other columns are identical
    t = grid()
    kelvin = np.full((30, 30), 290.0)
    kelvin[14:16, 14:16] = 295.0
    fp = footprints({"roof": box_px(t, 14, 14, 16, 16)})
    plain = ex.extract(make_window(kelvin, t), fp)
    psf = ex.extract(make_window(kelvin, t), fp, psf_model=True)
    assert plain["excess_k"].isna().all() and plain["excess_sigma_k"].isna().all()
    assert np.isfinite(psf["excess_k"]).all() and (psf["excess_k"] > 0).all()
    shared = [c for c in plain.columns if not c.startswith("excess")]
    pd.testing.assert_frame_equal(plain[shared], psf[shared])
    assert plain["contrast_k"].iloc[0] == pytest.approx(5.0, abs=1e-4)  # unblurred: all roof


def test_footprint_key_follows_content_not_object() -> None:
    # the key is memoised on the geometry objects; ids, CRS and dates are re-checked every call
    t = grid()
    fp = footprints(
        {"a": box_px(t, 100.5, 100.5, 103, 102), "b": box_px(t, 90, 95, 91, 96)},
        valid_from=[pd.NaT, pd.NaT],
    )
    k0 = ex._footprints_key(fp)
    assert ex._footprints_key(fp) == k0
    assert ex._footprints_key(fp.copy()) == k0  # same content, another frame
    rebuilt = footprints({"a": box_px(t, 100.5, 100.5, 103, 102), "b": box_px(t, 90, 95, 91, 96)})
    rebuilt["valid_from"] = [pd.NaT, pd.NaT]
    assert ex._footprints_key(rebuilt) == k0  # new geometry objects, same coordinates
    edited = fp.copy()
    edited.loc["b", "valid_from"] = pd.Timestamp("2016-01-01")
    assert ex._footprints_key(edited) != k0
    # in-place edits of the same frame: geometry, dates, ids
    fp.loc["b", "geometry"] = box_px(t, 90, 95, 92, 96)
    k1 = ex._footprints_key(fp)
    assert k1 != k0
    fp.loc["a", "valid_from"] = pd.Timestamp("2016-01-01")
    k2 = ex._footprints_key(fp)
    assert k2 not in (k0, k1)
    fp.index = pd.Index(["a", "c"], name="building_id")
    assert ex._footprints_key(fp) not in (k0, k1, k2)
    # and the extraction follows: the dated building is not valid on the 2015 acquisition
    rng = np.random.default_rng(2)
    scene = FakeScene(rng.uniform(280, 300, (200, 200)), t)
    df = ex.extract(scene, fp).set_index("building_id")
    assert np.isnan(df.loc["a", "t_roof_k"]) and df.loc["a", "valid_fraction"] == 0.0
    assert df.loc["c", "cover_px"] == pytest.approx(2.0)


def test_st_qa_ceiling_reaches_the_reader(fixtures_dir: Path) -> None:
    # the real L2 fixture's clear pixels have ST_QA 3.4-6.7 K: invalid at the default 2.5 K
    # ceiling, valid without one; extract passes the ceiling on to Scene.read_kelvin
    from kaesong_thermal.landsat import open_scene

    product = fixtures_dir / "stactools-landsat" / "LC08_L2SP_008059_20191201_20200825_02_T1"
    scene = open_scene(product)
    t = scene.transform
    r, c = 211, 293  # centre of a clear patch (QA_PIXEL clear, ST_QA 3.8 K)
    x0, y0 = t.c + (c + 0.25) * t.a, t.f + (r + 0.25) * t.e
    fp = footprints({"clear": shapely.box(x0, y0 + 0.5 * t.e, x0 + 0.5 * t.a, y0)}, crs=scene.crs)
    strict = ex.extract(scene, fp, min_ring_px=0, max_sigma_k=2.5).iloc[0]
    lax = ex.extract(scene, fp, min_ring_px=0, max_sigma_k=None).iloc[0]
    default = ex.extract(scene, fp, min_ring_px=0).iloc[0]  # 15 K: the clear pixel is kept
    assert default["valid_fraction"] == pytest.approx(1.0)
    assert default["t_roof_k"] == pytest.approx(lax["t_roof_k"], abs=1e-6)
    assert strict["valid_fraction"] == 0.0 and np.isnan(strict["t_roof_k"])
    assert lax["valid_fraction"] == pytest.approx(1.0)
    expected = scene.read_kelvin(max_sigma_k=None).kelvin[r, c]
    assert lax["t_roof_k"] == pytest.approx(float(expected), abs=1e-4)


def test_fake_scene_gets_the_default_ceiling() -> None:
    t = grid()
    scene = FakeScene(np.full((30, 30), 290.0), t)
    ex.extract(scene, footprints({"a": box_px(t, 10, 10, 12, 12)}))
    ex.extract(scene, footprints({"a": box_px(t, 10, 10, 12, 12)}), max_sigma_k=4.0)
    assert scene.ceilings == [15.0, 4.0]
