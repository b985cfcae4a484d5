"""The loop every failover agent runs: tick, survive any failure, wait for the interval or a wake.

Agents are level-triggered (each tick re-reads what it needs), so a failed tick loses nothing: the
next one redoes it. etcd being away is expected and logged as a warning; anything else is a bug,
logged with its traceback — neither may end the loop, or the node would silently stop failing over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hotspare.coordination.errors import CoordinationError


def run_ticks(tick: Callable[[], bool | None], stop: threading.Event, wake: threading.Event,
              interval: float, log: logging.Logger, what: str) -> None:
    """Call `tick` until `stop` is set; a tick returning True has more to do and goes on at once.

    `what` names the work in the log (e.g. "liveness; recording continues")."""
    while not stop.is_set():
        busy = False
        try:
            busy = bool(tick())
        except CoordinationError as exc:
            log.warning("%s: etcd unavailable (%s)", what, exc)
        except Exception:
            log.exception("%s: tick failed", what)
        if not busy:
            wake.wait(interval)
            wake.clear()
