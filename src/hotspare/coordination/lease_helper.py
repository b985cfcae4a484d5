"""The lease keeper process: keeps a node's leases alive while the node beats its heartbeat.

Started by the node (`lease_process.LeaseProcess`) as
`python -m hotspare.coordination.lease_helper`. It reads one JSON line of connection settings,
then commands (`keep`, `stop`) from stdin, and writes messages (`ready`, `log`, `lost`,
`stopped`) to stdout. Each lease is kept by the same `LeaseKeeper` a node runs in a thread
(hedging, doubt, etcd's verdict), here with a GIL of its own; what it learns goes on the shared
page (`lease_page`). A node silent for a TTL that has not run meanwhile (stopped, frozen: its
CPU time did not grow), or silent for `STARVED_FRACTION` TTLs whatever it did, has its leases
revoked; a node gone (stdin closed) leaves its leases to expire on their TTL.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from hotspare.coordination.etcd_adapter import Coordinator, LeaseKeeper
from hotspare.coordination.lease_page import (
    DOUBT_SINCE,
    DOUBTS,
    EXPIRES,
    KEEPING,
    SILENCE_FRACTION,
    STARVED_FRACTION,
    STATE,
    Page,
)
from hotspare.coordination.models import Lease
from hotspare.coordination.process_cpu import cpu_seconds

log = logging.getLogger("hotspare.coordination.lease_helper")

class _Helper:
    """The helper's side: keeps the leases it is handed while the node beats."""

    def __init__(self, out: IO[bytes], config: dict[str, Any]) -> None:
        self._out = out
        self._out_lock = threading.Lock()
        self.page = Page.open(Path(config["page"]))
        self.coordinator = Coordinator.from_spawn_settings(config)
        self.node_pid = int(config["node_pid"])
        self.keepers: dict[int, tuple[int, LeaseKeeper]] = {}  # slot: (generation, keeper)
        self.lock = threading.Lock()
        self._watch = threading.Thread(target=self._watch_heartbeat, daemon=True,
                                       name="lease-helper-heartbeat")
        self._watch.start()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode("utf-8") + b"\n"
        with self._out_lock:
            try:
                self._out.write(data)
                self._out.flush()
            except (OSError, ValueError):
                pass  # the node is gone; stdin's end stops us

    def keep(self, slot: int, gen: int, lease: Lease, granted_at: float, role: str) -> None:
        keeper = LeaseKeeper(self.coordinator, lease, granted_at=granted_at, role=role,
                             hedges=self.coordinator.hedges,
                             on_change=lambda: self._publish(slot, gen))
        with self.lock:
            self.keepers[slot] = (gen, keeper)
        keeper.start()

    def _publish(self, slot: int, gen: int) -> None:
        """The keeper's news onto the page, while the slot is still its lease's."""
        with self.lock:
            held = self.keepers.get(slot)
            if held is None or held[0] != gen or self.page.field(slot, STATE) != KEEPING:
                return
            keeper = held[1]
            if keeper.lost.is_set():
                self.page.mark_lost(slot, keeper.lost_reason or "lost")
                self.send({"op": "lost", "slot": slot, "gen": gen})
                return
            since = keeper.doubt_since
            self.page.set_field(slot, DOUBT_SINCE, 0.0 if since is None else since)
            self.page.set_field(slot, DOUBTS, float(keeper.doubts))
            self.page.set_field(slot, EXPIRES, keeper.expires_at)

    def _let_go(self, slot: int, gen: int, keeper: LeaseKeeper, *, revoke: bool) -> None:
        """Off the page at once (`stopped`); the keeper's thread is stopped, and the lease
        revoked, in the background: the next `keep` must not wait behind a slow etcd."""
        self.send({"op": "stopped", "slot": slot, "gen": gen})
        threading.Thread(target=keeper.stop, kwargs={"revoke": revoke}, daemon=True,
                         name=f"lease-{keeper.id:x}-stop").start()

    def stop(self, slot: int, gen: int) -> None:
        with self.lock:
            held = self.keepers.get(slot)
            if held is None or held[0] != gen:
                held = None
            else:
                del self.keepers[slot]
        if held is not None:
            self._let_go(slot, gen, held[1], revoke=False)

    def _watch_heartbeat(self) -> None:
        """Revoke the leases of a node silent for a TTL that has not run meanwhile, or for
        `STARVED_FRACTION` TTLs whatever it did."""
        ran_before: float | None = None  # the node's CPU seconds, while its heartbeat was fresh
        said_starved = False
        while True:
            time.sleep(0.05)
            try:
                ran_before, said_starved = self._watch_once(ran_before, said_starved)
            except Exception:  # the watch must not die: without it a hung node keeps its lease
                log.exception("the lease keeper process's heartbeat watch failed; retrying")

    def _watch_once(self, ran_before: float | None, said_starved: bool
                    ) -> tuple[float | None, bool]:
        """One look at the node's heartbeat; (the node's CPU seconds while it was last heard
        in time, whether its silence while running was already logged)."""
        self.page.helper_beat = time.monotonic()
        with self.lock:
            ttl = min((k.lease.ttl for _gen, k in self.keepers.values()), default=None)
        if ttl is None:
            return ran_before, said_starved
        silent = time.monotonic() - self.page.heartbeat
        if silent < ttl / 2:
            return cpu_seconds(self.node_pid), False
        if silent < SILENCE_FRACTION * ttl:
            return ran_before, said_starved
        ran_now = cpu_seconds(self.node_pid)
        running = ran_before is not None and ran_now is not None and ran_now > ran_before
        if running and silent < STARVED_FRACTION * ttl:
            if not said_starved:
                log.warning("the node's process has not beaten its heartbeat for %.1f s but is "
                            "running (short of CPU, or of its interpreter lock): its lease is "
                            "kept until it is silent for %.0f s", silent, STARVED_FRACTION * ttl)
            return ran_before, True
        self._revoke_all(silent, running)
        return ran_before, said_starved

    def _revoke_all(self, silent: float, running: bool) -> None:
        why = (f"the node's process was not heard from for {silent:.1f} s although it ran "
               "(a thread holding its interpreter lock?)" if running else
               f"the node's process was not heard from for {silent:.1f} s and did not run "
               "meanwhile (stopped or frozen)")
        with self.lock:
            late = [(slot, gen, k) for slot, (gen, k) in self.keepers.items()
                    if self.page.field(slot, STATE) == KEEPING]
            for slot, _gen, _keeper in late:
                # Marked lost before the revoke: the node never relies on it afterwards.
                self.page.mark_lost(slot, f"{why}, so its lease keeper revoked the lease for a "
                                    "spare to act")
                del self.keepers[slot]
        for slot, gen, keeper in late:
            log.warning("lease %x (%s) revoked: %s; a spare may take over", keeper.id,
                        keeper.role, why)
            self.send({"op": "lost", "slot": slot, "gen": gen})
            self._let_go(slot, gen, keeper, revoke=True)


class _ForwardLogs(logging.Handler):
    """The helper's log lines go to the node, which logs them in its own format."""

    def __init__(self, helper_send: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(logging.INFO)
        self._send = helper_send

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self._send({"op": "log", "level": record.levelno, "name": record.name,
                    "msg": f"lease keeper process: {text}"})


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but messages on the node's pipe
    first = stdin.readline()
    if not first:
        return 0
    helper = _Helper(stdout, json.loads(first))
    root = logging.getLogger()
    root.handlers[:] = [_ForwardLogs(helper.send)]
    root.setLevel(logging.INFO)
    helper.send({"op": "ready"})
    for line in stdin:
        message = json.loads(line)
        if message.get("op") == "keep":
            helper.keep(int(message["slot"]), int(message["gen"]),
                        Lease(int(message["lease"]), float(message["ttl"])),
                        float(message["granted_at"]), str(message.get("role", "node")))
        elif message.get("op") == "stop":
            helper.stop(int(message["slot"]), int(message["gen"]))
    # The node closed our stdin: it stopped us, or it died. Its leases are left to expire, and
    # nothing may run on (the heartbeat watch would revoke them) while the interpreter winds down.
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
