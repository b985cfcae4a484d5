"""Ending one camera's blocked FFmpeg read from another thread, at no cost per packet.

Why: over RTSP/UDP, FFmpeg's RTP reorder logic drops every packet whose sequence number reads as
older than the last one it handed over. A camera that restarts its stream with a new sequence base
below the old one (about half of all restarts) then gets every packet dropped for minutes, while
RTCP keeps the sockets busy: FFmpeg's socket timeout never fires, no packet comes out, and the
demux thread stays inside FFmpeg's read (docs/recorder.md, *Camera faults*).

FFmpeg ends a read only through its interrupt callback. PyAV installs one when `av.open` is given
a timeout; with a *read* timeout the callback takes the GIL on every check (several per RTP packet:
costly at many cameras, `bench/recording --variants pyav-demux-udp-pyavtimeout`). With an *open*
timeout only, the callback sees a negative timeout during reads and returns at once, without the
GIL. `open_interruptible` opens that way, and `ReadInterrupt.fire` sets the timeout field to 0 so
that the callback's next check (FFmpeg checks on every poll, at least every 100 ms) ends the read
with `av.ExitError`.

The field is PyAV's private per-container `timeout_info`, written through ctypes. It is found by
the values next to it (the open-timeout object, then None as the read timeout) and taken only if
it holds what it must after an open (timeout -1, a start time inside the open); otherwise nothing
is ever written and reads cannot be interrupted (`open_interruptible` returns None for it, and the
worker says so once). `tests/unit/test_read_interrupt.py` checks this against the installed PyAV.
"""

from __future__ import annotations

import ctypes
import struct
import time
from collections.abc import Mapping

import av
import av.container

_POINTER = struct.Struct("P")
_NO_TIMEOUT = -1.0  # PyAV's value for "no timeout" (the callback then skips the GIL)


class ReadInterrupt:
    """Ends the container's current (or next) read with `av.ExitError`. Keeps the container
    alive, so the field written always belongs to a live object."""

    def __init__(self, container: av.container.InputContainer, address: int) -> None:
        self._container = container
        self._timeout = ctypes.c_double.from_address(address)
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        self._timeout.value = 0.0


def open_interruptible(url: str, options: Mapping[str, str], open_timeout_s: float
                       ) -> tuple[av.container.InputContainer, ReadInterrupt | None]:
    """`av.open(url, options=options)` with PyAV's interrupt callback installed but idle during
    reads. `open_timeout_s` bounds the whole open (PyAV's clock): keep it above FFmpeg's own
    socket timeout so that the socket timeout, with its clearer error, fires first."""
    # A float object of our own: its address, stored in the container, marks the field.
    marker: float = struct.unpack("d", struct.pack("d", open_timeout_s))[0]
    started = time.monotonic()
    container = av.open(url, options=dict(options), timeout=(marker, None))
    return container, _find(container, marker, started, time.monotonic())


def _find(container: av.container.InputContainer, marker: float, started: float,
          ended: float) -> ReadInterrupt | None:
    base = id(container)
    size = type(container).__basicsize__
    raw = ctypes.string_at(base, size)
    pattern = _POINTER.pack(id(marker)) + _POINTER.pack(id(None))
    at = raw.find(pattern)
    while at >= 0 and at % _POINTER.size:
        at = raw.find(pattern, at + 1)
    if at < 0:
        return None
    field = at + len(pattern)
    field += -field % 8  # a struct of two doubles
    if field + 16 > size:
        return None
    start_time, timeout = struct.unpack_from("dd", raw, field)
    if timeout != _NO_TIMEOUT or not started <= start_time <= ended:
        return None
    return ReadInterrupt(container, base + field + 8)
