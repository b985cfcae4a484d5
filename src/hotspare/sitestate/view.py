"""A node's live copy of the site configuration: read from etcd, refreshed on change, cached.

Watches only wake the reload (level-triggered): the reload re-reads `config/site` whole. The last
good copy is cached in the data dir so a recording server can start and record from it while etcd
is unreachable (design decision 6, docs/design.md: never stop recording because etcd is gone).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import ChangeType, WatchBatch
from hotspare.site.load import SiteConfigError, load_site_licences
from hotspare.sitestate import applied as site_config
from hotspare.sitestate import layout
from hotspare.sitestate.applied import AppliedSite

log = logging.getLogger("hotspare.sitestate.view")


class SiteView:
    def __init__(self, coord: Coordinator, cache: Path, refresh: float = 5.0) -> None:
        self.coord = coord
        self.cache = cache
        self.refresh = refresh
        self._current: AppliedSite | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[AppliedSite], None]] = []
        self._last_read = 0.0

    @property
    def current(self) -> AppliedSite | None:
        with self._lock:
            return self._current

    def on_change(self, listener: Callable[[AppliedSite], None]) -> None:
        self._listeners.append(listener)

    def load_initial(self, wait: float) -> AppliedSite | None:
        """From etcd (retrying up to `wait` s), else from the cache; None if neither has one."""
        deadline = time.monotonic() + wait
        while True:
            try:
                if self.reload():
                    return self.current
                if time.monotonic() > deadline:
                    return None
            except (CoordinationError, SiteConfigError) as exc:
                if time.monotonic() > deadline:
                    log.warning("site configuration not readable from etcd (%s); "
                                "using the cached copy %s", exc, self.cache)
                    return self._load_cache()
            time.sleep(0.5)

    def _load_cache(self) -> AppliedSite | None:
        try:
            config = site_config.decode(self.cache.read_text(encoding="utf-8"), str(self.cache))
        except (OSError, SiteConfigError):
            return None
        applied = AppliedSite(config, 0, load_site_licences(config, datetime.now(UTC)))
        with self._lock:
            self._current = applied
        return applied

    def reload(self) -> bool:
        """Re-read; tell listeners when the revision changed. True when a configuration exists."""
        applied = site_config.read(self.coord, self.current)
        self._last_read = time.monotonic()
        if applied is None:
            return False
        self._take(applied)
        return True

    def _take(self, applied: AppliedSite) -> None:
        with self._lock:
            if self._current is not None and self._current.mod_revision > applied.mod_revision:
                return  # a watch event older than what a read already gave: never go back
            changed = self._current is None or self._current.mod_revision != applied.mod_revision
            self._current = applied
        if changed:
            self._write_cache(applied)
            for listener in self._listeners:
                try:
                    listener(applied)
                except Exception:
                    log.exception("site configuration listener failed")

    def maybe_reload(self) -> None:
        if time.monotonic() - self._last_read >= self.refresh:
            try:
                self.reload()
            except (CoordinationError, SiteConfigError) as exc:
                log.warning("site configuration not refreshed: %s", exc)

    def wake(self, batch: WatchBatch) -> None:
        """A change event carries the new value: taken as it is, not read again (each node
        re-reading the ~1 MB document doubled what a change cost etcd). A deletion or a resync
        reads."""
        mine = [c for c in batch.changes if c.kv.key == layout.SITE_CONFIG]
        try:
            if mine and mine[-1].type is ChangeType.PUT:
                self._take(site_config.from_stored(mine[-1].kv, self.current))
            else:
                self.reload()
        except (CoordinationError, SiteConfigError) as exc:
            log.warning("site configuration not reloaded: %s", exc)

    def watch(self) -> None:
        """From just after the copy we hold: without a revision the watch first reads the whole
        prefix to learn one, a second full read of the configuration (1 MB at 10 000 cameras) at
        every node's start, which timed out on a loaded site (bench/site_scale)."""
        current = self.current
        after = current.mod_revision + 1 if current is not None and current.mod_revision else None
        self.coord.watch_prefix(layout.CONFIG_PREFIX, self.wake, from_revision=after)

    def _write_cache(self, applied: AppliedSite) -> None:
        try:
            tmp = self.cache.with_suffix(".tmp")
            tmp.write_text(site_config.encode(applied.config), encoding="utf-8")
            os.replace(tmp, self.cache)
        except OSError as exc:
            log.warning("site cache %s not written: %s", self.cache, exc)
