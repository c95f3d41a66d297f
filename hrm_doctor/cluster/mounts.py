"""Which file system a path is on, from the kernel's mount table. On a network or cluster file
system (NFS, Lustre, GPFS, BeeGFS, CephFS, ...) inotify reports only this node's writes: a daemon
following runs that other nodes write must poll them from the start."""

from __future__ import annotations

import re
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
NETWORK_FS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "cephfs",
     "glusterfs", "gfs2", "ocfs2", "afs", "9p", "panfs", "wekafs", "orangefs", "pvfs2",
     "sshfs", "ceph-fuse", "s3fs", "gcsfuse", "juicefs", "quobyte", "virtiofs"}
)  # fmt: skip
_ESCAPE = re.compile(r"\\([0-7]{3})")  # the mount table writes a space as \040


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def filesystem_of(path: str | Path) -> str | None:
    """The type of the file system holding `path` (or its nearest existing parent), e.g.
    `ext4`, `nfs4`, `fuse.sshfs`; None where there is no mount table to read."""
    target = Path(path).absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    target = target.resolve()
    try:
        lines = MOUNTINFO.read_text().splitlines()
    except OSError:
        return None
    best, fstype = -1, None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount = Path(_unescape(fields[4]))
        if (target == mount or mount in target.parents) and len(mount.parts) >= best:
            best, fstype = len(mount.parts), right.split()[0]  # the last (top) mount wins
    return fstype


def network_fs(path: str | Path) -> str | None:
    """The file system's type when it is a network or cluster one, else None."""
    fstype = filesystem_of(path)
    if fstype is None:
        return None
    base = fstype.removeprefix("fuse.").removeprefix("fuseblk.")
    return fstype if base in NETWORK_FS else None
