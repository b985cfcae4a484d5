"""Segment files on local disk plus their SQLite index (docs/store.md)."""

from hotspare.store.importer import ImportMeta, ImportRejected, ImportResult
from hotspare.store.models import TICKS_PER_SECOND, RunInfo, SegmentInfo, WallSource
from hotspare.store.parts import StoreError
from hotspare.store.reconcile import ReconcileReport
from hotspare.store.retention import RetentionReport
from hotspare.store.segment_store import SegmentStore
from hotspare.store.timeline import Gap, Timeline, TimelineSpan

__all__ = [
    "TICKS_PER_SECOND",
    "Gap",
    "ImportMeta",
    "ImportRejected",
    "ImportResult",
    "ReconcileReport",
    "RetentionReport",
    "RunInfo",
    "SegmentInfo",
    "SegmentStore",
    "StoreError",
    "Timeline",
    "TimelineSpan",
    "WallSource",
]
