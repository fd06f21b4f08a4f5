"""Figures: content checks on the rendered pixels and on the artists, not just "a file exists".

The factories (tests/_plot_factories.py, shared with the report tests) build a set of buildings
whose anomalies are known (one switches on in mid-2023), analysed by the real ``kt.analyze``.
"""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from _plot_factories import (
    BUILDINGS,
    EXCESS_K,
    SWITCH_ON,
    make_analysis,
    make_footprints,
    make_window,
)
from matplotlib.figure import Figure

import kaesong_thermal as kt
from kaesong_thermal import plots
from kaesong_thermal.errors import AnalysisError


@pytest.fixture(scope="module")
def analysis() -> kt.Analysis:
    return make_analysis()


def _rgb(fig: Figure) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)  # type: ignore[attr-defined]


def _close(img: np.ndarray, colour: str, tol: int = 40) -> np.ndarray:
    target = np.array(mcolors.to_rgb(colour)) * 255
    return np.abs(img - target).sum(axis=-1) < tol


def _to_pixel(fig: Figure, ax, x: float, y: float) -> tuple[int, int]:
    """Data coordinates -> (row, col) in the rendered RGBA buffer (origin top-left)."""
    px, py = ax.transData.transform((x, y))
    height = fig.canvas.get_width_height()[1]
    return round(height - py), round(px)


# --------------------------------------------------------------------------- scene map


def test_scene_map_outlines_lie_on_the_footprints() -> None:
    footprints = make_footprints()
    status = {bid: "idle" for bid in footprints.index}
    status["hot-a"] = "active"
    fig = plots.plot_scene_map(make_window(), footprints, status=status, labels=False)
    ax = fig.axes[0]
    img = _rgb(fig)
    red = _close(img, plots.STATE_COLORS["active"])
    blue = _close(img, plots.STATE_COLORS["idle"])
    # along each edge of "hot-a" (90 m square at 352000, 4199000) the pixels are the active colour
    _, side, x, y = BUILDINGS["hot-a"]
    hits = 0
    samples = [(x + f * side, y) for f in (0.25, 0.5, 0.75)] + [
        (x, y + f * side) for f in (0.25, 0.5, 0.75)
    ]
    for sx, sy in samples:
        r, c = _to_pixel(fig, ax, sx, sy)
        hits += bool(red[r - 1 : r + 2, c - 1 : c + 2].any())
    assert hits == len(samples)
    # the interior of the square is the uniform 20 C background, not outline colour
    r, c = _to_pixel(fig, ax, x + side / 2, y + side / 2)
    assert not red[r, c] and not blue[r, c]
    # the idle buildings are outlined in blue at their own corners, never in red
    for bid in ("idle-b", "idle-d"):
        _, s, bx, by = BUILDINGS[bid]
        r, c = _to_pixel(fig, ax, bx + s / 2, by)
        assert blue[r - 1 : r + 2, c - 1 : c + 2].any()
        assert not red[r - 2 : r + 3, c - 2 : c + 3].any()
    # red pixels exist only around hot-a: all within its box (+ line width)
    rows, cols = np.nonzero(red[:, : img.shape[1] * 3 // 4])  # the legend sits on the right
    r0, c0 = _to_pixel(fig, ax, x, y + side)
    r1, c1 = _to_pixel(fig, ax, x + side, y)
    inside = (rows >= r0 - 4) & (rows <= r1 + 4) & (cols >= c0 - 4) & (cols <= c1 + 4)
    legend = ax.get_legend().get_window_extent()
    h = img.shape[0]
    in_legend = (
        (cols >= legend.x0)
        & (cols <= legend.x1)
        & (rows >= h - legend.y1)
        & (rows <= h - legend.y0)
    )
    assert (inside | in_legend).all()


def test_scene_map_temperature_in_celsius_with_inferno_and_cloud_hatched() -> None:
    window = make_window(cloud_rows=slice(0, 10))
    fig = plots.plot_scene_map(window, make_footprints(), labels=False)
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.get_cmap().name.startswith("inferno")
    data = image.get_array()
    assert data is not None
    np.testing.assert_allclose(np.ma.compressed(data), 20.0, atol=1e-4)  # 293.15 K = 20 C
    assert int(np.ma.count_masked(data)) == 10 * 60  # clouded rows are not coloured
    # the cloud overlay is hatched and the colour bar is labelled in degrees Celsius
    assert any("////" in list(getattr(c, "hatches", None) or []) for c in ax.collections)
    assert "\u00b0C" in fig.axes[1].get_ylabel()
    assert "2023-06-10" in ax.get_title(loc="left")
    # the scale bar: a round number of metres or km written on the map
    texts = [t.get_text() for t in ax.texts]
    assert any(t.endswith(" m") or t.endswith(" km") for t in texts)
    # the cloud rows at the top render grey: sample a pixel inside them
    img = _rgb(fig)
    r, c = _to_pixel(fig, ax, 351_700.0 + 900.0, 4_200_000.0 - 60.0)
    red, green, blue = img[r, c]
    assert abs(red - green) < 30 and abs(green - blue) < 30 and red > 90


# --------------------------------------------------------------------------- heatmap


def test_heatmap_rows_are_the_buildings_ordered_by_recent_anomaly(analysis) -> None:
    names = make_footprints()["name"].to_dict()
    fig = plots.plot_heatmap(analysis, "anomaly_k", names=names)
    ax = fig.axes[0]
    arr = ax.images[0].get_array()
    n_scenes = analysis.observations["scene_id"].nunique()
    assert arr.shape == (len(BUILDINGS), n_scenes)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == sorted(names.values())
    assert labels[0] == "Hot A Textiles"  # the switched-on building has the top row
    # its last columns hold the excess (about EXCESS_K), earlier columns about zero
    top = np.ma.filled(arr[0].astype(float), np.nan)
    assert np.nanmean(top[-10:]) == pytest.approx(EXCESS_K, abs=1.5)
    assert abs(np.nanmean(top[:60])) < 0.5
    # clouded scenes (every 9th from the 5th) are masked in every row
    assert np.ma.getmaskarray(arr)[:, 4].all()
    # the baseline period is labelled, year ticks present
    assert "idle baseline" in [t.get_text() for t in ax.texts]
    assert "2023" in [t.get_text() for t in ax.get_xticklabels()]


def test_heatmap_rejects_unknown_value(analysis) -> None:
    with pytest.raises(AnalysisError, match="value must be"):
        plots.plot_heatmap(analysis, "kelvin")


# --------------------------------------------------------------------------- time series


def test_timeseries_content(analysis) -> None:
    fig = plots.plot_timeseries(analysis, "hot-a", events=make_footprints(), name="Hot A")
    ax_t, ax_a = fig.axes
    # roof line in Celsius: the first valid roof temperature, converted
    obs = analysis.observations
    first = obs[(obs["building_id"] == "hot-a")].sort_values("acquired").iloc[0]
    roof = ax_t.get_lines()[0].get_ydata()
    assert roof[0] == pytest.approx(first["t_roof_k"] - 273.15)
    # clouded observations are gaps in the line (NaN), and grey ticks on the axis
    n_nodata = int((obs[obs["building_id"] == "hot-a"]["state"] == "no_data").sum())
    assert n_nodata > 0
    assert int(np.isnan(roof).sum()) == n_nodata
    # the transition into active is a vertical line labelled with the new status
    labels = [t.get_text() for t in ax_a.texts]
    assert "\u2192 active" in labels
    tr = analysis.transitions()
    on = tr[(tr["building_id"] == "hot-a") & (tr["to_status"] == "active")]
    assert len(on) >= 1
    assert pd.Timestamp(on["date"].iloc[-1]) >= SWITCH_ON
    # the known event is annotated
    assert "restart reported" in labels
    legend = [t.get_text() for t in ax_a.get_legend().get_texts()]
    # the thresholds drawn are those the analysis used
    assert f"active threshold (z = {analysis.params['z_active']:g})" in legend
    assert f"idle threshold (z = {analysis.params['z_idle']:g})" in legend


def test_timeseries_unknown_building(analysis) -> None:
    with pytest.raises(AnalysisError, match="nope"):
        plots.plot_timeseries(analysis, "nope")


def test_timeseries_into_given_axes_and_from_a_dataframe(analysis) -> None:
    fig = Figure()
    ax = fig.add_subplot()
    out = plots.plot_timeseries(analysis.observations, "idle-b", ax=ax)
    assert out is fig
    assert ax.get_ylabel() == "anomaly (K)"


# --------------------------------------------------------------------------- status map, multiples


def test_status_map_fills_by_status(analysis) -> None:
    footprints = make_footprints().to_crs("EPSG:4326")  # drawn in UTM again
    status = analysis.status()
    fig = plots.plot_status_map(footprints, status, labels=False)
    ax = fig.axes[0]
    img = _rgb(fig)
    _, side, x, y = BUILDINGS["hot-a"]
    r, c = _to_pixel(fig, ax, x + side / 2, y + side / 2)
    colour = STATUS_COLOUR = plots.STATE_COLORS[status.loc["hot-a", "status"]]
    assert status.loc["hot-a", "status"] == "active"
    # fill at alpha 0.45 over white
    expected = 255 - 0.45 * (255 - np.array(mcolors.to_rgb(STATUS_COLOUR)) * 255)
    assert np.abs(img[r, c] - expected).max() < 6, colour
    assert "1 active" in ax.get_title(loc="left")


def test_small_multiples_picks_most_anomalous(analysis) -> None:
    fig = plots.plot_small_multiples(analysis, n=3)
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 3
    assert visible[0].get_title(loc="left") == "hot-a"


def test_figure_to_png_is_a_png(analysis) -> None:
    png = plots.figure_to_png(plots.plot_small_multiples(analysis, n=2), dpi=40)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
