"""Faults of hosts and links, for a soak whose nodes run on hosts of their own (`--hosts netns`:
tests/support/netsite.py, one network namespace per node, etcd member and the cameras).

Each takes links away (a host's link set down: no RST, no FIN; or a partition between two hosts:
packets silently lost at the bridge), waits for the reaction the product promises, and gives them
back. Which reaction and how much video each may cost is in HOST_FAULTS and HOST_LOSS_BOUND_S.
"""

from __future__ import annotations

import random
import time

from bench.chaos.faults import GOP_S, STANDARD_BOUND_S, Fault, FaultRecord, claim_after, now_us
from tests.support.netsite import NetSite
from tests.support.site import FailoverSite

FLAPS = 5
FLAP_DOWN_S = 0.5
FLAP_UP_S = 0.5


def _net(site: FailoverSite) -> NetSite:
    assert isinstance(site, NetSite), "host faults need the soak's --hosts netns"
    return site


def vanish_server(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A recording server's host vanishes (link down, process alive) for 2-4 s: claimed within
    about a second (probe + a question through etcd), then handed back when it returns."""
    net = _net(site)
    server = rng.choice(list(site.servers))
    record = FaultRecord("vanish_server", server, now_us())
    net.host(server).link_down()
    try:
        spare, record.claim_s = claim_after(site, server, record.start_us, timeout=15)
        time.sleep(rng.uniform(2.0, 4.0))
    finally:
        net.host(server).link_up()
    record.healed_us = now_us()
    record.note = f"covered by {spare}"
    return record


def server_cut_from_etcd(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A recording server cut from every etcd member, not from its cameras or the spares, for 3-5 s
    (longer than its lease): it answers the spares' probes "recording", so no one may claim it,
    and it records on from its cached site."""
    net = _net(site)
    server = rng.choice(list(site.servers))
    record = FaultRecord("server_cut_from_etcd", server, now_us())
    for member in net.etcd_hosts:
        net.net.partition(server, member)
    try:
        time.sleep(rng.uniform(3.0, 5.0))
    finally:
        for member in net.etcd_hosts:
            net.net.heal(server, member)
    record.healed_us = now_us()
    return record


def server_isolated(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A recording server cut from etcd and from every spare, not from its cameras: a spare claims
    it (silent to the spare and to etcd) while it records on; both record for a while, and
    handback and re-insert must leave every frame once."""
    net = _net(site)
    server = rng.choice(list(site.servers))
    record = FaultRecord("server_isolated", server, now_us())
    others = [*net.etcd_hosts, *site.spares]
    for other in others:
        net.net.partition(server, other)
    try:
        spare, record.claim_s = claim_after(site, server, record.start_us, timeout=15)
        site.wait_event("recording", server, timeout=20, after_us=record.start_us)
        time.sleep(rng.uniform(1.0, 3.0))
    finally:
        for other in others:
            net.net.heal(server, other)
    record.healed_us = now_us()
    record.note = f"covered by {spare} while it recorded on"
    return record


def spare_cut_from_server(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A spare cut from one server only, for 3-5 s: the server answers through etcd, so the spare
    suspects it and never claims it."""
    net = _net(site)
    spare = rng.choice(site.spares)
    server = rng.choice(list(site.servers))
    record = FaultRecord("spare_cut_from_server", f"{spare}|{server}", now_us())
    net.net.partition(spare, server)
    try:
        time.sleep(rng.uniform(3.0, 5.0))
        kept = site.alive(server)
    finally:
        net.net.heal(spare, server)
    record.healed_us = now_us()
    record.note = f"{server}'s alive key {'kept' if kept else 'gone'}"
    return record


def flapping_link(site: FailoverSite, rng: random.Random) -> FaultRecord:
    """A recording server's link down 0.5 s, up 0.5 s, five times: at most one takeover."""
    net = _net(site)
    server = rng.choice(list(site.servers))
    record = FaultRecord("flapping_link", server, now_us())
    host = net.host(server)
    try:
        for _ in range(FLAPS):
            host.link_down()
            time.sleep(FLAP_DOWN_S)
            host.link_up()
            time.sleep(FLAP_UP_S)
    finally:
        host.link_up()
    record.healed_us = now_us()
    return record


# Kind -> (fault, weight, claim expected: True, forbidden: False, either: None).
HOST_FAULTS: dict[str, tuple[Fault, float, bool | None]] = {
    "vanish_server": (vanish_server, 1.5, True),
    "server_cut_from_etcd": (server_cut_from_etcd, 1.0, False),
    "server_isolated": (server_isolated, 1.0, True),
    "spare_cut_from_server": (spare_cut_from_server, 1.0, False),
    "flapping_link": (flapping_link, 1.0, None),
}

# A vanished host costs what a dead one does (its cameras are gone with its link). A server cut
# from etcd or the spares but not its cameras records on: nothing. A flapping link loses what the
# cameras sent while it was down (UDP) and, per cut, up to a GOP of frames the cut damaged, when
# no spare steps in; a gapless camera loses nothing: its designated spare's pre-buffer fills
# those holes (gap repair, docs/failover.md), or its takeover's re-insert does.
FLAP_BOUND_S = FLAPS * (FLAP_DOWN_S + GOP_S)
HOST_LOSS_BOUND_S: dict[str, dict[str, float]] = {
    "vanish_server": {"standard": STANDARD_BOUND_S, "gapless": 0.0},
    "server_cut_from_etcd": {"standard": 0.0, "gapless": 0.0},
    "server_isolated": {"standard": 0.0, "gapless": 0.0},
    "spare_cut_from_server": {"standard": 0.0, "gapless": 0.0},
    "flapping_link": {"standard": FLAP_BOUND_S, "gapless": 0.0},
}
