"""Group commit: jobs that need the index writer, committed together by whoever gets it next.

A re-insert keeps several imports in flight, and each one's commit (its folder's fsync and an
index transaction, FULL sync) used to take the writer lock alone. Next to a recorder committing
64 cameras' segments into the same index, those one-by-one fsyncs under the lock were where a
re-insert waited (~90 ms a segment in the 64-camera takeover run). Here each caller queues its
job; one of them (the leader) waits for the writer lock, takes every job queued by then and
commits them in one transaction (`commit_all`), one fsync per folder and one for the index,
then hands the lead to a job queued meanwhile. The rest just collect their outcomes. Nothing
waits for a batch to fill: with one job at a time this is a plain commit. The recorder's own segment
rows go the same way (`StoreParts.insert_own_segment`), in a queue of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

J = TypeVar("J")
R = TypeVar("R")


class _Waiter(Generic[J, R]):
    """One queued job: its outcome, and the event that wakes its caller when the outcome is
    there or when the caller is to lead the next batch."""

    __slots__ = ("future", "job", "woken")

    def __init__(self, job: J) -> None:
        self.job = job
        self.future: Future[R] = Future()
        self.woken = threading.Event()


class GroupCommit(Generic[J, R]):
    """Thread-safe; one per store and kind of job.

    One caller at a time leads: it waits for the writer lock, commits every job queued by then,
    and hands the lead to the oldest job queued meanwhile. The others wait for their outcome,
    not for the lock. When every caller waited for the lock itself, 64 cameras' committer
    threads and the imports took turns at it, most of them only to find their job already
    committed, and each turn cost a wake-up on a busy host: a re-insert's imports spent 90 % of
    their time waiting for the lock (64-camera gapless takeover, bench/README.md,
    *Commit contention*)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[_Waiter[J, R]] = []
        self._leading = False
        self.batches = 0
        """Batches committed (each one transaction), for tests and profiling."""

    def run(self, job: J, writer: Callable[[], AbstractContextManager[object]],
            commit_all: Callable[[Sequence[J]], Sequence[R | BaseException]],
            holds_writer: Callable[[], bool] = lambda: False) -> R:
        """Commit `job` (with whatever else is queued when the writer lock comes free) and
        return its result, or raise its error. `commit_all` gets the jobs in queue order and
        returns one outcome per job; an error it raises itself fails the whole batch.
        `holds_writer`: whether this thread holds the writer lock already (reconcile does, across
        its inserts); such a caller commits its job alone at once, as waiting for a leader that
        waits for this very lock would never end."""
        if holds_writer():
            alone: _Waiter[J, R] = _Waiter(job)
            with writer():
                self._commit([alone], commit_all)
            return alone.future.result()
        me: _Waiter[J, R] = _Waiter(job)
        with self._lock:
            self._waiting.append(me)
            lead = not self._leading
            self._leading = True
        if not lead:
            me.woken.wait()
            if me.future.done():
                return me.future.result()
        try:
            with writer():
                with self._lock:
                    batch, self._waiting = self._waiting, []
                self._commit(batch, commit_all)
        finally:
            with self._lock:
                if self._waiting:
                    self._waiting[0].woken.set()  # the lead passes on; that job is still queued
                else:
                    self._leading = False
        return me.future.result()

    def _commit(self, batch: list[_Waiter[J, R]],
                commit_all: Callable[[Sequence[J]], Sequence[R | BaseException]]) -> None:
        if not batch:
            return
        self.batches += 1
        outcomes: list[R | BaseException]
        try:
            outcomes = list(commit_all([w.job for w in batch]))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"group commit: {len(outcomes)} outcomes for "
                                   f"{len(batch)} jobs")
        except BaseException as exc:  # every waiter must hear, or it waits for ever
            outcomes = [exc] * len(batch)
        for waiter, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                waiter.future.set_exception(outcome)
            else:
                waiter.future.set_result(outcome)
            waiter.woken.set()
