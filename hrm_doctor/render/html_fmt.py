"""``--format html``: one self-contained page (plotly.js inlined) with a chart of each finding's
evidence window. plotly is imported here only, never at start-up."""

from __future__ import annotations

import html

import numpy as np

from hrm_doctor.diagnosis import Report
from hrm_doctor.render.common import counts, evidence_text, steps_text

MAX_CHARTS = 40
MAX_POINTS = 2000  # per series, after min/max decimation (spikes are kept)

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
.critical{color:#b00020}.warning{color:#a15c00}.info{color:#006080}.healthy{color:#207020}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
code{background:#f3f3f3;padding:1px 4px}.finding{border-top:1px solid #ddd;margin-top:1.5em}
"""


def _decimate(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_POINTS points, keeping each bucket's min and max (spikes stay visible)."""
    n = len(steps)
    if n <= MAX_POINTS:
        return steps, values
    buckets = MAX_POINTS // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        seg = values[a:b]
        fin = np.isfinite(seg)
        if not fin.any():
            keep.append(a)
            continue
        idx = np.nonzero(fin)[0]
        lo, hi = a + idx[np.argmin(seg[fin])], a + idx[np.argmax(seg[fin])]
        keep.extend(sorted({int(lo), int(hi)}))
    keep = np.asarray(keep)
    return steps[keep], values[keep]


def _chart(report: Report, f, i: int, include_js: bool) -> str:
    import plotly.graph_objects as go

    part = report.windows.get(f.id)
    if part is None or not len(part):
        return ""
    fig = go.Figure()
    for rank, g in part.groupby("rank", sort=True):
        v = g["value"].to_numpy(np.float64)
        s = g["step"].to_numpy()
        ok = ~np.isnan(v)
        s, v = _decimate(s[ok], v[ok])
        fig.add_trace(go.Scattergl(x=s, y=v, mode="lines", name=f"rank {rank}"))
    fig.add_vrect(
        x0=f.first_step,
        x1=max(f.last_step, f.first_step + 1),
        fillcolor="red",
        opacity=0.12,
        line_width=0,
    )
    fig.update_layout(
        height=320,
        margin=dict(l=40, r=20, t=30, b=30),
        title=f"{f.metric} around {f.id}",
        xaxis_title="step",
        showlegend=part["rank"].nunique() > 1,
    )
    return fig.to_html(
        full_html=False,
        include_plotlyjs="inline" if include_js else False,
        div_id=f"finding-{i}",
        config={"displaylogo": False},
    )


def render(report: Report) -> str:
    try:
        import plotly  # noqa: F401
    except ImportError:
        from hrm_doctor.errors import UserError

        raise UserError(
            "--format html needs plotly: pip install 'hrm-doctor[dashboard]' (or plotly)"
        ) from None
    e = html.escape
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>hrm-doctor: {e(report.run)}</title><style>{_CSS}</style></head><body>",
        f"<h1>hrm-doctor: <code>{e(report.run)}</code> is <span class='{report.status}'>{report.status}</span></h1>",
        f"<p>{report.steps} steps, {e(counts(report.findings))}.</p>",
    ]
    if report.findings:
        out.append(
            "<table><tr><th>severity</th><th>finding</th><th>category</th><th>steps</th>"
            "<th>rank</th><th>metric</th></tr>"
        )
        for f in report.findings:
            out.append(
                f"<tr><td class='{f.severity}'>{f.severity}</td><td><a href='#f{f.id}'>{e(f.id)}</a></td>"
                f"<td>{f.category}</td><td>{steps_text(f)}</td><td>{'' if f.rank is None else f.rank}</td>"
                f"<td>{e(f.metric or '')}</td></tr>"
            )
        out.append("</table>")
    js_done = False
    for i, f in enumerate(report.findings):
        sg = f.suggestion
        out.append(
            f"<div class='finding' id='f{e(f.id)}'><h2 class='{f.severity}'>{f.severity}: {e(f.id)}</h2>"
        )
        out.append(f"<p>{e(f.message)}</p><p><b>evidence</b>: {e(evidence_text(f))}</p>")
        over = " ".join(f"<code>{e(o)}</code>" for o in sg.overrides) or "no config change"
        out.append(f"<p><b>suggestion</b> ({sg.apply}): {over}</p><ul>")
        for key in ("rationale", "monitor", "fallback"):
            if getattr(sg, key):
                out.append(f"<li><b>{key}</b>: {e(getattr(sg, key))}</li>")
        out.append("</ul>")
        if i < MAX_CHARTS:
            chart = _chart(report, f, i, include_js=not js_done)
            if chart:
                js_done = True
                out.append(chart)
        out.append("</div>")
    if report.notes:
        out.append("<h2>Notes</h2><ul>")
        for n in report.notes:
            out.append(f"<li><code>{e(n.rule)}</code> ({e(n.pack)}): {e(n.message)}</li>")
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
