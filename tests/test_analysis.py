"""End-to-end tests of analyze() on synthetic observations with a known story."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import kaesong_thermal as kt
from kaesong_thermal.errors import AnalysisError

START_ON = pd.Timestamp("2024-03-01", tz="UTC")
GONE = pd.Timestamp("2020-06-16", tz="UTC")


@pytest.fixture(scope="module")
def story() -> pd.DataFrame:
    """16 buildings 2014-2025: all working until 2016-02, idle after, two restart in 2024."""
    rng = np.random.default_rng(42)
    dates = pd.date_range("2014-01-03 02:10", "2025-11-05 02:10", freq="8D", tz="UTC")
    n_b = 16
    ids = [f"f{i:02d}" for i in range(n_b - 4)] + ["office", "gone", "blip", "small"]
    offsets = rng.normal(0.0, 1.5, n_b)
    amps = rng.normal(0.0, 1.0, n_b)
    rows = []
    for k, d in enumerate(dates):
        season = np.sin(2 * np.pi * (d.day_of_year - 100) / 365.25)
        effect = 4.0 * season + rng.normal(0.0, 0.6)
        cloudy = rng.random() < 0.35
        for i, b in enumerate(ids):
            c = effect + offsets[i] + amps[i] * season + rng.normal(0.0, 0.4)
            working = d < pd.Timestamp("2016-02-10", tz="UTC") and b != "office"
            working |= b in ("f00", "f01") and d >= START_ON
            c += 3.0 * working
            if b == "blip" and d.date() == pd.Timestamp("2018-07-08").date():
                c += 6.0
            vf = 1.0
            if (cloudy and rng.random() < 0.8) or (b == "gone" and d >= GONE):
                vf, c = 0.0, np.nan
            rows.append(
                {
                    "building_id": b,
                    "scene_id": f"LC08_{k:04d}",
                    "acquired": d,
                    "sensor": "LC08",
                    "level": "L2",
                    "contrast_k": c,
                    "sigma_k": 0.3,
                    "valid_fraction": vf,
                    "ring_valid_px": 0 if vf == 0 else 60,
                    "area_m2": 5000.0 if b == "small" else 20000.0,
                }
            )
    return pd.DataFrame(rows)


def test_statuses_and_newly_active(story: pd.DataFrame) -> None:
    a = kt.analyze(story)
    st = a.status(as_of="2025-11-05")
    assert set(st.index[st["status"] == "active"]) == {"f00", "f01"}
    assert st.loc["gone", "status"] == "no_data"
    assert (st.loc[["office", "blip", "small", "f05"], "status"] == "idle").all()
    assert st.loc["f00", "since"] >= START_ON
    assert st.loc["f00", "since"] <= START_ON + pd.Timedelta(days=48)
    assert list(st.columns) == [
        "status",
        "confidence",
        "since",
        "last_valid",
        "n_valid",
        "anomaly_k",
        "z",
        "evidence",
    ]
    tr = a.transitions(since="2016-03-01")
    new = tr.loc[tr["to_status"] == "active"]
    restarts = new.loc[new["building_id"].isin(["f00", "f01"])]
    assert sorted(restarts["building_id"]) == ["f00", "f01"]
    assert (restarts["date"] >= START_ON).all()
    # the single hot scene of "blip" is no alert; false alerts in ~10 years x 14 idle buildings
    # stay within the 0.02 per building-year budget of the accumulated test
    false = new.loc[~new["building_id"].isin(["f00", "f01"])]
    assert "blip" not in set(false["building_id"])
    assert len(false) <= 2
    assert list(tr.columns) == [
        "building_id",
        "date",
        "scene_id",
        "from_status",
        "to_status",
        "anomaly_k",
        "z",
        "evidence",
    ]


def test_operating_years_rated_active(story: pd.DataFrame) -> None:
    a = kt.analyze(story)
    tl = a.timeline
    early = tl.loc[(tl["acquired"] < "2016-01-01") & (tl["building_id"] != "office")]
    assert (early["status"] == "active").mean() > 0.9
    before = a.status(as_of="2015-12-31")
    assert before.loc["office", "status"] == "idle"


def test_demolished_building_has_no_states_after(story: pd.DataFrame) -> None:
    a = kt.analyze(story)
    o = a.observations
    after = o.loc[(o["building_id"] == "gone") & (o["acquired"] >= GONE)]
    assert (after["state"] == "no_data").all()
    assert a.transitions(since=GONE).query("building_id == 'gone'").empty


def test_observation_columns_and_params(story: pd.DataFrame) -> None:
    a = kt.analyze(story, z_active=3.5, window=5, need=3)
    for col in ("scene_effect_k", "residual_k", "baseline_k", "baseline_sigma_k", "anomaly_k", "z"):
        assert col in a.observations
    assert set(a.observations["state"]) <= {"active", "idle", "uncertain", "no_data"}
    assert a.params["z_active"] == 3.5 and a.params["window"] == 5
    assert a.params["baseline"] == "2016-03-01:2022-12-31"
    with pytest.raises(AnalysisError, match="unknown threshold"):
        kt.analyze(story, z_activ=3.0)


def test_auto_baseline_and_string_dates(story: pd.DataFrame) -> None:
    df = story.copy()
    df["acquired"] = df["acquired"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    a = kt.analyze(df, baseline="auto")
    st = a.status(as_of="2025-11-05")
    assert {"f00", "f01"} <= set(st.index[st["status"] == "active"])
    assert (st.loc[["office", "f05", "f06"], "status"] != "active").all()
    assert (a.observations["baseline_method"].isin(["auto", "none"])).all()


def test_duplicates_dropped(story: pd.DataFrame) -> None:
    sub = story.loc[story["acquired"] < "2017-01-01"]
    a = kt.analyze(pd.concat([sub, sub.tail(5)]), baseline="2016-03-01:2016-12-31")
    assert len(a.observations) == len(sub)


def test_signal_choice_and_fallback(caplog: pytest.LogCaptureFixture) -> None:
    from kaesong_thermal.analysis import choose_signal

    obs = pd.DataFrame({"contrast_k": [1.0, 2.0, np.nan], "excess_k": [3.0, 4.0, np.nan]})
    assert choose_signal(obs, "auto") == "excess_k"
    assert choose_signal(obs, "contrast_k") == "contrast_k"
    partly = obs.assign(excess_k=[3.0, np.nan, np.nan])  # e.g. a store migrated from v1
    with caplog.at_level("WARNING"):
        assert choose_signal(partly, "auto") == "contrast_k"
    assert "excess_k is missing for 1 of 2" in caplog.text
    assert choose_signal(obs.drop(columns="excess_k"), "auto") == "contrast_k"
    with pytest.raises(AnalysisError, match="signal column 'nope'"):
        choose_signal(obs, "nope")


def _two_strata(second: tuple[str, str], scale: float, shift_k: float) -> pd.DataFrame:
    """Six idle buildings seen by L2 TIRS scenes and by a second (level, sensor) stratum whose
    contrasts are ``scale`` x the roof offsets plus ``shift_k`` (atmosphere or coarser pixels)."""
    rng = np.random.default_rng(7)
    offsets = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    rows = []
    dates = pd.date_range("2016-01-05 02:10", "2021-12-31", freq="8D", tz="UTC")
    for k, d in enumerate(dates):
        level, sensor = ("L2", "LC08") if k % 2 == 0 else second
        f = 1.0 if k % 2 == 0 else scale
        effect = rng.normal(0.0, 1.0)
        for i, o in enumerate(offsets):
            rows.append(
                {
                    "building_id": f"b{i}",
                    "scene_id": f"{sensor}_{level}_{k:04d}",
                    "acquired": d,
                    "sensor": sensor,
                    "level": level,
                    "contrast_k": effect
                    + f * o
                    + (0.0 if k % 2 == 0 else shift_k)
                    + rng.normal(0.0, 0.1),
                    "sigma_k": 0.1,
                    "valid_fraction": 1.0,
                    "ring_valid_px": 40,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("second", "label"), [(("L1", "LC08"), "L1 TIRS"), (("L2", "LE07"), "L2 TM/ETM+")]
)
def test_each_level_and_sensor_family_has_its_own_baseline(
    second: tuple[str, str], label: str
) -> None:
    df = _two_strata(second, scale=0.6, shift_k=-1.0)
    a = kt.analyze(df, baseline="2016-01-01:2021-12-31", levels="separate")
    obs = a.observations
    assert set(obs["stratum"]) == {"L2 TIRS", label}
    base = obs.groupby(["stratum", "building_id"])["baseline_k"].median()
    # roof-to-roof differences inside a stratum scale with its attenuation: 0.6 x those of L2
    # (the leave-one-out scene effect absorbs the same share of both, ~10 % of the 5 K range)
    d_l2 = base["L2 TIRS", "b5"] - base["L2 TIRS", "b0"]
    d_2 = base[label, "b5"] - base[label, "b0"]
    assert 4.3 < d_l2 <= 5.0
    assert d_2 / d_l2 == pytest.approx(0.6, abs=0.05)
    assert obs["z"].abs().max() < 5.0
    assert set(a.status()["status"]) == {"idle"}
    # one baseline for both strata (what "separate" avoids): the warmest roof's residual is
    # 0.4 x its ~2.2 K offset lower in the attenuated scenes, so its anomaly alternates by ~0.9 K
    mixed = kt.analyze(df.assign(level="L2", sensor="LC08"), baseline="2016-01-01:2021-12-31")

    def gap(o: pd.DataFrame) -> float:
        b5 = o.loc[o["building_id"] == "b5"]
        in_l2 = b5["scene_id"].str.startswith("LC08_L2").to_numpy()
        return float(b5.loc[in_l2, "anomaly_k"].median() - b5.loc[~in_l2, "anomaly_k"].median())

    assert (
        gap(
            mixed.observations.assign(
                scene_id=df.sort_values(["building_id", "acquired"], kind="stable")[
                    "scene_id"
                ].to_numpy()
            )
        )
        > 0.7
    )
    assert abs(gap(obs)) < 0.1


def test_pooled_levels_map_level1_scenes_onto_the_level2_scale() -> None:
    # every other scene is L1, its idle contrasts attenuated to 0.6 and shifted by -1 K: pooled,
    # each L1 scene gets tau ~ 0.6, one baseline serves both levels and nothing looks active
    df = _two_strata(("L1", "LC08"), scale=0.6, shift_k=-1.0)
    a = kt.analyze(df, baseline="2016-01-01:2021-12-31")
    obs = a.observations
    assert set(obs["stratum"]) == {"TIRS"}
    l1 = obs["level"] == "L1"
    # 0.6, pulled slightly towards 1 by the half-building prior over six buildings
    assert obs.loc[l1, "level_scale"].median() == pytest.approx(0.63, abs=0.04)
    assert (obs.loc[~l1, "level_scale"] == 1.0).all()
    assert obs["z"].abs().max() < 5.0
    assert set(a.status()["status"]) == {"idle"}
    b5 = obs.loc[obs["building_id"] == "b5"]
    gap = (
        b5.loc[b5["level"] == "L2", "anomaly_k"].median()
        - b5.loc[b5["level"] == "L1", "anomaly_k"].median()
    )
    assert abs(gap) < 0.15
    # an L1 scene's excess is mapped back too: +1.2 K at-sensor is +2 K on the L2 scale
    hot = df.copy()
    late = (hot["building_id"] == "b2") & (hot["acquired"] >= "2021-06-01")
    hot.loc[late, "contrast_k"] += np.where(hot.loc[late, "level"] == "L1", 1.2, 2.0)
    h = kt.analyze(hot, baseline="2016-01-01:2021-05-31").observations
    sel = (h["building_id"] == "b2") & (h["acquired"] >= "2021-06-01")
    by_level = h.loc[sel].groupby("level")["anomaly_k"].median()
    assert by_level["L1"] == pytest.approx(2.0, abs=0.3)
    assert by_level["L2"] == pytest.approx(2.0, abs=0.3)


def test_level1_duplicate_of_a_level2_acquisition_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kaesong_thermal.analysis import drop_level1_duplicates

    t = pd.Timestamp("2020-05-01 02:10:20", tz="UTC")
    obs = pd.DataFrame(
        {
            "building_id": ["a", "a", "a", "a", "b", "a"],
            "scene_id": ["L2-1", "L1-1", "L1-9", "L1-2", "L1-1", "L1-3"],
            "acquired": [
                t,
                t + pd.Timedelta(seconds=30),
                t,
                t + pd.Timedelta(days=16),
                t,
                t + pd.Timedelta(minutes=6),
            ],
            "sensor": ["LC08", "LC08", "LC09", "LC08", "LC08", "LC08"],
            "level": ["L2", "L1", "L1", "L1", "L1", "L1"],
        }
    )
    with caplog.at_level("INFO", logger="kaesong_thermal.analysis"):
        kept = drop_level1_duplicates(obs)
    # dropped: L1-1 of building a (same sensor, 30 s apart). Kept: another sensor (L1-9),
    # another date (L1-2), a building without the L2 row (b), 6 minutes apart (L1-3)
    assert kept["scene_id"].tolist() == ["L2-1", "L1-9", "L1-2", "L1-1", "L1-3"]
    assert kept["building_id"].tolist() == ["a", "a", "a", "b", "a"]
    assert "1 L1 observation(s) dropped" in caplog.text
    assert drop_level1_duplicates(obs.assign(level="L2")) is not None
    assert len(drop_level1_duplicates(obs.assign(level="L2"))) == 6


def test_levels_l2_only_excludes_level1_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    df = _two_strata(("L1", "LC08"), scale=0.6, shift_k=-1.0)
    with caplog.at_level("WARNING", logger="kaesong_thermal.analysis"):
        a = kt.analyze(df, baseline="2016-01-01:2021-12-31", levels="l2-only")
    n_l1 = int((df["level"] == "L1").sum())
    assert f"{n_l1} L1 observation(s) excluded" in caplog.text
    assert set(a.observations["level"]) == {"L2"}
    assert a.params["levels"] == "l2-only"
    with pytest.raises(AnalysisError, match="levels='both'"):
        kt.analyze(df, levels="both")


def test_strata_labels() -> None:
    from kaesong_thermal.analysis import strata

    df = pd.DataFrame(
        {
            "sensor": ["LC08", "LC09", "LE07", "LT05", "LT04"],
            "level": ["L2", "l1", "L2", "L1", "L2"],
        }
    )
    assert strata(df).tolist() == ["L2 TIRS", "L1 TIRS", "L2 TM/ETM+", "L1 TM/ETM+", "L2 TM/ETM+"]
    assert strata(pd.DataFrame({"x": [1]})).tolist() == ["L2 TIRS"]
    assert strata(df, "pooled").tolist() == ["TIRS", "TIRS", "TM/ETM+", "TM/ETM+", "TM/ETM+"]


def test_dates_outside_the_timestamp_range_are_a_clear_error(story: pd.DataFrame) -> None:
    a = kt.analyze(story, baseline="2016-03-01:2022-12-31")
    for bad in ("2300-01-01", "1800-05-05"):
        with pytest.raises(AnalysisError, match=f"as_of '{bad}': outside the supported years"):
            a.status(as_of=bad)
        with pytest.raises(AnalysisError, match=f"since '{bad}': outside the supported years"):
            a.transitions(since=bad)
    assert len(a.status(as_of="2261-12-31")) == story["building_id"].nunique()


def _mixed_noise_levels(seed: int = 3) -> pd.DataFrame:
    """30 idle roofs, a third of the scenes only in L1, whose contrasts (0.7 x on the L2 scale)
    are much noisier (1.2 K at-sensor) than the L2 ones (0.5 K); roof b00 warms by 1.5 K
    (L2 scale) from 2022 on."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, 1.5, 30)
    dates = pd.date_range("2016-01-05 02:10", "2023-12-31", freq="8D", tz="UTC")
    rows = []
    for k, d in enumerate(dates):
        l1 = rng.random() < 0.33
        effect = rng.normal(0.0, 1.0)
        for i, o in enumerate(offsets):
            warm = 1.5 if (i == 0 and d >= pd.Timestamp("2022-01-01", tz="UTC")) else 0.0
            if l1:
                contrast = 0.7 * (o + warm) - 0.5 + effect + rng.normal(0.0, 1.2)
            else:
                contrast = o + warm + effect + rng.normal(0.0, 0.5)
            rows.append(
                {
                    "building_id": f"b{i:02d}",
                    "scene_id": f"LC08_{'L1' if l1 else 'L2'}_{k:04d}",
                    "acquired": d,
                    "sensor": "LC08",
                    "level": "L1" if l1 else "L2",
                    "contrast_k": contrast,
                    "sigma_k": 0.3,
                    "valid_fraction": 1.0,
                    "ring_valid_px": 40,
                }
            )
    return pd.DataFrame(rows)


def test_each_level_gets_its_own_noise_scale_when_pooled() -> None:
    # one spread per roof fitted on L1 and L2 rows together is too wide for L2 and too narrow
    # for L1: idle z would be under-dispersed in L2 (lost power) and over-dispersed in L1
    # (false alarms); with a noise factor per level both are near unit spread
    df = _mixed_noise_levels()
    base = "2016-01-01:2021-12-31"
    both = kt.analyze(df, baseline=base).observations
    # the level calibration alone (the scene scale measures the same excess of L1 noise)
    on = kt.analyze(df, baseline=base, scene_noise=False).observations
    off = kt.analyze(df, baseline=base, calibrate_levels=False, scene_noise=False).observations

    def idle_sd(obs: pd.DataFrame, level: str) -> float:
        sel = (obs["level"] == level) & (obs["building_id"] != "b00")
        sel &= obs["acquired"] <= pd.Timestamp("2021-12-31", tz="UTC")
        return float(obs.loc[sel, "z"].std())

    assert idle_sd(off, "L2") < 0.8 and idle_sd(off, "L1") > 1.25
    assert 0.85 < idle_sd(on, "L2") < 1.15
    assert 0.85 < idle_sd(on, "L1") < 1.15
    # the warm roof's L2 scenes score higher once L2 noise is not overstated
    warm = (on["building_id"] == "b00") & (on["acquired"] >= "2022-01-01") & (on["level"] == "L2")
    z_on = float(on.loc[warm, "z"].median())
    z_off = float(off.loc[warm, "z"].median())
    assert z_on > 1.25 * z_off and z_on > 2.0
    # with the scene scale as well (the default) both levels stay near unit spread
    assert 0.85 < idle_sd(both, "L2") < 1.15
    assert 0.85 < idle_sd(both, "L1") < 1.15
