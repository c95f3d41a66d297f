"""ARC scoring inside an evaluation: each rank's predictions become votes, rank 0 scores them.

Used by `evaluate` when the test set is ARC (scoring `auto` and a 30x30 canvas of 12 tokens with
puzzle names, or `arc_eval=true`): the last segment's argmax prediction and sigmoid(q_halt) of
every real test example are kept on the device and read once per set, with the set's other
metrics. Rank 0 gathers the votes, reports eval/arc/pass@k and writes the ARC submission JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from hrm_core.data import PuzzleDataset
from hrm_core.data.arc_votes import (
    CANVAS,
    COLOUR_OFFSET,
    COLOURS,
    PASS_KS,
    ArcVotes,
    truth_from_test_split,
)
from hrm_core.trainer.distributed import DistInfo
from hrm_doctor.errors import UserError

SUBMISSION_FILE = "arc_submission.json"
ARC_VOCAB, ARC_SEQ = COLOUR_OFFSET + COLOURS, CANVAS * CANVAS


def looks_like_arc(dataset: PuzzleDataset) -> bool:
    """ARC's encoding (vocab 12 on a 30x30 canvas) with puzzle names to undo augmentations."""
    meta = dataset.metadata
    return (meta.vocab_size, meta.seq_len) == (ARC_VOCAB, ARC_SEQ) and bool(dataset.identifiers)


class ArcScoring:
    """Votes of this rank over one evaluation; `result` on every rank, metrics on rank 0."""

    def __init__(self, dataset: PuzzleDataset, partial: bool = False) -> None:
        """`partial`: only some test examples are evaluated (eval_max_examples); tasks without
        a single prediction are then left out of pass@k instead of counting as failures."""
        if not dataset.identifiers:
            raise UserError(
                f"{dataset.path}: ARC scoring needs identifiers.json (the augmented puzzle "
                "names) next to the test split"
            )
        self.dataset = dataset
        self.names = dataset.identifiers
        self.partial = partial
        self.votes = ArcVotes()
        self._truth: dict[str, Any] | None = None  # the test split's answers: read once

    def truth(self) -> dict[str, Any]:
        """Every task's true test outputs, from the test split (the same at every evaluation)."""
        if self._truth is None:
            self._truth = {}
            for pset in self.dataset.sets.values():
                self._truth.update(truth_from_test_split(
                    self.names, pset.inputs, pset.labels, pset.puzzle_identifiers,
                    pset.puzzle_indices).truth)  # fmt: skip
        return self._truth

    def reset(self) -> None:
        """Forget the votes of a previous evaluation."""
        self.votes = ArcVotes()

    def add(
        self, set_name: str, example_indices: np.ndarray, preds: np.ndarray, q_halt: np.ndarray
    ) -> None:
        """Votes for a set's real rows: (n,) example rows, (n, seq) predicted tokens, (n,) sigmoid
        q_halt."""
        pset = self.dataset.sets[set_name]
        puzzle_of = np.searchsorted(pset.puzzle_indices, example_indices, side="right") - 1
        for row, puzzle, pred, q in zip(example_indices, puzzle_of, preds, q_halt, strict=True):
            name = self.names[int(pset.puzzle_identifiers[puzzle])]
            self.votes.add_prediction(name, pset.inputs[row], pred, float(q))

    def result(self, info: DistInfo, out_dir: Path | None) -> dict[str, float]:
        """Gather the votes on rank 0 and score them (other ranks return {})."""
        votes = self.votes
        if info.distributed:
            gathered: list[Any] | None = [None] * info.world_size if info.is_main else None
            dist.gather_object(votes, gathered, dst=0)
            if not info.is_main:
                return {}
            votes = ArcVotes()
            for part in gathered or []:
                votes.merge(part)
        votes.truth.update(self.truth())
        if self.partial:
            voted = {task for task, _ in votes.votes}
            votes.truth = {t: pairs for t, pairs in votes.truth.items() if t in voted}
        votes.check()
        scores = votes.pass_at(PASS_KS)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / SUBMISSION_FILE).write_text(json.dumps(votes.submission()))
        results = {f"eval/arc/pass@{k}": v for k, v in scores.items()}
        results["eval/arc/tasks"] = float(len(votes.truth))
        return results


def last_segment_outputs(outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, seq) uint8 argmax tokens and (B,) fp64 sigmoid(q_halt), left on the device."""
    preds = outputs["logits"].argmax(-1).to(torch.uint8)
    return preds, outputs["q_halt_logits"].to(torch.float64).sigmoid()
