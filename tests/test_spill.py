"""Tests of the neighbour spill model: PSF overlap coefficients and per-scene unmixing."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import kaesong_thermal as kt
from kaesong_thermal.spill import spill_matrix, unmix_anomalies


def _park() -> gpd.GeoDataFrame:
    """A 4,800 m2 roof with a 625 m2 one 12 m east, two 2,400 m2 roofs 15 m apart, ten others."""
    geoms = {
        "big": shapely.box(0, 0, 80, 60),
        "small": shapely.box(92, 20, 117, 45),
        "p1": shapely.box(1000, 0, 1060, 40),
        "p2": shapely.box(1075, 0, 1135, 40),
    }
    for i in range(10):
        x, y = 500.0 * (i % 5), 600.0 + 500.0 * (i // 5)
        geoms[f"o{i}"] = shapely.box(x, y, x + 50, y + 50)
    return gpd.GeoDataFrame(
        {"building_id": list(geoms)}, geometry=list(geoms.values()), crs="EPSG:32652"
    ).set_index("building_id")


def test_spill_coefficients_from_the_geometry() -> None:
    m = spill_matrix(_park())
    dense = pd.DataFrame(m.matrix.toarray(), index=m.ids, columns=m.ids)
    # own dilution grows with the roof; a 625 m2 roof keeps ~3 % of its own excess
    assert 0.15 < dense.loc["big", "big"] < 0.25
    assert 0.02 < dense.loc["small", "small"] < 0.05
    # the small roof 12 m away borrows ~0.1 K per kelvin of the big one: four times its own
    assert dense.loc["small", "big"] > 3.0 * dense.loc["small", "small"]
    assert dense.loc["big", "small"] < 0.2 * dense.loc["small", "big"]
    # a symmetric pair, nothing between buildings 500 m apart
    # (to the 30 m grid's phase)
    assert dense.loc["p1", "p2"] == pytest.approx(dense.loc["p2", "p1"], rel=0.01)
    assert dense.loc["p1", "p2"] > 0.02
    assert dense.loc["o0", "o1"] == 0.0 and dense.loc["big", "p1"] == 0.0
    # projected or geographic input: the same coefficients (to the grid phase, a few per cent)
    m4326 = spill_matrix(_park().to_crs("EPSG:4326"))
    assert np.allclose(m4326.matrix.toarray(), m.matrix.toarray(), rtol=0.05, atol=3e-3)


def _observations(fp: gpd.GeoDataFrame, excess: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """2016-2025 every 16 days; roofs with ``excess[b] = (from, kelvin)`` spill through M."""
    m = spill_matrix(fp)
    dense = pd.DataFrame(m.matrix.toarray(), index=m.ids, columns=m.ids)
    rng = np.random.default_rng(11)
    dates = pd.date_range("2016-01-04 02:10", "2025-10-30", freq="16D", tz="UTC")
    offsets = dict(zip(fp.index, rng.normal(0.0, 0.8, len(fp)), strict=True))
    rows = []
    for k, d in enumerate(dates):
        effect = 2.5 * np.sin(2 * np.pi * (d.day_of_year - 100) / 365.25) + rng.normal(0, 0.4)
        on = {b: v for b, (start, v) in excess.items() if d >= pd.Timestamp(start, tz="UTC")}
        for b in fp.index:
            c = effect + offsets[b] + rng.normal(0.0, 0.12)
            c += sum(dense.loc[b, j] * v for j, v in on.items())
            rows.append(
                {
                    "building_id": b,
                    "scene_id": f"LC08_{k:04d}",
                    "acquired": d,
                    "sensor": "LC08",
                    "level": "L2",
                    "contrast_k": c,
                    "sigma_k": 0.1,
                    "valid_fraction": 1.0,
                    "ring_valid_px": 50,
                }
            )
    return pd.DataFrame(rows)


def test_idle_neighbour_of_a_hot_roof_is_not_flagged_while_adjacent_active_pair_both_are() -> None:
    fp = _park()
    excess = {"big": ("2024-01-01", 10.0), "p1": ("2024-03-01", 8.0), "p2": ("2024-03-01", 8.0)}
    obs = _observations(fp, excess)
    # the cause: without the spill model the 625 m2 roof 12 m from the hot one looks active
    naive = kt.analyze(obs).status()
    assert naive.loc["small", "status"] == "active"
    a = kt.analyze(obs, footprints=fp)
    st = a.status()
    assert st.loc["big", "status"] == "active"
    assert st.loc["p1", "status"] == "active" and st.loc["p2", "status"] == "active"
    assert st.loc["small", "status"] == "idle"
    assert (st.loc[[f"o{i}" for i in range(10)], "status"] == "idle").all()
    new = a.transitions(since="2023-01-01").query("to_status == 'active'")
    assert set(new["building_id"]) == {"big", "p1", "p2"}
    late = a.observations.loc[a.observations["acquired"] >= "2024-03-01"]
    small = late.loc[late["building_id"] == "small"]
    # the borrowed excess (~1.1 K = 0.116 x 10 K) is removed and named in spill_k
    assert small["spill_k"].median() == pytest.approx(1.1, abs=0.25)
    assert abs(small["anomaly_k"].median()) < 0.3
    # each of the pair keeps its own excess: its dilution x 8 K
    m = spill_matrix(fp)
    d = dict(zip(m.ids, m.matrix.diagonal(), strict=True))
    p1 = late.loc[late["building_id"] == "p1", "anomaly_k"].median()
    assert p1 == pytest.approx(d["p1"] * 8.0, rel=0.2)


def test_unmixing_leaves_scenes_without_warm_buildings_alone() -> None:
    fp = _park()
    obs = _observations(fp, {})
    a = kt.analyze(obs)
    out = unmix_anomalies(a.observations, spill_matrix(fp), gate_z=50.0)
    assert np.array_equal(out["z"].to_numpy(), a.observations["z"].to_numpy(), equal_nan=True)
    assert (out["spill_k"].dropna() == 0.0).all()


def test_a_hall_hidden_by_cloud_widens_its_neighbours_uncertainty() -> None:
    from scipy import sparse

    from kaesong_thermal.spill import HIDDEN_DAYS, SpillMatrix

    # a 1 K roof excess of the hall adds 0.1 K to the shed's contrast; its own dilution is 0.3
    spill = SpillMatrix(
        ids=np.array(["hall", "shed"]),
        matrix=sparse.csr_matrix(np.array([[0.3, 0.0], [0.1, 0.2]])),
        native_pixel_m=100.0,
    )
    day0 = pd.Timestamp("2024-06-01", tz="UTC")

    def scene(k: int, days: float, hall: float, shed: float) -> list[dict[str, object]]:
        t = day0 + pd.Timedelta(days=days)
        return [
            {
                "scene_id": f"S{k}",
                "building_id": b,
                "acquired": t,
                "anomaly_k": a,
                "anomaly_sigma_k": 0.3,
                "z": a / 0.3,
            }
            for b, a in (("hall", hall), ("shed", shed))
        ]

    rows = (
        scene(0, 0, 3.0, 1.3)  # the hall works at 3 / 0.3 = 10 K: 1 K of it on the shed
        + scene(1, 16, np.nan, 1.0)  # cloud over the hall, the shed clear and as warm
        + scene(5, 100, np.nan, 1.0)  # a cloudy season: the hall unseen for 100 days
        + scene(2, 16 + HIDDEN_DAYS + 10, np.nan, 1.0)  # long after the hall was last seen
        + scene(3, 300, 0.0, 0.0)  # the hall seen idle ...
        + scene(4, 316, np.nan, 1.0)  # ... then hidden: nothing is assumed of it
    )
    obs = pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # any row order
    out = unmix_anomalies(obs, spill).set_index(["scene_id", "building_id"])
    # both clear: the hall's spill (0.1 x its ~10 K) is taken from the shed
    assert out.loc[("S0", "shed"), "anomaly_k"] == pytest.approx(1.3 - 0.1 * 3.0 / 0.3, abs=0.05)
    # hidden hall: nothing subtracted, its last spill (0.1 x ~9.9 K) in the shed's uncertainty
    hidden = out.loc[("S1", "shed")]
    keep = 1.0 / 1.01  # a lone warm roof keeps 1 / (1 + RIDGE) of its anomaly
    assert hidden["anomaly_k"] == pytest.approx(keep)
    assert hidden["anomaly_sigma_k"] == pytest.approx(np.hypot(0.3, 0.99), abs=0.02)
    assert hidden["z"] < 1.0
    # still so after three months unseen (a working hall does not cool because it is cloudy)
    assert HIDDEN_DAYS > 100
    assert out.loc[("S5", "shed"), "anomaly_sigma_k"] == pytest.approx(
        np.hypot(0.3, 0.99), abs=0.02
    )
    assert out.loc[("S2", "shed"), "z"] == pytest.approx(keep / 0.3)
    assert out.loc[("S4", "shed"), "z"] == pytest.approx(keep / 0.3)


def test_a_spill_modelled_short_leaves_no_heat_on_the_idle_neighbour() -> None:
    from scipy import sparse

    from kaesong_thermal.spill import MODEL_REL, SpillMatrix

    # the model: 0.10 K on the shed per kelvin of the hall's roof excess; the park's real PSF
    # is wider, so the shed receives 0.13 K per kelvin (30 % more than modelled)
    model = SpillMatrix(
        ids=np.array(["hall", "shed"]),
        matrix=sparse.csr_matrix(np.array([[0.3, 0.0], [0.1, 0.05]])),
        native_pixel_m=100.0,
    )
    rng = np.random.default_rng(5)
    rows = []
    for k in range(60):
        excess = rng.uniform(20.0, 40.0)  # the hall's roof excess, K
        for b, a in (("hall", 0.3 * excess), ("shed", 0.13 * excess)):
            a += rng.normal(0.0, 0.3)
            rows.append(
                {"scene_id": f"S{k}", "building_id": b, "anomaly_k": a, "anomaly_sigma_k": 0.3}
            )
    obs = pd.DataFrame(rows).assign(z=lambda d: d["anomaly_k"] / d["anomaly_sigma_k"])
    exact = unmix_anomalies(obs, model, model_rel=0.0)
    shed0 = exact.loc[exact["building_id"] == "shed"]
    # the cause: 3 K removed of 3.9 K, 0.9 K left against 0.3 K of noise
    assert shed0["spill_k"].median() == pytest.approx(3.0, abs=0.4)
    assert shed0["anomaly_k"].median() == pytest.approx(0.9, abs=0.3)
    assert shed0["z"].median() > 2.5
    out = unmix_anomalies(obs, model)
    shed = out.loc[out["building_id"] == "shed"]
    hall = out.loc[out["building_id"] == "hall"]
    assert MODEL_REL == 0.25
    # the same residual, now inside its own uncertainty (0.25 x 3 K in quadrature)
    assert shed["anomaly_k"].median() == pytest.approx(0.9, abs=0.3)
    assert shed["anomaly_sigma_k"].median() == pytest.approx(np.hypot(0.3, 0.75), abs=0.15)
    assert (shed["z"] >= 2.5).mean() < 0.05
    # the hall lent nothing out of its own anomaly: its z is untouched, far above any threshold
    assert np.allclose(hall["z"], exact.loc[exact["building_id"] == "hall", "z"])
    assert hall["z"].min() > 15.0
