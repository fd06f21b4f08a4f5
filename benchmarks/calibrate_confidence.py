"""Fit the logistic calibration of ``confidence`` (kaesong_thermal.classify.CONFIDENCE_COEF).

Simulates the Kaesong scenario with CALIBRATION seeds (never the evaluation seeds listed in
docs/method.md), runs the detector with its defaults, and fits, separately for the statuses
"active" and "idle", P(status right) = 1 / (1 + exp(-(a + b f + c agree))) by maximum likelihood,
where f is the accumulated statistic Z_k of the status (kaesong_thermal.classify.accumulated_z;
the median z of the evidence window where Z_k is undefined) signed towards the verdict (the
agreement share c is held at 0: it over-fits).  "Right" means the simulator's truth says the building is operating
(kaesong_thermal.evaluation.operating_truth) when the status is active, and not when it is idle.

Usage::

    python benchmarks/calibrate_confidence.py [--workdir /tmp/calib] [--seeds 11 12]

Prints the constants to paste into CONFIDENCE_COEF and the ECE before/after on the same seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

import kaesong_thermal as kt
from kaesong_thermal.evaluation import expected_calibration_error, operating_truth
from kaesong_thermal.pipeline import extract_products


def _observations(workdir: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = workdir / f"sim{seed}"
    cache = workdir / f"obs{seed}.parquet"
    if not (sim / "truth.csv").is_file():
        kt.simulate(sim, start="2014-01-01", end="2025-11-30", seed=seed)
    if cache.is_file():
        obs = pd.read_parquet(cache)
    else:
        fp = kt.load_footprints(sim / "footprints.geojson")
        obs = extract_products(sorted((sim / "products").iterdir()), fp, workers=1)
        obs.to_parquet(cache)
    return obs, pd.read_csv(sim / "truth.csv")


def _features(obs: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    truth = truth.copy()
    truth["acquired"] = pd.to_datetime(truth["acquired"], utc=True)
    truth["operating"] = operating_truth(truth).to_numpy()
    tl = kt.analyze(obs).timeline
    tl = tl.merge(truth[["scene_id", "building_id", "operating"]], on=["scene_id", "building_id"])
    tl = tl.loc[tl["status"].isin(["active", "idle"])].copy()
    sign = np.where(tl["status"] == "active", 1.0, -1.0)
    feature = tl["z_acc"].where(np.isfinite(tl["z_acc"]), tl["z_med"])
    tl["f"] = np.clip(sign * feature.fillna(0.0), -10, 10)
    tl["correct"] = (tl["status"] == "active") == tl["operating"].astype(bool)
    return tl


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    X = np.column_stack([np.ones(len(x)), x])

    def nll(w: np.ndarray) -> float:
        eta = X @ w
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta) + 1e-3 * np.sum(w[1:] ** 2))

    return np.asarray(minimize(nll, np.zeros(X.shape[1]), method="BFGS").x)


def main() -> None:
    """Fit and print the constants."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/calibrate-confidence")
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    frames = [_features(*_observations(workdir, s)) for s in args.seeds]
    tl = pd.concat(frames, ignore_index=True)
    coef = {}
    for status in ("active", "idle"):
        sel = tl.loc[tl["status"] == status]
        # agree is kept at weight 0: with few active statuses it over-fits (sign flips)
        w = _fit(sel[["f"]].to_numpy(), sel["correct"].to_numpy(dtype=float))
        coef[status] = (round(float(w[0]), 3), round(float(w[1]), 3), 0.0)
        print(f"{status}: n={len(sel)} accuracy={sel['correct'].mean():.3f} coef={coef[status]}")
    conf = np.zeros(len(tl))
    for status, (a, b, c) in coef.items():
        sel = (tl["status"] == status).to_numpy()
        conf[sel] = 1 / (1 + np.exp(-(a + b * tl["f"][sel] + c * tl["agree"][sel])))
    print("ECE before:", round(expected_calibration_error(tl["confidence"], tl["correct"]), 4))
    print("ECE after :", round(expected_calibration_error(conf, tl["correct"]), 4))
    print("CONFIDENCE_COEF =", coef)


if __name__ == "__main__":
    main()
