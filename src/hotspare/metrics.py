"""Prometheus metrics of one node process.

Counters, histograms and the lease gauge are updated where the work happens (the recorder's
commit, the event log, the re-insert's acknowledgements, the lease keeper); per-camera state is
read from the health source at scrape time, so a scrape always shows the state of now rather than
of the last change. One registry per process: a node is one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

SEGMENT_COMMIT_SECONDS = Histogram(
    "hotspare_segment_commit_seconds",
    "Time to make a written segment durable and indexed (fsync file and folder, hash, row).",
    ["camera"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
SEGMENTS_COMMITTED = Counter(
    "hotspare_segments_committed", "Segments indexed by this node's recorder.", ["camera"],
    registry=REGISTRY,
)
BYTES_COMMITTED = Counter(
    "hotspare_segment_bytes_committed", "Bytes of segments indexed by this node's recorder.",
    ["camera"], registry=REGISTRY,
)
EVENTS = Counter(
    "hotspare_events", "Site events this node emitted, by kind (claimed = takeovers won, "
    "done = re-inserts completed, refused = takeovers refused, ...).", ["kind"],
    registry=REGISTRY,
)
TAKEOVERS = Counter(
    "hotspare_takeovers", "Steps of takeovers this node took part in, by event kind and the "
    "recording server concerned (claimed = takeover won, handback, done = re-insert complete, "
    "stood_down, lost_claim, refused).", ["kind", "server"], registry=REGISTRY,
)
TAKEOVER_KINDS = frozenset({"claimed", "handback", "done", "stood_down", "lost_claim", "refused"})
"""The event kinds that mark a takeover's start or end; the others describe states on the way."""
REINSERT_BYTES = Counter(
    "hotspare_reinsert_bytes", "Bytes of segments this node re-inserted that a recording "
    "server's index acknowledged (duplicates included), by that server.", ["server"],
    registry=REGISTRY,
)
REINSERT_SEGMENTS = Counter(
    "hotspare_reinsert_segments", "Segments this node re-inserted that a recording server "
    "acknowledged, by that server and its answer (inserted, trimmed, duplicate).",
    ["server", "status"], registry=REGISTRY,
)
RETENTION_EARLY_DELETED = Counter(
    "hotspare_retention_early_deleted_segments", "Segments retention deleted to keep the "
    "minimum free space before max_age_days had passed (video the operator was promised), by "
    "camera.", ["camera"], registry=REGISTRY,
)
GAP_REPAIRED_FRAMES = Counter(
    "hotspare_gap_repaired_frames", "Frames this spare brought from its hot-standby pre-buffer "
    "into holes of a gapless camera's recording on its own server (gap repair), by server and "
    "camera.", ["server", "camera"], registry=REGISTRY,
)
GAP_UNREPAIRED_SECONDS = Counter(
    "hotspare_gap_unrepaired_seconds", "Seconds of holes in a gapless camera's recording on its "
    "own server that this spare found older than its pre-buffer (lost), by server and camera.",
    ["server", "camera"], registry=REGISTRY,
)
GAP_REPAIR_QUEUE_FULL = Counter(
    "hotspare_gap_repair_queue_full", "Holes this spare's gap repair found but could not queue "
    "for writing because its queue was full (each is looked for again a second later while its "
    "pre-buffer holds it), by server.", ["server"], registry=REGISTRY,
)
LEASE_HELD = Gauge(
    "hotspare_lease_held", "1 while this node holds its etcd lease (liveness or registration), "
    "0 once it is lost or given up, by the role the lease serves.", ["role"], registry=REGISTRY,
)

_STATES = ("recording", "connecting", "failing", "standby")


def _field(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)


class HealthCollector(Collector):
    """Cameras by state and age of the last frame, from the node's health source at scrape time."""

    def __init__(self, health: Callable[[], Mapping[str, Any]],
                 clock_us: Callable[[], int]) -> None:
        self._health = health
        self._clock_us = clock_us

    def collect(self) -> Iterable[Metric]:
        cameras = GaugeMetricFamily("hotspare_cameras", "Cameras this node records, by state.",
                                    labels=["state"])
        age = GaugeMetricFamily("hotspare_camera_last_frame_age_seconds",
                                "Seconds since the last frame was received, per camera.",
                                labels=["camera"])
        counts = dict.fromkeys(_STATES, 0)
        now = self._clock_us()
        for camera, entry in self._health().items():
            state = str(getattr(_field(entry, "state"), "value", _field(entry, "state")))
            counts[state] = counts.get(state, 0) + 1
            last = _field(entry, "last_frame_wall_us")
            if last:
                age.add_metric([camera], max(0.0, (now - int(last)) / 1e6))
        for state, count in counts.items():
            cameras.add_metric([state], count)
        yield cameras
        yield age


def exposition(health: Callable[[], Mapping[str, Any]], clock_us: Callable[[], int]) -> bytes:
    """The text format Prometheus scrapes: process-wide metrics plus the live camera states."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(HealthCollector(health, clock_us))
    return generate_latest(REGISTRY) + generate_latest(scrape)
