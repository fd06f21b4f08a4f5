"""The report: what became active since the last look, as HTML, Markdown and JSON.

:func:`write_report` gathers the facts once (:func:`report_facts`) and renders them three ways, so
the three files always agree:

- ``report.html``: ONE self-contained file: figures are PNG embedded as ``data:`` URIs, the style
  sheet is inline, there is no script, web font or external link, so it opens offline, in a mail
  attachment or an air-gapped browser. Rendered by jinja2 with autoescaping on, so building names
  and notes from an analyst's footprint file are shown as text, never interpreted as markup [1]_.
- ``report.md``: the same facts for a wiki or a terminal.
- ``report.json``: the same facts, machine-readable (dates ISO 8601 UTC, kelvin in ``*_k``).

``since="last"`` reports the transitions after the as-of date of the previous report recorded in
the store (:meth:`Store.last_report`); the new report is then recorded in the store.

References
----------
.. [1] OWASP, "Cross Site Scripting Prevention Cheat Sheet", rule 1 (HTML-encode untrusted data
   placed in HTML element content), https://cheatsheetseries.owasp.org/
.. [2] Pallets, "Jinja: Autoescaping", https://jinja.palletsprojects.com/en/3.1.x/api/#autoescaping
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kaesong_thermal._time import utc_timestamp as _utc
from kaesong_thermal.classify import episode_starts
from kaesong_thermal.errors import AnalysisError, KaesongThermalError, StoreError

logger = logging.getLogger(__name__)

__all__ = ["ReportResult", "report_facts", "write_report"]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

#: Half-width of the map crop around a newly active building (m).
MAP_HALF_WIDTH_M = 700.0

#: Order of statuses in the status table (after the newly active buildings).
_STATUS_ORDER = {"active": 0, "changed": 1, "uncertain": 2, "idle": 3, "no_data": 4}
#: How many of a building's latest valid scenes the explanation of its verdict looks at.
_EXPLAIN_SCENES = 6
_SIDES = ("east", "north", "west", "south")


def explain_verdict(status: str, rows: pd.DataFrame, timeline_rows: pd.DataFrame) -> str | None:
    """One or two sentences saying why a building is ``changed`` or ``uncertain``, or what was
    left out of its evidence (a background ring warmed on one side) or changed in its model (a
    step of its idle level inside the baseline period).

    Parameters
    ----------
    status : str
        The building's status now.
    rows : pandas.DataFrame
        The building's analysed observations, oldest first.
    timeline_rows : pandas.DataFrame
        Its rows of ``Analysis.timeline`` (valid observations), oldest first.

    Returns
    -------
    str or None
        The explanation; None for an active, idle or no-data building with nothing left out.
    """
    if status == "no_data" or rows.empty:
        return None
    valid = rows.loc[rows.get("state", pd.Series(index=rows.index)).astype(str) != "no_data"]
    recent = valid.tail(_EXPLAIN_SCENES)
    parts: list[str] = []
    if status == "changed":
        ratio = (
            timeline_rows["sun_ratio"].dropna().iloc[-1]
            if "sun_ratio" in timeline_rows and timeline_rows["sun_ratio"].notna().any()
            else None
        )
        share = f"{ratio * 100:.0f} %" if ratio is not None and np.isfinite(ratio) else "a fraction"
        parts.append(
            "Roof changed: its lasting excess over its idle self follows the sun, "
            f"{share} as large under a low sun (mid-October to early March) as under a high sun, "
            "as a new darker roof, a removed roof or a new hot surface beside it would do; process "
            "heat is as large or larger in winter. This is not rated as activity. Its idle "
            "baseline no longer holds: check recent imagery and re-baseline the building."
        )
    if "ring_contaminated" in recent.columns and recent["ring_contaminated"].astype(bool).any():
        hit = recent.loc[recent["ring_contaminated"].astype(bool)]
        side = ""
        if "ring_hot_sector" in hit.columns and hit["ring_hot_sector"].notna().any():
            code = int(hit["ring_hot_sector"].dropna().mode().iloc[0])
            side = f" on its {_SIDES[code % 4]} side"
        excess = hit["ring_hot_sector_k"].median() if "ring_hot_sector_k" in hit else np.nan
        by = f" (warmest quarter {excess:.1f} K above the others)" if np.isfinite(excess) else ""
        parts.append(
            f"Background ring warmed{side} in {len(hit)} of its last {len(recent)} valid scenes"
            f"{by}: an unmapped hot surface next to it (a yard, a new building) that also warms "
            "the roof through the sensor's blur. Those scenes were left out of the evidence."
        )
    stepped = rows["baseline_step"].astype(bool) if "baseline_step" in rows.columns else None
    if stepped is not None and stepped.any():
        when = pd.Timestamp(rows.loc[stepped, "acquired"].min()).strftime("%Y-%m-%d")
        parts.append(
            f"Its idle level stepped on {when}, inside the known-idle baseline period: a change "
            "of the site (a new roof, a demolition, a surface paved beside it), not activity. "
            "Later scenes are tested against its idle level after that date."
        )
    if status == "uncertain" and not parts:
        parts.append(
            "Evidence is mixed: its recent scenes are neither warm enough, long enough, nor "
            "close enough to its idle self for a verdict."
        )
    return " ".join(parts) or None


#: Above this many buildings the report's status table lists only the buildings newly active,
#: active or uncertain (the JSON keeps every building) and the overview is summarised per site.
LARGE_REPORT_BUILDINGS = 300
#: Newly active buildings that get their own time series and map (the others are listed).
MAX_BUILDING_FIGURES = 20
#: Rows of the overview heatmap in a large report (newly active first, then by status and z).
HEATMAP_MAX_ROWS = 60

_CAVEAT_FOOTPRINTS = (
    "Building outlines are approximate placements for demonstration: no public source gives "
    "surveyed outlines of individual Kaesong factories. Replace them with surveyed outlines before "
    "drawing any real conclusion."
)
_CAVEAT_SYNTHETIC = (
    "SYNTHETIC DATA: every scene in this report was produced by the kaesong_thermal simulator. "
    "It demonstrates the method; it is not an observation of Kaesong."
)
_CAVEAT_TIRS = (
    "The Landsat thermal band is 100 m natively (delivered at 30 m): a roof smaller than about "
    "10,000 m2 is diluted by its surroundings, so small buildings show weaker anomalies and their "
    "verdicts carry less confidence."
)
_CAVEAT_DAYTIME = (
    "Landsat passes around 11:10 local time: sun-heated roofs are warm whether or not they work. "
    "The anomaly is relative to each building's own idle baseline, after removing what all roofs "
    "did in the same scene; it is evidence of heat, not proof of production."
)


@dataclass(frozen=True)
class ReportResult:
    """Paths of a written report and what it found.

    Attributes
    ----------
    html, md, json
        Paths of ``report.html``, ``report.md`` and ``report.json``.
    newly_active
        Building ids that became active in the reporting window, most recent first.
    since, as_of
        Start (exclusive; None = whole record) and end of the reporting window (UTC).
    report_id
        Id of the report recorded in the store (None without a store).
    """

    html: Path
    md: Path
    json: Path
    newly_active: tuple[str, ...] = ()
    since: pd.Timestamp | None = None
    as_of: pd.Timestamp | None = None
    report_id: int | None = None
    facts: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


# --------------------------------------------------------------------------- small helpers


def _iso(value: Any) -> str | None:
    ts = _utc(value)
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(value: Any) -> str | None:
    ts = _utc(value)
    return None if ts is None else ts.strftime("%Y-%m-%d")


def _num(value: Any, ndigits: int = 3) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if not math.isfinite(f) else round(f, ndigits)


def _jsonable(value: Any) -> Any:
    """Plain JSON types: NaN -> None, timestamps -> ISO strings, numpy scalars -> Python."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (pd.Timestamp, datetime, date, np.datetime64)):
        return _iso(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _num(value, 6)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _png_data_uri(fig: Any, dpi: int = 90) -> str:
    from kaesong_thermal.plots import figure_to_png

    return "data:image/png;base64," + base64.b64encode(figure_to_png(fig, dpi=dpi)).decode("ascii")


def _parse_since(since: Any) -> pd.Timestamp | None:
    if since is None:
        return None
    try:
        ts = _utc(since)
    except (ValueError, TypeError) as exc:
        raise AnalysisError(f"report: since={since!r} is not 'last', a date or None") from exc
    return ts


# --------------------------------------------------------------------------- inputs


def _load_footprints(footprints: Any, store: Any) -> Any:
    """Footprints as a GeoDataFrame indexed by building_id, or None when none is known."""
    import geopandas as gpd

    if isinstance(footprints, gpd.GeoDataFrame):
        return footprints
    if footprints is not None:
        from kaesong_thermal.footprints import load_footprints

        return load_footprints(footprints)
    if store is not None:
        text = store.footprints_geojson()
        if text:
            data = json.loads(text)
            gdf = gpd.GeoDataFrame.from_features(data.get("features", []), crs="EPSG:4326")
            ids = [
                str(f.get("id", f.get("properties", {}).get("building_id")))
                for f in data.get("features", [])
            ]
            gdf.index = pd.Index(ids, name="building_id")
            if "building_id" in gdf.columns:
                gdf = gdf.drop(columns="building_id")
            gdf.attrs["events"] = list(data.get("events", []))
            gdf.attrs["source"] = str(store.path)
            return gdf
    return None


def _analyze_store(store: Any) -> Any:
    """Analyse a store's observations with the baseline and thresholds of its last run."""
    from kaesong_thermal.pipeline import analyze_store

    analysis = analyze_store(store)
    if analysis is None:
        raise StoreError(f"store {store.path}: no observations to report on (run detect first)")
    return analysis


def _looks_synthetic(scenes: pd.DataFrame | None, footprints: Any) -> bool:
    """True when a scene or the footprints come from a simulator output (``scenario.json``)."""
    candidates: list[Path] = []
    if scenes is not None and "source_path" in scenes:
        candidates.extend(Path(str(p)) for p in scenes["source_path"].dropna().head(20))
    source = getattr(footprints, "attrs", {}).get("source") if footprints is not None else None
    if source:
        candidates.append(Path(str(source)))
    for path in candidates:
        for parent in list(path.parents)[:4]:
            if (parent / "scenario.json").is_file():
                return True
    return False


# --------------------------------------------------------------------------- facts


def _obs_valid(obs: pd.DataFrame) -> pd.Series:
    if "state" in obs:
        return obs["state"].astype(str) != "no_data"
    if "valid_fraction" in obs:
        return obs["valid_fraction"].fillna(0.0) >= 0.5
    return obs["t_roof_k"].notna()


def _newly_active(
    transitions: pd.DataFrame, status: pd.DataFrame, since: pd.Timestamp | None
) -> pd.DataFrame:
    """One row per building: its latest start of an active period inside the window.

    A return to ``active`` after a pause of up to 60 days is the same period
    (:func:`kaesong_thermal.classify.episode_starts`).
    """
    if transitions is None or transitions.empty:
        return pd.DataFrame(columns=["building_id", "date", "scene_id"])
    tr = transitions.copy()
    tr["building_id"] = tr["building_id"].astype(str)
    tr = tr[episode_starts(tr)]
    dates = pd.to_datetime(tr["date"], utc=True)
    if since is not None:
        tr = tr[dates > since]
    else:  # whole record: the buildings active now, with the transition that made them so
        active_now = set(status.index[status["status"].astype(str) == "active"].astype(str))
        tr = tr[tr["building_id"].isin(active_now)]
    tr = tr.assign(_d=pd.to_datetime(tr["date"], utc=True)).sort_values("_d")
    tr = tr.groupby("building_id", sort=False).tail(1)
    return tr.sort_values("_d", ascending=False).drop(columns="_d").reset_index(drop=True)


def report_facts(
    analysis: Any,
    *,
    since: Any = None,
    footprints: Any = None,
    scenes: pd.DataFrame | None = None,
    synthetic: bool | None = None,
    figures: bool = True,
    store_path: str | None = None,
) -> dict[str, Any]:
    """Collect everything a report says, as one dictionary (the content of ``report.json``).

    Parameters
    ----------
    analysis
        An ``Analysis`` (``observations``, ``status()``, ``transitions()``, ``params``).
    since
        Start of the reporting window (exclusive), or None for the whole record (then the
        "newly active" buildings are those active now, with the transition that made them so).
    footprints
        GeoDataFrame indexed by ``building_id`` (names, kinds, outline quality, events); optional.
    scenes
        ``Store.scenes()`` (source paths for the map crops, cloud cover); optional.
    synthetic
        Whether the data are simulated (None: detected from a ``scenario.json`` beside the
        products or the footprints).
    figures
        Render the figures (PNG data URIs under the ``"_figures"`` keys, not written to JSON).
    store_path
        The store the analysis came from, for the record.

    Returns
    -------
    dict
        JSON-ready facts; private keys starting with ``_`` hold figures for the HTML only.
    """
    since_ts = _parse_since(since)
    obs = analysis.observations.copy()
    obs["building_id"] = obs["building_id"].astype(str)
    obs["acquired"] = pd.to_datetime(obs["acquired"], utc=True)
    status = analysis.status().copy()
    status.index = status.index.astype(str)
    transitions = analysis.transitions()
    params = dict(getattr(analysis, "params", {}) or {})
    as_of = obs["acquired"].max()
    if synthetic is None:
        synthetic = _looks_synthetic(scenes, footprints)
    names: dict[str, str] = {}
    kinds: dict[str, str] = {}
    quality: dict[str, str] = {}
    if footprints is not None:
        for col, target in (("name", names), ("kind", kinds), ("outline_quality", quality)):
            if col in footprints.columns:
                for bid, v in footprints[col].items():
                    if isinstance(v, str) and v:
                        target[str(bid)] = v

    # scenes in the window
    obs["_valid"] = _obs_valid(obs).to_numpy()
    window = obs if since_ts is None else obs[obs["acquired"] > since_ts]
    per_scene = window.groupby("scene_id").agg(
        acquired=("acquired", "min"), n_valid=("_valid", "sum"), n=("_valid", "size")
    )
    clouded = per_scene[per_scene["n_valid"] == 0].sort_values("acquired")
    cloud_cover: dict[str, float | None] = {}
    source_of: dict[str, str] = {}
    if scenes is not None and len(scenes):
        for _, row in scenes.iterrows():
            cloud_cover[str(row["scene_id"])] = _num(row.get("cloud_cover"), 1)
            if isinstance(row.get("source_path"), str):
                source_of[str(row["scene_id"])] = row["source_path"]

    # newly active buildings
    newly = _newly_active(transitions, status, since_ts)
    newly_items: list[dict[str, Any]] = []
    # the evidence rows of every newly active building, found in one pass over the observations
    newly_bids = set(newly["building_id"].astype(str)) if len(newly) else set()
    candidates = obs[obs["building_id"].isin(newly_bids)] if newly_bids else obs.iloc[:0]
    by_building = {str(b): g for b, g in candidates.groupby("building_id", sort=False)}
    for _, tr in newly.iterrows():
        bid = str(tr["building_id"])
        st = status.loc[bid] if bid in status.index else None
        evidence_ids = [str(s) for s in (tr.get("evidence") or [])] or [str(tr["scene_id"])]
        own = by_building.get(bid, obs.iloc[:0])
        ev_obs = own[own["scene_id"].astype(str).isin(evidence_ids)]
        evidence = [
            {
                "scene_id": str(r["scene_id"]),
                "acquired": _iso(r["acquired"]),
                "state": str(r.get("state", "")),
                "anomaly_k": _num(r.get("anomaly_k")),
                "z": _num(r.get("z")),
                "sigma_k": _num(r.get("sigma_k")),
                "t_roof_c": _num(float(r.get("t_roof_k", np.nan)) - 273.15, 2),
                "valid_fraction": _num(r.get("valid_fraction")),
            }
            for _, r in ev_obs.sort_values("acquired").iterrows()
        ]
        newly_items.append(
            {
                "building_id": bid,
                "name": names.get(bid, bid),
                "kind": kinds.get(bid),
                "date": _iso(tr["date"]),
                "scene_id": str(tr["scene_id"]),
                "from_status": str(tr.get("from_status", "")),
                "anomaly_k": _num(tr.get("anomaly_k")),
                "z": _num(tr.get("z")),
                "status_now": None if st is None else str(st["status"]),
                "confidence": None if st is None else _num(st.get("confidence"), 2),
                "evidence": evidence,
                "scene_source": source_of.get(str(tr["scene_id"])),
            }
        )
    newly_ids = [item["building_id"] for item in newly_items]

    # status table: newly active first, then by status and anomaly
    timeline = analysis.timeline if hasattr(analysis, "timeline") else pd.DataFrame()
    obs_by = {str(k): g for k, g in obs.groupby("building_id", sort=False)}
    tl_by = (
        {str(k): g for k, g in timeline.groupby("building_id", sort=False)} if len(timeline) else {}
    )
    buildings: list[dict[str, Any]] = []
    for bid, st in status.iterrows():
        buildings.append(
            {
                "building_id": str(bid),
                "name": names.get(str(bid), str(bid)),
                "kind": kinds.get(str(bid)),
                "status": str(st["status"]),
                "confidence": _num(st.get("confidence"), 2),
                "since": _iso(st.get("since")),
                "last_valid": _iso(st.get("last_valid")),
                "n_valid": int(st["n_valid"]) if _num(st.get("n_valid")) is not None else 0,
                "anomaly_k": _num(st.get("anomaly_k"), 2),
                "z": _num(st.get("z"), 2),
                "newly_active": str(bid) in newly_ids,
                "explanation": explain_verdict(
                    str(st["status"]),
                    obs_by.get(str(bid), obs.iloc[:0]).sort_values("acquired"),
                    tl_by.get(str(bid), pd.DataFrame()),
                ),
            }
        )
    buildings.sort(
        key=lambda b: (
            not b["newly_active"],
            _STATUS_ORDER.get(b["status"], 9),
            -(b["z"] if b["z"] is not None else -1e9),
            b["building_id"],
        )
    )
    counts = {s: sum(b["status"] == s for b in buildings) for s in _STATUS_ORDER}
    large = len(buildings) > LARGE_REPORT_BUILDINGS
    shown = (
        [b for b in buildings if b["newly_active"] or b["status"] in ("active", "uncertain")]
        if large
        else buildings
    )
    sites = _site_summary(status, footprints, newly_ids)

    # data quality
    if "baseline_k" in obs:
        has_baseline = obs["baseline_k"].notna().groupby(obs["building_id"]).any()
        no_baseline = sorted(str(b) for b in has_baseline.index[~has_baseline.to_numpy()])
    else:
        no_baseline = []
    levels = sorted(obs["level"].dropna().astype(str).unique()) if "level" in obs else []
    sensors = (
        {str(k): int(v) for k, v in obs.groupby("sensor")["scene_id"].nunique().items()}
        if "sensor" in obs
        else {}
    )
    n_obs = len(window)
    quality_facts = {
        "n_scenes_total": int(obs["scene_id"].nunique()),
        "n_observations": int(n_obs),
        "n_no_data": int((~window["_valid"]).sum()),
        "no_data_fraction": _num((~window["_valid"]).mean() if n_obs else None),
        "sensors": sensors,
        "levels": levels,
        "mixed_levels": len(levels) > 1,
        "buildings_without_baseline": no_baseline,
        "clouded_scenes": [
            {
                "scene_id": str(sid),
                "acquired": _iso(row["acquired"]),
                "cloud_cover": cloud_cover.get(str(sid)),
            }
            for sid, row in clouded.iterrows()
        ],
    }

    caveats = [_CAVEAT_TIRS, _CAVEAT_DAYTIME]
    approximate = footprints is None or any(q == "approximate" for q in quality.values())
    if approximate:
        caveats.insert(0, _CAVEAT_FOOTPRINTS)
    if synthetic:
        caveats.insert(0, _CAVEAT_SYNTHETIC)
    if len(levels) > 1:
        caveats.append(
            "Level-1 brightness temperatures and Level-2 surface temperatures are both present: "
            "they differ by the atmospheric and emissivity correction and should not share one "
            "baseline."
        )
    if no_baseline:
        listed = ", ".join(no_baseline[:50]) + (
            f" and {len(no_baseline) - 50} more" if len(no_baseline) > 50 else ""
        )
        caveats.append(
            f"{len(no_baseline)} building(s) have no usable idle baseline, so no verdict: " + listed
        )

    facts: dict[str, Any] = {
        "title": "Kaesong thermal report" + (" (synthetic data)" if synthetic else ""),
        "generated": _iso(datetime.now(timezone.utc)),
        "synthetic": bool(synthetic),
        "store": store_path,
        "since": _iso(since_ts),
        "as_of": _iso(as_of),
        "period": {"start": _iso(obs["acquired"].min()), "end": _iso(as_of)},
        "window": {
            "start": _iso(since_ts) if since_ts is not None else _iso(obs["acquired"].min()),
            "end": _iso(as_of),
        },
        "scenes": {
            "in_window": len(per_scene),
            "used": int((per_scene["n_valid"] > 0).sum()),
            "clouded": len(clouded),
            "total": int(obs["scene_id"].nunique()),
        },
        "status_counts": counts,
        "newly_active": newly_items,
        "buildings": buildings,
        "_buildings_shown": shown,
        "buildings_omitted": len(buildings) - len(shown),
        "large": large,
        "sites": sites,
        "data_quality": quality_facts,
        "params": _jsonable(params),
        "caveats": caveats,
        "footprints_source": getattr(footprints, "attrs", {}).get("source")
        if footprints is not None
        else None,
    }
    if figures:
        heat_rows = [b["building_id"] for b in buildings[:HEATMAP_MAX_ROWS]] if large else None
        _add_figures(facts, analysis, footprints, status, names, newly_items, heat_rows=heat_rows)
    return facts


def _site_summary(
    status: pd.DataFrame, footprints: Any, newly_ids: list[str]
) -> list[dict[str, Any]]:
    """Buildings per site and status, and the newly active per site (empty without sites)."""
    from kaesong_thermal.sites import has_sites, per_site_counts, site_of

    if footprints is None or not has_sites(footprints):
        return []
    sites = site_of(footprints)
    sites.index = sites.index.astype(str)
    counts = per_site_counts(status, sites)
    newly = sites.reindex(newly_ids).fillna("-").value_counts()
    return [
        {
            "site": str(site),
            **{str(k): int(v) for k, v in row.items()},
            "newly_active": int(newly.get(site, 0)),
        }
        for site, row in counts.iterrows()
    ]


def _map_crop(item: dict[str, Any], footprints: Any, status: pd.DataFrame) -> dict[str, Any]:
    """The scene that tipped a building, cropped around it; or why it cannot be shown."""
    source = item.get("scene_source")
    if footprints is None or item["building_id"] not in footprints.index:
        return {"figure": None, "message": "no footprint for this building: no map"}
    if not source:
        return {"figure": None, "message": "the scene's source path is not recorded: no map"}
    try:
        from kaesong_thermal.landsat import open_scene
        from kaesong_thermal.plots import plot_scene_map

        scene = open_scene(source)
        crs = scene.crs
        local = footprints.to_crs(crs)
        cx, cy = local.loc[[item["building_id"]]].geometry.iloc[0].centroid.coords[0]
        h = MAP_HALF_WIDTH_M
        window = scene.read_kelvin(bounds=(cx - h, cy - h, cx + h, cy + h), crs=crs)
        minx, miny, maxx, maxy = window.bounds
        near = local.cx[minx:maxx, miny:maxy]
        fig = plot_scene_map(window, near, status=status)
        return {"figure": _png_data_uri(fig), "message": None}
    except (KaesongThermalError, OSError, ImportError, ValueError) as exc:
        logger.warning("map of %s for %s: %s", source, item["building_id"], exc)
        return {
            "figure": None,
            "message": f"scene source no longer readable ({source}): {exc}",
        }


def _add_figures(
    facts: dict[str, Any],
    analysis: Any,
    footprints: Any,
    status: pd.DataFrame,
    names: Mapping[str, str],
    newly_items: list[dict[str, Any]],
    *,
    heat_rows: list[str] | None = None,
) -> None:
    from kaesong_thermal.plots import (
        plot_heatmap,
        plot_small_multiples,
        plot_status_map,
        plot_timeseries,
    )
    from kaesong_thermal.sites import has_sites

    figs: dict[str, Any] = {}
    # one map of all the footprints only when they are one zone and not too many to see
    if footprints is not None and heat_rows is None and not has_sites(footprints):
        figs["status_map"] = _png_data_uri(plot_status_map(footprints, status))
    figs["heatmap"] = _png_data_uri(plot_heatmap(analysis, "z", names=names, order=heat_rows))
    figs["small_multiples"] = _png_data_uri(plot_small_multiples(analysis, n=6, names=names))
    facts["_figures"] = figs
    for rank, item in enumerate(newly_items):
        if rank >= MAX_BUILDING_FIGURES:
            item["_timeseries"] = None
            item["_map"] = None
            item["map_note"] = (
                f"{len(newly_items)} buildings newly active: figures for the first "
                f"{MAX_BUILDING_FIGURES} only"
            )
            continue
        bid = item["building_id"]
        item["_timeseries"] = _png_data_uri(
            plot_timeseries(analysis, bid, events=footprints, name=item["name"])
        )
        crop = _map_crop(item, footprints, status)
        item["_map"] = crop["figure"]
        item["map_note"] = crop["message"]


# --------------------------------------------------------------------------- rendering


def _environment(*, html: bool) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )

    def fmt(value: Any, spec: str = ".2f", missing: str = "\u2013") -> str:
        return missing if value is None else format(value, spec)

    def md_text(value: Any) -> str:
        """Markdown-safe text: HTML special characters and table pipes escaped."""
        text = "" if value is None else str(value)
        for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
            text = text.replace(old, new)
        return text.replace("\n", " ")

    env.filters["fmt"] = fmt
    env.filters["day"] = lambda v: _day(v) or "\u2013"
    env.filters["md"] = md_text
    return env


def render_html(facts: Mapping[str, Any]) -> str:
    """Render the self-contained HTML report (autoescaped)."""
    return str(_environment(html=True).get_template("report.html.j2").render(f=facts))


def render_markdown(facts: Mapping[str, Any]) -> str:
    """Render the Markdown report."""
    return str(_environment(html=False).get_template("report.md.j2").render(f=facts))


def _public(facts: Any) -> Any:
    """Facts without the private (figure) keys."""
    if isinstance(facts, Mapping):
        return {k: _public(v) for k, v in facts.items() if not str(k).startswith("_")}
    if isinstance(facts, list):
        return [_public(v) for v in facts]
    return facts


def _write_texts(out: Path, texts: Mapping[Path, str]) -> None:
    """Write each file through a temporary name and a rename, so none is ever half-written.

    Raises
    ------
    KaesongThermalError
        ``out`` cannot be created or a file in it cannot be written.
    """
    tmps: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, text in texts.items():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmps.append(tmp)
            tmp.write_text(text, encoding="utf-8")
        for path, tmp in zip(texts, tmps, strict=True):
            os.replace(tmp, path)
    except OSError as exc:
        raise KaesongThermalError(
            f"{exc.filename or out}: cannot write the report ({exc.strerror or exc})"
        ) from exc
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def write_report(
    store_or_analysis: Any,
    out_dir: str | os.PathLike[str],
    *,
    since: Any = "last",
    footprints: Any = None,
    synthetic: bool | None = None,
) -> ReportResult:
    """Write ``report.html``, ``report.md`` and ``report.json`` into ``out_dir``.

    Parameters
    ----------
    store_or_analysis
        A store (path or :class:`~kaesong_thermal.store.Store`), analysed with the baseline and
        thresholds of its last ``detect`` run; or an ``Analysis`` (nothing is recorded then).
    out_dir
        Output directory (created if needed).
    since
        ``"last"``: since the as-of date of the previous report recorded in the store (the whole
        record when there is none); a date (str, date, datetime): transitions after it; None: the
        whole record (the newly active buildings are then those active now).
    footprints
        Footprint file or GeoDataFrame (names, kinds, known events, map outlines). Default: the
        footprint set stored in the store.
    synthetic
        Mark the report as built on simulated data (None: detect a simulator output).

    Returns
    -------
    ReportResult

    Raises
    ------
    StoreError
        The store cannot be opened or holds no observation.
    KaesongThermalError
        ``out_dir`` is a file or cannot be written.
    AnalysisError
        ``since`` is not understood or the analysis lacks required columns.
    """
    from kaesong_thermal.store import Store

    out = Path(out_dir)
    blocker = next((a for a in (out, *out.parents) if a.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise KaesongThermalError(f"{out}: {blocker} is a file; the report needs a directory")
    store: Any = None
    owns_store = False
    if isinstance(store_or_analysis, (str, os.PathLike)):
        path = Path(store_or_analysis)
        if path.is_dir():
            raise StoreError(f"store {path}: is a directory, not a store file")
        if not path.is_file():
            raise StoreError(f"store {path}: no such file (run `kaesong-thermal detect` first)")
        store = Store(path, create=False)
        owns_store = True
    elif isinstance(store_or_analysis, Store):
        store = store_or_analysis
    try:
        if store is not None:
            analysis = _analyze_store(store)
            scenes = store.scenes()
        else:
            analysis = store_or_analysis
            scenes = None
            if not hasattr(analysis, "observations") or not hasattr(analysis, "status"):
                raise AnalysisError(
                    f"report: expected a store path, a Store or an Analysis, got "
                    f"{type(store_or_analysis).__name__}"
                )
        if isinstance(since, str) and since == "last":
            previous = store.last_report() if store is not None else None
            since_value = None if previous is None else previous.get("as_of")
            logger.info("report since the previous report: %s", since_value or "none, everything")
        else:
            since_value = since
        gdf = _load_footprints(footprints, store)
        facts = report_facts(
            analysis,
            since=since_value,
            footprints=gdf,
            scenes=scenes,
            synthetic=synthetic,
            store_path=None if store is None else str(store.path),
        )
        html_path, md_path, json_path = out / "report.html", out / "report.md", out / "report.json"
        texts = {
            html_path: render_html(facts),
            md_path: render_markdown(facts),
            json_path: json.dumps(_jsonable(_public(facts)), indent=2, ensure_ascii=False) + "\n",
        }
        _write_texts(out, texts)
        report_id = None
        if store is not None:
            report_id = store.record_report(html_path, as_of=facts["as_of"], since=facts["since"])
        logger.info("report written to %s", html_path)
        return ReportResult(
            html=html_path,
            md=md_path,
            json=json_path,
            newly_active=tuple(item["building_id"] for item in facts["newly_active"]),
            since=_utc(facts["since"]),
            as_of=_utc(facts["as_of"]),
            report_id=report_id,
            facts=_public(facts),
        )
    finally:
        if owns_store:
            store.close()
