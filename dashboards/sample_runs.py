"""Synthetic HRM runs with every metric family, for the dashboard's tests, benchmark and screenshots.

`write_run` writes a plausible run through `RunWriter` (a healthy one, or one whose gradients
explode), `write_findings` / `write_patches` add what the doctor daemon would have written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hrm_doctor import RunWriter
from hrm_doctor.rundir import FINDINGS_FILE, PATCHES_FILE, append_jsonl
from hrm_doctor.synth import reference_arch

HALT_MAX_STEPS = 16
MODULES = ("embed", "puzzle_emb", "H", "L", "q_head", "lm_head")
BLOCKS = tuple(f"H.{i}" for i in range(4)) + tuple(f"L.{i}" for i in range(4))
CONFIG: dict[str, Any] = {
    "lr": 1e-4,
    "puzzle_emb_lr": 1e-2,
    "weight_decay": 1.0,
    "puzzle_emb_weight_decay": 1.0,
    "lr_warmup_steps": 200,
    "global_batch_size": 768,
    "grad_clip_norm": None,
    "eval_interval": 500,
    "seed": 0,
    "arch": reference_arch(HALT_MAX_STEPS),
}


def _curves(steps: int, scenario: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every scalar metric as one float32 array over the steps (vectorised, so 100k is quick)."""
    t = np.arange(steps, dtype=np.float64)
    frac = t / max(steps - 1, 1)
    noise = lambda scale: scale * rng.standard_normal(steps)  # noqa: E731
    warm = np.minimum(1.0, (t + 1) / 200)
    lr = 1e-4 * warm
    boom = np.ones(steps)
    onset = steps
    if scenario == "explosion":
        onset = int(steps * 0.72)
        boom = np.where(t >= onset, np.exp(np.minimum((t - onset) / (steps * 0.025), 40)), 1.0)
    out: dict[str, np.ndarray] = {}
    lm = 2.4 * np.exp(-t / (steps * 0.25)) + 0.35 + np.abs(noise(0.03))
    lm = lm * np.where(t >= onset, 1 + 0.15 * np.log(boom), 1.0)
    out["train/lm_loss"] = lm
    out["train/q_halt_loss"] = 0.6 * np.exp(-t / (steps * 0.3)) + 0.05 + np.abs(noise(0.01))
    out["train/q_continue_loss"] = 0.4 * np.exp(-t / (steps * 0.3)) + 0.04 + np.abs(noise(0.01))
    acc = 0.2 + 0.75 * (1 - np.exp(-t / (steps * 0.2))) + noise(0.01)
    acc = np.where(t >= onset, acc * np.exp(-(t - onset) / (steps * 0.05)), acc)
    out["train/accuracy"] = np.clip(acc, 0, 1)
    out["train/exact_accuracy"] = np.clip(out["train/accuracy"] ** 6, 0, 1)
    out["train/q_halt_accuracy"] = np.clip(0.5 + 0.45 * frac + noise(0.02), 0, 1)
    out["train/steps"] = 4 + 4 * frac + noise(0.3)
    out["train/lr"] = lr
    out["train/puzzle_emb_lr"] = 1e-2 * warm
    base = 1.0 + 0.08 * rng.standard_normal(steps)
    out["grad/norm"] = 2.0 * base * boom
    scales = {"embed": 0.3, "puzzle_emb": 0.1, "H": 1.2, "L": 1.5, "q_head": 0.05, "lm_head": 0.6}
    for m in MODULES:
        hot = boom ** (1.3 if m in ("H", "q_head") else 0.8)
        out[f"grad/norm/{m}"] = scales[m] * (base + noise(0.05)) * hot
        out[f"param/norm/{m}"] = 20 * scales[m] + 0.5 * frac + noise(0.01)
        out[f"update/ratio/{m}"] = np.abs(1e-3 * warm * (1 + noise(0.1)) * np.sqrt(hot))
    for i, b in enumerate(BLOCKS):
        depth = 1.0 + 0.25 * (i % 4)
        hot = boom ** (1.5 if b.startswith("H") and i % 4 >= 2 else 0.7)
        out[f"grad/norm/{b}"] = 0.4 * depth * (base + noise(0.05)) * hot
    out["act/q_halt/mean"] = -2 + 3 * frac + noise(0.05) + np.log(boom) * 0.3
    out["act/q_halt/absmax"] = np.abs(out["act/q_halt/mean"]) * 2 + 1 + boom * 0.2
    out["act/q_continue/mean"] = -1 + 2 * frac + noise(0.05)
    out["act/q_continue/absmax"] = np.abs(out["act/q_continue/mean"]) * 2 + 1
    out["act/target_q_continue/mean"] = out["act/q_continue/mean"] + 0.1 + noise(0.02)
    at_max = 0.05 + noise(0.01) + np.where(t >= onset, 0.7 * (1 - np.exp(-(t - onset) / 500)), 0)
    out["act/halt_at_max_frac"] = np.clip(at_max, 0, 1)
    out["act/premature_halt_frac"] = np.clip(0.3 * (1 - frac) + noise(0.01), 0, 1)
    out["act/halt_delay_mean"] = np.clip(0.5 + frac + noise(0.05), 0, None)
    for z, s in (("z_H", 1.0), ("z_L", 0.7)):
        out[f"state/{z}/rms"] = s * (1 + 0.2 * frac) + noise(0.01)
        out[f"state/{z}/delta_rms"] = s * 0.3 * np.exp(-2 * frac) + np.abs(noise(0.005))
    out["emb/puzzle/sign_flip_frac"] = np.clip(0.45 * np.exp(-t / (steps * 0.15)) + 0.02, 0, 1)
    out["emb/puzzle/rows_touched"] = np.round(700 + noise(20))
    out["emb/puzzle/norm/mean"] = 0.8 + 0.4 * (1 - np.exp(-t / (steps * 0.3))) + noise(0.003)
    nonfinite = np.zeros(steps)
    if scenario == "explosion":
        # The last 1% of the run diverges: the loss and the norm go non-finite.
        dead = t >= steps - max(3, steps // 100)
        nonfinite[dead] = 17
        out["train/lm_loss"] = np.where(dead, np.nan, out["train/lm_loss"])
        out["grad/norm"] = np.where(dead, np.inf, out["grad/norm"])
    out["nonfinite/count"] = nonfinite
    out["sys/step_time_s"] = 0.21 + np.abs(noise(0.01)) + (rng.random(steps) < 0.002) * 0.4
    out["sys/samples_per_s"] = 768 / out["sys/step_time_s"]
    out["sys/mem_peak_bytes"] = 21.5e9 + 0.3e9 * np.minimum(1, t / 50) + noise(2e7)
    out["sys/data_wait_s"] = np.abs(0.004 + noise(0.001))
    out["sys/comm_s"] = np.abs(0.012 + noise(0.002))
    return {k: v.astype(np.float32) for k, v in out.items()}


def _tensors(step: int, steps: int, scenario: str, rng: np.random.Generator) -> dict[str, Any]:
    frac = step / max(steps - 1, 1)
    late = scenario == "explosion" and frac > 0.72
    centre = 2 + 7 * frac
    halts = np.clip(np.round(rng.normal(centre, 1.5 + 2 * frac, 64)), 1, HALT_MAX_STEPS)
    if late:
        halts[rng.random(64) < min(0.9, (frac - 0.72) * 4)] = HALT_MAX_STEPS
    q_halt = rng.normal(-2 + 3 * frac, 0.6 + (3 * (frac - 0.72) if late else 0), 64)
    q_cont = rng.normal(-1 + 2 * frac, 0.5, 64)
    return {"act/halt_steps": halts, "act/q_halt": q_halt, "act/q_continue": q_cont}


def write_run(
    run_dir: str | Path,
    steps: int = 600,
    scenario: str = "healthy",
    *,
    world_size: int = 1,
    tensor_every: int = 10,
    eval_every: int = 100,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Write a synthetic run of `steps` steps: scenario "healthy" or "explosion"."""
    if scenario not in ("healthy", "explosion"):
        raise ValueError(f"scenario {scenario!r}: use 'healthy' or 'explosion'")
    run_dir = Path(run_dir)
    cfg = json.loads(json.dumps(dict(config or CONFIG)))
    for rank in range(world_size):
        rng = np.random.default_rng(seed * 1000 + rank)
        curves = _curves(steps, scenario, rng)
        names = list(curves)
        table = np.stack([curves[n] for n in names], axis=1).tolist()  # (steps, metrics)
        with RunWriter(
            run_dir,
            config=cfg,
            rank=rank,
            world_size=world_size,
            program="hrm-doctor dashboards.sample_runs",
        ) as w:
            for i in range(steps):
                row = dict(zip(names, table[i]))
                if i % tensor_every == 0:
                    row.update(_tensors(i, steps, scenario, rng))
                w.log(row, step=i)
                if eval_every and i and i % eval_every == 0:
                    acc = float(curves["train/accuracy"][i]) * 0.9
                    w.log(
                        {
                            "eval/test/accuracy": acc,
                            "eval/test/exact_accuracy": acc**6,
                            "eval/test/steps": float(curves["train/steps"][i]),
                        },
                        step=i,
                    )
    return run_dir


def explosion_findings(steps: int = 600, run: str = "explosion") -> list[dict[str, Any]]:
    """The findings a doctor daemon would write for `write_run(..., scenario="explosion")`."""
    onset = int(steps * 0.72)
    dead = steps - max(3, steps // 100)
    return [
        {
            "id": f"grad-explosion@{onset + 12}",
            "rule": "grad-explosion",
            "pack": "core",
            "category": "explosion",
            "severity": "critical",
            "first_step": onset + 12,
            "last_step": dead - 1,
            "rank": None,
            "metric": "grad/norm",
            "message": (
                "Gradient norm exploded: grad/norm rose from a median of 2.0 to 5.1e+03 "
                f"(x2500) between steps {onset + 12} and {dead - 1}, led by the H module."
            ),
            "evidence": {"baseline_median": 2.0, "peak": 5100.0, "ratio": 2550.0},
            "suggestion": {
                "overrides": ["lr=3.5e-05", "grad_clip_norm=1.0"],
                "apply": "hot",
                "rationale": (
                    "HRM trains stably at lr 7e-5..1e-4 only with warm-up; a 3x lower learning "
                    "rate and clipping at 1.0 bound the update while the H blocks recover."
                ),
                "monitor": "grad/norm back under 10 within 200 steps; train/lm_loss resumes falling",
                "fallback": "roll back to the last checkpoint before the onset and restart with lr=2e-05",
            },
        },
        {
            "id": f"halting-collapse@{onset + 80}",
            "rule": "halting-collapse",
            "pack": "act",
            "category": "halting",
            "severity": "warning",
            "first_step": onset + 80,
            "last_step": dead - 1,
            "rank": None,
            "metric": "act/halt_at_max_frac",
            "message": (
                "ACT stopped halting early: 60% of sequences now run to halt_max_steps=16 "
                "(5% before), so the Q-head no longer earns its compute budget."
            ),
            "evidence": {"before": 0.05, "after": 0.6},
            "suggestion": {
                "overrides": ["arch.halt_exploration_prob=0.05"],
                "apply": "hot",
                "rationale": "Less exploration lets Q-halt targets settle once gradients recover.",
                "monitor": "act/halt_at_max_frac below 0.2; train/q_halt_accuracy above 0.8",
                "fallback": "restart from the last good checkpoint with arch.halt_max_steps=8",
            },
        },
        {
            "id": f"nonfinite@{dead}",
            "rule": "nonfinite",
            "pack": "core",
            "category": "nonfinite",
            "severity": "critical",
            "first_step": dead,
            "last_step": steps - 1,
            "rank": None,
            "metric": "train/lm_loss",
            "message": (
                f"Loss became NaN at step {dead}: 17 non-finite values among the loss and "
                "gradients each step since."
            ),
            "evidence": {"nonfinite_count": 17},
            "suggestion": {
                "overrides": ["lr=2e-05", "grad_clip_norm=1.0"],
                "apply": "restart",
                "rationale": "Weights are already non-finite: only a rollback can recover the run.",
                "monitor": "nonfinite/count stays 0; grad/norm under 10",
                "fallback": "lower lr further to 1e-05 and enable lr warm-up of 2000 steps",
            },
        },
    ]


def explosion_patches(findings: list[dict[str, Any]], t0: float = 1.75e9) -> list[dict[str, Any]]:
    """A patch history: the explosion patch proposed, then applied hot at a later step."""
    f = findings[0]
    common = {"finding_id": f["id"], "overrides": f["suggestion"]["overrides"], "apply": "hot"}
    return [
        {**common, "time": t0, "state": "proposed", "step": f["first_step"], "reason": "suggested"},
        {
            **common,
            "time": t0 + 4.2,
            "state": "applied",
            "step": f["first_step"] + 3,
            "before": {"lr": 1e-4, "grad_clip_norm": None},
            "after": {"lr": 3.5e-5, "grad_clip_norm": 1.0},
            "reason": "hot: acknowledged by the trainer",
        },
    ]


def write_findings(run_dir: str | Path, findings: Iterable[Mapping[str, Any]]) -> Path:
    """Append findings to ``RUN/findings.jsonl`` (an empty iterable creates an empty file)."""
    path = Path(run_dir) / FINDINGS_FILE
    path.touch()
    append_jsonl(path, [dict(f) for f in findings])
    return path


def write_patches(run_dir: str | Path, patches: Iterable[Mapping[str, Any]]) -> Path:
    path = Path(run_dir) / PATCHES_FILE
    append_jsonl(path, [dict(p) for p in patches])
    return path


def sign_thrash_findings() -> list[dict[str, Any]]:
    """A warning only: the puzzle embeddings' SignSGD updates flip sign too often early on."""
    return [
        {
            "id": "emb-sign-thrash@50",
            "rule": "emb-sign-thrash",
            "pack": "embedding",
            "category": "embedding",
            "severity": "warning",
            "first_step": 50,
            "last_step": 240,
            "rank": None,
            "metric": "emb/puzzle/sign_flip_frac",
            "message": (
                "36% of updated puzzle-embedding entries flip sign each step: the embedding "
                "learning rate is large enough that SignSGD oscillates around zero."
            ),
            "evidence": {"sign_flip_frac": 0.36, "threshold": 0.3},
            "suggestion": {
                "overrides": ["puzzle_emb_lr=0.005"],
                "apply": "hot",
                "rationale": "Halving the SignSGD step lets entries settle on a sign.",
                "monitor": "emb/puzzle/sign_flip_frac below 0.2 within 500 steps",
                "fallback": "raise puzzle_emb_weight_decay to 2.0",
            },
        }
    ]


def write_demo_root(root: str | Path, steps: int = 3000) -> Path:
    """A healthy run, one with a warning, one exploding, all diagnosed: the screenshots' subject."""
    root = Path(root)
    write_run(root / "sudoku-healthy", steps, "healthy", world_size=2, seed=1)
    write_findings(root / "sudoku-healthy", [])
    write_run(root / "arc-1k-emb1e-2", steps, "healthy", seed=3)
    write_findings(root / "arc-1k-emb1e-2", sign_thrash_findings())
    write_run(
        root / "sudoku-lr3e-4",
        steps,
        "explosion",
        world_size=2,
        seed=2,
        config={**CONFIG, "lr": 3e-4, "lr_warmup_steps": 0},
    )
    findings = explosion_findings(steps)
    write_findings(root / "sudoku-lr3e-4", findings)
    write_patches(root / "sudoku-lr3e-4", explosion_patches(findings))
    return root
