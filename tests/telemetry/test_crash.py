"""Writers killed with SIGKILL at random moments while a reader polls: nothing flushed is lost,
no step comes back twice, and every rank's steps come back in order."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hrm_doctor import RunReader

WRITER = Path(__file__).with_name("writer_proc.py")


def _start(run_dir, rank, world, *extra):
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(run_dir), str(rank), str(world), *map(str, extra)],
        stdout=subprocess.PIPE,
        text=True,
    )


class _FlushLog:
    """Collects the 'flushed N' lines of a writer process in a thread."""

    def __init__(self, proc):
        self.last = -1
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            if line.startswith("flushed "):
                self.last = int(line.split()[1])


def _check_polled(rows_by_rank, final, flushed_by_rank):
    for rank, flushed in flushed_by_rank.items():
        got = np.concatenate(rows_by_rank.get(rank, [np.zeros(0, np.int64)]))
        assert len(got) == len(set(got.tolist())), f"rank {rank}: a step came back twice"
        assert (np.diff(got) > 0).all(), f"rank {rank}: steps out of order"
        assert got.tolist() == list(range(len(got))), f"rank {rank}: a gap in the steps"
        assert len(got) - 1 >= flushed, f"rank {rank}: flushed step {flushed} lost"
        full = final[final["rank"] == rank]["step"].to_numpy()
        assert full.tolist() == got.tolist()
        vals = final[final["rank"] == rank]["step_value"].to_numpy()
        assert (vals == full).all()


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(6))
def test_two_ranks_killed_at_random_moments_while_polling(tmp_path, trial):
    rnd = random.Random(trial)
    run = tmp_path / "run"
    procs = [_start(run, r, 2) for r in range(2)]
    logs = [_FlushLog(p) for p in procs]
    deadline = time.monotonic() + 10
    while not (run / "telemetry").is_dir():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    reader = RunReader(run)
    polled: dict[int, list[np.ndarray]] = {}
    kill_at = [time.monotonic() + rnd.uniform(0.3, 1.5) for _ in procs]
    alive = [True, True]
    while any(alive):
        for i, p in enumerate(procs):
            if alive[i] and time.monotonic() >= kill_at[i]:
                p.send_signal(signal.SIGKILL)
                p.wait()
                alive[i] = False
        df = reader.poll()
        for rank, g in df.groupby("rank"):
            polled.setdefault(int(rank), []).append(g["step"].to_numpy())
        time.sleep(rnd.uniform(0, 0.02))
    for log in logs:
        log.thread.join(timeout=5)
    df = reader.poll()
    for rank, g in df.groupby("rank"):
        polled.setdefault(int(rank), []).append(g["step"].to_numpy())
    final = RunReader(run).scalars()
    _check_polled(polled, final, {0: logs[0].last, 1: logs[1].last})
    assert RunReader(run).status == "crashed"


def test_truncated_segment_reads_a_prefix(tmp_path, make_run):
    run = make_run(tmp_path / "run", steps=500)
    seg = next((run / "telemetry").iterdir())
    data = seg.read_bytes()
    full = RunReader(run).scalars()
    rng = random.Random(0)
    for cut in sorted(rng.sample(range(len(data)), 40)) + [0, 1, 15, 16, 17]:
        seg.write_bytes(data[:cut])
        df = RunReader(run).scalars()
        assert df["step"].tolist() == list(range(len(df)))
        assert df.equals(full.iloc[: len(df)].reset_index(drop=True)[df.columns]) or len(df) == 0


def test_garbage_appended_segment_keeps_everything_before(tmp_path, make_run):
    run = make_run(tmp_path / "run", steps=300)
    seg = next((run / "telemetry").iterdir())
    full = RunReader(run).scalars()
    with open(seg, "ab") as f:
        f.write(os.urandom(4096))
    df = RunReader(run).scalars()
    assert len(df) == len(full)
    # garbage that looks like a frame header but fails its CRC
    with open(seg, "ab") as f:
        f.write(b"HRMT" + b"B" + bytes(3) + (100).to_bytes(4, "little") + bytes(4) + bytes(104))
    assert len(RunReader(run).scalars()) == len(full)


def test_a_growing_partial_frame_is_read_once_complete(tmp_path, make_run):
    run = make_run(tmp_path / "run", steps=50)
    seg = next((run / "telemetry").iterdir())
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - 30])
    reader = RunReader(run)
    first = reader.poll()
    seg.write_bytes(data)
    second = reader.poll()
    steps = first["step"].tolist() + second["step"].tolist()
    assert steps == list(range(50))
