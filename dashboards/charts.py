"""ECharts options for the dashboard: lines with non-finite marks and finding windows, heatmaps.

Why ECharts (``st.echarts_chart``) and not Plotly: Streamlit's Plotly front end is a 4.7 MB
chunk that a browser parses before it can draw the first chart; on 2 cores that alone took
~1.5 s, more than the server needs to read a 100,000-step run and downsample it. ECharts draws
on a canvas from a 1.2 MB chunk, and Streamlit sends each series as Arrow (a ``dataset``).

Every chart has one look (thin lines, axis tooltip, steps on x, wheel/drag zoom) and is shown
with a stable key, so a live refresh keeps the chart instead of re-creating it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboards.live import Series

PALETTE = (
    "#2563eb",
    "#f97316",
    "#16a34a",
    "#9333ea",
    "#0891b2",
    "#db2777",
    "#ca8a04",
    "#475569",
    "#65a30d",
    "#7c3aed",
)
SEVERITY_COLORS = {
    "critical": "#dc2626",
    "warning": "#d97706",
    "info": "#2563eb",
    "healthy": "#16a34a",
}
NONFINITE_COLOR = "#dc2626"
CHART_HEIGHT = 300
COLORSCALES = {
    "Viridis": ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"],
    "Blues": ["#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b"],
}
Spec = dict[str, Any]


@dataclass(frozen=True)
class Onset:
    """A finding drawn on a chart: a shaded window from its first to its last step."""

    first_step: int
    last_step: int | None
    severity: str
    label: str


def show(spec: Spec, key: str, height: int | None = None) -> None:
    """Draw `spec` (its height travels with it under the private key ``_height``)."""
    spec = dict(spec)
    h = spec.pop("_height", CHART_HEIGHT) if height is None else height
    st.echarts_chart(spec, height=int(h), key=key, theme="streamlit")


def _base(*, height: int, y_title: str = "", log_y: bool = False, x_title: str = "step") -> Spec:
    return {
        "_height": height,
        "animation": False,
        "grid": {"left": 8, "right": 20, "top": 34, "bottom": 26, "containLabel": True},
        "legend": {
            "type": "scroll",
            "top": 0,
            "right": 0,
            "itemWidth": 14,
            "itemHeight": 8,
            "textStyle": {"fontSize": 11},
        },
        "tooltip": {"trigger": "axis", "confine": True},
        "xAxis": {
            "type": "value",
            "name": x_title,
            "nameLocation": "middle",
            "nameGap": 24,
            "min": "dataMin",
            "max": "dataMax",
            "splitLine": {"show": True},
        },
        "yAxis": {
            "type": "log" if log_y else "value",
            "name": y_title,
            "nameTextStyle": {"align": "left"},
            "scale": True,
        },
        # Wheel to zoom, drag to pan; the step-range slider above re-reads at full resolution.
        "dataZoom": [{"type": "inside", "xAxisIndex": 0, "filterMode": "none"}],
    }


def _frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"step": np.asarray(x, np.int64), "value": np.asarray(y, np.float64)})


def line_figure(
    series: Sequence[Series],
    title: str = "",
    *,
    log_y: bool = False,
    y_title: str = "",
    onsets: Iterable[Onset] = (),
    height: int = CHART_HEIGHT,
    colors: Sequence[str] = PALETTE,
    scale: float = 1.0,
) -> Spec:
    """Lines over steps; logged NaN/inf values as red marks on the top edge; finding windows."""
    spec = _base(height=height, y_title=y_title, log_y=log_y)
    if title:
        spec["title"] = {"text": title, "textStyle": {"fontSize": 14}}
    datasets: list[dict] = []
    out: list[dict] = []
    top = None
    for i, s in enumerate(series):
        y = s.y * scale
        if log_y:
            y = np.where(y > 0, y, np.nan)  # a log axis cannot show <= 0: leave a gap, not a lie
        datasets.append({"source": _frame(s.x, y)})
        out.append(
            {
                "type": "line",
                "name": s.label,
                "datasetIndex": i,
                "encode": {"x": "step", "y": "value"},
                "showSymbol": False,
                "symbol": "none",
                "color": colors[i % len(colors)],
                "lineStyle": {"width": 1.4},
                "emphasis": {"disabled": True},
            }
        )
        if len(y) and np.isfinite(y).any():
            m = float(np.nanmax(y))
            top = m if top is None else max(top, m)
    bad = [(s.bad_x, s.bad_kind) for s in series if len(s.bad_x)]
    if bad:
        xs = np.concatenate([b[0] for b in bad])
        kinds = np.concatenate([b[1] for b in bad]).astype(str)
        y_mark = top if top is not None else 1.0
        datasets.append(
            {"source": pd.DataFrame({"step": xs, "value": np.full(len(xs), y_mark), "kind": kinds})}
        )
        out.append(
            {
                "type": "scatter",
                "name": f"non-finite ({len(xs)})",
                "datasetIndex": len(datasets) - 1,
                "encode": {"x": "step", "y": "value", "tooltip": ["kind"]},
                "symbol": "triangle",
                "symbolRotate": 180,
                "symbolSize": 8,
                "color": NONFINITE_COLOR,
            }
        )
    if log_y and top is not None:
        # ECharts snaps a log axis to whole decades, which squashes a curve that spans less
        # than one; bound it by the nearest 1-2-5 values instead.
        lows = [
            float(np.nanmin(np.where(s.y * scale > 0, s.y * scale, np.nan)))
            for s in series
            if (s.y * scale > 0).any()
        ]
        if lows:
            spec["yAxis"].update(
                {"min": _nice(min(lows), down=True), "max": _nice(top, down=False)}
            )
    marks = _onset_marks(onsets)
    if out and marks:
        out[0].update(marks)
    spec["dataset"] = datasets
    spec["series"] = out
    return spec


def _onset_marks(onsets: Iterable[Onset]) -> dict:
    areas, lines = [], []
    for o in onsets:
        color = SEVERITY_COLORS.get(o.severity, "#64748b")
        if o.last_step is not None and o.last_step > o.first_step:
            areas.append(
                [
                    {"xAxis": o.first_step, "itemStyle": {"color": _rgba(color, 0.08)}},
                    {"xAxis": o.last_step},
                ]
            )
        lines.append(
            {
                "xAxis": o.first_step,
                "lineStyle": {"color": color, "type": "dashed", "width": 1.5},
                "label": {"formatter": o.label, "color": color, "position": "insideEndTop"},
            }
        )
    out: dict = {}
    if areas:
        out["markArea"] = {"silent": True, "data": areas}
    if lines:
        out["markLine"] = {"silent": True, "symbol": "none", "data": lines}
    return out


def heatmap_figure(
    x: np.ndarray,
    y_labels: Sequence[str],
    z: np.ndarray,
    title: str = "",
    *,
    colorbar: str,
    colorscale: str = "Viridis",
    height: int = CHART_HEIGHT,
    percent: bool = False,
    zmin: float | None = None,
    zmax: float | None = None,
    y_title: str = "",
) -> Spec:
    """z[row, col] over step bins (x: bin centres) and rows (y_labels), one colour scale."""
    finite = z[np.isfinite(z)]
    lo = float(finite.min()) if zmin is None and len(finite) else (zmin or 0.0)
    hi = float(finite.max()) if zmax is None and len(finite) else (zmax or 1.0)
    rows, cols = np.nonzero(np.isfinite(z))
    data = [[int(c), int(r), round(float(z[r, c]), 5)] for r, c in zip(rows, cols)]
    spec = _base(height=height, y_title=y_title)
    spec.update(
        {
            "tooltip": {"trigger": "item", "valueFormatter": "percent" if percent else "%.3g"},
            "grid": {"left": 8, "right": 56, "top": 24, "bottom": 26, "containLabel": True},
            "xAxis": {
                "type": "category",
                "name": "step",
                "nameLocation": "middle",
                "nameGap": 24,
                "data": [str(int(round(v))) for v in x],
                "splitArea": {"show": False},
            },
            "yAxis": {"type": "category", "data": [str(v) for v in y_labels], "name": y_title},
            "visualMap": {
                "type": "continuous",
                "min": lo,
                "max": hi if hi > lo else lo + 1,
                "orient": "vertical",
                "right": 8,
                "top": "middle",
                "itemHeight": max(80, height - 110),
                "itemWidth": 12,
                "text": [f"{hi:.3g}", f"{lo:.3g}"],
                "inRange": {"color": COLORSCALES.get(colorscale, COLORSCALES["Viridis"])},
            },
            "series": [
                {"type": "heatmap", "name": colorbar, "data": data, "emphasis": {"disabled": True}}
            ],
        }
    )
    del spec["legend"], spec["dataZoom"]
    if title:
        spec["title"] = {"text": title, "textStyle": {"fontSize": 14}}
    return spec


def band_figure(
    x: np.ndarray,
    q: np.ndarray,
    title: str = "",
    *,
    color: str,
    name: str,
    extra: Sequence[Series] = (),
    extra_colors: Sequence[str] = ("#111827",),
    height: int = CHART_HEIGHT,
) -> Spec:
    """Quantile bands (rows of `q`: p5, p25, p50, p75, p95) over steps, plus extra lines."""
    spec = _base(height=height, y_title="logit")
    df = pd.DataFrame(
        {
            "step": np.asarray(x, np.float64).round(),
            "p5": q[0],
            "w90": q[4] - q[0],
            "p25": q[1],
            "w50": q[3] - q[1],
            "median": q[2],
        }
    )
    datasets: list[dict] = [{"source": df}]
    # Each band is an invisible base line plus its width stacked on it and filled;
    # stackStrategy "all": ECharts otherwise stacks only values of the same sign.
    band = {
        "type": "line",
        "datasetIndex": 0,
        "symbol": "none",
        "lineStyle": {"opacity": 0},
        "emphasis": {"disabled": True},
        "tooltip": {"show": False},
        "stackStrategy": "all",
    }

    def stacked(label: str, stack: str, base: str, width: str, area: float, line: float):
        """An invisible base series, then the band's width stacked on it (ECharts bands)."""
        return [
            {
                **band,
                "name": f"_base{stack[1:]}",
                "stack": stack,
                "encode": {"x": "step", "y": base},
            },
            {
                **band,
                "name": label,
                "stack": stack,
                "encode": {"x": "step", "y": width},
                "areaStyle": {"color": _rgba(color, area)},
                "color": _rgba(color, line),
            },
        ]

    series: list[dict] = [
        *stacked("5–95%", "b90", "p5", "w90", 0.14, 0.3),
        *stacked("25–75%", "b50", "p25", "w50", 0.3, 0.5),
        {
            "type": "line",
            "name": "median",
            "datasetIndex": 0,
            "symbol": "none",
            "encode": {"x": "step", "y": "median"},
            "color": color,
            "lineStyle": {"width": 1.6},
        },
    ]
    for i, s in enumerate(extra):
        datasets.append({"source": _frame(s.x, s.y)})
        series.append(
            {
                "type": "line",
                "name": s.label,
                "datasetIndex": len(datasets) - 1,
                "encode": {"x": "step", "y": "value"},
                "symbol": "none",
                "color": extra_colors[i % len(extra_colors)],
                "lineStyle": {"width": 1.2, "type": "dotted"},
            }
        )
    spec["dataset"] = datasets
    spec["series"] = series
    # Only the lines a reader can name go in the legend; the invisible band bases stay out.
    spec["legend"]["data"] = [s["name"] for s in series if not s["name"].startswith("_")]
    if title:
        spec["title"] = {"text": title, "textStyle": {"fontSize": 14}}
    return spec


def histogram_figure(
    samples: dict[str, np.ndarray], title: str = "", *, bins: int = 40, height: int = CHART_HEIGHT
) -> Spec:
    """Overlaid histograms on shared bins."""
    finite = {k: v[np.isfinite(v)] for k, v in samples.items()}
    pooled = np.concatenate([v for v in finite.values()]) if finite else np.empty(0)
    edges = np.histogram_bin_edges(pooled, bins=bins) if len(pooled) else np.linspace(0, 1, 2)
    centres = (edges[:-1] + edges[1:]) / 2
    spec = _base(height=height, y_title="sequences", x_title="logit")
    spec["xAxis"] = {
        "type": "category",
        "name": "logit",
        "nameLocation": "middle",
        "nameGap": 24,
        "data": [f"{c:.2g}" for c in centres],
    }
    spec["tooltip"] = {"trigger": "axis", "axisPointer": {"type": "shadow"}}
    del spec["dataZoom"]
    spec["series"] = [
        {
            "type": "bar",
            "name": label,
            "data": np.histogram(v, bins=edges)[0].tolist(),
            "barGap": "-100%",
            "barCategoryGap": "4%",
            "itemStyle": {"color": PALETTE[i % len(PALETTE)], "opacity": 0.55},
        }
        for i, (label, v) in enumerate(finite.items())
    ]
    if title:
        spec["title"] = {"text": title, "textStyle": {"fontSize": 14}}
    return spec


def timeline_figure(
    findings: Sequence[dict[str, Any]], step_range: tuple[int, int] | None = None
) -> Spec:
    """One bar per finding, from its first to its last step, coloured by severity."""
    labels: list[str] = []
    series = []
    for f in findings:
        label = f"{f.get('rule', '?')} ({f.get('severity', '?')})"
        if label not in labels:
            labels.append(label)
        first = f.get("first_step")
        last = f.get("last_step") if f.get("last_step") is not None else first
        color = SEVERITY_COLORS.get(str(f.get("severity")), "#64748b")
        series.append(
            {
                "type": "line",
                "name": str(f.get("id")),
                "data": [[first, label], [last, label]],
                "color": color,
                "lineStyle": {"width": 12, "cap": "butt"},
                "symbol": "rect",
                "symbolSize": [3, 18],
                "emphasis": {"disabled": True},
            }
        )
    height = 50 + 34 * max(1, len(labels))
    spec = _base(height=height)
    spec["grid"] = {"left": 8, "right": 20, "top": 8, "bottom": 8, "containLabel": True}
    spec["tooltip"] = {"trigger": "item", "formatter": "{a}: steps {c0}"}
    spec["yAxis"] = {
        "type": "category",
        "data": labels,
        "inverse": True,
        "axisTick": {"show": False},
    }
    del spec["legend"], spec["dataZoom"]
    if step_range is not None:
        lo, hi = step_range
        pad = max(1, (hi - lo) // 50)
        spec["xAxis"].update({"min": lo - pad, "max": hi + pad})
    spec["series"] = series
    return spec


def _nice(v: float, *, down: bool) -> float:
    """The nearest of 1, 2, 5 x 10^k below (or above) `v` > 0."""
    k = np.floor(np.log10(v))
    steps = [1.0, 2.0, 5.0, 10.0]
    m = v / 10**k
    if down:
        pick = max(s for s in steps if s <= m * (1 + 1e-9))
    else:
        pick = min(s for s in steps if s >= m * (1 - 1e-9))
    return float(f"{pick * 10**k:.6g}")


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
