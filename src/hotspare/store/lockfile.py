"""One process per store: two writers would each reconcile away the other's in-flight files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

LOCK_NAME = "store.lock"
"""The lock file in a store's root; held by the node that has the store open."""


class StoreLocked(RuntimeError):
    """Another process has this store open."""


class StoreLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> StoreLock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if sys.platform == "win32":
                import msvcrt

                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise StoreLocked(f"store lock {path} is held by another process") from e
        return cls(path, fd)

    def release(self) -> None:
        # Closing the descriptor drops the lock on both platforms; the file itself stays (deleting
        # it would race with a process that just opened it).
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
