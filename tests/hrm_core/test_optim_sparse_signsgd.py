"""SignSGD on the sparse puzzle-embedding table: the update rule, touched rows only, 1 vs 2 ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hrm_core.model import HRMACT, ACTLossHead, CastedSparseEmbedding
from hrm_core.optim import CastedSparseEmbeddingSignSGD

NUM_IDS, DIM, GLOBAL_BATCH, STEPS = 7, 5, 8, 3
LR, WD = 0.1, 0.5


def _backward_with_grad(emb: CastedSparseEmbedding, ids: torch.Tensor, grad: torch.Tensor) -> None:
    """A training forward of `ids`, then a backward that puts exactly `grad` on the rows."""
    (emb(ids, torch.float32) * grad).sum().backward()


def _fixture_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(NUM_IDS, DIM, generator=gen)
    ids = torch.randint(0, NUM_IDS - 1, (STEPS, GLOBAL_BATCH), generator=gen)  # id 6 never used
    grads = torch.randn(STEPS, GLOBAL_BATCH, DIM, generator=gen)
    return table, ids, grads


def _train(table: torch.Tensor, ids: torch.Tensor, grads: torch.Tensor, rank: int, world: int):
    emb = CastedSparseEmbedding(NUM_IDS, DIM).train()
    emb.weights.copy_(table)
    opt = CastedSparseEmbeddingSignSGD(emb, lr=LR, weight_decay=WD)
    local = GLOBAL_BATCH // world
    rows = slice(rank * local, (rank + 1) * local)
    for step in range(STEPS):
        _backward_with_grad(emb, ids[step, rows], grads[step, rows])
        opt.step()
        opt.zero_grad()
    return emb.weights


def _gloo_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        table = _train(*_fixture_data(), rank=rank, world=world)
        torch.save(table, Path(out_dir) / f"rank{rank}.pt")
        # neither rank tears gloo down while the other may still be talking to it (a peer gone
        # mid-exchange aborts the process: "terminate called without an active exception")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_update_is_minus_lr_sign_of_summed_grad_with_decay_on_touched_rows_only() -> None:
    emb = CastedSparseEmbedding(4, 3).train()
    emb.weights.copy_(
        torch.tensor([[0.05, -1.0, 2.0], [3.0, 0.5, -2.0], [5.0, 5.0, 5.0], [0.0] * 3])
    )
    before = emb.weights.clone()
    opt = CastedSparseEmbeddingSignSGD(emb, lr=0.1, weight_decay=0.5)
    ids = torch.tensor([1, 0, 1])
    grad = torch.tensor([[1.0, -2.0, 0.0], [0.3, 0.0, -0.1], [-3.0, 1.0, 0.0]])
    _backward_with_grad(emb, ids, grad)
    opt.step()
    decay = 1 - 0.1 * 0.5
    # id 1 appears twice: its gradients sum to (-2, -1, 0) before taking the sign.
    assert torch.allclose(emb.weights[1], before[1] * decay - 0.1 * torch.tensor([-1.0, -1.0, 0.0]))
    assert torch.allclose(emb.weights[0], before[0] * decay - 0.1 * torch.tensor([1.0, 0.0, -1.0]))
    assert torch.equal(emb.weights[2], before[2])  # untouched rows: no decay, no step
    assert torch.equal(emb.weights[3], before[3])
    assert opt.last_stats["rows_touched"].item() == 2
    # One of the 6 touched entries changes sign: row 0, col 0 (0.05 -> 0.0475 - 0.1).
    assert opt.last_stats["sign_flip_frac"].item() == pytest.approx(1 / 6)


def test_zero_grad_clears_rows_and_step_without_grad_is_a_no_op() -> None:
    emb = CastedSparseEmbedding(3, 2).train()
    opt = CastedSparseEmbeddingSignSGD(emb, lr=0.1, weight_decay=0.1)
    _backward_with_grad(emb, torch.tensor([0]), torch.ones(1, 2))
    opt.zero_grad()
    assert emb.local_weights.grad is None
    opt.step()
    assert torch.equal(emb.weights, torch.zeros(3, 2))


def test_eval_and_no_grad_forwards_leave_the_optimizer_scratch_alone() -> None:
    emb = CastedSparseEmbedding(5, 2).train()
    emb(torch.tensor([1, 2]), torch.float32)
    stashed = emb.local_ids.clone()
    with torch.no_grad():
        emb(torch.tensor([3, 4]), torch.float32)  # the target-Q pass runs like this
    emb.eval()
    emb(torch.tensor([0, 0]), torch.float32)
    assert torch.equal(emb.local_ids, stashed)


def test_model_training_step_moves_only_the_batch_rows(make_config, make_batch) -> None:
    config = make_config(num_puzzle_identifiers=6)
    model = HRMACT(config).train()
    head = ACTLossHead(model)
    batch = make_batch(config, 4)
    batch["puzzle_identifiers"] = torch.tensor([1, 3, 3, 1])
    opt = CastedSparseEmbeddingSignSGD(model.puzzle_emb, lr=0.01, weight_decay=0.1)
    _, loss, *_ = head(head.initial_carry(batch), batch)
    loss.backward()
    opt.step()
    moved = (model.puzzle_emb.weights != 0).any(dim=1)
    assert moved.tolist() == [False, True, False, True, False, False]
    assert torch.allclose(
        model.puzzle_emb.weights[1].abs(), torch.full((config.puzzle_emb_ndim,), 0.01)
    )


def test_single_process_equals_the_gathered_global_batch() -> None:
    """Without torch.distributed, ranks of half the batch would diverge: the full batch is the truth."""
    table, ids, grads = _fixture_data()
    result = _train(table, ids, grads, rank=0, world=1)
    assert not torch.equal(result, table)
    assert torch.equal(result[NUM_IDS - 1], table[NUM_IDS - 1])  # never touched


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_on_the_same_global_batch(tmp_path: Path) -> None:
    mp.spawn(
        _gloo_worker,
        args=(2, str(tmp_path / "rendezvous"), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    single = _train(*_fixture_data(), rank=0, world=1)
    assert not torch.equal(_train(*_fixture_data(), rank=0, world=2), single)  # local-only differs
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    assert torch.equal(rank0, rank1)
    assert torch.equal(rank0, single)
