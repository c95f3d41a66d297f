"""Chart panels grouped by diagnostic theme, Cockpit-style: each declares the metrics it needs.

A panel is shown when the run logged at least one metric it `requires` (names or globs) and is
otherwise listed once, quietly, as "not logged by this run". `render_panels` lays them out in
a grid; each line panel has its own log-scale toggle and draws the windows of the findings
whose metric it plots.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import streamlit as st

from dashboards import charts, data, ui
from dashboards.charts import Onset
from dashboards.live import LiveRun


@dataclass(frozen=True)
class Panel:
    """One chart: what it shows, which metrics it needs, how it draws them."""

    key: str  # stable: widget keys and the log toggle hang off it
    title: str
    requires: tuple[str, ...]  # metric names or globs; any match shows the panel
    kind: str = "lines"  # "lines" | "block_heatmap"
    log_y: bool = False
    per_rank: bool = False  # one line per rank (system metrics) instead of the mean over ranks
    y_title: str = ""
    scale: float = 1.0
    exclude: str | None = None  # regex: matched names to leave out
    help: str = ""

    def metrics(self, available: Sequence[str]) -> list[str]:
        chosen: dict[str, None] = {}
        for pattern in self.requires:
            hits = (
                fnmatch.filter(available, pattern)
                if any(c in pattern for c in "*?[")
                else ([pattern] if pattern in available else [])
            )
            for h in hits:
                if self.exclude is None or not re.search(self.exclude, h):
                    chosen.setdefault(h, None)
        return list(chosen)


@dataclass
class PanelContext:
    """What every panel of one page render shares."""

    path: str
    run: LiveRun
    version: int
    lo: int
    hi: int
    findings: Sequence[dict] = field(default_factory=tuple)

    def onsets(self, metrics: Sequence[str]) -> list[Onset]:
        out = []
        for f in self.findings:
            if f.get("metric") in metrics and f.get("first_step") is not None:
                first = int(f["first_step"])
                last = f.get("last_step")
                if last is not None and int(last) < self.lo or first > self.hi:
                    continue
                out.append(
                    Onset(
                        first,
                        None if last is None else int(last),
                        str(f.get("severity")),
                        str(f.get("rule", f.get("id", ""))),
                    )
                )
        return out


_BLOCK = r"\.\d+$"  # grad/norm/H.0: a per-block norm

THEMES: dict[str, tuple[Panel, ...]] = {
    "Losses": (
        Panel("lm_loss", "LM loss", ("train/lm_loss",), log_y=True, help="train/lm_loss"),
        Panel(
            "q_loss",
            "Q-learning losses",
            ("train/q_halt_loss", "train/q_continue_loss"),
            log_y=True,
        ),
        Panel(
            "nonfinite",
            "Non-finite values per step",
            ("nonfinite/count",),
            help="non-finite values among the loss and gradients",
        ),
        Panel("eval_steps", "Mean ACT steps", ("train/steps", "eval/*/steps")),
    ),
    "Accuracy": (
        Panel(
            "train_acc",
            "Training accuracy",
            ("train/accuracy", "train/exact_accuracy", "train/q_halt_accuracy"),
        ),
        Panel("eval_acc", "Evaluation accuracy", ("eval/*/accuracy", "eval/*/exact_accuracy")),
    ),
    "Learning rates": (
        Panel("lr", "Learning rate", ("train/lr",), y_title="lr"),
        Panel("emb_lr", "Puzzle-embedding learning rate", ("train/puzzle_emb_lr",), y_title="lr"),
    ),
    "Gradients": (
        Panel("grad_norm", "Global gradient norm (before clipping)", ("grad/norm",), log_y=True),
        Panel(
            "grad_modules", "Gradient norm per module", ("grad/norm/*",), log_y=True, exclude=_BLOCK
        ),
        Panel(
            "grad_blocks",
            "Per-block gradient norms (log10, max per bin)",
            ("grad/norm/H.*", "grad/norm/L.*"),
            kind="block_heatmap",
        ),
    ),
    "Updates": (
        Panel(
            "update_ratio",
            "Update / weight norm",
            ("update/ratio/*",),
            log_y=True,
            help="norm of the step's update over the weight norm; ~1e-3 is typical",
        ),
        Panel("param_norm", "Weight norm per module", ("param/norm/*",)),
        Panel(
            "ema_dist",
            "EMA distance from the weights",
            ("ema/param_dist",),
            help="||ema - w|| / ||w|| (ema=true, TRM's recipes): what is evaluated vs trained",
        ),
    ),
    "Carry state": (
        Panel(
            "z_rms",
            "Carry-state RMS",
            ("state/z_H/rms", "state/z_L/rms", "state/y/rms", "state/z/rms"),  # HRM, TRM
        ),
        Panel(
            "z_delta",
            "Fixed-point residual (carry change per segment)",
            (
                "state/z_H/delta_rms",
                "state/z_L/delta_rms",
                "state/y/delta_rms",
                "state/z/delta_rms",
            ),
            log_y=True,
        ),
    ),
    "System": (
        Panel("step_time", "Step time", ("sys/step_time_s",), per_rank=True, y_title="s"),
        Panel(
            "throughput", "Throughput", ("sys/samples_per_s",), per_rank=True, y_title="samples/s"
        ),
        Panel(
            "memory",
            "Peak memory",
            ("sys/mem_peak_bytes",),
            per_rank=True,
            y_title="GiB",
            scale=1 / 2**30,
        ),
        Panel(
            "waits", "Data wait and communication", ("sys/data_wait_s", "sys/comm_s"), y_title="s"
        ),
    ),
}

ACT_PANELS: tuple[Panel, ...] = (
    Panel(
        "halt_at_max",
        "Halting at the maximum / prematurely",
        ("act/halt_at_max_frac", "act/premature_halt_frac"),
        y_title="fraction",
    ),
    Panel("q_halt_acc", "Q-halt accuracy", ("train/q_halt_accuracy",), y_title="accuracy"),
    Panel(
        "q_means",
        "Q summaries",
        ("act/q_halt/mean", "act/q_continue/mean", "act/target_q_continue/mean"),
        y_title="logit",
    ),
    Panel(
        "halt_delay",
        "Halt delay (segments run after the answer was right)",
        ("act/halt_delay_mean",),
    ),
)

EMBEDDING_PANELS: tuple[Panel, ...] = (
    Panel(
        "sign_flip",
        "Sign-flip fraction of updated entries",
        ("emb/puzzle/sign_flip_frac",),
        y_title="fraction",
        help="SignSGD: a fraction near 0.5 means updates are noise",
    ),
    Panel("rows_touched", "Rows touched per step", ("emb/puzzle/rows_touched",), y_title="rows"),
    Panel("emb_norm", "Mean row norm", ("emb/puzzle/norm/mean",)),
    Panel(
        "emb_grad",
        "Puzzle-embedding gradient and update",
        ("grad/norm/puzzle_emb", "update/ratio/puzzle_emb"),
        log_y=True,
    ),
    Panel("emb_lr", "Puzzle-embedding learning rate", ("train/puzzle_emb_lr",), y_title="lr"),
)


def render_panel(panel: Panel, ctx: PanelContext, metrics: list[str]) -> None:
    help_text = panel.help or ", ".join(metrics[:8]) + (" ..." if len(metrics) > 8 else "")
    if panel.kind == "block_heatmap":
        blocks = sorted((m for m in metrics if re.search(_BLOCK, m)), key=_block_order)
        if not blocks:
            st.caption(f"{panel.title}: no per-block norms logged (grad/norm/H.0 ...)")
            return
        x, z = data.block_heatmap(ctx.path, ctx.version, tuple(blocks), ctx.lo, ctx.hi)
        labels = [m.removeprefix("grad/norm/") for m in blocks]
        ui.chart_title(panel.title, help=help_text)
        fig = charts.heatmap_figure(
            x,
            labels,
            z,
            "",
            colorbar="log10 ‖g‖",
            height=max(charts.CHART_HEIGHT, 60 + 22 * len(labels)),
        )
        charts.show(fig, key=f"chart:{panel.key}")
        return
    log_y = ui.chart_title(
        panel.title, help=help_text, log_key=f"log:{panel.key}", log_default=panel.log_y
    )
    series = []
    names = short_names(metrics)
    for m in metrics:
        for s in data.chart_series(ctx.path, ctx.version, m, ctx.lo, ctx.hi, panel.per_rank):
            label = names[m] if s.label == m else s.label
            if panel.per_rank and len(metrics) > 1:
                label = f"{names[m]} {s.label}"
            series.append(type(s)(label, s.x, s.y, s.bad_x, s.bad_kind))
    fig = charts.line_figure(
        series,
        "",
        log_y=log_y,
        y_title=panel.y_title,
        onsets=ctx.onsets(metrics),
        scale=panel.scale,
    )
    charts.show(fig, key=f"chart:{panel.key}")


def short_names(metrics: Sequence[str]) -> dict[str, str]:
    """Legend labels: the metrics' shared "group/" prefix dropped (the title names the group)."""
    if len(metrics) < 2:
        return {m: m for m in metrics}
    head = metrics[0].rsplit("/", 1)[0] + "/"
    if all(m.startswith(head) for m in metrics):
        return {m: m.removeprefix(head) for m in metrics}
    return {m: m for m in metrics}


def _block_order(name: str) -> tuple[str, int]:
    head, _, idx = name.rpartition(".")
    return head, int(idx) if idx.isdigit() else 0


def render_panels(panels: Sequence[Panel], ctx: PanelContext, columns: int = 2) -> None:
    """The panels this run has metrics for, in a grid; the rest named once, quietly."""
    available = ctx.run.metrics
    shown = [(p, p.metrics(available)) for p in panels]
    missing = [p for p, ms in shown if not ms]
    shown = [(p, ms) for p, ms in shown if ms]
    for i in range(0, len(shown), columns):
        cols = st.columns(columns, gap="medium")
        for col, (panel, ms) in zip(cols, shown[i : i + columns]):
            with col, st.container(border=True):
                render_panel(panel, ctx, ms)
    if missing:
        names = ", ".join(f"{p.title} ({', '.join(p.requires)})" for p in missing)
        st.caption(f"Not logged by this run: {names}")
