"""Figures: building time series, building x time heatmaps, scene maps, status maps.

Every function returns a :class:`matplotlib.figure.Figure` built directly (never through
``pyplot``), so the module is safe on headless machines and in worker processes; nothing here calls
``show``. Functions that draw a single panel accept ``ax=`` to draw into an existing Axes (the
figure returned is then ``ax.figure``). Temperatures are shown in degrees Celsius
(``t_c = t_k - 273.15``); anomalies stay in kelvin (a difference of 1 K is 1 degC).

Colour conventions, shared by every figure and the report: ``active`` red, ``idle`` blue,
``uncertain`` orange, ``changed`` (a roof change) purple, ``no_data`` grey. Thermal images use
``inferno``, a perceptually uniform colour map [1]_; anomalies use a diverging map centred on
zero.

References
----------
.. [1] van der Walt, S. and Smith, N. (2015). "A Better Default Colormap for Matplotlib",
   SciPy 2015 (the viridis/inferno/magma family, perceptually uniform and greyscale-safe).
.. [2] U.S. Geological Survey (2019). Landsat 8 (L8) Data Users Handbook, LSDS-1574 v5.0,
   section 4.1 (TIRS bands: 100 m native resolution delivered at 30 m).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import matplotlib
import matplotlib.colors as mcolors
import matplotlib.dates as mdates
import matplotlib.patheffects as mpatheffects
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from kaesong_thermal.errors import AnalysisError

logger = logging.getLogger(__name__)

__all__ = [
    "STATE_COLORS",
    "plot_heatmap",
    "plot_scene_map",
    "plot_small_multiples",
    "plot_status_map",
    "plot_timeseries",
]

#: Zero of the Celsius scale in kelvin.
KELVIN_AT_0C = 273.15

#: One colour per state/status, used by every figure and the report.
STATE_COLORS: dict[str, str] = {
    "active": "#d62728",
    "idle": "#1f77b4",
    "uncertain": "#ff7f0e",
    "changed": "#9467bd",
    "no_data": "#8c8c8c",
}

#: Default z thresholds drawn when the analysis does not say which it used.
DEFAULT_Z_ACTIVE = 3.0
DEFAULT_Z_IDLE = 2.0

_NAN_COLOR = "#d9d9d9"


# --------------------------------------------------------------------------- input helpers


def _observations(analysis_or_obs: Any) -> pd.DataFrame:
    """Return the observations table of an Analysis, or the DataFrame itself."""
    obs = getattr(analysis_or_obs, "observations", analysis_or_obs)
    if not isinstance(obs, pd.DataFrame):
        raise AnalysisError(
            f"plots: expected an Analysis or an observations DataFrame, got {type(obs).__name__}"
        )
    missing = {"building_id", "acquired"} - set(obs.columns)
    if missing:
        raise AnalysisError(f"plots: observations lack column(s) {', '.join(sorted(missing))}")
    return obs


def _naive_utc(values: Any) -> np.ndarray:
    """Datetimes (aware or naive, any container) as naive UTC ``datetime64[ns]`` for matplotlib."""
    idx = pd.DatetimeIndex(pd.to_datetime(pd.Series(values), utc=True))
    return np.asarray(idx.tz_localize(None).to_numpy(dtype="datetime64[ns]"))


def _to_timestamp(value: str | date | datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _params(analysis: Any) -> dict[str, Any]:
    params = getattr(analysis, "params", None)
    return dict(params) if isinstance(params, Mapping) else {}


def _z_thresholds(params: Mapping[str, Any]) -> tuple[float, float]:
    """The (active, idle) z thresholds from ``Analysis.params``, else the classifier defaults."""
    try:
        from kaesong_thermal.classify import ClassifyParams

        z_active, z_idle = float(ClassifyParams().z_active), float(ClassifyParams().z_idle)
    except (ImportError, AttributeError, TypeError):
        z_active, z_idle = DEFAULT_Z_ACTIVE, DEFAULT_Z_IDLE
    for key in ("z_active", "active_z", "z_on", "z_hot", "z_threshold"):
        if isinstance(params.get(key), (int, float)):
            z_active = float(params[key])
            break
    for key in ("z_idle", "idle_z", "z_off", "z_cold"):
        if isinstance(params.get(key), (int, float)):
            z_idle = float(params[key])
            break
    return z_active, z_idle


def baseline_period(params: Mapping[str, Any]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Parse the ``baseline`` parameter (``"START:END"``) of an analysis, if it is a period.

    Parameters
    ----------
    params
        ``Analysis.params``.

    Returns
    -------
    tuple of pandas.Timestamp or None
        Start and end (UTC) of the idle baseline period, or None for ``auto`` or when absent.
    """
    value = params.get("baseline")
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            return _to_timestamp(value[0]), _to_timestamp(value[1])
        except (ValueError, TypeError):
            return None
    if isinstance(value, str) and ":" in value:
        start, _, end = value.partition(":")
        try:
            return _to_timestamp(start), _to_timestamp(end)
        except ValueError:
            return None
    return None


def _events(events: Any) -> list[tuple[pd.Timestamp, str]]:
    """Normalise events: a footprints GeoDataFrame (``attrs["events"]``) or a list of dicts."""
    if events is None:
        return []
    if hasattr(events, "attrs") and not isinstance(events, (list, tuple)):
        events = events.attrs.get("events", [])
    out: list[tuple[pd.Timestamp, str]] = []
    for item in events or []:
        try:
            when = _to_timestamp(item["date"])
        except (KeyError, ValueError, TypeError):
            logger.warning("ignoring malformed event %r (needs 'date' and 'label')", item)
            continue
        out.append((when, str(item.get("label", ""))))
    return out


def _names(footprints: Any) -> dict[str, str]:
    """building_id -> display name (the id when the footprints have no name)."""
    if footprints is None or "name" not in getattr(footprints, "columns", ()):
        return {}
    return {
        str(bid): (str(name) if isinstance(name, str) and name else str(bid))
        for bid, name in footprints["name"].items()
    }


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-free figure with an Agg canvas (so ``fig.canvas.buffer_rgba()`` works)."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _target_ax(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.figure
        if not isinstance(fig, Figure):  # a SubFigure: use its parent figure
            fig = fig.figure
        return fig, ax
    fig = _new_figure(figsize)
    return fig, fig.add_subplot()


# --------------------------------------------------------------------------- time series


def _sigma_total_k(obs: pd.DataFrame) -> np.ndarray:
    """1-sigma uncertainty of the anomaly: measurement and baseline spread in quadrature."""
    sig = obs["sigma_k"] if "sigma_k" in obs else pd.Series(np.nan, index=obs.index)
    base = (
        obs["baseline_sigma_k"] if "baseline_sigma_k" in obs else pd.Series(np.nan, index=obs.index)
    )
    s = np.sqrt(
        np.nan_to_num(sig.to_numpy(dtype=float), nan=0.0) ** 2
        + np.nan_to_num(base.to_numpy(dtype=float), nan=0.0) ** 2
    )
    s[~np.isfinite(sig.to_numpy(dtype=float)) & ~np.isfinite(base.to_numpy(dtype=float))] = np.nan
    return s


def _draw_anomaly_panel(
    ax: Axes,
    obs: pd.DataFrame,
    params: Mapping[str, Any],
    transitions: pd.DataFrame | None,
    events: list[tuple[pd.Timestamp, str]],
    *,
    title: str | None = None,
    compact: bool = False,
) -> None:
    """Anomaly (K) with its 1-sigma band, z thresholds, states, gaps, transitions and events."""
    t = _naive_utc(obs["acquired"])
    anomaly = (
        obs["anomaly_k"].to_numpy(dtype=float) if "anomaly_k" in obs else np.full(len(obs), np.nan)
    )
    state = (
        obs["state"].astype(str).to_numpy()
        if "state" in obs
        else np.where(np.isfinite(anomaly), "uncertain", "no_data")
    )
    sigma = _sigma_total_k(obs)
    z_active, z_idle = _z_thresholds(params)
    valid = np.isfinite(anomaly) & (state != "no_data")

    # the line breaks at gaps (NaN), the band shows +-1 sigma
    line_y = np.where(valid, anomaly, np.nan)
    ax.plot(t, line_y, color="0.35", lw=0.8, zorder=2)
    if np.isfinite(sigma).any():
        ax.fill_between(
            t,
            line_y - sigma,
            line_y + sigma,
            color="0.6",
            alpha=0.35,
            lw=0,
            label="anomaly \u00b11\u03c3",
            zorder=1,
        )
        ax.plot(
            t,
            np.where(valid, z_active * sigma, np.nan),
            color=STATE_COLORS["active"],
            ls="--",
            lw=0.8,
            label=f"active threshold (z = {z_active:g})",
            zorder=1,
        )
        ax.plot(
            t,
            np.where(valid, z_idle * sigma, np.nan),
            color=STATE_COLORS["idle"],
            ls=":",
            lw=0.8,
            label=f"idle threshold (z = {z_idle:g})",
            zorder=1,
        )
    ax.axhline(0.0, color="0.2", lw=0.6)
    for name, colour in STATE_COLORS.items():
        sel = (state == name) & valid
        if sel.any():
            ax.scatter(t[sel], anomaly[sel], s=14 if not compact else 8, color=colour, zorder=3)
    # no-data observations: a grey tick on the bottom edge, so gaps are visible
    nodata = ~valid
    if nodata.any():
        ax.scatter(
            t[nodata],
            np.zeros(int(nodata.sum())),
            marker="|",
            s=60 if not compact else 30,
            color=STATE_COLORS["no_data"],
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            zorder=3,
        )
    if transitions is not None and len(transitions):
        for _, row in transitions.iterrows():
            when = _naive_utc([row["date"]])[0]
            to_status = str(row.get("to_status", ""))
            ax.axvline(when, color=STATE_COLORS.get(to_status, "k"), lw=1.2, alpha=0.8, zorder=0)
            if not compact:
                ax.annotate(
                    f"\u2192 {to_status}",
                    in_layout=False,
                    xy=(when, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(2, -2),
                    textcoords="offset points",
                    fontsize=7,
                    va="top",
                    color=STATE_COLORS.get(to_status, "k"),
                )
    if len(t):
        t0, t1 = t.min(), t.max()
        for when, label in events:
            w = _naive_utc([when])[0]
            if t0 <= w <= t1:
                ax.axvline(w, color="0.1", ls="-.", lw=0.8, zorder=0)
                if not compact:
                    ax.annotate(
                        label[:40],
                        in_layout=False,
                        xy=(w, 0.02),
                        xycoords=("data", "axes fraction"),
                        xytext=(2, 2),
                        textcoords="offset points",
                        fontsize=7,
                        rotation=90,
                        va="bottom",
                        color="0.1",
                    )
    ax.set_ylabel("anomaly (K)")
    if title:
        ax.set_title(title, fontsize=9 if compact else 10, loc="left")
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=8))
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))


def _state_legend_handles() -> list[Any]:
    handles: list[Any] = [
        Line2D([], [], ls="", marker="o", color=c, label=s.replace("_", " "))
        for s, c in STATE_COLORS.items()
        if s != "no_data"
    ]
    handles.append(
        Line2D([], [], ls="", marker="|", ms=9, color=STATE_COLORS["no_data"], label="no data")
    )
    return handles


def plot_timeseries(
    analysis_or_obs: Any,
    building_id: str,
    events: Any = None,
    ax: Axes | None = None,
    *,
    name: str | None = None,
    transitions: pd.DataFrame | None = None,
) -> Figure:
    """Plot one building's thermal history.

    Top panel: roof temperature and background (ring median) temperature in degC. Bottom panel: the
    anomaly above the building's idle baseline (K) with its 1-sigma band (measurement and baseline
    spread in quadrature), the z thresholds expressed in kelvin (``z * sigma``), each observation
    coloured by its state, no-data observations as grey ticks on the time axis (and gaps in the line),
    status transitions as vertical lines and known events (closures, reports) as dash-dot lines.

    Parameters
    ----------
    analysis_or_obs
        An ``Analysis`` (uses ``.observations``, ``.transitions()`` and ``.params``) or an
        observations DataFrame with ``building_id, acquired`` and any of ``t_roof_k,
        t_background_k, anomaly_k, sigma_k, baseline_sigma_k, state``.
    building_id
        The building to plot.
    events
        Known events: a footprints GeoDataFrame (its ``attrs["events"]``) or a list of
        ``{"date": "YYYY-MM-DD", "label": str}``.
    ax
        Draw only the anomaly panel into this Axes (used by :func:`plot_small_multiples`).
    name
        Display name (default: the building id).
    transitions
        Transitions to mark (default: ``analysis.transitions()`` for this building, if available).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    AnalysisError
        If the building has no observation.

    References
    ----------
    .. [1] Iglewicz, B. and Hoaglin, D. C. (1993). How to Detect and Handle Outliers (robust z).
    """
    obs = _observations(analysis_or_obs)
    sel = obs[obs["building_id"].astype(str) == str(building_id)].sort_values("acquired")
    if sel.empty:
        raise AnalysisError(f"plot_timeseries: building {building_id!r} has no observation")
    if transitions is None and hasattr(analysis_or_obs, "transitions"):
        try:
            transitions = analysis_or_obs.transitions()
        except Exception as exc:  # a plot must not fail on a missing optional layer
            logger.warning("no transitions for %s: %s", building_id, exc)
            transitions = None
    if transitions is not None and len(transitions):
        transitions = transitions[transitions["building_id"].astype(str) == str(building_id)]
    params = _params(analysis_or_obs)
    ev = _events(events)
    label = name or str(building_id)

    if ax is not None:
        fig, ax = _target_ax(ax, (6, 2.5))
        _draw_anomaly_panel(ax, sel, params, transitions, ev, title=label, compact=True)
        return fig

    fig = _new_figure((9, 5.5))
    ax_t, ax_a = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.2))
    t = _naive_utc(sel["acquired"])
    state = sel["state"].astype(str).to_numpy() if "state" in sel else np.full(len(sel), "")
    for col, colour, lab in (
        ("t_roof_k", "#b2182b", "roof"),
        ("t_background_k", "#4d4d4d", "background ring"),
    ):
        if col in sel:
            y = sel[col].to_numpy(dtype=float) - KELVIN_AT_0C
            y = np.where(state == "no_data", np.nan, y)
            ax_t.plot(t, y, color=colour, lw=0.9, marker="o", ms=2.5, label=lab)
    ax_t.set_ylabel("temperature (\u00b0C)")
    ax_t.set_title(f"{label}: roof and background temperature, anomaly", loc="left")
    ax_t.legend(loc="upper left", fontsize=7, ncols=2)
    _draw_anomaly_panel(ax_a, sel, params, transitions, ev)
    handles, _ = ax_a.get_legend_handles_labels()
    ax_a.legend(handles=[*handles, *_state_legend_handles()], loc="upper left", fontsize=7, ncols=4)
    for when, _label in ev:  # events on the temperature panel too, unlabeled
        w = _naive_utc([when])[0]
        if len(t) and t.min() <= w <= t.max():
            ax_t.axvline(w, color="0.1", ls="-.", lw=0.8)
    return fig


# --------------------------------------------------------------------------- heatmap


def _order_buildings(obs: pd.DataFrame, value: str, n_recent: int = 5) -> list[str]:
    """Buildings ordered by the mean of their last ``n_recent`` valid values, highest first."""

    def recent(group: pd.DataFrame) -> float:
        v = group.sort_values("acquired")[value].dropna()
        return float(v.tail(n_recent).mean()) if len(v) else -math.inf

    scores = {str(b): recent(g) for b, g in obs.groupby("building_id", sort=True)}
    return sorted(scores, key=lambda b: (-scores[b], b))


def plot_heatmap(
    analysis: Any,
    value: str = "z",
    *,
    order: Sequence[str] | None = None,
    names: Mapping[str, str] | None = None,
    periods: Sequence[tuple[Any, Any, str]] | None = None,
    vmax: float | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Building x time heatmap of the anomaly (robust z or kelvin).

    Rows are buildings, ordered by their recent anomaly (mean of the last five valid values,
    highest at the top) unless ``order`` is given; columns are scenes in time order (one column per
    acquisition, so dense and sparse periods get the same width per scene). No-data cells are light
    grey. The baseline period from ``analysis.params["baseline"]`` and any ``periods`` are drawn as
    labelled brackets above the image; year boundaries are ticked.

    Parameters
    ----------
    analysis
        An ``Analysis`` or an observations DataFrame with ``building_id, acquired, scene_id`` and
        the ``value`` column.
    value
        ``"z"`` (dimensionless) or ``"anomaly_k"`` (K).
    order
        Explicit row order (building ids, top to bottom).
    names
        building_id -> display name for the row labels.
    periods
        Extra labelled periods: ``(start, end, label)``.
    vmax
        Colour scale limit (symmetric); default the 98th percentile of ``|value|``.
    ax
        Axes to draw into.

    Returns
    -------
    matplotlib.figure.Figure
        The image is ``ax.images[0]``; its array has shape (buildings, scenes).
    """
    if value not in ("z", "anomaly_k"):
        raise AnalysisError(f"plot_heatmap: value must be 'z' or 'anomaly_k', not {value!r}")
    obs = _observations(analysis)
    if value not in obs:
        raise AnalysisError(f"plot_heatmap: observations lack column {value!r}")
    obs = obs.copy()
    obs["building_id"] = obs["building_id"].astype(str)
    obs["_t"] = _naive_utc(obs["acquired"])
    if "state" in obs:
        obs.loc[obs["state"].astype(str) == "no_data", value] = np.nan
    scene_key = "scene_id" if "scene_id" in obs else "_t"
    scenes = obs.groupby(scene_key)["_t"].min().sort_values()
    rows = list(order) if order is not None else _order_buildings(obs, value)
    grid = (
        obs.pivot_table(index="building_id", columns=scene_key, values=value, aggfunc="mean")
        .reindex(index=rows, columns=scenes.index)
        .to_numpy(dtype=float)
    )
    finite = np.abs(grid[np.isfinite(grid)])
    if vmax is None:
        vmax = float(np.percentile(finite, 98)) if finite.size else 1.0
        vmax = max(vmax, 1.0 if value == "z" else 0.5)
    fig, ax = _target_ax(ax, (10, 0.28 * len(rows) + 2.2))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad=_NAN_COLOR)
    im = ax.imshow(
        np.ma.masked_invalid(grid),
        aspect="auto",
        interpolation="nearest",
        cmap=cmap,
        norm=mcolors.TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax),
    )
    label_of = dict(names or {})
    ax.set_yticks(np.arange(len(rows)), [label_of.get(b, b) for b in rows], fontsize=7)
    times = pd.DatetimeIndex(scenes.to_numpy())
    years = times.year.to_numpy()
    first_of_year: Any = np.flatnonzero(np.r_[True, years[1:] != years[:-1]]) if len(years) else []
    ax.set_xticks(first_of_year, [str(years[i]) for i in first_of_year], fontsize=7)
    ax.set_xlabel(f"scenes in time order ({len(times)} acquisitions)")
    unit = "robust z" if value == "z" else "anomaly (K)"
    fig.colorbar(im, ax=ax, label=unit, shrink=0.8, pad=0.01)

    spans: list[tuple[pd.Timestamp, pd.Timestamp, str]] = []
    base = baseline_period(_params(analysis))
    if base is not None:
        spans.append((base[0], base[1], "idle baseline"))
    for start, end, lab in periods or []:
        spans.append((_to_timestamp(start), _to_timestamp(end), str(lab)))
    naive = times.to_numpy()
    for i, (start, end, lab) in enumerate(spans):
        s, e = _naive_utc([start])[0], _naive_utc([end])[0]
        inside = np.flatnonzero((naive >= s) & (naive <= e))
        if not inside.size:
            continue
        y = 1.02 + 0.06 * i
        x0, x1 = inside[0] - 0.5, inside[-1] + 0.5
        ax.plot(
            [x0, x0, x1, x1],
            [y - 0.015, y, y, y - 0.015],
            transform=ax.get_xaxis_transform(),
            color="0.15",
            lw=1,
            clip_on=False,
        )
        ax.text(
            (x0 + x1) / 2,
            y + 0.005,
            lab,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_title(
        f"{unit} per building and scene (rows: highest recent anomaly first)",
        loc="left",
        fontsize=10,
        pad=14 + 12 * len(spans),
    )
    return fig


# --------------------------------------------------------------------------- maps


def _nice_length_m(span_m: float) -> float:
    """A round scale-bar length of about a fifth of ``span_m``."""
    target = max(span_m / 5.0, 1.0)
    exp = 10 ** math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * exp <= target:
            return float(m * exp)
    return float(exp)


def _scale_bar(ax: Axes, crs: Any) -> None:
    """Draw a scale bar in the lower-left corner (projected CRS in metres only)."""
    try:
        projected = bool(crs is not None and crs.is_projected)
        unit = str(crs.linear_units).lower() if projected else ""
    except AttributeError:
        projected, unit = False, ""
    if not projected or unit not in ("metre", "meter", "m", "metres", "meters"):
        logger.debug("no scale bar: CRS %s is not projected in metres", crs)
        return
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = _nice_length_m(abs(x1 - x0))
    bx = min(x0, x1) + 0.05 * abs(x1 - x0)
    by = min(y0, y1) + 0.06 * abs(y1 - y0)
    halo = [mpatheffects.withStroke(linewidth=4, foreground="white")]
    ax.plot([bx, bx + length], [by, by], color="black", lw=3, path_effects=halo, zorder=6)
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(
        bx + length / 2,
        by + 0.015 * abs(y1 - y0),
        text,
        ha="center",
        va="bottom",
        fontsize=8,
        path_effects=halo,
        zorder=6,
    )


def _status_of(status: Any) -> dict[str, str]:
    """building_id -> status string from a status DataFrame, Series or mapping."""
    if status is None:
        return {}
    if isinstance(status, pd.DataFrame):
        status = status["status"]
    if isinstance(status, pd.Series):
        return {str(k): str(v) for k, v in status.items()}
    return {str(k): str(v) for k, v in dict(status).items()}


def _geoms_in(footprints: Any, crs: Any) -> Any:
    if footprints.crs is None:
        raise AnalysisError("plot map: footprints have no CRS")
    return footprints.to_crs(crs) if crs is not None else footprints


def _draw_outlines(
    ax: Axes,
    gdf: Any,
    statuses: Mapping[str, str],
    *,
    fill_alpha: float = 0.0,
    labels: bool = True,
    linewidth: float = 1.6,
) -> set[str]:
    """Outline (and optionally fill) every footprint in its status colour; return the statuses."""
    from shapely.geometry import MultiPolygon, Polygon

    drawn: set[str] = set()

    halo = [mpatheffects.withStroke(linewidth=linewidth + 2.0, foreground="white")]
    names = _names(gdf)
    for bid, geom in gdf.geometry.items():
        if geom is None or geom.is_empty:
            continue
        st = statuses.get(str(bid), "no_data" if statuses else "")
        colour = STATE_COLORS.get(st, "#00e5ff")
        drawn.add(st)
        polys = (
            list(geom.geoms)
            if isinstance(geom, MultiPolygon)
            else [geom]
            if isinstance(geom, Polygon)
            else []
        )
        for poly in polys:
            x, y = poly.exterior.xy
            if fill_alpha > 0:
                ax.fill(x, y, color=colour, alpha=fill_alpha, lw=0, zorder=3)
            ax.plot(x, y, color=colour, lw=linewidth, path_effects=halo, zorder=4)
        if labels:
            p = geom.representative_point()
            ax.annotate(
                names.get(str(bid), str(bid)),
                xy=(p.x, p.y),
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                fontsize=6.5,
                path_effects=[mpatheffects.withStroke(linewidth=2, foreground="white")],
                zorder=5,
                annotation_clip=True,
            )
    return drawn


def _status_legend(ax: Axes, drawn: set[str], extra: Sequence[Any] = ()) -> None:
    present = [s for s in STATE_COLORS if s in drawn]
    handles: list[Any] = [
        Patch(facecolor="none", edgecolor=STATE_COLORS[s], lw=2, label=s.replace("_", " "))
        for s in present
    ]
    handles.extend(extra)
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.85)


def plot_scene_map(
    window: Any,
    footprints: Any,
    status: Any = None,
    ax: Axes | None = None,
    *,
    labels: bool = True,
    vmin_c: float | None = None,
    vmax_c: float | None = None,
) -> Figure:
    """Map of one thermal window with the footprints outlined and coloured by status.

    The surface (Level-2) or brightness (Level-1) temperature is shown in degC with the perceptually
    uniform ``inferno`` colour map [1]_; pixels flagged cloud, cloud shadow, cirrus or dilated cloud
    are overlaid grey and hatched; other invalid pixels (fill, outside the scene) are left blank.
    Footprints are reprojected to the window's CRS and outlined in their status colour (cyan when
    no status is given), with their names, a scale bar (projected CRS in metres) and the acquisition
    date in the title. The pixels are the 30 m delivery grid of a 100 m native band [2]_: a small
    roof's heat is spread over its neighbours.

    Parameters
    ----------
    window
        A ``ThermalWindow`` (``kelvin``, ``valid``, ``cloud``, ``transform``, ``crs``, ``metadata``).
    footprints
        GeoDataFrame indexed by ``building_id`` (any CRS).
    status
        ``Analysis.status()`` DataFrame, a Series or a mapping building_id -> status.
    ax
        Axes to draw into.
    labels
        Write the building names.
    vmin_c, vmax_c
        Colour scale limits (degC); default the 2nd and 98th percentiles of the valid pixels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    kelvin = np.asarray(window.kelvin, dtype=float)
    valid = np.asarray(getattr(window, "valid", np.isfinite(kelvin)), dtype=bool)
    cloud = getattr(window, "cloud", None)
    transform = window.transform
    rows, cols = kelvin.shape
    # extent from the affine transform (north-up grids)
    left, top = transform.c, transform.f
    right = left + transform.a * cols
    bottom = top + transform.e * rows
    extent = (left, right, bottom, top)
    temp_c = np.where(valid & np.isfinite(kelvin), kelvin - KELVIN_AT_0C, np.nan)
    finite = temp_c[np.isfinite(temp_c)]
    if vmin_c is None:
        vmin_c = float(np.percentile(finite, 2)) if finite.size else 0.0
    if vmax_c is None:
        vmax_c = float(np.percentile(finite, 98)) if finite.size else 1.0
    if vmax_c <= vmin_c:
        vmax_c = vmin_c + 1.0
    fig, ax = _target_ax(ax, (7.5, 6.5))
    cmap = matplotlib.colormaps["inferno"].with_extremes(bad=(1, 1, 1, 0))
    im = ax.imshow(
        np.ma.masked_invalid(temp_c),
        extent=extent,
        origin="upper",
        cmap=cmap,
        vmin=vmin_c,
        vmax=vmax_c,
        interpolation="nearest",
        zorder=1,
    )
    fig.colorbar(im, ax=ax, label="temperature (\u00b0C)", shrink=0.8)
    extra: list[Any] = []
    if cloud is not None and np.asarray(cloud, dtype=bool).any():
        cl = np.asarray(cloud, dtype=bool).astype(float)
        xs = left + transform.a * (np.arange(cols) + 0.5)
        ys = top + transform.e * (np.arange(rows) + 0.5)
        ax.imshow(
            np.ma.masked_where(cl < 0.5, cl),
            extent=extent,
            origin="upper",
            cmap=mcolors.ListedColormap(["#9e9e9e"]),
            alpha=0.75,
            interpolation="nearest",
            zorder=2,
        )
        ax.contourf(xs, ys, cl, levels=[0.5, 1.5], colors="none", hatches=["////"], zorder=2)
        extra.append(Patch(facecolor="#9e9e9e", hatch="////", edgecolor="0.3", label="cloud"))
    statuses = _status_of(status)
    gdf = _geoms_in(footprints, window.crs)
    drawn = _draw_outlines(ax, gdf, statuses, labels=labels)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_aspect("equal")
    _scale_bar(ax, window.crs)
    _status_legend(ax, drawn, extra)
    meta = getattr(window, "metadata", None)
    acquired = getattr(window, "acquired", None) or getattr(meta, "acquired", None)
    scene_id = getattr(window, "scene_id", None) or getattr(meta, "scene_id", "")
    when = pd.Timestamp(acquired).strftime("%Y-%m-%d %H:%M UTC") if acquired is not None else "?"
    note = "" if finite.size else " (no valid pixel)"
    ax.set_title(f"{scene_id}\nacquired {when}{note}", fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    ax.ticklabel_format(useOffset=False, style="plain")
    crs_name = getattr(window.crs, "to_string", lambda: str(window.crs))()
    ax.set_xlabel(f"easting, northing (m, {crs_name})", fontsize=8)
    return fig


def plot_status_map(
    footprints: Any,
    status: Any,
    ax: Axes | None = None,
    *,
    labels: bool = True,
    title: str | None = None,
) -> Figure:
    """Map of the footprints filled and outlined by status.

    Drawn in the footprints' CRS when it is projected, otherwise in their local UTM zone (so the
    scale bar is in metres and shapes are not stretched).

    Parameters
    ----------
    footprints
        GeoDataFrame indexed by ``building_id`` (any CRS).
    status
        ``Analysis.status()`` DataFrame, a Series or a mapping building_id -> status.
    ax
        Axes to draw into.
    labels
        Write the building names.
    title
        Figure title (default: counts per status).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if footprints.crs is None:
        raise AnalysisError("plot_status_map: footprints have no CRS")
    crs = footprints.crs if footprints.crs.is_projected else footprints.estimate_utm_crs()
    gdf = footprints.to_crs(crs)
    statuses = _status_of(status)
    fig, ax = _target_ax(ax, (7.5, 6.5))
    drawn = _draw_outlines(ax, gdf, statuses, fill_alpha=0.45, labels=labels, linewidth=1.2)
    x0, y0, x1, y1 = gdf.total_bounds
    pad = 0.08 * max(x1 - x0, y1 - y0, 100.0)
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y0 - pad, y1 + pad)
    ax.set_aspect("equal")
    _scale_bar(ax, crs)
    _status_legend(ax, drawn)
    counts = pd.Series(list(statuses.values()), dtype=str).value_counts()
    default_title = "status: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATE_COLORS)
    ax.set_title(title or default_title, fontsize=10, loc="left")
    ax.tick_params(labelsize=7)
    ax.ticklabel_format(useOffset=False, style="plain")
    return fig


# --------------------------------------------------------------------------- small multiples


def plot_small_multiples(
    analysis: Any,
    n: int = 6,
    *,
    names: Mapping[str, str] | None = None,
    events: Any = None,
    ncols: int = 2,
) -> Figure:
    """Anomaly histories of the ``n`` most anomalous buildings, one small panel each.

    Buildings are ranked by the absolute robust z of their current status (``analysis.status()``)
    or, for a plain observations table, by their last valid z. Panels share the time and anomaly
    axes, so amplitudes compare directly.

    Parameters
    ----------
    analysis
        An ``Analysis`` or an observations DataFrame.
    n
        Number of buildings.
    names
        building_id -> display name.
    events
        Known events (see :func:`plot_timeseries`).
    ncols
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    obs = _observations(analysis)
    ranking: pd.Series
    status = None
    if hasattr(analysis, "status"):
        try:
            status = analysis.status()
        except Exception as exc:
            logger.warning("small multiples: no status (%s); ranking by last z", exc)
    if status is not None and "z" in status:
        ranking = status["z"].astype(float).abs()
        ranking.index = ranking.index.astype(str)
    else:
        key = "z" if "z" in obs else "anomaly_k"
        last = obs.dropna(subset=[key]).sort_values("acquired").groupby("building_id")[key].last()
        ranking = last.abs()
        ranking.index = ranking.index.astype(str)
    chosen = list(ranking.sort_values(ascending=False, na_position="last").index[: max(n, 1)])
    nrows = max(1, math.ceil(len(chosen) / ncols))
    fig = _new_figure((4.6 * ncols, 2.1 * nrows + 0.6))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False))
    flat = axes.ravel()
    label_of = dict(names or {})
    for ax, bid in zip(flat, chosen, strict=False):
        plot_timeseries(analysis, bid, events=events, ax=ax, name=label_of.get(bid, bid))
    for ax in flat[len(chosen) :]:
        ax.set_visible(False)
    fig.suptitle(f"the {len(chosen)} most anomalous buildings (anomaly, K)", fontsize=11)
    fig.legend(handles=_state_legend_handles(), loc="outside lower center", ncols=4, fontsize=7)
    return fig


def figure_to_png(fig: Figure, *, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes (Agg canvas, no pyplot).

    Parameters
    ----------
    fig
        The figure.
    dpi
        Resolution in dots per inch.

    Returns
    -------
    bytes
        The PNG file content.
    """
    import io

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
