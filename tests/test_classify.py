"""Tests of observation states, statuses with hysteresis, transitions and confidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kaesong_thermal.classify import (
    ClassifyParams,
    confidence_from_features,
    episode_starts,
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
    tl = status_timeline(
        obs, ClassifyParams(rule="window", accumulate=0)
    )  # the per-scene rule alone
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
    tl = status_timeline(
        obs, ClassifyParams(rule="window", accumulate=0)
    )  # the per-scene rule alone
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
    tl = status_timeline(obs, ClassifyParams(rule="window"))
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
    for bad in ({"pi_on": 0.0}, {"pi_on": 1.2}, {"head_start": 1.0}, {"head_start": -0.1}):
        with pytest.raises(AnalysisError, match=next(iter(bad))):
            ClassifyParams(**bad)  # type: ignore[arg-type]


def test_accumulated_z_hand_computed() -> None:
    from kaesong_thermal.classify import accumulated_z

    z = np.array([1.0, 2.0, 3.0, 0.5, 1.0])
    start = np.array([0, 0, 0, 3, 3])  # two buildings: rows 0-2 and 3-4
    out = accumulated_z(z, start, 3)
    assert np.isnan(out[0]) and np.isnan(out[3])  # first scene of each building
    assert out[1] == pytest.approx(3.0 / np.sqrt(2))
    assert out[2] == pytest.approx(6.0 / np.sqrt(3))
    assert out[4] == pytest.approx(1.5 / np.sqrt(2))
    assert np.isnan(accumulated_z(z, start, 1)).all()


def test_persistent_moderate_excess_is_caught_by_accumulation_only() -> None:
    # z = 1.4 in every scene: "idle" per scene (< 1.5), yet Z_5 = 1.4 sqrt(5) = 3.13 reaches the
    # threshold of a building with 10 valid scenes a year: max(2.5, Phi^-1(1 - 0.02 / 10)) = 2.88
    n = 10
    obs = pd.DataFrame(
        {
            "building_id": ["b"] * n,
            "scene_id": [f"s{i}" for i in range(n)],
            "acquired": pd.date_range("2020-01-01", periods=n, freq="16D", tz="UTC"),
            "valid": True,
            "z": 1.4,
            "anomaly_k": 0.6,
        }
    )
    obs["state"] = observation_states(obs)
    assert set(obs["state"]) == {"idle"}
    off = status_timeline(obs, ClassifyParams(rule="window", accumulate=0))
    assert off["status"].tolist() == ["uncertain"] + ["idle"] * (n - 1)
    on = status_timeline(obs, ClassifyParams(rule="window"))
    # Z_4 = 2.80 < 2.88 <= Z_5 = 3.13: over the threshold from the 5th scene, active on the 6th
    # (two consecutive scenes)
    assert on["status"].tolist() == ["uncertain"] * 5 + ["active"] * 5
    assert on["z_acc"].iloc[3] == pytest.approx(2.8) and on["z_acc"].iloc[4] == pytest.approx(
        1.4 * np.sqrt(5)
    )
    assert on["z_acc"].iloc[5] == pytest.approx(1.4 * np.sqrt(6))
    # hysteresis: idle scenes (z = -1.0) do not switch it off while Z_6 >= 1.0
    tail = obs.copy()
    tail.loc[7:, "z"] = -1.0
    tail["state"] = observation_states(tail)
    t = status_timeline(tail, ClassifyParams(rule="window"))
    assert t["status"].iloc[6] == "active"
    z6 = t["z_acc"].to_numpy()
    for i in range(7, n):
        expect = "active" if z6[i] >= 1.0 else "idle"
        assert t["status"].iloc[i] == expect
    assert t["status"].iloc[-1] == "idle"


def _stopping(active: np.ndarray, stopped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Status per building and scene of z rows ``active`` then ``stopped`` (one per building)."""
    z = np.concatenate([active, stopped], axis=1)
    obs = pd.concat(
        [_obs(list(row), building=f"b{i:03d}") for i, row in enumerate(z)], ignore_index=True
    )
    obs["state"] = observation_states(obs)
    tl = status_timeline(obs)
    return tl["status"].to_numpy().reshape(z.shape), tl["state"].to_numpy().reshape(z.shape)


@pytest.mark.parametrize(("level", "median_lag", "p95_lag"), [(4.0, (1, 3), 4), (2.0, (5, 9), 15)])
def test_a_building_that_stops_goes_idle_though_some_quiet_scenes_score_above_one(
    level: float, median_lag: tuple[int, int], p95_lag: int
) -> None:
    # 300 buildings working for 30 scenes (z = 4, or z ~ N(2, 1): weak), then stopped:
    # z ~ N(0, 1) for 60 scenes, about one stopped scene in six at z >= 1. The idle CUSUM steps
    # by half the log-likelihood ratio of "stopped" against "working at the run's level": a
    # strong roof is idle after about two stopped scenes, a weak one after about seven; no
    # warm-looking scene restarts the count (it used to: some stayed active for good)
    rng = np.random.default_rng(7)
    n_b, on, off = 300, 30, 60
    active = np.full((n_b, on), level) if level >= 4 else level + rng.standard_normal((n_b, on))
    status, _ = _stopping(active, rng.standard_normal((n_b, off)))
    assert (status[:, on - 1] == "active").all()
    idle = status[:, on:] == "idle"
    assert idle.any(axis=1).all()
    lag = idle.argmax(axis=1) + 1  # stopped scenes until the status is idle
    assert median_lag[0] <= np.median(lag) <= median_lag[1]
    assert np.percentile(lag, 95) <= p95_lag
    # once idle it stays idle: the head start of the next CUSUM (half of h) does not turn noise
    # into a new activation
    relapse = np.mean([(status[i, on + lag[i] :] == "active").any() for i in range(n_b)])
    assert relapse <= 0.02


def test_a_paused_building_is_active_again_at_its_first_warm_scene() -> None:
    # z = 5 for 20 scenes, a pause of 2 stopped scenes (z = 0), then z = 5 again. At this level
    # one stopped scene is decisive (idle step 8.7 >= idle_h): the pause is idle; with the head
    # start (h / 2 = 2.5, 1.5 after the second stopped scene) the first warm scene after it is
    # active again; without it the CUSUM needs two warm scenes (4 + 4 >= h = 5)
    z = [5.0] * 20 + [0.0] * 2 + [5.0] * 5
    obs = _obs(z).assign(state=lambda d: observation_states(d))
    status = status_timeline(obs)["status"].tolist()
    assert status[19] == "active"
    assert status[20] == "idle" and status[21] == "idle"
    assert status[22] == "active"  # the first warm scene after the pause
    cold = status_timeline(obs, ClassifyParams(head_start=0.0))["status"].tolist()
    assert cold[22] != "active" and cold[23] == "active"


def test_the_days_off_of_a_strongly_working_roof_are_not_active_scenes() -> None:
    # 200 strongly working roofs (z ~ N(5, 1) on working days, 75 % of the scenes) with their
    # days off at z ~ N(0, 1): inside the alarm, a day off is active only above the posterior
    # decision point (about 1.25: the level is taken from the clipped z), not at z >= 0
    rng = np.random.default_rng(3)
    n_b, n = 200, 60
    work = rng.uniform(size=(n_b, n)) < 0.75
    work[:, :4] = True
    z = np.where(work, 5.0, 0.0) + rng.standard_normal((n_b, n))
    obs = pd.concat(
        [_obs(list(row), building=f"b{i:03d}") for i, row in enumerate(z)], ignore_index=True
    )
    obs["state"] = observation_states(obs)
    state = status_timeline(obs)["state"].to_numpy().reshape(n_b, n)[:, 10:]
    w = work[:, 10:]
    assert (state[w] == "active").mean() > 0.95
    assert (state[~w] == "active").mean() < 0.12
    fixed = status_timeline(obs, ClassifyParams(pi_on=1.0))["state"].to_numpy()
    fixed = fixed.reshape(n_b, n)[:, 10:]
    assert (fixed[~w] == "active").mean() > 0.3  # the fixed rule z >= 0 takes half of them


def test_a_return_after_days_off_is_not_a_new_activation() -> None:
    # hand-made transitions: a starts in January, pauses 12 days in January-February (a
    # resumption), stops in June and starts again 70 days later (a new period); b starts once
    tr = pd.DataFrame(
        {
            "building_id": ["a", "a", "a", "a", "b", "a"],
            "date": pd.to_datetime(
                [
                    "2024-01-01",
                    "2024-01-20",
                    "2024-02-01",
                    "2024-06-01",
                    "2024-02-01",
                    "2024-08-10",
                ],
                utc=True,
            ),
            "from_status": ["idle", "active", "idle", "active", "idle", "idle"],
            "to_status": ["active", "idle", "active", "idle", "active", "active"],
        }
    )
    assert episode_starts(tr).tolist() == [True, False, False, False, True, True]
    assert episode_starts(tr, within_days=5.0).tolist() == [True, False, True, False, True, True]
    # a strong roof with a day off every fourth scene (8 days apart): its status returns to
    # active after each of them, one active period all the same
    z = ([5.0] * 3 + [0.0]) * 15
    obs = _obs(z)
    obs["state"] = observation_states(obs)
    tl = status_timeline(obs)
    tr = transitions_from(tl, obs)
    on = tr["to_status"] == "active"
    assert on.sum() >= 10
    starts = episode_starts(tr)
    assert starts.sum() == 1 and bool(starts[on.to_numpy()][0])
