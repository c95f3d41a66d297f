"""`hrm-doctor watch` over a root that other nodes write (a Slurm job's ranks on NFS): a network
file system is found in the mount table and polled from the start, said once; where the mount
table does not tell, the safety poll finds data that no event announced and switches."""

from __future__ import annotations

import math
import threading
import time

import pytest

from hrm_doctor import RunWriter
from hrm_doctor.cluster import mounts
from hrm_doctor.engine.packs import load_rule_set
from hrm_doctor.watch import daemon as daemon_module
from hrm_doctor.watch.daemon import Daemon
from hrm_doctor.watch.source import ChangeSource


class Notes:
    """A console that keeps what the daemon says."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.findings: list = []

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def refresh(self, monitors) -> None: ...

    def note(self, text: str) -> None:
        self.notes.append(text)

    def finding(self, run: str, f) -> None:
        self.findings.append(f)


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """`tmp_path/shared` is an NFS mount, `tmp_path/local` is not (a fake mount table)."""
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 1 8:1 / / rw,relatime - ext4 /dev/vda rw\n"
        f"40 22 0:50 / {tmp_path}/shared rw,relatime shared:5 - nfs4 srv:/export rw,vers=4.2\n"
        f"41 22 0:51 / {tmp_path}/with\\040space rw - lustre 10.0.0.1@tcp:/fs rw\n"
        f"42 22 0:52 / {tmp_path}/home rw - fuse.sshfs me@host:/home rw\n"
    )
    monkeypatch.setattr(mounts, "MOUNTINFO", table)
    for mount_point in ("shared", "with space", "home"):
        (tmp_path / mount_point).mkdir()
    return tmp_path / "shared"


def test_the_mount_table_tells_a_network_file_system(shared, tmp_path):
    assert mounts.filesystem_of(shared / "runs" / "not-yet") == "nfs4"  # nearest existing parent
    assert mounts.network_fs(shared) == "nfs4"
    assert mounts.network_fs(tmp_path / "with space" / "runs") == "lustre"
    assert mounts.network_fs(tmp_path / "home" / "runs") == "fuse.sshfs"
    assert mounts.filesystem_of(tmp_path / "local") == "ext4"
    assert mounts.network_fs(tmp_path / "local") is None


def test_the_daemon_polls_a_root_on_nfs_from_the_start_and_says_so_once(shared):
    root = shared / "runs"
    with RunWriter(root / "a", config={"lr": 1e-4}) as w:
        w.log({"train/lm_loss": 2.0, "grad/norm": 1.0}, step=0)
    console = Notes()
    d = Daemon(root, load_rule_set(None), console=console)
    try:
        assert d.source.polling
        said = [n for n in console.notes if "network file system" in n]
        assert said == [
            f"{root} is on nfs4, a network file system whose writes from other nodes send no "
            "file events: polling instead"
        ]
    finally:
        d.close()


def test_where_no_file_event_arrives_the_safety_poll_switches_to_polling(tmp_path, monkeypatch):
    # a file system the mount table does not give away, whose writes (from another node) send
    # no inotify event: the watcher starts, but stays silent
    monkeypatch.setattr(ChangeSource, "_start_observer", lambda self: None)
    monkeypatch.setattr(daemon_module, "_SAFETY_POLL_S", 0.3)
    run = tmp_path / "run"
    w = RunWriter(run, config={"lr": 1e-4})
    for i in range(20):
        w.log({"train/lm_loss": 2.0 - 0.001 * i, "grad/norm": 1.0}, step=i)
    w.flush()
    console, stop = Notes(), threading.Event()
    d = Daemon(run, load_rule_set(None), console=console, tick_s=0.1)
    thread = threading.Thread(target=d.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not any("caught up" in n for n in console.notes) and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(20, 40):
            w.log({"train/lm_loss": 2.0 - 0.001 * i, "grad/norm": 1.0}, step=i)
        w.log({"train/lm_loss": math.nan, "grad/norm": 1.0}, step=40)
        w.flush()
        while not console.findings and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
        w.close()
    assert console.notes.count("file events are not arriving: polling instead") == 1
    assert d.source.polling
    assert [f.first_step for f in console.findings if f.category == "nonfinite"] == [40]
