"""Heat spilled between neighbouring roofs by the thermal point-spread function, and its removal.

A Landsat thermal pixel sees about 100 m of ground (TIRS), so the excess of a working roof spreads
over its neighbours: an idle building 10-25 m from a hot one shows a lasting anomaly that is not
its own.  The background ring keeps clear of every footprint, but nothing in a roof-minus-ring
contrast removes a neighbour's blurred excess.  This module does, in two steps:

1. :func:`spill_matrix` (geometry): for footprints ``b`` and ``j``, ``M[b, j]`` is the contrast
   that a roof ``j`` one kelvin warmer than its surroundings adds to the contrast of ``b`` as the
   extractor measures it: the coverage-weighted mean over ``b``'s roof, minus the mean over
   ``b``'s background ring, of ``j``'s coverage convolved with the effective PSF of the band
   (system PSF and cubic-convolution resampling, :func:`kaesong_thermal.zonal.psf_kernel`).
   ``M[b, b]`` is ``b``'s own dilution (0.15-0.35 for 3,500-7,500 m2 roofs under TIRS).
2. :func:`unmix_anomalies` (per scene, pure): the anomalies ``a`` (what is left after the scene
   effect and each building's idle baseline) of the buildings that look warm (``z >= gate``)
   solve ``a_A = M_AA e_A`` for their own roof excesses ``e`` (lightly ridge-regularised); each
   building's own anomaly is then ``M_bb e_b``, and the spill of the warm
   ones, ``sum_j M_bj e_j``, is taken from every other building's anomaly.  An idle roof beside
   a working one loses the borrowed excess; two adjacent working roofs keep their own.

Spill during the idle baseline period is nil (nothing works), so the baselines are unaffected;
only the anomaly of a scene is corrected, with its uncertainty propagated.

References
----------
.. [1] Wenny, B. N. et al. (2015). Pre- and post-launch spatial quality of the Landsat 8
   Thermal Infrared Sensor. *Remote Sensing* 7(2), 1962-1980 (TIRS system PSF / edge response).
.. [2] Keys, R. (1981). Cubic convolution interpolation for digital image processing. *IEEE
   Transactions on Acoustics, Speech, and Signal Processing* 29(6), 1153-1160.
.. [3] Hoerl, A. E. and Kennard, R. W. (1970). Ridge regression. *Technometrics* 12(1), 55-67.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from affine import Affine
from scipy import sparse

from kaesong_thermal import zonal

logger = logging.getLogger(__name__)

#: Grid spacing of the spill computation, m (the delivered Landsat thermal grid).
GRID_M = 30.0
#: Buildings are handled in square tiles of this side, with their neighbours around, m.
TILE_M = 4_000.0
#: Entries of ``M`` smaller than this are dropped (sparse storage).
MIN_ENTRY = 1e-3
#: Buildings whose anomaly ``z`` reaches this are unmixed jointly (the warm set).
GATE_Z = 1.5
#: Strength of the pull of each warm roof's own excess towards zero (a ridge penalty in units of
#: the data's own weight, so a lone warm roof keeps 1 / 1.01 of its anomaly): keeps a pair of
#: small adjacent roofs, whose system is nearly singular, from trading noise.  (A pull towards
#: each roof's single-roof value ``a_j / M_jj`` instead credited a small roof beside a hot one
#: with the hot one's spill: 0.3 K of it stayed.)
RIDGE = 0.01
#: A warm roof hidden in a scene (cloud over it, or no row) is assumed to keep the excess of its
#: last clear scene for this many days: its spill then enters its neighbours' uncertainty.  180,
#: the classifier's ``stale_days`` (as long as a status is held without a valid scene); 60 let a
#: 34-73 K hall under two months of cloud put z 9 on its clear neighbour (stress draw 107).
HIDDEN_DAYS = 180.0
#: Relative uncertainty of a modelled spill: the PSF of a given sensor, scene and park is known
#: only roughly (its core width and wide wing differ from the nominal one the matrix uses [1]_,
#: and the ring median is not the ring mean the matrix takes), so each removed spill ``s`` adds
#: ``(MODEL_REL * s)**2`` to the variance of what is left.  0.25: the rms of (what was left) /
#: (what was removed) on the idle neighbours of working halls on stress draws 101-110 was 0.22
#: (from -0.26 to +0.48 per park) at three and five times the simulated heat.
MODEL_REL = 0.25


@dataclass(frozen=True)
class SpillMatrix:
    """Spill coefficients between footprints.

    Attributes
    ----------
    ids : numpy.ndarray
        ``building_id`` of each row / column.
    matrix : scipy.sparse.csr_matrix
        ``M[b, j]``, contrast added to ``b`` per kelvin of roof excess of ``j`` (dimensionless).
    native_pixel_m : float
        Native sampling of the band the PSF was built for, m.
    """

    ids: np.ndarray
    matrix: sparse.csr_matrix
    native_pixel_m: float

    def index(self) -> dict[str, int]:
        """``building_id`` to row number."""
        return {str(b): i for i, b in enumerate(self.ids)}


def _metric(footprints: Any) -> Any:
    """The footprints in a metric CRS (their own when projected in metres, else local UTM)."""
    crs = footprints.crs
    if crs is not None and crs.is_projected and crs.axis_info[0].unit_name in ("metre", "meter"):
        return footprints
    if crs is None:
        return footprints.set_crs("EPSG:4326").to_crs(
            footprints.set_crs("EPSG:4326").estimate_utm_crs()
        )
    return footprints.to_crs(footprints.estimate_utm_crs())


def _normalised(mat: sparse.csr_matrix) -> sparse.csr_matrix:
    sums = np.asarray(mat.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv = np.where(sums > 0, 1.0 / sums, 0.0)
    return sparse.csr_matrix(sparse.diags(inv) @ mat)


def spill_matrix(
    footprints: Any,
    *,
    native_pixel_m: float = zonal.DEFAULT_NATIVE_PIXEL_M,
    psf_fwhm_native: float = zonal.DEFAULT_PSF_FWHM_NATIVE,
    ring_inner_m: float = 60.0,
    ring_outer_m: float = 200.0,
    exclusion_margin_m: float = 30.0,
) -> SpillMatrix:
    """Spill coefficients of every footprint into every other one, from the geometry alone.

    Parameters
    ----------
    footprints : geopandas.GeoDataFrame
        Indexed by ``building_id`` (any CRS; geographic is projected to local UTM).
    native_pixel_m : float
        Native sampling of the thermal band (100 m TIRS, 60 m ETM+, 120 m TM), m.
    psf_fwhm_native : float
        System PSF FWHM in native samples.
    ring_inner_m, ring_outer_m, exclusion_margin_m : float
        The extractor's ring geometry (``extract`` defaults).

    Returns
    -------
    SpillMatrix

    Notes
    -----
    ``M[b, j] = sum_p c_b(p) f_j(p) / sum_p c_b(p) - mean_{p in ring_b} f_j(p)`` with ``c`` the
    exact coverage on a 30 m grid and ``f_j = c_j * k`` (``k`` the effective PSF on that grid).
    The ring mean stands in for the extractor's ring median (exact when ``f_j`` is the only
    departure in the ring).  Computed tile by tile (:data:`TILE_M`), each tile with every
    footprint within reach around it.
    """
    fp = _metric(footprints)
    ids = np.asarray([str(i) for i in fp.index], dtype=object)
    geoms = np.asarray(fp.geometry.values, dtype=object)
    n = len(ids)
    if n == 0:
        return SpillMatrix(ids, sparse.csr_matrix((0, 0)), native_pixel_m)
    import shapely

    ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    bounds = np.full((n, 4), np.nan)
    bounds[ok] = shapely.bounds(geoms[ok])
    cx = 0.5 * (bounds[:, 0] + bounds[:, 2])
    cy = 0.5 * (bounds[:, 1] + bounds[:, 3])
    reach = ring_outer_m + exclusion_margin_m + 3.0 * psf_fwhm_native * native_pixel_m
    x0 = np.nanmin(bounds[:, 0]) if ok.any() else 0.0
    y0 = np.nanmin(bounds[:, 1]) if ok.any() else 0.0
    tx = np.floor((cx - x0) / TILE_M)
    ty = np.floor((cy - y0) / TILE_M)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for key in sorted({(a, b) for a, b in zip(tx[ok], ty[ok], strict=True)}):
        core = np.flatnonzero(ok & (tx == key[0]) & (ty == key[1]))
        lo_x, lo_y = np.min(bounds[core, 0]) - reach, np.min(bounds[core, 1]) - reach
        hi_x, hi_y = np.max(bounds[core, 2]) + reach, np.max(bounds[core, 3]) + reach
        near = np.flatnonzero(
            ok
            & (bounds[:, 2] >= lo_x)
            & (bounds[:, 0] <= hi_x)
            & (bounds[:, 3] >= lo_y)
            & (bounds[:, 1] <= hi_y)
        )
        left = np.floor((lo_x - reach) / GRID_M) * GRID_M
        top = np.ceil((hi_y + reach) / GRID_M) * GRID_M
        width = int(np.ceil((hi_x + reach - left) / GRID_M))
        height = int(np.ceil((top - (lo_y - reach)) / GRID_M))
        transform = Affine(GRID_M, 0.0, left, 0.0, -GRID_M, top)
        shape = (height, width)
        cov, _ = zonal.coverage_matrix(geoms[near], transform, shape)
        ring = zonal.ring_matrix(
            geoms[near],
            transform,
            shape,
            ring_inner_m=ring_inner_m,
            ring_outer_m=ring_outer_m,
            exclusion_margin_m=exclusion_margin_m,
        )
        kernel = zonal.psf_kernel(transform, native_pixel_m, psf_fwhm_native, "cubic")
        spread = zonal.blur_rows(cov, kernel, shape)
        m = (_normalised(cov) @ spread.T - _normalised(ring) @ spread.T).tocoo()
        pos = np.searchsorted(near, core)
        keep_row = np.zeros(len(near), dtype=bool)
        keep_row[pos] = True
        sel = keep_row[m.row] & (np.abs(m.data) >= MIN_ENTRY)
        rows.append(near[m.row[sel]])
        cols.append(near[m.col[sel]])
        vals.append(m.data[sel])
    if rows:
        mat = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
    else:
        mat = sparse.csr_matrix((n, n))
    mat.sum_duplicates()
    mat.sort_indices()
    logger.debug("spill matrix: %d footprints, %d coefficients", n, mat.nnz)
    return SpillMatrix(ids=ids, matrix=mat, native_pixel_m=native_pixel_m)


def _unmix_warm(
    warm: np.ndarray,
    others: np.ndarray,
    b_idx: np.ndarray,
    mat: sparse.csr_matrix,
    diag: np.ndarray,
    anomaly: np.ndarray,
    sigma: np.ndarray,
    spill_k: np.ndarray,
    rel: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Unmix one scene in place: the warm rows' own excesses, their spill taken from the others.

    ``rel`` is the relative error of a modelled spill (:data:`MODEL_REL`), entered in quadrature
    into the uncertainty of every row by the neighbours' spill that was taken from it.

    Returns the warm buildings' matrix indices and own roof excesses (K), or None when the
    scene has no warm roof with an own dilution or its system is singular.
    """
    ia = b_idx[warm].astype(np.int64)
    d = diag[ia]
    good = d > 0
    warm, ia, d = warm[good], ia[good], d[good]
    if warm.size == 0:
        return None
    m_aa = mat[ia][:, ia].toarray()
    w = 1.0 / sigma[warm] ** 2
    a = anomaly[warm]
    lhs = m_aa.T @ (w[:, None] * m_aa) + np.diag(RIDGE * d * w * d)
    try:
        cov_e = np.linalg.inv(lhs)
    except np.linalg.LinAlgError:
        return None
    e = cov_e @ (m_aa.T @ (w * a))
    var_e = np.maximum(np.diag(cov_e), 0.0)
    own = d * e
    lent = m_aa @ e - own  # the other warm roofs' modelled spill onto each warm roof
    spill_k[warm] = a - own
    anomaly[warm] = own
    sigma[warm] = np.hypot(np.maximum(np.abs(d) * np.sqrt(var_e), sigma[warm]), rel * lent)
    if others.size:
        m_oa = mat[b_idx[others].astype(np.int64)][:, ia].toarray()
        borrowed = m_oa @ e
        spill_k[others] = borrowed
        anomaly[others] = anomaly[others] - borrowed
        sigma[others] = np.sqrt(sigma[others] ** 2 + (m_oa**2) @ var_e + (rel * borrowed) ** 2)
    return ia, e


def unmix_anomalies(
    observations: pd.DataFrame,
    spill: SpillMatrix,
    *,
    gate_z: float = GATE_Z,
    model_rel: float | None = None,
) -> pd.DataFrame:
    """Remove the spill of warm neighbours from every scene's anomalies (a copy).

    Parameters
    ----------
    observations : pandas.DataFrame
        Analysed observations (``scene_id, building_id, anomaly_k, anomaly_sigma_k, z``).
    spill : SpillMatrix
        From :func:`spill_matrix` for the same footprints.
    gate_z : float
        Buildings with ``z`` at or above it form the warm set of a scene.
    model_rel : float, optional
        Relative uncertainty of each removed spill (default :data:`MODEL_REL`).

    Returns
    -------
    pandas.DataFrame
        The observations with ``anomaly_k``, ``anomaly_sigma_k`` and ``z`` replaced by the
        building's own (unmixed) values and a column ``spill_k`` (the anomaly removed as a
        neighbour's; 0 where nothing was, NaN where there is no anomaly).

    Notes
    -----
    Per scene, with the warm set ``A``, weights ``W = diag(1 / sigma^2)`` and ``D = diag(M)``::

        (M_AA' W M_AA + r D W D) e = M_AA' W a_A

    (``r`` = :data:`RIDGE`); own anomaly ``D e`` in ``A``, ``a_b - M_bA e`` elsewhere.  The
    uncertainty of ``e`` (``(M' W M + r D W D)^-1``, the ridge sandwich neglected) is added in
    quadrature to that of the others' anomalies, and so is the model's own error,
    ``model_rel`` times the neighbours' modelled spill onto each row (warm or not): a spill
    modelled 25 % short leaves a quarter of it, which must not read as the roof's own heat.

    A warm roof that the scene does not show (its roof under cloud while its neighbour is
    clear, or no row) still spills: its excess is unknown that day, so nothing is subtracted,
    but ``M_bj e_j`` with ``e_j`` its own excess at its last clear scene (within
    :data:`HIDDEN_DAYS`; 0 when that scene showed it idle) is added in quadrature to the
    uncertainty of every building ``b`` of the scene.  A shed beside a hall that works under a
    passing cloud is then not alerted on the hall's heat.  Scenes are taken in time order
    (``acquired`` when present).
    """
    rel = MODEL_REL if model_rel is None else float(model_rel)
    out = observations.copy()
    if "anomaly_k" not in out.columns or out.empty:
        out["spill_k"] = np.nan
        return out
    anomaly = out["anomaly_k"].to_numpy(dtype=float).copy()
    sigma = out["anomaly_sigma_k"].to_numpy(dtype=float).copy()
    z = out["z"].to_numpy(dtype=float).copy()
    spill_k = np.where(np.isfinite(anomaly), 0.0, np.nan)
    index = spill.index()
    b_idx = out["building_id"].astype(str).map(index).to_numpy(dtype=float)
    usable = np.isfinite(anomaly) & np.isfinite(sigma) & (sigma > 0) & np.isfinite(b_idx)
    warm_rows = usable & (np.nan_to_num(z, nan=-np.inf) >= gate_z)
    if not warm_rows.any():
        out["spill_k"] = spill_k
        return out
    mat = spill.matrix.tocsr()
    diag = mat.diagonal()
    scenes = out["scene_id"].to_numpy()
    by_scene = pd.Series(np.arange(len(out))).groupby(scenes).indices
    if "acquired" in out.columns:
        when = pd.to_datetime(out["acquired"], utc=True)
        days = (
            (when - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds() / 86400.0
        ).to_numpy()
    else:
        days = np.arange(len(out), dtype=float)
    first_day = pd.Series(days).groupby(scenes).min().fillna(0.0).to_dict()
    n_all = mat.shape[0]
    last_e = np.zeros(n_all)  # own excess of each roof at its last clear scene, K
    last_t = np.full(n_all, -np.inf)
    for scene in sorted(by_scene, key=lambda sc: (first_day[sc], str(sc))):
        t = float(first_day[scene])
        rows = np.asarray(by_scene[scene])
        rows = rows[usable[rows]]
        if rows.size == 0:
            continue
        seen = b_idx[rows].astype(np.int64)
        # warm roofs hidden in this scene: their spill is an unknown of the day
        hidden = np.flatnonzero((last_e > 0) & (t - last_t <= HIDDEN_DAYS))
        hidden = hidden[~np.isin(hidden, seen)]
        extra = None
        if hidden.size:
            m_oh = mat[seen][:, hidden]
            extra = np.asarray(m_oh.multiply(m_oh) @ (last_e[hidden] ** 2)).ravel()
        last_e[seen] = 0.0
        last_t[seen] = t
        solved = _unmix_warm(
            rows[warm_rows[rows]],
            rows[~warm_rows[rows]],
            b_idx,
            mat,
            diag,
            anomaly,
            sigma,
            spill_k,
            rel,
        )
        if solved is not None:
            ia, e = solved
            last_e[ia] = np.maximum(e, 0.0)
        if extra is not None:
            sigma[rows] = np.sqrt(sigma[rows] ** 2 + extra)
    with np.errstate(invalid="ignore", divide="ignore"):
        new_z = np.where(usable, anomaly / sigma, z)
    out["anomaly_k"] = anomaly
    out["anomaly_sigma_k"] = sigma
    out["z"] = new_z
    out["spill_k"] = spill_k
    return out
