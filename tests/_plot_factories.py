"""Shared factories of the plot and report tests.

A hand-built set of buildings whose anomalies are known (one switches on in mid-2023), analysed by
the real ``kt.analyze``, and a thermal window covering them.
"""

from __future__ import annotations

from datetime import datetime, timezone

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import box

import kaesong_thermal as kt
from kaesong_thermal.landsat import SceneMetadata, ThermalWindow

UTM52N = CRS.from_epsg(32652)
XSS_NAME = "<script>alert(1)</script>"

#: building_id -> (display name, square side in m, lower-left x, lower-left y) in UTM 52N
BUILDINGS: dict[str, tuple[str, float, float, float]] = {
    "hot-a": ("Hot A Textiles", 90.0, 352_000.0, 4_199_000.0),
    "idle-b": ("Idle B Metal", 80.0, 352_500.0, 4_199_000.0),
    "idle-c": ("Idle C Foods", 70.0, 352_000.0, 4_199_500.0),
    "idle-d": ("Idle D Parts", 100.0, 352_500.0, 4_199_500.0),
    "xss": (XSS_NAME, 60.0, 353_000.0, 4_199_200.0),
    "idle-e": ("Idle E Shoes", 75.0, 353_000.0, 4_199_600.0),
}
#: when "hot-a" switches on, and by how much its contrast rises (K)
SWITCH_ON = pd.Timestamp("2023-06-01", tz="UTC")
EXCESS_K = 6.0


def make_footprints() -> gpd.GeoDataFrame:
    """Square footprints in UTM 52N, indexed by building_id, with names and one event."""
    gdf = gpd.GeoDataFrame(
        {
            "name": [v[0] for v in BUILDINGS.values()],
            "kind": ["factory"] * len(BUILDINGS),
            "outline_quality": ["approximate"] * len(BUILDINGS),
        },
        geometry=[box(x, y, x + s, y + s) for _, s, x, y in BUILDINGS.values()],
        index=pd.Index(list(BUILDINGS), name="building_id"),
        crs="EPSG:32652",
    )
    gdf.attrs["events"] = [{"date": "2023-05-20", "label": "restart reported"}]
    return gdf


def make_observations(
    start: str = "2019-01-05", end: str = "2024-06-30", seed: int = 7
) -> pd.DataFrame:
    """One row per (scene, building) with the extraction columns of docs/interfaces.md.

    Scenes every 16 days; every 9th scene fully clouded (NaN, valid_fraction 0). All roofs share a
    seasonal contrast; "hot-a" gains ``EXCESS_K`` from ``SWITCH_ON``.
    """
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, end, freq="16D", tz="UTC") + pd.Timedelta(hours=2, minutes=10)
    rows = []
    for i, t in enumerate(times):
        scene_id = f"LC08_L2SP_116034_{t:%Y%m%d}_{t:%Y%m%d}_02_T1"
        clouded = i % 9 == 4
        season_k = 2.0 * np.cos(2 * np.pi * (t.day_of_year - 200) / 365.25)
        bg_k = 288.0 + 10.0 * np.cos(2 * np.pi * (t.day_of_year - 200) / 365.25)
        for j, (bid, (_, side, _, _)) in enumerate(BUILDINGS.items()):
            contrast = 1.0 + 0.2 * j + season_k + rng.normal(0.0, 0.4)
            if bid == "hot-a" and t >= SWITCH_ON:
                contrast += EXCESS_K
            nan = np.nan
            rows.append(
                {
                    "building_id": bid,
                    "scene_id": scene_id,
                    "acquired": t,
                    "sensor": "LC08",
                    "level": "L2",
                    "t_roof_k": nan if clouded else bg_k + contrast,
                    "t_roof_max_k": nan if clouded else bg_k + contrast + 1.0,
                    "t_background_k": nan if clouded else bg_k,
                    "t_background_iqr_k": nan if clouded else 1.0,
                    "contrast_k": nan if clouded else contrast,
                    "sigma_k": nan if clouded else 0.4,
                    "cover_px": side * side / 900.0,
                    "valid_fraction": 0.0 if clouded else 1.0,
                    "ring_valid_px": 0 if clouded else 120,
                    "area_m2": side * side,
                }
            )
    return pd.DataFrame(rows)


def make_analysis() -> kt.Analysis:
    """The real analysis of the factory observations, baseline 2019-2022."""
    return kt.analyze(make_observations(), baseline="2019-01-01:2022-12-31")


def make_window(cloud_rows: slice = slice(0, 0)) -> ThermalWindow:
    """A uniform 20 C window (30 m pixels) covering every factory building, optional cloud rows."""
    x0, y1, n = 351_700.0, 4_200_000.0, 60
    kelvin = np.full((n, n), 293.15, dtype=np.float32)
    valid = np.ones((n, n), dtype=bool)
    cloud = np.zeros((n, n), dtype=bool)
    cloud[cloud_rows, :] = True
    valid[cloud] = False
    kelvin[~valid] = np.nan
    meta = SceneMetadata(
        scene_id="LC08_L2SP_116034_20230610_20230620_02_T1",
        sensor="LC08",
        level="L2",
        acquired=datetime(2023, 6, 10, 2, 10, tzinfo=timezone.utc),
        wrs_path=116,
        wrs_row=34,
        cloud_cover=10.0,
        sun_elevation=60.0,
        sun_azimuth=130.0,
        crs=UTM52N,
        day=True,
        collection="02",
        thermal_band="ST_B10",
    )
    return ThermalWindow(
        kelvin=kelvin,
        valid=valid,
        sigma_k=None,
        cloud=cloud,
        transform=Affine(30.0, 0.0, x0, 0.0, -30.0, y1),
        crs=UTM52N,
        metadata=meta,
    )
