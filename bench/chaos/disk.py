"""A spare's buffer disk filled and freed: each spare's data folder on a small tmpfs of its own.

The spare's store, its hot-standby pre-buffers and its SQLite index live there, so a full disk is
what the spare itself sees: writes and SQLite refused with ENOSPC, `statvfs` saying 0 free.
Mounting needs root (as the full-disk unit tests, tests/unit/test_store_full_disk.py); without
it the soak leaves this fault out and says so in its results.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from pathlib import Path

from bench.chaos.faults import STANDARD_BOUND_S, Fault, FaultRecord, claim_after, now_us
from tests.support.site import FailoverSite

SPARE_DISK_MB = 96  # room for a covered server's video between handbacks, and the pre-buffers
BALLAST = "chaos-ballast"


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


class SpareDisks:
    """Every spare's data folder on its own small tmpfs, for the life of the soak."""

    def __init__(self, site: FailoverSite) -> None:
        self.paths = [site.node(name).data_dir for name in site.spares]
        self.mounted: list[Path] = []
        self.problem: str | None = None

    def __enter__(self) -> SpareDisks:
        for path in self.paths:
            problem = mount_small_disk(path, SPARE_DISK_MB)
            if problem is not None:
                self.problem = f"cannot mount a tmpfs for the spares' disks: {problem}"
                break
            self.mounted.append(path)
        return self

    def __exit__(self, *exc: object) -> None:
        for path in self.mounted:
            unmount(path)


def spare_disk_full(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """An idle spare's disk filled to the last byte for a few seconds, then freed.

    Nothing may be claimed and no video lost: the spare holds no one's video, only the gapless
    cameras' pre-buffers, which must refill once there is room (the soak's steady state waits for
    them, so a spare that cannot recover fails the soak there)."""
    spare = rng.choice(site.spares)
    folder = site.node(spare).data_dir
    record = FaultRecord("spare_disk_full", spare, now_us())
    filled = fill(folder)
    try:
        time.sleep(rng.uniform(3.0, 5.0))
    finally:
        free(folder)
    record.healed_us = now_us()
    record.note = f"{filled / 1e6:.1f} MB of ballast"
    return record


def takeover_on_full_disk(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A spare's disk full when a server dies: the spare that claims must still keep its cameras'
    video (or leave the claim to a spare that can); the disk is freed 2-4 s into the takeover,
    then the server restarts."""
    spare = rng.choice(site.spares)
    server = rng.choice(list(site.servers))
    folder = site.node(spare).data_dir
    record = FaultRecord("takeover_on_full_disk", f"{server}|{spare}", now_us())
    filled = fill(folder)
    try:
        site.node(server).kill()
        claimer, record.claim_s = claim_after(site, server, record.start_us)
        time.sleep(rng.uniform(2.0, 4.0))
    finally:
        free(folder)
    site.start(server)
    record.healed_us = now_us()
    record.note = (f"{filled / 1e6:.1f} MB of ballast on {spare}; {claimer} claimed "
                   f"{server}")
    return record


DISK_FAULTS: dict[str, tuple[Fault, float, bool | None]] = {
    "spare_disk_full": (spare_disk_full, 0.5, False),
    "takeover_on_full_disk": (takeover_on_full_disk, 0.5, True),
}
# The takeover's bound is a SIGKILL's (faults.kill_server): the product's goal, not yet known to
# hold when the claiming spare's disk is full.
DISK_LOSS_BOUND_S: dict[str, dict[str, float]] = {
    "spare_disk_full": {"standard": 0.0, "gapless": 0.0},
    "takeover_on_full_disk": {"standard": STANDARD_BOUND_S, "gapless": 0.0},
}
