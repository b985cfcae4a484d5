"""Which recording servers an idle spare probes: its share, so probing does not grow as servers ×
spares (issue 14).

Every idle spare probing every server costs each spare O(servers) per round, and the site
O(servers × spares). Instead each server is probed by `PROBERS_PER_SERVER` idle spares chosen by
rendezvous hashing (highest hash of server and spare name) among the idle spares that may take it
over, so the site probes each server twice a round whatever the number of spares, and each spare
probes about 2 × servers / spares. With two idle spares or fewer, every one probes every server.

Why two and not one: a spare frozen or killed keeps its record (and so its share) until its lease
runs out (the lease TTL); with two probers every server still has a live one meanwhile, and a dead
process among them is still claimed within one round. Once the record is gone, the shares are
recomputed without it. Why among those that may take it: a prober that may not take the server
can only report it; the share must hold a spare that can claim.

A spare also always probes, whatever the share: the servers whose lease is gone (the watch wakes
every spare for that and the fastest claims), the ones it already suspects (an episode is judged
by one spare to its end), and those whose gapless cameras it pre-buffers (it claims first).
Rendezvous hashing moves only the servers of a spare that joins or leaves, so the others' tracks
stay where they were.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

PROBERS_PER_SERVER = 2


def _weight(server: str, spare: str) -> int:
    digest = hashlib.blake2b(f"{server}\0{spare}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def probers(server: str, candidates: Iterable[str], count: int = PROBERS_PER_SERVER) -> list[str]:
    """The `count` spares of `candidates` that probe `server` (all of them when few)."""
    ranked = sorted(set(candidates), key=lambda spare: (_weight(server, spare), spare),
                    reverse=True)
    return ranked[:count]


def share(me: str, servers: Iterable[str], idle: Iterable[str],
          may_take: Callable[[str, str], bool],
          count: int = PROBERS_PER_SERVER) -> set[str]:
    """The servers `me` probes by the share alone. `idle`: the idle spares (with `me`);
    `may_take(spare, server)`: whether that spare may take that server over. A server none of the
    idle spares may take is shared among all of them (its probers report why they may not)."""
    spares = sorted(set(idle) | {me})
    if len(spares) <= count:
        return set(servers)
    mine = set()
    for server in servers:
        candidates = [spare for spare in spares if may_take(spare, server)] or spares
        if me in probers(server, candidates, count):
            mine.add(server)
    return mine
