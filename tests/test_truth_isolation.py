"""The detector never reads the simulator's ground truth (only evaluation does)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

import kaesong_thermal as kt
from kaesong_thermal.pipeline import detect

_OPENED: list[str] = []
_RECORDING = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _RECORDING and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)


def test_detect_opens_no_truth_file_and_does_not_depend_on_it(tmp_path: Path) -> None:
    global _RECORDING
    sim = kt.simulate(
        tmp_path / "sim", start="2024-09-01", end="2025-01-31", sensors=("landsat-8",), seed=3
    )
    assert sim.truth_path.exists()
    _OPENED.clear()
    _RECORDING = True
    try:
        first = detect([sim.outdir / "products"], store=tmp_path / "a.db", workers=1)
    finally:
        _RECORDING = False
    names = {Path(p).name for p in _OPENED}
    assert names, "the audit hook saw no file being opened"
    assert any(n.endswith("_ST_B10.TIF") for n in names)
    assert not {"truth.csv", "scenes.csv", "scenario.json"} & names

    # the same products without any simulator side file give the same observations
    bare = tmp_path / "bare"
    shutil.copytree(sim.outdir / "products", bare)
    second = detect([bare], store=tmp_path / "b.db", workers=1)
    assert first.analysis is not None and second.analysis is not None
    cols = ["scene_id", "building_id", "t_roof_k", "contrast_k", "valid_fraction"]
    a = first.analysis.observations[cols].sort_values(cols[:2]).reset_index(drop=True)
    b = second.analysis.observations[cols].sort_values(cols[:2]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == sim.n_scenes * 28
