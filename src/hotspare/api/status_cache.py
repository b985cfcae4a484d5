"""The master's status answer, kept while the keys and the configuration it is built from stay.

`GET /site/servers` is what every open web UI asks again and again. At 200 servers and 10 000
cameras building it costs tens of milliseconds of CPU (the protection report, the view), and on a
loaded master far more, while the keys it is built from change much less often than etcd's
revision, which every watermark and event write moves. So a built view is kept per snapshot
content (`SiteState.fingerprint`) and configuration, for at most `MAX_AGE_SECONDS`: the protection
report also depends on the time (licences expire), so nothing older is served.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

MAX_AGE_SECONDS = 1.0


class StatusCache:
    """One built view and what it was built from. Two requests that miss at once both build
    (the same answer); neither waits for the other."""

    def __init__(self, max_age: float = MAX_AGE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._entry: tuple[Hashable, float, dict[str, Any]] | None = None

    def get(self, key: Hashable, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            entry = self._entry
        if entry is not None and entry[0] == key and now - entry[1] < self._max_age:
            return entry[2]
        view = build()
        with self._lock:
            self._entry = (key, now, view)
        return view
