"""How much CPU another process of this machine has used: the lease keeper process's evidence
that a node which stopped beating its heartbeat is still running (short of CPU or of its
interpreter lock) rather than stopped or frozen."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid`, or None where this platform cannot tell
    (macOS and others) or the process is gone or stopped by a signal (Linux: state T or t)."""
    if sys.platform == "win32":
        return _windows(pid)
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        if fields[0] in ("T", "t", "Z", "X"):  # stopped, traced, or dead: not running now
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    _QUERY_LIMITED = 0x1000  # PROCESS_QUERY_LIMITED_INFORMATION

    def _windows(pid: int) -> float | None:
        try:
            return _process_times(pid)
        except (OSError, AttributeError, ValueError):
            return None

    def _process_times(pid: int) -> float | None:
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(_QUERY_LIMITED, False, pid)
        if not handle:
            return None
        try:
            times = [wintypes.FILETIME() for _ in range(4)]  # creation, exit, kernel, user
            if not kernel32.GetProcessTimes(handle, *(ctypes.byref(t) for t in times)):
                return None
            return sum((t.dwHighDateTime << 32 | t.dwLowDateTime) for t in times[2:]) / 1e7
        finally:
            kernel32.CloseHandle(handle)
