"""Footprints of several industrial zones in one file: one window per site and scene.

A footprint file may carry a ``site`` column (any text: ``"kaesong"``, ``"sinuiju-north"``...)
and span many WRS-2 path/rows. :func:`site_groups` splits it once into groups of nearby sites;
:func:`extract_sites` extracts one scene site group by site group, so the window read from a scene
stays the size of one zone (plus its rings) instead of a rectangle spanning every zone, and a
scene yields observations only for the buildings of the sites it reaches.

Sites whose footprints come within a ring's reach of each other (ring outer distance plus the
exclusion margin) are merged into one group, so that every building near a ring is still kept
out of it, as :func:`kaesong_thermal.extraction.extract` promises. Without a ``site`` column the
whole file is one group and extraction is exactly :func:`~kaesong_thermal.extraction.extract`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Name of the optional footprint column naming the industrial zone a building belongs to.
SITE_COLUMN = "site"

#: Reach of a building's background ring plus exclusion margin used when none is given, m.
DEFAULT_REACH_M = 230.0

_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class SiteGroup:
    """Buildings of one site (or of sites close enough to share rings).

    Attributes
    ----------
    sites : tuple of str or None
        The site labels in the group (``(None,)`` for a file without sites).
    footprints : geopandas.GeoDataFrame
        The group's rows of the footprint table (all columns, same CRS).
    bounds : tuple of float or None
        ``(xmin, ymin, xmax, ymax)`` of the group's footprints in their own CRS.
    """

    sites: tuple[str | None, ...]
    footprints: Any
    bounds: tuple[float, float, float, float] | None
    _in_crs: dict[str, tuple[float, float, float, float]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def bounds_in(self, crs: Any) -> tuple[float, float, float, float] | None:
        """The group's bounding box transformed to ``crs`` (cached per CRS)."""
        if self.bounds is None:
            return None
        key = crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)
        hit = self._in_crs.get(key)
        if hit is None:
            import geopandas as gpd
            import shapely

            box = shapely.segmentize(shapely.box(*self.bounds), _densify_step(self.bounds))
            moved = gpd.GeoSeries([box], crs=self.footprints.crs).to_crs(crs)
            hit = tuple(float(v) for v in moved.total_bounds)  # type: ignore[assignment]
            self._in_crs[key] = hit  # type: ignore[assignment]
        return hit

    def overlaps(self, bounds: Sequence[float], crs: Any) -> bool:
        """Whether the group's footprints reach into ``bounds`` (in ``crs``)."""
        own = self.bounds_in(crs)
        if own is None:
            return False
        xmin, ymin, xmax, ymax = (float(v) for v in bounds)
        return own[0] < xmax and own[2] > xmin and own[1] < ymax and own[3] > ymin


def _densify_step(bounds: tuple[float, float, float, float]) -> float:
    span = max(bounds[2] - bounds[0], bounds[3] - bounds[1])
    return max(span / 16.0, 1e-9)


def has_sites(footprints: Any) -> bool:
    """Whether a footprint table has a ``site`` column with at least one value."""
    return SITE_COLUMN in footprints.columns and bool(footprints[SITE_COLUMN].notna().any())


def site_of(footprints: Any) -> pd.Series:
    """The site of every building (None where the file gives none), indexed by ``building_id``."""
    if SITE_COLUMN not in footprints.columns:
        return pd.Series([None] * len(footprints), index=footprints.index, dtype=object)
    values = footprints[SITE_COLUMN].astype(object)
    return values.where(values.notna(), None).map(lambda v: v if v is None else str(v))


def site_groups(footprints: Any, reach_m: float = DEFAULT_REACH_M) -> tuple[SiteGroup, ...]:
    """Split a footprint table into groups of sites, each read as one window per scene.

    Parameters
    ----------
    footprints : geopandas.GeoDataFrame
        As from :func:`kaesong_thermal.footprints.load_footprints`; an optional ``site`` column.
    reach_m : float
        Sites whose footprints come closer than this (ring outer distance plus exclusion margin,
        m) share a group; buildings without a site form one group of their own.

    Returns
    -------
    tuple of SiteGroup
        One group for a table without sites (the table itself); else groups in order of their
        first building in the table.
    """
    if not has_sites(footprints):
        return (SiteGroup((None,), footprints, _bounds(footprints)),)
    labels = site_of(footprints)
    order = list(dict.fromkeys(labels.tolist()))
    wgs84 = footprints.geometry.to_crs(4326)
    boxes: list[tuple[float, float, float, float] | None] = []
    for label in order:
        mask = (labels == label) if label is not None else labels.isna()
        part = wgs84[mask.to_numpy()]
        boxes.append(_padded(part, reach_m))
    parent = list(range(len(order)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(order)):
        for j in range(i + 1, len(order)):
            a, b = boxes[i], boxes[j]
            if a is None or b is None:
                continue
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                parent[find(j)] = find(i)
    members: dict[int, list[str | None]] = {}
    for i, label in enumerate(order):
        members.setdefault(find(i), []).append(label)
    groups = []
    for labels_of_group in members.values():
        wanted = set(labels_of_group)
        mask = labels.map(lambda v, w=wanted: v in w).to_numpy(dtype=bool)
        part = footprints[mask]
        groups.append(SiteGroup(tuple(labels_of_group), part, _bounds(part)))
    if len(groups) < len(order):
        logger.info("%d site(s) in %d group(s) of neighbouring sites", len(order), len(groups))
    return tuple(groups)


def _bounds(footprints: Any) -> tuple[float, float, float, float] | None:
    geoms = footprints.geometry
    present = geoms.notna().to_numpy() & ~geoms.is_empty.to_numpy()
    if not present.any():
        return None
    return tuple(float(v) for v in geoms[present].total_bounds)  # type: ignore[return-value]


def _padded(wgs84: Any, reach_m: float) -> tuple[float, float, float, float] | None:
    present = wgs84.notna().to_numpy() & ~wgs84.is_empty.to_numpy()
    if not present.any():
        return None
    xmin, ymin, xmax, ymax = (float(v) for v in wgs84[present].total_bounds)
    lat = min(max(abs(ymin), abs(ymax)), 85.0)
    dy = reach_m / _M_PER_DEG
    dx = reach_m / (_M_PER_DEG * math.cos(math.radians(lat)))
    return (xmin - dx, ymin - dy, xmax + dx, ymax + dy)


def extract_sites(
    scene: Any, groups: Sequence[SiteGroup], options: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Observations of one scene for the buildings of every site group it reaches.

    Parameters
    ----------
    scene : Scene
        An open scene (:func:`kaesong_thermal.landsat.open_scene`).
    groups : sequence of SiteGroup
        From :func:`site_groups`.
    options : mapping, optional
        Keyword arguments for :func:`kaesong_thermal.extraction.extract`.

    Returns
    -------
    pandas.DataFrame
        The extraction columns. With one group, every building (those outside the scene with
        NaN temperatures and ``valid_fraction`` 0, as ``extract`` gives them); with several,
        only the buildings of the groups whose footprints reach into the scene's bounds, one
        window read per group (no row at all for a group the scene does not reach).
    """
    from kaesong_thermal.extraction import _empty_frame, extract

    opts = dict(options or {})
    if len(groups) == 1:
        return extract(scene, groups[0].footprints, **opts)
    frames = [
        extract(scene, group.footprints, **opts)
        for group in groups
        if group.overlaps(scene.bounds, scene.crs)
    ]
    logger.debug(
        "%s: %d of %d site group(s) in the scene",
        getattr(scene.metadata, "scene_id", "scene"),
        len(frames),
        len(groups),
    )
    if not frames:
        return _empty_frame()
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def per_site_counts(status: pd.DataFrame, sites: pd.Series) -> pd.DataFrame:
    """Buildings per site and status: one row per site, one column per status, and a total.

    Parameters
    ----------
    status : pandas.DataFrame
        ``Analysis.status()`` (indexed by ``building_id``, a ``status`` column).
    sites : pandas.Series
        Site per ``building_id`` (:func:`site_of`); buildings missing from it count as no site.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``site`` (``"-"`` for buildings without one), columns ``active, changed,
        uncertain, idle, no_data, buildings``, sorted by site.
    """
    labels = sites.reindex(status.index.astype(str))
    frame = pd.DataFrame(
        {
            "site": np.where(labels.isna(), "-", labels.astype(object).to_numpy()),
            "status": status["status"].astype(str).to_numpy(),
        }
    )
    counts = pd.crosstab(frame["site"], frame["status"])
    for col in ("active", "changed", "uncertain", "idle", "no_data"):
        if col not in counts.columns:
            counts[col] = 0
    counts = counts[["active", "changed", "uncertain", "idle", "no_data"]].astype(int)
    counts["buildings"] = counts.sum(axis=1)
    counts.index.name = "site"
    counts.columns.name = None
    return counts.sort_index()
