"""A node's data folder on a small tmpfs of its own, filled to its last byte and freed again.

A seam for free space cannot show what matters on a full disk: SQLite and every file write
refused with ENOSPC, `statvfs` saying 0 free. So the folder gets a real small file system
(`mount -t tmpfs`, root needed) for the life of the test or the soak (bench/chaos/disk.py), and a
ballast file fills it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

BALLAST = "ballast"


def mount_small_disk(path: Path, megabytes: int) -> str | None:
    """A tmpfs of `megabytes` on `path` (created empty); None, or why it could not be made."""
    if shutil.which("mount") is None:
        return "mount(8) is missing"
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else (done.stderr.strip() or "mount failed")


def unmount(path: Path) -> None:
    """Lazily, so a node still holding a file there does not keep the mount."""
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextmanager
def small_disks(paths: Sequence[Path], megabytes: int) -> Iterator[str | None]:
    """Each path on its own tmpfs until the block ends; yields None, or why one could not be
    mounted (then none is left mounted)."""
    mounted: list[Path] = []
    problem: str | None = None
    try:
        for path in paths:
            problem = mount_small_disk(path, megabytes)
            if problem is not None:
                break
            mounted.append(path)
        if problem is not None:
            for path in mounted:
                unmount(path)
            mounted.clear()
        yield problem
    finally:
        for path in mounted:
            unmount(path)


def fill(folder: Path) -> int:
    """Write a ballast file until the disk refuses even one byte; its size."""
    path = folder / BALLAST
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for block in (1 << 20, 1 << 16, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError:
                pass
    finally:
        os.close(fd)
    return path.stat().st_size


def free(folder: Path) -> None:
    (folder / BALLAST).unlink(missing_ok=True)
