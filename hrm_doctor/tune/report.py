"""`hrm-doctor tune --report`: the best healthy trials, the pruned ones with the finding that
pruned each, the compute spent, the best trial as a ready command, and an HTML report (plotly
figures from optuna.visualization)."""

from __future__ import annotations

import html
import shlex
import warnings
from pathlib import Path
from typing import Any

from hrm_doctor.overrides import with_overrides


def _trials(study: Any, state: str) -> list[Any]:
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == state]


def healthy_best(study: Any, k: int = 5) -> list[Any]:
    """Complete trials without a critical finding, best first."""
    done = [
        t
        for t in _trials(study, "COMPLETE")
        if t.value is not None and t.user_attrs.get("health") != "critical"
    ]
    reverse = study.direction.name == "MAXIMIZE"
    return sorted(done, key=lambda t: t.value, reverse=reverse)[:k]


def best_command(study: Any, trial: Any) -> str:
    """The study's training command with the trial's overrides, as a shell line."""
    command = list(study.user_attrs.get("command") or ["hrm-train"])
    drop = ("run_dir=", "max_steps=")
    command = [a for a in command if not a.lstrip("+").startswith(drop)]
    return shlex.join(with_overrides(command, list(trial.user_attrs.get("overrides", []))))


def summary(study: Any) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    steps = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    counts = dict.fromkeys(steps, 0)
    for t in trials:
        name = t.state.name
        if name in counts:
            counts[name] += 1
            steps[name] += int(t.user_attrs.get("steps_run") or 0)
    return {
        "trials": len(trials),
        "counts": counts,
        "steps": steps,
        "metric": study.user_attrs.get("metric", "?"),
        "direction": study.direction.name.lower(),
    }


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]  # fmt: skip
    return "\n".join("  " + line for line in lines)


def _short(text: str, n: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def pruned_rows(study: Any) -> list[list[str]]:
    rows = []
    for t in _trials(study, "PRUNED"):
        f = t.user_attrs.get("finding") or {}
        rows.append(
            [
                str(t.number),
                str(t.user_attrs.get("steps_run", "?")),
                f.get("id", t.user_attrs.get("pruned_by", "?")),
                f"{f.get('severity', '-')}/{f.get('category', '-')}",
                " ".join(t.user_attrs.get("overrides", [])),
                _short(f.get("message", "")),
            ]
        )
    return rows


def slurm_summary(study: Any) -> list[str]:
    """One line on the Slurm jobs of a study run with `--launcher slurm` (none otherwise)."""
    on_slurm = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("slurm_jobs")]
    if not on_slurm:
        return []
    jobs = sum(len(t.user_attrs["slurm_jobs"]) for t in on_slurm)
    requeues = sum(int(t.user_attrs.get("requeues") or 0) for t in on_slurm)
    retries = sum(int(t.user_attrs.get("retries") or 0) for t in on_slurm)
    cancelled = sum(
        t.state.name == "PRUNED" and t.user_attrs.get("slurm_state") == "CANCELLED"
        for t in on_slurm
    )
    return [
        f"slurm: {jobs} jobs for {len(on_slurm)} trials; {requeues} requeued by Slurm, {retries} "
        f"submitted again after a failure, {cancelled} cancelled by pruning"
    ]


def text_report(study: Any, storage_label: str) -> str:
    s = summary(study)
    c, st = s["counts"], s["steps"]
    out = [
        f"study {study.study_name} ({storage_label}): {s['trials']} trials: {c['COMPLETE']} "
        f"complete, {c['PRUNED']} pruned, {c['FAIL']} failed, {c['RUNNING']} running; "
        f"{s['direction']} {s['metric']}",
        f"steps run: {sum(st.values())} in all, {st['PRUNED']} by pruned trials",
        *slurm_summary(study),
        "",
    ]
    best = healthy_best(study)
    if best:
        out.append("best healthy trials:")
        rows = [
            [str(t.number), f"{t.value:.4g}", str(t.user_attrs.get("steps_run", "?")),
             t.user_attrs.get("health", "?"), " ".join(t.user_attrs.get("overrides", []))]
            for t in best
        ]  # fmt: skip
        out += [_table(rows, ["trial", "value", "steps", "health", "overrides"]), ""]
    else:
        out += ["no healthy complete trial yet", ""]
    pruned = pruned_rows(study)
    if pruned:
        out.append("pruned trials (the finding that pruned each):")
        header = ["trial", "stopped at", "finding", "severity", "overrides", "message"]
        out += [_table(pruned, header), ""]
    failed = _trials(study, "FAIL")
    if failed:
        out.append("failed trials:")
        out += [f"  {t.number}: {_short(t.user_attrs.get('error', '?'), 120)}" for t in failed]
        out.append("")
    if best:
        out += ["best trial as a command:", "  " + best_command(study, best[0])]
    return "\n".join(out)


def figures(study: Any) -> list[tuple[str, Any]]:
    """(title, figure or error text) for each plot; a plot that cannot be drawn says why."""
    import optuna.visualization as vis

    plots = [
        ("Optimisation history", vis.plot_optimization_history),
        ("Intermediate values (each eval)", vis.plot_intermediate_values),
        ("Parameter importances", vis.plot_param_importances),
        ("Slice", vis.plot_slice),
        ("Parallel coordinates", vis.plot_parallel_coordinate),
    ]
    out = []
    for title, fn in plots:
        try:
            with warnings.catch_warnings():  # "too few trials": the figure says it by itself
                warnings.simplefilter("ignore")
                out.append((title, fn(study)))
        except Exception as exc:  # e.g. importances need two complete trials
            out.append((title, f"not drawn: {exc}"))
    return out


def write_html(study: Any, path: Path, storage_label: str) -> Path:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>hrm-doctor tune: {html.escape(study.study_name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em} pre{background:#f6f6f6;padding:1em;"
        "overflow-x:auto} table{border-collapse:collapse} td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left}</style></head><body>",
        f"<h1>Study {html.escape(study.study_name)}</h1>",
        f"<pre>{html.escape(text_report(study, storage_label))}</pre>",
    ]
    pruned = pruned_rows(study)
    if pruned:
        head = ["trial", "stopped at", "finding", "severity", "overrides", "message"]
        parts.append("<h2>Pruned trials</h2><table><tr>")
        parts.append("".join(f"<th>{h}</th>" for h in head) + "</tr>")
        for t in _trials(study, "PRUNED"):
            f = t.user_attrs.get("finding") or {}
            row = pruned[[r[0] for r in pruned].index(str(t.number))][:5]
            row.append(f.get("message", ""))
            parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    first = True
    for title, fig in figures(study):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(fig, str):
            parts.append(f"<p><i>{html.escape(fig)}</i></p>")
            continue
        # plotly.js inline once (the report must open offline), then shared by every figure
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def find_study_files(root: Path, max_depth: int = 3) -> list[Path]:
    """The `study.db` files at or below `root` (the default storage of `hrm-doctor tune`)."""
    from hrm_doctor.tune.storage import STUDY_FILE

    root = Path(root)
    found = [root / STUDY_FILE] if (root / STUDY_FILE).is_file() else []
    for depth in range(1, max_depth + 1):
        found += sorted(root.glob("/".join(["*"] * depth) + f"/{STUDY_FILE}"))
    return found


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One plain row per trial (for tables): number, state, value, steps, health, finding."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        f = t.user_attrs.get("finding") or {}
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "steps": t.user_attrs.get("steps_run"),
                "health": t.user_attrs.get("health"),
                "overrides": " ".join(t.user_attrs.get("overrides", [])),
                "pruned by": f.get("id") or t.user_attrs.get("pruned_by"),
                "category": f.get("category"),
                "message": f.get("message") or t.user_attrs.get("error"),
                "wall (s)": t.user_attrs.get("wall_s"),
            }
        )
    return rows
