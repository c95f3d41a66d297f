"""Batches for training and evaluation, sharded across ranks, deterministic and resumable.

Training follows the reference sampler (`sampling="reference"`, puzzle_dataset.py): a pass of
`epochs_per_pass` epochs (the reference uses eval_interval) visits every group once per epoch in
a seeded random order and draws one puzzle per group; a batch takes the next puzzles' examples
in a random order within each puzzle, and the puzzle that crosses the batch boundary is cut
there (its other examples are skipped); an incomplete last batch of a pass is dropped.
`sampling="whole_puzzles"` (hrm_core's earlier sampler) keeps every example of a drawn puzzle,
in order, spilling over into the next batch. Evaluation walks every example in order and pads
the last batch. Each rank takes its contiguous slice of the global batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hrm_core.data.dataset import PuzzleDataset, PuzzleSet
from hrm_core.data.metadata import IGNORE_LABEL, DatasetMetadata
from hrm_doctor.errors import UserError

if TYPE_CHECKING:
    import torch

_STREAM_CACHE_SIZE = 64
_PLAN_CACHE_SIZE = 2
Sampling = Literal["reference", "whole_puzzles"]
SAMPLINGS: tuple[Sampling, ...] = ("reference", "whole_puzzles")


@dataclass(frozen=True, eq=False)
class Batch:
    """One rank's share of a global batch, as numpy arrays."""

    set_name: str
    inputs: np.ndarray
    """(local_batch, seq_len) int32 token ids; padding rows hold pad_id."""
    labels: np.ndarray
    """(local_batch, seq_len) int32 targets; -100 where the loss must not look."""
    puzzle_identifiers: np.ndarray
    """(local_batch,) int32; padding rows hold blank_identifier_id."""
    example_indices: np.ndarray
    """(local_batch,) int64 row of each example in its set; -1 for padding rows."""
    global_effective_size: int
    """Real (non-padding) examples in the whole global batch, over all ranks."""

    def to_torch(self, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Tensors for the model: int32 inputs and identifiers, int64 labels (cross-entropy)."""
        import torch

        return {
            "inputs": torch.from_numpy(self.inputs).to(device),
            "labels": torch.from_numpy(self.labels).to(device=device, dtype=torch.int64),
            "puzzle_identifiers": torch.from_numpy(self.puzzle_identifiers).to(device),
        }


@dataclass(frozen=True)
class LoaderPosition:
    """Where the next training batch starts; independent of batch size and world size."""

    pass_index: int = 0
    set_index: int = 0
    epoch: int = 0
    """Absolute epoch of the set being read (pass p covers epochs [p*E, (p+1)*E))."""
    example_offset: int = 0
    """Next entry of that epoch's example stream (whole_puzzles sampling)."""
    batch_in_pass: int = 0
    """Global batches already yielded in this pass."""
    group_cursor: int = 0
    """Next drawn puzzle of this set's pass (reference sampling)."""


def reference_total_steps(metadata: DatasetMetadata, epochs: int, global_batch_size: int) -> int:
    """The reference's optimizer-step count for a run (it sizes the LR schedule from this)."""
    return int(epochs * metadata.total_groups * metadata.mean_puzzle_examples / global_batch_size)


def _local_batch_size(global_batch_size: int, rank: int, world_size: int) -> int:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    if global_batch_size < 1 or global_batch_size % world_size:
        raise UserError(
            f"global_batch_size={global_batch_size} must be a positive multiple of "
            f"world_size={world_size}"
        )
    return global_batch_size // world_size


class _BatchAssembler:
    """Turns global example indices into one rank's `Batch` (shared by both loaders)."""

    def __init__(self, dataset: PuzzleDataset, rank: int, local_batch_size: int) -> None:
        self.metadata: DatasetMetadata = dataset.metadata
        self.rank = rank
        self.local_batch_size = local_batch_size
        self._example_puzzles: dict[str, np.ndarray] = {}

    def _puzzle_of_example(self, pset: PuzzleSet) -> np.ndarray:
        if pset.name not in self._example_puzzles:
            sizes = np.diff(pset.puzzle_indices)
            self._example_puzzles[pset.name] = np.repeat(np.arange(pset.num_puzzles), sizes)
        return self._example_puzzles[pset.name]

    def assemble(self, pset: PuzzleSet, global_indices: np.ndarray) -> Batch:
        meta, lb = self.metadata, self.local_batch_size
        local = global_indices[self.rank * lb : (self.rank + 1) * lb].astype(np.int64)
        valid = local >= 0
        rows = local[valid]
        inputs = np.full((lb, meta.seq_len), meta.pad_id, dtype=np.int32)
        labels = np.full((lb, meta.seq_len), IGNORE_LABEL, dtype=np.int32)
        identifiers = np.full((lb,), meta.blank_identifier_id, dtype=np.int32)
        inputs[valid] = pset.inputs[rows]
        real_labels = np.asarray(pset.labels[rows], dtype=np.int32)
        if meta.ignore_label_id is not None:
            real_labels[real_labels == meta.ignore_label_id] = IGNORE_LABEL
        labels[valid] = real_labels
        identifiers[valid] = pset.puzzle_identifiers[self._puzzle_of_example(pset)[rows]]
        return Batch(
            pset.name, inputs, labels, identifiers, local, int(np.sum(global_indices >= 0))
        )


class TrainLoader:
    """Endless training batches: passes of `epochs_per_pass` epochs, each set in turn."""

    def __init__(
        self,
        dataset: PuzzleDataset,
        global_batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epochs_per_pass: int = 1,
        sampling: Sampling = "reference",
    ) -> None:
        if epochs_per_pass < 1:
            raise ValueError("epochs_per_pass must be >= 1")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.sampling = sampling
        self.dataset = dataset
        self.global_batch_size = global_batch_size
        self.local_batch_size = _local_batch_size(global_batch_size, rank, world_size)
        self.seed = seed
        self.epochs_per_pass = epochs_per_pass
        self._sets = list(dataset.sets.values())
        self._assembler = _BatchAssembler(dataset, rank, self.local_batch_size)
        self._streams: dict[tuple[int, int], np.ndarray] = {}
        self._plans: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._check_pass_fills_a_batch()
        self._position = self._normalised(LoaderPosition())

    @property
    def position(self) -> LoaderPosition:
        """Where the next batch starts (its pass, set, epoch and offset)."""
        return self._position

    def iter_pass(self) -> Iterator[Batch]:
        """The remaining batches of the current pass; afterwards the position is the next pass."""
        current = self._position.pass_index
        while self._position.pass_index == current:
            yield self._next_batch()

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self._next_batch()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to see the same batches again after `load_state_dict`."""
        return {
            "seed": self.seed,
            "epochs_per_pass": self.epochs_per_pass,
            "sampling": self.sampling,
            "set_groups": [s.num_groups for s in self._sets],
            **asdict(self._position),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a saved position (a different batch or world size is allowed)."""
        for key in ("seed", "epochs_per_pass"):
            if state[key] != getattr(self, key):
                raise UserError(f"loader state: {key} was {state[key]}, now {getattr(self, key)}")
        saved = state.get("sampling", "whole_puzzles")  # checkpoints from before the switch
        if saved != self.sampling:
            raise UserError(
                f"loader state: sampling was {saved}, now {self.sampling}; resume this run "
                f"with data_sampling={saved}"
            )
        if list(state["set_groups"]) != [s.num_groups for s in self._sets]:
            raise UserError(
                f"loader state: the dataset at {self.dataset.path} changed since it was saved "
                f"(groups per set {state['set_groups']}, now {[s.num_groups for s in self._sets]})"
            )
        fields = [k for k in LoaderPosition.__dataclass_fields__ if k in state]
        self._position = self._normalised(LoaderPosition(**{k: int(state[k]) for k in fields}))

    def epoch_stream(self, set_index: int, epoch: int) -> np.ndarray:
        """Example indices of one epoch of one set: groups shuffled, one puzzle drawn per group."""
        key = (set_index, epoch)
        if key not in self._streams:
            if len(self._streams) >= _STREAM_CACHE_SIZE:
                self._streams.pop(next(iter(self._streams)))
            pset = self._sets[set_index]
            rng = np.random.default_rng((self.seed, set_index, epoch))
            order = rng.permutation(pset.num_groups)
            puzzles = rng.integers(pset.group_indices[order], pset.group_indices[order + 1])
            starts = pset.puzzle_indices[puzzles].astype(np.int64)
            sizes = pset.puzzle_indices[puzzles + 1] - starts
            # (examples,): each puzzle's examples in order, puzzles in the drawn order
            first_slot = np.repeat(np.cumsum(sizes) - sizes, sizes)
            self._streams[key] = np.repeat(starts, sizes) + np.arange(first_slot.size) - first_slot
        return self._streams[key]

    def _pass_end(self, pass_index: int) -> int:
        return (pass_index + 1) * self.epochs_per_pass

    def pass_plan(self, set_index: int, pass_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Reference sampling: (puzzles drawn, cumulative example counts) of one set's pass.

        The groups of `epochs_per_pass` shuffled epochs in a row, one puzzle drawn from each:
        (slots,) int32 puzzle indices and (slots,) int64 running totals of their sizes.
        """
        key = (set_index, pass_index)
        if key not in self._plans:
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.pop(next(iter(self._plans)))
            pset = self._sets[set_index]
            # The reference's generator for this set's pass: group order and puzzle draws
            # are the reference's for the same seed (puzzle_dataset.py, `_iters` from 1).
            iteration = pass_index * len(self._sets) + set_index + 1
            rng = np.random.Generator(np.random.Philox(seed=self.seed + iteration))
            order = np.concatenate(
                [rng.permutation(pset.num_groups) for _ in range(self.epochs_per_pass)]
            )
            puzzles = rng.integers(pset.group_indices[order], pset.group_indices[order + 1])
            sizes = np.diff(pset.puzzle_indices)[puzzles]
            self._plans[key] = (puzzles.astype(np.int32), np.cumsum(sizes, dtype=np.int64))
        return self._plans[key]

    def _plan_batch(self, pos: LoaderPosition) -> tuple[np.ndarray, int]:
        """Reference sampling: the next global batch's example indices, and the next cursor."""
        pset = self._sets[pos.set_index]
        puzzles, ends = self.pass_plan(pos.set_index, pos.pass_index)
        cursor, need = pos.group_cursor, self.global_batch_size
        base = int(ends[cursor - 1]) if cursor else 0
        last = int(np.searchsorted(ends, base + need, side="left"))  # the puzzle cut by the edge
        chosen = puzzles[cursor : last + 1].astype(np.int64)
        sizes = np.diff(ends[cursor : last + 1], prepend=base)
        takes = sizes.copy()
        takes[-1] -= int(ends[last]) - base - need  # the crossing puzzle keeps what fits
        # Within each puzzle a random subset in random order (the reference's random.choice).
        rng = np.random.default_rng((self.seed, pos.set_index, pos.pass_index, cursor))
        segment = np.repeat(np.arange(chosen.size), sizes)  # (examples,)
        order = np.lexsort((rng.random(segment.size), segment))
        first = np.repeat(np.cumsum(sizes) - sizes, sizes)
        local = (np.arange(segment.size) - first)[order]  # example within its puzzle
        keep = np.arange(segment.size) - first < np.repeat(takes, sizes)
        rows = np.repeat(pset.puzzle_indices[chosen], sizes) + local
        return rows[keep], last + 1

    def _available(self, pos: LoaderPosition, need: int) -> int:
        """Examples left in this set's pass from `pos`, counted only up to `need`."""
        if self.sampling == "reference":
            ends = self.pass_plan(pos.set_index, pos.pass_index)[1]
            done = int(ends[pos.group_cursor - 1]) if pos.group_cursor else 0
            return int(ends[-1]) - done if ends.size else 0
        count = len(self.epoch_stream(pos.set_index, pos.epoch)) - pos.example_offset
        epoch = pos.epoch + 1
        while count < need and epoch < self._pass_end(pos.pass_index):
            count += len(self.epoch_stream(pos.set_index, epoch))
            epoch += 1
        return count

    def _normalised(self, pos: LoaderPosition) -> LoaderPosition:
        """Move past the tail of a set's pass that cannot fill a global batch (it is dropped)."""
        while self._available(pos, self.global_batch_size) < self.global_batch_size:
            pos = self._next_set_start(pos)
        return pos

    def _next_batch(self) -> Batch:
        if self.sampling == "reference":
            pos = self._position
            global_indices, cursor = self._plan_batch(pos)
            after = replace(pos, group_cursor=cursor, batch_in_pass=pos.batch_in_pass + 1)
            if cursor == self.pass_plan(pos.set_index, pos.pass_index)[0].size:
                after = self._next_set_start(pos)
            self._position = self._normalised(after)
            return self._assembler.assemble(self._sets[pos.set_index], global_indices)
        pos, need = self._position, self.global_batch_size
        pieces: list[np.ndarray] = []
        epoch, offset = pos.epoch, pos.example_offset
        while need:
            stream = self.epoch_stream(pos.set_index, epoch)
            piece = stream[offset : offset + need]
            pieces.append(piece)
            need -= piece.size
            offset += piece.size
            if offset == stream.size:
                epoch, offset = epoch + 1, 0
        global_indices = np.concatenate(pieces)
        batch_in_pass = pos.batch_in_pass + 1
        after = replace(pos, epoch=epoch, example_offset=offset, batch_in_pass=batch_in_pass)
        if epoch == self._pass_end(pos.pass_index):
            after = self._next_set_start(pos)
        self._position = self._normalised(after)
        return self._assembler.assemble(self._sets[pos.set_index], global_indices)

    def _next_set_start(self, pos: LoaderPosition) -> LoaderPosition:
        """The start of the next set in this pass, or of the next pass after the last set."""
        if pos.set_index + 1 < len(self._sets):
            start = pos.pass_index * self.epochs_per_pass
            return replace(
                pos, set_index=pos.set_index + 1, epoch=start, example_offset=0, group_cursor=0
            )
        nxt = pos.pass_index + 1
        return LoaderPosition(nxt, 0, nxt * self.epochs_per_pass, 0, 0)

    def _check_pass_fills_a_batch(self) -> None:
        """Each set's pass must fill at least one global batch, whatever puzzles are drawn."""
        for pset in self._sets:
            sizes = np.diff(pset.puzzle_indices)
            group_min = np.minimum.reduceat(sizes, pset.group_indices[:-1]) if sizes.size else sizes
            least = int(group_min.sum()) * self.epochs_per_pass
            if least < self.global_batch_size:
                raise UserError(
                    f"{self.dataset.path / self.dataset.split}: set '{pset.name}' yields as few as "
                    f"{least} examples per pass of {self.epochs_per_pass} epoch(s), fewer than "
                    f"global_batch_size={self.global_batch_size}; lower the batch size or raise "
                    "epochs_per_pass"
                )


class EvalLoader:
    """Every example of every set once, in order; the last batch of a set is padded."""

    def __init__(
        self,
        dataset: PuzzleDataset,
        global_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        max_examples: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.global_batch_size = global_batch_size
        self.local_batch_size = _local_batch_size(global_batch_size, rank, world_size)
        self.max_examples = max_examples
        self._assembler = _BatchAssembler(dataset, rank, self.local_batch_size)

    def _count(self, pset: PuzzleSet) -> int:
        n = pset.num_examples
        return n if self.max_examples is None else min(n, self.max_examples)

    def __len__(self) -> int:
        b = self.global_batch_size
        return sum(-(-self._count(s) // b) for s in self.dataset.sets.values())

    def __iter__(self) -> Iterator[Batch]:
        b = self.global_batch_size
        for pset in self.dataset.sets.values():
            count = self._count(pset)
            for start in range(0, count, b):
                global_indices = np.full((b,), -1, dtype=np.int64)
                real = np.arange(start, min(start + b, count))
                global_indices[: real.size] = real
                yield self._assembler.assemble(pset, global_indices)
