"""Tests of observation states, statuses with hysteresis, transitions and confidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kaesong_thermal.classify import (
    ClassifyParams,
    confidence_from_features,
    observation_states,
    status_at,
    status_timeline,
    transitions_from,
)
from kaesong_thermal.errors import AnalysisError

# idle idle active idle [no data] active active idle idle
Z = [0.1, -0.5, 4.0, 0.3, np.nan, 5.0, 3.5, 0.2, -0.1]


def _obs(z: list[float], building: str = "a") -> pd.DataFrame:
    n = len(z)
    zz = np.asarray(z, dtype=float)
    return pd.DataFrame(
        {
            "building_id": building,
            "scene_id": [f"{building}{i}" for i in range(n)],
            "acquired": pd.date_range("2024-01-01", periods=n, freq="8D", tz="UTC"),
            "valid": np.isfinite(zz),
            "z": zz,
            "anomaly_k": zz * 0.5,
        }
    )


def test_observation_states_thresholds() -> None:
    df = pd.DataFrame(
        {
            "valid": [True, True, True, True, False, True],
            "z": [2.5, 2.49, 1.5, 1.49, 5.0, np.nan],
            "anomaly_k": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    assert observation_states(df).tolist() == [
        "active",
        "uncertain",
        "uncertain",
        "idle",
        "no_data",
        "no_data",
    ]
    low = ClassifyParams(min_anomaly_k=1.5)
    assert observation_states(df, low)[0] == "uncertain"


def test_two_of_three_with_hysteresis() -> None:
    obs = _obs(Z)
    obs["state"] = observation_states(obs)
    tl = status_timeline(obs)
    # the no-data row is skipped; one hot scene (row 2) is only a candidate
    assert tl["status"].tolist() == [
        "uncertain",
        "idle",
        "idle",
        "idle",
        "active",
        "active",
        "active",
        "idle",
    ]
    assert tl["n_valid"].tolist() == list(range(1, 9))
    assert tl.loc[tl["status"] == "active", "since"].nunique() == 1
    assert tl.loc[tl["status"] == "active", "since"].iloc[0] == obs["acquired"].iloc[5]


def test_transitions_with_evidence() -> None:
    obs = _obs(Z)
    obs["state"] = observation_states(obs)
    tl = status_timeline(obs)
    tr = transitions_from(tl, obs)
    assert tr[["from_status", "to_status", "scene_id"]].values.tolist() == [
        ["uncertain", "idle", "a1"],
        ["idle", "active", "a5"],
        ["active", "idle", "a8"],
    ]
    assert tr["evidence"].iloc[1] == ["a2", "a3", "a5"]
    assert tr["z"].iloc[1] == 5.0
    later = transitions_from(tl, obs, since=obs["acquired"].iloc[5])
    assert later["to_status"].tolist() == ["idle"]


def test_status_at_dates_and_staleness() -> None:
    obs = pd.concat([_obs(Z, "a"), _obs([np.nan] * 9, "gone")], ignore_index=True)
    obs["state"] = observation_states(obs)
    tl = status_timeline(obs)
    ids = pd.Index(["a", "gone"])
    st = status_at(tl, ids, obs["acquired"].iloc[6])
    assert st.loc["a", "status"] == "active"
    assert st.loc["a", "evidence"] == ["a3", "a5", "a6"]
    assert st.loc["a", "n_valid"] == 6
    assert st.loc["a", "z"] == pytest.approx(3.5)  # median of z 0.3, 5.0, 3.5 in the window
    assert st.loc["gone", "status"] == "no_data"
    assert st.loc["gone", "confidence"] == 0.0
    far = status_at(tl, ids, pd.Timestamp("2026-01-01", tz="UTC"))
    assert far.loc["a", "status"] == "no_data"  # nothing valid for > 180 days
    assert far.loc["a", "last_valid"] == obs["acquired"].iloc[8]


def test_confidence_monotone_and_bounded() -> None:
    z = np.linspace(-2, 12, 30)
    status = np.array(["active"] * 30)
    c = confidence_from_features(status, z, np.ones(30))
    assert np.all(np.diff(c) >= 0) and c.min() >= 0 and c.max() <= 1
    ci = confidence_from_features(np.array(["idle"] * 30), z, np.ones(30))
    assert np.all(np.diff(ci) <= 0)
    assert confidence_from_features(np.array(["uncertain"]), np.array([1.0]), np.ones(1))[0] == 0


def test_bad_params_raise() -> None:
    with pytest.raises(AnalysisError):
        ClassifyParams(window=3, need=1)
    with pytest.raises(AnalysisError):
        ClassifyParams(z_active=2.0, z_idle=3.0)
