"""What the etcd members cost and serve, read from their own `/metrics` and from `/proc`.

Requests are gRPC calls handled (`grpc_server_handled_total`: the HTTP gateway the adapter speaks
forwards every call to the member's gRPC server, so each JSON request counts once); bytes sent to
clients show what the snapshot reads weigh; watchers and watch streams are the fan-out.
"""

from __future__ import annotations

import re
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from bench.common import cpu_seconds, rss_bytes

_LINE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN|\+Inf)$")
_METHOD = re.compile(r'grpc_method="(\w+)"')
BY_METHOD = "requests:"

COUNTERS = {
    "requests": "grpc_server_handled_total",
    "sent_bytes": "etcd_network_client_grpc_sent_bytes_total",
    "received_bytes": "etcd_network_client_grpc_received_bytes_total",
    "proposals": "etcd_server_proposals_committed_total",
}
GAUGES = {
    "watchers": "etcd_debugging_mvcc_watcher_total",
    "watch_streams": "etcd_debugging_mvcc_watch_stream_total",
    "slow_watchers": "etcd_debugging_mvcc_slow_watcher_total",
    "db_bytes": "etcd_mvcc_db_total_size_in_bytes",
    "keys": "etcd_debugging_mvcc_keys_total",
}


def metrics(client_url: str, context: ssl.SSLContext | None = None,
            timeout: float = 5.0) -> dict[str, float]:
    """Each metric summed over its labels; and the requests per gRPC method, as
    `requests:<Method>` (which calls make the load: keepalives, reads, writes, watches)."""
    with urllib.request.urlopen(client_url.rstrip("/") + "/metrics", timeout=timeout,
                                context=context) as reply:
        text = reply.read().decode()
    sums: dict[str, float] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            try:
                value = float(match.group(3))
            except ValueError:
                continue
            sums[match.group(1)] = sums.get(match.group(1), 0.0) + value
            method = _METHOD.search(match.group(2) or "")
            if match.group(1) == COUNTERS["requests"] and method:
                key = BY_METHOD + method.group(1)
                sums[key] = sums.get(key, 0.0) + value
    return sums


@dataclass
class Sample:
    """One reading of every member: metrics and CPU seconds, by member name."""

    metrics: dict[str, dict[str, float]]
    cpu: dict[str, float]
    rss: dict[str, int]


def sample(members: Mapping[str, tuple[str, int]], context: ssl.SSLContext | None) -> Sample:
    """`members`: name -> (client URL, pid); `context`: the client TLS when etcd demands it."""
    return Sample(
        metrics={name: metrics(url, context) for name, (url, _pid) in members.items()},
        cpu={name: cpu_seconds(pid) for name, (_url, pid) in members.items()},
        rss={name: rss_bytes(pid) for name, (_url, pid) in members.items()},
    )


def rates(before: Sample, after: Sample, seconds: float) -> dict[str, object]:
    """Per member and summed: counters per second, CPU fraction, gauges and RSS at the end."""
    per_member: dict[str, dict[str, float]] = {}
    for name in after.metrics:
        row: dict[str, float] = {}
        for short, metric in COUNTERS.items():
            delta = after.metrics[name].get(metric, 0.0) - before.metrics[name].get(metric, 0.0)
            row[f"{short}_per_s"] = round(delta / seconds, 1)
        for short, metric in GAUGES.items():
            row[short] = after.metrics[name].get(metric, 0.0)
        row["cpu_fraction"] = round((after.cpu[name] - before.cpu[name]) / seconds, 3)
        row["rss_mb"] = round(after.rss[name] / 2**20, 1)
        per_member[name] = row
    total = {key: round(sum(m[key] for m in per_member.values()), 3)
             for key in next(iter(per_member.values()))}
    methods: dict[str, float] = {}
    for name, now in after.metrics.items():
        for key, value in now.items():
            if key.startswith(BY_METHOD):
                delta = value - before.metrics[name].get(key, 0.0)
                methods[key[len(BY_METHOD):]] = methods.get(key[len(BY_METHOD):], 0.0) + delta
    by_method = {m: round(v / seconds, 1) for m, v in sorted(methods.items()) if v > 0}
    return {"members": per_member, "total": total, "requests_by_method_per_s": by_method,
            "seconds": round(seconds, 2)}


def busiest(per_member: Mapping[str, Mapping[str, float]], key: str) -> float:
    return max(m[key] for m in per_member.values())

