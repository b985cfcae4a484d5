"""What a test does when a tool it needs (etcd, GStreamer's RTSP server, chromium) is missing.

On a developer's machine the test is skipped, loudly: the reason starts with MISSING PREREQUISITE
and tests/conftest.py repeats every such reason in a banner at the end of the run, so a green run
that silently tested nothing end to end cannot pass unnoticed. Under CI (`CI` set to true, as CI
services and .ci/run do) the test fails instead: `scripts/test` installs every prerequisite, so a
missing one there is a broken setup, and skipping would report a pass for tests that never ran.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import NoReturn

import pytest

__all__ = ["SKIP_PREFIX", "in_ci", "missing_prerequisite", "prerequisite_skips"]

SKIP_PREFIX = "MISSING PREREQUISITE: "


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """True when `CI` says this is a CI run (`true`, `1` or `yes`, any case)."""
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() in {"true", "1", "yes"}


def missing_prerequisite(reason: str, environ: Mapping[str, str] | None = None) -> NoReturn:
    """Fail the calling test under CI, skip it (with SKIP_PREFIX, for the banner) otherwise."""
    if in_ci(environ):
        pytest.fail(
            f"{reason}\n(CI is set: a missing prerequisite fails the run instead of skipping "
            "the end-to-end tests; scripts/setup --test installs it)",
            pytrace=False,
        )
    pytest.skip(SKIP_PREFIX + reason)


def prerequisite_skips(skipped: Iterable[object]) -> Counter[str]:
    """First line of each missing-prerequisite reason → how many of these skip reports carry it.

    `skipped` are pytest's reports of skipped tests (the terminal reporter's `stats["skipped"]`),
    whose `longrepr` is (path, line, "Skipped: <reason>"); other skips are left out.
    """
    reasons: Counter[str] = Counter()
    for report in skipped:
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            text = str(longrepr[2]).removeprefix("Skipped: ")
            if text.startswith(SKIP_PREFIX):
                reason = text.removeprefix(SKIP_PREFIX).strip()
                reasons[reason.splitlines()[0] if reason else reason] += 1
    return reasons
