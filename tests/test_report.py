"""The report: self-contained HTML, autoescaping, newly active buildings, md/json agreement, store."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from _plot_factories import XSS_NAME, make_analysis, make_footprints, make_observations

from kaesong_thermal.cli import main
from kaesong_thermal.errors import AnalysisError, StoreError
from kaesong_thermal.report import write_report
from kaesong_thermal.store import Store


class _Refs(HTMLParser):
    """Collects tags and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "data", "poster", "background"):
                self.urls.append((tag, name, value or ""))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Refs:
    parser = _Refs()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(make_analysis(), out, since=None, footprints=make_footprints(), synthetic=True)
    return out


def test_html_is_self_contained(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    refs = _parse(html)
    assert "script" not in refs.tags and "link" not in refs.tags and "iframe" not in refs.tags
    imgs = [v for tag, name, v in refs.urls if tag == "img"]
    # status map, heatmap, small multiples, the time series of the newly active building
    assert len(imgs) == 4
    for _tag, name, value in refs.urls:
        if name == "href":
            assert value.startswith("#"), value
        else:
            assert value.startswith("data:image/png;base64,"), value[:60]
            png = base64.b64decode(value.split(",", 1)[1])
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"https?://", html)
    assert "url(" not in html and "@import" not in html and "@font-face" not in html


def test_autoescaping(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert XSS_NAME in "".join(_parse(html).text)  # shown as text
    md = (report_dir / "report.md").read_text(encoding="utf-8")
    assert "<script>" not in md
    data = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert XSS_NAME in [b["name"] for b in data["buildings"]]


def test_newly_active_building_first(report_dir: Path) -> None:
    data = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert [b["building_id"] for b in data["newly_active"]] == ["hot-a"]
    item = data["newly_active"][0]
    # switched on 2023-06-01: the first two valid hot scenes (2 of 3) make it active
    assert pd.Timestamp(item["date"]) >= pd.Timestamp("2023-06-01", tz="UTC")
    assert pd.Timestamp(item["date"]) <= pd.Timestamp("2023-07-31", tz="UTC")
    assert item["anomaly_k"] == pytest.approx(6.0, abs=1.0)
    assert item["scene_id"] in [e["scene_id"] for e in item["evidence"]]
    assert data["buildings"][0]["building_id"] == "hot-a"
    assert data["buildings"][0]["newly_active"] is True
    assert data["synthetic"] is True
    assert any("SYNTHETIC" in c for c in data["caveats"])
    assert any("approximate" in c for c in data["caveats"])
    # 126 scenes of 16 days from 2019-01-05; every 9th from the 5th clouded: 14
    assert data["scenes"] == {"in_window": 126, "used": 112, "clouded": 14, "total": 126}
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    summary = html[html.index('id="summary"') : html.index('id="b-1"')]
    assert "Hot A Textiles" in summary and "Idle B Metal" not in summary
    # no source path known for an in-memory analysis: the report says why there is no map
    assert "source path is not recorded" in html


def test_markdown_and_json_agree(report_dir: Path) -> None:
    data = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    md = (report_dir / "report.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (.+) \(newly active\)$", md, flags=re.M)
    assert sections == [b["name"] for b in data["newly_active"]]
    table = re.findall(r"^\| (.+?)(?: \(new\))? \| `([^`]+)` \| [^|]* \| (\w+) \|", md, flags=re.M)
    assert [(bid, st) for _, bid, st in table] == [
        (b["building_id"], b["status"]) for b in data["buildings"]
    ]
    assert f"Scenes in the window: {data['scenes']['in_window']}" in md
    assert data["as_of"][:10] in md


def test_since_date_filters_transitions(tmp_path: Path) -> None:
    analysis = make_analysis()
    after = write_report(analysis, tmp_path / "a", since="2023-01-01", footprints=make_footprints())
    assert after.newly_active == ("hot-a",)
    late = write_report(analysis, tmp_path / "b", since="2024-01-01")
    assert late.newly_active == ()
    assert "No building became active" in late.html.read_text(encoding="utf-8")
    with pytest.raises(AnalysisError, match="since"):
        write_report(analysis, tmp_path / "c", since="not a date")


def _fill_store(path: Path, obs: pd.DataFrame, source: str) -> None:
    with Store(path) as store:
        for scene_id, group in obs.groupby("scene_id", sort=False):
            first = group.iloc[0]
            store.add_scene(
                {
                    "scene_id": scene_id,
                    "sensor": "LC08",
                    "level": "L2",
                    "acquired": first["acquired"],
                    "thermal_checksum": f"{hash(scene_id) & 0xFFFFFFFF:064x}",
                    "cloud_cover": 12.0,
                    "source_path": f"{source}/{scene_id}",
                },
                group,
            )
        store.start_run(baseline="2019-01-01:2022-12-31", params={"z_active": 3.0})
        run_id = int(store.runs()["run_id"].iloc[-1])
        store.finish_run(run_id, n_ingested=1, n_skipped=0, n_failed=0, n_newly_active=1)


def test_since_last_uses_and_records_reports_in_the_store(tmp_path: Path) -> None:
    obs = make_observations()
    early = obs[obs["acquired"] < pd.Timestamp("2024-01-01", tz="UTC")]
    db = tmp_path / "kt.db"
    _fill_store(db, early, str(tmp_path / "gone"))
    first = write_report(db, tmp_path / "r1", footprints=make_footprints())
    assert first.newly_active == ("hot-a",)
    assert first.since is None  # no previous report: the whole record
    html = first.html.read_text(encoding="utf-8")
    assert "scene source no longer readable" in html  # source path recorded but deleted
    with Store(db) as store:
        last = store.last_report()
        assert last is not None and Path(last["path"]) == first.html
        assert last["as_of"] == first.as_of == early["acquired"].max()
    # new scenes arrive; nothing new switched on since the previous report
    _fill_store(db, obs[obs["acquired"] >= pd.Timestamp("2024-01-01", tz="UTC")], "x")
    second = write_report(db, tmp_path / "r2", since="last")
    assert second.since == first.as_of
    assert second.newly_active == ()
    assert second.as_of == obs["acquired"].max()
    data = json.loads(second.json.read_text(encoding="utf-8"))
    assert data["since"][:10] == f"{first.as_of:%Y-%m-%d}"
    assert data["scenes"]["in_window"] == obs[obs["acquired"] > first.as_of]["scene_id"].nunique()


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such file"):
        write_report(tmp_path / "none.db", tmp_path / "out")


def test_cli_report_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "kt.db"
    _fill_store(db, make_observations(), str(tmp_path / "gone"))
    fp = tmp_path / "fp.geojson"
    make_footprints().to_crs("EPSG:4326").reset_index().to_file(fp, driver="GeoJSON")
    code = main(
        ["report", "--store", str(db), "--out", str(tmp_path / "rep"), "--footprints", str(fp)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "newly active: hot-a" in out and str(tmp_path / "rep" / "report.html") in out
    assert "Hot A Textiles" in (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    png = tmp_path / "ts.png"
    assert main(["plot", "timeseries", "hot-a", "--store", str(db), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    heat = tmp_path / "heat.png"
    assert main(["plot", "heatmap", "--store", str(db), "--out", str(heat)]) == 0
    assert heat.stat().st_size > 10_000
    assert main(["plot", "timeseries", "nope", "--store", str(db), "--out", str(png)]) == 1
    assert "nope" in capsys.readouterr().err
