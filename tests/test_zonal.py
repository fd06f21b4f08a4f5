"""Tests of kaesong_thermal.zonal: exact coverage, background rings and statistics on tiny grids."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import affinity

from kaesong_thermal import zonal

PX = 30.0
ORIGIN_X, ORIGIN_Y = 500_000.0, 4_200_000.0
T = Affine(PX, 0.0, ORIGIN_X, 0.0, -PX, ORIGIN_Y)


def xy(col: float, row: float) -> tuple[float, float]:
    """CRS coordinates of fractional pixel coordinates (col, row) of the grid T."""
    return ORIGIN_X + col * PX, ORIGIN_Y - row * PX


def box_px(c0: float, r0: float, c1: float, r1: float) -> shapely.Polygon:
    """A box given in pixel coordinates (col, row) of the grid T."""
    x0, y0 = xy(c0, r0)
    x1, y1 = xy(c1, r1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def dense(w: zonal.ZonalWeights, i: int, m: str = "coverage") -> np.ndarray:
    return getattr(w, m)[i].toarray().reshape(w.shape)


def test_half_of_two_pixels() -> None:
    # x from the middle of column 1 to the middle of column 3, whole row 2: half of each of
    # pixels (2, 1) and (2, 2)? No: columns 1.5..2.5 -> half of (2,1) and half of (2,2).
    poly = box_px(1.5, 2.0, 2.5, 3.0)
    w = zonal.zonal_weights([poly], T, (6, 6))
    cov = dense(w, 0)
    expected = np.zeros((6, 6))
    expected[2, 1] = expected[2, 2] = 0.5
    np.testing.assert_allclose(cov, expected, atol=1e-12)
    kelvin = np.full((6, 6), 290.0, dtype=np.float32)
    kelvin[2, 1], kelvin[2, 2] = 300.0, 310.0
    sigma = np.full((6, 6), 1.0, dtype=np.float32)
    s = zonal.zonal_statistics(w, kelvin, np.ones((6, 6), bool), sigma, min_ring_px=1)
    assert s["t_roof_k"][0] == pytest.approx(305.0)
    assert s["t_roof_max_k"][0] == pytest.approx(310.0)
    assert s["cover_px"][0] == pytest.approx(1.0)
    assert s["valid_fraction"][0] == pytest.approx(1.0)
    # ring is uniform 290 K: median 290, IQR 0, MAD 0 -> sigma from the roof only:
    # sqrt(0.5^2 * 1 + 0.5^2 * 1) / (0.5 + 0.5) = 0.7071 K
    assert s["t_background_k"][0] == pytest.approx(290.0)
    assert s["t_background_iqr_k"][0] == pytest.approx(0.0)
    assert s["contrast_k"][0] == pytest.approx(15.0)
    assert s["sigma_k"][0] == pytest.approx(np.sqrt(0.5), rel=1e-6)


def test_unequal_partial_coverage() -> None:
    poly = box_px(0.5, 1.0, 2.0, 2.0)  # half of (1, 0), all of (1, 1)
    w = zonal.zonal_weights([poly], T, (4, 4))
    kelvin = np.zeros((4, 4), dtype=np.float32)
    kelvin[1, 0], kelvin[1, 1] = 300.0, 310.0
    s = zonal.zonal_statistics(w, kelvin, min_ring_px=0)
    assert s["t_roof_k"][0] == pytest.approx((0.5 * 300 + 1.0 * 310) / 1.5)
    assert s["cover_px"][0] == pytest.approx(1.5)


def test_rotated_subpixel_square_on_a_corner() -> None:
    # a 45-degree rotated square with half-diagonal 10 m centred on the corner shared by pixels
    # (1,1), (1,2), (2,1), (2,2): area 200 m2, 50 m2 in each pixel
    cx, cy = xy(2.0, 2.0)
    diamond = shapely.Polygon([(cx - 10, cy), (cx, cy + 10), (cx + 10, cy), (cx, cy - 10)])
    w = zonal.zonal_weights([diamond], T, (4, 4))
    cov = dense(w, 0)
    for rc in [(1, 1), (1, 2), (2, 1), (2, 2)]:
        assert cov[rc] == pytest.approx(50.0 / 900.0)
    assert cov.sum() == pytest.approx(200.0 / 900.0)
    kelvin = np.zeros((4, 4), dtype=np.float32)
    kelvin[1, 1], kelvin[1, 2], kelvin[2, 1], kelvin[2, 2] = 300, 302, 304, 310
    s = zonal.zonal_statistics(w, kelvin, min_ring_px=0)
    assert s["t_roof_k"][0] == pytest.approx(304.0)
    assert s["t_roof_max_k"][0] == pytest.approx(310.0)
    assert s["cover_px"][0] == pytest.approx(2.0 / 9.0)


def test_rotated_subpixel_square_across_a_row_edge() -> None:
    # diamond centred 5 m below the top edge of pixel (1, 1): the triangle above that edge has
    # base 10 m and height 5 m (25 m2) and falls in pixel (0, 1); the other 175 m2 in (1, 1)
    x, y = xy(1.0 + 1.0 / 3.0, 1.0)
    cx, cy = x, y - 5.0
    diamond = affinity.rotate(
        shapely.box(cx - 7.0710678, cy - 7.0710678, cx + 7.0710678, cy + 7.0710678), 45
    )
    w = zonal.zonal_weights([diamond], T, (3, 3))
    cov = dense(w, 0)
    assert cov[0, 1] == pytest.approx(25.0 / 900.0, rel=1e-6)
    assert cov[1, 1] == pytest.approx(175.0 / 900.0, rel=1e-6)
    kelvin = np.zeros((3, 3), dtype=np.float32)
    kelvin[0, 1], kelvin[1, 1] = 320.0, 300.0
    s = zonal.zonal_statistics(w, kelvin, min_ring_px=0)
    assert s["t_roof_k"][0] == pytest.approx((25 * 320 + 175 * 300) / 200.0, rel=1e-7)


def test_polygon_across_a_nodata_pixel() -> None:
    poly = box_px(1.0, 1.0, 3.5, 2.0)  # (1,1) and (1,2) fully, half of (1,3)
    w = zonal.zonal_weights([poly], T, (4, 5))
    kelvin = np.full((4, 5), 290.0, dtype=np.float32)
    kelvin[1, 1], kelvin[1, 2], kelvin[1, 3] = 300.0, np.nan, 306.0
    valid = np.isfinite(kelvin)
    s = zonal.zonal_statistics(w, kelvin, valid, min_ring_px=0)
    assert s["cover_px"][0] == pytest.approx(2.5)
    assert s["valid_fraction"][0] == pytest.approx(1.5 / 2.5)
    assert s["t_roof_k"][0] == pytest.approx((300.0 + 0.5 * 306.0) / 1.5)
    assert s["t_roof_max_k"][0] == pytest.approx(306.0)
    # the same pixel flagged invalid while holding a finite value is ignored too
    kelvin2 = kelvin.copy()
    kelvin2[1, 2] = 999.0
    s2 = zonal.zonal_statistics(w, kelvin2, valid, min_ring_px=0)
    assert s2["t_roof_k"][0] == pytest.approx(s["t_roof_k"][0])
    assert s2["t_roof_max_k"][0] == pytest.approx(306.0)
    # below min_valid_fraction: temperatures NaN, measured fractions kept
    s3 = zonal.zonal_statistics(w, kelvin, valid, min_valid_fraction=0.7, min_ring_px=0)
    assert np.isnan(s3["t_roof_k"][0]) and np.isnan(s3["contrast_k"][0])
    assert s3["valid_fraction"][0] == pytest.approx(0.6)


def test_ring_crossing_another_footprint() -> None:
    a = box_px(5, 5, 6, 6)  # pixel (5, 5)
    b = box_px(7, 5, 8, 6)  # pixel (5, 7): inside A's ring
    shape = (11, 11)
    # inner 0, outer 60 m: centres within 60 m of A's square are the 5x5 block around it minus
    # its 4 corners (corner centres are 45*sqrt(2) = 63.6 m away) and minus A itself: 20 pixels.
    w0 = zonal.zonal_weights(
        [a, b], T, shape, ring_inner_m=0.0, ring_outer_m=60.0, exclusion_margin_m=0.0
    )
    ring_a = dense(w0, 0, "ring").astype(bool)
    expected = np.zeros(shape, bool)
    expected[3:8, 3:8] = True
    for rc in [(3, 3), (3, 7), (7, 3), (7, 7), (5, 5), (5, 7)]:  # corners, A itself, B
        expected[rc] = False
    np.testing.assert_array_equal(ring_a, expected)
    # margin 30 m: the 3x3 blocks around A and around B touch a buffered footprint (pixels two
    # away are exactly 30 m from it and only share an edge with the buffer, so they stay)
    w = zonal.zonal_weights(
        [a, b], T, shape, ring_inner_m=0.0, ring_outer_m=60.0, exclusion_margin_m=30.0
    )
    ring_a = dense(w, 0, "ring").astype(bool)
    expected[4:7, 4:7] = False
    expected[4:7, 6:9] = False
    np.testing.assert_array_equal(ring_a, expected)
    assert ring_a.sum() == 9
    # B's hot surroundings do not leak into A's background
    rows, cols = np.indices(shape)
    kelvin = (280.0 + rows + 0.1 * cols).astype(np.float32)
    kelvin[4:7, 6:9] = 400.0
    s = zonal.zonal_statistics(w, kelvin, min_ring_px=1)
    ring_vals = kelvin[expected].astype(np.float64)
    assert s["ring_valid_px"][0] == 9
    assert s["t_background_k"][0] == pytest.approx(np.median(ring_vals), abs=1e-6)
    q75, q25 = np.percentile(ring_vals, [75, 25])
    assert s["t_background_iqr_k"][0] == pytest.approx(q75 - q25, abs=1e-6)
    assert s["t_background_k"][0] < 300.0
    # an invalid ring pixel is dropped from the count
    valid = np.ones(shape, bool)
    valid[3, 5] = False
    s2 = zonal.zonal_statistics(w, kelvin, valid, min_ring_px=1)
    assert s2["ring_valid_px"][0] == 8
    # too few ring pixels -> NaN temperatures, count kept
    s3 = zonal.zonal_statistics(w, kelvin, valid, min_ring_px=9)
    assert np.isnan(s3["t_background_k"][0]) and s3["ring_valid_px"][0] == 8


def test_ring_sigma_formula() -> None:
    # roof without ST_QA -> NEdT; ring spread from the MAD: sqrt(pi/2) * 1.4826 * MAD / sqrt(n)
    a = box_px(5, 5, 6, 6)
    w = zonal.zonal_weights(
        [a], T, (11, 11), ring_inner_m=0.0, ring_outer_m=60.0, exclusion_margin_m=0.0
    )
    rng = np.random.default_rng(3)
    kelvin = (290.0 + rng.normal(0, 2, (11, 11))).astype(np.float32)
    s = zonal.zonal_statistics(w, kelvin, nedt_k=0.4, min_ring_px=1)
    ring = dense(w, 0, "ring").astype(bool)
    vals = kelvin[ring].astype(np.float64)
    med = np.median(vals)
    mad = np.median(np.abs(vals - med))
    s_bg = np.sqrt(np.pi / 2) * 1.4826 * mad / np.sqrt(vals.size)
    assert s["sigma_k"][0] == pytest.approx(np.sqrt(0.4**2 + s_bg**2), rel=1e-6)
    assert s["contrast_k"][0] == pytest.approx(kelvin[5, 5] - med, abs=1e-5)


def test_outside_grid_and_empty_geometries() -> None:
    far = box_px(100, 100, 101, 101)
    half_out = box_px(-0.5, 0, 0.5, 1)  # half outside the grid
    w = zonal.zonal_weights([far, shapely.Polygon(), None, half_out], T, (4, 4))
    s = zonal.zonal_statistics(w, np.full((4, 4), 300.0), min_ring_px=0)
    assert s["valid_fraction"][:3].tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(s["t_roof_k"][:3]).all()
    assert s["cover_px"][0] == pytest.approx(1.0)
    assert s["cover_px"][3] == pytest.approx(1.0)
    assert s["valid_fraction"][3] == pytest.approx(0.5)
    assert s["t_roof_k"][3] == pytest.approx(300.0)


def test_grid_checks() -> None:
    with pytest.raises(zonal.GridError, match="rotated"):
        zonal.coverage_matrix([box_px(0, 0, 1, 1)], Affine.rotation(10) @ T, (2, 2))
    w = zonal.zonal_weights([box_px(0, 0, 1, 1)], T, (2, 2))
    with pytest.raises(zonal.GridError, match="does not match"):
        zonal.zonal_statistics(w, np.zeros((3, 3)))
    with pytest.raises(zonal.GridError, match="ring radii"):
        zonal.ring_matrix([box_px(0, 0, 1, 1)], T, (2, 2), ring_inner_m=50, ring_outer_m=40)


# --- invariants -------------------------------------------------------------------------------

polygons = st.builds(
    lambda cx, cy, wpx, hpx, angle: affinity.rotate(
        box_px(cx - wpx / 2, cy - hpx / 2, cx + wpx / 2, cy + hpx / 2), angle
    ),
    st.floats(3.0, 9.0),
    st.floats(3.0, 9.0),
    st.floats(0.05, 3.0),
    st.floats(0.05, 3.0),
    st.floats(0.0, 90.0),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(poly=polygons, seed=st.integers(0, 2**16))
def test_roof_between_min_and_max_of_touched_pixels(poly: shapely.Polygon, seed: int) -> None:
    rng = np.random.default_rng(seed)
    kelvin = rng.uniform(250, 350, (12, 12)).astype(np.float32)
    valid = rng.random((12, 12)) > 0.2
    w = zonal.zonal_weights([poly], T, (12, 12))
    s = zonal.zonal_statistics(w, kelvin, valid, min_valid_fraction=0.0, min_ring_px=0)
    touched = (dense(w, 0) > 0) & valid
    if touched.any():
        assert kelvin[touched].min() - 1e-4 <= s["t_roof_k"][0] <= kelvin[touched].max() + 1e-4
        assert s["t_roof_max_k"][0] == pytest.approx(kelvin[touched].max())
    else:
        assert np.isnan(s["t_roof_k"][0])
    assert s["cover_px"][0] == pytest.approx(poly.area / PX**2)


@settings(max_examples=40, deadline=None)
@given(poly=polygons, value=st.floats(200.0, 350.0))
def test_constant_raster_gives_zero_contrast(poly: shapely.Polygon, value: float) -> None:
    w = zonal.zonal_weights([poly], T, (16, 16), ring_inner_m=30.0, ring_outer_m=120.0)
    kelvin = np.full((16, 16), value, dtype=np.float32)
    s = zonal.zonal_statistics(w, kelvin, min_ring_px=1)
    assert s["contrast_k"][0] == pytest.approx(0.0, abs=1e-5)
    assert s["t_background_iqr_k"][0] == pytest.approx(0.0, abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(poly=polygons, dr=st.integers(-50, 50), dc=st.integers(-50, 50), seed=st.integers(0, 99))
def test_whole_pixel_shift_changes_nothing(
    poly: shapely.Polygon, dr: int, dc: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    kelvin = rng.uniform(280, 320, (14, 14)).astype(np.float32)
    kw = {"ring_inner_m": 30.0, "ring_outer_m": 90.0, "exclusion_margin_m": 15.0}
    s0 = zonal.zonal_statistics(
        zonal.zonal_weights([poly], T, (14, 14), **kw), kelvin, min_ring_px=1
    )
    shifted_t = Affine.translation(dc * PX, -dr * PX) @ T
    moved = affinity.translate(poly, dc * PX, -dr * PX)
    s1 = zonal.zonal_statistics(
        zonal.zonal_weights([moved], shifted_t, (14, 14), **kw), kelvin, min_ring_px=1
    )
    for key in zonal.STAT_COLUMNS:
        np.testing.assert_allclose(s1[key], s0[key], rtol=0, atol=1e-7, equal_nan=True)


def _psf_scene(polys: list[shapely.Polygon], excess: list[float], shape: tuple[int, int]) -> tuple:
    """A 290 K scene with each roof's excess blurred by the model PSF (as the estimator assumes)."""
    w = zonal.zonal_weights(polys, T, shape)
    assert w.psf is not None
    img = np.full(shape[0] * shape[1], 290.0)
    img[w.psf.pixels] += np.asarray(excess) @ w.psf.footprint.toarray()
    return w, img.reshape(shape)


def test_psf_kernel_is_normalised_and_wider_than_the_native_pixel() -> None:
    k = zonal.psf_kernel(T, native_pixel_m=100.0, fwhm_native=1.05)
    assert k.shape[0] % 2 == 1 and k.shape == k.shape[::-1]
    assert k.sum() == pytest.approx(1.0)
    c = k.shape[0] // 2
    assert k[c, c] == k.max()
    np.testing.assert_allclose(k, k[::-1, ::-1])  # symmetric
    # Gaussian of FWHM 105 m alone: the resampling kernel widens it at half maximum
    g = zonal.system_psf_1d(np.array([0.0, 52.5]), 100.0, 1.05, resampling=None)
    assert g[1] / g[0] == pytest.approx(0.5)
    gc = zonal.system_psf_1d(np.array([0.0, 52.5]), 100.0, 1.05, resampling="cubic")
    assert gc[1] / gc[0] > 0.5
    # Keys' kernel: 1 at 0, 0 at whole samples, -0.0625 at 1.5 samples (a = -0.5)
    np.testing.assert_allclose(zonal.keys_cubic([0.0, 1.0, 2.0, 1.5]), [1.0, 0.0, 0.0, -0.0625])


def test_psf_excess_recovers_a_blurred_roof_and_keeps_the_mean() -> None:
    # a 60 x 60 m roof (0.36 of a native pixel) 5 K warmer than its 290 K surroundings
    poly = box_px(10, 10, 12, 12)
    w, kelvin = _psf_scene([poly], [5.0], (24, 24))
    s = zonal.zonal_statistics(w, kelvin, min_ring_px=1)
    # contrast_k is the diluted coverage-weighted mean: sum(c f) / sum(c) x 5 K
    cov = w.coverage[0].toarray().ravel()
    f_full = np.zeros(24 * 24)
    f_full[w.psf.pixels] = w.psf.footprint[0].toarray().ravel()
    assert s["t_roof_k"][0] == pytest.approx(290.0 + 5.0 * (cov @ f_full) / cov.sum(), abs=1e-9)
    assert s["contrast_k"][0] < 1.5
    # the PSF estimator undoes the dilution (the ring median is 290 K up to the PSF tail)
    assert s["excess_k"][0] == pytest.approx(5.0, abs=0.05)
    assert s["excess_sigma_k"][0] > 0


def test_psf_excess_separates_two_adjacent_hot_roofs() -> None:
    # two 60 x 60 m roofs 75 m apart (edge to edge 15 m), 6 K and 0 K: the cold one's contrast
    # is raised by its neighbour's spill, the joint estimate gives it back to the neighbour
    a = box_px(8, 10, 10, 12)
    b = box_px(10.5, 10, 12.5, 12)
    w, kelvin = _psf_scene([a, b], [6.0, 0.0], (24, 24))
    s = zonal.zonal_statistics(w, kelvin, min_ring_px=1)
    assert s["contrast_k"][1] > 0.4  # leaked heat: 6 K x about 0.08
    assert s["excess_k"][0] == pytest.approx(6.0, abs=0.1)
    assert s["excess_k"][1] == pytest.approx(0.0, abs=0.1)
    assert len(w.psf.components) == 1 and sorted(w.psf.components[0].tolist()) == [0, 1]


def test_psf_excess_of_a_clouded_roof_is_nan_and_without_psf_model_nan() -> None:
    poly = box_px(10, 10, 12, 12)
    w, kelvin = _psf_scene([poly], [5.0], (24, 24))
    valid = np.ones((24, 24), bool)
    valid[9:13, 9:13] = False
    s = zonal.zonal_statistics(w, kelvin, valid, min_ring_px=1)
    assert np.isnan(s["excess_k"][0]) and np.isnan(s["excess_sigma_k"][0])
    w0 = zonal.zonal_weights([poly], T, (24, 24), native_pixel_m=None)
    s0 = zonal.zonal_statistics(w0, kelvin, min_ring_px=1)
    assert w0.psf is None and np.isnan(s0["excess_k"][0])
    assert s0["t_roof_k"][0] == pytest.approx(
        zonal.zonal_statistics(w, kelvin, min_ring_px=1)["t_roof_k"][0]
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_ring_order_statistics_equal_numpy_per_building(dtype: type) -> None:
    # rings of 0 to ~300 pixels (several row widths of the padded layout), random invalid pixels:
    # median, IQR and MAD of every ring equal numpy's on that ring's valid pixels
    rng = np.random.default_rng(11)
    shape = (60, 60)
    geoms = [box_px(5, 5, 6, 6), box_px(30, 20, 31.5, 21), box_px(40, 40, 52, 50)]
    geoms += [box_px(c, r, c + 0.4, r + 0.3) for c, r in rng.uniform(2, 57, (12, 2))]
    geoms.append(box_px(200, 200, 201, 201))  # outside: empty ring
    w = zonal.zonal_weights(geoms, T, shape, ring_inner_m=30.0, ring_outer_m=120.0)
    kelvin = rng.uniform(270, 320, shape).astype(dtype)
    valid = rng.random(shape) > 0.2
    s = zonal.zonal_statistics(w, kelvin, valid, min_ring_px=0, min_valid_fraction=0.0)
    sizes = np.diff(w.ring.indptr)
    assert sizes.max() > 128 and sizes[-1] == 0 and len(np.unique(sizes)) > 5
    flat_k = kelvin.reshape(-1).astype(np.float64)
    flat_v = valid.reshape(-1)
    checked = 0
    for i in range(len(geoms)):
        pix = w.ring[i].indices
        vals = flat_k[pix[flat_v[pix]]]
        assert s["ring_valid_px"][i] == len(vals)
        if len(vals) == 0:
            assert np.isnan(s["t_background_k"][i]) and np.isnan(s["t_background_iqr_k"][i])
            continue
        if s["valid_fraction"][i] == 0.0:  # roof fully invalid: temperatures NaN by design
            continue
        med = np.median(vals)
        q25, q75 = np.percentile(vals, [25, 75])
        mad = np.median(np.abs(vals - med))
        assert s["t_background_k"][i] == pytest.approx(med, abs=1e-9)
        assert s["t_background_iqr_k"][i] == pytest.approx(q75 - q25, abs=1e-9)
        # sigma = sqrt(s_roof^2 + s_bg^2): NEdT 0.4 K on the roof, MAD of the ring
        c = w.coverage[i].toarray().reshape(-1) * flat_v
        s_roof = 0.4 * np.sqrt((c**2).sum()) / c.sum()
        s_bg = np.sqrt(np.pi / 2) * 1.4826 * mad / np.sqrt(len(vals))
        assert s["sigma_k"][i] == pytest.approx(np.sqrt(s_roof**2 + s_bg**2), rel=1e-9)
        checked += 1
    assert checked >= 8
    # the layout holds each ring pixel once and every entry of every ring
    layout = w.ring_layout
    assert layout is not None
    np.testing.assert_array_equal(layout.pixels, np.unique(w.ring.indices))
    total = sum(int((src < len(layout.pixels)).sum()) for src in layout.sources)
    assert total == w.ring.nnz
