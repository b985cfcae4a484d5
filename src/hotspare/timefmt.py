"""Wall-clock time as the API and the CLI spell it.

The API speaks microseconds since the Unix epoch (UTC), like the store, so machines never lose
precision; people type ISO-8601 or "10 minutes ago". Both parse here, without FastAPI, so the CLI
stays quick to start and the server and client can never disagree about a format. A module of its
own, below the API, the client and the CLI alike, so none of them imports another for it.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

# Years 1970..9999: every value fits SQLite's int64 and datetime; nothing downstream overflows.
MIN_WALL_US = 0
MAX_WALL_US = 253_402_300_799_999_999

_RELATIVE_RE = re.compile(r"^-(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


class TimeFormatError(ValueError):
    """A time the operator typed that we can't read; the message says what would be accepted."""


def wall_now_us() -> int:
    return time.time_ns() // 1000


def _check_range(value: int, text: str) -> int:
    if not MIN_WALL_US <= value <= MAX_WALL_US:
        raise TimeFormatError(f"time {text!r} is outside 1970-01-01 .. 9999-12-31")
    return value


def datetime_to_wall_us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def wall_us_to_datetime(wall_us: int) -> datetime:
    # timedelta arithmetic is exact for every µs value; fromtimestamp goes through a float.
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=wall_us)


def format_wall_us(wall_us: int, *, millis: bool = True) -> str:
    """ISO-8601 UTC with a `Z`, the form HLS's PROGRAM-DATE-TIME and JSON readers both accept."""
    moment = wall_us_to_datetime(wall_us)
    spec = "milliseconds" if millis else "microseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_wall_time(text: str, *, naive_is_local: bool = False, now_us: int | None = None) -> int:
    """Read integer µs since the epoch, ISO-8601, or (CLI only, when `now_us` is given) `-10m`.

    A naive ISO time is refused unless `naive_is_local`: on a server, guessing a zone would silently
    shift an operator's request by hours; the CLI knows the operator's own zone and may assume it.
    """
    text = text.strip()
    if not text:
        raise TimeFormatError("empty time; give microseconds since the epoch or ISO-8601")
    # isascii: str.isdigit() is also true for '²' or '٣', which int() refuses or reads as
    # digits — found by fuzzing the API (a 500 for `?from=²`). Only 0-9 make a µs time.
    if text.isascii() and text.isdigit():
        if len(text) > 18:
            raise TimeFormatError(f"time {text!r} is too large for microseconds since the epoch")
        return _check_range(int(text), text)
    if now_us is not None:
        if text == "now":
            return now_us
        match = _RELATIVE_RE.fullmatch(text)
        if match:
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            return _check_range(now_us - round(seconds * 1_000_000), text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        relative_hint = ", or relative like -10m, -2h, -1d" if now_us is not None else ""
        raise TimeFormatError(
            f"can't read time {text!r}: give microseconds since the epoch (e.g. 1764104400000000)"
            f" or ISO-8601 with a zone (e.g. 2026-11-25T21:00:00Z){relative_hint}"
        ) from None
    if moment.tzinfo is None:
        if not naive_is_local:
            raise TimeFormatError(
                f"time {text!r} has no zone: add 'Z' for UTC or an offset like +01:00"
            )
        moment = moment.astimezone()  # the machine's local zone
    return _check_range(datetime_to_wall_us(moment), text)
