"""`kaesong-thermal plot map|status|multiples` on a real (simulated) store and product."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kaesong_thermal as kt
from kaesong_thermal.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    root = tmp_path_factory.mktemp("plotcli")
    sim = kt.simulate(
        root / "sim", start="2024-10-01", end="2025-02-28", sensors=("landsat-8",), seed=7
    )
    db = root / "kt.db"
    assert main(
        ["-q", "detect", str(sim.outdir / "products"), "--store", str(db), "--workers", "1"]
    ) in (0, 3)
    return root, db, sorted((sim.outdir / "products").iterdir())


def _png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(path).convert("RGB"))


def test_plot_map_of_a_product(run: tuple[Path, Path, list[Path]]) -> None:
    root, db, products = run
    out = root / "map.png"
    # the clearest scene: most of the map is thermal colour, not blank or hatched cloud
    clearest = min(products, key=lambda p: kt.open_scene(p).metadata.cloud_cover or 0.0)
    assert kt.open_scene(clearest).metadata.cloud_cover < 5.0
    assert main(["plot", "map", str(clearest), "--store", str(db), "--out", str(out)]) == 0
    img = _png(out)
    assert img.shape[0] > 300 and img.shape[1] > 300
    colourful = (img.max(axis=2).astype(int) - img.min(axis=2).astype(int)) > 40
    assert colourful.mean() > 0.1


def test_plot_status_and_multiples(run: tuple[Path, Path, list[Path]]) -> None:
    root, db, _ = run
    for what in ("status", "multiples"):
        out = root / f"{what}.png"
        assert main(["plot", what, "--store", str(db), "--out", str(out)]) == 0
        assert _png(out).std() > 10  # not a blank canvas


def test_plot_map_of_a_missing_product_is_one_clear_error(
    run: tuple[Path, Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, db, _ = run
    missing = root / "LC08_L2SP_116034_20250101_20250105_02_T1"
    code = main(["plot", "map", str(missing), "--store", str(db), "--out", str(root / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and str(missing.name) in err[0]
    assert not (root / "x.png").exists()
