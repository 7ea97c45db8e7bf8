"""The contract between the server core and the command handlers.

A handler is ``async def handler(req: Request) -> Response``. It reads the parsed header and
its body from ``req``, raises :class:`SMBError` (or lets a wire ``ParseError`` escape) to
answer with an SMB2 ERROR response, and returns a :class:`Response` whose ``body`` parts go
out as iovecs after the 64-byte header the core builds ([MS-SMB2] 3.3.4.1).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from smbd.wire.constants import HeaderFlags
from smbd.wire.header import Header
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    import trio

    from smbd.server.model import Connection, Session, TreeConnect
    from smbd.server.server import SMBServer

__all__ = ["WILDCARD_FILE_ID", "Buffer", "Handler", "Request", "Response", "SMBError"]

Buffer = bytes | bytearray | memoryview

WILDCARD_FILE_ID = 0xFFFF_FFFF_FFFF_FFFF
"""FileId.Persistent/Volatile value that, in a related compound request, names the file
of the previous request ([MS-SMB2] 3.3.5.2.7.2)."""


class SMBError(Exception):
    """Raised by a handler: the server answers with an SMB2 ERROR response."""

    def __init__(self, status: int, message: str = "", *, error_data: bytes = b"") -> None:
        super().__init__(message or f"status 0x{status:08x}")
        self.status = status
        self.error_data = error_data


@dataclass(slots=True)
class Response:
    """A handler's answer: the body from StructureSize on, as iovec parts.

    ``frame``, when set, is one buffer of exactly header + body size whose tail already
    holds the body's last part (a READ's data, read there with room left in front): a
    lone response is then laid out in it, the header and the other parts copied in
    front of the data, and signed and sent as that one buffer."""

    body: list[Buffer]
    status: int = NTStatus.SUCCESS
    frame: memoryview | None = None


class ChainState:
    """What the requests of one compound chain share ([MS-SMB2] 3.3.5.2.7.2)."""

    __slots__ = ("failed_status", "related_file_id", "session_id", "tree_id")

    def __init__(self) -> None:
        self.related_file_id: tuple[int, int] | None = None
        self.session_id = 0
        self.tree_id = 0
        self.failed_status: int | None = None


class AsyncHooks(Protocol):
    """How a request reaches the connection that runs it (implemented by the core)."""

    def go_async(self, req: Request) -> Awaitable[int]: ...


class Request:
    """One SMB2 request (an element of a compound chain) as a handler sees it."""

    __slots__ = (
        "_chain",
        "_hooks",
        "async_id",
        "body",
        "cancel_scope",
        "connection",
        "header",
        "message",
        "on_response",
        "preread",
        "server",
        "session",
        "sign_response",
        "sign_with",
        "tree",
    )

    def __init__(
        self,
        *,
        header: Header,
        body: memoryview,
        message: memoryview,
        server: SMBServer,
        connection: Connection,
        session: Session | None,
        tree: TreeConnect | None,
        chain: ChainState | None = None,
        hooks: AsyncHooks | None = None,
    ) -> None:
        self.header = header
        self.body = body
        self.message = message
        self.server = server
        self.connection = connection
        self.session = session
        self.tree = tree
        self._chain = chain if chain is not None else ChainState()
        self._hooks = hooks
        self.async_id = 0
        self.cancel_scope: trio.CancelScope | None = None
        # Set by the core's own handlers: sign the response even when the session does
        # not require it (VALIDATE_NEGOTIATE_INFO, the final SESSION_SETUP), and see the
        # response's exact bytes once built (the 3.1.1 pre-auth integrity hash).
        self.sign_response = False
        # (key, algorithm) to sign the response with instead of this connection's channel
        # key: a request signed with the session's own key on a connection bound to it as
        # another channel is answered under that key, the one its client checks with.
        self.sign_with: tuple[bytes, int] | None = None
        self.on_response: Callable[[bytes], None] | None = None
        # a READ's data the core read before handling it, when the page cache held it
        # (smbd.server.files.readwrite.preread); the READ handler may use it
        self.preread: object | None = None

    @property
    def is_related(self) -> bool:
        return bool(self.header.flags & HeaderFlags.RELATED_OPERATIONS)

    @property
    def is_async(self) -> bool:
        return self.async_id != 0

    def file_id(self, persistent: int, volatile: int) -> tuple[int, int]:
        """Resolve a request's FileId. The all-ones FileId of a related compound request
        names the file of the previous request in the chain; without one, FILE_CLOSED.
        Any other FileId becomes the chain's current file for the requests after it."""
        if persistent == WILDCARD_FILE_ID and volatile == WILDCARD_FILE_ID:
            fid = self._chain.related_file_id if self.is_related else None
            if fid is None:
                raise SMBError(NTStatus.FILE_CLOSED, "no related file id in this chain")
            return fid
        fid = (persistent, volatile)
        self._chain.related_file_id = fid
        return fid

    def set_related_file_id(self, fid: tuple[int, int]) -> None:
        """CREATE calls this with the FileId it opened."""
        self._chain.related_file_id = fid

    async def go_async(self) -> int:
        """Send the interim STATUS_PENDING response now and return the AsyncId. The
        Response the handler returns later goes out as the async final response. A CANCEL
        for this request cancels ``cancel_scope``; the request is then answered with
        STATUS_CANCELLED ([MS-SMB2] 3.3.4.2, 3.3.5.16)."""
        if self.async_id:
            return self.async_id
        if self._hooks is None:
            raise RuntimeError("this request cannot go async")
        self.async_id = await self._hooks.go_async(self)
        return self.async_id


Handler = Callable[[Request], Awaitable[Response]]
"""``async def handler(req: Request) -> Response``"""
