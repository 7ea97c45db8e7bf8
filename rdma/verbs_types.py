"""The plain records of the verbs layer (no I/O): access rights, work completions, SGEs,
queue pair capabilities and states, and the memory region protocol.  The sans-IO cores
(:mod:`rdma.iwarp.engine`, :mod:`rdma.iwarp.stags`) use only these; :mod:`rdma.verbs`
re-exports them beside the trio-facing parts.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol


class VerbsError(Exception):
    """A verb was used wrongly (bad key, out of bounds, wrong state): the post is refused."""


class Access(enum.IntFlag):
    """Memory region access rights (local read is always granted)."""

    LOCAL_WRITE = 0x1
    REMOTE_WRITE = 0x2
    REMOTE_READ = 0x4


class WcStatus(enum.Enum):
    SUCCESS = "success"
    LOCAL_LENGTH_ERROR = "local length error"
    LOCAL_PROTECTION_ERROR = "local protection error"
    REMOTE_ACCESS_ERROR = "remote access error"
    REMOTE_OPERATION_ERROR = "remote operation error"
    FLUSHED = "work request flushed"  # the queue pair left RTS before this work completed


class WcOpcode(enum.Enum):
    SEND = "send"
    RDMA_WRITE = "rdma write"
    RDMA_READ = "rdma read"
    RECV = "recv"


class WorkCompletion(NamedTuple):
    """One completion queue entry (``struct ibv_wc``)."""

    wr_id: int
    status: WcStatus
    opcode: WcOpcode
    byte_len: int = 0
    invalidated_rkey: int | None = None  # a Send with Invalidate invalidated this local key


class Sge(NamedTuple):
    """A scatter/gather element: ``length`` bytes at ``offset`` inside ``mr``."""

    mr: MemoryRegion
    offset: int
    length: int


class QPCap(NamedTuple):
    max_send_wr: int = 256
    max_recv_wr: int = 256
    max_send_sge: int = 4
    max_recv_sge: int = 1


class QPState(enum.Enum):
    INIT = "init"  # created, not connected: receives may be posted
    RTS = "rts"  # connected
    ERROR = "error"  # torn down (terminate, disconnect, peer gone); work is flushed


class MemoryRegion(Protocol):
    @property
    def buf(self) -> memoryview:
        """The region's bytes, writable."""

    @property
    def addr(self) -> int:
        """The tagged offset (virtual address) of byte 0, as a peer must name it."""

    @property
    def length(self) -> int: ...
    @property
    def lkey(self) -> int: ...
    @property
    def rkey(self) -> int: ...
    @property
    def access(self) -> Access: ...
    @property
    def valid(self) -> bool:
        """False once deregistered or invalidated (Send with Invalidate)."""

    def deregister(self) -> None: ...
