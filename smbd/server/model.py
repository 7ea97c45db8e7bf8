"""The server's abstract data model ([MS-SMB2] 3.3.1): Connection, Session, Channel,
TreeConnect. Plain state, no I/O.

A Session is global to the server and independent of any one Connection: it holds a list
of Channels, one per connection bound to it ([MS-SMB2] 3.3.1.8, 3.3.1.14), so that
multichannel binding adds a Channel instead of reshaping the model.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from smbd.config import SMB2_0_2, SMB2_1, SMB3_0, SMB3_0_2, SMB3_1_1, ShareConfig
from smbd.server.credits import CreditWindow
from smbd.wire.constants import Capabilities

# ints: the properties below run per request, and IntFlag & builds a member per call
_LARGE_MTU = int(Capabilities.LARGE_MTU)
_MULTI_CHANNEL = int(Capabilities.MULTI_CHANNEL)

if TYPE_CHECKING:
    from smbd.crypto import Encryptor, SessionKeys
    from smbd.server.request import Request

DIALECT_TEXT = {
    SMB2_0_2: "2.0.2",
    SMB2_1: "2.1",
    SMB3_0: "3.0",
    SMB3_0_2: "3.0.2",
    SMB3_1_1: "3.1.1",
    0x02FF: "2.???",
}


LOGGED_OFF_KEPT = 8


class ConnState(enum.Enum):
    """Where a connection is in the negotiate exchange ([MS-SMB2] 3.3.5.3, 3.3.5.4)."""

    INITIAL = "initial"  # nothing received yet
    WILDCARD = "wildcard"  # answered an SMB1 negotiate with dialect 0x02FF
    NEGOTIATED = "negotiated"  # an SMB2 NEGOTIATE selected a dialect


class ConnEvent(enum.Enum):
    """What can arrive on a connection, as the state table sees it."""

    SMB1_NEGOTIATE = "smb1-negotiate"  # [MS-SMB2] 3.3.5.3
    NEGOTIATE = "negotiate"  # 3.3.5.4
    REQUEST = "request"  # any other SMB2 command


# [MS-SMB2] 3.3.5.2: (state, event) -> the states the event may lead to. A pair missing
# from the table is a protocol violation and drops the connection (a second NEGOTIATE, a
# request before NEGOTIATE, SMB1 after SMB2). A NEGOTIATE that fails (no common dialect)
# leaves the state as it was. An SMB1 negotiate offering only "SMB 2.002" is answered with
# 2.0.2 directly (as Samba does), which skips the wildcard state.
CONN_TRANSITIONS: dict[tuple[ConnState, ConnEvent], frozenset[ConnState]] = {
    (ConnState.INITIAL, ConnEvent.SMB1_NEGOTIATE): frozenset(
        (ConnState.WILDCARD, ConnState.NEGOTIATED)
    ),
    (ConnState.INITIAL, ConnEvent.NEGOTIATE): frozenset((ConnState.NEGOTIATED,)),
    (ConnState.WILDCARD, ConnEvent.NEGOTIATE): frozenset((ConnState.NEGOTIATED,)),
    (ConnState.NEGOTIATED, ConnEvent.REQUEST): frozenset((ConnState.NEGOTIATED,)),
}


class SessionState(enum.Enum):
    IN_PROGRESS = "in-progress"
    VALID = "valid"
    EXPIRED = "expired"


class Connection:
    """One transport connection ([MS-SMB2] 3.3.1.7)."""

    def __init__(
        self,
        conn_id: int,
        peer: str,
        transport: str = "tcp",
        *,
        local: str = "",
        max_credits: int = 8192,
    ) -> None:
        self.conn_id = conn_id
        self.peer = peer
        self.local = local
        self.transport = transport
        self.state = ConnState.INITIAL
        self.dialect = 0
        self.client_guid = bytes(16)
        self.client_capabilities = 0
        self.client_security_mode = 0
        self.client_dialects: tuple[int, ...] = ()
        self.capabilities = 0  # what the server's NEGOTIATE response announced
        self.security_mode = 0
        self.max_read_size = 65536
        self.max_write_size = 65536
        self.max_transact_size = 65536
        self.cipher_id = 0  # negotiated encryption cipher, 0 = none
        self.signing_algorithm = 0  # smbd.crypto.HMAC_SHA256 / AES_CMAC / AES_GMAC
        self.preauth_hash: bytes | None = None  # 3.1.1 connection pre-auth hash
        self.credits = CreditWindow(max_credits)
        # Sessions that have a channel on this connection, by SessionId.
        self.sessions: dict[int, Session] = {}
        # Requests in flight that may be cancelled: sync ones by MessageId, async by AsyncId.
        self.pending_sync: dict[int, Request] = {}
        self.pending_async: dict[int, Request] = {}
        # Binding exchanges in progress on this connection, by SessionId.
        self.bindings: dict[int, Any] = {}
        # Sessions logged off on this connection, newest last (at most LOGGED_OFF_KEPT):
        # a signed request that still names one is answered USER_SESSION_DELETED, signed
        # with its old key, since a client that requires signing rejects it unsigned.
        self.logged_off: dict[int, Session] = {}
        self.closed = False

    @property
    def supports_large_mtu(self) -> bool:
        return bool(int(self.capabilities) & _LARGE_MTU)

    @property
    def supports_multichannel(self) -> bool:
        return bool(int(self.capabilities) & _MULTI_CHANNEL)

    @property
    def supports_encryption(self) -> bool:
        """The client can encrypt: 3.0/3.0.2 with the ENCRYPTION capability, or 3.1.1
        with a common cipher ([MS-SMB2] 3.3.5.2.? and 3.3.5.7)."""
        if self.dialect >= SMB3_1_1:
            return self.cipher_id != 0
        return self.dialect >= SMB3_0 and bool(self.capabilities & Capabilities.ENCRYPTION)

    @property
    def dialect_text(self) -> str:
        return DIALECT_TEXT.get(self.dialect, f"0x{self.dialect:04x}")


class Channel:
    """One connection bound to a session, with its own signing key ([MS-SMB2] 3.3.1.14)."""

    __slots__ = ("connection", "signing_algorithm", "signing_key")

    def __init__(self, connection: Connection, signing_key: bytes) -> None:
        self.connection = connection
        self.signing_key = signing_key
        # a bound channel signs with what its own connection negotiated
        self.signing_algorithm = connection.signing_algorithm


class Session:
    """An authenticated user context ([MS-SMB2] 3.3.1.8), global to the server."""

    def __init__(self, session_id: int, connection: Connection, now: float) -> None:
        self.session_id = session_id
        self.connection = connection  # the connection the session was established on
        self.state = SessionState.IN_PROGRESS
        self.dialect = connection.dialect
        self.user = ""
        self.domain = ""
        self.is_guest = False
        self.is_anonymous = False
        self.created = now
        self.session_key = b""
        self.keys: SessionKeys | None = None
        self.signing_algorithm = connection.signing_algorithm
        self.cipher_id = connection.cipher_id
        self.signing_required = False
        self.encrypt_data = False  # the server requires encryption on this session
        self.encrypted_traffic = False  # the client has sent encrypted messages
        self.encryptor: Encryptor | None = None
        self.preauth_hash: bytes | None = connection.preauth_hash
        self.authenticator: Any = None  # the in-progress smbd.auth exchange
        self.channels: list[Channel] = []
        self.trees: dict[int, TreeConnect] = {}
        self._next_tree_id = 1

    @property
    def signing_key(self) -> bytes:
        return self.keys.signing if self.keys is not None else b""

    def channel_for(self, connection: Connection) -> Channel | None:
        for ch in self.channels:
            if ch.connection is connection:
                return ch
        return None

    def new_tree_id(self, in_use: Callable[[int], bool] | None = None) -> int:
        while True:
            tid = self._next_tree_id
            self._next_tree_id = tid + 1 if tid < 0xFFFFFFFE else 1
            if tid not in self.trees and (in_use is None or not in_use(tid)):
                return tid


class TreeConnect:
    """A session's connection to a share ([MS-SMB2] 3.3.1.10). ``share`` is None for IPC$."""

    def __init__(
        self,
        tree_id: int,
        session: Session,
        share_name: str,
        share: ShareConfig | None,
        *,
        maximal_access: int,
        encrypt_data: bool,
    ) -> None:
        self.tree_id = tree_id
        self.session = session
        self.share_name = share_name
        self.share = share
        self.maximal_access = maximal_access
        self.encrypt_data = encrypt_data

    @property
    def is_ipc(self) -> bool:
        return self.share is None
