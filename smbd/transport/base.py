"""What the SMB2 layer needs from a transport (direct TCP now, SMB Direct later)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

Buffer = bytes | bytearray | memoryview


class TransportClosed(Exception):
    """The peer closed the connection or it failed."""


class FramingError(Exception):
    """The byte stream cannot be split into messages any more: drop the connection."""


class Transport(Protocol):
    name: str  # "tcp", "rdma"
    peer: str  # "host:port"
    local: str
    max_message_size: int  # the largest message receive() accepts

    async def receive(self) -> memoryview:
        """The next whole message, in a buffer of its own. Raises TransportClosed at the
        end of the stream and FramingError for a malformed frame."""
        ...

    async def send(self, parts: Sequence[Buffer]) -> None:
        """Send one message given as parts (iovecs). Messages never interleave."""
        ...

    async def aclose(self) -> None: ...
