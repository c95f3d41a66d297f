import numpy as np
import pytest

from hrm_doctor import RunWriter


@pytest.fixture
def make_run():
    """Write a small single-rank run with a few metrics; return its path."""

    def make(path, steps=100, rank=0, world_size=1, **writer_kwargs):
        rng = np.random.default_rng(rank)
        with RunWriter(
            path, config={"lr": 1e-4}, rank=rank, world_size=world_size, **writer_kwargs
        ) as w:
            for i in range(steps):
                w.log({"train/lm_loss": float(rng.random()), "grad/norm": float(i)}, step=i)
                if i % 37 == 0:
                    w.flush()
        return path

    return make
