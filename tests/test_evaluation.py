"""Tests of the evaluation metrics (hand-computed) and of the scoring of a known story."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import kaesong_thermal as kt
from kaesong_thermal.errors import AnalysisError
from kaesong_thermal.evaluation import (
    alert_delays,
    expected_calibration_error,
    false_alert_rate,
    minimum_detectable_excess,
    operating_truth,
    precision_recall_f1,
    score,
    switch_on_events,
)


def test_precision_recall_f1_hand() -> None:
    r = precision_recall_f1([1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (2, 1, 1, 1)
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)
    empty = precision_recall_f1([0, 0], [0, 0])
    assert np.isnan(empty["precision"]) and np.isnan(empty["f1"])
    with pytest.raises(AnalysisError):
        precision_recall_f1([1], [1, 0])


def test_expected_calibration_error_hand() -> None:
    # bin 9: conf 0.9, accuracy 0.5 -> |0.4| x 0.5; bin 1: conf 0.1, accuracy 0 -> 0.1 x 0.5
    assert expected_calibration_error([0.9, 0.9, 0.1, 0.1], [1, 0, 0, 0]) == pytest.approx(0.25)
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == pytest.approx(0.0)
    assert np.isnan(expected_calibration_error([], []))


def _truth(active: list[int], building: str = "x") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "building_id": building,
            "acquired": pd.date_range("2020-01-01", periods=len(active), freq="16D", tz="UTC"),
            "active": active,
        }
    )


def test_operating_truth_fills_days_off_and_drops_blips() -> None:
    t = _truth([0, 0, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1])
    op = operating_truth(t, window_days=17)  # +/- one scene
    # row 2 is a lone blip (1 of 3) -> not operating; row 8 is a day off inside work -> operating
    assert op.tolist() == [
        False,
        False,
        False,
        False,
        False,
        False,
        True,
        True,
        True,
        True,
        True,
        True,
    ]


def test_switch_on_events_and_delays() -> None:
    t = _truth([0] * 6 + [1] * 6)
    t["operating"] = t["active"].astype(bool)
    ev = switch_on_events(t, min_idle_days=60)
    assert ev["switch_on"].tolist() == [t["acquired"].iloc[6]]
    alerts = pd.DataFrame({"building_id": ["x"], "date": [t["acquired"].iloc[8]]})
    valid = t.loc[[0, 3, 6, 8, 9], ["building_id", "acquired"]]
    d = alert_delays(ev, alerts, valid)
    assert d["delay_days"].iloc[0] == 32
    assert d["delay_scenes"].iloc[0] == 2  # valid scenes 6 and 8
    missed = alert_delays(ev, alerts.iloc[:0], valid)
    assert np.isnan(missed["delay_days"].iloc[0])


def test_false_alert_rate_hand() -> None:
    alerts = pd.DataFrame({"true_alert": [True, False, False]})
    r = false_alert_rate(alerts, 40.0)
    assert r["n_false"] == 2 and r["false_per_building_year"] == pytest.approx(0.05)


def test_minimum_detectable_excess_hand() -> None:
    z = np.arange(20) / 10.0
    # threshold = 95th percentile of z = 1.805; 90 % of (1.805 - z) * s reach it at quantile 0.9
    assert minimum_detectable_excess(z, np.ones(20)) == pytest.approx(1.805 - 0.19)
    assert minimum_detectable_excess(z, np.full(20, 2.0)) == pytest.approx(2 * (1.805 - 0.19))
    assert np.isnan(minimum_detectable_excess(z[:10], np.ones(10)))


def test_score_on_a_known_story() -> None:
    rng = np.random.default_rng(7)
    dates = pd.date_range("2014-01-05", "2025-11-05", freq="16D", tz="UTC")
    rows, truth = [], []
    for k, d in enumerate(dates):
        effect = 3.0 * np.sin(2 * np.pi * d.day_of_year / 365.25) + rng.normal(0, 0.5)
        for i in range(10):
            b = f"b{i}"
            on = d < pd.Timestamp("2016-02-10", tz="UTC") or (b == "b0" and d.year >= 2024)
            rows.append(
                {
                    "building_id": b,
                    "scene_id": f"S{k}",
                    "acquired": d,
                    "contrast_k": effect + 0.3 * i + 3.0 * on + rng.normal(0, 0.3),
                    "sigma_k": 0.3,
                    "valid_fraction": 1.0,
                    "ring_valid_px": 50,
                    "area_m2": 20000.0 if i < 5 else 6000.0,
                }
            )
            truth.append(
                {
                    "scene_id": f"S{k}",
                    "building_id": b,
                    "acquired": d,
                    "active": int(on),
                    "roof_excess_k": 6.0 * on,
                }
            )
    a = kt.analyze(pd.DataFrame(rows))
    res = score(a, pd.DataFrame(truth))
    assert res["observation"]["f1"] > 0.9
    assert res["building_month"]["f1"] > 0.9
    assert res["idle_years"]["n_false"] == 0
    assert res["operating_years"]["large_rated_active"] > 0.9
    ev = res["switch_on"]["events"]
    assert [e["building_id"] for e in ev] == ["b0"]
    assert ev[0]["delay_scenes"] <= 2
    assert res["status_as_of"]["status"]["b0"] == "active"
    assert 0.0 <= res["calibration"]["ece"] <= 1.0
    mde = {r["building_id"]: r for r in res["minimum_detectable"]}
    assert mde["b0"]["dilution"] == pytest.approx(0.5, abs=0.1)  # 3 K seen of a 6 K roof excess
