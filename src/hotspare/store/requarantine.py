"""Give quarantined segment files another chance (`hotspare store reindex-quarantine`).

Reconcile moves a file to `quarantine/` when it cannot index it, and nothing moves it back: a good
segment quarantined by an older hotspare because its row could not be written (a full disk) stays
off the timeline for good. This puts every quarantined file whose place under `segments/` is free
back there and opens the store, so that reconcile decides again with the same rules: a file of one
of the store's own runs is indexed, anything else goes back to `quarantine/` under the same name.
Nothing is deleted.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from hotspare.store import layout
from hotspare.store.lockfile import LOCK_NAME, StoreLock
from hotspare.store.reconcile import ReconcileReport
from hotspare.store.segment_store import SegmentStore

log = logging.getLogger(__name__)


@dataclass
class RequarantineReport:
    root: Path
    moved_back: int = 0
    kept: list[str] = field(default_factory=list)  # quarantined files left where they are, why
    reconcile: ReconcileReport | None = None

    @property
    def indexed(self) -> int:
        return self.reconcile.salvaged if self.reconcile is not None else 0

    @property
    def quarantined_again(self) -> int:
        return self.reconcile.quarantined if self.reconcile is not None else 0

    def lines(self) -> list[str]:
        out = [f"kept in quarantine: {k}" for k in self.kept]
        if self.reconcile is not None:
            out += [f"reconcile: {m}" for m in self.reconcile.messages]
        out.append(f"{self.root}: {self.moved_back} quarantined file(s) tried again: "
                   f"{self.indexed} indexed, {self.quarantined_again} back in quarantine "
                   "(see the reasons above), "
                   f"{len(self.kept)} left in quarantine untried")
        return out


def _created_by(root: Path) -> str:
    uri = (root / layout.INDEX_NAME).resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    try:
        return str(conn.execute("select created_by from meta where id = 1").fetchone()[0])
    finally:
        conn.close()


def _indexed_relpaths(root: Path) -> set[str]:
    uri = (root / layout.INDEX_NAME).resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("select relpath from segment")}
    finally:
        conn.close()


def reindex_quarantine(root: Path, server_name: str | None = None) -> RequarantineReport:
    """Move quarantined files back and let reconcile index what it can (the node must be stopped:
    the store's lock is taken, StoreLocked is raised while a node holds it)."""
    report = RequarantineReport(root)
    name = server_name or _created_by(root)
    lock = StoreLock.acquire(root / LOCK_NAME)
    try:
        indexed = _indexed_relpaths(root)
        qroot = root / layout.QUARANTINE_DIR
        for path in sorted(qroot.rglob("*")) if qroot.is_dir() else []:
            if not path.is_file():
                continue
            inside = path.relative_to(qroot).as_posix()
            base = inside.split(".~")[0]  # reconcile adds .~N when the name is taken
            relpath = f"{layout.SEGMENTS_DIR}/{base}"
            if layout.parse_relpath(relpath) is None:
                report.kept.append(f"{layout.QUARANTINE_DIR}/{inside}: not a segment file name")
                continue
            target = layout.to_path(root, relpath)
            if relpath in indexed or target.exists():
                report.kept.append(f"{layout.QUARANTINE_DIR}/{inside}: {relpath} is taken "
                                   "(indexed or present); compare the two by hand")
                continue
            layout.make_dirs_durable(root, target.parent)
            os.replace(path, target)
            layout.fsync_dir(target.parent)
            layout.fsync_dir(path.parent)
            report.moved_back += 1
    finally:
        lock.release()
    if report.moved_back:
        with SegmentStore.open(root, name) as store:
            report.reconcile = store.last_reconcile
    return report
