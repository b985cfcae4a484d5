"""The real browser the UI tests drive: Debian's Chromium through Playwright, or a clear reason
why the test cannot run (a missing prerequisite fails under CI, skips elsewhere)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support.prerequisites import missing_prerequisite

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def playwright_sync_api() -> ModuleType:
    """Playwright's sync API, once both it and Chromium are known to be installed."""
    try:
        from playwright import sync_api
    except ImportError:
        missing_prerequisite("playwright is not installed (scripts/setup --test installs it)")
    if not CHROMIUM.exists():
        missing_prerequisite(f"Debian's chromium ({CHROMIUM}) is not installed "
                             "(scripts/setup --test installs it)")
    return sync_api


def wait_tile_plays(page: Any, camera: str, timeout: float = 20_000) -> None:
    """The grid tile showing `camera` is live and its picture moves (currentTime advances)."""
    video = f'.tile[data-camera="{camera}"][data-status="live"] video'
    page.wait_for_selector(video, timeout=timeout)
    start = page.eval_on_selector(video, "v => v.currentTime")
    page.wait_for_function(
        "([sel, t]) => { const v = document.querySelector(sel); "
        "return v && v.currentTime > t + 1; }", arg=[video, start], timeout=timeout)
