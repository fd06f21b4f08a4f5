"""Several industrial zones in one footprint file: a ``site`` column, scenes of two path/rows.

The simulator writes Kaesong (path 116, row 34) only, so the second zone is Kaesong moved
120 km east with its products: each simulated product is copied under a path 115 product id with
its rasters' georeferencing shifted by the same 120 km (a multiple of the 30 m grid), and the
second zone's footprints are the Kaesong outlines shifted alike. The second zone's buildings must
then read exactly what the first zone's read in the original scenes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from _pipeline_factories import simulated_set
from affine import Affine

import kaesong_thermal as kt
from kaesong_thermal.cli import main
from kaesong_thermal.landsat.scene import Scene
from kaesong_thermal.sites import per_site_counts, site_groups, site_of

SHIFT_M = 120_000.0
N_SCENES = 6


def shifted_product(product: Path, dest: Path) -> Path:
    """A copy of ``product`` as a path 115 / row 34 product, rasters moved ``SHIFT_M`` east."""
    old = product.name
    new = old.replace("_116034_", "_115034_")
    out = dest / new
    out.mkdir(parents=True)
    for src in product.iterdir():
        if src.suffix.lower() in (".xml", ".json"):
            continue  # the text MTL is the one read first; keep only it
        target = out / src.name.replace(old, new)
        if src.name.endswith("_MTL.txt"):
            text = src.read_text().replace(old, new)
            text = text.replace("_116034_", "_115034_").replace("WRS_PATH = 116", "WRS_PATH = 115")
            text = re.sub(
                r"(CORNER_\w\w_PROJECTION_X_PRODUCT = )([0-9.]+)",
                lambda m: f"{m.group(1)}{float(m.group(2)) + SHIFT_M:.3f}",
                text,
            )
            target.write_text(text)
            continue
        shutil.copyfile(src, target)
        with rasterio.open(target, "r+") as ds:
            t = ds.transform
            ds.transform = Affine(t.a, t.b, t.c + SHIFT_M, t.d, t.e, t.f)
    return out


@pytest.fixture(scope="module")
def two_zones(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path], Path]:
    """Products of Kaesong (path 116) and of the shifted zone (path 115), and one footprint file."""
    root = tmp_path_factory.mktemp("sites")
    products, fp_path = simulated_set(root / "sim", n=N_SCENES)
    east = [shifted_product(p, root / "east") for p in products]
    kaesong = gpd.read_file(fp_path)
    kaesong["site"] = "kaesong"
    utm = kaesong.to_crs(32652)
    moved = utm.copy()
    moved["geometry"] = utm.geometry.translate(xoff=SHIFT_M)
    moved["building_id"] = "east-" + utm["building_id"]
    moved["site"] = "east-zone"
    both = pd.concat([utm, moved], ignore_index=True)
    both = gpd.GeoDataFrame(both, geometry="geometry", crs=32652).to_crs(4326)
    both = both.drop(columns=["valid_from", "valid_to", "sources"], errors="ignore")
    out = root / "zones.geojson"
    out.write_text(both.to_json(drop_id=True))
    return products, east, out


def test_site_groups_split_far_zones_and_merge_close_ones(
    two_zones: tuple[list[Path], list[Path], Path],
) -> None:
    fp = kt.load_footprints(two_zones[2])
    groups = site_groups(fp)
    assert [g.sites for g in groups] == [("kaesong",), ("east-zone",)]
    assert [len(g.footprints) for g in groups] == [len(fp) // 2, len(fp) // 2]
    # a site 100 m from Kaesong's buildings shares Kaesong's rings: one group
    near = fp.copy()
    near.loc[near.index[:3], "site"] = "kaesong-annex"
    merged = site_groups(near)
    assert sorted(map(sorted, (g.sites for g in merged))) == [
        ["east-zone"],
        ["kaesong", "kaesong-annex"],
    ]
    # without a site column: one group, the table itself
    plain = fp.drop(columns=["site"])
    (only,) = site_groups(plain)
    assert only.footprints is plain and only.sites == (None,)
    assert site_of(fp).value_counts().to_dict() == {"kaesong": 28, "east-zone": 28}


def test_each_building_gets_only_its_own_scenes_from_bounded_windows(
    two_zones: tuple[list[Path], list[Path], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    west, east, fp_path = two_zones
    windows: list[tuple[str, float, float]] = []
    read_kelvin = Scene.read_kelvin

    def recording(self: Scene, *args: object, **kwargs: object) -> object:
        window = read_kelvin(self, *args, **kwargs)  # type: ignore[arg-type]
        b = window.bounds
        windows.append((self.metadata.scene_id, b.right - b.left, b.top - b.bottom))
        return window

    monkeypatch.setattr(Scene, "read_kelvin", recording)
    db = tmp_path / "zones.db"
    result = kt.detect([*west, *east], footprints=fp_path, store=db, workers=1)
    assert result.failed == [] and len(result.ingested) == 2 * N_SCENES

    # one window per scene, each the size of one zone (a few km), never one spanning both
    assert len(windows) == 2 * N_SCENES
    assert max(max(w, h) for _, w, h in windows) < 10_000.0

    st = kt.Store(db)
    try:
        obs = st.observations()
        scenes = st.scenes()
    finally:
        st.close()
    obs["path"] = obs["scene_id"].str.slice(10, 13)
    east_rows = obs["building_id"].str.startswith("east-")
    assert set(obs.loc[east_rows, "path"]) == {"115"}
    assert set(obs.loc[~east_rows, "path"]) == {"116"}
    assert len(obs) == 2 * N_SCENES * 28
    assert obs.groupby("building_id")["scene_id"].nunique().eq(N_SCENES).all()
    assert sorted(set(scenes["wrs_path"])) == [115, 116]

    # the moved zone reads what Kaesong read in the original scenes
    a = obs[~east_rows].copy()
    b = obs[east_rows].copy()
    b["building_id"] = b["building_id"].str.removeprefix("east-")
    b["scene_id"] = b["scene_id"].str.replace("_115034_", "_116034_")
    key = ["scene_id", "building_id"]
    a = a.set_index(key).sort_index()
    b = b.set_index(key).sort_index()
    assert a.index.equals(b.index)
    for col in ("t_roof_k", "t_background_k", "contrast_k", "valid_fraction", "ring_valid_px"):
        np.testing.assert_allclose(b[col], a[col], rtol=1e-6, atol=1e-6, equal_nan=True)
    assert np.isfinite(a["t_roof_k"]).mean() > 0.5

    # status and export carry the site
    status = main(["-q", "status", "--store", str(db), "--format", "json"])
    assert status == 0
    out = tmp_path / "obs.csv"
    assert main(["-q", "export", str(out), "--store", str(db)]) == 0
    exported = pd.read_csv(out)
    assert set(exported["site"]) == {"kaesong", "east-zone"}
    assert (
        (exported["site"] == "east-zone").eq(exported["building_id"].str.startswith("east-")).all()
    )


def test_status_json_and_per_site_counts(
    two_zones: tuple[list[Path], list[Path], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    west, east, fp_path = two_zones
    db = tmp_path / "zones.db"
    kt.detect([*west, *east], footprints=fp_path, store=db, workers=2)
    capsys.readouterr()
    assert main(["-q", "status", "--store", str(db), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 56
    assert {r["site"] for r in rows} == {"kaesong", "east-zone"}
    analysis = kt.pipeline.analyze_store(db)
    assert analysis is not None
    fp = kt.load_footprints(fp_path)
    counts = per_site_counts(analysis.status(), site_of(fp))
    assert list(counts.index) == ["east-zone", "kaesong"]
    assert counts["buildings"].tolist() == [28, 28]
    assert int(counts[["active", "uncertain", "idle", "no_data"]].to_numpy().sum()) == 56


def test_report_summarises_per_site_and_lists_only_the_active_when_large(
    two_zones: tuple[list[Path], list[Path], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kaesong_thermal import report

    west, east, fp_path = two_zones
    db = tmp_path / "zones.db"
    # a year of scenes around the 2016 closure: a quick verdict (h = 2: a single scene at z >= 3
    # switches) so that some buildings become active in so short a record
    quick = {"cusum_h_min": 2.0, "cusum_false_rate": 1.0}
    kt.detect([*west, *east], footprints=fp_path, store=db, workers=1, thresholds=quick)
    monkeypatch.setattr(report, "LARGE_REPORT_BUILDINGS", 10)
    monkeypatch.setattr(report, "MAX_BUILDING_FIGURES", 1)
    result = report.write_report(db, tmp_path / "report", since=None)
    facts = json.loads(result.json.read_text())
    assert [s["site"] for s in facts["sites"]] == ["east-zone", "kaesong"]
    assert sum(s["buildings"] for s in facts["sites"]) == 56
    assert sum(s["newly_active"] for s in facts["sites"]) == len(facts["newly_active"])
    assert len(facts["buildings"]) == 56  # the JSON keeps every building
    listed = [
        b for b in facts["buildings"] if b["newly_active"] or b["status"] in ("active", "uncertain")
    ]
    assert facts["buildings_omitted"] == 56 - len(listed) > 0
    md = result.md.read_text()
    assert "## Sites" in md and "| east-zone | 28 |" in md
    assert f"{56 - len(listed)} idle or no-data buildings not listed" in md
    html = result.html.read_text()
    assert 'id="sites"' in html and "status map" not in html
    # identical roofs in both zones: both are newly active alike, only one gets figures
    assert len(facts["newly_active"]) >= 2
    assert html.count('alt="time series of') == 1
