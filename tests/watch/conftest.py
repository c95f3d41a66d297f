import os
import subprocess

import pytest
from watch_helpers import BIN


@pytest.fixture
def daemon():
    """Start `hrm-doctor watch` subprocesses; all are killed at the end of the test."""
    procs = []

    def start(target, *args):
        p = subprocess.Popen(
            [str(BIN), "watch", str(target), "--plain", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
