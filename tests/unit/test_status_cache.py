"""The master's status is rebuilt when the site's keys or configuration change, or it is a
second old; not because etcd's revision moved (every watermark write moves it)."""

from __future__ import annotations

from hotspare.api.status_cache import StatusCache
from hotspare.coordination.models import KeyValue
from hotspare.sitestate.snapshot import SiteState

ALIVE = KeyValue("alive/rec-1", b'{"url": "u", "boot": "b", "confirmed": true}', 5, 5, 1)
SPARE = KeyValue("spares/spare-1", b'{"state": "idle", "url": "u"}', 6, 6, 1)


def test_the_fingerprint_follows_the_keys_not_the_revision() -> None:
    one = SiteState.from_kvs([ALIVE, SPARE], revision=10)
    assert SiteState.from_kvs([SPARE, ALIVE], revision=99).fingerprint == one.fingerprint
    rewritten = KeyValue(ALIVE.key, ALIVE.value, 5, 100, 2)
    assert SiteState.from_kvs([rewritten, SPARE], revision=100).fingerprint != one.fingerprint
    assert SiteState.from_kvs([SPARE], revision=100).fingerprint != one.fingerprint


def test_a_view_is_kept_for_the_same_key_and_at_most_max_age() -> None:
    now = [0.0]
    cache = StatusCache(max_age=1.0, clock=lambda: now[0])
    builds: list[int] = []

    def build() -> dict[str, object]:
        builds.append(len(builds))
        return {"n": len(builds)}

    assert cache.get("a", build) == {"n": 1}
    now[0] = 0.9
    assert cache.get("a", build) == {"n": 1}  # same keys, younger than a second
    assert cache.get("b", build) == {"n": 2}  # a key or the configuration changed
    now[0] = 2.0
    assert cache.get("b", build) == {"n": 3}  # too old: licences may have expired meanwhile
    assert len(builds) == 3
