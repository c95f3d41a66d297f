"""The ACT loss head: stablemax against its definition, loss terms and metrics on crafted outputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrm_core.model import HRMACT, ACTCarry, ACTLossHead, InnerCarry
from hrm_core.model.losses import (
    IGNORE_LABEL_ID,
    log_stablemax,
    softmax_cross_entropy,
    stablemax_cross_entropy,
)


def _stablemax_by_definition(row: list[float]) -> list[float]:
    s = [x + 1 if x >= 0 else 1 / (1 - x) for x in row]
    total = sum(s)
    return [v / total for v in s]


def test_log_stablemax_matches_its_definition() -> None:
    torch.manual_seed(0)
    x = torch.randn(6, 9, dtype=torch.float64) * 4
    x[0, :3] = torch.tensor([0.0, -0.0, 1.0])
    got = log_stablemax(x).exp()
    for i in range(x.shape[0]):
        expected = _stablemax_by_definition(x[i].tolist())
        assert torch.allclose(got[i], torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(got.sum(-1), torch.ones(6, dtype=torch.float64))


def test_stablemax_gradient_is_finite_everywhere() -> None:
    x = torch.tensor([[1.0, 0.0, -1.0, 3.0, 1e6, -1e6]], requires_grad=True)
    stablemax_cross_entropy(x.unsqueeze(0), torch.tensor([[1]])).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_cross_entropies_ignore_label_and_use_the_right_precision() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5).bfloat16()
    labels = torch.tensor([[1, IGNORE_LABEL_ID, 4], [0, 2, IGNORE_LABEL_ID]])
    stable = stablemax_cross_entropy(logits, labels)
    assert stable.dtype == torch.float64
    assert stable[0, 1] == 0 and stable[1, 2] == 0
    expected = -math.log(_stablemax_by_definition(logits[0, 2].double().tolist())[4])
    assert math.isclose(stable[0, 2].item(), expected, rel_tol=1e-9)
    soft = softmax_cross_entropy(logits, labels)
    assert soft.dtype == torch.float32
    reference = F.cross_entropy(logits.float().view(-1, 5), labels.view(-1), reduction="none")
    assert torch.allclose(soft.view(-1), reference)
    assert soft[0, 1] == 0


class FixedOutputModel(nn.Module):
    """An ACT model that returns prescribed logits, Q values, halted flags and steps."""

    def __init__(self, logits, q_halt, q_continue, halted, steps, target=None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.fixed = (logits, q_halt, q_continue, halted, steps, target)

    def initial_carry(self, batch):
        raise NotImplementedError

    def forward(self, carry, batch):
        logits, q_halt, q_continue, halted, steps, target = self.fixed
        outputs = {
            "logits": logits * self.weight,
            "q_halt_logits": q_halt * self.weight,
            "q_continue_logits": q_continue * self.weight,
        }
        if target is not None:
            outputs["target_q_continue"] = target
        inner = InnerCarry(torch.zeros(1), torch.zeros(1))
        return ACTCarry(inner, steps, halted, dict(batch)), outputs


def _one_hot_logits(predictions: torch.Tensor, vocab: int) -> torch.Tensor:
    return F.one_hot(predictions, vocab).float() * 4.0 - 2.0


@pytest.mark.parametrize("loss_type", ["stablemax", "softmax"])
def test_loss_terms_and_metrics_on_crafted_outputs(loss_type) -> None:
    vocab = 4
    labels = torch.tensor(
        [
            [1, 2, 3, IGNORE_LABEL_ID],  # exactly right, halted
            [1, 2, 3, 0],  # one token wrong of 4, halted
            [IGNORE_LABEL_ID] * 4,  # no valid token: never counted
            [0, 0, IGNORE_LABEL_ID, 1],  # right but still running: not in the metrics
        ]
    )
    predictions = torch.tensor([[1, 2, 3, 0], [1, 2, 3, 1], [0, 0, 0, 0], [0, 0, 2, 1]])
    logits = _one_hot_logits(predictions, vocab)
    q_halt = torch.tensor([2.0, 0.5, -1.0, -3.0])
    q_continue = torch.tensor([0.1, -0.2, 0.3, 0.4])
    target = torch.tensor([0.9, 0.2, 0.5, 0.7])
    halted = torch.tensor([True, True, True, False])
    steps = torch.tensor([3, 16, 2, 5], dtype=torch.int32)
    model = FixedOutputModel(logits, q_halt, q_continue, halted, steps, target)
    head = ACTLossHead(model, loss_type)
    batch = {"inputs": torch.zeros(4, 4, dtype=torch.long), "labels": labels}

    _, loss, metrics, outputs, all_halted = head(None, batch)

    assert all(v.ndim == 0 for v in metrics.values())  # device tensors, no host sync
    assert metrics["count"].item() == 2
    assert math.isclose(metrics["accuracy"].item(), 1.0 + 3 / 4, rel_tol=1e-6)
    assert metrics["exact_accuracy"].item() == 1
    # q_halt >= 0 predicts "correct": slot 0 right (2.0, correct), slot 1 wrong (0.5, wrong).
    assert metrics["q_halt_accuracy"].item() == 1
    assert metrics["steps"].item() == 3 + 16
    assert not all_halted.item()
    assert outputs["seq_is_correct"].tolist() == [True, False, True, True]

    ce = stablemax_cross_entropy if loss_type == "stablemax" else softmax_cross_entropy
    per_token = ce(logits, labels)
    counts = (labels != IGNORE_LABEL_ID).sum(-1).clamp_min(1)
    lm = sum(per_token[i].sum().item() / counts[i].item() for i in range(4))
    correct = torch.tensor([1.0, 0.0, 1.0, 1.0])
    q_halt_loss = F.binary_cross_entropy_with_logits(q_halt, correct, reduction="sum").item()
    q_cont_loss = F.binary_cross_entropy_with_logits(q_continue, target, reduction="sum").item()
    assert math.isclose(metrics["lm_loss"].item(), lm, rel_tol=1e-6)
    assert math.isclose(metrics["q_halt_loss"].item(), q_halt_loss, rel_tol=1e-6)
    assert math.isclose(metrics["q_continue_loss"].item(), q_cont_loss, rel_tol=1e-6)
    assert math.isclose(loss.item(), lm + 0.5 * (q_halt_loss + q_cont_loss), rel_tol=1e-6)
    loss.backward()
    assert model.weight.grad is not None


def test_return_keys_select_detached_outputs(make_config, make_batch) -> None:
    config = make_config()
    head = ACTLossHead(HRMACT(config).train(), "stablemax_cross_entropy")
    batch = make_batch(config, 2)
    _, _, _, outputs, _ = head(head.initial_carry(batch), batch, return_keys=["logits", "nope"])
    assert list(outputs) == ["logits"] and not outputs["logits"].requires_grad
    with pytest.raises(ValueError, match="loss_type"):
        ACTLossHead(HRMACT(config), "hinge")
