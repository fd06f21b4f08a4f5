"""Tests of the synthetic Landsat simulator (kaesong_thermal.simulation)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

import kaesong_thermal as kt
from kaesong_thermal.errors import ConfigError
from kaesong_thermal.landsat.bands import NOMINAL_THERMAL, ST_ADD_K, ST_MULT_K
from kaesong_thermal.landsat.mtl import read_mtl
from kaesong_thermal.simulation import SimulationResult, simulate, synthetic_footprints
from kaesong_thermal.simulation import clouds as cl
from kaesong_thermal.simulation import physics as ph
from kaesong_thermal.simulation import render as rd
from kaesong_thermal.simulation import scenario as sc


@pytest.fixture(scope="module")
def summer(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    """L1 + L2 of a summer-autumn period (2024-07-01 .. 2024-10-31) on the synthetic footprints."""
    out = tmp_path_factory.mktemp("sim")
    return simulate(
        out,
        start="2024-07-01",
        end="2024-10-31",
        level="both",
        footprints=synthetic_footprints(),
        seed=3,
    )


def _read(product: Path, suffix: str) -> np.ndarray:
    (f,) = product.glob(f"*_{suffix}.TIF")
    with rasterio.open(f) as ds:
        return ds.read(1)


def _l2(summer: SimulationResult) -> list[Path]:
    return [p for p in summer.products if "_L2SP_" in p.name]


# --------------------------------------------------------------------------- products


def test_every_product_opens_with_the_reader(summer: SimulationResult) -> None:
    truth = pd.read_csv(summer.truth_path)
    assert summer.n_scenes == 2 * 15  # 15 acquisitions, L1 + L2
    for p in summer.products:
        scene = kt.open_scene(p)
        m = scene.metadata
        assert m.scene_id == p.name
        assert m.sensor == p.name[:4]
        assert m.level == ("L2" if "_L2SP_" in p.name else "L1")
        assert m.thermal_band == ("ST_B10" if m.level == "L2" else "B10")
        assert m.day is True
        assert (m.wrs_path, m.wrs_row) == (116, 34)
        assert m.crs.to_epsg() == 32652
        acq = pd.Timestamp(truth.loc[truth.scene_id == p.name, "acquired"].iloc[0])
        assert m.acquired == acq.to_pydatetime()
        assert m.acquired.strftime("%Y%m%d") == p.name[17:25]
        assert (
            2 * 3600 + 9 * 60 < m.acquired.hour * 3600 + m.acquired.minute * 60 < 2 * 3600 + 12 * 60
        )


def test_grid_is_the_path116_lattice(summer: SimulationResult) -> None:
    p = _l2(summer)[0]
    (f,) = p.glob("*_ST_B10.TIF")
    with rasterio.open(f) as ds:
        assert ds.crs.to_epsg() == 32652
        assert (ds.width, ds.height) == (200, 200)
        assert ds.transform.a == 30 and ds.transform.e == -30
        assert ds.transform.c % 30 == 15 and ds.transform.f % 30 == 15
        assert ds.tags()["AREA_OR_POINT"] == "Point"
        assert ds.profile["tiled"] and ds.profile["blockxsize"] == 256
        assert ds.profile["compress"] == "deflate"
        assert ds.nodata == 0 and ds.dtypes[0] == "uint16"
    mtl = read_mtl(next(p.glob("*_MTL.txt")))
    # MTL corners are pixel centres on multiples of 30 m
    assert float(mtl.require("CORNER_UL_PROJECTION_X_PRODUCT")) == 288990.0
    assert float(mtl.require("CORNER_UL_PROJECTION_Y_PRODUCT")) == 4204020.0


def test_mtl_txt_json_xml_agree_and_follow_c2(summer: SimulationResult) -> None:
    p = _l2(summer)[0]
    txt = read_mtl(next(p.glob("*_MTL.txt")))
    xml = read_mtl(next(p.glob("*_MTL.xml")))
    js = read_mtl(next(p.glob("*_MTL.json")))
    for key in (
        "DATE_ACQUIRED",
        "SCENE_CENTER_TIME",
        "CLOUD_COVER",
        "SUN_ELEVATION",
        "K1_CONSTANT_BAND_10",
        "TEMPERATURE_MULT_BAND_ST_B10",
        "FILE_NAME_BAND_ST_B10",
    ):
        assert txt.require(key) == xml.require(key) == js.require(key)
    raw = json.loads(next(p.glob("*_MTL.json")).read_text())
    values = [v for g in raw["LANDSAT_METADATA_FILE"].values() for v in g.values()]
    assert all(isinstance(v, str) for v in values)
    assert re.fullmatch(r"02:1\d:\d\d\.\d{7}Z", txt.require("SCENE_CENTER_TIME"))
    c = NOMINAL_THERMAL[p.name[:4]]
    assert float(txt.require("K2_CONSTANT_BAND_10")) == pytest.approx(c.k2)
    text = next(p.glob("*_MTL.txt")).read_text()
    assert 'SCENE_CENTER_TIME = "02:1' in text and "DATE_ACQUIRED = 2024-" in text
    assert "GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS" in text


def test_landsat9_products_use_landsat9_constants(summer: SimulationResult) -> None:
    l9 = [p for p in summer.products if p.name.startswith("LC09_L1TP")]
    assert l9
    mtl = read_mtl(next(l9[0].glob("*_MTL.txt")))
    assert float(mtl.require("RADIANCE_MULT_BAND_10")) == pytest.approx(3.8e-4)
    assert float(mtl.require("K1_CONSTANT_BAND_10")) == pytest.approx(799.0284)


def test_cloudy_pixels_are_flagged_and_colder(summer: SimulationResult) -> None:
    checked = near_checked = 0
    for p in _l2(summer):
        qa = _read(p, "QA_PIXEL")
        st = _read(p, "ST_B10").astype(float) * ST_MULT_K + ST_ADD_K
        cloud = (qa & (1 << 3)) > 0
        clear = (qa & (1 << 6)) > 0
        if cloud.mean() < 0.05 or clear.mean() < 0.05:
            continue
        checked += 1
        assert np.median(st[cloud]) < np.median(st[clear]) - 5.0
        # high cloud confidence on cloud, clear never together with cloud
        assert np.all((qa[cloud] >> 8) & 3 == 3)
        assert not np.any(cloud & clear)
        # dilated ring exists around clouds and ST_QA is larger near clouds
        dilated = (qa & (1 << 1)) > 0
        assert dilated.any()
        sigma = _read(p, "ST_QA") * 0.01
        far = ((qa & 0b11110) == 0) & (_read(p, "ST_CDIST") * 0.01 > 1.5)
        if far.sum() > 50:
            near_checked += 1
            assert np.median(sigma[dilated]) > np.median(sigma[far]) + 2.0
    assert checked >= 2 and near_checked >= 1


def test_some_cloud_edge_is_left_unflagged() -> None:
    fp = synthetic_footprints().to_crs(32652)
    static = rd.build_static(fp, sc.plan_buildings(fp, "kaesong", 0), "crop", 0)
    d = rd.draw_scene(static, "landsat-8", date(2024, 7, 13), 0)
    d = rd.SceneDraws(**{**d.__dict__, "cloud_fraction_target": 0.3, "cirrus": False})
    rng = np.random.default_rng(1)
    cf = rd.draw_clouds(static, d, rng)
    s = rd.render_strip(static, d, cf, 0, 200, rd.sensor_window(static, d, rng), rng)
    contaminated = s.cloud_any
    flagged = (s.qa_pixel & 0b11110) > 0
    missed = (contaminated & ~flagged).sum() / contaminated.sum()
    assert 0.0 < missed < 0.10


def test_l1_and_l2_agree_within_the_modelled_atmosphere(summer: SimulationResult) -> None:
    scenes = pd.read_csv(summer.scenes_path).set_index("scene_id")
    n = 0
    for p2 in _l2(summer):
        p1 = p2.parent / p2.name.replace("_L2SP_", "_L1TP_")
        row = scenes.loc[p2.name]
        qa = _read(p2, "QA_PIXEL")
        clear = ((qa & (1 << 6)) > 0) & ((qa & 0b11110) == 0)
        if clear.mean() < 0.2:
            continue
        n += 1
        st = _read(p2, "ST_B10").astype(float) * ST_MULT_K + ST_ADD_K
        c = NOMINAL_THERMAL["LC08" if p2.name.startswith("LC08") else "LC09"]
        bt = ph.brightness_temperature_k(
            _read(p1, "B10") * c.radiance_mult + c.radiance_add, c.k1, c.k2
        )
        atm = ph.Atmosphere(row.transmittance, row.upwelling, row.downwelling, row.st_error_k)
        # forward model of the modelled atmosphere on the retrieved surface temperature
        surface = st[clear] - row.st_error_k
        model_bt = ph.brightness_temperature_k(
            ph.at_sensor_radiance(surface, 0.97, atm, c.k1, c.k2), c.k1, c.k2
        )
        diff = st[clear] - bt[clear]
        model_diff = st[clear] - model_bt
        # the at-sensor temperature is below the surface temperature
        assert np.median(diff) > 0.3
        assert abs(np.median(diff) - np.median(model_diff)) < 0.4
    assert n >= 2


def test_humid_summer_lowers_at_sensor_temperature_by_several_kelvin() -> None:
    c = NOMINAL_THERMAL["LC08"]
    july = ph.Atmosphere(0.62, 2.8, 4.6, 0.0)
    january = ph.Atmosphere(0.93, 0.4, 0.7, 0.0)
    bt_jul = ph.brightness_temperature_k(
        ph.at_sensor_radiance(300.0, 0.97, july, c.k1, c.k2), c.k1, c.k2
    )
    bt_jan = ph.brightness_temperature_k(
        ph.at_sensor_radiance(270.0, 0.97, january, c.k1, c.k2), c.k1, c.k2
    )
    assert 3.0 < 300.0 - float(bt_jul) < 10.0
    assert 0.0 < 270.0 - float(bt_jan) < 2.5


def test_summer_idle_roofs_are_warmer_than_fields(summer: SimulationResult) -> None:
    fp = synthetic_footprints().to_crs(32652)
    plans = sc.plan_buildings(fp, "kaesong", 3)
    static = rd.build_static(fp, plans, "crop", 3)
    field30 = (
        (static.landcover[40:640, 40:640] == ph.FIELD).reshape(200, 3, 200, 3).all(axis=(1, 3))
    )
    truth = pd.read_csv(summer.truth_path)
    found = 0
    for p in _l2(summer):
        if p.name[17:21] != "2024" or p.name[21:23] not in ("07", "08"):
            continue
        qa = _read(p, "QA_PIXEL")
        clear = (qa & 0b11111) == 0
        if clear.mean() < 0.6:
            continue
        st = _read(p, "ST_B10").astype(float) * ST_MULT_K + ST_ADD_K
        fields = np.median(st[field30 & clear])
        t = truth[(truth.scene_id == p.name) & (truth.active == 0)].set_index("building_id")
        for k, plan in enumerate(plans):
            px = static.building_px[k]
            if plan.building_id not in t.index or plan.area_m2 < 5000 or plan.removed:
                continue
            if not clear.ravel()[px].all():
                continue
            found += 1
            assert np.max(st.ravel()[px]) > fields + 0.5, plan.building_id
    assert found >= 3


def test_truth_follows_the_schedule(summer: SimulationResult) -> None:
    truth = pd.read_csv(summer.truth_path)
    assert list(truth.columns) == [
        "scene_id",
        "building_id",
        "acquired",
        "active",
        "roof_excess_k",
        "cloud_fraction",
    ]
    assert truth.scene_id.nunique() == 30
    acq = pd.to_datetime(truth.acquired)
    weekday = truth[acq.dt.day_of_week < 6]
    running = weekday[weekday.building_id.isin(["amos", "samas-electronics", "in-the-f"])]
    assert running.active.mean() > 0.6
    assert truth[truth.building_id.isin(["living-art", "support-center"])].active.sum() == 0
    sunday = truth[acq.dt.day_of_week == 6]
    assert sunday.active.sum() == 0
    assert (truth.roof_excess_k[truth.active == 1] > 0).all()
    assert ((truth.cloud_fraction >= 0) & (truth.cloud_fraction <= 1)).all()


def test_scenario_json_and_footprints(summer: SimulationResult) -> None:
    doc = json.loads(summer.scenario_path.read_text())
    assert doc["synthetic"] is True and doc["seed"] == 3
    roles = {b["building_id"]: b["roles"] for b in doc["buildings"]}
    assert "demolished" in roles["liaison-office"]
    assert "dismantled" in roles["support-center"]
    assert "subpixel" in roles["sj-tech"]
    every = [r for rs in roles.values() for r in rs]
    for role in ("dark-idle-neighbour", "hot-yard-neighbour", "reclad", "restarts"):
        assert role in every
    fp = kt.load_footprints(summer.footprints_path)
    assert set(fp.index) == set(roles)


# --------------------------------------------------------------------------- physics


def test_psf_spreads_a_hot_30m_roof_and_lowers_its_peak() -> None:
    kern = ph.psf_kernel_1d(100.0, 10.0)
    img = np.zeros((61, 61))
    img[29:32, 29:32] = 10.0  # a 30 x 30 m roof 10 K above a uniform background
    out = rd.blur(img, kern)
    # box of 100 m: the roof covers 30/100 of a native pixel on each axis -> 0.09 x 10 K
    assert out[30, 30] == pytest.approx(0.9, abs=0.12)
    assert out.sum() == pytest.approx(img.sum(), rel=1e-4)  # energy conserved
    assert out[30, 30 + 5] > 0.4 * out[30, 30]  # 50 m away still warm
    assert out[30, 30 + 10] < 0.02 * out[30, 30]  # 100 m away nearly nothing


def test_window_fast_path_equals_direct_blur_and_sampling() -> None:
    fp = synthetic_footprints().to_crs(32652)
    static = rd.build_static(fp, sc.plan_buildings(fp, "kaesong", 0), "crop", 0)
    d = rd.draw_scene(static, "landsat-8", date(2015, 1, 14), 0)
    v = rd.scene_values(static, d, np.random.default_rng(0))
    maps = rd.blurred_maps(static, 100.0)
    rows, cols = rd.native_lattice(static, d, 100.0, (len(maps.kernel) - 1) // 2)
    fast = rd.native_samples(static, v, maps, rows, cols)
    direct = rd.blur(rd.fine_temperature(static, v), maps.kernel)[np.ix_(rows, cols)]
    assert np.abs(fast - direct).max() < 2e-3


def test_active_building_is_visible_through_the_sensor() -> None:
    fp = synthetic_footprints().to_crs(32652)
    plans = sc.plan_buildings(fp, "kaesong", 0)
    static = rd.build_static(fp, plans, "crop", 0)
    d = rd.draw_scene(static, "landsat-8", date(2015, 1, 14), 0)  # a Wednesday, complex open
    k = [p.building_id for p in plans].index("amos")
    assert d.excess_k[k] > 0
    idle = rd.SceneDraws(**{**d.__dict__, "excess_k": tuple(0.0 for _ in d.excess_k)})
    hot = rd.sensor_window(static, d, np.random.default_rng(5))
    cold = rd.sensor_window(static, idle, np.random.default_rng(5))
    px = static.building_px[k]
    gain = (hot.ravel()[px] - cold.ravel()[px]).max()
    # diluted by the 100 m PSF but clearly there: between 30 % and 100 % of the roof excess
    assert 0.3 * d.excess_k[k] < gain < d.excess_k[k]


def test_sun_position_at_kaesong_midsummer() -> None:
    # hand computation: decl 23.44, hour angle -21.3 deg -> sin(el) = 0.919 -> 66.8 deg
    sun = ph.sun_position(datetime(2024, 6, 21, 2, 10, tzinfo=timezone.utc))
    assert sun.elevation_deg == pytest.approx(66.8, abs=0.5)
    assert 100 < sun.azimuth_deg < 160  # south-east, before local noon
    winter = ph.sun_position(datetime(2024, 12, 21, 2, 10))
    assert winter.elevation_deg == pytest.approx(90 - 37.93 - 23.44 - 4.0, abs=2.0)


def test_climate_normals_and_atmosphere_seasons() -> None:
    assert ph.climatological_air_k(date(2024, 1, 15)) - 273.15 == pytest.approx(-5.9 + 2.0, abs=0.3)
    assert ph.climatological_air_k(date(2024, 8, 15)) - 273.15 == pytest.approx(24.9 + 2.0, abs=0.3)
    rng = np.random.default_rng(0)
    jul = [ph.seasonal_atmosphere(date(2024, 7, 25), rng).transmittance for _ in range(50)]
    jan = [ph.seasonal_atmosphere(date(2024, 1, 20), rng).transmittance for _ in range(50)]
    assert np.mean(jul) < 0.7 < 0.85 < np.mean(jan)


def test_planck_inverse_matches_the_real_landsat8_fixture(fixtures_dir: Path) -> None:
    d = fixtures_dir / "satellite_image" / "lc8_image"
    with rasterio.open(d / "LC80400282014193LGN00_B10.TIF") as ds:
        dn = float(ds.read(1)[300, 300])
    c = NOMINAL_THERMAL["LC08"]
    bt = ph.brightness_temperature_k(np.array(dn * c.radiance_mult + c.radiance_add), c.k1, c.k2)
    assert float(bt) == pytest.approx(298.025726, abs=1e-3)
    assert float(ph.planck_radiance(bt, c.k1, c.k2)) == pytest.approx(dn * c.radiance_mult + 0.1)


def test_cubic_convolution_reproduces_a_linear_ramp() -> None:
    nat = np.arange(0, 200, 10.0)
    out = np.linspace(25, 160, 37)
    idx, w = ph.cubic_taps(out, 0.0, 10.0, len(nat))
    ramp = 3.0 * nat + 7.0
    assert np.allclose((ramp[idx] * w).sum(axis=1), 3.0 * out + 7.0)
    assert ph.cubic_convolution_weights(np.array([0.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.0]


def test_qa_pixel_words_match_collection2_values() -> None:
    z = np.zeros((1, 6), bool)

    def m(*cols: int) -> np.ndarray:
        a = z.copy()
        a[0, list(cols)] = True
        return a

    qa = cl.compose_qa_pixel(fill=m(5), cloud=m(1), dilated=m(2), shadow=m(3), cirrus=z, water=m(4))
    assert qa.tolist() == [[21824, 22280, 21762, 23888, 21952, 1]]


def test_cloud_climatology_monsoon_worst_winter_clearest() -> None:
    rng = np.random.default_rng(0)
    jul = np.mean([cl.draw_cloud_fraction(date(2024, 7, 15), rng) for _ in range(400)])
    jan = np.mean([cl.draw_cloud_fraction(date(2024, 1, 15), rng) for _ in range(400)])
    assert jul > 0.6 and jan < 0.32


def test_acquisition_calendar() -> None:
    l8 = sc.acquisition_dates("landsat-8", date(2025, 10, 1), date(2025, 11, 30))
    l9 = sc.acquisition_dates("landsat-9", date(2025, 10, 1), date(2025, 11, 30))
    assert date(2025, 11, 5) in l8
    assert all((b - a).days == 16 for a, b in itertools.pairwise(l8))
    assert {(x - date(2025, 11, 5)).days % 16 for x in l9} == {8}
    assert sc.acquisition_dates("landsat-9", date(2021, 1, 1), date(2021, 10, 30)) == []
    assert sc.acquisition_dates("landsat-5", date(2012, 1, 1), date(2013, 1, 1)) == []


def test_kaesong_schedule_by_era() -> None:
    fp = synthetic_footprints().to_crs(32652)
    plans = {p.building_id: p for p in sc.plan_buildings(fp, "kaesong", 0)}
    wed_2015 = date(2015, 1, 14)
    assert (
        plans["living-art"].operating_on(wed_2015, 0) > 0
        or plans["shinwon"].operating_on(wed_2015, 0) > 0
    )
    assert plans["amos"].operating_on(date(2013, 6, 12), 0) == 0  # 2013 shutdown
    assert plans["amos"].operating_on(date(2015, 1, 18), 0) == 0  # a Sunday
    nov = [date(2025, 11, d) for d in range(3, 29) if date(2025, 11, d).weekday() < 6]
    running = {
        b for b, p in plans.items() if np.mean([p.operating_on(x, 0) > 0 for x in nov]) > 0.5
    }
    assert running == {
        "amos",
        "samas-electronics",
        "in-the-f",
        "jaeyoung-solutec",
        "seokchon-ceramics",
    }
    assert plans["liaison-office"].roof_fraction_on(date(2020, 6, 20)) == 0.0
    assert plans["support-center"].roof_fraction_on(date(2024, 12, 15)) == pytest.approx(
        0.5, abs=0.1
    )


def test_any_footprint_file_gets_a_story() -> None:
    fp = synthetic_footprints(["living-art", "shinwon", "romanson", "sj-tech", "water-plant"])
    fp.index = [f"b{i}" for i in range(len(fp))]
    fp.index.name = "building_id"
    plans = sc.plan_buildings(fp.to_crs(32652), "kaesong", 0)
    every = [r for p in plans for r in p.roles]
    # the four factories (largest first) take the five restart stories in turn
    assert every.count("restarts") == 4
    assert "subpixel" in every


# --------------------------------------------------------------------------- formats, determinism


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_products(tmp_path: Path) -> None:
    kw = dict(
        start="2024-11-01",
        end="2024-11-20",
        footprints=synthetic_footprints(),
        level="both",
        tar=True,
        stac=True,
    )
    a = simulate(tmp_path / "a", seed=11, **kw)  # type: ignore[arg-type]
    b = simulate(tmp_path / "b", seed=11, workers=2, **kw)  # type: ignore[arg-type]
    c = simulate(tmp_path / "c", seed=12, **kw)  # type: ignore[arg-type]
    da, db, dc = _digest(a.outdir), _digest(b.outdir), _digest(c.outdir)
    assert len(da) >= 8 and da == db
    assert da != dc
    tar = next(p for p in a.products if p.name.endswith(".tar"))
    scene = kt.open_scene(tar)
    assert scene.metadata.scene_id == tar.name[:-4]


def test_stac_item_opens_and_names_assets(tmp_path: Path) -> None:
    res = simulate(
        tmp_path, start="2025-11-05", end="2025-11-05", footprints=synthetic_footprints(), stac=True
    )
    (prod,) = res.products
    item_path = prod / f"{prod.name}_stac.json"
    item = json.loads(item_path.read_text())
    assert {"lwir11", "qa_pixel", "qa", "mtl.txt"} <= set(item["assets"])
    assert item["assets"]["lwir11"]["href"] == f"./{prod.name}_ST_B10.TIF"
    assert item["id"] == "LC08_L2SP_116034_20251105_" + prod.name[26:34] + "_02_T1"
    scene = kt.open_scene(item_path)
    assert scene.metadata.level == "L2" and scene.metadata.sensor == "LC08"


def test_older_sensors_write_their_own_bands(tmp_path: Path) -> None:
    res = simulate(
        tmp_path,
        start="2008-01-01",
        end="2008-01-20",
        sensors=("landsat-5", "landsat-7"),
        level="both",
        footprints=synthetic_footprints(),
    )
    names = sorted(p.name[:9] for p in res.products)
    assert names == ["LE07_L1TP", "LE07_L2SP", "LT05_L1TP", "LT05_L2SP"]
    for p in res.products:
        scene = kt.open_scene(p)
        want = {"LE07": {"L1": "B6_VCID_1", "L2": "ST_B6"}, "LT05": {"L1": "B6", "L2": "ST_B6"}}
        assert scene.metadata.thermal_band == want[p.name[:4]][scene.metadata.level]
        if scene.metadata.level == "L1":
            (f,) = p.glob(f"*_{scene.metadata.thermal_band}.TIF")
            with rasterio.open(f) as ds:
                assert ds.dtypes[0] == "uint8"
    le07_l2 = next(p for p in res.products if p.name.startswith("LE07_L2SP"))
    st = _read(le07_l2, "ST_B6")
    assert 0.02 < (st == 0).mean() < 0.3  # SLC-off gaps are fill


def test_bad_options_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="level"):
        simulate(tmp_path, level="L3", footprints=synthetic_footprints())
    with pytest.raises(ConfigError, match="after"):
        simulate(tmp_path, start="2024-02-01", end="2024-01-01", footprints=synthetic_footprints())
    with pytest.raises(ConfigError, match="sensor"):
        simulate(tmp_path, sensors=("landsat-10",), footprints=synthetic_footprints())
