"""The verbs abstraction: what SMB Direct needs from an RDMA provider.

The shape follows libibverbs and librdmacm (so a reader who knows ``ibv_post_send`` and
``rdma_accept`` knows this), reduced to reliable connected queue pairs:

- a :class:`Device` allocates protection domains and completion queues, listens and connects
  (the connection manager);
- a :class:`ProtectionDomain` registers memory regions; a :class:`MemoryRegion` has an lkey
  and an rkey (iWARP: one STag for both), a base address (the tagged offset of byte 0) and
  access rights;
- a :class:`QueuePair` posts receives, sends (optionally with invalidate), RDMA writes and RDMA
  reads; completions arrive on :class:`CompletionQueue` objects as :class:`WorkCompletion`;
- a :class:`Listener` yields :class:`ConnectionRequest` objects: create the queue pair on the
  request, post receives, then accept (``rdma_get_request`` / ``rdma_create_qp`` /
  ``ibv_post_recv`` / ``rdma_accept``), so no message can arrive before a buffer is posted.

Posting is synchronous and never blocks (as in verbs); waiting is ``await cq.poll()``.
Providers: :mod:`rdma.iwarp` (userspace iWARP over TCP, on trio) and :mod:`rdma.pyverbs`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

import trio

from .verbs_types import (
    Access,
    MemoryRegion,
    QPCap,
    QPState,
    Sge,
    VerbsError,
    WcOpcode,
    WcStatus,
    WorkCompletion,
)

__all__ = [
    "Access",
    "CompletionQueue",
    "ConnectionRequest",
    "Device",
    "Listener",
    "MemoryRegion",
    "ProtectionDomain",
    "QPCap",
    "QPState",
    "QueuePair",
    "QueuePairBase",
    "Sge",
    "VerbsError",
    "WcOpcode",
    "WcStatus",
    "WorkCompletion",
]


class ProtectionDomain(Protocol):
    def reg_mr(self, buffer: int | bytearray | memoryview, access: Access) -> MemoryRegion:
        """Register ``buffer`` (an int: a new zeroed buffer of that size) for ``access``."""

    def dealloc(self) -> None: ...


class CompletionQueue:
    """A completion queue that trio tasks wait on; providers push entries into it.

    ``depth`` bounds the entries held: a provider that would overflow it puts the queue
    pair in error (a CQ overrun is fatal in verbs too).
    """

    def __init__(self, depth: int) -> None:
        if depth <= 0:
            raise VerbsError("completion queue depth must be positive")
        self.depth = depth
        self._entries: deque[WorkCompletion] = deque()
        self._event = trio.Event()
        self.overruns = 0

    def push(self, wc: WorkCompletion) -> bool:
        """Provider side: queue one entry; False on overrun (entry dropped)."""
        if len(self._entries) >= self.depth:
            self.overruns += 1
            return False
        self._entries.append(wc)
        self._event.set()
        return True

    def poll_nowait(self, max_entries: int = 64) -> list[WorkCompletion]:
        out: list[WorkCompletion] = []
        entries = self._entries
        while entries and len(out) < max_entries:
            out.append(entries.popleft())
        if not entries and self._event.is_set():
            self._event = trio.Event()
        return out

    async def poll(self, max_entries: int = 64) -> list[WorkCompletion]:
        """Wait for at least one entry and return up to ``max_entries``."""
        while not self._entries:
            await self._event.wait()
        return self.poll_nowait(max_entries)

    def __len__(self) -> int:
        return len(self._entries)


class QueuePair(Protocol):
    @property
    def qp_num(self) -> int: ...
    @property
    def state(self) -> QPState: ...
    @property
    def send_cq(self) -> CompletionQueue: ...
    @property
    def recv_cq(self) -> CompletionQueue: ...
    @property
    def local_address(self) -> tuple[str, int]: ...
    @property
    def remote_address(self) -> tuple[str, int]: ...

    def post_recv(self, wr_id: int, sges: Sequence[Sge]) -> None: ...
    def post_send(
        self, wr_id: int, sges: Sequence[Sge], *, invalidate_rkey: int | None = None
    ) -> None: ...
    def post_rdma_write(
        self, wr_id: int, sges: Sequence[Sge], remote_addr: int, rkey: int
    ) -> None: ...
    def post_rdma_read(self, wr_id: int, sge: Sge, remote_addr: int, rkey: int) -> None:
        """Read ``sge.length`` bytes at ``remote_addr`` under ``rkey`` into ``sge``.

        iWARP reads land with a tagged Read Response, so the sink needs LOCAL_WRITE and one
        SGE (like ``max_sge_rd`` = 1 on siw).
        """

    async def connect(
        self, host: str, port: int, *, ird: int = 16, ord: int = 16, private_data: bytes = b""
    ) -> None:
        """Active side: connect a queue pair made by :meth:`Device.create_qp`."""

    async def disconnect(self) -> None:
        """Orderly close; outstanding work is flushed; idempotent."""

    async def wait_disconnected(self) -> None:
        """Return once the queue pair is in ERROR (closed by either side)."""


class QueuePairBase:
    """The read-only attributes of :class:`QueuePair`, kept the same way by every provider.

    A provider's queue pair sets ``_qp_num``, ``_state``, ``_send_cq``, ``_recv_cq``,
    ``_local`` and ``_remote`` and changes them as the connection moves on.
    """

    _qp_num: int
    _state: QPState
    _send_cq: CompletionQueue
    _recv_cq: CompletionQueue
    _local: tuple[str, int]
    _remote: tuple[str, int]

    @property
    def qp_num(self) -> int:
        return self._qp_num

    @property
    def state(self) -> QPState:
        return self._state

    @property
    def send_cq(self) -> CompletionQueue:
        return self._send_cq

    @property
    def recv_cq(self) -> CompletionQueue:
        return self._recv_cq

    @property
    def local_address(self) -> tuple[str, int]:
        return self._local

    @property
    def remote_address(self) -> tuple[str, int]:
        return self._remote


class ConnectionRequest(Protocol):
    @property
    def remote_address(self) -> tuple[str, int]: ...
    @property
    def private_data(self) -> bytes: ...
    @property
    def ird(self) -> int:
        """The peer's inbound read depth (the most reads we may have outstanding)."""

    @property
    def ord(self) -> int:
        """The peer's outbound read depth (the most reads it wants outstanding at us)."""

    def create_qp(
        self,
        pd: ProtectionDomain,
        send_cq: CompletionQueue,
        recv_cq: CompletionQueue,
        cap: QPCap | None = None,
    ) -> QueuePair: ...

    async def accept(self, *, ird: int = 16, ord: int = 16, private_data: bytes = b"") -> None: ...
    async def reject(self, private_data: bytes = b"") -> None: ...


class Listener(Protocol):
    @property
    def local_address(self) -> tuple[str, int]: ...

    async def get_request(self) -> ConnectionRequest: ...
    async def aclose(self) -> None: ...


class Device(Protocol):
    """An opened RDMA device; providers make these with an async context manager."""

    @property
    def name(self) -> str: ...

    def alloc_pd(self) -> ProtectionDomain: ...
    def create_cq(self, depth: int) -> CompletionQueue: ...
    def create_qp(
        self,
        pd: ProtectionDomain,
        send_cq: CompletionQueue,
        recv_cq: CompletionQueue,
        cap: QPCap | None = None,
    ) -> QueuePair:
        """An unconnected queue pair for :meth:`QueuePair.connect`."""

    async def listen(self, host: str, port: int, backlog: int = 16) -> Listener: ...
    def statistics(self) -> dict[str, int]: ...
