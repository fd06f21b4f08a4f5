"""Rendering of one simulated scene: static maps (built once), per-scene draws, pixel arrays.

The complex is rendered with the full chain on a 10 m grid: land cover and roofs -> surface
temperature -> TIRS point-spread function sampled on the native lattice (100 m) with detector
noise -> cubic convolution to the 30 m product grid with a geolocation error. Outside that window
(``size="full"``) a cheaper background is interpolated from a 240 m map. Clouds, shadows and
cirrus are drawn on a 120 m field and applied at 30 m. See :mod:`.physics` and :mod:`.clouds`
for the models and their sources.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from kaesong_thermal.simulation import clouds as cl
from kaesong_thermal.simulation import physics as ph
from kaesong_thermal.simulation.scenario import (
    CROP_GRID,
    FULL_GRID,
    SENSORS,
    SLC_OFF,
    BuildingPlan,
    Grid,
    stable_seed,
)

logger = logging.getLogger(__name__)

FINE_M = 10.0
FACTOR = 3  # 30 m / 10 m
PAD_M = 400.0
COARSE_CLOUD = 4  # 120 m cloud field cells
COARSE_BG = 8  # 240 m background cells
HALO_PX = 60  # 1.8 km margin for cloud distance and shadows


def bilinear(coarse: NDArray, rows: NDArray, cols: NDArray) -> NDArray[np.float32]:
    """Separable bilinear interpolation of ``coarse`` at fractional (row, col) coordinates.

    ``rows`` and ``cols`` are 1-D; the result has shape ``(len(rows), len(cols))``; positions
    are clamped to the array.
    """
    ny, nx = coarse.shape
    r = np.clip(rows, 0, ny - 1.000001)
    c = np.clip(cols, 0, nx - 1.000001)
    r0 = r.astype(int)
    c0 = c.astype(int)
    wr = (r - r0).astype(np.float32)[:, None]
    wc = (c - c0).astype(np.float32)[None, :]
    a = coarse[r0] * (1 - wr) + coarse[r0 + 1] * wr
    return (a[:, c0] * (1 - wc) + a[:, c0 + 1] * wc).astype(np.float32)


@dataclass
class StaticScene:
    """Everything that does not change from scene to scene (built once per simulation)."""

    grid: Grid
    win_row: int  # the complex window (the crop) inside ``grid``
    win_col: int
    win_shape: tuple[int, int]
    fine_x0: float
    fine_y0: float
    landcover: NDArray[np.uint8]
    roof_flat: NDArray[np.intp]
    roof_bid: NDArray[np.intp]
    fields: NDArray[np.float32]  # (3, ny, nx) unit-variance correlated fields
    texture: NDArray[np.float32]
    eps30: NDArray[np.float32]
    gain30: NDArray[np.float32]
    water30: NDArray[np.bool_]
    building_px: list[NDArray[np.intp]]  # flat indices of each building's 30 m pixels (window)
    plans: list[BuildingPlan]
    bg_frac: NDArray[np.float32] | None  # (4, cy, cx) field/urban/water/forest fractions
    bg_eps: NDArray[np.float32] | None
    blurred: dict[str, BlurredMaps] = dc_field(default_factory=dict)
    #: drawn physics of the stress family (:mod:`.stress`); None for the fixed scenarios
    stress: Any = None


def _landcover(
    shape: tuple[int, int], fine_x0: float, fine_y0: float, fp_utm: Any, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """Procedural land cover of the complex surroundings on the 10 m grid."""
    ny, nx = shape
    lc = np.full(shape, ph.FIELD, np.uint8)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    x_m = fine_x0 + (xx + 0.5) * FINE_M
    y_m = fine_y0 - (yy + 0.5) * FINE_M
    hills = ph.correlated_field(shape, 40.0, rng)
    lc[hills > 1.0] = ph.FOREST
    # Kaesong city fabric towards the north-west corner
    cx, cy = fine_x0 + 0.15 * nx * FINE_M, fine_y0 - 0.12 * ny * FINE_M
    urban_noise = ph.correlated_field(shape, 12.0, rng)
    dist = np.hypot(x_m - cx, y_m - cy)
    lc[dist + 300 * urban_noise < 1700] = ph.URBAN
    # a meandering stream and a reservoir
    river_y = fine_y0 - 0.78 * ny * FINE_M + 250 * np.sin(2 * np.pi * (x_m - fine_x0) / 2700.0)
    lc[np.abs(y_m - river_y) < 22] = ph.WATER
    rx, ry = fine_x0 + 0.82 * nx * FINE_M, fine_y0 - 0.2 * ny * FINE_M
    lc[((x_m - rx) / 420) ** 2 + ((y_m - ry) / 260) ** 2 < 1] = ph.WATER
    # the complex: industrial fabric and its road grid around the footprints
    minx, miny, maxx, maxy = fp_utm.total_bounds
    inside = (x_m > minx - 250) & (x_m < maxx + 250) & (y_m > miny - 250) & (y_m < maxy + 250)
    lc[inside] = ph.URBAN
    grid_road = inside & (((x_m - minx) % 320 < 20) | ((y_m - miny) % 280 < 20))
    lc[grid_road] = ph.ROAD
    # two main roads across the window (the Kaesong - Seoul highway runs roughly N-S)
    lc[np.abs((x_m - (minx + maxx) / 2 - 900) - 0.35 * (y_m - (miny + maxy) / 2)) < 15] = ph.ROAD
    lc[np.abs(y_m - (maxy + 600)) < 12] = ph.ROAD
    return lc


def build_static(
    fp_utm: Any, plans: list[BuildingPlan], size: str, seed: int, stress: Any = None
) -> StaticScene:
    """Precompute the maps of the simulation (land cover, roof masks, fields, 30 m summaries).

    ``stress`` (a :class:`.stress.StressPhysics`) replaces the Kaesong land cover by the drawn
    park's and drives the per-draw sensor physics.
    """
    from rasterio.features import rasterize
    from rasterio.transform import from_origin
    from shapely.geometry import box

    grid = CROP_GRID if size == "crop" else FULL_GRID
    crop = CROP_GRID
    win_row = round((grid.y0 - crop.y0) / 30.0)
    win_col = round((crop.x0 - grid.x0) / 30.0)
    rng = np.random.default_rng(stable_seed(seed, "static"))
    fine_x0, fine_y0 = crop.x0 - PAD_M, crop.y0 + PAD_M
    n = round(crop.height * FACTOR + 2 * PAD_M / FINE_M)
    m = round(crop.width * FACTOR + 2 * PAD_M / FINE_M)
    if stress is not None:
        lc = stress.landcover((n, m), fine_x0, fine_y0, rng)
    else:
        lc = _landcover((n, m), fine_x0, fine_y0, fp_utm, rng)
    ftr = from_origin(fine_x0, fine_y0, FINE_M, FINE_M)
    # hot paved yard next to the building chosen for it
    for p in plans:
        if "hot-yard-neighbour" in p.roles:
            x0, y0, x1, _ = fp_utm.geometry.loc[p.building_id].bounds
            yard = box(x0 - 10, y0 - 75, x1 + 10, y0 - 12)
            ym = rasterize([(yard, 1)], out_shape=(n, m), transform=ftr, dtype="uint8")
            lc[ym.astype(bool)] = ph.PAVED
    shapes = [(geom, k + 1) for k, geom in enumerate(fp_utm.geometry) if not geom.is_empty]
    bidx = rasterize(shapes, out_shape=(n, m), transform=ftr, dtype="int32", fill=0)
    # a building smaller than a fine cell still gets the cell holding its centroid
    for k, geom in enumerate(fp_utm.geometry):
        if not (bidx == k + 1).any() and not geom.is_empty:
            c = geom.centroid
            r, q = int((fine_y0 - c.y) / FINE_M), int((c.x - fine_x0) / FINE_M)
            if 0 <= r < n and 0 <= q < m:
                bidx[r, q] = k + 1
    lc[bidx > 0] = ph.ROOF
    roof_flat = np.flatnonzero(bidx)
    roof_bid = bidx.ravel()[roof_flat] - 1
    fields = np.stack([ph.correlated_field((n, m), s, rng) for s in (6.0, 20.0, 60.0)])
    texture = (0.4 * rng.standard_normal((n, m))).astype(np.float32)
    # 30 m summaries of the window (block means of the 10 m cells inside it)
    off = round(PAD_M / FINE_M)
    core = slice(off, off + crop.height * FACTOR), slice(off, off + crop.width * FACTOR)

    def block(a: NDArray) -> NDArray:
        sub = a[core].astype(np.float32)
        return sub.reshape(crop.height, FACTOR, crop.width, FACTOR).mean(axis=(1, 3))

    eps_lut = np.array(ph.CLASS_EMISSIVITY, np.float32)
    gain_lut = np.array(ph.CLASS_SOLAR_GAIN_K, np.float32)
    eps_f = eps_lut[lc]
    gain_f = gain_lut[lc]
    for k, p in enumerate(plans):
        sel = roof_flat[roof_bid == k]
        eps_f.ravel()[sel] = (
            p.emissivity if p.emissivity is not None else ph.ROOF_TYPES[p.roof_type][1]
        )
        gain_f.ravel()[sel] = ph.ROOF_TYPES[p.roof_type][0]
    b_core = bidx[core]
    building_px = []
    for k in range(len(plans)):
        hit = (b_core == k + 1).reshape(crop.height, FACTOR, crop.width, FACTOR).any(axis=(1, 3))
        building_px.append(np.flatnonzero(hit))
    bg_frac = bg_eps = None
    if size != "crop":
        shp = (grid.height // COARSE_BG + 2, grid.width // COARSE_BG + 2)
        forest = 1 / (1 + np.exp(-3 * (ph.correlated_field(shp, 6.0, rng) - 0.6)))
        urban = 1 / (1 + np.exp(-4 * (ph.correlated_field(shp, 4.0, rng) - 1.3)))
        water = 1 / (1 + np.exp(-6 * (ph.correlated_field(shp, 10.0, rng) - 1.6)))
        # the Han / Imjin estuary in the south-west corner of the scene
        yy, xx = np.mgrid[0 : shp[0], 0 : shp[1]]
        water = np.maximum(water, ((yy / shp[0] - 1) ** 2 + (xx / shp[1]) ** 2 < 0.12) * 1.0)
        forest = forest * (1 - water)
        urban = urban * (1 - water) * (1 - forest)
        field = np.clip(1 - forest - urban - water, 0, 1)
        bg_frac = np.stack([field, urban, water, forest]).astype(np.float32)
        bg_eps = np.tensordot(
            np.array([0.975, 0.965, 0.99, 0.985], np.float32), bg_frac, axes=1
        ).astype(np.float32)
    return StaticScene(
        grid=grid,
        win_row=win_row,
        win_col=win_col,
        win_shape=(crop.height, crop.width),
        fine_x0=fine_x0,
        fine_y0=fine_y0,
        landcover=lc,
        roof_flat=roof_flat,
        roof_bid=roof_bid,
        fields=fields,
        texture=texture,
        eps30=block(eps_f),
        gain30=block(gain_f),
        water30=block(lc == ph.WATER) > 0.5,
        building_px=building_px,
        plans=plans,
        bg_frac=bg_frac,
        bg_eps=bg_eps,
        stress=stress,
    )


@dataclass(frozen=True)
class SceneDraws:
    """Everything drawn for one acquisition (recorded in scenes.csv / scenario.json)."""

    sensor: str
    day: date
    acquired: datetime
    air_k: float
    sun: ph.SunPosition
    atm: ph.Atmosphere
    cloud_fraction_target: float
    cloud_height_m: float
    cirrus: bool
    jitter_x_m: float
    jitter_y_m: float
    lattice_offset: tuple[float, float]
    excess_k: tuple[float, ...]


def draw_scene(static: StaticScene, sensor: str, day: date, seed: int) -> SceneDraws:
    """Draw the scene-level quantities of one acquisition (deterministic in seed, sensor, day)."""
    spec = SENSORS[sensor]
    rng = np.random.default_rng(stable_seed(seed, "scene", sensor, day.isoformat()))
    hh, mm, ss = (int(v) for v in spec.overpass_utc.split(":"))
    secs = hh * 3600 + mm * 60 + ss + rng.uniform(-20.0, 20.0)
    acquired = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).replace(
        hour=int(secs // 3600),
        minute=int(secs % 3600 // 60),
        second=int(secs % 60),
        microsecond=round((secs % 1) * 1e6) // 10 * 10,
    )
    sun = ph.sun_position(acquired)
    # synoptic anomaly of the day is shared by every sensor passing that day
    day_rng = np.random.default_rng(stable_seed(seed, "weather", day.isoformat()))
    air = ph.climatological_air_k(day) + float(day_rng.normal(0.0, 2.5))
    atm = ph.seasonal_atmosphere(day, rng)
    cf = cl.draw_cloud_fraction(day, rng)
    r = 12.0 * math.sqrt(rng.uniform())
    th = rng.uniform(0, 2 * math.pi)
    excess = []
    for p in static.plans:
        duty = p.operating_on(day, seed)
        if duty > 0:
            brng = np.random.default_rng(stable_seed(seed, "excess", p.building_id, day))
            excess.append(round(ph.roof_excess_k(p.base_excess_k, air, duty, brng), 4))
        else:
            excess.append(0.0)
    summer = 0.5 * (1 + math.cos(2 * math.pi * (day.timetuple().tm_yday - 205) / 365.25))
    draws = SceneDraws(
        sensor=sensor,
        day=day,
        acquired=acquired,
        air_k=air,
        sun=sun,
        atm=atm,
        cloud_fraction_target=cf,
        cloud_height_m=float(rng.uniform(800.0, 3500.0)),
        cirrus=bool(rng.uniform() < 0.12 + 0.15 * summer),
        jitter_x_m=r * math.cos(th),
        jitter_y_m=r * math.sin(th),
        lattice_offset=(float(rng.uniform(0, 1)), float(rng.uniform(0, 1))),
        excess_k=tuple(excess),
    )
    if static.stress is not None:
        return static.stress.adjust_draws(draws, seed)
    return draws


@dataclass(frozen=True)
class SceneValues:
    """Per-scene numbers of the complex window (shared by the fast and the direct path)."""

    air_k: float
    sin_elev: float
    water_k: float
    field_weights: NDArray[np.float64]
    roof_k: NDArray[np.float64]  # one value per building (roof, or rubble once demolished)


def scene_values(static: StaticScene, d: SceneDraws, rng: np.random.Generator) -> SceneValues:
    """Draw the per-scene values of the window: variation weights and each roof temperature.

    A roof is ``air + offset + gain(roof type on the day) * sin(elevation) + excess + noise``
    (noise sd 0.3 K); demolished roofs blend into rubble as they come down [ph]_.
    """
    s = max(0.0, math.sin(math.radians(d.sun.elevation_deg)))
    w = rng.standard_normal(3)
    w = w / np.linalg.norm(w)
    rubble = d.air_k + ph.CLASS_OFFSET_K[ph.RUBBLE] + s * ph.CLASS_SOLAR_GAIN_K[ph.RUBBLE]
    vals = np.empty(len(static.plans))
    for k, p in enumerate(static.plans):
        gain = p.solar_gain_on(d.day)
        roof = d.air_k + p.roof_offset_k + gain * s + d.excess_k[k] + rng.normal(0, 0.3)
        f = p.roof_fraction_on(d.day)
        vals[k] = f * roof + (1 - f) * rubble
    water = max(d.air_k + ph.water_offset_k(d.day), 272.5)
    return SceneValues(d.air_k, s, water, w, vals)


def fine_temperature(static: StaticScene, v: SceneValues) -> NDArray[np.float32]:
    """Surface temperature of the complex window on the 10 m grid, K (the direct path).

    Background classes follow :func:`physics.surface_temperature_k` with the spatial variation
    ``sum(w_i * field_i) + texture`` (about 1 K); water is uniform at the day's water
    temperature; roof cells take their building's value plus 0.3 of the variation.
    """
    var = np.tensordot(v.field_weights.astype(np.float32), static.fields, axes=1) + static.texture
    t = ph.surface_temperature_k(static.landcover, v.air_k, v.sin_elev, 0.0, var)
    water = static.landcover == ph.WATER
    t[water] = v.water_k
    flat = t.ravel()
    flat[static.roof_flat] = (
        v.roof_k[static.roof_bid] + 0.3 * var.ravel()[static.roof_flat]
    ).astype(np.float32)
    return t


@dataclass
class BlurredMaps:
    """Static maps convolved once with one sensor's PSF (the scene is linear in them)."""

    kernel: NDArray[np.float64]
    offset: NDArray[np.float32]  # blurred class offsets (non-roof, non-water cells)
    gain: NDArray[np.float32]  # blurred class solar gains (non-roof, non-water cells)
    land: NDArray[np.float32]  # blurred indicator of non-roof, non-water cells
    water: NDArray[np.float32]
    fields: NDArray[np.float32]  # (3, ny, nx) blurred variation fields (incl. roof share)
    texture: NDArray[np.float32]
    patches: list[tuple[int, int, NDArray[np.float32]]]  # per building (row0, col0, blurred mask)


def blur(a: NDArray, kernel: NDArray) -> NDArray[np.float32]:
    """Separable convolution of a 10 m map with the 1-D PSF kernel on both axes [ph]_."""
    b = ndimage.convolve1d(a.astype(np.float32), kernel.astype(np.float32), axis=0, mode="nearest")
    return ndimage.convolve1d(b, kernel.astype(np.float32), axis=1, mode="nearest")


def blurred_maps(static: StaticScene, native_m: float) -> BlurredMaps:
    """PSF-convolved static maps for one native resolution (cached on ``static``)."""
    key = f"{native_m:g}"
    if key in static.blurred:
        return static.blurred[key]
    if static.stress is not None:
        kern = static.stress.core_kernel(native_m)
    else:
        kern = ph.psf_kernel_1d(native_m, FINE_M)
    lc = static.landcover
    roof = lc == ph.ROOF
    water = lc == ph.WATER
    land = ~roof & ~water
    off = np.array(ph.CLASS_OFFSET_K, np.float32)[lc] * land
    gain = np.array(ph.CLASS_SOLAR_GAIN_K, np.float32)[lc] * land
    share = land + 0.3 * roof
    half = (len(kern) - 1) // 2
    patches = []
    bid = np.full(lc.size, -1, np.int64)
    bid[static.roof_flat] = static.roof_bid
    bid2 = bid.reshape(lc.shape)
    for k in range(len(static.plans)):
        rr, cc = np.nonzero(bid2 == k)
        if len(rr) == 0:
            patches.append((0, 0, np.zeros((0, 0), np.float32)))
            continue
        r0, r1 = max(rr.min() - half, 0), min(rr.max() + half + 1, lc.shape[0])
        c0, c1 = max(cc.min() - half, 0), min(cc.max() + half + 1, lc.shape[1])
        patches.append((int(r0), int(c0), blur(bid2[r0:r1, c0:c1] == k, kern)))
    maps = BlurredMaps(
        kernel=kern,
        offset=blur(off, kern),
        gain=blur(gain, kern),
        land=blur(land, kern),
        water=blur(water, kern),
        fields=np.stack([blur(f * share, kern) for f in static.fields]),
        texture=blur(static.texture * share, kern),
        patches=patches,
    )
    static.blurred[key] = maps
    return maps


def native_lattice(
    static: StaticScene, d: SceneDraws, native_m: float, half: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Fine-grid (row, col) indices of the detector samples of this scene's native lattice."""
    n, m = static.landcover.shape
    step = native_m / FINE_M
    rows = np.rint(np.arange(half + d.lattice_offset[0] * step, n - half, step)).astype(np.intp)
    cols = np.rint(np.arange(half + d.lattice_offset[1] * step, m - half, step)).astype(np.intp)
    return rows, cols


def native_samples(
    static: StaticScene,
    v: SceneValues,
    maps: BlurredMaps,
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
) -> NDArray[np.float64]:
    """PSF-weighted surface temperature at the native sample positions (the fast path).

    Exactly ``blur(fine_temperature)`` sampled at ``rows x cols``, computed from the
    pre-blurred static maps because the scene is linear in them [ph]_.
    """
    ix = np.ix_(rows, cols)
    out = (
        v.air_k * (maps.land[ix] + maps.water[ix])
        + maps.offset[ix]
        + v.sin_elev * maps.gain[ix]
        + v.water_k * maps.water[ix]
        - v.air_k * maps.water[ix]
        + np.tensordot(v.field_weights, maps.fields[:, rows][:, :, cols], axes=1)
        + maps.texture[ix]
    ).astype(np.float64)
    # the roofs: sum of value * blurred mask over buildings
    for k, (r0, c0, patch) in enumerate(maps.patches):
        if patch.size == 0:
            continue
        ri = np.nonzero((rows >= r0) & (rows < r0 + patch.shape[0]))[0]
        ci = np.nonzero((cols >= c0) & (cols < c0 + patch.shape[1]))[0]
        if len(ri) and len(ci):
            out[np.ix_(ri, ci)] += v.roof_k[k] * patch[np.ix_(rows[ri] - r0, cols[ci] - c0)]
    return out


def sensor_window(static: StaticScene, d: SceneDraws, rng: np.random.Generator) -> NDArray:
    """The complex window at 30 m: PSF on the native lattice, NEdT noise, cubic convolution.

    Native samples (PSF-weighted, :func:`native_samples`) get Gaussian detector noise of the
    sensor's NEdT, then are resampled by cubic convolution to the 30 m product pixel centres,
    displaced by the scene's geolocation error [ph]_.
    """
    spec = SENSORS[d.sensor]
    from kaesong_thermal.landsat.bands import NOMINAL_THERMAL

    native_m = NOMINAL_THERMAL[spec.code].native_resolution_m
    maps = blurred_maps(static, native_m)
    half = (len(maps.kernel) - 1) // 2
    rows, cols = native_lattice(static, d, native_m, half)
    v = scene_values(static, d, rng)
    native = native_samples(static, v, maps, rows, cols)
    if static.stress is not None:
        native = static.stress.adjust_native(static, d, v, native, rows, cols)
    native += rng.normal(0.0, spec.nedt_k, native.shape)
    h, w = static.win_shape
    pad = PAD_M / FINE_M
    out_r = pad + FACTOR * (np.arange(h) + 0.5) - 0.5 - d.jitter_y_m / FINE_M
    out_c = pad + FACTOR * (np.arange(w) + 0.5) - 0.5 + d.jitter_x_m / FINE_M
    step = native_m / FINE_M
    # lattice positions are rounded to fine cells: use the exact rounded positions
    taps_r = _taps(out_r, rows, step)
    taps_c = _taps(out_c, cols, step)
    out = ph.apply_taps(native, taps_r, taps_c)
    if static.stress is not None:
        out = out + static.stress.product_noise(out.shape, d)
    return out.astype(np.float32)


def _taps(out: NDArray, nat: NDArray[np.intp], step: float) -> tuple[NDArray, NDArray]:
    """Cubic taps onto the (rounded, hence nearly regular) native positions."""
    idx, _ = ph.cubic_taps(out, float(nat[0]), step, len(nat))
    u = (out[:, None] - nat[idx].astype(float)) / step
    w = ph.cubic_convolution_weights(u)
    # clamped edge taps repeat a sample: keep their weight (edge replication)
    return idx, w / w.sum(axis=1, keepdims=True)


def _background_rows(
    static: StaticScene, d: SceneDraws, r0: int, r1: int, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Cheap background surface temperature of rows [r0, r1) of a full scene, K."""
    assert static.bg_frac is not None
    s = max(0.0, math.sin(math.radians(d.sun.elevation_deg)))
    off = np.array(
        [
            ph.CLASS_OFFSET_K[ph.FIELD] + s * ph.CLASS_SOLAR_GAIN_K[ph.FIELD],
            ph.CLASS_OFFSET_K[ph.URBAN] + s * ph.CLASS_SOLAR_GAIN_K[ph.URBAN],
            ph.water_offset_k(d.day),
            ph.CLASS_OFFSET_K[ph.FOREST] + s * ph.CLASS_SOLAR_GAIN_K[ph.FOREST],
        ],
        np.float32,
    )
    coarse = d.air_k + np.tensordot(off, static.bg_frac, axes=1)
    rows = (np.arange(r0, r1) + 0.5) / COARSE_BG - 0.5
    cols = (np.arange(static.grid.width) + 0.5) / COARSE_BG - 0.5
    t = bilinear(coarse, rows, cols)
    t += rng.normal(0.0, 0.6, t.shape).astype(np.float32)
    return t


@dataclass
class CloudField:
    """Per-scene cloud and cirrus fields on the 120 m grid (output grid plus a 3 km halo)."""

    field: NDArray[np.float32]
    threshold: float
    softness: float
    cirrus: NDArray[np.float32] | None
    cirrus_threshold: float
    shadow_shift: tuple[float, float]
    cloud_k: float


def draw_clouds(static: StaticScene, d: SceneDraws, rng: np.random.Generator) -> CloudField:
    """Cloud objects for one scene: a thresholded multi-scale random field [cl]."""
    g = static.grid
    shp = (
        (g.height + 2 * HALO_PX) // COARSE_CLOUD + 2,
        (g.width + 2 * HALO_PX) // COARSE_CLOUD + 2,
    )
    small = rng.uniform(1.5, 4.0)
    f = 0.75 * ph.correlated_field(shp, small, rng) + 0.6 * ph.correlated_field(shp, 12.0, rng)
    cf = d.cloud_fraction_target
    thr = float(np.quantile(f, 1 - cf)) if cf > 0 else float(f.max()) + 10.0
    cir = None
    cthr = 0.0
    if d.cirrus:
        cir = ph.correlated_field(shp, 10.0, rng)
        cthr = float(np.quantile(cir, rng.uniform(0.5, 0.9)))
    return CloudField(
        field=f.astype(np.float32),
        threshold=thr,
        softness=0.12,
        cirrus=cir,
        cirrus_threshold=cthr,
        shadow_shift=cl.shadow_offset_px(d.cloud_height_m, d.sun.elevation_deg, d.sun.azimuth_deg),
        cloud_k=d.air_k - 6.5e-3 * d.cloud_height_m - 2.0,
    )


def slc_off_gaps(rows: NDArray, cols: NDArray) -> NDArray[np.bool_]:
    """Landsat 7 SLC-off gap mask in full-scene pixel coordinates.

    Gaps run along scan lines with a period of about 32 lines; their width grows from 0 at the
    scene centre to about 14 pixels at the swath edges (USGS, "SLC-off products: background").
    """
    cc = FULL_GRID.width / 2
    width = 14.0 * np.abs(cols - cc) / cc
    phase = (rows[:, None] + 0.06 * cols[None, :]) % 32.0
    return phase < width[None, :]


def swath_valid(static: StaticScene, rows: NDArray, cols: NDArray) -> NDArray[np.bool_]:
    """Inside the tilted image swath of a north-up full scene (fill outside; crop: all valid)."""
    g = static.grid
    if g.height <= CROP_GRID.height:
        return np.ones((len(rows), len(cols)), bool)
    yc, xc = g.height / 2, g.width / 2
    ang = math.radians(12.0)
    y = rows[:, None] - yc
    x = cols[None, :] - xc
    u = x * math.cos(ang) + y * math.sin(ang)
    v = -x * math.sin(ang) + y * math.cos(ang)
    return (np.abs(u) < 0.47 * g.width) & (np.abs(v) < 0.47 * g.height)


@dataclass
class StripResult:
    """Arrays of rows [r0, r1) of one scene (before scaling to the product data types)."""

    surface_k: NDArray[np.float32]  # observed surface temperature incl. clouds, K
    qa_pixel: NDArray[np.uint16]
    sigma_k: NDArray[np.float32]
    cdist_km: NDArray[np.float32]
    fill: NDArray[np.bool_]
    emissivity: NDArray[np.float32]
    cloud_any: NDArray[np.bool_]  # affected by cloud, shadow or cirrus (flagged or not)
    cloud_flag: NDArray[np.bool_]


def render_strip(
    static: StaticScene,
    d: SceneDraws,
    cf: CloudField,
    r0: int,
    r1: int,
    window_t: NDArray | None,
    rng: np.random.Generator,
) -> StripResult:
    """Render rows [r0, r1) of the scene: surface temperature, clouds, QA, uncertainty."""
    g = static.grid
    s = max(0.0, math.sin(math.radians(d.sun.elevation_deg)))
    h = r1 - r0
    wr0, wc0 = static.win_row, static.win_col
    wh, ww = static.win_shape
    if static.bg_frac is None:
        t = np.empty((h, g.width), np.float32)
        eps = np.empty((h, g.width), np.float32)
        gain = np.empty((h, g.width), np.float32)
        water = np.zeros((h, g.width), bool)
    else:
        t = _background_rows(static, d, r0, r1, rng)
        rows_c = (np.arange(r0, r1) + 0.5) / COARSE_BG - 0.5
        cols_c = (np.arange(g.width) + 0.5) / COARSE_BG - 0.5
        assert static.bg_eps is not None
        eps = bilinear(static.bg_eps, rows_c, cols_c)
        water = bilinear(static.bg_frac[2], rows_c, cols_c) > 0.5
        gain = np.full((h, g.width), ph.CLASS_SOLAR_GAIN_K[ph.FIELD], np.float32)
    a, b = max(r0, wr0), min(r1, wr0 + wh)
    if window_t is not None and a < b:
        t[a - r0 : b - r0, wc0 : wc0 + ww] = window_t[a - wr0 : b - wr0]
        eps[a - r0 : b - r0, wc0 : wc0 + ww] = static.eps30[a - wr0 : b - wr0]
        gain[a - r0 : b - r0, wc0 : wc0 + ww] = static.gain30[a - wr0 : b - wr0]
        water[a - r0 : b - r0, wc0 : wc0 + ww] = static.water30[a - wr0 : b - wr0]
    # clouds on the strip plus a halo (for dilation, distance and off-strip shadows)
    hr0, hr1 = r0 - HALO_PX, r1 + HALO_PX
    rows = np.arange(hr0, hr1)
    cols = np.arange(-HALO_PX, g.width + HALO_PX)
    rc = (rows + HALO_PX + 0.5) / COARSE_CLOUD - 0.5
    cc = (cols + HALO_PX + 0.5) / COARSE_CLOUD - 0.5
    field = bilinear(cf.field, rc, cc)
    eps_c = cl.cloud_emissivity(field, cf.threshold, cf.softness)
    cloud_h = field > cf.threshold
    dy, dx = cf.shadow_shift
    sfield = bilinear(cf.field, rc - dy / COARSE_CLOUD, cc - dx / COARSE_CLOUD)
    shadow_amt = cl.cloud_emissivity(sfield, cf.threshold, cf.softness)
    core = slice(HALO_PX, HALO_PX + h), slice(HALO_PX, HALO_PX + g.width)
    dil = ndimage.binary_dilation(cloud_h, iterations=cl.DILATION_PX)
    if cloud_h.any():
        dist_km = ndimage.distance_transform_edt(~cloud_h)[core].astype(np.float32) * 0.03
    else:
        dist_km = np.full((h, g.width), 0.03 * HALO_PX + 2.0, np.float32)
    cloud = cloud_h[core]
    dilated = dil[core] & ~cloud
    e = eps_c[core]
    sh = shadow_amt[core] * (1 - e)
    # shade removes most of the solar heating of the ground
    t = t - 0.75 * gain * s * sh
    t = (1 - e) * t + e * cf.cloud_k
    cir_amt = np.zeros_like(t)
    if cf.cirrus is not None:
        cir_amt = 0.35 * np.clip(
            bilinear(cf.cirrus, rc[core[0]], cc[core[1]]) - cf.cirrus_threshold, 0.0, 1.0
        )
        t = (1 - cir_amt) * t + cir_amt * 228.0
    cirrus_flag = cir_amt > 0.03
    shadow_flag = (sh > 0.5) & ~cloud
    fill = ~swath_valid(static, np.arange(r0, r1), np.arange(g.width))
    if d.sensor == "landsat-7" and d.day > SLC_OFF:
        full_r = np.arange(r0, r1) + round((FULL_GRID.y0 - g.y0) / 30.0)
        full_c = np.arange(g.width) + round((g.x0 - FULL_GRID.x0) / 30.0)
        fill |= slc_off_gaps(full_r.astype(float), full_c.astype(float))
    qa = cl.compose_qa_pixel(
        fill=fill,
        cloud=cloud,
        dilated=dilated,
        shadow=shadow_flag,
        cirrus=cirrus_flag,
        water=water,
    )
    humid = (0.93 - d.atm.transmittance) / 0.31
    sigma = 0.8 + 1.2 * humid + 4.0 * np.exp(-dist_km / 0.6) + 12.0 * cir_amt
    return StripResult(
        surface_k=t.astype(np.float32),
        qa_pixel=qa,
        sigma_k=sigma.astype(np.float32),
        cdist_km=dist_km,
        fill=fill,
        emissivity=eps,
        cloud_any=(e > 0.02) | (sh > 0.05) | (cir_amt > 0.005),
        cloud_flag=cloud,
    )
