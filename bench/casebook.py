"""The casebook: real `hrm-train` runs made sick the way HRM users report it, diagnosed and healed.

Each case is a shipped preset plus one knob (or a broken data set, or a bad rank). For each:

1. the sick run (plain `hrm-train`), then `hrm-doctor explain --format json`: the doctor's first
   finding of the expected category (warning or worse, from the run's telemetry: config checks
   do not count), its first step and the step it was made at (the delay);
2. the same run under `hrm-doctor run --apply`: does it end with no critical finding and at
   least 90 % of a healthy run's final eval accuracy (token accuracy: the CPU presets are too
   short for whole-puzzle accuracy) on the same seed and budget? With the steps and the time
   the cure cost;
3. a picture: the finding's metric (and the loss) around the onset, the finding marked
   (docs/img/casebook/CASE.png);

and healthy runs of each preset (several seeds) must give no warning or critical finding.
Results go to a JSON file and to docs/casebook.md.

Distributed cases run under `torchrun --nproc_per_node=2` (gloo on the CPU): a slow rank (one
rank's process stopped and resumed by signals, cpulimit's way, so it runs 30 % of the time;
sick when its steps are slower than the healthy 2-rank run's) and one rank reading a stale copy
of the data (`data_path=DIR/${oc.env:LOCAL_RANK}`, each rank its own link). Broken inputs the
trainer refuses before step 1 (exit 2, one line) are listed apart ("at the door").

Usage: python bench/casebook.py [--cases NAME...] [--seed 0] [--healthy-seeds 0 1 2]
       [--root runs/casebook] [--md docs/casebook.md] [--img docs/img/casebook] [--json FILE]
       [--no-heal] [--no-healthy] [--scale cpu|gpu]
       python bench/casebook.py --combine A.json B.json ... [--json FILE] [--md docs/casebook.md]
       python bench/casebook.py --rediagnose FILE.json [--root ROOT]   (after a rule change)
Shards (disjoint --cases, each with its own --json, the same --root) run side by side on a
machine with cores to spare; --combine then writes the one casebook.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

HEAL_SHARE = 0.90  # a healed run reaches 90 % of the healthy run's final eval accuracy


# ---- the cases -----------------------------------------------------------------------------------


def shuffle_labels(src: Path, dst: Path) -> None:
    """Labels of the training set permuted across examples: inputs and answers no longer match."""
    _copy_with(src, dst, "labels", lambda a, rng: a[rng.permutation(len(a))])


def ignore_all_labels(src: Path, dst: Path) -> None:
    """Every training label set to the ignored id: nothing to learn from (a broken converter)."""
    meta = json.loads((src / "train" / "dataset.json").read_text())
    ignore = meta.get("ignore_label_id") or 0
    _copy_with(src, dst, "labels", lambda a, rng: np.full_like(a, ignore))


def ids_out_of_range(src: Path, dst: Path) -> None:
    """Puzzle identifiers past the embedding table (a converter that numbered puzzles from the
    wrong base, or a dataset.json from another build)."""
    n = json.loads((src / "train" / "dataset.json").read_text())["num_puzzle_identifiers"]
    _copy_with(src, dst, "puzzle_identifiers", lambda a, rng: a + n)


def _copy_with(src: Path, dst: Path, field_name: str, change: Callable) -> None:
    if dst.exists():
        return
    shutil.copytree(src, dst)
    rng = np.random.default_rng(0)
    for f in (dst / "train").glob(f"*__{field_name}.npy"):
        np.save(f, change(np.load(f), rng))


@dataclass(frozen=True)
class Case:
    name: str
    preset: str  # experiment=NAME or task=NAME, and arch=NAME for another architecture
    knob: tuple[str, ...]  # the Hydra overrides that make it sick
    expect: tuple[str, ...]  # acceptable categories of the doctor's first finding
    story: str  # how HRM users meet it (the reference repo's issue threads, the paper)
    data: Callable[[Path, Path], None] | None = None  # breaks the data set
    heal: bool = True  # counted in the heal rate (a broken data set is not healed by a patch)
    ci: bool = False  # in the test suite's subset
    ranks: int = 1  # >1: torchrun --nproc_per_node=ranks (gloo on the CPU)
    broken_rank: int | None = None  # only this rank reads the broken data (a stale node-local copy)
    throttle: float | None = None  # the last rank runs this share of the time (SIGSTOP/SIGCONT)
    sick_when: str = "accuracy"  # or "speed": sick when steps/s fall below 90 % of healthy

    @property
    def args(self) -> list[str]:
        return [*self.preset.split(), *self.knob]


def knob_label(case: Case) -> str:
    """What was turned: the overrides, or what was done to the data or to a rank."""
    if case.throttle is not None:
        return f"rank {case.ranks - 1} runs {case.throttle:.0%} of the time"
    if case.broken_rank is not None:
        return f"rank {case.broken_rank} reads the broken data"
    return " ".join(case.knob) or "(the data)"


def _slug(preset: str, ranks: int = 1) -> str:
    """experiment=smoke arch=trm -> smoke-trm: the healthy run's directory."""
    return "-".join(t.split("=", 1)[1] for t in preset.split()) + (f"-{ranks}ranks" * (ranks > 1))


CASES: tuple[Case, ...] = (
    Case("lr-no-warmup", "experiment=smoke", ("lr=0.03", "lr_warmup_steps=0"), ("explosion",),
         "A 30x lr with no warmup (HRM issue threads: loss NaN / spikes when the lr is raised "
         "for a smaller batch without the 2000-step warmup).", ci=True),
    Case("lr-absurd", "experiment=smoke", ("lr=3", "lr_warmup_steps=0"),
         ("explosion", "nonfinite"), "An lr typo (3 for 3e-4): the weights are destroyed at "
         "once."),
    Case("emb-lr-huge", "experiment=smoke", ("puzzle_emb_lr=100",),
         ("nonfinite", "embedding", "explosion"), "A puzzle-embedding lr meant for ARC's "
         "SignSGD scaled wrongly: +-lr per step on every touched entry."),
    Case("weight-decay-huge", "experiment=smoke", ("weight_decay=50",),
         ("vanishing", "plateau", "lr_schedule", "halting", "q_divergence"),
         "Weight decay set for a different optimizer (AdamW decoupled decay 50x the recipe): "
         "the weights are pulled to zero faster than they learn."),
    Case("no-exploration", "experiment=smoke", ("arch.halt_exploration_prob=0",),
         ("halting",), "Exploration off: Q-learning never sees longer thinking pay off, halting "
         "collapses to the first step (HRM issue threads on ACT always halting at 1)."),
    Case("halt-max-1", "experiment=smoke", ("arch.halt_max_steps=1",),
         ("halting",), "halt_max_steps=1: ACT has nothing to decide; one segment per puzzle."),
    Case("lr-too-low", "experiment=smoke", ("lr=1e-6",), ("plateau", "vanishing"),
         "A fine-tuning lr (1e-6) left in a from-scratch run: the loss barely moves and the run "
         "looks merely slow."),
    Case("labels-shuffled", "experiment=smoke", (),
         ("plateau", "vanishing", "data", "halting", "q_divergence"),
         "A data converter that misaligns inputs and labels: nothing to learn.",
         data=shuffle_labels, heal=False),
    Case("labels-all-ignored", "experiment=smoke", (),
         ("nonfinite", "data", "vanishing", "plateau"),
         "Every label equal to the ignore id (a wrong ignore_label_id): the loss has no "
         "tokens to count.", data=ignore_all_labels, heal=False, ci=True),
    Case("maze-lr-no-warmup", "experiment=smoke_maze", ("lr=0.03", "lr_warmup_steps=0"),
         ("explosion",), "The Sudoku lesson on mazes: a high lr without warmup."),
    Case("maze-weight-decay-huge", "experiment=smoke_maze", ("weight_decay=50",),
         ("vanishing", "plateau"), "Decay meant for another optimizer, on mazes."),
    Case("maze-no-exploration", "experiment=smoke_maze", ("arch.halt_exploration_prob=0",),
         ("halting",), "Exploration off on mazes, where longer thinking matters most."),
    Case("maze-lr-too-low", "experiment=smoke_maze", ("lr=1e-6",), ("plateau", "vanishing"),
         "A fine-tuning lr on a from-scratch maze run."),
    Case("maze-labels-shuffled", "experiment=smoke_maze", (),
         ("plateau", "vanishing", "data", "halting", "q_divergence"),
         "Maze paths paired with the wrong mazes by a converter bug.", data=shuffle_labels,
         heal=False),
    Case("trm-weight-decay-huge", "experiment=smoke arch=trm", ("weight_decay=100",),
         ("plateau", "vanishing", "halting"),
         "TRM's recipe uses weight decay 1.0 (10x HRM's): a further 100x pulls the one tiny "
         "network to zero and its answer y stops moving."),
    Case("trm-lr-absurd", "experiment=smoke arch=trm", ("lr=0.1", "lr_warmup_steps=0"),
         ("explosion", "lr_schedule", "nonfinite"),
         "HRM's lr habits on TRM (which trains at 1e-4): 100x the smoke lr without warmup; the "
         "weights run away from their EMA."),
    Case("trm-weight-decay-high", "experiment=smoke arch=trm", ("weight_decay=10",),
         ("halting", "plateau", "vanishing"),
         "TRM's decay of 1.0 taken for a per-step factor and raised: q_halt never climbs above "
         "zero, every puzzle thinks to the maximum."),
    Case("trm-ema-too-slow", "experiment=smoke arch=trm", ("ema_rate=0.9999",),
         ("lr_schedule",),
         "The paper's ema_rate carried to a run 100x shorter: the evaluated EMA copy stays near "
         "the initial weights while the live weights learn."),
    Case("trm-no-ema", "experiment=smoke arch=trm", ("ema=false",), ("lr_schedule",),
         "EMA off (the TRM paper: less stable, a few points lower); evaluation on the live "
         "weights."),
    Case("trm-lr-too-low", "experiment=smoke arch=trm", ("lr=1e-6",), ("plateau", "vanishing"),
         "A fine-tuning lr on a from-scratch TRM run."),
)  # fmt: skip


DISTRIBUTED: tuple[Case, ...] = (
    Case("slow-rank", "experiment=smoke", (), ("distributed", "throughput"),
         "One rank on a host shared with another job (here: stopped and resumed by signals so "
         "that it runs 30 % of the time, as cpulimit does): every step waits for it.",
         heal=False, ranks=2, throttle=0.3, sick_when="speed"),
    Case("stale-data-one-rank", "experiment=smoke", (), ("distributed", "data", "plateau"),
         "Node-local copies of the data set, one of them stale (labels misaligned): one rank "
         "trains on another task and pulls the shared weights away.",
         data=shuffle_labels, heal=False, ranks=2, broken_rank=1),
)  # fmt: skip
CASES = CASES + DISTRIBUTED


# Broken inputs the trainer refuses before step 1 (one line naming the file, exit 2): nothing to
# diagnose, but a user meets them and must not get a crash mid-run.
DOOR: tuple[Case, ...] = (
    Case("puzzle-ids-out-of-range", "experiment=smoke", (), (),
         "Puzzle ids beyond num_puzzle_identifiers: on the GPU an index error deep in the "
         "embedding's gather, minutes into the run.", data=ids_out_of_range, heal=False),
)  # fmt: skip


# ---- running ---------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip


def run_cmd(cmd: list[str], log: Path, timeout: float, throttle: float | None = None
            ) -> tuple[int, float]:  # fmt: skip
    t0 = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(), cwd=REPO)
        try:
            if throttle is not None:
                _throttle_last_rank(p, throttle, t0 + timeout)
            p.wait(timeout=max(1.0, t0 + timeout - time.perf_counter()))
        except BaseException:
            p.kill()
            p.wait()
            raise
    return p.returncode, time.perf_counter() - t0


def _throttle_last_rank(p: subprocess.Popen, share: float, deadline: float) -> None:
    """Let the highest local rank of `p`'s processes run `share` of the time, in 100 ms periods
    (cpulimit's method: SIGSTOP, then SIGCONT), until `p` ends."""
    period, pid = 0.1, None
    while p.poll() is None and time.perf_counter() < deadline:
        pid = pid or _last_rank_pid(p.pid)
        if pid is None:
            time.sleep(0.2)
            continue
        try:
            time.sleep(period * share)
            os.kill(pid, signal.SIGSTOP)
            time.sleep(period * (1 - share))
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pid = None


def _last_rank_pid(root: int) -> int | None:
    """The trainer process with the highest LOCAL_RANK below `root` (torchrun's children)."""
    best: tuple[int, int] | None = None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        rank = next((int(e[11:]) for e in env if e.startswith(b"LOCAL_RANK=")), None)
        if rank is not None and _descends(int(proc.name), root):
            best = max(best or (rank, int(proc.name)), (rank, int(proc.name)))
    return best[1] if best else None


def _descends(pid: int, root: int) -> bool:
    for _ in range(8):
        if pid == root:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            return False
    return False


def train_cmd(args: list[str], run_dir: Path, data: Path | str, seed: int, extra=(),
              ranks: int = 1) -> list[str]:  # fmt: skip
    launch = [str(BIN / "hrm-train")]
    if ranks > 1:
        launch = [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={ranks}",
                  "--no-python", *launch]  # fmt: skip
    return [*launch, *args, f"run_dir={run_dir}", f"data_path={data}", f"seed={seed}", *extra]


def explain(run_dir: Path) -> dict:
    out = subprocess.run(
        [str(BIN / "hrm-doctor"), "explain", "--run", str(run_dir), "--format", "json",
         "--fail-on", "never"],
        capture_output=True, text=True, env=_env(), cwd=REPO, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def final_eval(run_dir: Path) -> float | None:
    from hrm_doctor import RunReader

    df = RunReader(run_dir).scalars(["eval/*/accuracy"])
    cols = [c for c in df.columns if c.startswith("eval/")]
    if not cols:
        return None
    v = df[cols[0]].dropna()
    return float(v.iloc[-1]) if len(v) else None


def step_seconds(run_dir: Path) -> float | None:
    """Median seconds per step of rank 0 (sys/step_time_s)."""
    from hrm_doctor import RunReader

    df = RunReader(run_dir).scalars(["sys/step_time_s"])
    v = df[df["rank"] == 0]["sys/step_time_s"].dropna() if "sys/step_time_s" in df else ()
    return float(np.median(v)) if len(v) else None


def live_findings(run_dir: Path) -> list[dict]:
    from hrm_doctor.rundir import live_findings as live

    return live(run_dir)


@dataclass
class Outcome:
    case: str
    preset: str
    knob: str
    expect: list[str]
    found: dict | None = None  # the first finding of an expected category
    first_findings: list[str] = field(default_factory=list)  # what the doctor said first
    caught: bool = False
    manifest: bool | None = None  # the sick run is below 90 % of the healthy one (or not finite)
    healed: bool | None = None
    healthy_acc: float | None = None
    sick_acc: float | None = None
    cured_acc: float | None = None
    cure: dict = field(default_factory=dict)
    picture: str | None = None
    seconds: float = 0.0
    step_s: list[float | None] = field(default_factory=list)  # seconds per step: healthy, sick


def first_expected(report: dict, expect: tuple[str, ...]) -> dict | None:
    # from the run's own telemetry: a config check (no metric: made from the config at step 0)
    # does not count, whatever its category
    dynamic = [f for f in report["findings"] if f["category"] != "config" and f.get("metric")]
    hits = [f for f in dynamic if f["category"] in expect and f["severity"] != "info"]
    return min(hits, key=lambda f: (made_at(f), f["first_step"])) if hits else None


def made_at(finding: dict) -> int:
    """The step the doctor said it (its evidence's step; a finding's last step is where it
    stopped firing, which for a trouble that lasts is the end of the run)."""
    return finding["evidence"].get("step", finding["last_step"])


def picture(run_dir: Path, finding: dict, dest: Path, title: str) -> str | None:
    """The finding's metric and the loss around the onset, the finding marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hrm_doctor import RunReader

    metric = finding.get("metric") or "train/lm_loss"
    names = list(dict.fromkeys([metric, "train/lm_loss"]))
    df = RunReader(run_dir).scalars(names, aggregate="mean")
    if metric not in df.columns:
        return None
    first, made = finding["first_step"], finding["evidence"].get("step", finding["last_step"])
    span = max(made - first, 40)
    lo, hi = max(0, first - 4 * span), made + 2 * span
    part = df[(df["step"] >= lo) & (df["step"] <= hi)]
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.2 * len(names)), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names, strict=True):
        ax.plot(part["step"], part[name], lw=1, color="#1f77b4")
        ax.set_ylabel(name, fontsize=8)
        v = part[name].to_numpy(float)
        if np.nanmin(v) > 0 and np.nanmax(v) / max(np.nanmin(v), 1e-30) > 50:
            ax.set_yscale("log")
        ax.axvspan(first, max(made, first + 1), color="red", alpha=0.15)
        ax.axvline(made, color="red", lw=1)
    axes[0].set_title(f"{title}: {finding['id']} ({finding['severity']})", fontsize=9)
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=90)
    plt.close(fig)
    return str(dest.relative_to(REPO)) if dest.is_relative_to(REPO) else str(dest)


class Casebook:
    def __init__(self, root: Path, img: Path, seed: int, timeout: float) -> None:
        self.root, self.img, self.seed, self.timeout = root, img, seed, timeout
        self.data_dir = root / "data"
        self._healthy: dict[str, tuple[Path, float | None]] = {}

    def data_for(self, case: Case) -> Path | str:
        data_preset = case.preset.split()[0]  # the architecture does not change the data
        base = self.data_dir / data_preset.split("=", 1)[1]
        if not (base / "train" / "dataset.json").exists():  # built by a preflight, as a user would
            code, _ = run_cmd(train_cmd([data_preset], self.root / ".preflight", base, 0,
                                        ["preflight=true"]), self.root / "preflight.log", 600)  # fmt: skip
            if code != 0:
                raise RuntimeError(f"could not build the data of {case.preset}")
        if case.data is None:
            return base
        broken = self.data_dir / f"{base.name}-{case.name}"
        case.data(base, broken)
        if case.broken_rank is None:
            return broken
        # one path for every rank, resolved by each rank (Hydra's oc.env): rank r reads ranks/r
        ranks = self.data_dir / f"{base.name}-{case.name}-ranks"
        ranks.mkdir(exist_ok=True)
        for r in range(case.ranks):
            link = ranks / str(r)
            if not link.is_symlink():
                link.symlink_to(broken if r == case.broken_rank else base)
        return f"{ranks}/${{oc.env:LOCAL_RANK}}"

    def healthy(self, preset: str, seed: int, ranks: int = 1) -> tuple[Path, float | None]:
        key = f"{preset}/{ranks}/{seed}"
        if key not in self._healthy:
            run = self.root / "healthy" / f"{_slug(preset, ranks)}-seed{seed}"
            data = self.data_for(Case("x", preset, (), (), ""))
            if not (run / "meta.json").exists():
                run.parent.mkdir(parents=True, exist_ok=True)
                code, _ = run_cmd(train_cmd(preset.split(), run, data, seed, ranks=ranks),
                                  run.parent / f"{run.name}.log", self.timeout)  # fmt: skip
                if code != 0:
                    raise RuntimeError(f"the healthy {preset} run failed: see {run}.log")
            self._healthy[key] = (run, final_eval(run))
        return self._healthy[key]

    def diagnose(self, case: Case, out: Outcome) -> None:
        """The doctor's findings on the case's sick run (ROOT/sick/CASE) into `out`."""
        sick = self.root / "sick" / case.name
        report = explain(sick)
        found = first_expected(report, case.expect)
        out.first_findings = [f"{f['id']} ({f['severity']})" for f in sorted(
            report["findings"], key=made_at) if f["severity"] != "info"][:4]  # fmt: skip
        out.caught, out.found, out.picture = found is not None, None, None
        if found is not None:
            out.found = {k: found[k] for k in ("id", "rule", "category", "severity", "first_step",
                                               "last_step", "metric", "message")}  # fmt: skip
            out.found["made_at"] = made_at(found)
            out.picture = picture(sick, found, self.img / f"{case.name}.png", case.name)

    def run_case(self, case: Case, heal: bool) -> Outcome:
        t0 = time.perf_counter()
        out = Outcome(case.name, case.preset, knob_label(case), list(case.expect))
        data = self.data_for(case)
        sick = self.root / "sick" / case.name
        shutil.rmtree(sick, ignore_errors=True)
        sick.parent.mkdir(parents=True, exist_ok=True)
        run_cmd(train_cmd(case.args, sick, data, self.seed, ranks=case.ranks),
                sick.parent / f"{case.name}.log", self.timeout, case.throttle)  # fmt: skip
        self.diagnose(case, out)
        out.sick_acc = final_eval(sick)
        healthy_run, healthy_acc = self.healthy(case.preset, self.seed, case.ranks)
        out.healthy_acc = healthy_acc
        out.step_s = [step_seconds(healthy_run), step_seconds(sick)]
        if case.sick_when == "speed":  # a slow run is sick however well it learns
            healthy_s, sick_s = out.step_s
            if healthy_s and sick_s:
                out.manifest = sick_s * HEAL_SHARE > healthy_s
        elif healthy_acc is not None:
            out.manifest = out.sick_acc is None or out.sick_acc < HEAL_SHARE * healthy_acc
        if heal and case.heal and out.manifest is not False:
            cured = self.root / "cured" / case.name
            shutil.rmtree(cured, ignore_errors=True)
            cured.parent.mkdir(parents=True, exist_ok=True)
            cmd = [str(BIN / "hrm-doctor"), "run", "--apply", "--",
                   *train_cmd(case.args, cured, data, self.seed, ranks=case.ranks)]  # fmt: skip
            code, seconds = run_cmd(cmd, cured.parent / f"{case.name}.log", 3 * self.timeout)
            out.cured_acc = final_eval(cured)
            critical = [f["id"] for f in live_findings(cured) if f["severity"] == "critical"]
            from hrm_doctor.rundir import read_lineage

            restarts = [e for e in read_lineage(cured) if e.get("event") == "restart"]
            from hrm_doctor.rundir import read_patches

            applied = [r for r in read_patches(cured) if r.get("state") == "applied"]
            steps_run = _steps_run(cured)
            out.cure = {
                "exit_code": code,
                "seconds": round(seconds, 1),
                "steps_run": steps_run,
                "restarts": len(restarts),
                "patches_applied": [" ".join(r.get("overrides") or []) for r in applied],
                "critical_left": critical,
            }
            ok = healthy_acc is not None and out.cured_acc is not None
            out.healed = bool(ok and not critical and out.cured_acc >= HEAL_SHARE * healthy_acc)
        out.seconds = round(time.perf_counter() - t0, 1)
        return out

    def at_the_door(self, case: Case) -> dict:
        """Run a broken input; the trainer must refuse it at once with one line and exit 2."""
        run = self.root / "door" / case.name
        shutil.rmtree(run, ignore_errors=True)
        run.parent.mkdir(parents=True, exist_ok=True)
        log = run.parent / f"{case.name}.log"
        code, seconds = run_cmd(train_cmd(case.args, run, self.data_for(case), self.seed), log, 300)
        lines = [x for x in log.read_text().splitlines() if x.strip()]
        return {"case": case.name, "exit_code": code, "seconds": round(seconds, 1),
                "message": lines[-1] if lines else "", "refused": code == 2}  # fmt: skip

    def healthy_check(self, presets: list[tuple[str, int]], seeds: list[int]) -> list[dict]:
        rows = []
        for preset, ranks in presets:
            for seed in seeds:
                run, acc = self.healthy(preset, seed, ranks)
                report = explain(run)
                loud = [f"{f['id']} ({f['severity']})" for f in report["findings"]
                        if f["severity"] in ("warning", "critical")]  # fmt: skip
                infos = [f["id"] for f in report["findings"] if f["severity"] == "info"]
                rows.append({"preset": preset, "ranks": ranks, "seed": seed,
                             "final_eval_accuracy": acc, "warnings_or_worse": loud,
                             "infos": infos})  # fmt: skip
        return rows


def _steps_run(run_dir: Path) -> int:
    """Every step the trainer ran across restarts (the sessions' lengths)."""
    from hrm_doctor import RunReader

    return sum(max(0, (e["last_step"] or 0) - (e["branch_step"] or e["first_step"] or 1) + 1)
               for e in RunReader(run_dir).lineage if e["rank"] == 0 and e["last_step"])  # fmt: skip


# ---- the report ----------------------------------------------------------------------------------


def tally(outcomes: list[Outcome]) -> tuple[int, int, int, int]:
    """(caught, sick cases, healed, sick cases healed or not): a knob that did not make the run
    sick is not counted."""
    sick = [o for o in outcomes if o.manifest is not False]
    healed = [o for o in sick if o.healed is not None]
    return sum(o.caught for o in sick), len(sick), sum(o.healed for o in healed), len(healed)


def write_markdown(
    path: Path, outcomes: list[Outcome], healthy: list[dict], door: list[dict], meta: dict
) -> None:
    caught, n_sick, healed, n_heal = tally(outcomes)
    lines = [
        "# The casebook",
        "",
        "Real `hrm-train` runs made sick the way HRM users report it, each diagnosed by",
        "`hrm-doctor explain` and healed under `hrm-doctor run --apply`. Written by",
        f"`python bench/casebook.py` ({meta['when']}, {meta['machine']}; {meta['minutes']:.0f} min).",
        "A case is caught when the doctor's findings from the run's own telemetry (not a config",
        "check) include the expected category at warning or worse; healed when the supervised run",
        f"ends with no live critical finding and at least {HEAL_SHARE:.0%} of a healthy run's final",
        "eval token accuracy on the same seed and budget. A case is sick when its unsupervised run",
        f"ends below {HEAL_SHARE:.0%} of the healthy run's accuracy (or with no finite one; a slow",
        f"rank: when its steps take {1 / HEAL_SHARE:.2f}x the healthy run's or longer): knobs",
        "that did not make the CPU-scale run sick are shown (sick: no) and not counted. No case",
        "runs on ARC here: its 30x30 grids take a tiny model hours on 2 CPU cores; `--scale gpu`",
        "runs the same knobs on the paper presets (task=sudoku_extreme_1k, maze_30x30_hard_1k).",
        "",
        f"**Recall: {caught}/{n_sick}** sick cases with the right category. "
        f"**Heal rate: {healed}/{n_heal}**.",
        "",
        "| case | preset | knob | expected | first finding (made at step) | sick | healed | eval acc (healthy / sick / cured) | cure |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        f = o.found
        first = (
            f"`{f['id']}` {f['severity']} ({f['made_at']})"
            if f
            else "**missed**: " + ", ".join(o.first_findings or ["nothing"])
        )
        acc = " / ".join(
            "-" if a is None else f"{a:.3f}" for a in (o.healthy_acc, o.sick_acc, o.cured_acc)
        )
        cure = ""
        if o.cure:
            c = o.cure
            cure = f"{c['restarts']} restart(s), {len(c['patches_applied'])} hot patch(es), {c['steps_run']} steps, {c['seconds']:.0f} s"
        heal = {None: "n/a", True: "yes", False: "**no**"}[o.healed]
        sick = {None: "?", True: "yes", False: "**no**"}[o.manifest]
        pic = (
            f" [picture]({Path(o.picture).relative_to('docs') if o.picture and o.picture.startswith('docs/') else o.picture})"
            if o.picture
            else ""
        )
        case = next((c for c in CASES if c.name == o.case), None)
        knob = knob_label(case) if case else o.knob
        preset = o.preset + (f" ({case.ranks} ranks)" if case and case.ranks > 1 else "")
        if case and case.sick_when == "speed" and len(o.step_s) == 2 and all(o.step_s):
            acc += f"; s/step {o.step_s[0]:.3f} / {o.step_s[1]:.3f}"
        lines.append(
            f"| {o.case}{pic} | {preset} | `{knob}` | {', '.join(o.expect)} | {first} | {sick} | {heal} | {acc} | {cure} |"
        )
    lines += [
        "",
        "## Healthy runs",
        "",
        "| preset | seed | final eval acc | warnings or worse | infos |",
        "|---|---|---|---|---|",
    ]
    for h in healthy:
        acc = "-" if h["final_eval_accuracy"] is None else f"{h['final_eval_accuracy']:.3f}"
        lines.append(
            f"| {h['preset']}{f' ({r} ranks)' if (r := h.get('ranks', 1)) > 1 else ''} | {h['seed']} | {acc} | {', '.join(h['warnings_or_worse']) or 'none'} | {', '.join(h['infos']) or 'none'} |"
        )
    if door:
        lines += ["", "## Refused before the first step", "",
                  "Broken inputs the trainer turns away at once (one line, exit 2), so no run "
                  "is wasted on them:", "",
                  "| case | exit | what the user reads |", "|---|---|---|"]  # fmt: skip
        for d in door:
            lines.append(f"| {d['case']} | {d['exit_code']} | `{d['message']}` |")
    lines += ["", "## The cases", ""]
    for c in (*CASES, *DOOR):
        label = knob_label(c)
        what = f"`{' '.join([c.preset, *c.knob])}`"
        what += "" if label == " ".join(c.knob) else f"; {label}"
        lines.append(f"- **{c.name}** ({what}): {c.story}")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", help="case names (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--healthy-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--root", type=Path, default=REPO / "runs" / "casebook")
    ap.add_argument("--md", type=Path, default=REPO / "docs" / "casebook.md")
    ap.add_argument("--img", type=Path, default=REPO / "docs" / "img" / "casebook")
    ap.add_argument("--json", type=Path, help="results as JSON (default: ROOT/casebook.json)")
    ap.add_argument("--no-heal", action="store_true", help="diagnosis only (no supervised runs)")
    ap.add_argument("--no-healthy", action="store_true", help="skip the healthy-run check")
    ap.add_argument("--scale", choices=("cpu", "gpu"), default="cpu",
                    help="gpu: the paper-like presets (task=...) instead of the CPU ones")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per training run")
    ap.add_argument("--combine", type=Path, nargs="+", metavar="JSON",
                    help="merge the results of casebook shards run in parallel (each with its "
                         "own --cases and --json) into --json and --md; runs nothing")  # fmt: skip
    ap.add_argument("--rediagnose", type=Path, metavar="JSON",
                    help="diagnose again the sick runs kept under --root for the cases of JSON "
                         "(after a change of the rules), keeping their runs and cures")  # fmt: skip
    args = ap.parse_args()
    if args.combine:
        return combine(args.combine, args.json or args.root / "casebook.json", args.md)
    if args.rediagnose:
        return rediagnose(args.rediagnose, Casebook(args.root, args.img, args.seed, args.timeout))
    cases = [c for c in CASES if not args.cases or c.name in args.cases]
    if args.scale == "gpu":
        cases = [_at_gpu_scale(c) for c in cases]
    book = Casebook(args.root, args.img, args.seed, args.timeout)
    args.root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    outcomes = []
    for case in cases:
        o = book.run_case(case, heal=not args.no_heal)
        outcomes.append(o)
        f = o.found
        print(f"{case.name:<22} {'caught' if o.caught else 'MISSED':<7} "
              f"{(f['id'] + ' ' + f['severity'] + ' made at ' + str(f['made_at'])) if f else ', '.join(o.first_findings)}"
              f" | sick={o.manifest} healed={o.healed} acc healthy/sick/cured={o.healthy_acc}/{o.sick_acc}/{o.cured_acc} "
              f"{o.cure} ({o.seconds:.0f} s)", flush=True)  # fmt: skip
    door = [book.at_the_door(c) for c in DOOR if not args.cases or c.name in args.cases]
    for d in door:
        print(
            f"{d['case']:<22} {'refused' if d['refused'] else 'NOT REFUSED'} "
            f"(exit {d['exit_code']}, {d['seconds']} s): {d['message']}",
            flush=True,
        )
    healthy = []
    if not args.no_healthy:
        presets = sorted({(c.preset, c.ranks) for c in cases})
        healthy = book.healthy_check(presets, args.healthy_seeds)
        for h in healthy:
            print(f"healthy {h['preset']} ({h['ranks']} rank(s)) seed {h['seed']}: eval acc {h['final_eval_accuracy']}, "
                  f"warnings or worse: {h['warnings_or_worse'] or 'none'}", flush=True)  # fmt: skip
    minutes = (time.perf_counter() - t0) / 60
    meta = {
        "when": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPUs",
        "minutes": minutes,
    }
    json_path = args.json or args.root / "casebook.json"
    earlier = json.loads(json_path.read_text()) if json_path.exists() else {}
    outcomes, healthy, door = merge_earlier(earlier, outcomes, healthy, door)
    save(json_path, args.md, outcomes, healthy, door, meta)
    return 0


def save(json_path: Path, md: Path | None, outcomes: list[Outcome], healthy: list[dict],
         door: list[dict], meta: dict) -> None:  # fmt: skip
    result = {"meta": meta, "cases": [asdict(o) for o in outcomes], "healthy": healthy,
              "door": door}  # fmt: skip
    json_path.write_text(json.dumps(result, indent=1))
    if md:
        write_markdown(md, outcomes, healthy, door, meta)
    caught, n_sick, healed, n_heal = tally(outcomes)
    print(f"recall {caught}/{n_sick}; heal rate {healed}/{n_heal}; "
          f"healthy runs with a warning or worse: {sum(bool(h['warnings_or_worse']) for h in healthy)}/{len(healthy)}; "
          f"{meta['minutes']:.1f} min")  # fmt: skip


def rediagnose(path: Path, book: Casebook) -> int:
    """The cases of a casebook JSON diagnosed again from their kept sick runs (the cure columns
    stay those of the run that made them)."""
    result = json.loads(path.read_text())
    by_name = {c.name: c for c in CASES}
    for d in result["cases"]:
        out = Outcome(**d)
        book.diagnose(by_name[out.case], out)
        d.update(asdict(out))
        print(f"{out.case:<22} {'caught' if out.caught else 'MISSED':<7} "
              f"{out.found['id'] + ' made at ' + str(out.found['made_at']) if out.found else out.first_findings}")  # fmt: skip
    path.write_text(json.dumps(result, indent=1))
    return 0


def combine(shards: list[Path], json_path: Path, md: Path | None) -> int:
    """The shards' results as one casebook (a later shard wins a case both ran); the minutes
    are the shards' sum (machine time, not wall time when they ran side by side)."""
    outcomes: list[Outcome] = []
    healthy: list[dict] = []
    door: list[dict] = []
    meta = {"when": "", "machine": "", "minutes": 0.0}
    for path in shards:
        shard = json.loads(path.read_text())
        outcomes, healthy, door = merge_earlier(
            {"cases": [asdict(o) for o in outcomes], "healthy": healthy, "door": door},
            [Outcome(**d) for d in shard.get("cases", [])], shard.get("healthy", []),
            shard.get("door", []),
        )  # fmt: skip
        m = shard.get("meta", {})
        meta = {"when": max(meta["when"], m.get("when", "")),
                "machine": m.get("machine", meta["machine"]),
                "minutes": meta["minutes"] + m.get("minutes", 0.0)}  # fmt: skip
    save(json_path, md, outcomes, healthy, door, meta)
    return 0


def merge_earlier(
    earlier: dict, outcomes: list[Outcome], healthy: list[dict], door: list[dict]
) -> tuple[list[Outcome], list[dict], list[dict]]:
    """This run's outcomes over an earlier run's (its JSON), in the order of CASES: re-running
    a few cases keeps the others' results in the report."""
    by_name = {d["case"]: Outcome(**d) for d in earlier.get("cases", [])}
    by_name.update({o.case: o for o in outcomes})
    order = [c.name for c in CASES]
    merged = [by_name[n] for n in order if n in by_name]
    runs = {_healthy_key(h): h for h in earlier.get("healthy", [])}
    runs.update({_healthy_key(h): h for h in healthy})
    doors = {d["case"]: d for d in earlier.get("door", [])}
    doors.update({d["case"]: d for d in door})
    return (merged, sorted(runs.values(), key=_healthy_key),
            [doors[c.name] for c in DOOR if c.name in doors])  # fmt: skip


def _healthy_key(h: dict) -> tuple[str, int, int]:
    return h["preset"], h.get("ranks", 1), h["seed"]


def _at_gpu_scale(case: Case) -> Case:
    """The same knob on a paper-like preset (a GPU, minutes to hours)."""
    first, *arch = case.preset.split()
    first = {"experiment=smoke": "task=sudoku_extreme_1k",
             "experiment=smoke_maze": "task=maze_30x30_hard_1k"}.get(first, first)  # fmt: skip
    preset = " ".join([first, *arch])
    return Case(case.name, preset, (*case.knob, "max_steps=3000"), case.expect, case.story,
                case.data, case.heal, case.ci)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
