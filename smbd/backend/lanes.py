"""Data-write lanes: a few long-lived worker threads, each running its jobs in order.

``trio.to_thread.run_sync`` costs two cross-thread wakeups per call: the event loop wakes
an idle worker (a futex), and the worker wakes the event loop with the result (a byte on
trio's wakeup socket). With a client keeping eight 1 MiB WRITEs in flight on one file it
also puts eight threads into ``pwritev`` on the same inode at once, where the kernel
serialises them on the inode lock and they sleep and wake each other again.

A lane is one thread fed by a queue. The event loop wakes it only when it is asleep; the
thread runs what is queued one job after another and hands results back in batches:
it asks the event loop to run its delivery callback only when no delivery is pending
already, so a burst of writes finished while the loop was busy costs one wakeup. A file
always goes to the same lane (by inode), so writes to one file never contend with each
other; different files spread over the lanes, so one slow file does not hold up all the
others. The number of threads is fixed per share; an idle lane's thread exits and is
started again on the next job.

Jobs are not cancellable once queued (as with ``trio.to_thread.run_sync``): the waiting
task takes its result when it comes, so a write is never half-known.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import outcome
import trio

__all__ = ["Lane", "Lanes"]

T = TypeVar("T")

IDLE_TIMEOUT = 10.0  # seconds an idle lane's thread waits for work before it exits


def _no_abort(_: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


class Lane:
    """One worker thread running jobs in submission order for one trio run."""

    __slots__ = (
        "_cond",
        "_deliver_cb",
        "_done",
        "_done_lock",
        "_idle",
        "_jobs",
        "_thread",
        "jobs",
        "name",
        "pending",
        "threads_started",
        "token",
        "wakeups",
    )

    def __init__(self, token: trio.lowlevel.TrioToken, name: str) -> None:
        self.token = token
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._jobs: deque[tuple[trio.lowlevel.Task, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._idle = False  # the thread waits on _cond
        self._thread: threading.Thread | None = None
        self._done: list[tuple[trio.lowlevel.Task, outcome.Outcome[Any]]] = []
        self._done_lock = threading.Lock()
        self._deliver_cb = self._deliver  # one bound method, not one per batch
        self.jobs = 0
        self.pending = 0  # jobs submitted and not yet delivered (event loop side only)
        self.wakeups = 0  # deliveries scheduled on the event loop (<= jobs)
        self.threads_started = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in this lane's thread; its result or exception comes back."""
        task = trio.lowlevel.current_task()
        with self._cond:
            self._jobs.append((task, fn, args))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name=f"vmstor {self.name}", daemon=True
                )
                self.threads_started += 1
                self._thread.start()
            elif self._idle:
                self._idle = False
                self._cond.notify()
        self.jobs += 1
        self.pending += 1
        result: T = await trio.lowlevel.wait_task_rescheduled(_no_abort)
        return result

    def _work(self) -> None:
        jobs, cond = self._jobs, self._cond
        while True:
            with cond:
                while not jobs:
                    self._idle = True
                    if not cond.wait(IDLE_TIMEOUT) and not jobs:  # nothing to do for long
                        self._idle = False
                        self._thread = None
                        return
                self._idle = False
                task, fn, args = jobs.popleft()
            result = outcome.capture(fn, *args)
            del fn, args
            with self._done_lock:
                first = not self._done
                self._done.append((task, result))
            if first:
                try:
                    self.token.run_sync_soon(self._deliver_cb)
                except trio.RunFinishedError:  # pragma: no cover - the run ended under us
                    return

    def _deliver(self) -> None:
        """On the event loop: wake every task whose job has finished."""
        with self._done_lock:
            done, self._done = self._done, []
        self.wakeups += 1
        self.pending -= len(done)
        for task, result in done:
            trio.lowlevel.reschedule(task, result)


class Lanes:
    """A fixed set of lanes for one share; a key (an inode) always maps to the same lane.
    The lanes belong to the trio run that first uses them; another run gets new ones."""

    __slots__ = ("_lanes", "_token", "count", "name")

    def __init__(self, count: int = 4, name: str = "io") -> None:
        if count < 1:
            raise ValueError("at least one lane")
        self.count = count
        self.name = name
        self._lanes: list[Lane] = []
        self._token: trio.lowlevel.TrioToken | None = None

    def lane(self, key: int) -> Lane:
        token = trio.lowlevel.current_trio_token()
        if token is not self._token:
            self._token = token
            self._lanes = [Lane(token, f"{self.name} lane {i}") for i in range(self.count)]
        return self._lanes[key % self.count]

    def statistics(self) -> dict[str, int]:
        return {
            "lanes": self.count,
            "jobs": sum(lane.jobs for lane in self._lanes),
            "wakeups": sum(lane.wakeups for lane in self._lanes),
            "threads_started": sum(lane.threads_started for lane in self._lanes),
        }
