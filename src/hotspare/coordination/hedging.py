"""When a lease keeper may ask a second etcd member before the first one answered (a hedge).

Hedging is for a member that is frozen or cut off: it accepts the keepalive and says nothing,
and an answer from another member saves the lease. When the whole cluster is slow because it is
overloaded, every keeper's keepalive is late at once, and hedging sends each of them again to
another member, which forwards it to the same overloaded leader: the more load, the more
requests. A 200-server site on one 2-core host collapsed that way (bench/README.md, site_scale).
So a node hedges only

- when the member is slow *for itself*: the hedge waits `delay_for(member)`, the keeper's base
  delay or three times the median of that member's last answers, whichever is longer; when
  that reaches the request timeout there is no hedge at all (the timed-out request moves on to
  the next member, as any failure does); and
- within a budget, like gRPC's retry throttling: a bucket of `capacity` tokens, a hedge costs
  one, a round answered without a hedge earns `refill`. A cluster that stops answering promptly
  gets at most `capacity` hedges from a node, then one per 1/`refill` rounds.

One policy per `Coordinator`, i.e. per node: it outlives a lost lease and the keeper that held it
(a new keeper must not come with a fresh budget into the overload that cost the last one).
"""

from __future__ import annotations

import statistics
import threading
from collections import deque

RECENT_ANSWERS = 5
"""Answers remembered per member: one slow answer (an election) does not move the median."""

SLOW_FACTOR = 3.0


class HedgePolicy:
    """Thread-safe: the keepers of one node and their request threads share it."""

    def __init__(self, capacity: float = 10.0, refill: float = 0.1) -> None:
        if capacity < 1 or refill <= 0:
            raise ValueError("a hedge budget needs capacity >= 1 and refill > 0")
        self.capacity = capacity
        self.refill = refill
        self._tokens = capacity
        self._recent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self.sent = 0  # hedges sent
        self.withheld = 0  # hedges that were due but the budget had no token

    def answered(self, member: str, seconds: float) -> None:
        """`member` answered a keepalive in `seconds`."""
        with self._lock:
            self._recent.setdefault(member, deque(maxlen=RECENT_ANSWERS)).append(seconds)

    def delay_for(self, member: str, base: float) -> float:
        """How long a request to `member` may stay unanswered before a hedge."""
        with self._lock:
            recent = list(self._recent.get(member, ()))
        if not recent:
            return base
        return max(base, SLOW_FACTOR * statistics.median(recent))

    def take(self) -> bool:
        """Spend a token on a hedge; False (counted as withheld) when the budget is empty."""
        with self._lock:
            if self._tokens < 1.0:
                self.withheld += 1
                return False
            self._tokens -= 1.0
            self.sent += 1
            return True

    def earn(self) -> None:
        """A round was answered without a hedge."""
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + self.refill)

    @property
    def tokens(self) -> float:
        with self._lock:
            return self._tokens
