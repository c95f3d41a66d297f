"""The probe as a whole: the catalogue contract, schedules, no host sync in the hooks, the one
sync of `metrics_to_host`, the puzzle-embedding statistics, and attach/step into a run."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hrm_core.probe import QUANTITIES, NonfiniteCount, Probe, Ragged, metrics_to_host
from hrm_doctor import RunReader

# The DESIGN.md metric catalogue, as far as a probe computes it (the trainer logs train/*,
# sys/step_time_s, sys/samples_per_s, sys/data_wait_s, sys/comm_s and eval/*).
CATALOGUE = {
    "grad/norm",
    "act/q_halt",
    "act/q_continue",
    "act/q_halt/mean",
    "act/q_halt/absmax",
    "act/q_continue/mean",
    "act/q_continue/absmax",
    "act/target_q_continue/mean",
    "act/halt_steps",
    "act/halt_at_max_frac",
    "act/premature_halt_frac",
    "act/halt_delay_mean",
    "act/lm_loss_by_step",
    "state/z_H/rms",
    "state/z_L/rms",
    "state/z_H/delta_rms",
    "state/z_L/delta_rms",
    "emb/puzzle/sign_flip_frac",
    "emb/puzzle/rows_touched",
    "emb/puzzle/norm/mean",
    "nonfinite/count",
    "sys/mem_peak_bytes",
}
GROUP_FAMILIES = ("grad/norm/", "param/norm/", "update/ratio/")
GROUPS = {"embed", "puzzle_emb", "H", "L", "q_head", "lm_head", "H.0", "H.1", "L.0"}


def hooked_step(run, probe, step):
    loss, outputs = run.forward_backward()
    probe.before_step(step, loss=loss)
    run.optimizer_step()
    probe.after_step(step)
    metrics = probe.collect(step, outputs=outputs, carry=run.carry)
    run.zero_grad()
    return metrics


def test_full_tier_emits_exactly_the_catalogue_every_step(make_run) -> None:
    run = make_run()
    probe = Probe(run.head, run.optimizers, tier="full", every=1, tensor_every=1)
    assert set(probe.skipped) == {"EMADistance"}  # no ema=true here (tests/probe/test_trm.py)
    family = {n for n in probe.names() if n.startswith(GROUP_FAMILIES)}
    assert set(probe.names()) - family == CATALOGUE
    assert {n.split("/", 2)[2] for n in family} == GROUPS
    assert "param/norm/puzzle_emb" not in family and "update/ratio/puzzle_emb" not in family
    for step in (1, 2):
        host = metrics_to_host(hooked_step(run, probe, step))
        assert set(host) == set(probe.names())
    assert host["sys/mem_peak_bytes"] > 10_000_000 and isinstance(host["sys/mem_peak_bytes"], int)


def test_schedules_every_and_tensor_every(make_run) -> None:
    run = make_run()
    probe = Probe(run.head, run.optimizers, tier="full", every=2, tensor_every=3)
    logged = {step: set(hooked_step(run, probe, step)) for step in range(1, 7)}
    assert logged[1] == logged[5] == set()
    assert "grad/norm" in logged[2] and "act/halt_steps" not in logged[2]
    assert logged[3] == {"act/q_halt", "act/q_continue", "act/halt_steps", "act/lm_loss_by_step"}
    assert "update/ratio/H" in logged[4] and "act/halt_steps" in logged[6]


FORBIDDEN = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


def test_the_hooks_never_sync_with_the_device(make_run, monkeypatch) -> None:
    """Every way a tensor's value reaches Python raises while the hooks run."""
    run = make_run()
    # On the CPU, NonfiniteCount reads the gradient norms to skip its count on healthy steps
    # (a memory read there); this is the path every accelerator takes.
    quantities = [
        NonfiniteCount(count_on_healthy_cpu_steps=True) if q is NonfiniteCount else q(1)
        for q in QUANTITIES
    ]
    probe = Probe(run.head, run.optimizers, quantities=quantities)
    hooked_step(run, probe, 1)  # first-use allocations may build index tensors from lists
    loss, outputs = run.forward_backward()

    def forbidden(name):
        def raiser(*args, **kwargs):
            raise AssertionError(f"host sync in a probe hook: Tensor.{name}")

        return raiser

    original_getitem = torch.Tensor.__getitem__

    def getitem(self, index):
        if isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            raise AssertionError("host sync in a probe hook: boolean-mask indexing")
        return original_getitem(self, index)

    with monkeypatch.context() as patch:
        for name in FORBIDDEN:
            patch.setattr(torch.Tensor, name, forbidden(name))
        patch.setattr(torch.Tensor, "__getitem__", getitem)
        for fn in ("nonzero", "unique", "masked_select"):
            patch.setattr(torch, fn, forbidden(fn))
        probe.before_step(2, loss=loss)
        run.optimizer_step()
        probe.after_step(2)
        metrics = probe.collect(2, outputs=outputs, carry=run.carry)
    assert len(metrics) == len(probe.names())
    assert all(
        isinstance(v, torch.Tensor | Ragged) for k, v in metrics.items() if k.split("/")[0] != "sys"
    )


def test_metrics_to_host_brings_every_kind_over() -> None:
    metrics = {
        "a": torch.tensor(1.5),
        "b": torch.tensor(3, dtype=torch.int64),
        "c": torch.tensor(True),
        "d": torch.tensor(2.0, dtype=torch.float64),
        "e": torch.tensor([1.0, 2.0, 3.0]),
        "f": torch.tensor([4, 5], dtype=torch.int32),
        "g": Ragged(torch.tensor([1, 2, 3, 4]), torch.tensor([True, False, False, True])),
        "h": 7,
        "i": 0.25,
        "j": np.arange(3, dtype=np.float32),
        "k": torch.tensor(float("nan")),
    }
    host = metrics_to_host(metrics)
    assert host["a"] == 1.5 and host["b"] == 3.0 and host["c"] == 1.0 and host["d"] == 2.0
    assert all(isinstance(host[k], float) for k in "abcdk") and math.isnan(host["k"])
    assert host["e"].tolist() == [1.0, 2.0, 3.0] and host["e"].dtype == np.float32
    assert host["f"].tolist() == [4.0, 5.0] and host["g"].tolist() == [1.0, 4.0]
    assert host["h"] == 7 and host["i"] == 0.25 and host["j"] is metrics["j"]
    assert metrics_to_host({}) == {} and metrics_to_host({"e": metrics["e"]})["e"].shape == (3,)
    with pytest.raises(ValueError, match="'img'.*shape"):
        metrics_to_host({"img": torch.zeros(2, 2)})


def test_puzzle_embedding_statistics_match_numpy(make_run) -> None:
    run = make_run(seed=4)
    probe = Probe(run.head, run.optimizers, tier="standard")
    table = run.model.puzzle_emb.weights
    flips_seen = 0
    for step in range(1, 6):
        loss, outputs = run.forward_backward()
        before = table.detach().numpy().copy()
        ids = run.model.puzzle_emb.local_ids.numpy().copy()
        probe.before_step(step, loss=loss)
        run.optimizer_step()
        probe.after_step(step)
        host = metrics_to_host(probe.collect(step, outputs=outputs, carry=run.carry))
        run.zero_grad()
        after = table.detach().numpy()
        rows = np.unique(ids)
        flips = sum(int((before[r] * after[r] < 0).sum()) for r in rows)
        assert host["emb/puzzle/rows_touched"] == len(rows)
        assert host["emb/puzzle/sign_flip_frac"] == pytest.approx(
            flips / (len(rows) * table.shape[1])
        )
        norms = [np.linalg.norm(after[i].astype(np.float64)) for i in ids]
        assert host["emb/puzzle/norm/mean"] == pytest.approx(np.mean(norms), rel=1e-5)
        flips_seen += flips
    assert flips_seen > 0


class Bare(nn.Module):
    """A model with parameters and nothing HRM-like: most quantities are skipped, quietly."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def test_a_model_without_act_or_puzzle_embedding_skips_what_it_lacks() -> None:
    model = Bare()
    probe = Probe(model, tier="full")
    assert {"HaltAtMaxFrac", "PrematureHaltFrac", "PuzzleEmbSignFlip"} <= set(probe.skipped)
    assert "halt_max_steps" in probe.skipped["HaltAtMaxFrac"]
    model(torch.ones(4, 3)).sum().backward()
    host = probe.step(1, outputs={}, loss=torch.tensor(1.0))
    assert host["grad/norm/lin"] == pytest.approx(
        float(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm())
    )
    assert host["nonfinite/count"] == 0 and "act/q_halt/mean" not in host
    grouped = Probe(model, tier="standard", groups={"all": list(model.parameters())})
    assert grouped.step(2)["grad/norm/all"] == pytest.approx(host["grad/norm/lin"])


def test_attach_and_step_write_a_run_the_reader_reads(make_run, tmp_path) -> None:
    run = make_run()
    probe = Probe.attach(tmp_path / "run", run.head, run.optimizers, tensor_every=2)
    with probe:
        for step in range(1, 5):
            loss, outputs = run.forward_backward()
            run.optimizer_step()
            train = {f"train/{k}": v for k, v in run.last["metrics"].items()}
            probe.step(step, outputs, run.carry, loss=loss, extra=train)  # before zero_grad
            run.zero_grad()
    reader = RunReader(tmp_path / "run")
    df = reader.scalars()
    assert df["step"].tolist() == [1, 2, 3, 4]
    for name in ("grad/norm", "grad/norm/L.0", "train/lm_loss", "act/q_halt/mean", "state/z_H/rms"):
        assert df[name].notna().all(), name
    assert df["update/ratio/H"].isna().tolist() == [True, False, False, False]
    assert reader.tensors("act/halt_steps")["step"].tolist() == [2, 4]
    assert reader.meta["num_params"] == sum(p.numel() for p in run.model.parameters())


def test_importable_without_the_rest_of_hrm_core() -> None:
    code = (
        "import sys, hrm_core.probe\n"
        "bad = [m for m in sys.modules if m.startswith('hrm_core.') "
        "and not m.startswith('hrm_core.probe')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("quantity", QUANTITIES, ids=lambda q: q.__name__)
def test_every_quantity_says_what_it_reveals_why_and_the_remedy(quantity) -> None:
    doc = quantity.__doc__ or ""
    for section in ("What it reveals", "Why it matters", "Remedy", "Cost"):
        assert section in doc, f"{quantity.__name__}: no {section!r} in its docstring"
