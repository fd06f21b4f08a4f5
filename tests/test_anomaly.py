"""Tests of the anomaly model: leave-one-out scene effect, baselines, robust z."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kaesong_thermal.anomaly import (
    AnomalyParams,
    baseline_change_points,
    bridge_critical_value,
    compute_anomalies,
    loo_group_median,
    parse_baseline,
    valid_mask,
)
from kaesong_thermal.errors import AnalysisError


def _table(
    n_b: int = 12,
    start: str = "2016-01-01",
    end: str = "2020-12-31",
    seed: int = 0,
    noise: float = 0.3,
) -> pd.DataFrame:
    """Observations with known scene effects and building offsets, no activity."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, end, freq="16D", tz="UTC")
    offsets = np.linspace(-2.0, 3.0, n_b)
    scene = rng.normal(0.0, 2.0, dates.size) + 4.0 * np.sin(2 * np.pi * dates.day_of_year / 365.25)
    rows = []
    for k, d in enumerate(dates):
        for i in range(n_b):
            rows.append(
                {
                    "building_id": f"b{i:02d}",
                    "scene_id": f"S{k:04d}",
                    "acquired": d,
                    "contrast_k": scene[k] + offsets[i] + rng.normal(0.0, noise),
                    "sigma_k": 0.3,
                    "valid_fraction": 1.0,
                    "ring_valid_px": 40,
                }
            )
    return pd.DataFrame(rows)


def test_loo_group_median_hand_computed() -> None:
    codes = np.array([0, 0, 0, 0, 0, 1, 1])
    values = np.array([1.0, 2.0, 3.0, 10.0, 99.0, 5.0, 7.0])
    pool = np.array([True, True, True, True, False, True, False])
    out = loo_group_median(codes, values, pool)
    # pool {1,2,3,10}: without 1 -> med(2,3,10)=3; without 2 -> 3; without 3 -> 2; without 10 -> 2
    # row outside the pool -> median of all four = 2.5; group 1: lone member -> NaN, other -> 5
    np.testing.assert_allclose(out[:5], [3.0, 3.0, 2.0, 2.0, 2.5])
    assert np.isnan(out[5])
    assert out[6] == 5.0


def test_parse_baseline() -> None:
    start, end = parse_baseline("2016-03-01:2022-12-31")  # type: ignore[misc]
    assert start == pd.Timestamp("2016-03-01", tz="UTC")
    assert end.date() == pd.Timestamp("2022-12-31").date() and end.hour == 23
    assert parse_baseline("auto") is None
    for bad in ("2016-03-01", "2020-01-01:2019-01-01", "x:y"):
        with pytest.raises(AnalysisError):
            parse_baseline(bad)


def test_valid_mask_thresholds() -> None:
    df = pd.DataFrame(
        {
            "contrast_k": [1.0, np.nan, 1.0, 1.0],
            "valid_fraction": [0.6, 1.0, 0.4, 1.0],
            "ring_valid_px": [8, 20, 20, 7],
        }
    )
    assert valid_mask(df).tolist() == [True, False, False, False]


def test_scene_effect_is_leave_one_out() -> None:
    df = _table()
    a = compute_anomalies(df, "2016-01-01:2020-12-31")
    df2 = df.copy()
    hit = (df2["building_id"] == "b05") & (df2["scene_id"] == "S0040")
    df2.loc[hit, "contrast_k"] += 30.0
    b = compute_anomalies(df2, "2016-01-01:2020-12-31")
    row_a = a.loc[(a["building_id"] == "b05") & (a["scene_id"] == "S0040")]
    row_b = b.loc[(b["building_id"] == "b05") & (b["scene_id"] == "S0040")]
    # its own scene effect does not move; its anomaly takes the full 30 K
    assert row_b["scene_effect_k"].iloc[0] == pytest.approx(
        row_a["scene_effect_k"].iloc[0], abs=0.05
    )
    assert row_b["anomaly_k"].iloc[0] - row_a["anomaly_k"].iloc[0] == pytest.approx(30.0, abs=0.1)


def test_idle_anomalies_are_noise_and_z_is_standardised() -> None:
    a = compute_anomalies(_table(noise=0.5), "2016-01-01:2020-12-31")
    assert (a["baseline_method"] == "period").all()
    # scene-wide swings of 2 K and a 4 K seasonal cycle are removed: noise of ~0.5 K remains
    assert a["anomaly_k"].std() < 0.7
    assert abs(a["anomaly_k"].median()) < 0.1
    # robust z of Gaussian noise: about 0.3 % beyond 3
    assert (a["z"].abs() > 3).mean() < 0.01
    assert 0.8 < a["z"].std() < 1.3


def test_activity_is_not_absorbed_by_scene_effect() -> None:
    df = _table(n_b=12)
    late = df["acquired"] >= pd.Timestamp("2020-01-01", tz="UTC")
    hot = late & df["building_id"].isin(["b00", "b01", "b02", "b03", "b04"])
    df.loc[hot, "contrast_k"] += 4.0
    a = compute_anomalies(df, "2016-01-01:2019-12-31")
    a_late = a["acquired"] >= pd.Timestamp("2020-01-01", tz="UTC")
    a_hot = a_late & a["building_id"].isin(["b00", "b01", "b02", "b03", "b04"])
    act = a.loc[a_hot]
    idle = a.loc[a_late & ~a_hot]
    # five of twelve buildings switching on together: the pool of idle ones keeps the effect honest
    assert act["anomaly_k"].median() == pytest.approx(4.0, abs=0.4)
    assert abs(idle["anomaly_k"].median()) < 0.4
    assert (act["z"] > 3).mean() > 0.9


def test_building_seasonal_cycle_enters_the_baseline() -> None:
    df = _table(n_b=10, start="2014-01-01", end="2021-12-31", noise=0.3)
    one = df["building_id"] == "b03"
    doy = df["acquired"].dt.day_of_year.to_numpy()
    df.loc[one, "contrast_k"] += 3.0 * np.cos(2 * np.pi * doy[one.to_numpy()] / 365.25)
    a = compute_anomalies(df, "2014-01-01:2021-12-31")
    b3 = a.loc[a["building_id"] == "b03"]
    assert b3["anomaly_k"].std() < 0.6  # the 3 K annual term is modelled, not left as anomaly
    assert b3["baseline_k"].max() - b3["baseline_k"].min() > 4.5


def test_auto_baseline_finds_idle_level() -> None:
    df = _table(n_b=10, start="2016-01-01", end="2021-12-31")
    hot = (df["building_id"] == "b02") & (df["acquired"] < pd.Timestamp("2018-01-01", tz="UTC"))
    df.loc[hot, "contrast_k"] += 5.0
    a = compute_anomalies(df, "auto")
    assert set(a["baseline_method"]) == {"auto"}
    b2 = a.loc[a["building_id"] == "b02"]
    early = b2["acquired"] < pd.Timestamp("2018-01-01", tz="UTC")
    assert b2.loc[early, "anomaly_k"].median() == pytest.approx(5.0, abs=0.5)
    assert abs(b2.loc[~early, "anomaly_k"].median()) < 0.4


def test_fallback_to_auto_is_reported() -> None:
    df = _table(n_b=8)
    gone = (df["building_id"] == "b01") & (df["acquired"] < pd.Timestamp("2019-01-01", tz="UTC"))
    df.loc[gone, ["contrast_k", "valid_fraction"]] = [np.nan, 0.0]
    a = compute_anomalies(df, "2016-01-01:2018-12-31")
    methods = a.groupby("building_id")["baseline_method"].first()
    assert methods["b01"] == "auto-fallback"
    assert methods["b00"] == "period"
    b01 = a.loc[a["building_id"] == "b01"]
    assert b01["anomaly_k"].notna().sum() == b01["valid"].sum() == 46


def test_fallback_baseline_is_never_tighter_than_the_period_ones() -> None:
    # b01 has a much smaller own noise (0.05 K) and no scene in the period: its auto fallback
    # would be tight, yet its spread is floored at the median spread of the period baselines
    df = _table(n_b=8, noise=0.4, seed=3)
    b01 = df["building_id"] == "b01"
    rng = np.random.default_rng(9)
    df.loc[b01, "contrast_k"] = df.loc[b01, "contrast_k"] - rng.normal(0.0, 0.4, b01.sum()) * 0.9
    gone = b01 & (df["acquired"] < pd.Timestamp("2019-01-01", tz="UTC"))
    df.loc[gone, ["contrast_k", "valid_fraction"]] = [np.nan, 0.0]
    a = compute_anomalies(df, "2016-01-01:2018-12-31")
    spread = a.groupby("building_id")["baseline_sigma_k"].median()
    others = spread.drop("b01")
    assert spread["b01"] >= others.median() - 1e-9
    assert 0.3 < others.median() < 0.6


def test_no_data_rows_stay_nan() -> None:
    df = _table(n_b=6)
    df.loc[df.index[::7], ["contrast_k", "valid_fraction"]] = [np.nan, 0.0]
    df.loc[df.index[3::11], "ring_valid_px"] = 2
    a = compute_anomalies(df, "2016-01-01:2020-12-31")
    bad = ~a["valid"]
    assert bad.sum() > 0
    assert a.loc[bad, ["scene_effect_k", "anomaly_k", "z"]].isna().all().all()
    assert a.loc[~bad, "z"].notna().all()


def test_measurement_sigma_in_quadrature() -> None:
    df = _table(n_b=8, noise=0.5)
    row = (df["building_id"] == "b04") & (df["scene_id"] == "S0050")
    df.loc[row, "contrast_k"] += 3.0
    fixed = AnomalyParams(scene_noise=False)  # the hand-computed z has no scene scale
    a = compute_anomalies(df, "2016-01-01:2020-12-31", params=fixed)
    df.loc[row, "sigma_k"] = 3.0  # a hazy observation: its z must shrink accordingly
    b = compute_anomalies(df, "2016-01-01:2020-12-31", params=fixed)
    ra = a.loc[(a["building_id"] == "b04") & (a["scene_id"] == "S0050")].iloc[0]
    rb = b.loc[(b["building_id"] == "b04") & (b["scene_id"] == "S0050")].iloc[0]
    expected = ra["anomaly_k"] / np.sqrt(ra["baseline_sigma_k"] ** 2 + 3.0**2 - 0.3**2)
    assert rb["z"] == pytest.approx(expected, rel=0.02)
    assert rb["z"] < ra["z"] / 2


def test_missing_column_raises() -> None:
    with pytest.raises(AnalysisError, match="contrast_k"):
        compute_anomalies(_table().drop(columns="contrast_k"))


def test_params_are_used() -> None:
    a = compute_anomalies(
        _table(noise=0.01), "2016-01-01:2020-12-31", AnomalyParams(sigma_floor_k=1.5)
    )
    assert a["baseline_sigma_k"].min() >= 1.5


def test_loo_weighted_median_hand_computed() -> None:
    from kaesong_thermal.anomaly import loo_group_weighted_median

    codes = np.array([0, 0, 0, 0, 1])
    values = np.array([1.0, 2.0, 10.0, 3.0, 7.0])
    pool = np.array([True, True, True, False, True])
    # weights: the 10 K member is noisy (weight 0.01)
    weights = np.array([1.0, 1.0, 0.01, 1.0, 1.0])
    out = loo_group_weighted_median(codes, values, pool, weights)
    # row 0: others {2 (w 1), 10 (w 0.01)} -> half of 1.01 reached at 2
    # row 1: others {1 (w 1), 10 (w 0.01)} -> 1
    # row 2: others {1, 2} equal weights -> lower median 1
    # row 3 (not in pool): all {1, 2, 10} -> cumulative 1, 2, 2.01 >= 1.005 at 2
    # row 4: alone in its group -> NaN
    np.testing.assert_allclose(out, [2.0, 1.0, 1.0, 2.0, np.nan])
    # equal weights and an odd number of others: the ordinary leave-one-out median
    eq = loo_group_weighted_median(codes[:4], values[:4], np.ones(4, bool), np.ones(4))
    np.testing.assert_allclose(eq, loo_group_median(codes[:4], values[:4], np.ones(4, bool)))


def test_loo_weighted_median_equals_the_definition_on_random_groups() -> None:
    """The one-sort implementation against the definition, row by row, on random groups."""
    from kaesong_thermal.anomaly import loo_group_weighted_median

    rng = np.random.default_rng(7)
    for _ in range(60):
        n = int(rng.integers(1, 40))
        codes = rng.integers(0, 5, n)
        values = np.round(rng.normal(0.0, 2.0, n), 1)  # ties on purpose
        pool = rng.random(n) < 0.7
        weights = rng.choice([0.25, 1.0, 2.0, 3.5], n)
        out = loo_group_weighted_median(codes, values, pool, weights)
        for i in range(n):
            others = np.flatnonzero((codes == codes[i]) & pool & (np.arange(n) != i))
            if others.size == 0:
                assert np.isnan(out[i])
                continue
            srt = others[np.argsort(values[others], kind="stable")]
            cum = np.cumsum(weights[srt])
            expect = values[srt][np.argmax(cum >= 0.5 * cum[-1])]
            assert out[i] == expect, (i, codes, values, pool, weights)


def test_idle_regression_exact_line_and_ridge_shrinkage_hand_computed() -> None:
    from kaesong_thermal.anomaly import fit_idle_regression

    x = np.array([-1.0, -1.0, 1.0, 1.0])
    design = np.column_stack([np.ones(4), x])
    y = 2.0 + 1.0 * x
    codes = np.zeros(4, dtype=np.int64)
    use = np.ones(4, bool)
    fit, coef, _, _, n_fit = fit_idle_regression(codes, design, y, use, 1, ridge_scenes=0.0)
    np.testing.assert_allclose(coef[0], [2.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(fit, y, atol=1e-9)
    assert n_fit[0] == 4
    # ridge of 4 pseudo-scenes on a covariate of variance 1 (mean 0): slope = sum(xy) /
    # (sum(x^2) + 4 * 1) = 4 / 8 = 0.5, intercept (unpenalised) = mean(y) = 2; the residuals
    # are all +-0.5, so the robust weights are equal and do not change that
    _, coef, _, _, _ = fit_idle_regression(codes, design, y, use, 1, ridge_scenes=4.0)
    np.testing.assert_allclose(coef[0], [2.0, 0.5], atol=1e-9)


def test_idle_regression_rejects_outlier_and_inflates_spread_hand_computed() -> None:
    from kaesong_thermal.anomaly import fit_idle_regression

    x = np.linspace(-2.0, 2.0, 21)
    y = 1.0 + 0.3 * x
    y_bad = y.copy()
    y_bad[5] += 50.0  # an undetected hot scene inside the baseline
    design = np.column_stack([np.ones(21), x])
    codes = np.zeros(21, dtype=np.int64)
    _, coef, _, _, _ = fit_idle_regression(codes, design, y_bad, np.ones(21, bool), 1, 0.0)
    np.testing.assert_allclose(coef[0], [1.0, 0.3], atol=1e-6)  # bisquare weight 0
    # intercept only, symmetric residuals -2..2: centre 0, MAD 1, one degree of freedom
    # -> spread = 1.4826 * 1 * sqrt(5 / (5 - 1)) = 1.65758
    yy = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    _fit, coef, spread, leverage, _ = fit_idle_regression(
        np.zeros(5, dtype=np.int64), np.ones((5, 1)), yy, np.ones(5, bool), 1, 5.0
    )
    assert coef[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert spread[0] == pytest.approx(1.4826 * np.sqrt(5 / 4), rel=1e-6)
    assert (leverage > 1 / 5).all() and (leverage < 1 / 3).all()  # 1 / (sum of weights)


def test_idle_regression_groups_and_rows_outside_the_fit() -> None:
    from kaesong_thermal.anomaly import fit_idle_regression

    x = np.array([0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 9.0])
    codes = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    y = np.where(codes == 0, 1.0 + 2.0 * x, -1.0 - 0.5 * x)
    use = codes < 2  # group 2 has no baseline row
    design = np.column_stack([np.ones(9), x])
    fit, coef, spread, _, n_fit = fit_idle_regression(codes, design, y, use, 3, 0.0)
    np.testing.assert_allclose(coef[:2], [[1.0, 2.0], [-1.0, -0.5]], atol=1e-9)
    assert np.isnan(coef[2]).all() and np.isnan(fit[8]) and np.isnan(spread[2])
    assert n_fit.tolist() == [4.0, 4.0, 0.0]


def test_scene_covariates_are_departures_from_the_season() -> None:
    from kaesong_thermal.anomaly import scene_covariates

    dates = pd.date_range("2016-01-01", "2019-12-31", freq="16D", tz="UTC")
    doy = dates.day_of_year.to_numpy(dtype=float)
    bg = 285.0 + 10.0 * np.cos(2 * np.pi * doy / 365.2425)
    bg[[7, 40]] += 3.0  # two unusually warm days
    obs = pd.DataFrame(
        {
            "t_background_k": np.repeat(bg, 2),
            # sun elevation a pure function of the day of year: no departure, left out
            "sun_elevation": np.repeat(50.0 + 20.0 * np.sin(2 * np.pi * doy / 365.2425), 2),
        }
    )
    s_codes = np.repeat(np.arange(dates.size), 2)
    cov = scene_covariates(
        obs,
        s_codes,
        np.repeat(doy, 2),
        np.ones(len(obs), bool),
        np.ones(len(obs), bool),
        dates.size,
    )
    assert list(cov) == ["t_background_k"]
    expected = np.zeros(dates.size)
    expected[[7, 40]] = 3.0
    np.testing.assert_allclose(cov["t_background_k"][::2], expected, atol=1e-6)


def test_idle_regression_learns_a_building_s_own_response() -> None:
    df = _table(n_b=10, noise=0.2, seed=3)
    scene = df.groupby("scene_id")["contrast_k"].transform("median")
    one = (df["building_id"] == "b04").to_numpy()
    # b04 (a light roof) answers the day with beta = 0.3 instead of 1
    df.loc[one, "contrast_k"] = df.loc[one, "contrast_k"] - 0.7 * scene[one]
    new = compute_anomalies(df, "2016-01-01:2020-12-31")
    old = compute_anomalies(df, "2016-01-01:2020-12-31", AnomalyParams(idle_regression=False))

    def spread(a: pd.DataFrame, sel: pd.Series) -> float:
        x = a.loc[sel, "anomaly_k"].dropna()
        return float(1.4826 * np.median(np.abs(x - x.median())))

    s_new = spread(new, new["building_id"] == "b04")
    s_old = spread(old, old["building_id"] == "b04")
    assert s_old > 1.0  # 0.7 x the 2 K day-to-day swings remains with beta = 1
    assert s_new < 0.35
    # the other buildings keep their 0.2 K noise (beta = 1 is their truth)
    assert spread(new, new["building_id"] != "b04") < 0.3
    assert spread(new, new["building_id"] != "b04") < 1.1 * spread(old, old["building_id"] != "b04")


def test_no_valid_observation_at_all_is_no_data_not_an_error() -> None:
    df = _table(n_b=4).assign(contrast_k=np.nan, valid_fraction=0.0)
    a = compute_anomalies(df, "auto")
    assert (~a["valid"]).all() and a["z"].isna().all()
    assert set(a["baseline_method"]) == {"none"}


def _noisy_scenes_table(seed: int = 3) -> tuple[pd.DataFrame, set[str]]:
    """30 idle buildings, 2016-2020; every fourth scene's roof noise is 3 x the others'."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2016-01-01", "2020-12-31", freq="16D", tz="UTC")
    offsets = rng.normal(0.0, 1.5, 30)
    noisy = {f"S{k:04d}" for k in range(dates.size) if k % 4 == 0}
    rows = []
    for k, d in enumerate(dates):
        sid = f"S{k:04d}"
        sd = 0.9 if sid in noisy else 0.3
        effect = rng.normal(0.0, 1.0)
        for i in range(30):
            rows.append(
                {
                    "building_id": f"b{i:02d}",
                    "scene_id": sid,
                    "acquired": d,
                    "contrast_k": effect + offsets[i] + rng.normal(0.0, sd),
                    "sigma_k": 0.3,
                    "valid_fraction": 1.0,
                    "ring_valid_px": 40,
                }
            )
    return pd.DataFrame(rows), noisy


def test_scene_noise_factors_tell_noisy_from_quiet_scenes() -> None:
    from kaesong_thermal.anomaly import scene_noise_factors

    rng = np.random.default_rng(0)
    s_codes = np.repeat(np.arange(40), 25)
    sd = np.where(np.arange(40) % 4 == 0, 2.0, 1.0)
    z = rng.normal(0.0, sd[s_codes])
    pool = np.ones(z.size, bool)
    f = scene_noise_factors(z, s_codes, pool, 40)
    # the rms spread is sqrt((2^2 + 3) / 4) = 1.32: noisy scenes 2 / 1.32 = 1.51, quiet 0.76,
    # pulled towards 1 by the 10 pseudo-rows (25 rows per scene)
    assert 1.25 < np.median(f[sd == 2.0]) < 1.6
    assert 0.7 < np.median(f[sd == 1.0]) < 0.92
    # too few believed-idle rows: no factor of its own
    few = pool.copy()
    few[s_codes == 5] = False
    few[np.flatnonzero(s_codes == 5)[:4]] = True
    assert scene_noise_factors(z, s_codes, few, 40)[5] == 1.0
    # a scene with warm buildings in its pool: they are one-sided; the robust spread holds
    warm = z.copy()
    warm[np.flatnonzero(s_codes == 1)[:5]] += 8.0
    assert abs(scene_noise_factors(warm, s_codes, pool, 40)[1] - f[1]) < 0.25


def test_noisy_scenes_no_longer_look_like_heat() -> None:
    obs, noisy = _noisy_scenes_table()
    on = compute_anomalies(obs, baseline="2016-01-01:2020-12-31")
    off = compute_anomalies(
        obs, baseline="2016-01-01:2020-12-31", params=AnomalyParams(scene_noise=False)
    )
    for out in (on, off):
        assert out["z"].notna().all()
    in_noisy = on["scene_id"].isin(noisy).to_numpy()
    hot_on = (on["z"] >= 2.5).to_numpy()
    hot_off = (off["z"] >= 2.5).to_numpy()
    # without the scene scale a fifth of the roofs of a noisy scene reach z >= 2.5 (Gaussian:
    # 0.6 %); with it less than half as many, and fewer over all scenes.  The correction is
    # partial by design: the factor is shrunk towards 1 and keeps the average variance, so the
    # quiet scenes are not made stricter than the buildings' own spreads say
    assert hot_off[in_noisy].mean() > 0.15
    assert hot_on[in_noisy].mean() < 0.5 * hot_off[in_noisy].mean()
    assert hot_on.mean() < 0.75 * hot_off.mean()
    assert on.loc[in_noisy, "z"].std() < 0.8 * off.loc[in_noisy, "z"].std()
    # and the quiet scenes are no longer under-used: their z spread is back near 1
    assert off.loc[~in_noisy, "z"].std() < 0.9 < 1.0 < on.loc[~in_noisy, "z"].std() < 1.25


def test_baseline_change_points_false_rate_power_and_place() -> None:
    rng = np.random.default_rng(1)
    n_g, n = 2000, 120
    codes = np.repeat(np.arange(n_g), n)
    row = np.tile(np.arange(n), n_g)
    times = row.astype(np.int64) * 86_400_000_000_000
    solar = np.tile(0.7 + 0.3 * np.sin(2 * np.pi * np.arange(n) / 45), n_g)
    noise = rng.normal(0.0, 1.0, n_g * n)
    none = np.iinfo(np.int64).max
    use = np.ones(noise.size, bool)
    # under no change the share of groups given a step is the stated rate (or below it)
    for alpha in (0.01, 0.001):
        found = baseline_change_points(codes, times, noise, use, n_g, alpha, solar=solar) != none
        assert found.mean() <= 1.5 * alpha
    assert (baseline_change_points(codes, times, noise, use, n_g, 0.05) != none).mean() > 0.03
    # a step of 0.8 sigma at row 70: found in most groups, at its place
    stepped = noise + np.where(row >= 70, 0.8, 0.0)
    at = baseline_change_points(codes, times, stepped, use, n_g, 0.001, solar=solar)
    assert (at != none).mean() > 0.5
    assert np.median(at[at != none]) == times[70]
    # a change of the solar response alone (no change of the mean) is found through its process
    s = (solar - solar.mean()) / solar.std()
    sun_only = noise + np.where(row >= 60, 1.2 * s, 0.0)
    with_sun = baseline_change_points(codes, times, sun_only, use, n_g, 0.001, solar=solar)
    level_only = baseline_change_points(codes, times, sun_only, use, n_g, 0.001)
    assert (with_sun != none).mean() > 0.5
    assert (with_sun != none).mean() > 3 * (level_only != none).mean()
    # too few rows on a side: no step
    short = codes < 1
    assert baseline_change_points(codes, times, stepped, short & (row < 15), n_g)[0] == none


def test_bridge_critical_values() -> None:
    assert bridge_critical_value(0.05) == pytest.approx(1.358, abs=2e-3)
    assert bridge_critical_value(0.01) == pytest.approx(1.628, abs=2e-3)
    with pytest.raises(AnalysisError, match="step_alpha"):
        bridge_critical_value(0.0)
