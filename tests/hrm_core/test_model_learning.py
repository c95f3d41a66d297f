"""Standing smoke test: a tiny HRM with the full ACT loss and both optimizers learns on the CPU."""

from __future__ import annotations

import itertools

import torch

from hrm_core.model import ACTLossHead, HRMConfig, build_model
from hrm_core.optim import AdamAtan2, CastedSparseEmbeddingSignSGD, lr_at, set_lr

BLANK, FIRST_DIGIT = 1, 2
PERMUTATIONS = torch.tensor(list(itertools.permutations(range(FIRST_DIGIT, FIRST_DIGIT + 4))))


def _missing_digit_batch(batch_size: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A 4-cell Sudoku row with one blank: the label is the full row (chance: 1 in 4)."""
    labels = PERMUTATIONS[torch.randint(0, len(PERMUTATIONS), (batch_size,), generator=gen)]
    inputs = labels.clone()
    inputs[torch.arange(batch_size), torch.randint(0, 4, (batch_size,), generator=gen)] = BLANK
    return {
        "inputs": inputs,
        "labels": labels,
        "puzzle_identifiers": torch.zeros(batch_size, dtype=torch.long),
    }


def test_tiny_hrm_learns_to_fill_a_row() -> None:
    torch.manual_seed(0)
    batch_size, total_steps, base_lr = 32, 100, 3e-3
    config = HRMConfig(
        vocab_size=6, seq_len=4, hidden_size=32, num_heads=2, H_layers=1, L_layers=1,
        H_cycles=1, L_cycles=2, expansion=2.0, halt_max_steps=2, batch_size=batch_size,
    )  # fmt: skip
    head = ACTLossHead(build_model("hrm_v1", config).train())
    optimizers = [
        AdamAtan2(head.parameters(), lr=0.0, weight_decay=0.1),  # lr set by the schedule
        CastedSparseEmbeddingSignSGD(head.model.puzzle_emb, lr=0.0, weight_decay=0.1),
    ]
    gen = torch.Generator().manual_seed(0)
    carry, exact, lm_losses = None, [], []
    for step in range(1, total_steps + 1):
        batch = _missing_digit_batch(batch_size, gen)
        carry = carry or head.initial_carry(batch)
        carry, loss, metrics, _, _ = head(carry, batch)
        (loss / batch_size).backward()
        for opt in optimizers:
            set_lr(opt, lr_at(step, base_lr, 20, total_steps))
            opt.step()
            opt.zero_grad()
        exact.append((metrics["exact_accuracy"] / metrics["count"].clamp_min(1)).item())
        lm_losses.append(metrics["lm_loss"].item() / batch_size)
    assert sum(exact[-20:]) / 20 > 0.8  # chance is 0.25
    assert sum(lm_losses[-20:]) < 0.5 * sum(lm_losses[:20])
    assert (head.model.puzzle_emb.weights != 0).any()  # the puzzle prefix was trained too
