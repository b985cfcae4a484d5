"""A spare's buffer disk filled and freed: each spare's data folder on a small tmpfs of its own.

The spare's store, its hot-standby pre-buffers and its SQLite index live there, so a full disk is
what the spare itself sees: writes and SQLite refused with ENOSPC, `statvfs` saying 0 free.
Mounting needs root (as the full-disk unit tests, tests/unit/test_store_full_disk.py); without
it the soak leaves this fault out and says so in its results. The mount and the ballast are
tests/support/small_disk.py's, which the end-to-end tests use too.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from bench.chaos.faults import (
    PREBUFFER_READY_S,
    STANDARD_BOUND_S,
    Fault,
    FaultRecord,
    claim_after,
    now_us,
)
from hotspare.site.spare_room import MIN_ROOM_BYTES
from hotspare.sitestate.snapshot import SiteState
from tests.support.site import FailoverSite, wait_for
from tests.support.small_disk import fill, free, mount_small_disk, unmount

SPARE_DISK_MB = 96  # room for a covered server's video between handbacks, and the pre-buffers
KNOWN_TIMEOUT_S = 30.0


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


def gapless_cameras(site: FailoverSite) -> list[str]:
    return [camera for server, cameras in site.cameras.items()
            if site.server_options.get(server, {}).get("protection") == "gapless"
            for camera in cameras]


def known_full(site: FailoverSite, spare: str) -> float:
    """Seconds until the site knows `spare` has no room: its record says so, and every gapless
    camera is pre-buffered again (PREBUFFER_READY_S) on another spare, placement having moved
    them off it (docs/failover.md, "Gapless placement")."""
    assert site.coord is not None
    coord, gapless, started = site.coord, gapless_cameras(site), time.monotonic()

    def known() -> bool:
        state = SiteState.read(coord)
        record = state.spares.get(spare)
        if record is None or record.room is None or record.room.free_bytes >= MIN_ROOM_BYTES:
            return False
        sessions = {camera: session for name, cameras in state.standby.items() if name != spare
                    for camera, session in cameras.items()}
        return all(c in sessions and sessions[c].state == "buffering"
                   and (sessions[c].buffered_s or 0) >= PREBUFFER_READY_S for c in gapless)

    wait_for(f"the site to know {spare} has no room (its record) and its pre-buffers moved",
             known, KNOWN_TIMEOUT_S, 0.2)
    return time.monotonic() - started


def takeover_on_full_disk(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A spare's disk full when a server dies: the spare without room leaves the claim to the
    one with room (it claims only when no other spare can), and its pre-buffers have moved to
    that spare, so gapless cameras lose nothing. The server dies once the site knows (the
    spare's record says it has no room, the pre-buffers are refilled elsewhere: a failure in
    between costs the gapless cameras the takeover window, docs/operations.md); the disk is
    freed 2-4 s into the takeover, then the server restarts."""
    spare = rng.choice(site.spares)
    server = rng.choice(list(site.servers))
    folder = site.node(spare).data_dir
    record = FaultRecord("takeover_on_full_disk", f"{server}|{spare}", now_us())
    filled = fill(folder)
    try:
        known_s = known_full(site, spare)
        killed_us = now_us()
        site.node(server).kill()
        claimer, record.claim_s = claim_after(site, server, killed_us)
        time.sleep(rng.uniform(2.0, 4.0))
    finally:
        free(folder)
    site.start(server)
    record.healed_us = now_us()
    record.note = (f"{filled / 1e6:.1f} MB of ballast on {spare}, known {known_s:.1f} s later; "
                   f"{claimer} claimed {server}")
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
