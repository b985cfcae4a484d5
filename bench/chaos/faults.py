"""The faults the chaos soak draws from, each injected and healed on a running FailoverSite.

Each fault is one function: it injects the fault, waits for the reaction the product promises (a
claim, a takeover, nothing at all), heals it, and returns a record with the times that matter.
The soak then waits for the whole site to be steady again before the next one, so every frame
lost or stored twice can be charged to exactly one fault.

Camera faults go through the simulator's control API: a camera that goes silent (its connections
dropped, new ones refused: unplugged) and one whose sessions stay open on RTCP alone while no video
comes (a hung encoder). A spare's disk filled is in bench/chaos/disk.py; a vanished host,
partitions and a flapping link, which need the network-namespace site, in
bench/chaos/host_faults.py. A camera that restarts its stream (timestamps and sequence numbers
jump inside the session, or a reboot that drops it) and one that changes its resolution
mid-stream (new SPS/PPS in the same session) go through the simulator too.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hotspare.coordination.errors import EtcdUnavailableError
from hotspare.sitestate import layout
from hotspare.sitestate.snapshot import SiteState
from tests.support.site import FailoverSite, wait_for

GOP_S = 1.0
PREBUFFER_READY_S = 4.0  # seconds a gapless camera's standby holds before it counts as covered
LOOKBACK_S = 1.5  # a fault's window opens this long before it: a crash loses what was in flight
STEADY_HOLD_S = 2.0  # steady must hold this long, and no fault starts within LOOKBACK_S of the last


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class FaultRecord:
    kind: str
    target: str
    start_us: int
    healed_us: int = 0
    steady_us: int = 0
    claim_s: float | None = None  # fault → claimed event, where a claim is the expected reaction
    claims: list[str] = field(default_factory=list)  # "spare→server" claims seen in the window
    leases_lost: list[str] = field(default_factory=list)  # nodes whose etcd lease lapsed meanwhile
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "start_us": self.start_us,
                "healed_us": self.healed_us, "steady_us": self.steady_us,
                "claim_s": self.claim_s, "claims": self.claims,
                "leases_lost": self.leases_lost, "note": self.note}


Fault = Callable[[FailoverSite, random.Random], FaultRecord]


def claims_since(site: FailoverSite, after_us: int) -> list[str]:
    return [f"{e.node}->{e.server}" for e in site.events()
            if e.kind == "claimed" and e.wall_us >= after_us]


_LEASE_LOST = re.compile(r"etcd_adapter: lease \S+ lost")


def lease_losses(site: FailoverSite) -> dict[str, int]:
    """Per node, how often its log says its etcd lease lapsed (its keys went with it)."""
    out: dict[str, int] = {}
    for name in site.nodes:
        try:
            text = site.node(name).log_path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        out[name] = len(_LEASE_LOST.findall(text))
    return out


def steady(site: FailoverSite, timeout: float, gapless: list[str]) -> None:
    """Every server recording and confirmed, no claim or re-insert left, every spare idle, every
    etcd member healthy, and every gapless camera pre-buffered again on a spare: the state every
    fault must end in. A fault injected before the pre-buffers refill would find those cameras
    protected as standard cameras only; that is a second fault, not what the soak measures.

    The state must hold for STEADY_HOLD_S without a break. Seen in seed 1: an etcd member frozen
    for 2 s cost both spares their leases, but their keys were still there when the first check
    passed; the next fault (a SIGKILL of the gapless server) found the spares re-registering, the
    spare without the pre-buffer took it over and the gapless cameras lost 1.3 s, charged to the
    SIGKILL. Holding also keeps the next fault's look-back (LOOKBACK_S) clear of this one."""
    assert site.coord is not None and site.etcd is not None
    coord, etcd = site.coord, site.etcd
    held_since: list[float] = []

    def check() -> bool:
        ok = check_once()
        if not ok:
            held_since.clear()
            return False
        if not held_since:
            held_since.append(time.monotonic())
        return time.monotonic() - held_since[0] >= STEADY_HOLD_S

    def check_once() -> bool:
        state = SiteState.read(coord)
        servers_ok = all(s in state.alive and state.alive[s].confirmed for s in site.servers)
        spares_ok = all(s in state.spares and state.spares[s].state == "idle"
                        and state.spares[s].leftover is None for s in site.spares)
        members_ok = all(m.is_healthy() for m in etcd.members)
        sessions = {camera: session for cameras in state.standby.values()
                    for camera, session in cameras.items()}
        buffered = all(c in sessions and sessions[c].state == "buffering"
                       and (sessions[c].buffered_s or 0) >= PREBUFFER_READY_S for c in gapless)
        return (servers_ok and spares_ok and members_ok and buffered and not state.claims
                and not any(state.reinsert.values()))

    wait_for("the site steady again (servers confirmed, no claim or re-insert, spares idle, "
             "gapless cameras pre-buffered)", check, timeout, 0.3)


def claim_after(site: FailoverSite, server: str, after_us: int, timeout: float = 20.0
                ) -> tuple[str, float]:
    """The spare that claimed `server` after `after_us`, and how many seconds later."""
    event = site.wait_event("claimed", server, timeout=timeout, after_us=after_us)
    return event.node, (event.wall_us - after_us) / 1e6


def _crash(site: FailoverSite, record: FaultRecord) -> str:
    """SIGKILL the record's server and wait until a spare records its cameras; that spare."""
    site.node(record.target).kill()
    spare, record.claim_s = claim_after(site, record.target, record.start_us)
    site.wait_event("recording", record.target, timeout=20, after_us=record.start_us)
    return spare


def kill_server(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """SIGKILL a recording server (the master among them); a spare covers it; it restarts."""
    server = rng.choice(list(site.servers))
    record = FaultRecord("kill_master" if server == "rec-1" else "kill_server", server, now_us())
    spare = _crash(site, record)
    time.sleep(rng.uniform(2.0, 5.0))
    site.start(server)
    record.healed_us = now_us()
    record.note = f"covered by {spare}"
    return record


def freeze_server(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """SIGSTOP a recording server past its lease (a hung machine), then SIGCONT it."""
    server = rng.choice(list(site.servers))
    record = FaultRecord("freeze_server", server, now_us())
    site.node(server).freeze()
    try:
        spare, record.claim_s = claim_after(site, server, record.start_us)
        time.sleep(rng.uniform(1.0, 3.0))
    finally:
        site.node(server).thaw()
    record.healed_us = now_us()
    record.note = f"covered by {spare}"
    return record


def kill_covering_spare(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A server dies, and then the spare covering it: the other spare must take over."""
    server = rng.choice(list(site.servers))
    record = FaultRecord("kill_covering_spare", server, now_us())
    first = _crash(site, record)
    time.sleep(rng.uniform(1.5, 3.0))
    spare_killed_us = now_us()
    site.node(first).kill()
    second, _ = claim_after(site, server, spare_killed_us, timeout=25)
    site.wait_event("recording", server, node=second, timeout=20, after_us=spare_killed_us)
    time.sleep(rng.uniform(1.0, 3.0))
    site.start(first)
    site.start(server)
    record.healed_us = now_us()
    record.note = f"{first} killed while covering; {second} took over"
    return record


def restart_mid_reinsert(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A server comes back, and dies again while the spare re-inserts into it."""
    server = rng.choice(list(site.servers))
    record = FaultRecord("restart_mid_reinsert", server, now_us())
    spare = _crash(site, record)
    time.sleep(rng.uniform(3.0, 5.0))
    restarted_us = now_us()
    site.start(server)
    key = layout.reinsert(server, spare)

    def under_way() -> bool:
        progress = site.get(key)
        if progress is not None:
            return bool(progress.get("done", 0) >= 1)
        kinds = {e.kind for e in site.events() if e.server == server and e.wall_us >= restarted_us}
        # Gone: not begun yet, or (a short cover) already finished; then stop waiting at once,
        # not 30 s later (the waits that made this kind the slowest).
        if "done" in kinds:
            raise AssertionError("finished")
        # The re-insert begins right after the handback event; a short cover's re-insert (a few
        # MB at the site's rate) is over before its first progress write, so waiting for that
        # made the second kill come after it (all 10 of the 100-fault run of 2026-12-04).
        return "handback" in kinds

    try:
        wait_for("re-insert under way", under_way, 30, 0.05)
        site.node(server).kill()
        killed_us = now_us()
        done_first = any(e.kind == "done" and e.server == server
                         and restarted_us <= e.wall_us <= killed_us for e in site.events())
        record.note = (f"re-insert from {spare} finished just before the second kill"
                       if done_first else f"killed again during re-insert from {spare}")
    except AssertionError:
        record.note = f"re-insert from {spare} finished before the second kill"
    time.sleep(rng.uniform(0.5, 2.0))
    if site.node(server).process is None or site.node(server).process.poll() is not None:
        site.start(server)
    record.healed_us = now_us()
    return record


def freeze_idle_spare(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """SIGSTOP an idle spare for a few seconds: nothing may be claimed."""
    spare = rng.choice(site.spares)
    record = FaultRecord("freeze_idle_spare", spare, now_us())
    site.node(spare).freeze()
    time.sleep(rng.uniform(2.0, 4.0))
    site.node(spare).thaw()
    record.healed_us = now_us()
    return record


def kill_etcd_member(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """SIGKILL one etcd member (of three) and start it again: the site must not notice."""
    assert site.etcd is not None
    member = rng.choice(site.etcd.members)
    record = FaultRecord("kill_etcd_member", member.name, now_us())
    member.kill()
    time.sleep(rng.uniform(2.0, 4.0))
    hosts = getattr(site.etcd, "member_hosts", None)  # --hosts netns: the member's own host
    if hosts is None:
        member.start()
    else:
        with hosts[site.etcd.members.index(member)].entered():
            member.start(wait=False)
        member.wait_healthy(20.0)
    record.healed_us = now_us()
    return record


def freeze_etcd_member(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """SIGSTOP one etcd member (the leader, when it is chosen) for a few seconds."""
    assert site.etcd is not None
    member = rng.choice(site.etcd.members)
    record = FaultRecord("freeze_etcd_member", member.name, now_us())
    member.freeze()
    try:
        time.sleep(rng.uniform(2.0, 4.0))
    finally:
        member.thaw()
    record.healed_us = now_us()
    return record


def _camera_fault(site: FailoverSite, rng: random.Random, kind: str) -> FaultRecord:
    """A camera (any server's) misbehaves for a few seconds; its server must not be taken over.

    A server whose camera fails drops its alive key (that is how it reports the camera; `alive
    dropped` in the note is that report, seen from etcd), and a spare claims it only when the key
    stays gone for the startup grace (5 s), so a camera back sooner must cost no failover. Silent:
    1.5-3 s, noticed at once (the connection closes); the server is not recording until its next
    reconnect attempt (up to `reconnect_max_seconds`, 1 s here) gets in, so the outage plus that
    must stay inside the grace: a 3.8 s outage was claimed 5.1 s after it began (seed 3), a whole
    server moved for one camera the spare cannot record either (docs/status.md). Stalled: 4-5.5 s,
    noticed after the soak site's `stall_seconds` (3 s; run.short_stall); the same session goes on
    when frames return, so the key is gone for 2.5 s at most."""
    assert site.sim is not None
    server = rng.choice(list(site.servers))
    camera = rng.choice(site.cameras[server])
    low, high = (1.5, 3.0) if kind == "camera_silent" else (4.0, 5.5)
    seconds = round(rng.uniform(low, high), 1)
    record = FaultRecord(kind, camera, now_us())
    if kind == "camera_silent":
        site.sim.offline(site.sim_camera(camera), seconds)
    else:
        site.sim.stall(site.sim_camera(camera), seconds)
    dropped = False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            dropped = dropped or not site.alive(server)
        except EtcdUnavailableError:
            pass  # the soak's own read; the nodes' view is what counts
        time.sleep(0.2)
    record.healed_us = now_us()
    record.note = f"{seconds} s; {server}'s alive key {'dropped' if dropped else 'kept'}"
    return record


def camera_silent(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A camera unplugged for 1.5-3 s: connections dropped, new ones refused (503)."""
    return _camera_fault(site, rng, "camera_silent")


def camera_stall(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A camera whose sessions stay open on RTCP alone for 4-5.5 s, no video (a hung encoder)."""
    return _camera_fault(site, rng, "camera_stall")


def camera_restart(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A camera restarts its stream. Two times in three inside the session (an encoder restart:
    new random RTP timestamp and sequence bases from its next keyframe, every other time a new
    SSRC too, every other time a sequence base below the last one): over TCP the recorders end
    the run at the last frame and record on as a new run, timed by the new sender reports; over
    UDP (`--hosts netns`) a base below leaves FFmpeg dropping every packet as too late, and the
    recorders end that session and reconnect (docs/recorder.md, *Camera faults*). Else a reboot:
    connections dropped, refused for 0.5-1.5 s."""
    assert site.sim is not None
    server = rng.choice(list(site.servers))
    camera = rng.choice(site.cameras[server])
    record = FaultRecord("camera_restart", camera, now_us())
    in_session = rng.random() < 2 / 3
    if in_session:
        new_ssrc = rng.random() < 0.5
        seq_below = rng.random() < 0.5
        site.sim.restart_stream(site.sim_camera(camera), new_ssrc=new_ssrc, seq_below=seq_below)
        time.sleep(GOP_S + 2.0)  # the next keyframe, and a sender report about the new times
        record.note = (f"in session{', new SSRC' if new_ssrc else ''}"
                       f"{', sequence numbers below' if seq_below else ''}")
    else:
        down_s = round(rng.uniform(0.5, 1.5), 1)
        site.sim.restart_stream(site.sim_camera(camera), close=True, down_s=down_s)
        time.sleep(down_s + GOP_S + 1.0)
        record.note = f"connections dropped, back after {down_s} s"
    record.healed_us = now_us()
    return record


def camera_resolution(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A camera changes its picture size mid-stream (320x240 <-> 640x360), same session, new
    SPS/PPS at its next keyframe: a new segment with a new init section, no frame lost."""
    assert site.sim is not None
    server = rng.choice(list(site.servers))
    camera = rng.choice(site.cameras[server])
    sim_camera = site.sim_camera(camera)
    now = site.sim.camera_status(sim_camera)
    size = (640, 360) if (now["width"], now["height"]) == (320, 240) else (320, 240)
    record = FaultRecord("camera_resolution", camera, now_us())
    site.sim.change_resolution(sim_camera, *size)
    time.sleep(GOP_S + 1.0)
    record.healed_us = now_us()
    record.note = f"{now['width']}x{now['height']} -> {size[0]}x{size[1]}"
    return record


# Each kind with its weight, and whether a claim is the expected reaction (True), forbidden
# (False: a claim would be a false failover), or either (None).
FAULTS: dict[str, tuple[Fault, float, bool | None]] = {
    "kill_server": (kill_server, 3.0, True),  # also draws the master (rec-1): kill_master
    "freeze_server": (freeze_server, 2.0, True),
    "kill_covering_spare": (kill_covering_spare, 1.0, True),
    "restart_mid_reinsert": (restart_mid_reinsert, 1.5, True),
    "freeze_idle_spare": (freeze_idle_spare, 1.0, False),
    "kill_etcd_member": (kill_etcd_member, 1.0, False),
    "freeze_etcd_member": (freeze_etcd_member, 1.0, False),
    "camera_silent": (camera_silent, 1.0, False),
    "camera_stall": (camera_stall, 1.0, False),
    "camera_restart": (camera_restart, 1.0, False),
    "camera_resolution": (camera_resolution, 1.0, False),
}

# Video a camera may lose to one fault, in seconds of capture time, by protection mode. Standard:
# detection (≤ lease + probe) plus the spare's start and one GOP, twice when the covering spare
# dies too. Gapless: nothing, also when the covering spare dies or the server dies again during
# the re-insert (a backup standby; standby sessions kept through the re-insert: docs/failover.md,
# "Double failures").
# A camera fault loses nothing the camera did not send (its frames are logged not delivered);
# of what it sends when it is back, the reconnect (≤ reconnect_max_seconds, 1 s), the open and
# the wait for a keyframe (one GOP), in either mode, and only for the faulty camera.
STANDARD_BOUND_S = 3.5
CAMERA_BOUND_S = 1.0 + 0.5 + GOP_S + 0.5
# A restart inside the session costs at most a frame over TCP (the recorder goes on at the
# restart's keyframe; FFmpeg's sequence probation costs the frame before it); over UDP, with a
# sequence base below the last one, the stuck session's end (≈ 0.4 s at the site's 300 kbit/s),
# an immediate reconnect, its open and the wait for a keyframe: up to a GOP and a frame, within
# what camera_silent may cost. A reboot's dropped connection, or a new SSRC whose BYE for the old
# one makes FFmpeg end the stream, costs what camera_silent does.
RESTART_BOUND_S = CAMERA_BOUND_S
LOSS_BOUND_S: dict[str, dict[str, float]] = {
    "kill_server": {"standard": STANDARD_BOUND_S, "gapless": 0.0},
    "kill_master": {"standard": STANDARD_BOUND_S, "gapless": 0.0},
    "freeze_server": {"standard": STANDARD_BOUND_S + 1.0, "gapless": 0.0},
    "kill_covering_spare": {"standard": 2 * STANDARD_BOUND_S, "gapless": 0.0},
    "restart_mid_reinsert": {"standard": 2 * STANDARD_BOUND_S, "gapless": 0.0},
    "freeze_idle_spare": {"standard": 0.0, "gapless": 0.0},
    "kill_etcd_member": {"standard": 0.0, "gapless": 0.0},
    "freeze_etcd_member": {"standard": 0.0, "gapless": 0.0},
    "camera_silent": {"standard": CAMERA_BOUND_S, "gapless": CAMERA_BOUND_S},
    "camera_stall": {"standard": CAMERA_BOUND_S, "gapless": CAMERA_BOUND_S},
    "camera_restart": {"standard": RESTART_BOUND_S, "gapless": RESTART_BOUND_S},
    "camera_resolution": {"standard": 0.0, "gapless": 0.0},
}


CAMERA_KINDS = {"camera_silent", "camera_stall", "camera_restart", "camera_resolution"}
"""Kinds whose record's target is the camera."""


def draw(rng: random.Random,
         faults: dict[str, tuple[Fault, float, bool | None]] | None = None) -> str:
    """A kind by weight from `faults` (default: FAULTS, the kinds every site can have)."""
    faults = FAULTS if faults is None else faults
    kinds = list(faults)
    return rng.choices(kinds, weights=[faults[k][1] for k in kinds])[0]
