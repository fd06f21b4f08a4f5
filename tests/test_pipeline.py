"""Tests of kaesong_thermal.pipeline: product discovery, extraction and ``detect`` on a store."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from _pipeline_factories import corrupt_copy, n_buildings, simulated_set, store_invariants

from kaesong_thermal.config import Config, load_config, parse_baseline
from kaesong_thermal.errors import ConfigError, FootprintError, ProductError, StoreError
from kaesong_thermal.pipeline import detect, discover_products, extract_products

PID_A = "LC08_L2SP_116034_20230105_20230110_02_T1"
PID_B = "LC09_L2SP_116034_20230113_20230114_02_T1"


def fake_product(root: Path, pid: str) -> Path:
    """A directory with the file names of a Level-2 product (contents irrelevant here)."""
    d = root / pid
    d.mkdir(parents=True)
    for suffix in ("MTL.txt", "MTL.json", "ST_B10.TIF", "QA_PIXEL.TIF"):
        (d / f"{pid}_{suffix}").write_bytes(b"x")
    return d


# ---------------------------------------------------------------------------- discovery


def test_discover_directories_files_tars_stac_and_globs(tmp_path: Path) -> None:
    a = fake_product(tmp_path / "outdir" / "products", PID_A)
    b = fake_product(tmp_path / "outdir" / "products", PID_B)
    tar = tmp_path / "dl" / f"{PID_A}.tar"
    tar.parent.mkdir()
    tar.write_bytes(b"tar")
    stac = tmp_path / "dl" / "item.json"
    stac.write_text(json.dumps({"type": "Feature", "assets": {}, "stac_version": "1.0.0"}))
    (tmp_path / "dl" / "notes.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "dl" / "readme.txt").write_text("not a product")

    # a directory holding products two levels down, then the same products again (deduplicated)
    assert discover_products([tmp_path / "outdir", a]) == [a, b]
    # any file of a product means its directory
    assert discover_products([a / f"{PID_A}_ST_B10.TIF", a / f"{PID_A}_MTL.txt"]) == [a]
    # a directory of downloads: the tar and the STAC item, not the other files
    assert discover_products([str(tmp_path / "dl")]) == [tar, stac]
    # globs the shell did not expand, with **
    assert discover_products([str(tmp_path / "outdir" / "**" / "LC09*")]) == [b]
    assert discover_products(str(tmp_path / "dl" / "*.tar")) == [tar]
    # a missing path is kept, to be reported by name as a failed product
    assert discover_products([tmp_path / "gone"]) == [tmp_path / "gone"]


def test_discover_flat_directory_with_several_products(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for pid in (PID_A, PID_B):
        for suffix in ("MTL.xml", "MTL.txt", "ST_B10.TIF"):
            (flat / f"{pid}_{suffix}").write_bytes(b"x")
    mtl_a, mtl_b = flat / f"{PID_A}_MTL.txt", flat / f"{PID_B}_MTL.txt"
    assert discover_products([flat]) == [mtl_a, mtl_b]
    assert discover_products([flat / f"{PID_B}_ST_B10.TIF"]) == [mtl_b]


def test_empty_glob_and_empty_directory_are_clear_errors(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.tar")
    with pytest.raises(ProductError, match=r"\*\.tar: no file matches this pattern"):
        discover_products([pattern])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProductError, match="empty: no Landsat product found"):
        discover_products([tmp_path / "empty"])


# ---------------------------------------------------------------------------- config


def test_config_file_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "kaesong-thermal.toml"
    cfg.write_text(
        'footprints = "fp/site.geojson"\nstore = "/data/kt.db"\nbaseline = "auto"\nworkers = 3\n'
        "[thresholds]\nz_active = 4.0\n[extract]\nring_outer_m = 250\n"
    )
    config = load_config(cfg)
    assert config.footprints == str(tmp_path / "fp" / "site.geojson")
    assert config.store == "/data/kt.db"
    assert config.baseline == "auto" and config.workers == 3
    assert config.thresholds == {"z_active": 4.0}
    assert config.extract == {"ring_outer_m": 250}
    over = config.override(store="other.db", workers=None)
    assert over.store == "other.db" and over.workers == 3


def test_config_lookup_in_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config() == Config()
    (tmp_path / "kaesong-thermal.toml").write_text('baseline = "2016-03-01:2019-12-31"\n')
    assert load_config().baseline == "2016-03-01:2019-12-31"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers = 0\n", "workers must be a positive integer"),
        ('colour = "red"\n', "unknown key 'colour'"),
        ('baseline = "2020-01-01:2019-01-01"\n', "START must be a date before END"),
        ("[extract]\nring_m = 3\n", "unknown \\[extract\\] key 'ring_m'"),
        ("workers = \n", "invalid TOML"),
    ],
)
def test_config_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=rf"bad\.toml: .*{message}"):
        load_config(cfg)


def test_parse_baseline() -> None:
    assert parse_baseline("AUTO") == "auto"
    assert parse_baseline("2016-03-01:2022-12-31") == "2016-03-01:2022-12-31"
    with pytest.raises(ConfigError, match="expected START:END"):
        parse_baseline("2016")


# ---------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """Eight simulated Kaesong products (2015-16) and their footprints."""
    return simulated_set(tmp_path_factory.mktemp("sim"), n=8)


def test_extract_products_matches_extract(sim: tuple[list[Path], Path]) -> None:
    from kaesong_thermal.extraction import extract
    from kaesong_thermal.footprints import load_footprints
    from kaesong_thermal.landsat import open_scene

    products, fp_path = sim
    obs = extract_products(products[:3], fp_path)
    assert len(obs) == 3 * n_buildings(fp_path)
    assert obs["acquired"].is_monotonic_increasing
    fp = load_footprints(fp_path)
    with open_scene(products[1]) as scene:
        one = extract(scene, fp).set_index("building_id")
    sid = one["scene_id"].iloc[0]
    mine = obs[obs["scene_id"] == sid].set_index("building_id").loc[one.index]
    pd.testing.assert_series_equal(mine["t_roof_k"], one["t_roof_k"])
    pd.testing.assert_series_equal(mine["contrast_k"], one["contrast_k"])


def test_detect_then_nothing_new(sim: tuple[list[Path], Path], tmp_path: Path) -> None:
    products, fp_path = sim
    db = tmp_path / "kt.db"
    first = detect(products[:5], footprints=fp_path, store=db, workers=1, baseline="auto")
    assert len(first.ingested) == 5 and first.skipped == [] and first.failed == []
    assert first.since is None and first.analysis is not None
    assert {"anomaly_k", "z", "state"} <= set(first.analysis.observations.columns)
    second = detect(products[:6], footprints=fp_path, store=db, workers=1, baseline="auto")
    assert len(second.ingested) == 1 and len(second.skipped) == 5
    assert second.since == first.as_of
    dates = pd.to_datetime(second.newly_active["date"], utc=True)
    assert bool((dates > first.as_of).all())  # only transitions after the previous as-of
    store_invariants(db, 6, n_buildings(fp_path))


def test_same_product_from_tar_and_directory_is_stored_once(
    sim: tuple[list[Path], Path], tmp_path: Path
) -> None:
    products, fp_path = sim
    product = products[0]
    tar = tmp_path / f"{product.name}.tar"
    with tarfile.open(tar, "w") as tf:
        for f in sorted(product.iterdir()):
            tf.add(f, arcname=f.name)
    db = tmp_path / "kt.db"
    res = detect([product, tar], footprints=fp_path, store=db, workers=1, baseline="auto")
    assert len(res.ingested) == 1 and len(res.skipped) == 1
    again = detect([tar], footprints=fp_path, store=db, workers=1, baseline="auto")
    assert again.ingested == [] and again.skipped == res.ingested
    forced = detect([tar], footprints=fp_path, store=db, workers=1, force=True, baseline="auto")
    assert forced.ingested == res.ingested
    scenes = store_invariants(db, 1, n_buildings(fp_path))
    assert scenes["source_path"].iloc[0] == str(tar.resolve())


def test_corrupt_product_among_good_ones(sim: tuple[list[Path], Path], tmp_path: Path) -> None:
    products, fp_path = sim
    bad = corrupt_copy(products[3], tmp_path / "bad")
    missing = tmp_path / "never-downloaded.tar"
    db = tmp_path / "kt.db"
    res = detect(
        [products[0], bad, products[1], missing, products[2]],
        footprints=fp_path,
        store=db,
        workers=2,
        baseline="auto",
    )
    assert len(res.ingested) == 3
    failed = dict(res.failed)
    assert set(failed) == {str(bad), str(missing)}
    assert "\n" not in failed[str(bad)] and failed[str(bad)]
    assert "no such file" in failed[str(missing)]
    store_invariants(db, 3, n_buildings(fp_path))


def test_footprints_changed_since_store_was_built(
    sim: tuple[list[Path], Path], tmp_path: Path
) -> None:
    import geopandas as gpd

    products, fp_path = sim
    db = tmp_path / "kt.db"
    detect(products[:2], footprints=fp_path, store=db, workers=1, baseline="auto")
    fp = gpd.read_file(fp_path)
    changed = fp[fp["building_id"] != fp["building_id"].iloc[0]].copy()
    new_fp = tmp_path / "changed.geojson"
    changed.to_file(new_fp, driver="GeoJSON")
    removed = str(fp["building_id"].iloc[0])
    with pytest.raises(FootprintError, match=rf"changed\.geojson.*1 removed \({removed}\)"):
        detect(products[2:3], footprints=new_fp, store=db, workers=1, baseline="auto")
    res = detect(
        products[2:3], footprints=new_fp, store=db, workers=1, baseline="auto", reextract=True
    )
    assert len(res.ingested) == 3  # the new scene and the two stored ones, re-extracted
    con = sqlite3.connect(db)
    ids = {r[0] for r in con.execute("SELECT DISTINCT building_id FROM observations")}
    hashes = {r[0] for r in con.execute("SELECT DISTINCT footprints_hash FROM scenes")}
    con.close()
    assert removed not in ids and len(ids) == n_buildings(fp_path) - 1
    assert len(hashes) == 1


def test_store_errors_surface_before_any_work(sim: tuple[list[Path], Path], tmp_path: Path) -> None:
    products, fp_path = sim
    notastore = tmp_path / "thesis.db"
    notastore.write_text("chapter one\n")
    with pytest.raises(StoreError, match=r"thesis\.db: not a kaesong-thermal store"):
        detect(products[:1], footprints=fp_path, store=notastore, workers=1)
    assert notastore.read_text() == "chapter one\n"
    with pytest.raises(StoreError, match="read-only"):
        detect(products[:1], footprints=fp_path, store="/proc/kt.db", workers=1)


def test_copying_store_keeps_it_usable(sim: tuple[list[Path], Path], tmp_path: Path) -> None:
    """A store is one file: after a clean close it can be copied and used elsewhere."""
    products, fp_path = sim
    db = tmp_path / "kt.db"
    detect(products[:2], footprints=fp_path, store=db, workers=1, baseline="auto")
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    res = detect(products[:3], footprints=fp_path, store=copy, workers=1, baseline="auto")
    assert len(res.ingested) == 1 and len(res.skipped) == 2
