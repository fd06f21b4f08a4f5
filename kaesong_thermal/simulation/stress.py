"""The stress family of the simulator: one random industrial park and its physics per seed.

Each seed is an independent draw of a park (layout, roofs, schedules, confounders) and of the
sensor and scene physics, written through the same renderer and writer as the Kaesong scenario
(so in the same Collection 2 formats). The aim is to score a detector on parks it was not
developed on: nothing here follows the Kaesong plan, and every number that the Kaesong scenario
fixes is drawn from a range (see ``docs/simulator.md``, "The stress family").

The products are SYNTHETIC. Ranges and their reasons:

References
----------
.. [1] Reuter, D. C. et al. (2015), "The Thermal Infrared Sensor (TIRS) on Landsat 8: design
   overview and pre-launch characterization", Remote Sensing 7(1):1135-1153 (native ground
   sample about 100 m; the measured edge response is wider than the detector footprint).
.. [2] Montanaro, M. et al. (2014), "Stray light artifacts in imagery from the Landsat 8 Thermal
   Infrared Sensor", Remote Sensing 6(11):10435-10456 (energy from well outside the nominal
   footprint reaches the detectors: the wide wing of the point-spread function).
.. [3] Cook, M. et al. (2014), "Development of an operational calibration methodology for the
   Landsat thermal data archive ...", Remote Sensing 6:11244-11266 (surface temperature errors
   of about 1-2 K, scene-wide, from the atmospheric compensation).
.. [4] Oke, T. R. et al. (2017), "Urban Climates", Cambridge University Press, ch. 6-7
   (daytime surface excess of roofs and paved ground grows with the absorbed sunshine; dark
   bitumen and asphalt gain most).
.. [5] Neufert, E. and P. (2012), "Architects' Data", 4th ed., Wiley-Blackwell, industrial
   buildings (street grids of 200-350 m blocks; sheds from small workshops to 100 x 150 m halls,
   fire separation of about 10-20 m between neighbouring sheds).
.. [6] Hulley, G. C. et al. (2015), "The ASTER Global Emissivity Dataset (ASTER GED): mapping
   Earth's emissivity at 100 meter spatial scale", Geophysical Research Letters 42:7966-7976
   (the emissivity the Collection 2 Level-2 surface temperature assumes).
.. [7] Salisbury, J. W. and D'Aria, D. M. (1992), "Emissivity of terrestrial materials in the
   8-14 um atmospheric window", Remote Sensing of Environment 42:83-106 (construction materials
   and paints near 0.9-0.97; bare and weathered metal surfaces far lower).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from datetime import date, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from kaesong_thermal.errors import ConfigError
from kaesong_thermal.simulation import physics as ph
from kaesong_thermal.simulation.render import FINE_M, bilinear, blur, blurred_maps
from kaesong_thermal.simulation.scenario import (
    CROP_GRID,
    EPSG,
    SENSORS,
    BuildingPlan,
    Period,
    stable_seed,
    stable_u01,
)

logger = logging.getLogger(__name__)

#: Version of the generator: a change of any draw bumps it (the evaluation re-simulates).
STRESS_VERSION = 1
#: The detector's default baseline period: every building of a draw is idle in it (apart from
#: sporadic days at low duty).
IDLE_YEARS = (date(2016, 3, 1), date(2022, 12, 31))
#: Early operation ends at the latest here (before the idle years).
EARLY_START = date(2013, 4, 1)
EARLY_END_LATEST = date(2016, 2, 10)
#: Window of the switch-on dates, of the confounder dates, and the nominal end of a draw (the
#: draw does not depend on the simulated period, so a short run shows the same park).
SWITCH_ON_RANGE = (date(2023, 1, 15), date(2025, 8, 31))
CONFOUNDER_RANGE = (date(2017, 1, 1), date(2025, 6, 30))
DEMOLITION_RANGE = (date(2018, 7, 1), date(2025, 6, 30))
OPEN_END = date(2099, 1, 1)
#: Roles of the confounders (each present in every draw).
CONFOUNDER_ROLES = ("idle-neighbour", "reclad", "demolished", "hot-yard")
#: Sine of the midsummer sun at the overpass (elevation about 73 degrees): the re-cladding step
#: is quoted at that sun.
MIDSUMMER_SIN = 0.956
COARSE = 4  # 40 m cells of the wide PSF wing


@dataclass
class StressPhysics:
    """The drawn physics of one stress draw and the park geometry the renderer needs.

    Built by :func:`draw_stress`; its methods are the hooks of :mod:`.render` and of
    :func:`kaesong_thermal.simulation.simulate_acquisition` (called only when a scene has one).
    """

    seed: int
    detector_footprint_m: float
    optical_sigma_m: float
    wing_fraction: float
    wing_sigma_m: float
    noise_sd_k: tuple[float, float]
    noise_scale_m: tuple[float, float]
    l2_offset_max_k: float
    l1_only_share: float
    both_share: float
    tar_share: float
    yard_date: date
    blocks: list[Any] = dc_field(repr=False)  # shapely polygons (UTM) of the park's blocks
    streets: Any = dc_field(repr=False)  # shapely geometry (UTM) of the streets
    yard: Any = dc_field(repr=False)  # shapely polygon (UTM) of the unmapped yard
    town: tuple[float, float, float] = (0.0, 0.0, 0.0)  # x, y, radius of the town (m)
    stream: tuple[float, float, float] = (0.0, 0.0, 0.0)  # x, y of a point, direction (rad)
    l2_emissivity_px: int = 0  # box (30 m pixels) of the emissivity the L2 retrieval assumes
    _cache: dict[str, Any] = dc_field(default_factory=dict, repr=False)

    # ----------------------------------------------------------------- static maps

    def landcover(
        self,
        shape: tuple[int, int],
        fine_x0: float,
        fine_y0: float,
        rng: np.random.Generator,
    ) -> NDArray[np.uint8]:
        """Land cover of the drawn park and its surroundings on the 10 m grid.

        Fields, forest on a smooth random relief, a town, a stream, and the park: industrial
        fabric over its blocks with the street grid as road; the yard-to-be is a grass lot (it
        is paved on ``yard_date``, see :meth:`adjust_native`). Roofs are painted by the caller.
        """
        from rasterio.features import rasterize
        from rasterio.transform import from_origin

        ny, nx = shape
        lc = np.full(shape, ph.FIELD, np.uint8)
        yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
        x_m = fine_x0 + (xx + 0.5) * FINE_M
        y_m = fine_y0 - (yy + 0.5) * FINE_M
        relief = ph.correlated_field(shape, 40.0, rng)
        lc[relief > 1.1] = ph.FOREST
        tx, ty, tr = self.town
        noise = ph.correlated_field(shape, 12.0, rng)
        lc[np.hypot(x_m - tx, y_m - ty) + 250 * noise < tr] = ph.URBAN
        sx, sy, sd = self.stream
        across = -(x_m - sx) * math.sin(sd) + (y_m - sy) * math.cos(sd)
        along = (x_m - sx) * math.cos(sd) + (y_m - sy) * math.sin(sd)
        lc[np.abs(across - 200 * np.sin(2 * np.pi * along / 2400.0)) < 20] = ph.WATER
        tr_fine = from_origin(fine_x0, fine_y0, FINE_M, FINE_M)

        def mask(geoms: list[Any]) -> NDArray[np.bool_]:
            shapes = [(g, 1) for g in geoms if not g.is_empty]
            if not shapes:
                return np.zeros(shape, bool)
            r = rasterize(shapes, out_shape=shape, transform=tr_fine, dtype="uint8")
            return np.asarray(r, bool)

        from shapely.ops import unary_union

        park = unary_union(self.blocks).buffer(30.0, join_style="mitre")
        lc[mask([park])] = ph.URBAN
        lc[mask([self.streets.intersection(park)])] = ph.ROAD
        lc[mask([self.yard])] = ph.FIELD
        return lc

    # ----------------------------------------------------------------- per-scene hooks

    def assumed_emissivity(self, emissivity: NDArray[np.floating]) -> NDArray[np.float64]:
        """The emissivity a Level-2 retrieval assumes over ``emissivity`` (rows of a scene).

        A mean over ``l2_emissivity_px`` x ``l2_emissivity_px`` pixels, the 90 m of a map such
        as ASTER GED that the Collection 2 surface temperature uses [6]_ (edges repeated).
        """
        k = max(1, int(self.l2_emissivity_px))
        return ndimage.uniform_filter(np.asarray(emissivity, np.float64), size=k, mode="nearest")

    def core_kernel(self, native_m: float) -> NDArray[np.float64]:
        """1-D core PSF: the drawn detector footprint (scaled to the sensor) * optical blur [1]_."""
        footprint = self.detector_footprint_m * native_m / 100.0
        return ph.psf_kernel_1d(footprint, FINE_M, self.optical_sigma_m)

    def l2_offset_k(self, code: str, day: date) -> float:
        """Scene-wide Level-2 retrieval offset of one scene, uniform in +-``l2_offset_max_k`` [3]_."""
        u = stable_u01(self.seed, "stress-l2-offset", code, day.isoformat())
        return (2.0 * u - 1.0) * self.l2_offset_max_k

    def adjust_draws(self, draws: Any, seed: int) -> Any:
        """Replace the seasonal L2 retrieval error of a scene by the drawn offset."""
        code = SENSORS[draws.sensor].code
        atm = replace(draws.atm, st_error_k=self.l2_offset_k(code, draws.day))
        return replace(draws, atm=atm)

    def levels_on(self, code: str, day: date) -> tuple[str, ...]:
        """Products written for one acquisition: L1 only, L2 only or both (drawn shares)."""
        u = stable_u01(self.seed, "stress-level", code, day.isoformat())
        if u < self.l1_only_share:
            return ("L1",)
        v = stable_u01(self.seed, "stress-both", code, day.isoformat())
        return ("L1", "L2") if v < self.both_share else ("L2",)

    def tar_on(self, pid: str) -> bool:
        """Whether product ``pid`` is bundled as a ``.tar`` (drawn share)."""
        return stable_u01(self.seed, "stress-tar", pid) < self.tar_share

    def scene_noise(self, code: str, day: date) -> dict[str, float]:
        """Per-scene parameters of the product-level correlated noise (deterministic)."""
        rng = np.random.default_rng(stable_seed(self.seed, "stress-noise", code, day.isoformat()))
        sd = float(rng.uniform(*self.noise_sd_k))
        small = float(rng.uniform(self.noise_scale_m[0], 120.0))
        large = float(rng.uniform(120.0, self.noise_scale_m[1]))
        mix = float(rng.uniform(0.2, 0.8))
        return {"sd_k": sd, "small_m": small, "large_m": large, "small_share": mix}

    def product_noise(self, shape: tuple[int, int], d: Any) -> NDArray[np.float64]:
        """Correlated surface-temperature noise of one scene, as the sensor sees it, K.

        Two unit-variance Gaussian random fields (correlation lengths drawn per scene in
        50-120 m and 120-300 m) are mixed and scaled to the scene's sd (0.5-1 K) on the 10 m
        surface grid: what remains of soil moisture, emissivity and atmospheric structure,
        re-drawn every scene so that no building's baseline can learn it [3]_. The field is a
        property of the surface, so it passes through the drawn system PSF (core and wide wing)
        before it is sampled at the 30 m product pixel centres: a thermal product cannot hold
        structure finer than its point-spread function [1]_ [2]_ (with a 100 m footprint a
        50 m field keeps about 70 % of its sd, a 300 m field about 95 %).
        """
        from kaesong_thermal.landsat.bands import NOMINAL_THERMAL

        code = SENSORS[d.sensor].code
        p = self.scene_noise(code, d.day)
        rng = np.random.default_rng(
            stable_seed(self.seed, "stress-noise-field", code, d.day.isoformat())
        )
        step = round(CROP_GRID.res_m / FINE_M)
        kernel = self.core_kernel(NOMINAL_THERMAL[code].native_resolution_m)
        half = (len(kernel) - 1) // 2
        fine = (shape[0] * step + 2 * half, shape[1] * step + 2 * half)
        a = ph.correlated_field(fine, p["small_m"] / FINE_M, rng)
        b = ph.correlated_field(fine, p["large_m"] / FINE_M, rng)
        f = math.sqrt(p["small_share"]) * a + math.sqrt(1.0 - p["small_share"]) * b
        core = blur(f, kernel)
        wide_c = self._wing_blur(f)
        centre = half + step // 2 + step * np.arange(max(shape))
        r, c = centre[: shape[0]], centre[: shape[1]]
        wide = bilinear(wide_c, (r + 0.5) / COARSE - 0.5, (c + 0.5) / COARSE - 0.5)
        out = (1.0 - self.wing_fraction) * core[np.ix_(r, c)] + self.wing_fraction * wide
        return (p["sd_k"] * out).astype(np.float64)

    def _wide_stack(self, static: Any) -> NDArray[np.float32]:
        """Static maps (and each roof, and the yard) blurred by the wide wing on 40 m cells."""
        if "wide" in self._cache:
            return self._cache["wide"]
        lc = static.landcover
        roof = lc == ph.ROOF
        water = lc == ph.WATER
        land = ~roof & ~water
        share = land + 0.3 * roof
        maps = [
            land.astype(np.float32),
            water.astype(np.float32),
            np.array(ph.CLASS_OFFSET_K, np.float32)[lc] * land,
            np.array(ph.CLASS_SOLAR_GAIN_K, np.float32)[lc] * land,
            *[f * share for f in static.fields],
            static.texture * share,
        ]
        bid = np.full(lc.size, -1, np.int64)
        bid[static.roof_flat] = static.roof_bid
        bid2 = bid.reshape(lc.shape)
        maps += [(bid2 == k).astype(np.float32) for k in range(len(static.plans))]
        maps.append(self._yard_mask(static).astype(np.float32))
        out = np.stack([self._wing_blur(a) for a in maps]).astype(np.float32)
        self._cache["wide"] = out
        return out

    def _wing_blur(self, a: NDArray) -> NDArray:
        """A 10 m map averaged onto 40 m cells and blurred by the wide wing's Gaussian [2]_."""
        nc, mc = a.shape[0] // COARSE, a.shape[1] // COARSE
        blocks = a[: nc * COARSE, : mc * COARSE].reshape(nc, COARSE, mc, COARSE).mean((1, 3))
        sigma = self.wing_sigma_m / (COARSE * FINE_M)
        return np.asarray(ndimage.gaussian_filter(blocks, sigma, mode="nearest", truncate=3.0))

    def _yard_mask(self, static: Any) -> NDArray[np.bool_]:
        if "yard_mask" not in self._cache:
            from rasterio.features import rasterize
            from rasterio.transform import from_origin

            tr = from_origin(static.fine_x0, static.fine_y0, FINE_M, FINE_M)
            r = rasterize([(self.yard, 1)], out_shape=static.landcover.shape, transform=tr)
            self._cache["yard_mask"] = np.asarray(r, bool)
        return self._cache["yard_mask"]

    def _yard_core(self, static: Any, kernel: NDArray) -> tuple[int, int, NDArray[np.float32]]:
        key = f"yard_core_{len(kernel)}_{float(kernel[len(kernel) // 2]):.9f}"
        if key not in self._cache:
            mask = self._yard_mask(static)
            rr, cc = np.nonzero(mask)
            half = (len(kernel) - 1) // 2
            r0, r1 = max(rr.min() - half, 0), min(rr.max() + half + 1, mask.shape[0])
            c0, c1 = max(cc.min() - half, 0), min(cc.max() + half + 1, mask.shape[1])
            self._cache[key] = (int(r0), int(c0), blur(mask[r0:r1, c0:c1], kernel))
        return self._cache[key]

    def yard_delta_k(self, day: date, sin_elev: float) -> float:
        """Paved yard minus the grass lot it replaces, K (0 before ``yard_date``) [4]_."""
        if day < self.yard_date:
            return 0.0
        paved = ph.CLASS_OFFSET_K[ph.PAVED] + sin_elev * ph.CLASS_SOLAR_GAIN_K[ph.PAVED]
        grass = ph.CLASS_OFFSET_K[ph.FIELD] + sin_elev * ph.CLASS_SOLAR_GAIN_K[ph.FIELD]
        return paved - grass

    def adjust_native(
        self,
        static: Any,
        d: Any,
        v: Any,
        native: NDArray[np.float64],
        rows: NDArray[np.intp],
        cols: NDArray[np.intp],
    ) -> NDArray[np.float64]:
        """Native samples of the core PSF -> core plus wide wing, plus the paved yard [1]_ [2]_.

        The wing holds ``wing_fraction`` of the energy in a Gaussian of ``wing_sigma_m``; it is
        evaluated on 40 m cells (it is at least 300 m wide), linear in the same static maps as
        the core. The yard, once paved, adds its excess over the grass lot through both parts.
        """
        stack = self._wide_stack(static)
        delta = self.yard_delta_k(d.day, v.sin_elev)
        coef = np.concatenate(
            [
                [v.air_k, v.water_k, 1.0, v.sin_elev],
                v.field_weights,
                [1.0],
                v.roof_k,
                [delta],
            ]
        ).astype(np.float32)
        wide_c = np.tensordot(coef, stack, axes=1)
        wide = bilinear(wide_c, (rows + 0.5) / COARSE - 0.5, (cols + 0.5) / COARSE - 0.5).astype(
            np.float64
        )
        out = (1.0 - self.wing_fraction) * native + self.wing_fraction * wide
        if delta != 0.0:
            from kaesong_thermal.landsat.bands import NOMINAL_THERMAL

            native_m = NOMINAL_THERMAL[SENSORS[d.sensor].code].native_resolution_m
            kernel = blurred_maps(static, native_m).kernel
            r0, c0, patch = self._yard_core(static, kernel)
            ri = np.nonzero((rows >= r0) & (rows < r0 + patch.shape[0]))[0]
            ci = np.nonzero((cols >= c0) & (cols < c0 + patch.shape[1]))[0]
            if len(ri) and len(ci):
                part = patch[np.ix_(rows[ri] - r0, cols[ci] - c0)]
                out[np.ix_(ri, ci)] += (1.0 - self.wing_fraction) * delta * part
        return out

    def to_json(self) -> dict[str, Any]:
        """Every drawn physics parameter (for scenario.json)."""
        return {
            "detector_footprint_m": round(self.detector_footprint_m, 2),
            "optical_sigma_m": round(self.optical_sigma_m, 2),
            "wing_fraction": round(self.wing_fraction, 4),
            "wing_sigma_m": round(self.wing_sigma_m, 1),
            "noise_sd_k_range": [round(x, 3) for x in self.noise_sd_k],
            "noise_scale_m_range": [round(x, 1) for x in self.noise_scale_m],
            "l2_offset_max_k": round(self.l2_offset_max_k, 3),
            "l1_only_share": round(self.l1_only_share, 4),
            "l2_emissivity_px": self.l2_emissivity_px,
            "both_share": round(self.both_share, 4),
            "tar_share": round(self.tar_share, 4),
            "yard_date": self.yard_date.isoformat(),
            "yard_area_m2": round(float(self.yard.area), 1),
            "yard_gain_k": ph.CLASS_SOLAR_GAIN_K[ph.PAVED],
            "town": [round(x, 1) for x in self.town],
        }


# ---------------------------------------------------------------------------------------------
# layout


@dataclass
class _Item:
    """One thing placed in a row of a block: a building (footprint) or the yard."""

    w: float
    d: float
    tag: str = ""  # special role of the item ("yard", "idle-neighbour", ...)
    shape: str = "rect"  # rect | L
    poly: Any = None  # shapely polygon in the park frame once placed


def _dims(rng: np.random.Generator, small: float, large: float) -> tuple[float, float]:
    """Roof size, m: a share ``small`` of small sheds, ``large`` of large halls [5]_."""
    u = rng.uniform()
    if u < small:
        return float(rng.uniform(15, 45)), float(rng.uniform(15, 45))
    if u < 1.0 - large:
        return float(rng.uniform(40, 85)), float(rng.uniform(30, 70))
    return float(rng.uniform(80, 160)), float(rng.uniform(55, 110))


def _gap(rng: np.random.Generator, tight: float) -> float:
    """Gap to the next shed in a row: tight rows 10-25 m, else 25-70 m [5]_."""
    return float(rng.uniform(10, 25) if rng.uniform() < tight else rng.uniform(25, 70))


def _polygon(item: _Item, u0: float, v0: float, rng: np.random.Generator) -> Any:
    from shapely.geometry import Polygon, box

    if item.shape == "L":
        fw, fd = rng.uniform(0.3, 0.55), rng.uniform(0.3, 0.55)
        nw, nd = item.w * fw, item.d * fd
        corner = int(rng.integers(4))
        x0, y0, x1, y1 = u0, v0, u0 + item.w, v0 + item.d
        pts = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        # cut the notch out of one corner
        cut = box(
            x1 - nw if corner in (1, 2) else x0,
            y1 - nd if corner in (2, 3) else y0,
            x1 if corner in (1, 2) else x0 + nw,
            y1 if corner in (2, 3) else y0 + nd,
        )
        return Polygon(pts).difference(cut)
    return box(u0, v0, u0 + item.w, v0 + item.d)


@dataclass
class Park:
    """A drawn park: footprints (UTM), their special tags, the yard, blocks and streets."""

    polygons: list[Any]
    tags: list[str]
    yard: Any
    blocks: list[Any]
    streets: Any
    angle_deg: float
    centre: tuple[float, float]
    block_m: tuple[float, float]
    street_m: float
    blocks_per_row: int = 0
    setback_m: float = 0.0
    tight_share: float = 0.0
    small_share: float = 0.45
    large_share: float = 0.2


def draw_park(seed: int) -> Park:
    """Random park: 25-45 sheds on a street grid of random orientation [5]_.

    Blocks of 240-340 x 170-240 m between 18-30 m streets are filled in rows (one or two per
    block) from left to right, gaps 10-25 m in tight rows and 25-70 m elsewhere; roofs from
    15 x 15 m to 160 x 110 m in a mix drawn per park (15-45 % small sheds, 15-40 % large
    halls, the rest medium), 15 % of the larger ones L-shaped, a tenth of the smaller ones
    rotated against the grid. Placed first, each in its own block: a large hall (>= 5,000 m2)
    with a 500-1,000 m2 shed 10-25 m beside it, two adjacent sheds (the active pair), a shed with
    an empty lot beside it (the yard-to-be), and the largest hall (150-160 x 100-110 m).
    """
    from shapely import affinity
    from shapely.geometry import LineString, box
    from shapely.ops import unary_union

    rng = np.random.default_rng(stable_seed(seed, "stress-park"))
    n_target = int(rng.integers(25, 46))
    angle = float(rng.uniform(0.0, 90.0))
    bw, bh = float(rng.uniform(240, 340)), float(rng.uniform(170, 240))
    sw = float(rng.uniform(18, 30))
    n_c = int(rng.integers(3, 5))
    n_r = 8
    tight = float(rng.uniform(0.5, 0.75))
    # the mix of roof sizes differs from park to park: workshops or large halls
    small_share = float(rng.uniform(0.15, 0.45))
    large_share = float(rng.uniform(0.15, 0.4))
    cx0 = CROP_GRID.x0 + CROP_GRID.width * 15.0 + float(rng.uniform(-400, 400))
    cy0 = CROP_GRID.y0 - CROP_GRID.height * 15.0 + float(rng.uniform(-400, 400))

    big_w = float(rng.uniform(95, 150))
    big_d = float(rng.uniform(max(65.0, 5200.0 / big_w), 110))
    small_a = float(rng.uniform(520, 980))
    small_w = float(rng.uniform(20, 35))
    specials: list[list[_Item]] = [
        [
            _Item(big_w, big_d, "idle-neighbour-host"),
            _Item(float(rng.uniform(10, 25)), 0.0, "gap"),
            _Item(small_w, small_a / small_w, "idle-neighbour"),
        ],
        [
            _Item(float(rng.uniform(50, 110)), float(rng.uniform(45, 90)), "active-pair"),
            _Item(float(rng.uniform(10, 25)), 0.0, "gap"),
            _Item(float(rng.uniform(50, 110)), float(rng.uniform(45, 90)), "active-pair"),
        ],
        [
            _Item(float(rng.uniform(45, 80)), float(rng.uniform(35, 60)), "hot-yard"),
            _Item(float(rng.uniform(8, 14)), 0.0, "gap"),
            _Item(float(rng.uniform(45, 70)), float(rng.uniform(35, 60)), "yard"),
            _Item(45.0, 0.0, "gap"),
        ],
        [_Item(float(rng.uniform(150, 160)), float(rng.uniform(100, 110)), "largest")],
        [_Item(float(rng.uniform(15, 18)), float(rng.uniform(15, 18)), "smallest")],
    ]
    special_blocks = rng.permutation(min(n_c * 2, 8))[: len(specials)]
    block_special = {int(b): s for b, s in zip(special_blocks, specials, strict=False)}
    placed: list[_Item] = []
    blocks_used: list[Any] = []
    total_u = n_c * bw + (n_c - 1) * sw
    sb = float(rng.uniform(8, 15))
    n_buildings = 0
    n_special = sum(it.tag not in ("gap", "yard") for s in specials for it in s)
    for b in range(n_c * n_r):
        if n_buildings + n_special >= n_target and all(k < b for k in block_special):
            break
        i, j = b % n_c, b // n_c
        u0 = -total_u / 2 + i * (bw + sw)
        v0 = -j * (bh + sw)
        blocks_used.append(box(u0, v0 - bh, u0 + bw, v0))
        queue = list(block_special.get(b, []))
        one_row = any(it.d > 60 for it in queue) or rng.uniform() < 0.4
        usable_h = bh - 2 * sb
        if one_row:
            rows = [(v0 - sb - usable_h, usable_h)]
        else:
            g = _gap(rng, tight)
            depth = (usable_h - g) / 2
            rows = [(v0 - sb - depth, depth), (v0 - sb - usable_h, depth)]
        for r, (rv0, depth) in enumerate(rows):
            cursor = u0 + sb
            right = u0 + bw - sb
            items = queue if r == 0 else []
            while True:
                if items:
                    it = items.pop(0)
                else:
                    if n_buildings + n_special >= n_target:
                        break
                    w, dd = _dims(rng, small_share, large_share)
                    it = _Item(w, min(dd, depth))
                    if it.d < 15:
                        break
                    if it.w > 50 and it.d > 40 and rng.uniform() < 0.15:
                        it.shape = "L"
                if it.tag == "gap":
                    cursor += it.w
                    continue
                if cursor + it.w > right:
                    if it.tag:  # a special item must be placed: shrink it to fit
                        it.w = max(15.0, right - cursor)
                        if cursor + it.w > right:
                            break
                    else:
                        break
                it.d = min(it.d, depth)
                # align to the street side of the row (north edge of the upper row)
                vv = rv0 + depth - it.d if r == 0 else rv0
                it.poly = _polygon(it, cursor, vv, rng)
                placed.append(it)
                if it.tag != "yard":
                    n_buildings += 1
                    if it.tag:
                        n_special -= 1
                cursor += it.w
                if not (items and items[0].tag == "gap"):
                    cursor += _gap(rng, tight)
    # rotate a tenth of the small and medium sheds against the grid where there is room
    polys = [it.poly for it in placed]
    for k, it in enumerate(placed):
        if it.tag or it.w > 85 or rng.uniform() >= 0.1:
            continue
        rot = affinity.rotate(it.poly, float(rng.uniform(8, 30) * rng.choice([-1, 1])), "centroid")
        others = [p for q, p in enumerate(polys) if q != k]
        if not any(rot.buffer(10.0).intersects(p) for p in others):
            it.poly = rot
            polys[k] = rot

    v_mid = min(bl.bounds[1] for bl in blocks_used) / 2

    def to_utm(g: Any) -> Any:
        g = affinity.translate(g, 0.0, -v_mid)
        g = affinity.rotate(g, angle, origin=(0, 0))
        return affinity.translate(g, cx0, cy0)

    # streets: the grid lines between and around the used blocks
    v_min = min(bl.bounds[1] for bl in blocks_used)
    lines = []
    for i in range(n_c + 1):
        u = -total_u / 2 + i * (bw + sw) - sw / 2
        lines.append(LineString([(u, sw / 2), (u, v_min - sw / 2)]))
    j_max = round(-v_min / (bh + sw)) + 1
    for j in range(j_max + 1):
        v = -j * (bh + sw) + sw / 2
        lines.append(LineString([(-total_u / 2 - sw / 2, v), (total_u / 2 + sw / 2, v)]))
    streets = unary_union([ln.buffer(sw / 2, cap_style="flat") for ln in lines])
    buildings = [it for it in placed if it.tag != "yard"]
    yard = next(it for it in placed if it.tag == "yard")
    return Park(
        polygons=[to_utm(it.poly) for it in buildings],
        tags=[it.tag for it in buildings],
        yard=to_utm(yard.poly),
        blocks=[to_utm(b) for b in blocks_used],
        streets=to_utm(streets),
        angle_deg=angle,
        centre=(cx0, cy0),
        block_m=(bw, bh),
        street_m=sw,
        blocks_per_row=n_c,
        setback_m=sb,
        tight_share=tight,
        small_share=small_share,
        large_share=large_share,
    )


# ---------------------------------------------------------------------------------------------
# schedules


def _day(rng: np.random.Generator, lo: date, hi: date) -> date:
    return lo + timedelta(days=int(rng.integers(0, (hi - lo).days + 1)))


@dataclass(frozen=True)
class StressDraw:
    """One draw: footprints (GeoDataFrame, EPSG:32652), building plans, physics, events."""

    footprints: Any
    plans: list[BuildingPlan]
    physics: StressPhysics
    park: Park
    events: dict[str, Any]
    params: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The ``stress`` section of scenario.json: every drawn parameter and the events."""
        return {
            "version": STRESS_VERSION,
            "physics": self.physics.to_json(),
            "layout": {
                "angle_deg": round(self.park.angle_deg, 2),
                "centre_xy": [round(c, 1) for c in self.park.centre],
                "block_m": [round(b, 1) for b in self.park.block_m],
                "street_m": round(self.park.street_m, 1),
                "blocks_per_row": self.park.blocks_per_row,
                "blocks_used": len(self.park.blocks),
                "setback_m": round(self.park.setback_m, 1),
                "tight_gap_share": round(self.park.tight_share, 3),
                "small_roof_share": round(self.park.small_share, 3),
                "large_roof_share": round(self.park.large_share, 3),
                "n_buildings": len(self.plans),
            },
            "schedule": self.params,
            "events": self.events,
            "idle_years": [d.isoformat() for d in IDLE_YEARS],
            "confounder_roles": list(CONFOUNDER_ROLES),
        }


def _operation(rng: np.random.Generator, start: date, stop: date, p_break: float) -> list[Period]:
    """Intermittent operation from ``start`` to ``stop``: stretches of 4-30 weeks at a drawn
    duty and share of working days, sometimes 1-4 weeks off between them; Sundays idle."""
    out = []
    t = start
    while t < stop:
        length = timedelta(weeks=int(rng.integers(4, 31)))
        end = min(t + length, stop)
        out.append(
            Period(
                t,
                end,
                round(float(rng.uniform(0.4, 1.0)), 3),
                round(float(rng.uniform(0.55, 0.95)), 3),
            )
        )
        t = end
        if rng.uniform() < p_break:
            t += timedelta(weeks=int(rng.integers(1, 5)))
    return out


def draw_stress(
    seed: int, heat_scale: float = 1.0, noise_scale: float = 1.0, material_scale: float = 1.0
) -> StressDraw:
    """Draw one park, its schedules and confounders, and its physics (deterministic in seed).

    Parameters
    ----------
    seed
        The draw.
    heat_scale
        Factor on every building's process-heat roof excess (drawn log-uniform in 2-12 K at
        ``heat_scale=1``); nothing else of the draw changes, so a seed at ``heat_scale=2`` is
        the same park with roofs twice as warm when working (their spill onto neighbours and
        rings follows through the renderer).  The regime question of ``benchmarks/README.md``:
        how the detector does where working roofs stand out more than in the family's range.
    noise_scale
        Factor on the range of each scene's surface-noise sd (0.5-1 K at ``noise_scale=1``);
        nothing else changes: the same park and schedules under a noisier background.
    material_scale
        At least 1: how much wider than the family's range the roofs' materials are drawn
        (1: each roof type's emissivity, solar gain within +-15 %, and Level-2 products that
        carry the kinetic surface temperature). Above 1 each roof's emissivity deficit
        ``1 - eps`` is its type's times a factor drawn uniformly in [1, X] (at 4, light metal
        0.72-0.93, concrete 0.80-0.95 [7]_), its solar gain is multiplied by a factor in
        [1 / (1 + w), 1 + w] with ``w = 0.15 (X - 1)``, and the Level-2 surface temperature is
        retrieved with a 90 m mean emissivity (:meth:`StressPhysics.assumed_emissivity`), so a
        roof darker in the thermal band than its surroundings reads colder by an amount that
        follows the atmosphere and the season. Drawn from a generator of its own: the park,
        schedules and physics are those of ``X = 1``.

    Returns
    -------
    StressDraw
        ``footprints`` indexed by ``building_id`` (EPSG:32652, column ``kind``) in the order of
        ``plans``; ``events`` the switch-on / switch-off dates and the confounder dates.
    """
    import geopandas as gpd

    for what, scale in (("heat", heat_scale), ("noise", noise_scale)):
        if not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"{what} scale {scale}: must be a positive number")
    if not (math.isfinite(material_scale) and material_scale >= 1):
        raise ConfigError(f"material scale {material_scale}: must be a number of at least 1")
    park = draw_park(seed)
    rng = np.random.default_rng(stable_seed(seed, "stress-schedule"))
    n = len(park.polygons)
    ids = [f"bldg-{k + 1:02d}" for k in range(n)]
    tags = dict(zip(ids, park.tags, strict=True))
    areas = {i: float(p.area) for i, p in zip(ids, park.polygons, strict=True)}
    special = {i for i, t in tags.items() if t in ("idle-neighbour", "hot-yard")}
    free = [i for i in ids if not tags[i]]
    # never-active confounders: a re-clad and a demolished shed among the untagged ones
    larger = sorted((i for i in free if areas[i] >= 1500), key=lambda i: (stable_u01(seed, i), i))
    pool = larger if len(larger) >= 2 else sorted(free, key=lambda i: -areas[i])
    reclad_id, demolished_id = pool[0], pool[1]
    never = special | {reclad_id, demolished_id}
    kinds = {}
    for i in ids:
        # a few offices and stores among the sheds: never operated
        kinds[i] = (
            "office" if (i not in never and not tags[i] and rng.uniform() < 0.15) else "factory"
        )
    factories = [i for i in ids if kinds[i] == "factory"]
    forced_on = [i for i in ids if tags[i] in ("idle-neighbour-host", "active-pair")]
    share_on = float(rng.uniform(0.3, 0.5))
    n_on = max(len(forced_on), round(share_on * len(factories)))
    candidates = [i for i in factories if i not in never and i not in forced_on]
    order = rng.permutation(len(candidates))
    switch_on_ids = forced_on + [candidates[k] for k in order[: max(0, n_on - len(forced_on))]]
    p_early = float(rng.uniform(0.3, 0.7))
    p_sporadic = float(rng.uniform(0.01, 0.02))
    p_break = float(rng.uniform(0.2, 0.5))
    p_off = float(rng.uniform(0.1, 0.25))
    mix = rng.dirichlet([3.0, 2.0, 1.0])
    roof_names = ("light-metal", "concrete", "dark-bitumen")

    plans = []
    events: dict[str, Any] = {"switch_on": {}, "switch_off": {}}
    for i in ids:
        rt = str(roof_names[int(rng.choice(3, p=mix))])
        if i == reclad_id and rt == "dark-bitumen":
            rt = "light-metal"
        gain = round(ph.ROOF_TYPES[rt][0] * float(rng.uniform(0.85, 1.15)), 3)
        base = float(np.exp(rng.uniform(math.log(2.0), math.log(12.0))))
        base = round(base * heat_scale, 3)
        plan = BuildingPlan(
            building_id=i,
            kind=kinds[i],
            area_m2=round(areas[i], 1),
            roof_type=rt,
            base_excess_k=base,
            roof_offset_k=round(float(rng.uniform(-0.5, 0.5)), 3),
            gain_k=gain,
        )
        if tags[i] and tags[i] not in ("largest", "smallest", "idle-neighbour-host"):
            plan.roles.append(tags[i])
        if tags[i] == "idle-neighbour-host":
            plan.roles.append("active-neighbour")
        if kinds[i] == "factory" and i not in never:
            if rng.uniform() < p_early:
                end = _day(rng, date(2015, 1, 1), EARLY_END_LATEST)
                plan.periods.append(
                    Period(EARLY_START, end, round(float(rng.uniform(0.5, 1.0)), 3), 0.9)
                )
                plan.roles.append("active-2014")
            if rng.uniform() < 0.5:
                plan.periods.append(
                    Period(IDLE_YEARS[0], date(2023, 1, 1), 0.25, round(p_sporadic, 4))
                )
            if i in switch_on_ids:
                on = _day(rng, *SWITCH_ON_RANGE)
                stop = OPEN_END
                if rng.uniform() < p_off:
                    stop = min(on + timedelta(days=int(rng.integers(120, 600))), date(2025, 10, 31))
                    events["switch_off"][i] = stop.isoformat()
                    plan.roles.append("switch-off")
                plan.periods += _operation(rng, on, stop, p_break)
                events["switch_on"][i] = on.isoformat()
                plan.roles.append("switch-on")
        plans.append(plan)
    by_id = {p.building_id: p for p in plans}
    # a few switch off again: at least one per draw
    if not events["switch_off"] and switch_on_ids:
        i = switch_on_ids[-1]
        p = by_id[i]
        on = date.fromisoformat(events["switch_on"][i])
        stop = min(on + timedelta(days=int(rng.integers(120, 600))), date(2025, 10, 31))
        p.periods = [q for q in p.periods if q.start < stop]
        if p.periods and p.periods[-1].end > stop:
            p.periods[-1] = replace(
                p.periods[-1], end=max(stop, p.periods[-1].start + timedelta(days=1))
            )
        events["switch_off"][i] = stop.isoformat()
        p.roles.append("switch-off")
    # re-cladding: a summer-peaked step of 1.4-2.6 K of roof contrast, never active [4]_
    rc = by_id[reclad_id]
    step = float(rng.uniform(1.4, 2.6))
    rc_day = _day(rng, *CONFOUNDER_RANGE)
    rc.reclad = (rc_day.isoformat(), "dark-bitumen")
    rc.reclad_gain_k = round(float(rc.gain_k or 0.0) + step / MIDSUMMER_SIN, 3)
    rc.roles.append("reclad")
    events["reclad"] = {
        "building_id": reclad_id,
        "date": rc_day.isoformat(),
        "step_k": round(step, 3),
    }
    dm = by_id[demolished_id]
    dm_day = _day(rng, *DEMOLITION_RANGE)
    dm_end = dm_day + timedelta(days=int(rng.integers(20, 90)))
    dm.removed = (dm_day.isoformat(), dm_end.isoformat())
    dm.roles.append("demolished")
    events["demolished"] = {
        "building_id": demolished_id,
        "start": dm_day.isoformat(),
        "end": dm_end.isoformat(),
    }
    yard_day = _day(rng, *CONFOUNDER_RANGE)
    yard_id = next(i for i in ids if tags[i] == "hot-yard")
    events["hot_yard"] = {"building_id": yard_id, "date": yard_day.isoformat()}
    host = next(i for i in ids if tags[i] == "idle-neighbour-host")
    neighbour = next(i for i in ids if tags[i] == "idle-neighbour")
    events["idle_neighbour"] = {
        "building_id": neighbour,
        "active_neighbour": host,
        "gap_m": round(
            float(park.polygons[ids.index(host)].distance(park.polygons[ids.index(neighbour)])), 1
        ),
    }
    pair = [i for i in ids if tags[i] == "active-pair"]
    events["active_pair"] = {
        "building_ids": pair,
        "gap_m": round(
            float(park.polygons[ids.index(pair[0])].distance(park.polygons[ids.index(pair[1])])), 1
        ),
    }

    if material_scale != 1.0:
        mrng = np.random.default_rng(stable_seed(seed, "stress-materials"))
        w = 0.15 * (material_scale - 1.0)
        for plan in plans:
            deficit = (1.0 - ph.ROOF_TYPES[plan.roof_type][1]) * mrng.uniform(1.0, material_scale)
            plan.emissivity = round(1.0 - float(deficit), 4)
            f = float(mrng.uniform(1.0 / (1.0 + w), 1.0 + w))
            if plan.gain_k is not None:
                plan.gain_k = round(plan.gain_k * f, 3)
            if plan.reclad_gain_k is not None:
                plan.reclad_gain_k = round(plan.reclad_gain_k * f, 3)
    prng = np.random.default_rng(stable_seed(seed, "stress-physics"))
    physics = StressPhysics(
        seed=seed,
        detector_footprint_m=float(prng.uniform(90, 110)),
        optical_sigma_m=float(prng.uniform(15, 35)),
        wing_fraction=float(prng.uniform(0.05, 0.15)),
        wing_sigma_m=float(prng.uniform(300, 500)),
        noise_sd_k=(0.5 * noise_scale, 1.0 * noise_scale),
        noise_scale_m=(50.0, 300.0),
        l2_offset_max_k=float(prng.uniform(0.5, 1.5)),
        l1_only_share=float(prng.uniform(0.0, 0.5)),
        both_share=float(prng.uniform(0.0, 0.3)),
        tar_share=float(prng.uniform(0.0, 0.5)),
        yard_date=yard_day,
        l2_emissivity_px=3 if material_scale != 1.0 else 0,
        blocks=park.blocks,
        streets=park.streets,
        yard=park.yard,
        town=(
            park.centre[0] + float(prng.uniform(-2200, 2200)),
            park.centre[1] + float(prng.choice([-1, 1]) * prng.uniform(1800, 2600)),
            float(prng.uniform(600, 1200)),
        ),
        stream=(
            park.centre[0] + float(prng.uniform(-2500, 2500)),
            park.centre[1] + float(prng.choice([-1, 1]) * prng.uniform(1500, 2500)),
            float(prng.uniform(0, math.pi)),
        ),
    )
    params = {
        "n_buildings": n,
        "switch_on_share": round(share_on, 4),
        "early_share": round(p_early, 4),
        "sporadic_day_share": round(p_sporadic, 4),
        "break_probability": round(p_break, 4),
        "switch_off_probability": round(p_off, 4),
        "roof_mix": {r: round(float(x), 4) for r, x in zip(roof_names, mix, strict=True)},
        "reclad_step_k": round(step, 3),
        "heat_scale": heat_scale,
        "noise_scale": noise_scale,
        "material_scale": material_scale,
    }
    gdf = gpd.GeoDataFrame(
        {"building_id": ids, "kind": [kinds[i] for i in ids]},
        geometry=park.polygons,
        crs=f"EPSG:{EPSG}",
    ).set_index("building_id")
    return StressDraw(gdf, plans, physics, park, events, params)


def stress_products(
    physics: StressPhysics, tasks: list[tuple[str, date]], results: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per acquisition: the products written (level, tar) and the per-scene draws of the family.

    Parameters
    ----------
    physics
        The draw's physics.
    tasks
        ``(sensor, date)`` of every acquisition, in the order of ``results``.
    results
        Return values of ``simulate_acquisition`` for the tasks.
    """
    out = []
    for (sensor, day), res in zip(tasks, results, strict=True):
        code = SENSORS[sensor].code
        noise = physics.scene_noise(code, day)
        out.append(
            {
                "sensor": code,
                "date": day.isoformat(),
                "levels": list(physics.levels_on(code, day)),
                "products": [str(p).rsplit("/", 1)[-1] for p in res["products"]],
                "l2_offset_k": round(physics.l2_offset_k(code, day), 4),
                "noise": {k: round(v, 4) for k, v in noise.items()},
            }
        )
    return out
