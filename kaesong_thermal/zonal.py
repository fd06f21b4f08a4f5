"""Per-building zonal statistics on a thermal pixel grid: exact coverage, clean background rings.

Pure numpy/scipy/shapely on arrays and an affine transform; nothing here opens a file.

Two steps, split so that the expensive geometry is done once per pixel grid:

1. :func:`zonal_weights` (geometry, once per grid): the exact coverage matrix ``W``
   (buildings x pixels, CSR; ``W[i, p]`` = area of footprint ``i`` inside pixel ``p`` / pixel area)
   and the background ring matrix ``R`` (buildings x pixels, CSR of ones).
2. :func:`zonal_statistics` (arithmetic, once per scene): one sparse mat-vec for the
   coverage-weighted sums, row-wise sorts of the rings laid out as padded rows
   (:class:`RingLayout`, a handful of size buckets) for the ring medians/quartiles/MAD. No Python
   loop over buildings.

The coverage-weighted mean is the one of exactextract [1]_ (``mean`` = sum(c x) / sum(c) over the
valid pixels, ``c`` the covered fraction of each pixel): polygons smaller than a pixel keep their
value instead of being dropped as with a pixel-centre rule [2]_.

References
----------
.. [1] D. Baston, "exactextract: fast and accurate raster zonal statistics",
   https://github.com/isciences/exactextract (documentation, "Operations": ``mean``).
.. [2] M. T. Perry, "python-rasterstats", https://github.com/perrygeo/python-rasterstats
   (``all_touched=False`` uses the pixel-centre rule of GDAL rasterization).
.. [3] P. J. Rousseeuw and C. Croux, "Alternatives to the median absolute deviation",
   J. Am. Stat. Assoc. 88(424), 1273-1283, 1993 (MAD x 1.4826 estimates a normal sigma).
.. [4] J. F. Kenney and E. S. Keeping, "Mathematics of Statistics", Part 2, 2nd ed., Van Nostrand,
   1951, section 7.13 (standard error of the median of a normal sample: sqrt(pi/2) sigma / sqrt(n)).
.. [5] J. R. Irons, J. L. Dwyer and J. A. Barsi, "The next Landsat satellite: the Landsat Data
   Continuity Mission", Remote Sens. Environ. 122, 11-21, 2012 (TIRS NEdT requirement 0.4 K at
   300 K).
.. [6] B. N. Wenny, D. Helder, J. Hong, L. Leigh, K. J. Thome and D. Reuter, "Pre- and post-launch
   spatial quality of the Landsat 8 Thermal Infrared Sensor", Remote Sens. 7(2), 1962-1980, 2015
   (TIRS edge response: a system line spread about one 100 m native sample wide at half maximum).
.. [7] R. G. Keys, "Cubic convolution interpolation for digital image processing", IEEE Trans.
   Acoust. Speech Signal Process. 29(6), 1153-1160, 1981 (the a = -0.5 kernel of the Landsat
   Level-1 cubic-convolution resampling).
.. [8] S. M. Kay, "Fundamentals of Statistical Signal Processing: Estimation Theory", Prentice
   Hall, 1993, ch. 4 (linear model, least squares / matched filter, sandwich covariance).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from kaesong_thermal.errors import KaesongThermalError

logger = logging.getLogger(__name__)

#: Default 1-sigma per-pixel noise when no ST_QA uncertainty is available, K (TIRS NEdT [5]_).
DEFAULT_NEDT_K = 0.4
#: MAD -> sigma of a normal distribution [3]_.
MAD_TO_SIGMA = 1.4826
#: Standard error of a median relative to that of a mean, normal sample [4]_.
MEDIAN_SE_FACTOR = float(np.sqrt(np.pi / 2.0))
#: Pixel/footprint pairs handled per vectorised shapely call (bounds the temporary memory).
_CHUNK_PAIRS = 200_000
#: Tolerance in CRS units: a pixel whose edge only touches the exclusion buffer is not excluded.
_TOUCH_EPS = 1e-6
#: Narrowest padded row of :class:`RingLayout` (fewer, larger row-wise sorts).
_MIN_ROW_WIDTH = 8

#: Names of the per-building statistics returned by :func:`zonal_statistics`.
STAT_COLUMNS = (
    "t_roof_k",
    "t_roof_max_k",
    "t_background_k",
    "t_background_iqr_k",
    "contrast_k",
    "sigma_k",
    "cover_px",
    "valid_fraction",
    "ring_valid_px",
    "excess_k",
    "excess_sigma_k",
    "ring_hot_sector_k",
    "ring_hot_sector",
)

#: Quadrants of a background ring, by the direction from the footprint's centre (``ring_hot_sector``
#: codes 0-3).
RING_SECTORS = ("east", "north", "west", "south")
#: Fewest valid pixels for a ring quadrant's median to count.
MIN_SECTOR_PX = 3

#: Default system point spread of the thermal band: full width at half maximum in native samples
#: (Landsat 8/9 TIRS edge response, [6]_).
DEFAULT_PSF_FWHM_NATIVE = 1.05
#: Default native sampling of the thermal band, CRS units (TIRS, 100 m).
DEFAULT_NATIVE_PIXEL_M = 100.0
#: Kernel entries below this share of the peak are dropped.
_PSF_TRUNCATE = 1e-3
#: Relative ridge added to the normal equations (numerical safety only).
_RIDGE = 1e-9

FloatArray = npt.NDArray[np.float64]


class GridError(KaesongThermalError, ValueError):
    """A pixel grid (transform, shape) cannot be used for zonal statistics."""


@dataclass(frozen=True)
class ZonalWeights:
    """Coverage and ring matrices of a set of footprints on one pixel grid.

    Attributes
    ----------
    coverage : scipy.sparse.csr_matrix
        Buildings x pixels (row-major flat index ``row * width + col``), float64 covered fraction
        of each pixel (area of the footprint inside the pixel / pixel area), in [0, 1].
    ring : scipy.sparse.csr_matrix
        Buildings x pixels, 1 where the pixel belongs to the building's background ring.
    cover_px : numpy.ndarray
        Footprint area in pixels (the sum of coverage fractions, including any part outside the
        grid), float64, one per building.
    transform : affine.Affine
        The grid's affine transform.
    shape : tuple of int
        The grid's (height, width).
    coverage_pixels : numpy.ndarray
        Sorted flat indices of the pixels touched by any footprint.
    coverage_compact, coverage_sq_compact : scipy.sparse.csr_matrix
        ``coverage`` restricted to the columns ``coverage_pixels`` and its element-wise square
        (the per-scene products only touch those pixels).
    ring_rows : numpy.ndarray
        Building (row) index of every stored entry of ``ring``.
    psf : PsfModel or None
        Expected pixel footprints for :func:`psf_excess` (None: no PSF estimate).
    ring_layout : RingLayout or None
        The ring entries laid out as padded rows (:func:`ring_layout`) for the per-scene order
        statistics; built on the fly when None.
    sectors : scipy.sparse.csr_matrix or None
        The four quadrants of every ring (:func:`ring_sector_matrix`, row ``4 * building +
        quadrant``); None: no quadrant statistics (NaN).
    """

    coverage: sparse.csr_matrix
    ring: sparse.csr_matrix
    cover_px: FloatArray
    transform: Affine
    shape: tuple[int, int]
    coverage_pixels: npt.NDArray[np.int64]
    coverage_compact: sparse.csr_matrix
    coverage_sq_compact: sparse.csr_matrix
    ring_rows: npt.NDArray[np.int32]
    psf: PsfModel | None = None
    ring_layout: RingLayout | None = None
    sectors: sparse.csr_matrix | None = None

    @property
    def n_buildings(self) -> int:
        """Number of buildings (rows)."""
        return int(self.coverage.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by the matrices and index arrays, bytes."""
        total = self.coverage_pixels.nbytes + self.ring_rows.nbytes + self.cover_px.nbytes
        for m in (self.coverage, self.ring, self.coverage_compact, self.coverage_sq_compact):
            total += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        if self.psf is not None:
            total += self.psf.nbytes
        if self.ring_layout is not None:
            total += self.ring_layout.nbytes
        if self.sectors is not None:
            total += self.sectors.data.nbytes + self.sectors.indices.nbytes
            total += self.sectors.indptr.nbytes
        return total


@dataclass(frozen=True)
class RingLayout:
    """Ring entries of every building as padded rows, so one row-wise sort orders each ring.

    Buildings are grouped by ring size into buckets of width a power of two (at least
    :data:`_MIN_ROW_WIDTH`); in a bucket, row ``i`` lists building ``rows[i]``'s ring pixels as
    positions in ``pixels``, padded with ``len(pixels)`` (a slot that holds +inf per scene).

    Attributes
    ----------
    pixels : numpy.ndarray
        Sorted flat indices of every pixel in any ring (rings overlap: each is read once).
    rows : tuple of numpy.ndarray
        Building indices of each bucket.
    sources : tuple of numpy.ndarray
        ``(len(rows), width)`` positions in ``pixels`` of each bucket's ring pixels.
    """

    pixels: npt.NDArray[np.int64]
    rows: tuple[npt.NDArray[np.int64], ...]
    sources: tuple[npt.NDArray[np.intp], ...]

    @property
    def nbytes(self) -> int:
        """Memory held by the index arrays, bytes."""
        return (
            self.pixels.nbytes
            + sum(a.nbytes for a in self.rows)
            + sum(a.nbytes for a in self.sources)
        )


def ring_layout(ring: sparse.csr_matrix) -> RingLayout:
    """Padded-row layout of the entries of a ring matrix (see :class:`RingLayout`)."""
    indptr = np.asarray(ring.indptr, dtype=np.int64)
    sizes = np.diff(indptr)
    pixels, inverse = np.unique(np.asarray(ring.indices, dtype=np.int64), return_inverse=True)
    entry_pos = np.append(inverse.astype(np.intp), len(pixels))
    pad_entry = len(entry_pos) - 1
    width = np.maximum(_MIN_ROW_WIDTH, 2 ** np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64))
    rows: list[npt.NDArray[np.int64]] = []
    sources: list[npt.NDArray[np.intp]] = []
    for wb in np.unique(width[sizes > 0]):
        r = np.flatnonzero((width == wb) & (sizes > 0)).astype(np.int64)
        cols = np.arange(int(wb), dtype=np.int64)[None, :]
        entries = indptr[r][:, None] + cols
        entries[cols >= sizes[r][:, None]] = pad_entry
        rows.append(r)
        sources.append(entry_pos[entries])
    return RingLayout(pixels=pixels, rows=tuple(rows), sources=tuple(sources))


def _check_grid(transform: Affine, shape: tuple[int, int]) -> tuple[float, float]:
    """Return the absolute pixel sizes (x, y) of a north-up grid or raise :class:`GridError`."""
    if transform.b != 0.0 or transform.d != 0.0:
        raise GridError(f"grid transform {tuple(transform)[:6]} is rotated; need a north-up grid")
    if transform.a == 0.0 or transform.e == 0.0:
        raise GridError(f"grid transform {tuple(transform)[:6]} has a zero pixel size")
    if len(shape) != 2 or shape[0] < 0 or shape[1] < 0:
        raise GridError(f"grid shape {shape} is not a (height, width) pair")
    return abs(transform.a), abs(transform.e)


def _to_pixel(transform: Affine, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Fractional (col, row) of CRS coordinates on a north-up grid."""
    return (x - transform.c) / transform.a, (y - transform.f) / transform.e


def _pixel_ranges(
    bounds: FloatArray, transform: Affine, shape: tuple[int, int], pad: float = 0.0
) -> tuple[npt.NDArray[np.int64], ...]:
    """Row/column ranges [r0, r1) x [c0, c1) of the pixels meeting each bounding box (+ pad).

    ``bounds`` is (n, 4) xmin, ymin, xmax, ymax in CRS units. Ranges are clipped to the grid.
    """
    empty = np.asarray(~np.isfinite(bounds).all(axis=1), dtype=bool)
    bounds = np.where(empty[:, None], 0.0, bounds)
    xmin, ymin, xmax, ymax = (bounds[:, k] - (pad if k < 2 else -pad) for k in range(4))
    ca, ra = _to_pixel(transform, xmin, ymin)
    cb, rb = _to_pixel(transform, xmax, ymax)
    c_lo, c_hi = np.minimum(ca, cb), np.maximum(ca, cb)
    r_lo, r_hi = np.minimum(ra, rb), np.maximum(ra, rb)
    h, w = shape
    c0 = np.clip(np.floor(c_lo), 0, w).astype(np.int64)
    c1 = np.clip(np.ceil(c_hi), 0, w).astype(np.int64)
    r0 = np.clip(np.floor(r_lo), 0, h).astype(np.int64)
    r1 = np.clip(np.ceil(r_hi), 0, h).astype(np.int64)
    # a degenerate (zero-width) box still needs its one pixel
    c1 = np.where((c1 == c0) & (c0 < w), c0 + 1, c1)
    r1 = np.where((r1 == r0) & (r0 < h), r0 + 1, r1)
    c1 = np.where(empty, c0, c1)
    return r0, r1, c0, c1


def _expand_ranges(
    r0: npt.NDArray[np.int64],
    r1: npt.NDArray[np.int64],
    c0: npt.NDArray[np.int64],
    c1: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """All (item, row, col) triples of the per-item pixel rectangles, vectorised."""
    nr = np.maximum(r1 - r0, 0)
    nc = np.maximum(c1 - c0, 0)
    counts = nr * nc
    item = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    start = np.cumsum(counts) - counts
    local = np.arange(int(counts.sum()), dtype=np.int64) - start[item]
    ncol = np.maximum(nc[item], 1)
    row = r0[item] + local // ncol
    col = c0[item] + local % ncol
    return item, row, col


def _pixel_boxes(
    row: npt.NDArray[np.int64], col: npt.NDArray[np.int64], transform: Affine
) -> npt.NDArray[np.object_]:
    """Shapely boxes of pixels (row, col) in CRS coordinates (north-up grid)."""
    x0 = transform.c + col * transform.a
    x1 = x0 + transform.a
    y0 = transform.f + row * transform.e
    y1 = y0 + transform.e
    return shapely.box(
        np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)
    )


def coverage_matrix(
    geometries: Any, transform: Affine, shape: tuple[int, int]
) -> tuple[sparse.csr_matrix, FloatArray]:
    """Exact coverage fractions of polygons on a pixel grid, as a sparse matrix.

    Parameters
    ----------
    geometries : array_like of shapely geometries
        Footprints in the grid's CRS (None or empty allowed: an empty row).
    transform : affine.Affine
        North-up affine transform of the grid (CRS units).
    shape : tuple of int
        Grid (height, width).

    Returns
    -------
    coverage : scipy.sparse.csr_matrix
        (n, height * width) float64; entry = area(footprint ∩ pixel) / pixel area, computed with
        shapely (GEOS) vectorised intersections; only pixels with a positive fraction are stored.
    cover_px : numpy.ndarray
        Footprint area / pixel area (float64), i.e. the sum of the fractions including any part of
        the footprint outside the grid.

    Notes
    -----
    Same definition of coverage as exactextract [1]_.
    """
    px, py = _check_grid(transform, shape)
    pixel_area = px * py
    geoms = np.asarray(geometries, dtype=object)
    n = len(geoms)
    h, w = shape
    cover_px = np.where(shapely.is_missing(geoms), 0.0, shapely.area(geoms)) / pixel_area
    bounds = shapely.bounds(geoms)
    r0, r1, c0, c1 = _pixel_ranges(bounds, transform, shape)
    item, row, col = _expand_ranges(r0, r1, c0, c1)
    frac = np.empty(len(item), dtype=np.float64)
    for s in range(0, len(item), _CHUNK_PAIRS):
        sl = slice(s, s + _CHUNK_PAIRS)
        boxes = _pixel_boxes(row[sl], col[sl], transform)
        frac[sl] = shapely.area(shapely.intersection(geoms[item[sl]], boxes)) / pixel_area
    keep = frac > 0.0
    mat = sparse.csr_matrix(
        (np.minimum(frac[keep], 1.0), (item[keep], row[keep] * w + col[keep])),
        shape=(n, h * w),
        dtype=np.float64,
    )
    mat.sum_duplicates()
    mat.sort_indices()
    return mat, cover_px


def exclusion_mask(
    geometries: Any, transform: Affine, shape: tuple[int, int], margin_m: float
) -> npt.NDArray[np.bool_]:
    """Pixels that touch any footprint buffered by ``margin_m``.

    A pixel is excluded when its square comes closer than ``margin_m`` to a footprint, i.e. it
    overlaps (with positive area) the footprint's exact Minkowski buffer. A pixel merely sharing an
    edge with the buffer is kept.

    Parameters
    ----------
    geometries : array_like of shapely geometries
        Footprints in the grid's CRS.
    transform : affine.Affine
        North-up grid transform.
    shape : tuple of int
        Grid (height, width).
    margin_m : float
        Buffer distance in CRS units (metres for UTM).

    Returns
    -------
    numpy.ndarray
        Boolean (height, width), True where excluded.
    """
    _check_grid(transform, shape)
    geoms = np.asarray(geometries, dtype=object)
    geoms = geoms[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)]
    h, w = shape
    mask = np.zeros(h * w, dtype=bool)
    if len(geoms) == 0 or h == 0 or w == 0:
        return mask.reshape(shape)
    r0, r1, c0, c1 = _pixel_ranges(shapely.bounds(geoms), transform, shape, pad=margin_m)
    cand = _union_of_ranges(r0, r1, c0, c1, shape)
    flat = np.flatnonzero(cand)
    tree = shapely.STRtree(geoms)
    dist = max(margin_m - _TOUCH_EPS, 0.0)
    for s in range(0, len(flat), _CHUNK_PAIRS):
        f = flat[s : s + _CHUNK_PAIRS]
        boxes = _pixel_boxes(f // w, f % w, transform)
        if dist > 0.0:
            hit = tree.query(boxes, predicate="dwithin", distance=dist)[0]
        else:
            pairs = tree.query(boxes, predicate="intersects")
            touch = shapely.touches(boxes[pairs[0]], geoms[pairs[1]])
            hit = pairs[0][~touch]
        mask[f[np.unique(hit)]] = True
    return mask.reshape(shape)


def _union_of_ranges(
    r0: npt.NDArray[np.int64],
    r1: npt.NDArray[np.int64],
    c0: npt.NDArray[np.int64],
    c1: npt.NDArray[np.int64],
    shape: tuple[int, int],
) -> npt.NDArray[np.bool_]:
    """Boolean grid of the union of pixel rectangles (2-D difference array + cumulative sums)."""
    h, w = shape
    ok = (r1 > r0) & (c1 > c0)
    d = np.zeros((h + 1, w + 1), dtype=np.int32)
    np.add.at(d, (r0[ok], c0[ok]), 1)
    np.add.at(d, (r0[ok], c1[ok]), -1)
    np.add.at(d, (r1[ok], c0[ok]), -1)
    np.add.at(d, (r1[ok], c1[ok]), 1)
    return np.cumsum(np.cumsum(d, axis=0), axis=1)[:h, :w] > 0


def ring_matrix(
    geometries: Any,
    transform: Affine,
    shape: tuple[int, int],
    *,
    ring_inner_m: float = 60.0,
    ring_outer_m: float = 200.0,
    exclusion_margin_m: float = 30.0,
) -> sparse.csr_matrix:
    """Background ring of every footprint, clear of all footprints, as a sparse 0/1 matrix.

    A pixel belongs to the ring of footprint ``i`` when its centre lies at a distance ``d`` from
    the footprint with ``ring_inner_m < d <= ring_outer_m`` (exact distance, i.e. the exact ring
    between two round buffers) and the pixel touches no footprint buffered by
    ``exclusion_margin_m`` (see :func:`exclusion_mask`). Invalid pixels are removed per scene in
    :func:`zonal_statistics`.

    Parameters
    ----------
    geometries : array_like of shapely geometries
        All footprints in the grid's CRS (every one of them is excluded from every ring).
    transform : affine.Affine
        North-up grid transform.
    shape : tuple of int
        Grid (height, width).
    ring_inner_m, ring_outer_m : float
        Ring radii from the footprint outline, CRS units (metres for UTM).
    exclusion_margin_m : float
        Buffer around every footprint whose pixels never enter a ring, CRS units.

    Returns
    -------
    scipy.sparse.csr_matrix
        (n, height * width) float64 of ones, sorted indices.
    """
    if not 0.0 <= ring_inner_m < ring_outer_m:
        raise GridError(f"ring radii {ring_inner_m}..{ring_outer_m} m: need 0 <= inner < outer")
    if exclusion_margin_m < 0.0:
        raise GridError(f"exclusion margin {exclusion_margin_m} m is negative")
    geoms = np.asarray(geometries, dtype=object)
    n = len(geoms)
    h, w = shape
    present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    idx = np.flatnonzero(present)
    if len(idx) == 0 or h == 0 or w == 0:
        return sparse.csr_matrix((n, h * w), dtype=np.float64)
    excluded = exclusion_mask(geoms[idx], transform, shape, exclusion_margin_m)
    r0, r1, c0, c1 = _pixel_ranges(shapely.bounds(geoms[idx]), transform, shape, pad=ring_outer_m)
    cand = _union_of_ranges(r0, r1, c0, c1, shape) & ~excluded
    flat = np.flatnonzero(cand)
    tree = shapely.STRtree(geoms[idx])
    out_b: list[npt.NDArray[np.int64]] = []
    out_p: list[npt.NDArray[np.int64]] = []
    for s in range(0, len(flat), _CHUNK_PAIRS):
        f = flat[s : s + _CHUNK_PAIRS]
        xc = transform.c + (f % w + 0.5) * transform.a
        yc = transform.f + (f // w + 0.5) * transform.e
        pts = shapely.points(xc, yc)
        outer = tree.query(pts, predicate="dwithin", distance=ring_outer_m)
        if ring_inner_m > 0.0:
            inner = tree.query(pts, predicate="dwithin", distance=ring_inner_m)
        else:
            inner = tree.query(pts, predicate="intersects")
        # pair codes point * n_tree + building; ring = within outer and not within inner
        m = len(idx)
        code_o = outer[0] * m + outer[1]
        code_i = inner[0] * m + inner[1]
        code = code_o[~np.isin(code_o, code_i, assume_unique=True)]
        out_p.append(f[code // m])
        out_b.append(idx[code % m])
    bld = np.concatenate(out_b) if out_b else np.zeros(0, dtype=np.int64)
    pix = np.concatenate(out_p) if out_p else np.zeros(0, dtype=np.int64)
    mat = sparse.csr_matrix(
        (np.ones(len(bld), dtype=np.float64), (bld, pix)), shape=(n, h * w), dtype=np.float64
    )
    mat.sum_duplicates()
    mat.sort_indices()
    mat.data[:] = 1.0
    return mat


def ring_sector_matrix(
    geometries: Any, ring: sparse.csr_matrix, transform: Affine, shape: tuple[int, int]
) -> sparse.csr_matrix:
    """The four quadrants of every background ring, as a sparse 0/1 matrix.

    A ring pixel of footprint ``i`` goes to quadrant ``q`` (:data:`RING_SECTORS`: east, north,
    west, south) by the direction of its centre from the centre of the footprint's bounding box,
    quadrants centred on the four cardinal directions.  An unmapped hot surface beside a
    building (a paved yard, a new shed) raises one or two quadrants, weather and season all four.

    Parameters
    ----------
    geometries : array_like of shapely geometries
        The footprints (grid CRS), in the rows' order of ``ring``.
    ring : scipy.sparse.csr_matrix
        :func:`ring_matrix` of the same footprints and grid.
    transform : affine.Affine
        North-up grid transform.
    shape : tuple of int
        Grid (height, width).

    Returns
    -------
    scipy.sparse.csr_matrix
        (4 n, height * width): row ``4 i + q`` holds quadrant ``q`` of footprint ``i``'s ring.
    """
    geoms = np.asarray(geometries, dtype=object)
    n = len(geoms)
    h, w = shape
    coo = ring.tocoo()
    if coo.nnz == 0:
        return sparse.csr_matrix((4 * n, h * w), dtype=np.float64)
    b = np.zeros((n, 4))
    present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    b[present] = shapely.bounds(geoms[present])
    cx = 0.5 * (b[:, 0] + b[:, 2])
    cy = 0.5 * (b[:, 1] + b[:, 3])
    pix = coo.col.astype(np.int64)
    xc = transform.c + (pix % w + 0.5) * transform.a
    yc = transform.f + (pix // w + 0.5) * transform.e
    angle = np.degrees(np.arctan2(yc - cy[coo.row], xc - cx[coo.row]))
    quadrant = (np.floor((angle + 45.0) / 90.0).astype(np.int64)) % 4
    mat = sparse.csr_matrix(
        (np.ones(coo.nnz), (coo.row.astype(np.int64) * 4 + quadrant, pix)),
        shape=(4 * n, h * w),
        dtype=np.float64,
    )
    mat.sort_indices()
    return mat


# ----------------------------------------------------------------------------------------------
# PSF-aware roof excess (matched filter, joint least squares)


@dataclass(frozen=True)
class PsfModel:
    """Expected pixel footprints of every roof on one grid (the cacheable part of the estimator).

    Attributes
    ----------
    kernel : numpy.ndarray
        The effective point spread on the grid (odd square-ish array, sums to 1): the sensor's
        system PSF convolved with the resampling kernel, sampled at the grid's pixel offsets.
    pixels : numpy.ndarray
        Sorted flat indices of every pixel where some roof's footprint ``f`` is non-zero.
    footprint : scipy.sparse.csr_matrix
        Buildings x ``pixels``: ``f_i(p)``, the response of pixel ``p`` to a roof ``i`` one kelvin
        warmer than its background (coverage of roof ``i`` convolved with ``kernel``).
    footprint_csc : scipy.sparse.csc_matrix
        The same matrix in column order (per-scene removal of invalid pixels).
    background_weights_t : scipy.sparse.csr_matrix
        ``pixels`` x buildings, ``max(f, 0)``: how each roof's ring median enters the background
        of a pixel shared by several roofs.
    gram : scipy.sparse.csr_matrix
        Buildings x buildings, ``F F^T`` over all pixels (normal matrix with every pixel valid).
    noise_factor : numpy.ndarray
        ``f^T K f / f^T f`` per building, ``K`` the pixel correlation of a background blurred by
        the same PSF (1 for uncorrelated pixels).
    components : list of numpy.ndarray
        Index sets of buildings coupled through shared pixels (connected components of ``gram``
        with more than one member); the others are solved on their own.
    """

    kernel: FloatArray
    pixels: npt.NDArray[np.int64]
    footprint: sparse.csr_matrix
    footprint_csc: sparse.csc_matrix
    background_weights_t: sparse.csr_matrix
    gram: sparse.csr_matrix
    noise_factor: FloatArray
    components: list[npt.NDArray[np.int64]]

    @property
    def nbytes(self) -> int:
        """Memory held by the matrices, bytes."""
        total = self.kernel.nbytes + self.pixels.nbytes + self.noise_factor.nbytes
        for m in (self.footprint, self.footprint_csc, self.background_weights_t, self.gram):
            total += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        return total + sum(c.nbytes for c in self.components)


def keys_cubic(x: npt.ArrayLike, a: float = -0.5) -> FloatArray:
    """Keys' cubic convolution kernel (``a = -0.5``) at offsets ``x`` in input samples [7]_.

    Parameters
    ----------
    x : array_like
        Offsets in units of the input sample spacing.
    a : float
        Kernel parameter (-0.5 reproduces quadratics; the Landsat Level-1 choice).

    Returns
    -------
    numpy.ndarray
        Kernel values; zero beyond two samples.
    """
    t = np.abs(np.asarray(x, dtype=np.float64))
    near = (a + 2.0) * t**3 - (a + 3.0) * t**2 + 1.0
    far = a * t**3 - 5.0 * a * t**2 + 8.0 * a * t - 4.0 * a
    return np.where(t <= 1.0, near, np.where(t < 2.0, far, 0.0))


def system_psf_1d(
    offsets_m: npt.ArrayLike,
    native_pixel_m: float,
    fwhm_native: float = DEFAULT_PSF_FWHM_NATIVE,
    resampling: str | None = "cubic",
) -> FloatArray:
    """One axis of the effective PSF of a resampled thermal band at given offsets.

    A Gaussian system PSF (detector footprint, optics and motion together) of full width at half
    maximum ``fwhm_native`` native samples [6]_, averaged over the sub-sample phase of the
    resampling from the native lattice to the delivered grid: for interpolation kernel ``h`` the
    phase-averaged response of a point is ``PSF * h`` (``h`` scaled to the native spacing) [7]_.

    Parameters
    ----------
    offsets_m : array_like
        Offsets from the point source, CRS units.
    native_pixel_m : float
        Native sample spacing of the band (100 m TIRS, 60 m ETM+, 120 m TM), CRS units.
    fwhm_native : float
        Gaussian system PSF FWHM in native samples.
    resampling : {"cubic", "bilinear", "nearest", None}
        Resampling of the delivered product (Landsat Level-1: cubic convolution).

    Returns
    -------
    numpy.ndarray
        Un-normalised response at ``offsets_m``.
    """
    x = np.asarray(offsets_m, dtype=np.float64)
    sigma = fwhm_native * native_pixel_m / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    gauss = np.exp(-0.5 * (x / sigma) ** 2)
    if resampling is None:
        return gauss
    step = native_pixel_m / 64.0
    u = np.arange(-2.0 * native_pixel_m, 2.0 * native_pixel_m + step / 2, step)
    if resampling == "cubic":
        h = keys_cubic(u / native_pixel_m)
    elif resampling == "bilinear":
        h = np.maximum(1.0 - np.abs(u / native_pixel_m), 0.0)
    elif resampling == "nearest":
        h = (np.abs(u / native_pixel_m) <= 0.5).astype(np.float64)
    else:
        raise GridError(f"resampling {resampling!r}: expected cubic, bilinear, nearest or None")
    h = h / h.sum()
    return np.asarray(np.exp(-0.5 * ((x[:, None] - u[None, :]) / sigma) ** 2) @ h)


def psf_kernel(
    transform: Affine,
    native_pixel_m: float = DEFAULT_NATIVE_PIXEL_M,
    fwhm_native: float = DEFAULT_PSF_FWHM_NATIVE,
    resampling: str | None = "cubic",
) -> FloatArray:
    """Effective PSF of the thermal band sampled on a grid's pixel offsets, summing to 1.

    Separable (``kernel[r, c] = g(r dy) g(c dx)``, ``g`` from :func:`system_psf_1d`), truncated
    where both axes fall below 0.1 % of the peak; odd size, centred.

    Parameters
    ----------
    transform : affine.Affine
        North-up grid transform (pixel sizes in CRS units).
    native_pixel_m : float
        Native sample spacing, CRS units.
    fwhm_native : float
        System PSF FWHM, native samples.
    resampling : {"cubic", "bilinear", "nearest", None}
        Resampling to the delivered grid.

    Returns
    -------
    numpy.ndarray
        2-D kernel (rows x cols).
    """
    px, py = _check_grid(transform, (1, 1))
    if native_pixel_m <= 0 or fwhm_native <= 0:
        raise GridError(f"PSF native pixel {native_pixel_m} / FWHM {fwhm_native}: must be > 0")
    axes = []
    for size in (py, px):
        reach = 3.0 * fwhm_native * native_pixel_m + 2.0 * native_pixel_m
        r = int(np.ceil(reach / size))
        g = system_psf_1d(np.arange(-r, r + 1) * size, native_pixel_m, fwhm_native, resampling)
        keep = np.flatnonzero(np.abs(g) >= _PSF_TRUNCATE * np.abs(g).max())
        half = int(max(r - keep.min(), keep.max() - r))
        axes.append(g[r - half : r + half + 1])
    kernel = np.outer(axes[0], axes[1])
    return np.asarray(kernel / kernel.sum())


def _convolve_rows(
    mat: sparse.csr_matrix, kernel: FloatArray, shape: tuple[int, int]
) -> sparse.csr_matrix:
    """Each row of ``mat`` (an image on ``shape``, flattened) convolved with ``kernel``, clipped."""
    h, w = shape
    coo = mat.tocoo()
    kr, kc = kernel.shape
    dr, dc = np.nonzero(kernel)
    kv = kernel[dr, dc]
    dr = dr - kr // 2
    dc = dc - kc // 2
    rows_out: list[npt.NDArray[np.int64]] = []
    cols_out: list[npt.NDArray[np.int64]] = []
    vals_out: list[FloatArray] = []
    step = max(1, _CHUNK_PAIRS * 5 // max(len(kv), 1))
    for s in range(0, coo.nnz, step):
        b = coo.row[s : s + step].astype(np.int64)
        p = coo.col[s : s + step].astype(np.int64)
        v = coo.data[s : s + step]
        rr = (p // w)[:, None] + dr[None, :]
        cc = (p % w)[:, None] + dc[None, :]
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        rows_out.append(np.broadcast_to(b[:, None], rr.shape)[inside])
        cols_out.append((rr * w + cc)[inside])
        vals_out.append((v[:, None] * kv[None, :])[inside])
    if rows_out:
        out = sparse.csr_matrix(
            (np.concatenate(vals_out), (np.concatenate(rows_out), np.concatenate(cols_out))),
            shape=mat.shape,
        )
    else:
        out = sparse.csr_matrix(mat.shape, dtype=np.float64)
    out.sum_duplicates()
    out.sort_indices()
    return out


def blur_rows(
    mat: sparse.csr_matrix, kernel: FloatArray, shape: tuple[int, int]
) -> sparse.csr_matrix:
    """Each row of ``mat`` (an image on ``shape``, flattened) convolved with ``kernel``.

    Parameters
    ----------
    mat : scipy.sparse.csr_matrix
        Rows of flattened images, e.g. roof coverage (:func:`coverage_matrix`).
    kernel : numpy.ndarray
        Odd-sized, centred kernel (:func:`psf_kernel`).
    shape : tuple of int
        Grid (height, width); what falls outside it is dropped.

    Returns
    -------
    scipy.sparse.csr_matrix
        Same shape as ``mat``: each roof's expected pixel response to one kelvin of excess.
    """
    return _convolve_rows(mat, kernel, shape)


def _autocorrelation(kernel: FloatArray) -> FloatArray:
    """Full 2-D autocorrelation of a small kernel (direct sum; kernels are a few pixels wide)."""
    kr, kc = kernel.shape
    out = np.zeros((2 * kr - 1, 2 * kc - 1))
    for i in range(kr):
        for j in range(kc):
            out[i : i + kr, j : j + kc] += kernel[i, j] * kernel[::-1, ::-1]
    return out


def _pair_sums(
    coverage: sparse.csr_matrix, table: FloatArray, shape: tuple[int, int]
) -> FloatArray:
    """Per row ``sum_{p,q} c_p c_q table[dp - dq]`` over the row's coverage entries.

    ``table`` is centred (odd shape); pixel offsets beyond it count 0.
    """
    n = coverage.shape[0]
    w = shape[1]
    counts = np.diff(coverage.indptr).astype(np.int64)
    out = np.zeros(n)
    tr, tc = table.shape
    for s0 in range(0, n, 512):
        rows = np.arange(s0, min(n, s0 + 512))
        cnt = counts[rows]
        npairs = cnt**2
        item = np.repeat(rows, npairs)
        start = np.repeat(np.cumsum(npairs) - npairs, npairs)
        local = np.arange(int(npairs.sum())) - start
        c_item = cnt[item - s0]
        base = coverage.indptr[item]
        a = base + local // np.maximum(c_item, 1)
        b = base + local % np.maximum(c_item, 1)
        pa, pb = coverage.indices[a].astype(np.int64), coverage.indices[b].astype(np.int64)
        ddr = pa // w - pb // w + tr // 2
        ddc = pa % w - pb % w + tc // 2
        ok = (ddr >= 0) & (ddr < tr) & (ddc >= 0) & (ddc < tc)
        val = np.zeros(len(a))
        val[ok] = coverage.data[a[ok]] * coverage.data[b[ok]] * table[ddr[ok], ddc[ok]]
        out[rows] = np.bincount(item - s0, weights=val, minlength=len(rows))
    return out


def psf_model(coverage: sparse.csr_matrix, shape: tuple[int, int], kernel: FloatArray) -> PsfModel:
    """Expected pixel footprints of every roof, their normal matrix and noise factors.

    Parameters
    ----------
    coverage : scipy.sparse.csr_matrix
        Buildings x pixels exact coverage (:func:`coverage_matrix`).
    shape : tuple of int
        Grid (height, width).
    kernel : numpy.ndarray
        Effective PSF on the grid (:func:`psf_kernel`).

    Returns
    -------
    PsfModel

    Notes
    -----
    ``f_i = coverage_i * kernel`` is the discretised (30 m quadrature) convolution of the roof
    outline with the PSF: a roof ``e`` kelvin warmer than its surroundings adds ``e f_i(p)`` to
    pixel ``p``. The noise factor uses the correlation ``K = (k * k~) / (k * k~)(0)`` of a
    background texture blurred by the same PSF: ``f^T K f = sum c_p c_q (A * A)(p - q) / A(0)``
    and ``f^T f = sum c_p c_q A(p - q)`` with ``A = k * k~``, computed from coverage pairs.
    """
    n = coverage.shape[0]
    fp = _convolve_rows(coverage, kernel, shape)
    pixels = np.unique(fp.indices).astype(np.int64)
    compact = sparse.csr_matrix(
        (fp.data, np.searchsorted(pixels, fp.indices), fp.indptr), shape=(n, len(pixels))
    )
    pos = compact.copy()
    pos.data = np.maximum(pos.data, 0.0)
    pos.eliminate_zeros()
    gram = (compact @ compact.T).tocsr()
    gram.sort_indices()
    acorr = _autocorrelation(kernel)
    acorr2 = _autocorrelation(acorr) / acorr[acorr.shape[0] // 2, acorr.shape[1] // 2]
    ftf = _pair_sums(coverage, acorr, shape)
    ftkf = _pair_sums(coverage, acorr2, shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(ftf > 0, ftkf / ftf, np.nan)
    n_comp, labels = connected_components(gram, directed=False)
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels, minlength=n_comp)
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    components = [
        order[bounds[c] : bounds[c + 1]].astype(np.int64) for c in np.flatnonzero(sizes > 1)
    ]
    return PsfModel(
        kernel=kernel,
        pixels=pixels,
        footprint=compact,
        footprint_csc=compact.tocsc(),
        background_weights_t=pos.T.tocsr(),
        gram=gram,
        noise_factor=factor,
        components=components,
    )


def psf_excess(
    model: PsfModel,
    kelvin_flat: FloatArray,
    valid_flat: npt.NDArray[np.bool_] | None,
    background_k: FloatArray,
    spread_k: FloatArray,
    background_se_k: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Roof excess over background of every building of a scene, solved jointly.

    Model: ``T_p - B_p = sum_i e_i f_i(p) + noise`` over the valid pixels where any roof's
    footprint ``f`` is non-zero, ``B_p`` the ``max(f, 0)``-weighted mean of the ring medians of
    the roofs reaching pixel ``p``. Least squares (the matched filter of the linear model [8]_;
    the generalised least-squares solution for uncorrelated pixels) over all buildings at once:
    ``(F W F^T) e = F W (T - B)``, ``W`` the validity, solved per connected group of roofs that
    share pixels, so a hot neighbour's spill-over is attributed to the neighbour.

    Parameters
    ----------
    model : PsfModel
        Footprints of the grid.
    kelvin_flat : numpy.ndarray
        Flattened temperatures, K.
    valid_flat : numpy.ndarray of bool, optional
        Flattened validity.
    background_k : numpy.ndarray
        Ring median per building, K (NaN when unknown).
    spread_k : numpy.ndarray
        Robust per-pixel spread of the background around it (1.4826 MAD of the ring), K.
    background_se_k : numpy.ndarray
        Standard error of each ring median, K.

    Returns
    -------
    excess_k, excess_sigma_k : numpy.ndarray
        Roof excess, K, and its 1-sigma uncertainty
        ``sqrt(s_i^2 q_i (A^-1)_ii + (h_i se_i)^2)``: ``s_i`` the ring spread, ``q_i`` the
        correlation factor of :class:`PsfModel`, ``A`` the normal matrix, ``h_i`` the response of
        ``e_i`` to a one-kelvin error of the background (sandwich covariance [8]_).
    """
    n = model.gram.shape[0]
    f = model.footprint
    tv = kelvin_flat[model.pixels].astype(np.float64)
    ok = np.isfinite(tv)
    if valid_flat is not None:
        ok &= valid_flat[model.pixels]
    has_bg = np.isfinite(background_k)
    num = model.background_weights_t @ np.where(has_bg, background_k, 0.0)
    den = model.background_weights_t @ has_bg.astype(np.float64)
    ok &= den > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(ok, tv - num / den, 0.0)
    okf = ok.astype(np.float64)
    rhs = np.column_stack([f @ y, f @ okf])
    gram = model.gram
    bad = np.flatnonzero(~ok)
    if len(bad):
        fb = model.footprint_csc[:, bad]
        gram = (gram - (fb @ fb.T)).tocsr()
    diag = gram.diagonal()
    full_diag = model.gram.diagonal()
    sol = np.full((n, 2), np.nan)
    inv_diag = np.full(n, np.nan)
    ridge = _RIDGE * np.maximum(full_diag, 1e-12)
    in_comp = np.zeros(n, dtype=bool)
    for idx in model.components:
        in_comp[idx] = True
        block = gram[idx][:, idx].toarray()
        block[np.diag_indices_from(block)] += ridge[idx]
        try:
            inv = np.linalg.inv(block)
        except np.linalg.LinAlgError:
            continue
        sol[idx] = inv @ rhs[idx]
        inv_diag[idx] = np.diag(inv)
    single = ~in_comp
    d = diag[single] + ridge[single]
    with np.errstate(invalid="ignore", divide="ignore"):
        sol[single] = rhs[single] / d[:, None]
        inv_diag[single] = 1.0 / d
    usable = diag > 1e-6 * np.maximum(full_diag, 1e-12)
    excess = np.where(usable & has_bg, sol[:, 0], np.nan)
    with np.errstate(invalid="ignore"):
        var = spread_k**2 * model.noise_factor * inv_diag + (sol[:, 1] * background_se_k) ** 2
    sigma = np.where(np.isfinite(excess), np.sqrt(np.maximum(var, 0.0)), np.nan)
    return excess, sigma


def zonal_weights(
    geometries: Any,
    transform: Affine,
    shape: tuple[int, int],
    *,
    ring_inner_m: float = 60.0,
    ring_outer_m: float = 200.0,
    exclusion_margin_m: float = 30.0,
    native_pixel_m: float | None = DEFAULT_NATIVE_PIXEL_M,
    psf_fwhm_native: float = DEFAULT_PSF_FWHM_NATIVE,
    resampling: str | None = "cubic",
) -> ZonalWeights:
    """Coverage, ring and PSF matrices of footprints on a pixel grid (the per-grid, cacheable part).

    Parameters
    ----------
    geometries : array_like of shapely geometries
        Footprints in the grid's CRS (one row per building, in output order).
    transform : affine.Affine
        North-up grid transform.
    shape : tuple of int
        Grid (height, width).
    ring_inner_m, ring_outer_m, exclusion_margin_m : float
        See :func:`ring_matrix`.
    native_pixel_m : float or None
        Native sample spacing of the thermal band in CRS units (100 m TIRS, 60 m ETM+, 120 m TM);
        None skips the PSF model (``excess_k`` is then NaN).
    psf_fwhm_native : float
        System PSF FWHM in native samples (:func:`psf_kernel`).
    resampling : {"cubic", "bilinear", "nearest", None}
        Resampling from the native lattice to the grid (Landsat Level-1: cubic convolution).

    Returns
    -------
    ZonalWeights
    """
    shape = (int(shape[0]), int(shape[1]))
    geoms = np.asarray(geometries, dtype=object)
    cov, cover_px = coverage_matrix(geoms, transform, shape)
    ring = ring_matrix(
        geoms,
        transform,
        shape,
        ring_inner_m=ring_inner_m,
        ring_outer_m=ring_outer_m,
        exclusion_margin_m=exclusion_margin_m,
    )
    pixels = np.unique(cov.indices).astype(np.int64)
    compact = sparse.csr_matrix(
        (cov.data, np.searchsorted(pixels, cov.indices), cov.indptr),
        shape=(cov.shape[0], len(pixels)),
    )
    compact_sq = compact.copy()
    compact_sq.data = compact_sq.data**2
    ring_rows = np.repeat(np.arange(len(geoms), dtype=np.int32), np.diff(ring.indptr))
    psf = None
    if native_pixel_m is not None and cov.shape[0] > 0 and shape[0] * shape[1] > 0:
        kernel = psf_kernel(transform, native_pixel_m, psf_fwhm_native, resampling)
        psf = psf_model(cov, shape, kernel)
    logger.debug(
        "zonal weights: %d buildings, grid %s, %d coverage and %d ring entries",
        len(geoms),
        shape,
        cov.nnz,
        ring.nnz,
    )
    return ZonalWeights(
        coverage=cov,
        ring=ring,
        cover_px=cover_px,
        transform=Affine(*tuple(transform)[:6]),
        shape=shape,
        coverage_pixels=pixels,
        coverage_compact=compact,
        coverage_sq_compact=compact_sq,
        ring_rows=ring_rows,
        psf=psf,
        ring_layout=ring_layout(ring),
        sectors=ring_sector_matrix(geoms, ring, transform, shape),
    )


def _row_quantiles(
    rows_sorted: npt.NDArray[np.floating[Any]], counts: npt.NDArray[np.int64], qs: FloatArray
) -> FloatArray:
    """Linear-interpolation quantiles (numpy's default) of the first ``counts`` values of each
    sorted row, shape ``(len(qs), rows)``; rows with ``counts`` 0 give meaningless values."""
    width = rows_sorted.shape[1]
    flat = rows_sorted.reshape(-1)
    last = np.maximum(counts - 1, 0)
    base = np.arange(len(counts), dtype=np.int64) * width
    pos = qs[:, None] * last.astype(np.float64)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, last)
    a = flat[base + lo].astype(np.float64)
    b = flat[base + hi].astype(np.float64)
    return a + (pos - lo) * (b - a)


_QUARTILES = np.array([0.5, 0.25, 0.75])
_HALF = np.array([0.5])


def _ring_order_statistics(
    weights: ZonalWeights,
    t_flat: npt.NDArray[Any],
    v_flat: npt.NDArray[np.bool_] | None,
) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray, FloatArray]:
    """Valid count, median, IQR and MAD of every building's ring for one scene.

    Each ring's values are gathered into a padded row (invalid pixels and padding +inf) and all
    rows of a bucket are sorted at once (``np.sort(axis=1)``); quantiles are numpy's default
    linear interpolation, the MAD the median of ``|x - median|`` (a second row-wise sort).
    """
    n = weights.n_buildings
    layout = weights.ring_layout if weights.ring_layout is not None else ring_layout(weights.ring)
    values = t_flat[layout.pixels]
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    ok = np.isfinite(values)
    if v_flat is not None:
        ok &= v_flat[layout.pixels]
    padded = np.empty(len(values) + 1, dtype=values.dtype)
    np.copyto(padded[:-1], np.where(ok, values, np.inf))
    padded[-1] = np.inf
    counts = np.zeros(n, dtype=np.int64)
    med = np.full(n, np.nan)
    iqr = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    with np.errstate(invalid="ignore"):  # rows without a valid pixel: inf - inf, set NaN below
        for rows, src in zip(layout.rows, layout.sources, strict=True):
            block = padded[src]
            block.sort(axis=1)
            c = np.count_nonzero(block < np.inf, axis=1).astype(np.int64)
            q = _row_quantiles(block, c, _QUARTILES)
            dev = np.abs(block - q[0][:, None])  # padding stays +inf
            dev.sort(axis=1)
            counts[rows] = c
            med[rows] = q[0]
            iqr[rows] = q[2] - q[1]
            mad[rows] = _row_quantiles(dev, c, _HALF)[0]
    empty = counts == 0
    med[empty] = iqr[empty] = mad[empty] = np.nan
    return counts, med, iqr, mad


def _hot_sector(
    weights: ZonalWeights, t_flat: npt.NDArray[Any], v_flat: npt.NDArray[np.bool_] | None
) -> tuple[FloatArray, FloatArray]:
    """Excess of each ring's warmest quadrant over the median of its quadrants, and which.

    Quadrant means of the valid pixels (a mean, unlike the ring's median, feels a hot surface
    covering only part of a quadrant); NaN where fewer than three quadrants have
    :data:`MIN_SECTOR_PX` valid pixels, or without quadrants.
    """
    n = weights.n_buildings
    hot = np.full(n, np.nan)
    which = np.full(n, np.nan)
    if weights.sectors is None or n == 0:
        return hot, which
    ok = np.isfinite(t_flat)
    if v_flat is not None:
        ok &= v_flat
    values = np.where(ok, t_flat, 0.0).astype(np.float64)
    counts = weights.sectors @ ok.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (weights.sectors @ values) / counts
    mean = np.where(counts >= MIN_SECTOR_PX, mean, np.nan).reshape(n, 4)
    enough = np.isfinite(mean).sum(axis=1) >= 3
    if enough.any():
        m = mean[enough]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            centre = np.nanmedian(m, axis=1)
        top = np.nanargmax(m, axis=1)
        hot[enough] = m[np.arange(len(m)), top] - centre
        which[enough] = top
    return hot, which


def zonal_statistics(
    weights: ZonalWeights,
    kelvin: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    sigma_k: npt.ArrayLike | None = None,
    *,
    nedt_k: float = DEFAULT_NEDT_K,
    min_valid_fraction: float = 0.5,
    min_ring_px: int = 8,
) -> dict[str, FloatArray]:
    """Roof, background and contrast statistics of every building for one scene.

    Parameters
    ----------
    weights : ZonalWeights
        From :func:`zonal_weights` on the same grid as ``kelvin``.
    kelvin : array_like
        (height, width) temperatures, K (NaN where invalid).
    valid : array_like of bool, optional
        (height, width) validity; pixels that are not finite are invalid in any case.
    sigma_k : array_like, optional
        (height, width) per-pixel 1-sigma uncertainty, K (Level-2 ST_QA); ``nedt_k`` is used where
        absent or not finite.
    nedt_k : float
        Per-pixel 1-sigma noise when ``sigma_k`` is not given, K (default 0.4 K, TIRS NEdT [5]_).
    min_valid_fraction : float
        Minimum valid share of the roof coverage; below it the temperature statistics are NaN.
    min_ring_px : int
        Minimum number of valid ring pixels; below it the temperature statistics are NaN.

    Returns
    -------
    dict of str to numpy.ndarray
        One float64 array per name in :data:`STAT_COLUMNS`:

        - ``t_roof_k`` = sum_p w_p T_p / sum_p w_p over valid pixels (w = coverage fraction [1]_);
        - ``t_roof_max_k``: max of T over valid pixels with w > 0;
        - ``t_background_k``, ``t_background_iqr_k``: median and Q3 - Q1 (linear interpolation)
          of the valid ring pixels;
        - ``contrast_k`` = t_roof_k - t_background_k;
        - ``sigma_k`` = sqrt(s_roof^2 + s_bg^2), with
          s_roof = sqrt(sum_p w_p^2 s_p^2) / sum_p w_p (independent pixel errors s_p from ST_QA,
          or NEdT) and s_bg = sqrt(pi/2) x 1.4826 MAD / sqrt(n), the standard error of the median
          of n normal ring pixels [3]_ [4]_. TIRS is sampled at 100 m and delivered at 30 m, so
          neighbouring pixels are correlated and both terms are lower bounds;
        - ``cover_px``: footprint area in pixels (whatever the validity);
        - ``valid_fraction`` = valid coverage / cover_px (0 when nothing is covered);
        - ``ring_valid_px``: number of valid ring pixels;
        - ``ring_hot_sector_k``, ``ring_hot_sector``: how much warmer the warmest quadrant of the
          ring is than the median of its quadrants (valid-pixel means), K, and which quadrant
          (:data:`RING_SECTORS` code; NaN with fewer than three usable quadrants): a ring
          contaminated on one side by an unmapped hot surface;
        - ``excess_k``, ``excess_sigma_k``: the roof's own temperature excess over its background,
          estimated with the PSF (:func:`psf_excess`, NaN without a PSF model), and its 1-sigma
          uncertainty. Unlike ``contrast_k`` it is not diluted by the sub-pixel size of the roof
          nor by the spill of a hot neighbour.
    """
    h, w = weights.shape
    temp = np.asarray(kelvin)
    if temp.shape != (h, w):
        raise GridError(f"kelvin array of shape {temp.shape} does not match the grid {(h, w)}")
    t_flat = temp.reshape(-1)
    v_flat: npt.NDArray[np.bool_] | None = None
    if valid is not None:
        v_arr = np.asarray(valid, dtype=bool)
        if v_arr.shape != (h, w):
            raise GridError(f"valid mask of shape {v_arr.shape} does not match the grid {(h, w)}")
        v_flat = v_arr.reshape(-1)
    s_flat: FloatArray | None = None
    if sigma_k is not None:
        s_arr = np.asarray(sigma_k)
        if s_arr.size != h * w:
            raise GridError(f"sigma array of size {s_arr.size} does not match the grid {(h, w)}")
        s_flat = s_arr.reshape(-1)

    # roof: gather only the touched pixels, then one sparse mat-vec per sum
    n = weights.n_buildings
    pix = weights.coverage_pixels
    cov = weights.coverage_compact
    tv = t_flat[pix].astype(np.float64)
    okv = np.isfinite(tv)
    if v_flat is not None:
        okv &= v_flat[pix]
    okf = okv.astype(np.float64)
    t_clean = np.where(okv, tv, 0.0)
    if s_flat is not None:
        sv = s_flat[pix].astype(np.float64)
        sv = np.where(np.isfinite(sv), sv, nedt_k)
    else:
        sv = np.full(len(pix), nedt_k)
    sum_w = cov @ okf
    sum_wt = cov @ t_clean
    sum_w2s2 = weights.coverage_sq_compact @ (okf * sv * sv)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_roof = sum_wt / sum_w
        s_roof = np.sqrt(sum_w2s2) / sum_w
    cover_px = weights.cover_px.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        valid_fraction = np.where(cover_px > 0, np.minimum(sum_w / cover_px, 1.0), 0.0)

    # roof max: over the CSR structure
    t_max = np.full(n, np.nan)
    vals = np.where(okv[cov.indices], tv[cov.indices], -np.inf)
    nonempty = np.diff(cov.indptr) > 0
    if vals.size:
        red = np.maximum.reduceat(vals, cov.indptr[:-1][nonempty])
        t_max[nonempty] = np.where(np.isfinite(red), red, np.nan)

    # background: order statistics of the valid ring pixels, one row-wise sort per ring size
    counts, med, iqr, mad = _ring_order_statistics(weights, t_flat, v_flat)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_bg = MEDIAN_SE_FACTOR * MAD_TO_SIGMA * mad / np.sqrt(counts)
    hot_k, hot_q = _hot_sector(weights, t_flat, v_flat)

    contrast = t_roof - med
    sigma = np.sqrt(s_roof**2 + s_bg**2)
    bad = (valid_fraction < min_valid_fraction) | (counts < min_ring_px) | (sum_w <= 0)
    if weights.psf is not None:
        # per-pixel spread of the background: ring MAD, never below the median pixel noise
        noise = float(np.median(sv)) if len(sv) else nedt_k
        spread = np.maximum(np.nan_to_num(MAD_TO_SIGMA * mad, nan=noise), noise)
        excess, excess_sigma = psf_excess(
            weights.psf, t_flat, v_flat, np.where(bad, np.nan, med), spread, s_bg
        )
    else:
        excess = excess_sigma = np.full(n, np.nan)
    out: dict[str, FloatArray] = {
        "t_roof_k": t_roof,
        "t_roof_max_k": t_max,
        "t_background_k": med,
        "t_background_iqr_k": iqr,
        "contrast_k": contrast,
        "sigma_k": sigma,
        "excess_k": excess,
        "excess_sigma_k": excess_sigma,
    }
    out["ring_hot_sector_k"] = hot_k
    out["ring_hot_sector"] = hot_q
    for key in out:
        out[key] = np.where(bad, np.nan, out[key])
    out["cover_px"] = cover_px
    out["valid_fraction"] = valid_fraction
    out["ring_valid_px"] = counts.astype(np.float64)
    return {k: out[k] for k in STAT_COLUMNS}
