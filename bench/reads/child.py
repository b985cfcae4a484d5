"""One request against a node app over a synthetic store, in a process of its own, so its peak
RSS is the request's alone: `python bench/reads/child.py --src SRC --store DIR --path PATH`.

Prints one JSON line: status, seconds, bytes of the answer, RSS before and peak after. `--src`
picks which hotspare is measured (this tree's `src`, or a copy of an earlier one), so both run
the same store and the same request.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--server", default="rec-a")
    parser.add_argument("--camera", default="cam-1")
    parser.add_argument("--now-us", type=int, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(args.src.resolve()))

    from fastapi.testclient import TestClient

    from hotspare.api.app import create_app
    from hotspare.api.tokens import hash_token, new_token
    from hotspare.config.models import ApiUser
    from hotspare.store.db import Index
    from hotspare.store.lockfile import LOCK_NAME, StoreLock
    from hotspare.store.segment_store import SegmentStore

    root = args.store.resolve()
    # Opened without reconcile: the rows have no files, and listing is what is measured.
    store = SegmentStore(root, args.server, Index(root / "index.sqlite3"),
                         StoreLock.acquire(root / LOCK_NAME))
    # A viewer's token, as the attacker of issue 11 held (the node credential has other limits).
    token = new_token("viewer-1")
    users = [ApiUser(name="viewer-1", role="viewer", token_hash=hash_token(token))]
    app = create_app(store, health=dict, token="bench-node-credential-0123",
                     server_name=args.server, known_cameras=lambda: {args.camera},
                     clock=lambda: args.now_us, users=users)
    with TestClient(app, base_url="http://node.bench") as client:
        client.get("/api/v1/health", headers={"Authorization": f"Bearer {token}"})  # warm
        rss_before = _kb("VmRSS")
        hwm_before = _kb("VmHWM")
        started = time.perf_counter()
        response = client.get(args.path, headers={"Authorization": f"Bearer {token}"})
        seconds = time.perf_counter() - started
        peak = _kb("VmHWM")
    store.close()
    print(json.dumps({
        "status": response.status_code,
        "error": response.json().get("error") if response.status_code >= 400 else None,
        "seconds": round(seconds, 3),
        "answer_bytes": len(response.content),
        "rss_before_bytes": rss_before,
        "peak_rss_bytes": max(peak, hwm_before),
        "peak_growth_bytes": max(0, peak - rss_before),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
