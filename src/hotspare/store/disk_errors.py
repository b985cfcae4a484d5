"""What to tell an operator when the disk refuses a write, by the errno it gave.

"Check free space and permissions" was the one answer to every failed write, which sent operators
looking at a full disk when the disk was dying or the kernel had made the file system read-only.
The node retries by itself in every case; the advice says what only a person can fix.
"""

from __future__ import annotations

import errno

_ADVICE = {
    errno.ENOSPC: "the disk is full: retention frees the oldest video first (docs/operations.md, "
    "'Disk full'); check min_free_bytes and what else fills the disk",
    errno.EDQUOT: "the node's user is over its disk quota: raise the quota or free space",
    errno.EROFS: "the file system is read-only (the kernel remounts a file system read-only after "
    "a disk error): check the kernel log (dmesg), repair the file system and remount it "
    "read-write",
    errno.EIO: "the disk reports an I/O error: check the kernel log (dmesg) and the disk's health "
    "(SMART), and replace it if errors continue",
    errno.EACCES: "permission denied: the store directory must be writable by the node's user",
    errno.EPERM: "operation not permitted: the store directory must be writable by the node's user",
}


def disk_advice(exc: BaseException) -> str:
    """One sentence for the operator; the node keeps retrying whatever it says."""
    code = getattr(exc, "errno", None)
    advice = _ADVICE.get(code) if isinstance(code, int) else None
    return (advice or "check free space and permissions of the store directory") + (
        "; the node retries by itself")


def disk_read_advice(exc: BaseException) -> str:
    """For a file the disk cannot give back: the same diagnosis, and where to see what else is
    affected (a write is retried; a bad sector is not fixed by asking again)."""
    code = getattr(exc, "errno", None)
    advice = _ADVICE.get(code) if isinstance(code, int) else None
    return (advice or "check the disk and the permissions of the store directory") + (
        "; `hotspare store check` lists every segment that cannot be read; restore those from "
        "a backup or a spare's copy")
