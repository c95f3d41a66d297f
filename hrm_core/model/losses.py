"""The ACT loss head: stablemax/softmax LM loss, Q-halt and Q-continue BCE, reference metrics.

HRM_NOTES "Loss" and "Metrics": losses are sums over the batch (the trainer scales by
1/global_batch_size); metrics are sums over the sequences that halted this step, with `count`
(divide by it to get means). Everything stays on the device: no `.item()` in here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from hrm_core.model.config import LOSS_TYPE_ALIASES, LOSS_TYPES
from hrm_core.model.hrm import ACTCarry, Batch

IGNORE_LABEL_ID = -100
Q_LOSS_WEIGHT = 0.5
"""Weight of (q_halt_loss + q_continue_loss) in the total loss."""


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0 (positive, continuous, grows linearly)."""
    # The negative branch sees x clamped to <= 0: `where` would otherwise send 0 * inf = NaN
    # gradients through 1/(1 - x) at x = 1.
    return torch.where(x >= 0, x + 1, 1.0 / (1.0 - x.clamp(max=0)))


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(s(x) / sum s(x)) along `dim`."""
    s = stablemax_s(x)
    return s.log() - s.sum(dim=dim, keepdim=True).log()


def stablemax_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL_ID
) -> torch.Tensor:
    """Per-token -log stablemax(logits)[label] in fp64, 0 where label == ignore_index."""
    logprobs = log_stablemax(logits.to(torch.float64), dim=-1)  # (B, seq, vocab)
    valid = labels != ignore_index
    picked = logprobs.gather(-1, torch.where(valid, labels, 0).long().unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, 0.0)


def softmax_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL_ID
) -> torch.Tensor:
    """Per-token softmax cross entropy in fp32, 0 where label == ignore_index."""
    flat = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        labels.long().reshape(-1),
        ignore_index=ignore_index,
        reduction="none",
    )
    return flat.view(labels.shape)


LOSS_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "stablemax": stablemax_cross_entropy,
    "softmax": softmax_cross_entropy,
}


class ACTLossHead(nn.Module):
    """Wraps an ACT model: one call runs one segment and returns loss, metrics and outputs."""

    def __init__(self, model: nn.Module, loss_type: str = "stablemax") -> None:
        super().__init__()
        loss_type = LOSS_TYPE_ALIASES.get(loss_type, loss_type)
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type: must be one of {LOSS_TYPES} (got {loss_type!r})")
        self.model = model
        self.loss_type = loss_type
        self.loss_fn = LOSS_FUNCTIONS[loss_type]

    def initial_carry(self, batch: Batch) -> ACTCarry:
        return self.model.initial_carry(batch)

    def forward(
        self, carry: ACTCarry, batch: Batch, return_keys: Iterable[str] | None = None
    ) -> tuple[
        ACTCarry, torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor
    ]:
        """-> (new_carry, loss, metrics, detached outputs, all_halted).

        `return_keys` selects the outputs to return (None: all of them, plus `seq_is_correct`).
        `all_halted` is a 0-d bool tensor; reading it (`.item()`) is the caller's host sync.
        """
        new_carry, outputs = self.model(carry, batch)
        labels = new_carry.current_data["labels"]
        logits = outputs["logits"]

        with torch.no_grad():
            mask = labels != IGNORE_LABEL_ID  # (B, seq)
            loss_counts = mask.sum(-1)  # (B,)
            loss_divisor = loss_counts.clamp_min(1).unsqueeze(-1)  # (B, 1)
            is_correct = mask & (logits.argmax(-1) == labels)
            seq_is_correct = is_correct.sum(-1) == loss_counts  # (B,): whole puzzle right
            valid = new_carry.halted & (loss_counts > 0)  # metrics: sequences halted now
            q_halt_right = (outputs["q_halt_logits"] >= 0) == seq_is_correct
            metrics = {
                "count": valid.sum(),
                "accuracy": torch.where(
                    valid, (is_correct.float() / loss_divisor).sum(-1), 0.0
                ).sum(),
                "exact_accuracy": (valid & seq_is_correct).sum(),
                "q_halt_accuracy": (valid & q_halt_right).sum(),
                "steps": torch.where(valid, new_carry.steps, 0).sum(),
            }
            outputs["seq_is_correct"] = seq_is_correct

        # Per-sequence mean over valid tokens, summed over the batch (every slot trains).
        seq_lm_loss = (
            self.loss_fn(logits, labels, ignore_index=IGNORE_LABEL_ID) / loss_divisor
        ).sum(-1)
        lm_loss = seq_lm_loss.sum()
        outputs["seq_lm_loss"] = seq_lm_loss.detach()  # (B,): per supervision step in the probe
        q_halt_logits = outputs["q_halt_logits"]
        q_halt_loss = F.binary_cross_entropy_with_logits(
            q_halt_logits, seq_is_correct.to(q_halt_logits.dtype), reduction="sum"
        )
        metrics["lm_loss"] = lm_loss.detach()
        metrics["q_halt_loss"] = q_halt_loss.detach()
        q_loss = q_halt_loss
        if "target_q_continue" in outputs:  # training only
            q_continue_loss = F.binary_cross_entropy_with_logits(
                outputs["q_continue_logits"], outputs["target_q_continue"], reduction="sum"
            )
            metrics["q_continue_loss"] = q_continue_loss.detach()
            q_loss = q_loss + q_continue_loss
        loss = lm_loss + Q_LOSS_WEIGHT * q_loss

        keys = outputs.keys() if return_keys is None else [k for k in return_keys if k in outputs]
        detached = {k: outputs[k].detach() for k in keys}
        return new_carry, loss, metrics, detached, new_carry.halted.all()
