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
