"""The key layout under a site's prefix (`/hotspare/<site>/`), in one place.

Every etcd key a node reads or writes is built here so that the layout in docs/coordination.md is
the layout in etcd; nothing outside `hotspare.sitestate` spells a key. (Called `layout`, not
`keys`: in this code base "keys" also means Ed25519 signing keys.)
"""

from __future__ import annotations

SITE_CONFIG = "config/site"
"""The applied site configuration (JSON), written by `hotspare site apply`."""

CONFIG_PREFIX = "config/"
ALIVE_PREFIX = "alive/"
SPARES_PREFIX = "spares/"
CLAIMS_PREFIX = "claims/"
OWNERS_PREFIX = "owners/"
COVERING_PREFIX = "covering/"
REINSERT_PREFIX = "reinsert/"
BUFFERS_PREFIX = "buffers/"
EVENTS_PREFIX = "events/"
PROTECTION_PREFIX = "protection/"
WATERMARKS_PREFIX = "watermarks/"
RETURNING_PREFIX = "returning/"
STANDBY_PREFIX = "standby/"
ASKING_PREFIX = "asking/"


def site_prefix(site_id: str) -> str:
    return f"/hotspare/{site_id}/"


def alive(server: str) -> str:
    """Lease-bound; present only while every camera of the server is recording."""
    return ALIVE_PREFIX + server


def spare(name: str) -> str:
    """Lease-bound; the spare's state (idle, covering, reinserting) for everyone's eligibility."""
    return SPARES_PREFIX + name


def protection(server: str) -> str:
    """No lease; the last announced protection state, swapped by compare-and-set."""
    return PROTECTION_PREFIX + server


def watermarks(server: str) -> str:
    """No lease (it must outlive a crash): per camera, the wall time (µs) up to which the server
    has durably committed video; written at most once a second, batched for all cameras.
    Value: {"cameras": {camera_id: until_wall_us}, "at_us": wall µs of the write}."""
    return WATERMARKS_PREFIX + server


def returning(server: str) -> str:
    """Lease-bound; a server back from a failure whose cameras refuse it a session while the
    covering spare holds theirs. Value: {"blocked": [camera ids], "at_us"}."""
    return RETURNING_PREFIX + server


def standby(spare_name: str) -> str:
    """Lease-bound; the spare's hot-standby sessions for gapless cameras. Value:
    {"cameras": {camera_id: {"server", "state" (buffering|connecting|refused), "buffered_s",
    "kbps", "error"}}}."""
    return STANDBY_PREFIX + spare_name


def asking(server: str, spare: str) -> str:
    """A spare's question to a server it cannot reach directly, "do you still talk to etcd?";
    the server answers by deleting it (design decision 5). No lease: the server deletes every
    question it sees, and a spare deletes one left unanswered. Value: {"at_us"}."""
    return f"{ASKING_PREFIX}{server}/{spare}"


def asking_prefix(server: str) -> str:
    """Every spare's question to one server (what that server watches)."""
    return f"{ASKING_PREFIX}{server}/"


def claim(server: str) -> str:
    """Lease-bound to the claiming spare's lease; its create revision is the fencing token."""
    return CLAIMS_PREFIX + server


def owner(server: str) -> str:
    """Where API clients find the server's cameras now (the server itself or the covering spare)."""
    return OWNERS_PREFIX + server


def covering(server: str) -> str:
    """The covering spare's fenced heartbeat: proves, every second, that its token still holds."""
    return COVERING_PREFIX + server


def reinsert(server: str, spare_name: str) -> str:
    """Re-insert progress of one spare's buffer into one server."""
    return f"{REINSERT_PREFIX}{server}/{spare_name}"


def buffer(server: str, spare_name: str) -> str:
    """Written by a fenced write when the spare claims the server, deleted when its buffer of that
    server is re-inserted: the only grant for a leftover buffer's re-insert without a claim."""
    return f"{BUFFERS_PREFIX}{server}/{spare_name}"


def event(wall_us: int, node: str, nonce: str) -> str:
    """Zero-padded time first, so the prefix sorts oldest first."""
    return f"{EVENTS_PREFIX}{wall_us:017d}-{node}-{nonce}"


FENCING_HEADER = "X-Hotspare-Fencing"
"""The HTTP header a re-insert upload under a claim carries: `claims/<server>:<token>`."""

REPAIR_HEADER = "X-Hotspare-Repair"
"""The HTTP header a gap repair's upload carries (value `gap`): frames of a hole in the server's
own recording, sent by the spare whose `standby/<spare>` pre-buffers that server's camera."""


def fence(server: str, token: int) -> str:
    """The fencing header's value for an upload under the claim on `server` with `token`."""
    return f"{claim(server)}:{token}"
