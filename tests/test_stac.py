"""STAC API scenes: search, remote COG windows, ``detect --stac``, faults (loopback only)."""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
from _pipeline_factories import n_buildings, observations_of, store_invariants
from _stac_server import StacServer, publish_product, write_cog

import kaesong_thermal as kt
from kaesong_thermal.cli import main
from kaesong_thermal.errors import KaesongThermalError, ProductError
from kaesong_thermal.landsat import qa
from kaesong_thermal.landsat.cloud import HttpOptions, cloud_env, gdal_options, gdal_path, redact
from kaesong_thermal.landsat.remote import (
    RemoteScene,
    merge_items,
    open_item,
    product_id,
    skip_reason,
)
from kaesong_thermal.sources import stac

BASELINE = "2016-03-01:2016-12-31"
SECRET = "sig=TOPSECRET"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """Nine simulated Landsat 8 Level-2 products (2015-09 to 2016-01) with STAC items."""
    root = tmp_path_factory.mktemp("stac-sim")
    result = kt.simulate(
        root,
        start="2015-09-01",
        end="2016-01-20",
        size="crop",
        seed=7,
        stac=True,
        sensors="landsat-8",
    )
    products = sorted(result.products, key=lambda p: p.name.split("_")[3])
    return products, result.footprints_path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StacServer]:
    srv = StacServer(tmp_path_factory.mktemp("stac-srv"), slow_s=2.5)
    yield srv
    srv.close()


def cli(*argv: object) -> int:
    return main([str(a) for a in argv])


# ----------------------------------------------------------------------------- settings
def test_gdal_settings_in_one_place() -> None:
    opts = gdal_options(HttpOptions(timeout_s=7, retries=2, retry_delay_s=0.25, cache_mb=32))
    assert opts["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert opts["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"] == "YES"
    assert opts["GDAL_HTTP_MULTIPLEX"] == "YES"
    assert ".tif" in str(opts["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"])
    assert (opts["GDAL_HTTP_MAX_RETRY"], opts["GDAL_HTTP_RETRY_DELAY"]) == ("2", "0.25")
    assert opts["GDAL_HTTP_TIMEOUT"] == "7"
    assert opts["GDAL_CACHEMAX"] == 32 << 20
    with cloud_env(HttpOptions()) as env:
        assert env.options["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"] == "YES"
    env_opts = HttpOptions.from_env(
        {"KAESONG_THERMAL_HTTP_TIMEOUT": "2", "KAESONG_THERMAL_HTTP_RETRIES": "0"}
    )
    assert (env_opts.timeout_s, env_opts.retries) == (2.0, 0)
    with pytest.raises(KaesongThermalError, match="not a number"):
        HttpOptions.from_env({"KAESONG_THERMAL_HTTP_TIMEOUT": "soon"})


def test_redact_removes_query_strings() -> None:
    text = "'/vsicurl/https://x.blob.core.windows.net/a/B10.TIF?st=1&sig=abc%2F' not found"
    assert redact(text) == "'/vsicurl/https://x.blob.core.windows.net/a/B10.TIF' not found"
    assert (
        redact("s3://bucket/key.TIF?X-Amz-Signature=1 and more") == "s3://bucket/key.TIF and more"
    )
    assert gdal_path("s3://usgs-landsat/c2/x_ST_B10.TIF") == "/vsis3/usgs-landsat/c2/x_ST_B10.TIF"
    assert gdal_path("https://h/x.TIF?sig=1") == "/vsicurl/https://h/x.TIF?sig=1"


# ----------------------------------------------------------------------------- items
def _item(pid: str, keys: dict[str, str], **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": pid,
        "properties": {"datetime": "2016-01-01T02:00:00Z", **props},
        "assets": {k: {"href": f"https://example.invalid/{pid}/{v}"} for k, v in keys.items()},
        "links": [],
    }


def test_landsatlook_st_and_sr_items_are_merged() -> None:
    pid = "LC08_L2SP_116034_20160113_20200907_02_T1"
    st = _item(f"{pid}_ST", {"lwir11": f"{pid}_ST_B10.TIF", "qa": f"{pid}_ST_QA.TIF"})
    sr = _item(
        f"{pid}_SR",
        {"qa_pixel": f"{pid}_QA_PIXEL.TIF", "mtl.txt": f"{pid}_MTL.txt", "red": f"{pid}_SR_B4.TIF"},
        **{"landsat:correction": "L2SR"},
    )
    other = _item("LC09_L2SP_116034_20160121_02_T1", {"lwir11": "x_ST_B10.TIF"})
    merged = merge_items([sr, other, st])
    assert [m["id"] for m in merged] == [pid, other["id"]]
    assert set(merged[0]["assets"]) == {"lwir11", "qa", "qa_pixel", "mtl.txt", "red"}
    assert skip_reason(merged[0]) is None
    assert product_id(merged[0]) == pid
    # alone, the _SR item has no surface temperature: skipped with a reason, not an error
    assert "L2SR" in str(skip_reason(merge_items([sr])[0]))
    with pytest.raises(ProductError, match="no surface temperature"):
        open_item(sr)


def test_product_id_from_property_hrefs_or_id() -> None:
    pid = "LC08_L2SP_116034_20160113_20200907_02_T1"
    assert product_id(_item("x", {}, **{"landsat:product_id": pid})) == pid
    assert (
        product_id(_item("LC08_L2SP_116034_20160113_02_T1", {"lwir11": f"{pid}_ST_B10.TIF"})) == pid
    )
    assert product_id(_item("LC08_L2SP_116034_20160113_02_T1", {"lwir11": "b10.tif"})) == (
        "LC08_L2SP_116034_20160113_02_T1"
    )


# ----------------------------------------------------------------------------- search
def test_search_by_bbox_datetime_and_pages(
    sim: tuple[list[Path], Path], server: StacServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pystac_client

    products, fp = sim
    for i, product in enumerate(products[:5]):
        publish_product(server, product, collection="c-search", style="pc" if i % 2 else "old")
    monkeypatch.setattr(stac, "_PAGE", 2)  # three pages
    found = kt.search_scenes(server.url, fp, collections="c-search")
    assert [stac.product_id(i.to_dict()) for i in found] == [
        p.name if i % 2 else "_".join(p.name.split("_")[:4] + p.name.split("_")[5:])
        for i, p in enumerate(products[:5])
    ]
    dates = [p.name.split("_")[3] for p in products[:5]]
    window = kt.search_scenes(
        server.url,
        fp,
        start=pd.Timestamp(dates[1]),
        end=pd.Timestamp(dates[3]) + pd.Timedelta("1D"),
        collections=["c-search"],
    )
    assert len(window) == 3
    far = kt.search_scenes(
        server.url,
        fp.parent / "nowhere.geojson" if False else _far_footprints(),
        collections="c-search",
    )
    assert far == []
    # both GET and POST searches page through `next` links
    client = pystac_client.Client.open(server.url)
    for method in ("GET", "POST"):
        search = client.search(collections=["c-search"], limit=2, method=method)
        pages = list(search.pages())
        assert [len(p.items) for p in pages] == [2, 2, 1]
    with pytest.raises(ProductError, match="STAC search failed"):
        kt.search_scenes(server.url + "/nothing-here", fp)


def _far_footprints() -> Any:
    import geopandas as gpd
    from shapely.geometry import box

    return gpd.GeoDataFrame(
        {"building_id": ["far"]}, geometry=[box(10.0, 10.0, 10.01, 10.01)], crs=4326
    ).set_index("building_id")


# ----------------------------------------------------------------------------- reading
def test_remote_windows_equal_local_reads_and_fetch_little(
    sim: tuple[list[Path], Path], server: StacServer
) -> None:
    products, fp = sim
    footprints = kt.load_footprints(fp)
    for style in ("pc", "old"):
        product = products[1]  # a clear scene
        item = publish_product(server, product, collection=f"c-read-{style}", style=style)
        server.reset_counts()
        scene = kt.open_scene(item)
        assert isinstance(scene, RemoteScene)
        assert scene.scene_id == product.name
        assert set(scene.files) >= {"ST_B10", "QA_PIXEL", "ST_QA"}
        remote = kt.extract(scene, footprints)
        local = kt.extract(kt.open_scene(product), footprints)
        cols = ["t_roof_k", "t_background_k", "contrast_k", "sigma_k", "valid_fraction"]
        np.testing.assert_allclose(
            remote[cols].to_numpy(float), local[cols].to_numpy(float), atol=1e-4, equal_nan=True
        )
        assert remote["t_roof_k"].notna().sum() > 10
        requests, nbytes = server.totals(f"/c-read-{style}/")
        folder = next((server.root / "data" / f"c-read-{style}").iterdir())
        cog_bytes = sum(f.stat().st_size for f in folder.glob("*"))
        assert nbytes < cog_bytes and requests <= 12
        assert scene.thermal_checksum().startswith("stac:")
        # the item's own URL (what the store records as source_path) opens the same scene
        by_url = kt.open_scene(f"{server.url}/collections/c-read-{style}/items/{item['id']}")
        assert by_url.scene_id == product.name and isinstance(by_url, RemoteScene)


def test_s3_hrefs_through_vsis3(
    sim: tuple[list[Path], Path], server: StacServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    products, fp = sim
    item = copy.deepcopy(publish_product(server, products[1], collection="c-s3"))
    for asset in item["assets"].values():  # bucket "data" on an S3 endpoint on loopback
        asset["href"] = asset["href"].replace(f"{server.url}/", "s3://")
    monkeypatch.setenv("AWS_S3_ENDPOINT", server.url.removeprefix("http://"))
    monkeypatch.setenv("AWS_HTTPS", "NO")
    monkeypatch.setenv("AWS_VIRTUAL_HOSTING", "FALSE")
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "YES")
    server.reset_counts()
    scene = kt.open_scene(item)
    assert scene.files["ST_B10"].gdal_path.startswith("/vsis3/data/c-s3/")
    footprints = kt.load_footprints(fp)
    remote = kt.extract(scene, footprints)["t_roof_k"].to_numpy(float)
    local = kt.extract(kt.open_scene(products[1]), footprints)["t_roof_k"].to_numpy(float)
    np.testing.assert_allclose(remote, local, atol=1e-4, equal_nan=True)
    assert np.isfinite(remote).sum() > 10
    assert server.totals("/data/c-s3/")[0] > 0  # really read from the endpoint


def test_landsatlook_st_items_fetch_their_sr_sibling(
    sim: tuple[list[Path], Path], server: StacServer
) -> None:
    products, fp = sim
    product = products[1]
    item = publish_product(server, product, collection="c-ll-all")
    st = {**copy.deepcopy(item), "id": f"{product.name}_ST"}
    st["assets"] = {k: v for k, v in st["assets"].items() if k in ("lwir11", "qa")}
    sr = {**copy.deepcopy(item), "id": f"{product.name}_SR"}
    sr["assets"] = {k: v for k, v in sr["assets"].items() if k not in ("lwir11", "qa")}
    sr["properties"]["landsat:correction"] = "L2SR"
    server.add_item("c-ll-st", st)
    server.add_item("c-ll-sr", sr)
    found = kt.search_scenes(server.url, fp, collections="c-ll-st")
    assert [i.id for i in found] == [product.name]
    assert {"lwir11", "qa", "qa_pixel", "mtl.txt"} <= set(found[0].assets)
    footprints = kt.load_footprints(fp)
    remote = kt.extract(kt.open_scene(found[0]), footprints)["t_roof_k"].to_numpy(float)
    local = kt.extract(kt.open_scene(product), footprints)["t_roof_k"].to_numpy(float)
    np.testing.assert_allclose(remote, local, atol=1e-4, equal_nan=True)


def test_scale_and_offset_from_raster_bands(
    sim: tuple[list[Path], Path], server: StacServer
) -> None:
    products, fp = sim
    item = copy.deepcopy(publish_product(server, products[1], collection="c-scale"))
    item["assets"]["lwir11"]["raster:bands"] = [{"scale": 0.00341802, "offset": 150.0}]
    footprints = kt.load_footprints(fp)
    shifted = kt.extract(kt.open_scene(item), footprints)
    local = kt.extract(kt.open_scene(products[1]), footprints)
    diff = (shifted["t_roof_k"] - local["t_roof_k"]).dropna()
    assert len(diff) > 10 and np.allclose(diff, 1.0, atol=1e-3)  # offset 150 instead of 149


def test_clouded_site_skips_the_thermal_read(
    sim: tuple[list[Path], Path], server: StacServer, tmp_path: Path
) -> None:
    products, fp = sim
    product = products[1]
    item = publish_product(server, product, collection="c-cloud")
    # make QA_PIXEL all cloud (bit 3) over the whole scene, as a COG again
    qa_cog = server.root / "data" / "c-cloud" / product.name / f"{product.name}_QA_PIXEL.TIF"
    with rasterio.open(product / f"{product.name}_QA_PIXEL.TIF") as src:
        profile, data = src.profile, src.read(1)
    data = np.where(qa.fill_mask(data), data, data | np.uint16(1 << 3)).astype(np.uint16)
    plain = tmp_path / "qa.tif"
    with rasterio.open(plain, "w", **profile) as dst:
        dst.write(data, 1)
    write_cog(plain, qa_cog)
    server.reset_counts()
    scene = kt.open_scene(item)
    obs = kt.extract(scene, kt.load_footprints(fp))
    assert isinstance(scene, RemoteScene) and scene.site_clouded
    assert obs["t_roof_k"].isna().all() and (obs["valid_fraction"] == 0).all()
    assert (obs["cover_px"] > 0).all()
    _, thermal_bytes = server.totals("_ST_B10.TIF")
    assert thermal_bytes <= 16384  # the header only, no tile
    assert server.totals("_ST_QA.TIF") == (0, 0)  # never opened
    # without the pre-filter the thermal band is read (and every pixel is invalid all the same)
    server.reset_counts()
    scene = open_item(item, max_site_cloud=None)
    assert kt.extract(scene, kt.load_footprints(fp))["t_roof_k"].isna().all()
    assert server.totals("_ST_B10.TIF")[1] > 16384


# ----------------------------------------------------------------------------- detect --stac
def test_detect_stac_twice_then_two_more(
    sim: tuple[list[Path], Path],
    server: StacServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    products, fp = sim
    first, more = products[:-2], products[-2:]
    coll = "c-detect"
    for i, product in enumerate(first):
        publish_product(server, product, collection=coll, style="pc" if i % 2 else "old")
    # an L2SR-only item: skipped with a reason, not an error
    sr = json.loads((first[0] / f"{first[0].name}_stac.json").read_text())
    sr["id"] = "LC08_L2SR_116034_20151001_20200901_02_T1"
    sr["properties"]["landsat:correction"] = "L2SR"
    sr["properties"].pop("landsat:product_id", None)
    sr["assets"] = {"qa_pixel": {"href": f"{server.url}/data/x/{sr['id']}_QA_PIXEL.TIF"}}
    server.add_item(coll, sr)

    db, local_db = tmp_path / "stac.db", tmp_path / "local.db"
    common = ["--footprints", fp, "--baseline", BASELINE, "--workers", 1]

    def both(local_products: list[Path]) -> tuple[int, str, str]:
        code = cli("detect", "--stac", server.url, "--collection", coll, "--store", db, *common)
        out = capsys.readouterr().out
        assert cli("detect", *local_products, "--store", local_db, *common) in (0, 3)
        return code, out, capsys.readouterr().out

    code, out, local_out = both(first)
    assert code == 0 and out == local_out
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM scenes").fetchone()[0] == len(first)
    sources = [r[0] for r in con.execute("SELECT source_path FROM scenes")]
    con.close()
    assert all(s.startswith(f"{server.url}/collections/{coll}/items/") for s in sources)

    # second run: nothing new, nothing fetched but the search
    server.reset_counts()
    code, out, _ = both(first)
    assert code == 0 and server.totals("/data/") == (0, 0)
    assert out.startswith("No building became active since")

    # two more items: exactly those are read, the newly active buildings printed as locally
    for product in more:
        publish_product(server, product, collection=coll)
    code, out, local_out = both(products)
    assert code in (0, 3) and out == local_out
    con = sqlite3.connect(db)
    runs = pd.read_sql_query("SELECT * FROM runs ORDER BY run_id", con)
    con.close()
    assert runs["n_ingested"].tolist() == [len(first), 0, 2]
    assert "building(s) became active since" in out
    store_invariants(db, len(products), n_buildings(fp))

    # the same observations as the same products read locally
    remote, local = observations_of(db), observations_of(local_db)
    assert list(remote["scene_id"]) == list(local["scene_id"])
    numeric = [c for c in remote.columns if c.endswith("_k") or c in ("valid_fraction", "cover_px")]
    np.testing.assert_allclose(
        remote[numeric].to_numpy(float), local[numeric].to_numpy(float), atol=1e-4, equal_nan=True
    )


def test_faults_fail_one_scene_each_and_a_rerun_picks_them_up(
    sim: tuple[list[Path], Path],
    server: StacServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    products, fp = sim
    coll = "c-faults"
    chosen = products[:5]
    for product in chosen:
        item = publish_product(server, product, collection=coll)
        # a signing token in every href: it must never reach the store, the log or the output
        with server.lock:
            stored = server.items[coll][-1]
            for asset in stored["assets"].values():
                asset["href"] += f"?st=2030&{SECRET}"
        assert item["id"]
    ids = [p.name for p in chosen]
    server.fault(f"{ids[0]}_ST_B10.TIF", *["404"] * 50)  # gone
    server.fault(f"{ids[1]}_QA_PIXEL.TIF", "500", "500")  # transient: retried, then fine
    server.fault(f"{ids[2]}_QA_PIXEL.TIF", *["slow"] * 50)  # never answers in time
    server.fault(f"{ids[4]}_MTL.txt", "500")  # transient: retried, then fine
    server.fault(f"{ids[3]}_ST_B10.TIF", *["truncate"] * 50)  # cut short, every time
    monkeypatch.setenv("KAESONG_THERMAL_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("KAESONG_THERMAL_HTTP_RETRIES", "1")
    monkeypatch.setenv("KAESONG_THERMAL_HTTP_RETRY_DELAY", "0.05")
    db = tmp_path / "kt.db"
    argv = ["detect", "--stac", server.url, "--collection", coll, "--store", db]
    argv += ["--footprints", fp, "--baseline", BASELINE, "--json"]
    with caplog.at_level(logging.INFO):
        code = cli(*argv, "--workers", 1)
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == 1
    assert sorted(result["ingested"]) == sorted([ids[1], ids[4]])
    failed = {f["path"].rsplit("/", 1)[-1]: f["message"] for f in result["failed"]}
    assert set(failed) == {ids[0], ids[2], ids[3]}
    assert "404" in failed[ids[0]] and f"{ids[0]}_ST_B10.TIF" in failed[ids[0]]
    assert f"{ids[2]}_QA_PIXEL.TIF" in failed[ids[2]]
    assert f"{ids[3]}_ST_B10.TIF" in failed[ids[3]]
    for message in failed.values():
        assert "\n" not in message and "Traceback" not in message
    error_lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(error_lines) == 3 and all("\n" not in line for line in error_lines)
    assert "TOPSECRET" not in captured.out + captured.err + caplog.text
    assert b"TOPSECRET" not in db.read_bytes()
    store_invariants(db, 2, n_buildings(fp))

    # faults gone: the re-run reads exactly the three failed scenes
    with server.lock:
        server.faults.clear()
    code = cli(*argv, "--workers", 2)  # in parallel, in fresh processes
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and sorted(result["ingested"]) == sorted([ids[0], ids[2], ids[3]])
    assert result["failed"] == []
    store_invariants(db, 5, n_buildings(fp))


def test_planetary_computer_hrefs_are_signed_in_the_worker_only(
    sim: tuple[list[Path], Path],
    server: StacServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    products, fp = sim
    publish_product(server, products[1], collection="c-signed")
    signed: list[str] = []

    def fake_sign(item: dict[str, Any]) -> dict[str, Any]:  # what planetary_computer.sign does
        out = copy.deepcopy(item)
        for asset in out["assets"].values():
            asset["href"] += f"?se=2030&{SECRET}"
        signed.append(out["id"])
        return out

    assert stac.signing_for("https://planetarycomputer.microsoft.com/api/stac/v1")
    assert stac.signing_for(server.url) is None
    monkeypatch.setattr(stac, "signing_for", lambda url: "planetary-computer")
    monkeypatch.setattr(stac, "sign_item", fake_sign)
    db = tmp_path / "kt.db"
    with caplog.at_level(logging.DEBUG):
        run = kt.detect_stac(
            server.url,
            footprints=fp,
            store=db,
            collections="c-signed",
            baseline=BASELINE,
            workers=1,
        )
    assert run.result.ingested == [products[1].name] and signed == [products[1].name]
    ours = [r for r in caplog.records if r.name.startswith("kaesong_thermal")]
    assert ours and not any("TOPSECRET" in r.getMessage() for r in ours)  # even at DEBUG
    assert not any(
        "TOPSECRET" in r.getMessage() for r in caplog.records if r.levelno >= logging.INFO
    )
    assert b"TOPSECRET" not in db.read_bytes()


def test_a_404_cached_in_this_process_is_asked_again_by_the_next_open(
    sim: tuple[list[Path], Path], server: StacServer
) -> None:
    products, _ = sim
    item = publish_product(server, products[2], collection="c-again")
    server.fault(f"c-again/{products[2].name}/{products[2].name}_ST_B10.TIF", "404")
    with pytest.raises(KaesongThermalError, match=r"_ST_B10\.TIF: cannot open.*404"):
        kt.open_scene(item)
    assert kt.open_scene(item).scene_id == products[2].name  # the file is back


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for argv in (
        ["detect"],
        ["detect", str(tmp_path), "--stac", "http://127.0.0.1:9"],
        ["detect", str(tmp_path), "--max-cloud", "20"],
        ["detect", "--stac", "http://127.0.0.1:9", "--max-cloud", "120"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    capsys.readouterr()
    # an API that is not there: one line, exit 1
    code = cli("detect", "--stac", "http://127.0.0.1:9", "--store", tmp_path / "x.db")
    err = capsys.readouterr().err
    assert code == 1 and "STAC search failed" in err and len(err.strip().splitlines()) == 1
    code = cli(
        "detect", "--stac", "http://127.0.0.1:9", "--since", "soon", "--store", tmp_path / "x.db"
    )
    err = capsys.readouterr().err
    assert code == 1 and "since 'soon': not a date" in err
    assert not (tmp_path / "x.db").exists()  # nothing created for a failed search


def test_info_on_an_item_url(
    sim: tuple[list[Path], Path], server: StacServer, capsys: pytest.CaptureFixture[str]
) -> None:
    products, _ = sim
    item = publish_product(server, products[1], collection="c-info")
    url = f"{server.url}/collections/c-info/items/{item['id']}"
    assert cli("info", url, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["scene_id"] == products[1].name and info["path"] == url
    assert (info["width"], info["height"]) == (200, 200)
    assert info["files"]["ST_B10"].startswith(f"{server.url}/data/c-info/")
    assert info["qa"]["pixels"] == 40000
    assert cli("info", url + "-gone") == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_permanent_faults_are_told_by_their_code_not_by_digits_in_the_url() -> None:
    from kaesong_thermal.landsat.remote import is_permanent

    port = "http://127.0.0.1:40103/data/LC08_L2SP_116034_20200404_20200820_02_T1_ST_B10.TIF"
    assert is_permanent(f"{port}: cannot open as GeoTIFF (HTTP response code: 404)")
    assert is_permanent("x.TIF: HTTP response code: 403")
    assert is_permanent("/vsicurl/x.TIF: No such file or directory")
    # a transient 500 on a server whose port or product date holds 401 / 404 is retried
    assert not is_permanent(f"{port}: cannot open as GeoTIFF (HTTP response code: 500)")
    assert not is_permanent(f"{port}: CURL error: Operation timed out after 1002 milliseconds")
