"""Synthetic HRM-like runs for tests, benchmarks and rule calibration: realistic noisy healthy
curves (warmup, benign gradient-norm spikes, evaluations), and one pathology injected at a
known step. Not a simulator: shapes and noise levels follow public HRM/LLM training logs."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PATHOLOGIES = (
    "explosion",
    "nonfinite",
    "vanishing",
    "q_divergence",
    "halting_collapse",
    "sign_thrash",
    "loss_spike",
    "plateau",
    "straggler",
)
# The category a rule should report for each pathology.
EXPECTED_CATEGORY = {
    "explosion": "explosion",
    "nonfinite": "nonfinite",
    "vanishing": "vanishing",
    "q_divergence": "q_divergence",
    "halting_collapse": "halting",
    "sign_thrash": "embedding",
    "loss_spike": "loss_spike",
    "plateau": "plateau",
    "straggler": "distributed",
}

GROUPS = ("embed", "puzzle_emb", "H", "L", "q_head", "lm_head")


@dataclass(frozen=True)
class SynthRun:
    """A run as the reader would return it: config, meta, a wide frame and its logged mask."""

    config: dict[str, Any]
    meta: dict[str, Any]
    frame: pd.DataFrame
    logged: np.ndarray
    pathology: str | None = None
    onset: int | None = None

    @property
    def metrics(self) -> list[str]:
        return [c for c in self.frame.columns if c not in ("step", "rank")]


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _ar1(rng, n, phi, sigma):
    """A slowly wandering log-noise: AR(1) with stationary sd `sigma` (vectorised by lfilter)."""
    from scipy.signal import lfilter

    e = rng.normal(0.0, sigma * math.sqrt(1 - phi * phi), n)
    return lfilter([1.0], [1.0, -phi], e)


def reference_arch(halt_max_steps: int = 16) -> dict[str, Any]:
    """The HRM-ACT v1 architecture of the paper's recipes (27M parameters), as a config's `arch`."""
    return {
        "H_cycles": 2,
        "L_cycles": 2,
        "H_layers": 4,
        "L_layers": 4,
        "hidden_size": 512,
        "halt_max_steps": halt_max_steps,
        "halt_exploration_prob": 0.1,
        "puzzle_emb_ndim": 512,
        "forward_dtype": "bfloat16",
    }


def make_config(
    task: str = "sudoku",
    *,
    lr: float | None = None,
    warmup: int = 500,
    halt_max_steps: int = 16,
    eval_interval: int = 1000,
    epochs: int = 20000,
) -> dict[str, Any]:
    """A resolved trainer config shaped like hrm_core's Hydra config."""
    arc = task == "arc"
    return {
        "run_dir": "runs/synthetic",
        "data_path": f"data/{task}-synthetic",
        "seed": 0,
        "lr": lr if lr is not None else 1e-4,
        "puzzle_emb_lr": 1e-2 if arc else 1e-4,
        "weight_decay": 0.1 if arc else 1.0,
        "puzzle_emb_weight_decay": 0.1 if arc else 1.0,
        "lr_warmup_steps": warmup,
        "lr_min_ratio": 1.0,
        "global_batch_size": 768,
        "epochs": epochs,
        "eval_interval": eval_interval,
        "grad_clip_norm": None,
        "arch": reference_arch(halt_max_steps),
        "probe": {"enabled": True},
        "wandb": {"mode": "disabled"},
    }


def healthy_run(
    steps: int = 4000,
    *,
    seed: int = 0,
    task: str = "sudoku",
    world_size: int = 1,
    warmup: int | None = None,
    eval_interval: int | None = None,
    halt_max_steps: int = 16,
    n_blocks: int = 0,
    extra_metrics: int = 0,
    spike_rate: float | None = None,
    dtype: Any = np.float32,
) -> SynthRun:
    """A healthy run: loss falling with noise, warmup, benign single-step gradient spikes,
    halting learned, evaluations every `eval_interval` steps. `n_blocks` adds per-block gradient
    norms, `extra_metrics` pads with benign extra series (for size benchmarks)."""
    rng = np.random.default_rng(seed)
    warmup = int(
        warmup if warmup is not None else rng.integers(max(1, steps // 40), max(2, steps // 8))
    )
    eval_interval = int(eval_interval or max(100, steps // 8))
    cfg = make_config(
        task, warmup=warmup, halt_max_steps=halt_max_steps, eval_interval=eval_interval
    )
    meta = {
        "world_size": world_size,
        "run_id": f"synth{seed}",
        "program": "synth",
        "num_params": 27_275_266,
    }
    t = np.arange(steps, dtype=np.float64)
    lr_frac = np.minimum(1.0, (t + 1) / max(warmup, 1))
    u = np.cumsum(lr_frac)  # effective steps: little learning while the lr is still small
    tau = rng.uniform(0.08, 0.35) * steps
    alpha = rng.uniform(0.5, 1.2)
    decay = (1 + u / tau) ** -alpha
    l0, floor = rng.uniform(2.2, 2.5), rng.uniform(0.15, 0.6)
    learn = 1 - decay
    t_grok = rng.uniform(0.2, 0.6) * steps
    ceiling = rng.uniform(0.55, 0.97)
    exact_p = ceiling * _sig((t - t_grok) / (0.06 * steps))
    t_halt = rng.uniform(0.1, 0.4) * steps
    halt_learn = _sig((t - t_halt) / (0.05 * steps))
    s_final = rng.uniform(3, 0.6 * halt_max_steps)
    batch = 96  # sequences halting per step (noise of the per-step fractions)

    def binom(p):
        p = np.clip(p, 0, 1)
        return rng.binomial(batch, p) / batch

    shared: dict[str, np.ndarray] = {}
    gnoise = rng.uniform(0.12, 0.3)
    g_inf = rng.uniform(0.3, 2.0)
    g0 = g_inf * rng.uniform(2, 6)
    grad = (
        (g_inf + (g0 - g_inf) * np.exp(-u / (0.05 * steps + 50)))
        * np.exp(_ar1(rng, steps, 0.995, 0.15))
        * np.exp(rng.normal(0, gnoise, steps))
    )
    rate = spike_rate if spike_rate is not None else rng.uniform(1 / 2000, 1 / 400)
    spikes = rng.random(steps) < rate
    spikes[: max(10, warmup // 4)] = False
    spike_mult = np.where(spikes, rng.uniform(3, 25, steps), 1.0)
    shared["grad"] = grad * spike_mult
    step_time = rng.uniform(0.15, 0.5)
    mem = rng.uniform(4e9, 30e9)

    frames = []
    for rank in range(world_size):
        m: dict[str, np.ndarray] = {}
        noise = rng.uniform(0.02, 0.07)
        loss = (floor + (l0 - floor) * decay) * np.exp(
            rng.normal(0, noise, steps) + _ar1(rng, steps, 0.99, 0.01)
        )
        loss *= np.where(spikes, rng.uniform(1.0, 1.15, steps), 1.0)
        m["train/lm_loss"] = loss
        m["train/accuracy"] = np.clip(0.35 + 0.6 * learn + rng.normal(0, 0.01, steps), 0, 1)
        exact = binom(exact_p)
        m["train/exact_accuracy"] = exact
        q_learn = _sig((t - t_grok - 0.05 * steps) / (0.05 * steps))
        m["train/q_halt_accuracy"] = np.clip(
            1 - exact + exact * q_learn * 0.9 + rng.normal(0, 0.01, steps), 0, 1
        )
        m["train/q_halt_loss"] = np.abs(
            0.01 + 0.45 * exact_p * (1 - 0.6 * q_learn) + rng.normal(0, 0.02, steps)
        )
        m["train/q_continue_loss"] = np.abs(
            0.02 + 0.25 * learn * (1 - 0.5 * halt_learn) + rng.normal(0, 0.015, steps)
        )
        m["train/steps"] = np.clip(
            halt_max_steps - (halt_max_steps - s_final) * halt_learn + rng.normal(0, 0.3, steps),
            1,
            halt_max_steps,
        )
        m["train/lr"] = cfg["lr"] * lr_frac
        m["train/puzzle_emb_lr"] = cfg["puzzle_emb_lr"] * lr_frac
        m["grad/norm"] = shared["grad"]
        for g, frac in zip(GROUPS, (0.2, 0.05, 0.55, 0.65, 0.02, 0.3)):
            m[f"grad/norm/{g}"] = shared["grad"] * frac * np.exp(rng.normal(0, 0.08, steps))
        for i in range(n_blocks):
            for mod in ("H", "L"):
                m[f"grad/norm/{mod}.{i}"] = (
                    m[f"grad/norm/{mod}"]
                    / math.sqrt(max(n_blocks, 1))
                    * np.exp(rng.normal(0, 0.1, steps))
                )
        for g, p0 in zip(("embed", "H", "L", "q_head", "lm_head"), (30.0, 80.0, 80.0, 5.0, 20.0)):
            m[f"param/norm/{g}"] = p0 * (1 + 0.05 * learn) * np.exp(rng.normal(0, 0.001, steps))
            m[f"update/ratio/{g}"] = (
                1e-3 * lr_frac * np.exp(rng.normal(0, 0.25, steps) + _ar1(rng, steps, 0.99, 0.1))
            )
        qh = -5 + 5.5 * halt_learn * _sig((t - t_halt) / (0.1 * steps)) + rng.normal(0, 0.25, steps)
        qc = -5 + 3.5 * halt_learn + rng.normal(0, 0.25, steps)
        m["act/q_halt/mean"] = qh
        m["act/q_halt/absmax"] = np.abs(qh) + 3 + 3 * learn + np.abs(rng.normal(0, 0.5, steps))
        m["act/q_continue/mean"] = qc
        m["act/q_continue/absmax"] = np.abs(qc) + 2 + 2 * learn + np.abs(rng.normal(0, 0.5, steps))
        m["act/target_q_continue/mean"] = np.clip(_sig(qc + 1.0) + rng.normal(0, 0.01, steps), 0, 1)
        m["act/halt_at_max_frac"] = binom(0.98 - 0.8 * halt_learn)
        m["act/premature_halt_frac"] = binom(0.05 + 0.1 * halt_learn * (1 - exact_p))
        m["act/halt_delay_mean"] = np.abs(
            0.5 + 2 * halt_learn * exact_p + rng.normal(0, 0.2, steps)
        )
        for z in ("z_H", "z_L"):
            m[f"state/{z}/rms"] = 1.0 + rng.normal(0, 0.004, steps)
            m[f"state/{z}/delta_rms"] = 0.05 + 0.4 * decay * np.exp(rng.normal(0, 0.1, steps))
        m["emb/puzzle/sign_flip_frac"] = binom(0.02 + 0.25 * np.exp(-t / (0.03 * steps + 30)))
        m["emb/puzzle/rows_touched"] = np.full(steps, 768.0 if task == "arc" else 1.0)
        eq = math.sqrt(512) / cfg["puzzle_emb_weight_decay"]
        m["emb/puzzle/norm/mean"] = (
            eq * (1 - np.exp(-cfg["puzzle_emb_lr"] * cfg["puzzle_emb_weight_decay"] * u)) + 1e-3
        )
        m["nonfinite/count"] = np.zeros(steps)
        st = (
            step_time
            * np.exp(rng.normal(0, 0.04, steps))
            * np.where(rng.random(steps) < 1 / 300, rng.uniform(1.5, 3, steps), 1.0)
        )
        m["sys/step_time_s"] = st
        m["sys/samples_per_s"] = cfg["global_batch_size"] / world_size / st
        m["sys/data_wait_s"] = st * rng.uniform(0.005, 0.04) * np.exp(rng.normal(0, 0.3, steps))
        if world_size > 1:
            m["sys/comm_s"] = st * rng.uniform(0.08, 0.2) * np.exp(rng.normal(0, 0.1, steps))
        m["sys/mem_peak_bytes"] = mem * (1 + rng.normal(0, 0.0005, steps))
        for i in range(extra_metrics):
            m[f"extra/metric_{i:03d}"] = np.exp(rng.normal(0, 0.1, steps))
        df = pd.DataFrame({"step": t.astype(np.int64), "rank": np.full(steps, rank, np.int64)})
        cols = pd.DataFrame({k: v.astype(dtype) for k, v in m.items()})
        ev = (t > 0) & ((t.astype(np.int64) + 1) % eval_interval == 0)
        eval_cols = {
            "eval/test/accuracy": np.where(
                ev, np.clip(m["train/accuracy"] - rng.uniform(0.02, 0.1), 0, 1), np.nan
            ),
            "eval/test/exact_accuracy": np.where(
                ev,
                np.clip(exact_p * rng.uniform(0.6, 0.9) + rng.normal(0, 0.01, steps), 0, 1),
                np.nan,
            ),
            "eval/test/steps": np.where(ev, float(halt_max_steps), np.nan),
            "eval/test/seconds": np.where(ev, rng.uniform(5, 40), np.nan),
        }
        frames.append(
            pd.concat(
                [df, cols, pd.DataFrame({k: v.astype(dtype) for k, v in eval_cols.items()})], axis=1
            )
        )
    frame = (
        pd.concat(frames, ignore_index=True)
        .sort_values(["step", "rank"], kind="stable")
        .reset_index(drop=True)
    )
    logged = ~frame.drop(columns=["step", "rank"]).isna().to_numpy()
    return SynthRun(cfg, meta, frame, logged)


TRM_ARCH = {"name": "trm", "H_cycles": 3, "L_cycles": 6, "H_layers": 0, "L_layers": 2,
            "hidden_size": 512, "mlp_t": True, "pos_encodings": "none", "puzzle_emb_len": 16,
            "no_ACT_continue": True, "puzzle_emb_ndim": 512, "forward_dtype": "bfloat16"}  # fmt: skip
_NOT_IN_TRM = ("act/q_continue", "act/target_q_continue", "train/q_continue_loss", "/H")


def as_trm(run: SynthRun, *, seed: int = 0, ema_rate: float = 0.999) -> SynthRun:
    """The same healthy run as a TRM run would log it (docs/trm.md): no H module, no
    Q-continue head, the carries named y and z, and the EMA's distance from the weights
    (rising over the average's memory to a few percent, then easing with the lr's effect)."""
    rng = np.random.default_rng(seed + 104729)
    drop = [c for c in run.frame if any(part in c for part in _NOT_IN_TRM)]
    drop += [c for c in run.frame if c.startswith(("grad/norm/H.", "param/norm/H."))]
    df = run.frame.drop(columns=drop).rename(
        columns=lambda c: c.replace("state/z_H/", "state/y/").replace("state/z_L/", "state/z/")
    )
    t = df["step"].to_numpy(np.float64)
    memory = 1.0 / (1.0 - ema_rate)
    level = rng.uniform(0.02, 0.08) * (1 - np.exp(-t / memory)) * (0.6 + 0.4 * np.exp(-t / 4000))
    df["ema/param_dist"] = (level * np.exp(rng.normal(0, 0.03, len(df)))).astype(np.float32)
    arch = {**TRM_ARCH, "halt_max_steps": run.config["arch"]["halt_max_steps"],
            "halt_exploration_prob": 0.1}  # fmt: skip
    config = {**run.config, "arch": arch, "ema": True, "ema_rate": ema_rate}
    meta = {**run.meta, "num_params": 5_028_866, "total_steps": int(t.max()) + 1}
    logged = ~df.drop(columns=["step", "rank"]).isna().to_numpy()
    return replace(run, config=config, meta=meta, frame=df, logged=logged)


def inject(
    run: SynthRun, pathology: str, onset: int, *, seed: int = 0, rank: int | None = None
) -> SynthRun:
    """A copy of `run` with one pathology starting at step `onset`."""
    if pathology not in PATHOLOGIES:
        raise ValueError(f"unknown pathology {pathology!r} (known: {', '.join(PATHOLOGIES)})")
    rng = np.random.default_rng(seed + 7919)
    df = run.frame.copy()
    logged = run.logged.copy()
    cols = [c for c in df.columns if c not in ("step", "rank")]
    step = df["step"].to_numpy()
    after = step >= onset
    dt = np.where(after, step - onset, 0).astype(np.float64)
    ranks = df["rank"].to_numpy()

    def col(name):
        return df[name].to_numpy(np.float64)

    def put(name, values, where=None):
        where = after if where is None else where
        v = col(name)
        v[where] = values[where]
        df[name] = v.astype(df[name].dtype)

    if pathology == "explosion":
        tau = rng.uniform(15, 60)
        g = np.exp(np.minimum(dt / tau, 60))
        for c in cols:
            if c.startswith("grad/norm"):
                put(c, col(c) * g)
        put("train/lm_loss", col("train/lm_loss") * (1 + 0.5 * np.log(g)))
    elif pathology == "nonfinite":
        for c in ("train/lm_loss", "grad/norm", "grad/norm/H", "grad/norm/L"):
            put(c, np.full(len(df), np.nan))
        put("nonfinite/count", np.full(len(df), float(rng.integers(1, 1000))))
    elif pathology == "vanishing":
        mod = "H" if rng.random() < 0.5 else "L"
        tau = rng.uniform(40, 250)
        for c in cols:
            if c == f"grad/norm/{mod}" or c.startswith(f"grad/norm/{mod}."):
                put(c, col(c) * np.exp(-dt / tau))
    elif pathology == "q_divergence":
        tau = rng.uniform(80, 300)
        growth = np.exp(np.minimum(dt / tau, 50))
        put("act/q_continue/mean", col("act/q_continue/mean") + 2.0 * (growth - 1))
        put("act/q_continue/absmax", col("act/q_continue/absmax") * growth)
        put("act/q_halt/absmax", col("act/q_halt/absmax") * np.sqrt(growth))
        put("train/q_continue_loss", col("train/q_continue_loss") * (1 + 0.3 * np.log(growth)))
    elif pathology == "halting_collapse":
        ramp = np.clip(dt / rng.uniform(30, 150), 0, 1)
        hm = float(run.config["arch"]["halt_max_steps"])
        put(
            "act/halt_at_max_frac",
            col("act/halt_at_max_frac") * (1 - ramp)
            + ramp * np.clip(0.99 + rng.normal(0, 0.005, len(df)), 0, 1),
        )
        put(
            "train/steps",
            col("train/steps") * (1 - ramp) + ramp * (hm - np.abs(rng.normal(0, 0.05, len(df)))),
        )
        put("act/q_halt/mean", col("act/q_halt/mean") - 3 * ramp)
    elif pathology == "sign_thrash":
        level = rng.uniform(0.35, 0.55)
        put("emb/puzzle/sign_flip_frac", np.clip(level + rng.normal(0, 0.05, len(df)), 0, 1))
    elif pathology == "loss_spike":
        length = int(rng.integers(10, 60))
        bump = rng.uniform(2.0, 5.0)
        win = after & (dt < length)
        shape = np.where(win, 1 + (bump - 1) * np.exp(-dt / max(length / 2, 1)), 1.0)
        put("train/lm_loss", col("train/lm_loss") * shape, win)
        put("grad/norm", col("grad/norm") * shape**2, win)
    elif pathology == "plateau":
        for c in ("train/lm_loss", "train/accuracy"):
            v = col(c)
            for r in np.unique(ranks):
                sel = ranks == r
                base = v[sel & (step >= onset - 50) & (step < onset)]
                level = float(np.median(base)) if len(base) else float(v[sel][0])
                noise = v[sel] / np.maximum(_smooth(v[sel]), 1e-12)
                new = v.copy()
                new[sel] = level * noise
                put(c, new, after & sel)
    elif pathology == "straggler":
        ws = int(run.meta.get("world_size", 1))
        if ws < 2:
            raise ValueError("a straggler needs world_size >= 2")
        r = rank if rank is not None else int(rng.integers(0, ws))
        slow = rng.uniform(1.4, 2.5)
        sel = after & (ranks == r)
        put("sys/step_time_s", col("sys/step_time_s") * slow, sel)
        put("sys/samples_per_s", col("sys/samples_per_s") / slow, sel)
        others = after & (ranks != r)
        if "sys/comm_s" in df.columns:
            put("sys/comm_s", col("sys/comm_s") + col("sys/step_time_s") * (slow - 1), others)
    return replace(run, frame=df, logged=logged, pathology=pathology, onset=onset)


def _smooth(v: np.ndarray, w: int = 51) -> np.ndarray:
    from scipy import ndimage

    return ndimage.median_filter(v, size=w, mode="nearest")


def write_run(run: SynthRun, run_dir: str | Path) -> Path:
    """Write `run` through the public RunWriter (one writer per rank), as a trainer would."""
    from hrm_doctor import RunWriter

    run_dir = Path(run_dir)
    ws = int(run.meta.get("world_size", 1))
    cols = run.metrics
    steps = run.frame["step"].to_numpy()
    ranks = run.frame["rank"].to_numpy()
    values = run.frame[cols].to_numpy(np.float64)
    for rank in range(ws):
        idx = np.nonzero(ranks == rank)[0]
        with RunWriter(
            run_dir,
            config=run.config,
            rank=rank,
            world_size=ws,
            meta={k: v for k, v in run.meta.items() if k != "world_size"},
        ) as w:
            for i in idx.tolist():
                row = run.logged[i]
                w.log({c: values[i, j] for j, c in enumerate(cols) if row[j]}, step=int(steps[i]))
    return run_dir
