"""ACT semantics: halting in training and evaluation, exploration, resets, the Q-continue target."""

from __future__ import annotations

import torch
from torch import nn

from hrm_core.model import HRMACT, ACTCarry, ACTLossHead, InnerCarry


class ScriptedCore(nn.Module):
    """Stand-in for the inner model whose q logits come from a script, one pair per call."""

    def __init__(self, config, script: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__()
        self.config = config
        self.script = list(script)
        self.calls: list[dict[str, torch.Tensor]] = []

    def empty_carry(self, batch_size: int, device: torch.device) -> InnerCarry:
        return InnerCarry(torch.zeros(batch_size, 2, 3), torch.zeros(batch_size, 2, 3))

    def reset_carry(self, reset: torch.Tensor, carry: InnerCarry) -> InnerCarry:
        mask = reset.view(-1, 1, 1)
        return InnerCarry(torch.where(mask, -1.0, carry.z_H), torch.where(mask, -1.0, carry.z_L))

    def forward(self, carry: InnerCarry, batch: dict[str, torch.Tensor]):
        self.calls.append(batch)
        q_halt, q_continue = self.script.pop(0)
        logits = torch.zeros(*batch["inputs"].shape, self.config.vocab_size)
        return InnerCarry(carry.z_H + 1, carry.z_L + 2), logits, (q_halt, q_continue)


def _set_q_bias(model: HRMACT, q_halt: float, q_continue: float) -> None:
    with torch.no_grad():
        model.inner.q_head.bias.copy_(torch.tensor([q_halt, q_continue]))


def _halt_steps(model: HRMACT, batch: dict[str, torch.Tensor], segments: int) -> torch.Tensor:
    """Run `segments` ACT calls on one batch; return (segments, B) steps where halted, else 0."""
    carry = model.initial_carry(batch)
    rows = []
    for _ in range(segments):
        carry, out = model(carry, batch)
        rows.append(torch.where(out["halted"], out["steps"], 0))
    return torch.stack(rows)


def test_target_q_continue_formula_on_crafted_logits(make_config, make_batch) -> None:
    config = make_config(halt_max_steps=3)
    model = HRMACT(config).train()
    q_halt = torch.tensor([0.5, -1.0, 2.0, -3.0])
    q_continue = torch.tensor([0.0, 1.0, 3.0, -2.0])
    next_q_halt = torch.tensor([1.5, -0.5, 0.7, -4.0])
    next_q_continue = torch.tensor([-2.0, 2.5, 9.0, -1.0])
    model.inner = ScriptedCore(config, [(q_halt, q_continue), (next_q_halt, next_q_continue)])
    batch = make_batch(config, 4)
    carry = model.initial_carry(batch)
    # Slots 0..3 continue from steps 0, 1, 2, 0: slot 2 reaches halt_max_steps (3) now.
    carry = ACTCarry(
        carry.inner_carry,
        torch.tensor([0, 1, 2, 0], dtype=torch.int32),
        torch.zeros(4, dtype=torch.bool),
        dict(batch),
    )

    new_carry, out = model(carry, batch)

    expected = torch.sigmoid(torch.tensor([1.5, 2.5, 0.7, -1.0]))  # slot 2: next q_halt only
    assert torch.allclose(out["target_q_continue"], expected)
    assert len(model.inner.calls) == 2  # one segment + one target pass, nothing more
    # The target pass sees the new carry (+1/+2 from the scripted update) and the same data.
    assert out["steps"].tolist() == [1, 2, 3, 1]
    # Halt: last step (slot 2) or q_halt > q_continue (slot 0).
    assert out["halted"].tolist() == [True, False, True, False]
    assert torch.equal(new_carry.halted, out["halted"])


def test_evaluation_always_runs_halt_max_steps(make_config, make_batch) -> None:
    config = make_config(halt_max_steps=3, halt_exploration_prob=1.0)
    model = HRMACT(config).eval()
    _set_q_bias(model, 5.0, -5.0)  # the Q head wants to halt at once: ignored in evaluation
    head = ACTLossHead(model)
    batch = make_batch(config, 4)
    carry = head.initial_carry(batch)
    finished = []
    with torch.no_grad():
        for _ in range(3):
            carry, _, metrics, out, all_halted = head(carry, batch)
            finished.append(bool(all_halted))
            assert "target_q_continue" not in out and "q_continue_loss" not in metrics
    assert finished == [False, False, True]
    assert carry.steps.tolist() == [3, 3, 3, 3]


def test_training_halts_when_q_halt_exceeds_q_continue(make_config, make_batch) -> None:
    config = make_config(halt_max_steps=4)
    model = HRMACT(config).train()
    batch = make_batch(config, 3)
    _set_q_bias(model, 1.0, -1.0)
    assert _halt_steps(model, batch, 2).tolist() == [[1, 1, 1], [1, 1, 1]]
    _set_q_bias(model, -1.0, 1.0)  # never wants to halt: stops at halt_max_steps
    assert _halt_steps(model, batch, 5)[:, 0].tolist() == [0, 0, 0, 4, 0]


def test_halted_slots_reset_and_take_the_next_example(make_config, make_batch) -> None:
    config = make_config(halt_max_steps=2)
    model = HRMACT(config).train()
    _set_q_bias(model, -1.0, 1.0)
    first, second = make_batch(config, 2, seed=1), make_batch(config, 2, seed=2)
    carry = model.initial_carry(first)
    carry, out = model(carry, first)
    assert out["reset"].tolist() == [True, True]
    carry, out = model(carry, second)  # step 2 = halt_max_steps: halts, but keeps `first`
    assert out["halted"].all() and not out["reset"].any()
    assert torch.equal(carry.current_data["inputs"], first["inputs"])
    carry, out = model(carry, second)  # halted slots load `second` and restart from init
    assert out["reset"].all() and out["steps"].tolist() == [1, 1]
    assert torch.equal(carry.current_data["inputs"], second["inputs"])
    before = model.inner.reset_carry(torch.ones(2, dtype=torch.bool), carry.inner_carry)
    assert torch.equal(before.z_H[0, 0], model.inner.H_init)
    assert torch.equal(before.z_L[1, 3], model.inner.L_init)


def test_exploration_suppresses_early_halts_seeded_and_patchable(make_config, make_batch) -> None:
    config = make_config(halt_max_steps=5, H_cycles=1, L_cycles=1, halt_exploration_prob=1.0)
    torch.manual_seed(0)
    model = HRMACT(config).train()
    _set_q_bias(model, 3.0, -3.0)  # greedy policy: halt at step 1
    batch = make_batch(config, 512)

    torch.manual_seed(7)
    halts = _halt_steps(model, batch, 5)
    torch.manual_seed(7)
    assert torch.equal(halts, _halt_steps(model, batch, 5))  # reproducible under a seed
    first_segment = (halts > 0).int().argmax(dim=0)  # every slot halts within 5 segments
    first_halt = halts.gather(0, first_segment.unsqueeze(0)).squeeze(0)
    assert first_halt.min() == 2 and first_halt.max() <= 5  # never before step 2
    # A fresh minimum in [2, 5] is drawn each segment: P(halt at step 2) = 1/4.
    assert 0.18 < (first_halt == 2).float().mean().item() < 0.32

    model.halt_exploration_prob = 0.0  # a live patch: read at the next call
    assert _halt_steps(model, batch, 1).tolist() == [[1] * 512]
    model.halt_exploration_prob = 0.5
    torch.manual_seed(3)
    share_at_1 = (_halt_steps(model, batch, 1) == 1).float().mean().item()
    assert 0.4 < share_at_1 < 0.6


def test_state_statistics_measure_the_segment_change(make_config, make_batch) -> None:
    config = make_config()
    model = HRMACT(config).train()
    model.inner = ScriptedCore(config, [(torch.zeros(2), torch.ones(2))] * 2)
    batch = make_batch(config, 2)
    _, out = model(model.initial_carry(batch), batch)
    # Scripted update: reset to -1, then +1 (z_H) and +2 (z_L).
    assert torch.allclose(out["z_H_rms"], torch.zeros(2))
    assert torch.allclose(out["z_L_rms"], torch.ones(2))
    assert torch.allclose(out["z_H_delta_rms"], torch.ones(2))
    assert torch.allclose(out["z_L_delta_rms"], torch.full((2,), 2.0))
