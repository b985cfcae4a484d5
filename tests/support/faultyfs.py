"""A disk that misbehaves on request: a FUSE pass-through over a real folder, with faults.

A node's data_dir is mounted through it; the test then makes writes fail with an errno (`EIO` for
a dying disk, `EROFS` for a file system the kernel remounted read-only after an error), or makes
writes and fsyncs slow, while the node runs. Everything else passes straight to the backing
folder, so what the node wrote stays there for the checks after.

FUSE runs in a thread of the test process (mfusepy, libfuse 3 from Debian's `fuse3`, both installed
by scripts/setup --test); /dev/fuse and root are needed, as for the network-namespace tests.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.prerequisites import missing_prerequisite

PathFilter = Callable[[str], bool]

_STAT_FIELDS = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size",
                "st_uid", "st_ino", "st_blocks")
_STATVFS_FIELDS = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files",
                   "f_flag", "f_frsize", "f_namemax")


def require_fuse() -> Any:
    """The mfusepy module, or skip (fail under CI) naming what is missing."""
    if not Path("/dev/fuse").exists():
        missing_prerequisite("/dev/fuse does not exist (FUSE is needed for the disk-fault tests)")
    if shutil.which("fusermount3") is None:
        missing_prerequisite("fusermount3 is not installed (apt-get install fuse3; "
                             "scripts/setup --test installs it)")
    try:
        import mfusepy
    except (ImportError, OSError) as exc:
        missing_prerequisite(f"mfusepy cannot be loaded ({exc}); scripts/setup --test installs it")
    return mfusepy


class Faults:
    """What the disk does now; the test changes these while the node runs (under the lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.write_errno: int | None = None  # raised by write/fsync/create on matching paths
        self.write_filter: PathFilter = lambda _path: True
        self.write_delay_s = 0.0  # added to every write and fsync
        self.read_only = False  # every call that changes the file system fails with EROFS
        self.read_errno: int | None = None  # raised by read on matching paths (a bad sector)
        self.read_filter: PathFilter = lambda _path: True
        self.failed_reads = 0
        self.failed_writes = 0  # how many calls the faults refused
        self.delayed_s = 0.0  # total delay added, summed over calls (may overlap in threads)

    def check_write(self, path: str) -> None:
        with self.lock:
            delay = self.write_delay_s
            code = errno.EROFS if self.read_only else (
                self.write_errno if self.write_errno is not None and self.write_filter(path)
                else None)
            if code is not None:
                self.failed_writes += 1
            self.delayed_s += delay
        if delay:
            time.sleep(delay)
        if code is not None:
            raise OSError(code, os.strerror(code), path)

    def check_read(self, path: str) -> None:
        with self.lock:
            code = (self.read_errno if self.read_errno is not None and self.read_filter(path)
                    else None)
            if code is not None:
                self.failed_reads += 1
        if code is not None:
            raise OSError(code, os.strerror(code), path)

    def check_change(self, path: str) -> None:
        """Metadata changes (mkdir, rename, unlink...): refused only when read-only."""
        with self.lock:
            refuse = self.read_only
            if refuse:
                self.failed_writes += 1
        if refuse:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)


def _operations(fuse: Any, root: Path, faults: Faults) -> Any:
    """A pass-through Operations class over `root` (built here: mfusepy is imported lazily)."""

    def full(path: str) -> str:
        return str(root / path.lstrip("/"))

    def wrap(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno or errno.EIO) from None

    class PassThrough(fuse.Operations):  # type: ignore[misc]
        use_ns = True

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            st = wrap(lambda: os.lstat(full(path)))
            out = {name: getattr(st, name) for name in _STAT_FIELDS}
            for name in ("st_atime", "st_ctime", "st_mtime"):
                out[name] = getattr(st, name + "_ns")
            return out

        def access(self, path: str, amode: int) -> int:
            if not os.access(full(path), amode):
                raise fuse.FuseOSError(errno.EACCES)
            return 0

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *wrap(lambda: os.listdir(full(path)))]

        def statfs(self, path: str) -> dict[str, Any]:
            st = os.statvfs(full(path))
            return {name: getattr(st, name) for name in _STATVFS_FIELDS}

        def mkdir(self, path: str, mode: int) -> int:
            wrap(lambda: faults.check_change(path))
            return wrap(lambda: os.mkdir(full(path), mode)) or 0

        def rmdir(self, path: str) -> int:
            wrap(lambda: faults.check_change(path))
            return wrap(lambda: os.rmdir(full(path))) or 0

        def unlink(self, path: str) -> int:
            wrap(lambda: faults.check_change(path))
            return wrap(lambda: os.unlink(full(path))) or 0

        def rename(self, old: str, new: str) -> int:
            wrap(lambda: faults.check_change(new))
            return wrap(lambda: os.rename(full(old), full(new))) or 0

        def chmod(self, path: str, mode: int) -> int:
            wrap(lambda: faults.check_change(path))
            return wrap(lambda: os.chmod(full(path), mode)) or 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            return wrap(lambda: os.chown(full(path), uid, gid)) or 0

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            return wrap(lambda: os.utime(full(path), ns=times)) or 0

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            wrap(lambda: faults.check_write(path))
            return wrap(lambda: os.truncate(full(path), length)) or 0

        def open(self, path: str, flags: int) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC):
                wrap(lambda: faults.check_change(path))
            return int(wrap(lambda: os.open(full(path), flags)))

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            wrap(lambda: faults.check_write(path))
            return int(wrap(lambda: os.open(full(path), os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode)))

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            wrap(lambda: faults.check_read(path))
            return bytes(wrap(lambda: os.pread(fh, size, offset)))

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            wrap(lambda: faults.check_write(path))
            return int(wrap(lambda: os.pwrite(fh, data, offset)))

        def flush(self, path: str, fh: int) -> int:
            return 0

        def fsync(self, path: str, datasync: bool, fh: int) -> int:
            wrap(lambda: faults.check_write(path))
            return wrap(lambda: os.fdatasync(fh) if datasync else os.fsync(fh)) or 0

        def fsyncdir(self, path: str, datasync: bool, fh: int) -> int:
            return 0

        def release(self, path: str, fh: int) -> int:
            os.close(fh)
            return 0

    return PassThrough()


class FaultyFs:
    """Mount `backing` at `mountpoint` through the pass-through; `faults` is live."""

    def __init__(self, backing: Path, mountpoint: Path) -> None:
        self.backing = backing
        self.mountpoint = mountpoint
        self.faults = Faults()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FaultyFs:
        fuse = require_fuse()
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        operations = _operations(fuse, self.backing, self.faults)

        def serve() -> None:
            fuse.FUSE(operations, str(self.mountpoint), foreground=True, nothreads=False,
                      default_permissions=True)

        self._thread = threading.Thread(target=serve, name="faultyfs", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not os.path.ismount(self.mountpoint):
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"FUSE mount at {self.mountpoint} did not come up")
            time.sleep(0.05)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for _ in range(50):
            done = subprocess.run(["fusermount3", "-u", str(self.mountpoint)],
                                  capture_output=True, text=True, check=False)
            if done.returncode == 0 or not os.path.ismount(self.mountpoint):
                break
            time.sleep(0.1)  # a process that just died may still hold a file open
        else:
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)
        if self._thread is not None:
            self._thread.join(5)
