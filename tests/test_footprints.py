"""Tests of kaesong_thermal.footprints: the shipped Kaesong set and loading any analyst's file."""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from itertools import combinations
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Point, Polygon, box

from kaesong_thermal.errors import FootprintError, KaesongThermalError
from kaesong_thermal.footprints import (
    COLUMNS,
    KINDS,
    area_m2,
    footprints_hash,
    load_footprints,
    shipped_footprints_path,
    validate_footprints,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "footprints" / "kaesong.geojson"
README = ROOT / "footprints" / "README.md"
FIXED_IDS = {
    "amos",
    "samas-electronics",
    "jaeyoung-solutec",
    "in-the-f",
    "seokchon-ceramics",
    "living-art",
    "shinwon",
    "romanson",
    "sj-tech",
    "apartment-factory",
    "support-center",
    "liaison-office",
    "peace-substation",
    "water-plant",
}
BRIEFED_2025 = ("amos", "samas-electronics", "jaeyoung-solutec", "in-the-f", "seokchon-ceramics")

# A UTM 52N (EPSG:32652) point inside the complex, used to build small test layers.
TO_UTM = Transformer.from_crs(4326, 32652, always_xy=True)
TO_LL = Transformer.from_crs(32652, 4326, always_xy=True)
E0, N0 = TO_UTM.transform(126.633, 37.933)


# ----------------------------------------------------------------------------------------------
# helpers


def utm_box(dx: float, dy: float, w: float, h: float) -> Polygon:
    """Axis-aligned w x h metre rectangle, lower-left corner (dx, dy) metres from E0, N0."""
    return box(E0 + dx, N0 + dy, E0 + dx + w, N0 + dy + h)


def to_lonlat(geom: Polygon) -> list[list[list[float]]]:
    """GeoJSON coordinates (lon, lat) of a UTM polygon's exterior ring."""
    xs, ys = geom.exterior.coords.xy
    lon, lat = TO_LL.transform(np.asarray(xs), np.asarray(ys))
    return [[[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]]


def feature(bid: Any, geometry: dict[str, Any] | None, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"building_id": bid, "name": f"Building {bid}", **props},
        "geometry": geometry,
    }


def poly(dx: float, dy: float, w: float = 50.0, h: float = 40.0) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": to_lonlat(utm_box(dx, dy, w, h))}


def good_features() -> list[dict[str, Any]]:
    """Three well-separated valid footprints (areas 2,000, 1,200 and 600 m2 in UTM)."""
    return [
        feature("a", poly(0, 0, 50, 40)),
        feature("b", poly(200, 0, 40, 30)),
        feature("c", poly(0, 200, 30, 20)),
    ]


def write_geojson(path: Path, features: list[dict[str, Any]], **top: Any) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", **top, "features": features}))
    return path


def utm_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "building_id": ["a", "b", "c"],
            "name": ["A", "B", "C"],
            "kind": ["factory", "office", "utility"],
            "valid_to": [None, "2020-06-16", None],
        },
        geometry=[utm_box(0, 0, 100, 100), utm_box(300, 0, 60, 50), utm_box(0, 300, 20, 20)],
        crs="EPSG:32652",
    )


def write_shapefile(frame: gpd.GeoDataFrame, path: Path) -> Path:
    """Write a Shapefile, silencing the expected 10-character field-name warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame.to_file(path, driver="ESRI Shapefile")
    return path


def utm_scale_factor(lon: float, lat: float, lon0: float = 129.0, k0: float = 0.9996) -> float:
    """Point scale factor of transverse Mercator (Snyder 1987, eq. 8-11, WGS 84)."""
    e2 = 0.00669437999014
    ep2 = e2 / (1.0 - e2)
    phi = math.radians(lat)
    a_ = math.radians(lon - lon0) * math.cos(phi)
    c = ep2 * math.cos(phi) ** 2
    t = math.tan(phi) ** 2
    return k0 * (
        1.0
        + (1.0 + c) * a_**2 / 2.0
        + (5.0 - 4.0 * t + 42.0 * c + 13.0 * c**2 - 28.0 * ep2) * a_**4 / 24.0
    )


# ----------------------------------------------------------------------------------------------
# the shipped set


@pytest.fixture(scope="module")
def shipped() -> gpd.GeoDataFrame:
    return load_footprints()


@pytest.fixture(scope="module")
def shipped_areas(shipped: gpd.GeoDataFrame) -> pd.Series:
    return area_m2(shipped)


def test_shipped_validates_clean() -> None:
    report = validate_footprints()
    assert report.ok
    assert report.problems == []
    assert report.count >= 25
    assert report.crs == "EPSG:4326"
    assert report.area_min_m2 is not None and report.area_min_m2 < 900.0
    assert report.area_max_m2 is not None and report.area_max_m2 <= 15_000.0


def test_shipped_ids_columns_and_attrs(shipped: gpd.GeoDataFrame) -> None:
    assert len(shipped) >= 25
    assert shipped.index.name == "building_id"
    assert shipped.index.is_unique
    assert set(shipped.index) >= FIXED_IDS
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", bid) for bid in shipped.index)
    assert list(shipped.columns) == [*COLUMNS, "geometry"]
    assert shipped.crs.to_epsg() == 4326
    assert set(shipped["kind"]) <= KINDS
    assert set(shipped["outline_quality"]) == {"approximate"}
    assert all(isinstance(s, list) for s in shipped["sources"])
    assert shipped["valid_from"].dtype == "datetime64[ns]"
    assert shipped["valid_to"].dtype == "datetime64[ns]"
    assert Path(shipped.attrs["source"]).resolve() == SHIPPED.resolve()
    assert set(shipped.geom_type) <= {"Polygon", "MultiPolygon"}
    assert shipped.is_valid.all()


def test_shipped_named_buildings_cite_reporting(shipped: gpd.GeoDataFrame) -> None:
    named = shipped[shipped["company"] != "unknown"]
    assert all(len(s) >= 1 for s in named["sources"])
    amos = " ".join(shipped.at["amos", "sources"])
    assert "34 C" in amos and "26 June 2024" in amos and "Landsat-8" in amos
    for bid in BRIEFED_2025:
        assert any("5 November 2025" in s for s in shipped.at[bid, "sources"]), bid
    assert any("2023" in s and "Samas" in s for s in shipped.at["samas-electronics", "sources"])
    assert any("February 2016" in s for s in shipped.at["amos", "sources"])
    assert any("16 June 2020" in s for s in shipped.at["liaison-office", "sources"])


def test_shipped_public_facts(shipped: gpd.GeoDataFrame, shipped_areas: pd.Series) -> None:
    liaison = shipped.loc["liaison-office"]
    assert liaison["kind"] == "demolished"
    assert liaison["valid_to"] == pd.Timestamp("2020-06-16")
    support = shipped.loc["support-center"]
    assert "15-storey" in support["notes"] and "2024-2025" in support["notes"]
    assert pd.isna(support["valid_to"])
    living = shipped.loc["living-art"]
    assert "15 December 2004" in living["notes"] and "two-storey" in living["notes"].lower()
    # Jaeyoung Solutec: a 3,500 m2 building (on an 8,100 m2 plot), within 15 %
    assert shipped_areas["jaeyoung-solutec"] == pytest.approx(3_500.0, rel=0.15)
    assert "8,100 m2" in shipped.at["jaeyoung-solutec", "notes"]
    # Living Art: two storeys (about 3,600 m2 of floor) on a 3,300 m2 plot -> roof below 3,300
    assert 1_500.0 <= shipped_areas["living-art"] <= 3_300.0 * 1.15


def test_shipped_sizes_are_realistic(shipped: gpd.GeoDataFrame, shipped_areas: pd.Series) -> None:
    factories = shipped_areas[shipped["kind"] == "factory"]
    in_range = ((factories >= 1_000.0) & (factories <= 15_000.0)).mean()
    assert in_range >= 0.8
    assert (shipped_areas <= 15_000.0).all()
    assert (shipped_areas < 10_000.0).mean() > 0.5  # most are smaller than a 100 m TIRS pixel
    assert 2 <= (shipped_areas < 900.0).sum() <= 4  # a few smaller than one 30 m pixel


def test_shipped_layout(shipped: gpd.GeoDataFrame) -> None:
    utm = shipped.to_crs(32652)
    x0, y0, x1, y1 = utm.total_bounds
    assert x1 - x0 <= 2_000.0 and y1 - y0 <= 1_700.0
    centre = Point((x0 + x1) / 2, (y0 + y1) / 2)
    assert centre.distance(Point(E0, N0)) < 500.0  # complex centred near 37.933 N, 126.633 E
    geoms = list(utm.geometry)
    gaps = [a.distance(b) for a, b in combinations(geoms, 2)]
    assert min(gaps) >= 20.0  # no overlaps, yards and roads between outlines
    d = utm.geometry["support-center"].centroid.distance(utm.geometry["liaison-office"].centroid)
    assert d == pytest.approx(100.0, abs=20.0)


def test_shipped_events(shipped: gpd.GeoDataFrame) -> None:
    events = shipped.attrs["events"]
    dates = [e["date"] for e in events]
    assert dates == sorted(dates)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dates)
    assert all(set(e) == {"date", "label"} for e in events)
    for day in ("2016-02-10", "2020-06-16", "2024-06-26", "2025-11-05"):
        assert day in dates
    assert any(d.startswith("2004-12") for d in dates)
    assert any(d.startswith("2013-04") for d in dates) and any(
        d.startswith("2013-09") for d in dates
    )
    assert any(d.startswith("2023") for d in dates)


def test_readme_table_matches_file(shipped: gpd.GeoDataFrame, shipped_areas: pd.Series) -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Buildings", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]
    ids = [row[0].strip("`") for row in rows]
    assert ids == list(shipped.index)
    for row in rows:
        bid = row[0].strip("`")
        assert row[1] == shipped.at[bid, "name"]
        assert row[2] == shipped.at[bid, "company"]
        assert row[3] == shipped.at[bid, "kind"]
        shown = float(row[4].replace(",", ""))
        assert abs(shown - shipped_areas[bid]) <= 5.0, bid  # rounded to 10 m2
        valid_to = shipped.at[bid, "valid_to"]
        assert row[5] == ("" if pd.isna(valid_to) else valid_to.strftime("%Y-%m-%d"))


def test_readme_states_outlines_are_approximate() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "approximate placements for demonstration" in text
    assert "must be replaced with surveyed outlines before any real conclusion" in text
    assert "## Replacing the outlines with surveyed ones" in text


def test_package_data_link_points_to_repo_file() -> None:
    link = ROOT / "kaesong_thermal" / "data" / "kaesong.geojson"
    assert link.is_symlink()
    assert not Path(link.readlink()).is_absolute()
    assert link.resolve() == SHIPPED.resolve()
    assert shipped_footprints_path().resolve() == SHIPPED.resolve()


# ----------------------------------------------------------------------------------------------
# areas and hashes


def test_area_m2_of_utm_square_matches_scale_factor() -> None:
    gdf = utm_frame()
    lon, lat = TO_LL.transform(E0 + 50.0, N0 + 50.0)
    k = utm_scale_factor(lon, lat)
    expected = 10_000.0 / k**2  # a 100 m x 100 m grid square is smaller on the ground by k^2
    assert expected == pytest.approx(9_997.3, abs=0.2)
    assert area_m2(gdf).iloc[0] == pytest.approx(expected, abs=0.05)


def test_area_m2_of_lonlat_cell_matches_ellipsoid() -> None:
    # 0.001 deg x 0.001 deg cell at 37.933 N: M * N * cos(phi) * dphi * dlambda
    a, e2 = 6_378_137.0, 0.00669437999014
    phi = math.radians(37.9335)
    w = 1.0 - e2 * math.sin(phi) ** 2
    m = a * (1.0 - e2) / w**1.5
    n = a / math.sqrt(w)
    d = math.radians(0.001)
    expected = m * n * math.cos(phi) * d * d
    cell = gpd.GeoSeries([box(126.633, 37.933, 126.634, 37.934)], crs=4326)
    assert area_m2(cell).iloc[0] == pytest.approx(expected, rel=1e-5)
    assert area_m2(cell).name == "area_m2"


def test_area_m2_without_crs_is_an_error() -> None:
    with pytest.raises(FootprintError, match="no CRS"):
        area_m2(gpd.GeoSeries([box(0, 0, 1, 1)]))


def test_hash_depends_on_ids_geometry_dates_only(shipped: gpd.GeoDataFrame) -> None:
    base = footprints_hash(shipped)
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert footprints_hash(shipped.iloc[::-1]) == base
    assert footprints_hash(shipped.to_crs(32652)) == base
    notes = shipped.copy()
    notes["notes"] = "changed"
    assert footprints_hash(notes) == base
    moved = shipped.copy()
    moved.loc["amos", "geometry"] = shipped.geometry["amos"].buffer(0.00001)
    assert footprints_hash(moved) != base
    dated = shipped.copy()
    dated.loc["amos", "valid_to"] = pd.Timestamp("2030-01-01")
    assert footprints_hash(dated) != base
    renamed = shipped.rename(index={"amos": "amos-2"})
    assert footprints_hash(renamed) != base


# ----------------------------------------------------------------------------------------------
# formats and CRS


FORMATS = {
    "gpkg": ("roofs.gpkg", {"driver": "GPKG", "layer": "roofs"}),
    "shp": ("roofs.shp", {"driver": "ESRI Shapefile"}),
    "fgb": ("roofs.fgb", {"driver": "FlatGeobuf"}),
    "geojson": ("roofs.geojson", {"driver": "GeoJSON"}),
}


@pytest.mark.parametrize("fmt", [*FORMATS, "parquet"])
def test_reads_every_format_in_utm(tmp_path: Path, fmt: str) -> None:
    frame = utm_frame()
    if fmt == "parquet":
        path = tmp_path / "roofs.parquet"
        frame.to_parquet(path)
    else:
        name, kwargs = FORMATS[fmt]
        path = tmp_path / name
        with warnings.catch_warnings():  # Shapefile: names cut to 10 characters
            warnings.simplefilter("ignore")
            frame.to_file(path, engine="pyogrio", **kwargs)
    gdf = load_footprints(path)
    assert sorted(gdf.index) == ["a", "b", "c"]  # FlatGeobuf stores features in spatial order
    assert gdf.crs.to_epsg() == 32652
    assert gdf.attrs["source"] == str(path)
    assert gdf.attrs["events"] == []
    assert gdf.at["b", "valid_to"] == pd.Timestamp("2020-06-16")
    assert pd.isna(gdf.at["a", "valid_to"])
    assert gdf["company"].isna().all()  # optional column filled
    assert gdf.at["a", "sources"] == []
    lon, lat = TO_LL.transform(E0 + 50.0, N0 + 50.0)
    assert area_m2(gdf)["a"] == pytest.approx(10_000.0 / utm_scale_factor(lon, lat) ** 2, abs=0.05)
    # same content in lon/lat hashes the same
    assert footprints_hash(gdf) == footprints_hash(gdf.to_crs(4326))


def test_accepts_string_path_and_geodataframe(tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "f.geojson", good_features())
    from_str = load_footprints(str(path))
    assert list(from_str.index) == ["a", "b", "c"]
    from_gdf = load_footprints(from_str)  # indexed by building_id already
    assert list(from_gdf.index) == ["a", "b", "c"]
    assert from_gdf.attrs["source"] == "<GeoDataFrame>"
    assert footprints_hash(from_gdf) == footprints_hash(from_str)


def test_geopackage_layer_choice(tmp_path: Path) -> None:
    path = tmp_path / "two.gpkg"
    utm_frame().to_file(path, layer="roofs", driver="GPKG")
    utm_frame().iloc[:1].to_file(path, layer="plots", driver="GPKG")
    with pytest.raises(FootprintError) as info:
        load_footprints(path)
    message = str(info.value)
    assert str(path) in message and "roofs" in message and "plots" in message
    assert "layer=" in message
    assert len(load_footprints(path, layer="roofs")) == 3
    assert len(load_footprints(path, layer="plots")) == 1
    with pytest.raises(FootprintError, match=r"no layer 'walls'; layers are: .*roofs"):
        load_footprints(path, layer="walls")


def test_sources_stored_as_json_text_become_lists(tmp_path: Path) -> None:
    frame = utm_frame()
    frame["sources"] = [json.dumps(["Report A", "Report B"]), "Report C", None]
    path = tmp_path / "s.gpkg"
    frame.to_file(path, driver="GPKG")
    gdf = load_footprints(path)
    assert gdf.at["a", "sources"] == ["Report A", "Report B"]
    assert gdf.at["b", "sources"] == ["Report C"]
    assert gdf.at["c", "sources"] == []


def test_events_member_read_and_bad_event_reported(tmp_path: Path) -> None:
    events = [
        {"date": "2020-06-16", "label": "demolished"},
        {"date": "2016-02-10", "label": "closure"},
        {"date": "not a date", "label": "broken"},
    ]
    path = write_geojson(tmp_path / "e.geojson", good_features(), events=events)
    gdf = load_footprints(path)
    assert gdf.attrs["events"] == [
        {"date": "2016-02-10", "label": "closure"},
        {"date": "2020-06-16", "label": "demolished"},
    ]
    report = validate_footprints(path)
    assert report.ok
    assert [p.message for p in report.warnings] == [
        "event 2: needs a 'date' (YYYY-MM-DD) and a 'label' string; ignored"
    ]


# ----------------------------------------------------------------------------------------------
# unreadable sources


def test_missing_file_is_footprint_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.gpkg"
    with pytest.raises(FootprintError, match=re.escape(f"{path}: footprint file not found")):
        load_footprints(path)
    with pytest.raises(FootprintError):
        validate_footprints(path)


def test_not_a_vector_file_is_footprint_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.geojson"
    path.write_text("this is not geojson\n")
    with pytest.raises(FootprintError, match=re.escape(f"{path}: not a readable vector file")):
        load_footprints(path)
    parquet = tmp_path / "bad.parquet"
    parquet.write_bytes(b"PAR1 garbage")
    with pytest.raises(FootprintError, match=re.escape(f"{parquet}: cannot read as GeoParquet")):
        load_footprints(parquet)


def test_errors_are_one_line_and_in_the_hierarchy(tmp_path: Path) -> None:
    features = [feature(i, None) for i in range(8)]
    path = write_geojson(tmp_path / "many.geojson", features)
    with pytest.raises(FootprintError) as info:
        load_footprints(path)
    assert isinstance(info.value, KaesongThermalError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: 8 footprint errors: ")
    assert message.endswith("; and 3 more")


# ----------------------------------------------------------------------------------------------
# ids


def test_missing_id_column(tmp_path: Path) -> None:
    features = good_features()
    for f in features:
        del f["properties"]["building_id"]
    path = write_geojson(tmp_path / "noid.geojson", features)
    with pytest.raises(FootprintError, match=r"no 'building_id' column \(columns: name\)"):
        load_footprints(path)
    gdf = load_footprints(path, generate_ids=True)
    assert list(gdf.index) == ["building-a", "building-b", "building-c"]


def test_geojson_feature_ids_stand_in_for_a_missing_building_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    features = good_features()
    for f in features:
        f["id"] = f["properties"].pop("building_id")  # RFC 7946 feature identifiers
    path = write_geojson(tmp_path / "featid.geojson", features)
    with caplog.at_level("WARNING"):
        gdf = load_footprints(path)
    assert list(gdf.index) == ["a", "b", "c"] and gdf.index.name == "building_id"
    assert "the 'id' column gives the building ids" in caplog.text
    assert "id" not in gdf.columns


def test_id_column_option(tmp_path: Path) -> None:
    frame = utm_frame().rename(columns={"building_id": "roof_id"})
    path = tmp_path / "ids.gpkg"
    frame.to_file(path, driver="GPKG")
    gdf = load_footprints(path, id_column="roof_id")
    assert list(gdf.index) == ["a", "b", "c"]
    assert "roof_id" not in gdf.columns


def test_one_missing_id_among_good_ones(tmp_path: Path) -> None:
    features = good_features()
    features[1]["properties"]["building_id"] = None
    path = write_geojson(tmp_path / "gap.geojson", features)
    with pytest.raises(FootprintError) as info:
        load_footprints(path)
    assert str(info.value) == f"{path}: 1 footprint error: feature at index 1: missing building_id"
    report = validate_footprints(path)
    assert [(p.severity, p.index, p.building_id) for p in report.problems] == [("error", 1, None)]
    gdf = load_footprints(path, generate_ids=True)
    assert list(gdf.index) == ["a", "building-b", "c"]


def test_duplicate_ids(tmp_path: Path) -> None:
    features = good_features()
    features[2]["properties"]["building_id"] = "a"
    path = write_geojson(tmp_path / "dup.geojson", features)
    with pytest.raises(FootprintError) as info:
        load_footprints(path)
    assert "feature 'a' (index 2): duplicate building_id (first at index 0)" in str(info.value)
    gdf = load_footprints(path, generate_ids=True)
    assert list(gdf.index) == ["a", "b", "a-2"]


def test_numeric_ids_become_strings(tmp_path: Path) -> None:
    features = good_features()
    for i, f in enumerate(features):
        f["properties"]["building_id"] = 101 + i
    gdf = load_footprints(write_geojson(tmp_path / "num.geojson", features))
    assert list(gdf.index) == ["101", "102", "103"]


# ----------------------------------------------------------------------------------------------
# geometry


def test_null_geometry_named_by_id(tmp_path: Path) -> None:
    features = good_features()
    features[1]["geometry"] = None
    path = write_geojson(tmp_path / "null.geojson", features)
    with pytest.raises(FootprintError) as info:
        load_footprints(path)
    assert str(info.value) == f"{path}: 1 footprint error: feature 'b' (index 1): null geometry"
    report = validate_footprints(path)
    assert report.count == 3 and not report.ok
    assert [(p.building_id, p.index) for p in report.errors] == [("b", 1)]
    # the good features still give areas
    assert report.area_min_m2 == pytest.approx(600.0, rel=0.01)


def test_empty_geometry(tmp_path: Path) -> None:
    features = good_features()
    features[0]["geometry"] = {"type": "Polygon", "coordinates": []}
    path = write_geojson(tmp_path / "empty.geojson", features)
    with pytest.raises(FootprintError, match=r"feature 'a' \(index 0\): empty geometry"):
        load_footprints(path)


def test_non_polygon_geometry(tmp_path: Path) -> None:
    features = good_features()
    lon, lat = TO_LL.transform(E0, N0)
    features[2]["geometry"] = {"type": "Point", "coordinates": [lon, lat]}
    path = write_geojson(tmp_path / "point.geojson", features)
    with pytest.raises(
        FootprintError,
        match=r"feature 'c' \(index 2\): Point geometry; footprints must be Polygon or MultiPolygon",
    ):
        load_footprints(path)


def test_multipolygon_is_fine(tmp_path: Path) -> None:
    frame = utm_frame()
    frame.loc[0, "geometry"] = MultiPolygon([utm_box(0, 0, 40, 40), utm_box(60, 0, 40, 40)])
    path = tmp_path / "multi.fgb"
    frame.to_file(path, driver="FlatGeobuf")
    gdf = load_footprints(path)
    assert gdf.geom_type["a"] == "MultiPolygon"
    lon, lat = TO_LL.transform(E0 + 50.0, N0 + 20.0)
    assert area_m2(gdf)["a"] == pytest.approx(3_200.0 / utm_scale_factor(lon, lat) ** 2, abs=0.05)


def test_invalid_geometry_repaired_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a 100 x 100 m bow-tie: two triangles of 2,500 m2 each, crossing at the centre
    frame = utm_frame()
    x, y = E0 + 1_000.0, N0
    frame.loc[1, "geometry"] = Polygon([(x, y), (x + 100, y + 100), (x + 100, y), (x, y + 100)])
    path = tmp_path / "bowtie.gpkg"
    frame.to_file(path, driver="GPKG")
    with caplog.at_level(logging.WARNING, logger="kaesong_thermal.footprints"):
        gdf = load_footprints(path)
    assert gdf.is_valid.all()
    assert gdf.geom_type["b"] == "MultiPolygon"
    lon, lat = TO_LL.transform(x + 50.0, y + 50.0)
    assert area_m2(gdf)["b"] == pytest.approx(5_000.0 / utm_scale_factor(lon, lat) ** 2, abs=0.05)
    assert "feature 'b' (index 1): invalid geometry (Self-intersection" in caplog.text
    report = validate_footprints(path)
    assert report.ok
    assert len(report.warnings) == 1 and report.warnings[0].building_id == "b"
    assert "repaired with shapely.make_valid" in report.warnings[0].message


# ----------------------------------------------------------------------------------------------
# CRS and coordinate order


def test_layer_without_crs(tmp_path: Path) -> None:
    path = tmp_path / "noprj.shp"
    write_shapefile(utm_frame(), path)
    path.with_suffix(".prj").unlink()
    with pytest.raises(FootprintError) as info:
        load_footprints(path)
    assert str(info.value) == (
        f"{path}: layer has no CRS; pass assume_crs= (CLI: --assume-crs EPSG) with the CRS its "
        "coordinates are in"
    )
    report = validate_footprints(path)
    assert report.crs is None and report.area_min_m2 is None and not report.ok
    for value in (32652, "32652", "EPSG:32652"):
        gdf = load_footprints(path, assume_crs=value)
        assert gdf.crs.to_epsg() == 32652
    with pytest.raises(FootprintError, match="assume_crs 'EPSG:nonsense' is not a CRS"):
        load_footprints(path, assume_crs="EPSG:nonsense")


def test_swapped_lonlat_named_among_good_features(tmp_path: Path) -> None:
    features = good_features()
    ring = features[1]["geometry"]["coordinates"][0]
    features[1]["geometry"]["coordinates"] = [[[lat, lon] for lon, lat in ring]]
    path = write_geojson(tmp_path / "swapped.geojson", features)
    with pytest.raises(FootprintError) as info:
        load_footprints(path)
    message = str(info.value)
    assert message.startswith(
        f"{path}: 1 footprint error: feature 'b' (index 1): coordinates look swapped"
    )
    assert "write longitude/easting first" in message
    report = validate_footprints(path)
    assert [(p.building_id, p.index) for p in report.errors] == [("b", 1)]


def test_swapped_projected_coordinates(tmp_path: Path) -> None:
    frame = utm_frame()
    frame["geometry"] = frame.geometry.map(
        lambda g: Polygon([(yy, xx) for xx, yy in g.exterior.coords])
    )
    path = tmp_path / "swapped.gpkg"
    frame.to_file(path, driver="GPKG")
    report = validate_footprints(path)
    assert [p.index for p in report.errors] == [0, 1, 2]
    assert all("coordinates look swapped" in p.message for p in report.errors)
    assert "EPSG:32652" in report.errors[0].message


def test_projected_coordinates_in_a_geojson(tmp_path: Path) -> None:
    # GeoJSON is always read as EPSG:4326; UTM numbers there cannot be longitude/latitude
    features = [
        feature(
            b,
            {
                "type": "Polygon",
                "coordinates": [list(map(list, utm_box(dx, 0, 50, 40).exterior.coords))],
            },
        )
        for b, dx in (("a", 0.0), ("b", 200.0))
    ]
    path = write_geojson(tmp_path / "utm.geojson", features)
    with pytest.raises(
        FootprintError,
        match=r"feature 'a' \(index 0\): coordinates .* lie outside the area where EPSG:4326 is defined; wrong CRS\?",
    ):
        load_footprints(path)
    gdf = load_footprints(path, assume_crs=32652)
    assert gdf.crs.to_epsg() == 32652
    report = validate_footprints(path, assume_crs="EPSG:32652")
    assert report.ok and "using assume_crs EPSG:32652" in report.warnings[0].message


def test_degrees_in_a_projected_layer(tmp_path: Path) -> None:
    frame = utm_frame().to_crs(4326).set_crs(32652, allow_override=True)
    path = tmp_path / "degrees.gpkg"
    frame.to_file(path, driver="GPKG")
    report = validate_footprints(path)
    assert [p.index for p in report.errors] == [0, 1, 2]
    assert "look like longitude/latitude but the layer declares EPSG:32652" in (
        report.errors[0].message
    )


# ----------------------------------------------------------------------------------------------
# overlaps and attributes


def test_heavy_overlap_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    features = good_features()
    features.append(feature("d", poly(25, 0, 50, 40)))  # half of 'a' (1,000 m2 shared)
    features.append(feature("e", poly(235, 0, 40, 30)))  # 5 m x 30 m of 'b': 12.5 %, below 25 %
    path = write_geojson(tmp_path / "overlap.geojson", features)
    with caplog.at_level(logging.WARNING, logger="kaesong_thermal.footprints"):
        gdf = load_footprints(path)
    assert len(gdf) == 5
    report = validate_footprints(path)
    assert report.ok
    assert len(report.warnings) == 1
    warning = report.warnings[0]
    assert warning.message.startswith(
        "feature 'a' (index 0) and feature 'd' (index 3) overlap by 50% of the smaller footprint"
    )
    assert "(1,000 m2)" in warning.message
    assert "overlap by 50%" in caplog.text


def test_bad_dates(tmp_path: Path) -> None:
    features = good_features()
    features[0]["properties"].update(valid_from="2020-01-01", valid_to="2019-01-01")
    features[2]["properties"].update(valid_to="sometime")
    path = write_geojson(tmp_path / "dates.geojson", features)
    report = validate_footprints(path)
    assert [p.message for p in report.errors] == [
        "feature 'a' (index 0): valid_from 2020-01-01 is after valid_to 2019-01-01",
        "feature 'c' (index 2): valid_to 'sometime' is not a date",
    ]
    with pytest.raises(FootprintError, match="2 footprint errors"):
        load_footprints(path)


def test_unknown_kind_is_a_warning(tmp_path: Path) -> None:
    features = good_features()
    features[1]["properties"]["kind"] = "warehouse"
    report = validate_footprints(write_geojson(tmp_path / "kind.geojson", features))
    assert report.ok
    assert [p.message for p in report.warnings] == [
        "feature 'b' (index 1): kind 'warehouse' is not one of demolished, factory, office, utility"
    ]


def test_report_figures(tmp_path: Path) -> None:
    report = validate_footprints(write_geojson(tmp_path / "ok.geojson", good_features()))
    assert report.count == 3
    assert report.area_min_m2 == pytest.approx(600.0, rel=0.001)
    assert report.area_median_m2 == pytest.approx(1_200.0, rel=0.001)
    assert report.area_max_m2 == pytest.approx(2_000.0, rel=0.001)
    assert report.area_total_m2 == pytest.approx(3_800.0, rel=0.001)
    as_dict = report.to_dict()
    assert as_dict["ok"] is True and as_dict["n_errors"] == 0 and as_dict["crs"] == "EPSG:4326"
