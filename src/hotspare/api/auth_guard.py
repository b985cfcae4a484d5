"""What keeps authentication from being used against the node: a failure budget per client
address, one small limiter for the costly hash, and refusals logged at a bounded rate.

A user token is checked with scrypt (16 MiB, tens of ms). Unbounded, a flood of wrong
`<user>.<anything>` tokens was measured taking a node from 124 to 850 MB RSS and its health answer
from 2 ms to 4 s at 100 concurrent requests — longer than a spare's probe timeout, so an attacker
could make spares see a healthy server as failing. Three rules bound that:

- **One hash at a time.** scrypt runs behind its own `CapacityLimiter(1)`, never in the shared
  thread pool that the health route and file reads use, so a flood queues behind itself.
- **A failure budget per client address.** Each costly failure (a user-shaped token that did not
  verify) spends one unit; past the budget the address is answered 429 with `Retry-After` and no
  hash is computed, until the window passes; each further try doubles the wait (up to a cap).
  A token that verified is cached, so a real user's player is never slowed by this.
- **The same cost for unknown users.** A user-shaped token naming no user waits as long as a hash
  takes, without computing one, so the answer's timing does not tell which user names exist.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import anyio

log = logging.getLogger("hotspare.api.auth")

FAILURE_BUDGET = 10
"""Costly failures one client address may have in `WINDOW_SECONDS` before it is made to wait."""
WINDOW_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 900.0
MAX_TRACKED_ADDRESSES = 4096
"""Beyond this many addresses the oldest are forgotten, so a spoofed-source flood cannot grow the
table without bound (an address that is forgotten starts with a full budget again)."""
LOG_INTERVAL_SECONDS = 10.0


@dataclass
class _Account:
    window_start: float
    failures: int = 0
    blocked_until: float = 0.0
    backoff: float = 0.0
    refused_since_log: int = 0
    last_log: float = 0.0


class AuthGuard:
    """Per-process state of the three rules above; one per API app."""

    def __init__(self, budget: int = FAILURE_BUDGET, window: float = WINDOW_SECONDS) -> None:
        self.budget = budget
        self.window = window
        self.hash_limiter = anyio.CapacityLimiter(1)
        self._accounts: OrderedDict[str, _Account] = OrderedDict()
        self._hash_seconds = 0.05  # refined from real hashes; what an unknown user waits

    def _account(self, address: str, now: float) -> _Account:
        account = self._accounts.get(address)
        if account is None:
            account = _Account(window_start=now)
            self._accounts[address] = account
            while len(self._accounts) > MAX_TRACKED_ADDRESSES:
                self._accounts.popitem(last=False)
        else:
            self._accounts.move_to_end(address)
        if now - account.window_start >= self.window:
            account.window_start, account.failures = now, 0
        return account

    def retry_after(self, address: str) -> float | None:
        """Seconds this address must still wait before a costly check is tried; None if none."""
        now = time.monotonic()
        account = self._account(address, now)
        if account.blocked_until > now:
            account.refused_since_log += 1
            # Trying again while blocked lengthens the wait: a script that ignores Retry-After
            # gets ever fewer tries, a person who waits loses nothing.
            account.backoff = min(max(account.backoff * 2, self.window), MAX_BACKOFF_SECONDS)
            account.blocked_until = now + account.backoff
            self._log_refusals(address, account, now)
            return account.blocked_until - now
        return None

    def failed(self, address: str, why: str) -> None:
        """A costly failure from `address`: spend budget, block when it is gone, log (bounded)."""
        now = time.monotonic()
        account = self._account(address, now)
        account.failures += 1
        account.refused_since_log += 1
        if account.failures >= self.budget:
            account.backoff = max(account.backoff, self.window)
            account.blocked_until = now + account.backoff
        self._log_refusals(address, account, now, why)

    def _log_refusals(self, address: str, account: _Account, now: float, why: str = "") -> None:
        if now - account.last_log < LOG_INTERVAL_SECONDS:
            return
        blocked = account.blocked_until > now
        log.warning(
            "%d refused authentication(s) from %s in the last %.0f s%s%s",
            account.refused_since_log, address, min(now - account.last_log, self.window),
            f" ({why})" if why else "",
            f"; this address must wait {account.blocked_until - now:.0f} s before its tokens "
            "are checked again (if it is a real client, fix the token it sends)" if blocked
            else "")
        account.refused_since_log = 0
        account.last_log = now

    def hashed(self, seconds: float) -> None:
        """Keep the unknown-user wait close to what a real check costs on this machine."""
        self._hash_seconds = 0.8 * self._hash_seconds + 0.2 * seconds

    async def wait_like_a_hash(self) -> None:
        async with self.hash_limiter:
            await anyio.sleep(self._hash_seconds)
