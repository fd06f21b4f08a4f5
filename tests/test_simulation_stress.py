"""Tests of the stress family of the simulator (kaesong_thermal.simulation.stress)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

import kaesong_thermal as kt
from kaesong_thermal.errors import ConfigError
from kaesong_thermal.simulation import SimulationResult, simulate
from kaesong_thermal.simulation import render as rd
from kaesong_thermal.simulation import stress as sx


@pytest.fixture(scope="module")
def draw(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    """One stress draw over a short winter-spring period (both sensors)."""
    out = tmp_path_factory.mktemp("stress")
    return simulate(out, scenario="stress", seed=7, start="2024-01-01", end="2024-05-31")


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _gaps(fp: gpd.GeoDataFrame) -> np.ndarray:
    geoms = list(fp.geometry)
    return np.array(
        [min(g.distance(o) for j, o in enumerate(geoms) if j != i) for i, g in enumerate(geoms)]
    )


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("seed", [1, 2, 3, 101, 250])
def test_layout_sizes_gaps_and_shapes(seed: int) -> None:
    d = sx.draw_stress(seed)
    fp = d.footprints
    assert 25 <= len(fp) <= 45
    area = fp.geometry.area
    assert area.min() < 400.0  # about 15 x 15 m
    assert area.max() > 15_000.0  # up to 160 x 110 m
    assert (area > 5_000).sum() >= 3
    # the size mix is drawn per park: 15-45 % small sheds, 15-40 % large halls
    assert 0.15 <= d.park.small_share <= 0.45 and 0.15 <= d.park.large_share <= 0.4
    assert 0.15 <= (area < 2_000).mean() <= 0.65
    gaps = _gaps(fp)
    assert gaps.min() >= 9.9  # never touching
    assert ((gaps >= 10) & (gaps <= 25)).sum() >= 4  # tight rows
    # no two footprints overlap and none is empty
    assert all(g.is_valid and not g.is_empty for g in fp.geometry)
    assert fp.geometry.union_all().area == pytest.approx(area.sum(), rel=1e-9)
    # the yard is unmapped and touches no footprint
    assert d.park.yard.area > 1_000
    assert min(d.park.yard.distance(g) for g in fp.geometry) >= 5.0


def test_some_roofs_are_l_shaped_or_rotated() -> None:
    shapes = rotated = 0
    for seed in range(1, 9):
        d = sx.draw_stress(seed)
        angle = math.radians(d.park.angle_deg)
        for g in d.footprints.geometry:
            n = len(g.exterior.coords) - 1
            shapes += n == 6
            # a rectangle aligned with the grid has edges along the grid angle
            x0, y0 = g.exterior.coords[0]
            x1, y1 = g.exterior.coords[1]
            a = math.atan2(y1 - y0, x1 - x0) - angle
            off = abs((a + math.pi / 4) % (math.pi / 2) - math.pi / 4)
            rotated += n == 4 and off > math.radians(5)
    assert shapes >= 4
    assert rotated >= 2


def test_the_street_grid_orientation_and_position_vary() -> None:
    a = [sx.draw_stress(s).park.angle_deg for s in range(1, 7)]
    assert np.ptp(a) > 20
    for s in range(1, 4):
        fp = sx.draw_stress(s).footprints
        minx, miny, maxx, maxy = fp.total_bounds
        left, bottom, right, top = sc_bounds()
        assert left + 400 < minx and maxx < right - 400
        assert bottom + 400 < miny and maxy < top - 400


def sc_bounds() -> tuple[float, float, float, float]:
    from kaesong_thermal.simulation.scenario import CROP_GRID

    return CROP_GRID.bounds


# --------------------------------------------------------------------------- schedule


@pytest.mark.parametrize("seed", [1, 5, 101])
def test_roles_schedules_and_confounders(seed: int) -> None:
    d = sx.draw_stress(seed)
    plans = {p.building_id: p for p in d.plans}
    roles = {b: p.roles for b, p in plans.items()}
    for role in (*sx.CONFOUNDER_ROLES, "active-pair", "switch-on", "switch-off"):
        assert any(role in r for r in roles.values()), role
    area = d.footprints.geometry.area
    geom = d.footprints.geometry
    # idle neighbour: 500-1,000 m2, 10-25 m from a >= 5,000 m2 building that switches on
    (nb,) = [b for b, r in roles.items() if "idle-neighbour" in r]
    host = d.events["idle_neighbour"]["active_neighbour"]
    assert 500 <= area[nb] <= 1_000
    assert area[host] >= 5_000 and "switch-on" in roles[host]
    assert 10 <= geom[nb].distance(geom[host]) <= 25.5
    a, b = d.events["active_pair"]["building_ids"]
    assert 10 <= geom[a].distance(geom[b]) <= 25.5
    assert "switch-on" in roles[a] and "switch-on" in roles[b]
    # confounders never operate
    for role in sx.CONFOUNDER_ROLES:
        for bid in (b for b, r in roles.items() if role in r):
            days = pd.date_range("2013-06-01", "2025-11-30", freq="D").date
            assert not any(plans[bid].operating_on(x, seed) for x in days), (role, bid)
    # 30-50 % of the factories switch on (more only when the forced ones need it)
    factories = [p for p in d.plans if p.kind == "factory"]
    on = [p for p in factories if "switch-on" in p.roles]
    assert 0.28 <= len(on) / len(factories) <= 0.55 or len(on) == 4
    # demolition after 2018, re-cladding and yard on random dates
    assert date.fromisoformat(d.events["demolished"]["start"]) >= date(2018, 7, 1)
    assert 1.4 <= d.events["reclad"]["step_k"] <= 2.6


def test_idle_years_are_idle_but_for_sporadic_days() -> None:
    for seed in (1, 2, 3):
        d = sx.draw_stress(seed)
        days = pd.date_range("2016-03-01", "2022-12-31", freq="7D").date
        share = np.mean([[p.operating_on(x, seed) > 0 for x in days] for p in d.plans])
        assert share < 0.02
        duties = {p.operating_on(x, seed) for p in d.plans for x in days} - {0.0}
        assert duties <= {0.25}


def test_switch_on_excess_grows_in_winter() -> None:
    d = sx.draw_stress(3)
    p = next(p for p in d.plans if "switch-on" in p.roles)
    assert 2.0 <= p.base_excess_k <= 12.0
    from kaesong_thermal.simulation import physics as ph

    rng = np.random.default_rng(0)
    winter = np.mean([ph.roof_excess_k(p.base_excess_k, 268.0, 1.0, rng) for _ in range(200)])
    summer = np.mean([ph.roof_excess_k(p.base_excess_k, 298.0, 1.0, rng) for _ in range(200)])
    assert winter > 1.5 * summer


# --------------------------------------------------------------------------- physics


def test_physics_is_drawn_per_seed_within_ranges() -> None:
    ps = [sx.draw_stress(s).physics for s in range(1, 9)]
    for p in ps:
        assert 90 <= p.detector_footprint_m <= 110
        assert 15 <= p.optical_sigma_m <= 35
        assert 0.05 <= p.wing_fraction <= 0.15
        assert 300 <= p.wing_sigma_m <= 500
        assert 0 <= p.l1_only_share <= 0.5
        assert p.l2_offset_max_k <= 1.5
    assert np.ptp([p.detector_footprint_m for p in ps]) > 5
    assert np.ptp([p.l1_only_share for p in ps]) > 0.1


def _hot_minus_cold(physics: sx.StressPhysics, d: sx.StressDraw, k: int) -> np.ndarray:
    static = rd.build_static(d.footprints, d.plans, "crop", 4, stress=physics)
    draws = rd.draw_scene(static, "landsat-8", date(2024, 1, 10), 4)
    excess = [0.0] * len(d.plans)
    excess[k] = 10.0
    hot = replace(draws, excess_k=tuple(excess))
    cold = replace(draws, excess_k=tuple(0.0 for _ in excess))
    a = rd.sensor_window(static, hot, np.random.default_rng(1))
    b = rd.sensor_window(static, cold, np.random.default_rng(1))
    return np.asarray(a - b, float)


def test_wide_wing_spreads_a_hot_roof_further() -> None:
    """With the wing, a hot roof warms pixels 300-600 m away as a Gaussian of its energy."""
    d = sx.draw_stress(4)
    k = int(np.argmax(d.footprints.geometry.area.to_numpy()))
    wing = _hot_minus_cold(d.physics, d, k)
    core = _hot_minus_cold(replace(d.physics, wing_fraction=0.0, _cache={}), d, k)
    c = d.footprints.geometry.iloc[k].centroid
    g = rd.CROP_GRID
    y = (g.y0 - (np.arange(g.height) + 0.5) * 30.0)[:, None]
    x = (g.x0 + (np.arange(g.width) + 0.5) * 30.0)[None, :]
    dist = np.hypot(x - c.x, y - c.y)
    far = (dist > 300) & (dist < 600)
    p = d.physics
    area = float(d.footprints.geometry.iloc[k].area)
    s2 = p.wing_sigma_m**2
    expected = (
        10.0 * p.wing_fraction * area * np.exp(-(dist[far] ** 2) / (2 * s2)) / (2 * np.pi * s2)
    )
    assert wing[far].mean() == pytest.approx(expected.mean() + core[far].mean(), rel=0.25)
    assert wing[far].mean() > 3 * abs(core[far].mean())
    # the core keeps 1 - wing_fraction of the peak
    assert wing[dist < 40].mean() == pytest.approx(
        (1 - p.wing_fraction) * core[dist < 40].mean(), rel=0.05
    )


def test_the_yard_appears_on_its_date() -> None:
    """The unmapped lot is grass before its date and hot pavement from it on."""
    from datetime import timedelta

    d = sx.draw_stress(6)
    y = d.physics.yard_date
    windows = []
    for yard_date in (y, y + timedelta(days=1)):  # paved on the scene's day, or the day after
        physics = replace(d.physics, yard_date=yard_date, _cache={})
        static = rd.build_static(d.footprints, d.plans, "crop", 6, stress=physics)
        draws = rd.draw_scene(static, "landsat-8", y, 6)
        windows.append(rd.sensor_window(static, draws, np.random.default_rng(2)))
    after, before = windows
    c = d.park.yard.centroid
    g = rd.CROP_GRID
    r, q = int((g.y0 - c.y) // 30), int((c.x - g.x0) // 30)
    s = math.sin(math.radians(draws.sun.elevation_deg))
    delta = d.physics.yard_delta_k(y, s)
    assert delta == pytest.approx(0.5 + 8.0 * s)
    assert d.physics.yard_delta_k(y - timedelta(days=1), s) == 0.0
    # the warmest pixel near the yard's centre (a 45-70 m lot is below one TIRS footprint)
    warm = float((after - before)[r - 2 : r + 3, q - 2 : q + 3].max())
    assert 0.1 * delta < warm < 0.6 * delta
    # far from the yard nothing changes but the wing's faint share
    assert abs(float(after[5, 5] - before[5, 5])) < 0.05


# --------------------------------------------------------------------------- products


def test_products_open_and_truth_and_roles_are_written(draw: SimulationResult) -> None:
    truth = pd.read_csv(draw.truth_path)
    scen = json.loads(draw.scenario_path.read_text())
    assert scen["scenario"] == "stress"
    fp = gpd.read_file(draw.footprints_path)
    assert fp.crs.to_epsg() == 4326 and "building_id" in fp
    assert "valid_to" not in fp.columns  # the analyst does not know of the demolition
    ids = set(fp["building_id"])
    assert set(truth["building_id"]) == ids
    assert {b["building_id"] for b in scen["buildings"]} == ids
    roles = {r for b in scen["buildings"] for r in b["roles"]}
    assert set(sx.CONFOUNDER_ROLES) | {"active-pair", "switch-on"} <= roles
    for key in ("physics", "layout", "schedule", "events", "products"):
        assert key in scen["stress"]
    assert set(truth["scene_id"]) == {p.name.removesuffix(".tar") for p in draw.products}
    assert any(p.suffix == ".tar" for p in draw.products)
    assert any("_L1TP_" in p.name for p in draw.products)
    fp_utm = fp.to_crs(32652)
    big = fp_utm.geometry.area.idxmax()
    clear = 0
    for p in draw.products:
        scene = kt.open_scene(p)
        m = scene.metadata
        assert m.scene_id == p.name.removesuffix(".tar")
        assert m.level == ("L2" if "_L2SP_" in p.name else "L1")
        assert m.crs.to_epsg() == 32652
        w = scene.read_kelvin(tuple(fp_utm.geometry[big].buffer(300).bounds), crs=32652)
        k = np.asarray(w.kelvin, float)[np.asarray(w.valid, bool)]
        assert ((k > 230.0) & (k < 340.0)).all()
        clear += k.size > 0
    assert clear >= len(draw.products) // 3


def test_l1_only_share_matches_the_draw(draw: SimulationResult) -> None:
    scen = json.loads(draw.scenario_path.read_text())
    share = scen["stress"]["physics"]["l1_only_share"]
    acq = scen["stress"]["products"]
    written: dict[tuple[str, str], set[str]] = {}
    for p in draw.products:
        sensor, level, _, day = p.name.split("_")[:4]
        written.setdefault((sensor, day), set()).add(level[:2])
    assert len(written) == len(acq)
    for a in acq:
        levels = written[(a["sensor"], a["date"].replace("-", ""))]
        assert levels == set(a["levels"])
        assert len(a["products"]) == len(a["levels"])
    realised = np.mean([a["levels"] == ["L1"] for a in acq])
    n = len(acq)
    assert abs(realised - share) <= 4 * math.sqrt(max(share * (1 - share), 0.01) / n) + 0.02
    # over many acquisitions the share converges to the drawn one
    d = sx.draw_stress(7).physics
    days = pd.date_range("2014-01-01", "2025-11-30", freq="8D").date
    long = np.mean([d.levels_on("LC08", x) == ("L1",) for x in days])
    assert long == pytest.approx(d.l1_only_share, abs=0.06)


def test_some_products_are_tar_in_some_draws() -> None:
    shares = [sx.draw_stress(s).physics.tar_share for s in range(1, 9)]
    assert max(shares) > 0.2
    p = sx.draw_stress(1).physics
    assert any(p.tar_on(f"LC08_L2SP_116034_2024{m:02d}01_x") for m in range(1, 13))


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    kw = {"scenario": "stress", "start": "2024-02-01", "end": "2024-02-20"}
    a = simulate(tmp_path / "a", seed=11, **kw)  # type: ignore[arg-type]
    b = simulate(tmp_path / "b", seed=11, workers=2, **kw)  # type: ignore[arg-type]
    c = simulate(tmp_path / "c", seed=12, **kw)  # type: ignore[arg-type]
    assert _digest(a.outdir) == _digest(b.outdir)
    assert _digest(a.outdir) != _digest(c.outdir)
    fa = gpd.read_file(a.footprints_path)
    fc = gpd.read_file(c.footprints_path)
    assert len(fa) != len(fc) or not fa.geometry.equals(fc.geometry)


def test_stress_refuses_footprints(tmp_path: Path) -> None:
    from kaesong_thermal.simulation import synthetic_footprints

    with pytest.raises(ConfigError, match="stress"):
        simulate(tmp_path / "x", scenario="stress", footprints=synthetic_footprints())
    assert not (tmp_path / "x").exists()


def test_cli_simulates_a_stress_draw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kaesong_thermal.cli import main

    out = tmp_path / "sim"
    args = ["simulate", str(out), "--scenario", "stress", "--seed", "3"]
    assert main([*args, "--start", "2025-11-01", "--end", "2025-11-16"]) == 0
    assert "simulated" in capsys.readouterr().out
    scen = json.loads((out / "scenario.json").read_text())
    assert scen["scenario"] == "stress" and scen["seed"] == 3
    assert len(scen["buildings"]) == len(gpd.read_file(out / "footprints.geojson"))
    assert main([*args, "--footprints", str(out / "footprints.geojson")]) == 1


def test_product_noise_is_a_surface_field_seen_through_the_psf() -> None:
    """The correlated noise passes the system PSF: fine structure loses more of its sd."""
    p = sx.draw_stress(101).physics
    ratios = {}
    for small_m, share in ((50.0, 1.0), (300.0, 0.0)):

        def fixed(code: str, day: date, s: float = small_m, m: float = share) -> dict:
            return {"sd_k": 0.8, "small_m": s, "large_m": max(s, 120.0), "small_share": m}

        q = replace(p, _cache={})
        q.scene_noise = fixed  # type: ignore[method-assign]
        sds = []
        for k in range(6):
            d = type("D", (), {"sensor": "landsat-8", "day": date(2021, 1, 1 + k)})()
            f = q.product_noise((200, 200), d)
            assert f.shape == (200, 200)
            assert abs(float(f.mean())) < 0.3
            sds.append(float(f.std()))
        ratios[small_m] = float(np.mean(sds)) / 0.8
    # a 50 m field keeps 55-85 % of its sd through a ~100 m footprint, a 300 m one over 85 %
    assert 0.55 <= ratios[50.0] <= 0.85
    assert ratios[300.0] >= 0.85
    assert ratios[50.0] < ratios[300.0] - 0.1


# --------------------------------------------------------------------------- heat scale


def test_heat_scale_warms_the_working_roofs_of_the_same_park(tmp_path: Path) -> None:
    one, two = sx.draw_stress(3), sx.draw_stress(3, heat_scale=2.0)
    assert one.footprints.geometry.equals(two.footprints.geometry)
    assert one.events == two.events
    assert [p.periods for p in one.plans] == [p.periods for p in two.plans]
    ratio = [b.base_excess_k / a.base_excess_k for a, b in zip(one.plans, two.plans, strict=True)]
    assert np.allclose(ratio, 2.0, atol=1e-3)
    assert two.to_json()["schedule"]["heat_scale"] == 2.0
    # through the renderer: the same working rows, twice the roof excess, a warmer product
    kw = {"scenario": "stress", "seed": 3, "start": "2025-10-01", "end": "2025-10-31"}
    a = simulate(tmp_path / "a", **kw)  # type: ignore[arg-type]
    b = simulate(tmp_path / "b", heat_scale=2.0, **kw)  # type: ignore[arg-type]
    ta, tb = pd.read_csv(a.truth_path), pd.read_csv(b.truth_path)
    assert (ta["active"] == tb["active"]).all() and ta["active"].sum() > 10
    on = ta["active"] == 1
    assert np.allclose(tb.loc[on, "roof_excess_k"] / ta.loc[on, "roof_excess_k"], 2.0, rtol=1e-2)
    assert (tb.loc[~on, "roof_excess_k"] == 0).all()
    fp = kt.load_footprints(a.footprints_path)
    ids = sorted(set(ta.loc[on, "building_id"]))

    def observed(res: SimulationResult) -> pd.DataFrame:
        products = sorted((res.outdir / "products").iterdir())
        return pd.concat([kt.extract(p, fp) for p in products], ignore_index=True)

    obs_a, obs_b = observed(a), observed(b)
    key = ["scene_id", "building_id"]
    truth = ta[[*key, "active", "roof_excess_k"]]
    m = obs_a.merge(obs_b, on=key, suffixes=("_a", "_b")).merge(truth, on=key)
    hot = m[(m["active"] == 1) & m["building_id"].isin(ids)]
    # the added heat reaches the roof's contrast diluted by the PSF (a fraction, not all of it)
    share = ((hot["contrast_k_b"] - hot["contrast_k_a"]) / hot["roof_excess_k"]).median()
    assert 0.05 < share < 1.0
    cold = m[m["active"] == 0]
    diff = cold["contrast_k_b"] - cold["contrast_k_a"]
    assert abs(diff.median()) < 0.05  # most idle roofs are not touched ...
    assert diff.max() > 0.3  # ... but a neighbour of a working one gets its spill


@pytest.mark.parametrize(
    ("what", "bad_draw", "bad_cli"),
    [
        ("heat", {"heat_scale": 0.0}, "-1"),
        ("noise", {"noise_scale": float("nan")}, "0"),
        ("material", {"material_scale": 0.5}, "0.5"),
    ],
)
def test_scales_must_be_positive_and_are_for_the_stress_family(
    what: str,
    bad_draw: dict[str, float],
    bad_cli: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kaesong_thermal.cli import main

    with pytest.raises(ConfigError, match=f"{what} scale"):
        sx.draw_stress(3, **bad_draw)
    out = tmp_path / "sim"
    args = ["simulate", str(out), "--start", "2025-11-01", "--end", "2025-11-16"]
    assert main([*args, "--scenario", "stress", f"--{what}-scale", bad_cli]) == 1
    assert main([*args, "--scenario", "kaesong", f"--{what}-scale", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(f"{what} scale" in line for line in err)
    assert not out.exists()


# --------------------------------------------------------------------------- noise scale


def test_noise_scale_makes_the_same_park_noisier(tmp_path: Path) -> None:
    one, two = sx.draw_stress(3), sx.draw_stress(3, noise_scale=2.0)
    assert one.footprints.geometry.equals(two.footprints.geometry)
    assert one.events == two.events
    assert [p.base_excess_k for p in one.plans] == [p.base_excess_k for p in two.plans]
    assert two.physics.noise_sd_k == (1.0, 2.0)
    assert two.to_json()["schedule"]["noise_scale"] == 2.0
    kw = {"scenario": "stress", "seed": 3, "start": "2025-10-01", "end": "2025-10-31"}
    a = simulate(tmp_path / "a", **kw)  # type: ignore[arg-type]
    b = simulate(tmp_path / "b", noise_scale=2.0, **kw)  # type: ignore[arg-type]
    sd_a = [
        p["noise"]["sd_k"] for p in json.loads(a.scenario_path.read_text())["stress"]["products"]
    ]
    sd_b = [
        p["noise"]["sd_k"] for p in json.loads(b.scenario_path.read_text())["stress"]["products"]
    ]
    assert np.allclose(np.asarray(sd_b) / np.asarray(sd_a), 2.0, rtol=1e-3)
    assert min(sd_a) >= 0.5 and max(sd_a) <= 1.0
    assert pd.read_csv(a.truth_path).equals(pd.read_csv(b.truth_path))  # the same activity
    # product by product, the noisier one minus the other is the first one's noise field: no
    # offset, and the scene's drawn sd less what the PSF smooths away (30 m samples of a field
    # with 50-300 m structure, blurred by the ~100 m footprint)
    sd = {
        p["date"]: p["noise"]["sd_k"]
        for p in json.loads(a.scenario_path.read_text())["stress"]["products"]
    }
    checked = 0
    for pa in sorted((a.outdir / "products").iterdir()):
        with kt.open_scene(pa) as sa, kt.open_scene(b.outdir / "products" / pa.name) as sb:
            wa, wb = sa.read_kelvin(), sb.read_kelvin()
            day = sa.metadata.acquired.date().isoformat()
        ok = wa.valid & wb.valid
        if ok.mean() < 0.1:
            continue
        diff = (wb.kelvin - wa.kelvin)[ok]
        assert abs(float(diff.mean())) < 0.05
        assert 0.5 < float(diff.std()) / sd[day] < 1.0
        checked += 1
    assert checked >= 2


# --------------------------------------------------------------------------- material scale


def test_level2_retrieval_with_a_wrong_emissivity_reads_colder_and_follows_the_season() -> None:
    from kaesong_thermal.simulation import physics as ph

    k1, k2 = 774.8853, 1321.0789  # TIRS band 10
    summer = ph.Atmosphere(0.62, 2.8, 4.6, 0.0)
    winter = ph.Atmosphere(0.92, 0.45, 0.75, 0.0)
    t = np.array([305.0])
    assert ph.retrieved_surface_k(t, 0.96, 0.96, summer, k1, k2)[0] == pytest.approx(305.0)
    hot = ph.retrieved_surface_k(t, 0.80, 0.96, summer, k1, k2)[0] - 305.0
    cold = ph.retrieved_surface_k(np.array([275.0]), 0.80, 0.96, winter, k1, k2)[0] - 275.0
    # the linearised bias (eps_a - eps)(B - L_down) / (eps_a dB/dT): -6.4 K and -8.4 K
    assert -7.0 < hot < -6.2 and -9.2 < cold < -8.2
    assert hot - cold > 1.5  # a summer-peaked swing of the idle contrast


def test_material_scale_widens_the_roofs_of_the_same_park(tmp_path: Path) -> None:
    from kaesong_thermal.simulation import physics as ph

    one, four = sx.draw_stress(3), sx.draw_stress(3, material_scale=4.0)
    assert one.footprints.geometry.equals(four.footprints.geometry)
    assert one.events == four.events
    assert [p.periods for p in one.plans] == [p.periods for p in four.plans]
    assert all(p.emissivity is None for p in one.plans) and one.physics.l2_emissivity_px == 0
    assert four.physics.l2_emissivity_px == 3
    eps = np.array([p.emissivity for p in four.plans], float)
    typ = np.array([ph.ROOF_TYPES[p.roof_type][1] for p in four.plans])
    assert np.all(eps <= typ + 1e-9) and np.all(1 - eps <= 4 * (1 - typ) + 1e-9)
    assert eps.min() < 0.85 and eps.max() > 0.9
    ratio = np.array([b.gain_k / a.gain_k for a, b in zip(one.plans, four.plans, strict=True)])
    assert ratio.min() >= 1 / 1.45 - 1e-3 and ratio.max() <= 1.45 + 1e-3
    assert ratio.max() - ratio.min() > 0.3
    assert four.to_json()["schedule"]["material_scale"] == 4.0
    kw = {"scenario": "stress", "seed": 3, "start": "2025-09-01", "end": "2025-11-30"}
    a = simulate(tmp_path / "a", **kw)  # type: ignore[arg-type]
    b = simulate(tmp_path / "b", material_scale=4.0, **kw)  # type: ignore[arg-type]
    assert pd.read_csv(a.truth_path).equals(pd.read_csv(b.truth_path))  # the same activity
    doc = json.loads(b.scenario_path.read_text())
    assert doc["stress"]["physics"]["l2_emissivity_px"] == 3
    assert [x["emissivity"] for x in doc["buildings"]] == [p.emissivity for p in four.plans]
    fp = gpd.read_file(a.footprints_path)
    l2 = [q for q in a.products if "_L2SP_" in q.name]
    assert len(l2) == 3
    wins = [kt.open_scene(q).read_kelvin() for q in l2]
    k = int(np.argmax([np.isfinite(w.kelvin).mean() for w in wins]))  # the clearest one
    wa = wins[k]
    wb = kt.open_scene(b.outdir / "products" / l2[k].name).read_kelvin()
    ka, kb = wa.kelvin, wb.kelvin
    from rasterio.features import rasterize

    utm = fp.to_crs(wa.crs)
    shapes = [(g, k + 1) for k, g in enumerate(utm.geometry)]
    lab = rasterize(shapes, out_shape=ka.shape, transform=wa.transform)
    near = [(g.buffer(300), 1) for g in utm.geometry]
    far = rasterize(near, out_shape=ka.shape, transform=wa.transform)
    ok = np.isfinite(ka) & np.isfinite(kb)
    # away from the park little changes (only where the emissivity changes within 90 m: the
    # edges of water, woods and fields); on the roofs, the darker the roof the colder its L2
    away = np.abs((kb - ka)[ok & (far == 0)])
    assert np.median(away) < 0.01 and np.quantile(away, 0.9) < 0.1
    diff = kb - ka
    drop = np.array(
        [diff[m].mean() if (m := ok & (lab == k + 1)).any() else np.nan for k in range(len(fp))]
    )
    keep = np.isfinite(drop)
    assert keep.sum() >= 10
    assert np.corrcoef(eps[keep], drop[keep])[0, 1] > 0.7
    assert np.nanmin(drop) < -3.0
