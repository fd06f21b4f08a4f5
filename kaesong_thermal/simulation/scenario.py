"""Scenario of the simulator: grids, acquisition calendar, building schedule and confounders.

The ``kaesong`` scenario follows public reporting on the Kaesong Industrial Complex; the products
made from it are SYNTHETIC. Sources (dates only):

References
----------
.. [1] Ministry of Unification (ROK), statements of 10 Feb 2016 (complete shutdown of the Kaesong
   Industrial Complex) and of 8 Apr - 16 Sep 2013 (North Korean withdrawal of workers and the
   restart agreement).
.. [2] Reuters / Yonhap, 16 Jun 2020: North Korea blows up the inter-Korean liaison office in
   Kaesong.
.. [3] Ministry of Unification and Yonhap reporting 2023-2025 on North Korea operating plants of
   the complex without the South (about a dozen factories, with buses of workers observed);
   38 North / NK News satellite-image analyses of the support centre being dismantled (2024-2025).
.. [4] USGS, "Landsat Missions: Landsat 5 / 7 / 8 / 9" mission pages (operating dates; 16-day
   repeat on the WRS-2 grid, Landsat 8 and 9 offset by 8 days; Landsat 7 SLC failure
   31 May 2003).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from kaesong_thermal.errors import ConfigError, FootprintError
from kaesong_thermal.simulation.physics import ROOF_TYPES

logger = logging.getLogger(__name__)

PIXEL_M = 30.0
EPSG = 32652
WRS_PATH = 116
WRS_ROW = 34

#: Crop grid: 200 x 200 pixels of 30 m centred on the complex; pixel centres on multiples of 30 m.
CROP_UL_CENTRE_XY = (288990.0, 4204020.0)
CROP_SHAPE = (200, 200)
#: Full-scene grid of path 116 / row 34 (lines x samples), same lattice.
FULL_UL_CENTRE_XY = (199980.0, 4300020.0)
FULL_SHAPE = (7700, 7800)


@dataclass(frozen=True)
class Grid:
    """A north-up 30 m grid on the path 116 / row 34 lattice (EPSG:32652).

    ``x0``/``y0`` are the outer edges of the upper-left pixel (centre minus/plus 15 m).
    """

    x0: float
    y0: float
    height: int
    width: int
    res_m: float = PIXEL_M

    @property
    def transform(self) -> Affine:
        """Affine transform (pixel corner convention, as rasterio)."""
        return Affine(self.res_m, 0.0, self.x0, 0.0, -self.res_m, self.y0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in metres."""
        return (
            self.x0,
            self.y0 - self.height * self.res_m,
            self.x0 + self.width * self.res_m,
            self.y0,
        )

    @classmethod
    def from_ul_centre(cls, x: float, y: float, shape: tuple[int, int]) -> Grid:
        """Grid whose upper-left pixel centre is (x, y)."""
        return cls(x - PIXEL_M / 2, y + PIXEL_M / 2, shape[0], shape[1])


CROP_GRID = Grid.from_ul_centre(*CROP_UL_CENTRE_XY, CROP_SHAPE)
FULL_GRID = Grid.from_ul_centre(*FULL_UL_CENTRE_XY, FULL_SHAPE)


@dataclass(frozen=True)
class SensorSpec:
    """Operating record of one Landsat sensor on path 116 [4]_."""

    name: str
    code: str
    first: date
    last: date
    phase_days: int  # offset of the 16-day cycle from the Landsat 8 reference date
    overpass_utc: str  # "HH:MM:SS" scene centre time at row 34
    nedt_k: float


#: Landsat 8 reference acquisition on path 116 (the cycle is extended both ways by 16 days).
REFERENCE_DATE = date(2025, 11, 5)
SENSORS: dict[str, SensorSpec] = {
    "landsat-5": SensorSpec(
        "landsat-5", "LT05", date(1984, 3, 16), date(2011, 11, 18), 0, "01:52:30", 0.25
    ),
    "landsat-7": SensorSpec(
        "landsat-7", "LE07", date(1999, 7, 1), date(2022, 4, 6), 8, "02:04:10", 0.22
    ),
    "landsat-8": SensorSpec(
        "landsat-8", "LC08", date(2013, 4, 11), date(2099, 1, 1), 0, "02:10:20", 0.05
    ),
    "landsat-9": SensorSpec(
        "landsat-9", "LC09", date(2021, 10, 31), date(2099, 1, 1), 8, "02:10:20", 0.05
    ),
}
DEFAULT_END = date(2025, 11, 30)
SLC_OFF = date(2003, 5, 31)


def acquisition_dates(sensor: str, start: date, end: date) -> list[date]:
    """Dates on which ``sensor`` images path 116 between ``start`` and ``end`` (inclusive) [4]_."""
    spec = SENSORS[sensor]
    lo, hi = max(start, spec.first), min(end, spec.last)
    if lo > hi:
        return []
    ref = REFERENCE_DATE + timedelta(days=spec.phase_days)
    k0 = math.ceil((lo - ref).days / 16)
    out = []
    d = ref + timedelta(days=16 * k0)
    while d <= hi:
        out.append(d)
        d += timedelta(days=16)
    return out


def stable_u01(*keys: object) -> float:
    """Deterministic uniform number in [0, 1) from the keys (sha256, no global state)."""
    h = hashlib.sha256("|".join(map(str, keys)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


# ---------------------------------------------------------------------------------------------
# building schedule


@dataclass(frozen=True)
class Period:
    """A period of operation of one building: days in [start, end), share used, day probability."""

    start: date
    end: date
    duty: float
    p_day: float
    sundays: bool = False


#: Kaesong complex operation (factories) and the 2013 shutdown [1]_.
COMPLEX_OPEN = date(2005, 1, 1)
CLOSURE = date(2016, 2, 10)
SHUTDOWN_2013 = (date(2013, 4, 8), date(2013, 9, 16))
LIAISON_DEMOLISHED = date(2020, 6, 16)
SUPPORT_DISMANTLING = (date(2024, 6, 1), date(2025, 7, 1))
RECLAD_DATE = date(2019, 5, 1)
SPORADIC_P = 0.02

#: Restart story of the kaesong scenario [3]_: building id -> periods after the closure.
KAESONG_RESTART: dict[str, list[Period]] = {
    "samas-electronics": [
        Period(date(2023, 3, 1), date(2024, 5, 1), 0.45, 0.6),
        Period(date(2024, 5, 1), date(2099, 1, 1), 0.85, 0.92),
    ],
    "in-the-f": [
        Period(date(2023, 9, 1), date(2024, 5, 1), 0.3, 0.4),
        Period(date(2024, 5, 1), date(2099, 1, 1), 0.8, 0.9),
    ],
    "amos": [Period(date(2024, 3, 15), date(2099, 1, 1), 0.9, 0.92)],
    "jaeyoung-solutec": [Period(date(2025, 4, 1), date(2099, 1, 1), 0.6, 0.85)],
    "seokchon-ceramics": [Period(date(2025, 7, 15), date(2099, 1, 1), 0.7, 0.85)],
}


@dataclass
class BuildingPlan:
    """Static properties and schedule of one building in the scenario."""

    building_id: str
    kind: str
    area_m2: float
    roof_type: str
    base_excess_k: float
    roof_offset_k: float
    periods: list[Period] = field(default_factory=list)
    sporadic: bool = False
    reclad: tuple[str, str] | None = None  # (date, new roof type)
    removed: tuple[str, str] | None = None  # (start, end) of demolition; roof gone at end
    roles: list[str] = field(default_factory=list)
    gain_k: float | None = None  # own solar gain, K (default: that of the roof type)
    reclad_gain_k: float | None = None  # own solar gain after a re-cladding, K
    emissivity: float | None = None  # own thermal-band emissivity (default: the roof type's)

    def solar_gain_on(self, day: date) -> float:
        """Solar gain of the roof on ``day``, K per unit sin(sun elevation).

        The building's own ``gain_k`` (``reclad_gain_k`` once re-clad) when set, else the gain
        of the roof type in force (:data:`physics.ROOF_TYPES`).
        """
        recladded = self.reclad is not None and day >= date.fromisoformat(self.reclad[0])
        if recladded and self.reclad_gain_k is not None:
            return self.reclad_gain_k
        if not recladded and self.gain_k is not None:
            return self.gain_k
        return ROOF_TYPES[self.roof_type_on(day)][0]

    def roof_type_on(self, day: date) -> str:
        """Roof type in force on ``day`` (a re-cladding changes it)."""
        if self.reclad is not None and day >= date.fromisoformat(self.reclad[0]):
            return self.reclad[1]
        return self.roof_type

    def roof_fraction_on(self, day: date) -> float:
        """Share of the roof still standing on ``day`` (1 before demolition, 0 after)."""
        if self.removed is None:
            return 1.0
        a, b = (date.fromisoformat(s) for s in self.removed)
        if day < a:
            return 1.0
        if day >= b:
            return 0.0
        return 1.0 - (day - a).days / max(1, (b - a).days)

    def operating_on(self, day: date, seed: int) -> float:
        """Duty (0 = idle) of the building on ``day``: schedule, Sunday rest, days off."""
        if self.roof_fraction_on(day) < 1.0:
            return 0.0
        u = stable_u01(seed, "day", self.building_id, day.isoformat())
        for p in self.periods:
            if p.start <= day < p.end:
                if day.weekday() == 6 and not p.sundays:
                    return 0.0
                return p.duty if u < p.p_day else 0.0
        if self.sporadic and CLOSURE <= day < date(2023, 1, 1) and day.weekday() != 6:
            return 0.3 if u < SPORADIC_P else 0.0
        return 0.0


def _era_periods(kind: str) -> list[Period]:
    """Operation of every building of the complex before the closure [1]_."""
    if kind == "demolished":
        kind = "office"
    duty, p_day, sundays = {
        "factory": (1.0, 0.95, False),
        "office": (0.5, 0.95, False),
        "utility": (0.7, 1.0, True),
    }.get(kind, (1.0, 0.95, False))
    a, b = SHUTDOWN_2013
    return [
        Period(COMPLEX_OPEN, a, duty, p_day, sundays),
        Period(b, CLOSURE, duty, p_day, sundays),
    ]


def plan_buildings(fp_utm: Any, scenario: str, seed: int) -> list[BuildingPlan]:
    """Build each building's schedule and pick the confounders by deterministic rules.

    Works for any footprint file: ids of the kaesong story are used when present; otherwise the
    largest factories restart (the largest first, in 2023). Confounders (recorded in ``roles``):
    ``dark-idle-neighbour`` (the never-restarted building nearest the first restarting one gets
    a dark bitumen roof), ``hot-yard-neighbour`` (a paved yard is laid next to another idle
    building), ``reclad`` (an idle factory re-roofed dark on 2019-05-01), ``demolished`` and
    ``dismantled``, ``subpixel`` (the smallest footprint, below a 100 m native pixel).
    """
    if scenario not in ("kaesong", "idle"):
        raise ConfigError(f"scenario {scenario!r}: unknown (use 'kaesong', 'idle' or 'stress')")
    ids = [str(i) for i in fp_utm.index]
    kinds = {
        i: (str(k) if isinstance(k, str) else "factory")
        for i, k in zip(ids, fp_utm.get("kind", ["factory"] * len(ids)), strict=True)
    }
    areas = {i: float(a) for i, a in zip(ids, fp_utm.geometry.area, strict=True)}
    valid_to = {}
    if "valid_to" in fp_utm.columns:
        for i, v in zip(ids, fp_utm["valid_to"], strict=True):
            if v is not None and not (isinstance(v, float) and math.isnan(v)) and str(v) != "NaT":
                valid_to[i] = str(v)[:10]
    plans: dict[str, BuildingPlan] = {}
    for i in ids:
        kind = kinds[i]
        u = stable_u01(seed, "roof", i)
        roof = "concrete" if kind in ("office", "demolished") or u < 0.35 else "light-metal"
        base = {"factory": 3.0, "office": 1.2, "utility": 1.8}.get(kind, 1.5)
        base *= 0.7 + 0.6 * stable_u01(seed, "base", i)
        plan = BuildingPlan(
            building_id=i,
            kind=kind,
            area_m2=round(areas[i], 1),
            roof_type=roof,
            base_excess_k=round(base, 3),
            roof_offset_k=round(0.8 * (stable_u01(seed, "off", i) - 0.5), 3),
        )
        if scenario == "kaesong":
            plan.periods = _era_periods(kind)
            plan.sporadic = kind == "factory"
        plans[i] = plan

    if scenario == "kaesong":
        restart_ids = [i for i in KAESONG_RESTART if i in plans]
        if restart_ids:
            for i in restart_ids:
                plans[i].periods += KAESONG_RESTART[i]
        else:  # generic footprint file: largest factories follow the story in size order
            factories = sorted(
                (i for i in ids if kinds[i] == "factory"), key=lambda i: (-areas[i], i)
            )
            for i, story in zip(factories, KAESONG_RESTART.values(), strict=False):
                plans[i].periods += story
                restart_ids.append(i)
        for i in restart_ids:
            plans[i].roles.append("restarts")
        # demolitions
        for i in ids:
            if i == "liaison-office" or kinds[i] == "demolished" or i in valid_to:
                end = valid_to.get(i, LIAISON_DEMOLISHED.isoformat())
                if i == "liaison-office":
                    end = LIAISON_DEMOLISHED.isoformat()
                plans[i].removed = (end, end)
                plans[i].roles.append("demolished")
        if "support-center" in plans:
            p = plans["support-center"]
            p.removed = tuple(d.isoformat() for d in SUPPORT_DISMANTLING)  # type: ignore[assignment]
            p.roles.append("dismantled")
        idle = [
            i
            for i in ids
            if i not in restart_ids and plans[i].removed is None and kinds[i] == "factory"
        ]
        cents = {i: fp_utm.geometry.loc[i].centroid for i in ids}
        if restart_ids and idle:
            first = restart_ids[0]
            dark = min(idle, key=lambda i: (cents[i].distance(cents[first]), i))
            plans[dark].roof_type = "dark-bitumen"
            plans[dark].roles.append("dark-idle-neighbour")
            rest = [i for i in idle if i != dark]
            if rest:
                yard = max(rest, key=lambda i: (areas[i], i))
                plans[yard].roles.append("hot-yard-neighbour")
                rest = [i for i in rest if i != yard]
            if rest:
                reclad = sorted(rest, key=lambda i: (-areas[i], i))[0]
                plans[reclad].roof_type = "light-metal"
                plans[reclad].reclad = (RECLAD_DATE.isoformat(), "dark-bitumen")
                plans[reclad].roles.append("reclad")
    smallest = min(ids, key=lambda i: (areas[i], i))
    plans[smallest].roles.append("subpixel" if areas[smallest] < 10000.0 else "smallest")
    return [plans[i] for i in ids]


# ---------------------------------------------------------------------------------------------
# footprints


def synthetic_footprints(ids: Sequence[str] | None = None) -> Any:
    """A small GeoDataFrame of rectangular footprints around the complex (EPSG:32652).

    For tests and for users without a footprint file. With the shipped ids the kinds follow
    docs/interfaces.md; one building is smaller than a native TIRS pixel.
    """
    import geopandas as gpd
    from shapely.geometry import box

    default = [
        ("amos", "factory", 120, 80),
        ("samas-electronics", "factory", 100, 70),
        ("jaeyoung-solutec", "factory", 90, 60),
        ("in-the-f", "factory", 110, 60),
        ("seokchon-ceramics", "factory", 80, 60),
        ("living-art", "factory", 90, 70),
        ("shinwon", "factory", 100, 60),
        ("romanson", "factory", 70, 50),
        ("sj-tech", "factory", 40, 40),
        ("apartment-factory", "factory", 150, 50),
        ("support-center", "office", 60, 50),
        ("liaison-office", "demolished", 50, 40),
        ("peace-substation", "utility", 60, 40),
        ("water-plant", "utility", 90, 60),
    ]
    rows = [r for r in default if ids is None or r[0] in ids]
    cx, cy = 291990.0, 4201020.0
    geoms, kinds, names = [], [], []
    for k, (bid, kind, w, h) in enumerate(rows):
        col, row = k % 4, k // 4
        x = cx - 450 + col * 300 + 7
        y = cy + 450 - row * 260 - 11
        geoms.append(box(x - w / 2, y - h / 2, x + w / 2, y + h / 2))
        kinds.append(kind)
        names.append(bid)
    gdf = gpd.GeoDataFrame(
        {"building_id": names, "name": names, "kind": kinds},
        geometry=geoms,
        crs=f"EPSG:{EPSG}",
    ).set_index("building_id")
    valid_to = [LIAISON_DEMOLISHED.isoformat() if b == "liaison-office" else None for b in names]
    gdf["valid_to"] = valid_to
    return gdf


def load_scenario_footprints(footprints: Any) -> Any:
    """Footprints as a GeoDataFrame indexed by ``building_id`` (any CRS), or raise FootprintError.

    ``None`` loads the shipped set (``kaesong_thermal.footprints.load_footprints``; the file
    ``footprints/kaesong.geojson`` of the source tree if that module is absent).
    """
    import geopandas as gpd

    if isinstance(footprints, gpd.GeoDataFrame):
        gdf = footprints.copy()
    else:
        try:
            from kaesong_thermal.footprints import load_footprints
        except ImportError:
            load_footprints = None  # type: ignore[assignment]
        if load_footprints is not None:
            gdf = load_footprints(footprints) if footprints is not None else load_footprints()
        else:
            path = (
                Path(footprints)
                if footprints is not None
                else Path(__file__).resolve().parents[2] / "footprints" / "kaesong.geojson"
            )
            if not path.exists():
                raise FootprintError(f"{path}: footprint file not found")
            gdf = gpd.read_file(path)
            if "building_id" in gdf.columns:
                gdf = gdf.set_index("building_id")
    if "building_id" in gdf.columns and gdf.index.name != "building_id":
        gdf = gdf.set_index("building_id")
    if gdf.crs is None:
        raise FootprintError("footprints: no CRS")
    if len(gdf) == 0:
        raise FootprintError("footprints: no features")
    if not gdf.index.is_unique:
        raise FootprintError("footprints: building_id values are not unique")
    gdf.index = gdf.index.astype(str)
    gdf.index.name = "building_id"
    return gdf


def as_date(value: date | datetime | str | None, default: date, *, name: str = "date") -> date:
    """Parse a start/end option (date, datetime or ISO string) or return ``default``.

    ``name`` (e.g. ``"start"``) is the option named in the error of a malformed value.
    """
    if value is None:
        return default
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise ConfigError(f"{name} {value!r}: not an ISO date (YYYY-MM-DD)") from exc


def plans_to_json(plans: Iterable[BuildingPlan]) -> list[dict[str, Any]]:
    """JSON-ready description of the building plans (for scenario.json)."""
    out = []
    for p in plans:
        out.append(
            {
                "building_id": p.building_id,
                "kind": p.kind,
                "area_m2": p.area_m2,
                "roof_type": p.roof_type,
                "base_excess_k": p.base_excess_k,
                "roof_offset_k": p.roof_offset_k,
                "periods": [
                    {
                        "start": q.start.isoformat(),
                        "end": q.end.isoformat(),
                        "duty": q.duty,
                        "p_day": q.p_day,
                        "sundays": q.sundays,
                    }
                    for q in p.periods
                ],
                "sporadic_2016_2022": p.sporadic,
                "reclad": p.reclad,
                "removed": p.removed,
                "roles": p.roles,
            }
        )
        if p.gain_k is not None:
            out[-1]["gain_k"] = p.gain_k
        if p.reclad_gain_k is not None:
            out[-1]["reclad_gain_k"] = p.reclad_gain_k
        if p.emissivity is not None:
            out[-1]["emissivity"] = p.emissivity
    return out


def stable_seed(*keys: object) -> np.random.SeedSequence:
    """SeedSequence from keys (order-independent of scheduling: same scene, same draws)."""
    h = hashlib.sha256("|".join(map(str, keys)).encode()).digest()
    return np.random.SeedSequence([int.from_bytes(h[i : i + 4], "big") for i in range(0, 16, 4)])
