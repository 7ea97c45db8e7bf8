"""NEGOTIATE ([MS-SMB2] 3.3.5.3 SMB1 multi-protocol negotiate, 3.3.5.4 SMB2 NEGOTIATE) and
FSCTL_VALIDATE_NEGOTIATE_INFO (3.3.5.15.12)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from smbd import crypto
from smbd.auth import negotiate_token
from smbd.config import SMB2_0_2, SMB2_1, SMB3_0, SMB3_0_2, SMB3_1_1, ServerConfig
from smbd.server.compose import OutMessage
from smbd.server.model import Connection, ConnState
from smbd.server.request import Request, Response, SMBError
from smbd.wire import negotiate as wire
from smbd.wire.constants import DIALECT_WILDCARD, Capabilities, Command, SecurityMode
from smbd.wire.errors import ParseError
from smbd.wire.header import Header
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.server import SMBServer

SUPPORTED_DIALECTS = (SMB2_0_2, SMB2_1, SMB3_0, SMB3_0_2, SMB3_1_1)

# The server's order of preference ([MS-SMB2] 3.3.5.4 lets the server choose; Windows
# picks AES-128-GCM first).
CIPHER_PREFERENCE = (
    crypto.AES_128_GCM,
    crypto.AES_128_CCM,
    crypto.AES_256_GCM,
    crypto.AES_256_CCM,
)
SIGNING_PREFERENCE = (crypto.AES_GMAC, crypto.AES_CMAC, crypto.HMAC_SHA256)

SMALL_MTU = 65536
_ZERO_HASH = bytes(64)


def select_dialect(config: ServerConfig, offered: Sequence[int]) -> int | None:
    """The highest dialect both sides support within the configured range."""
    common = [
        d
        for d in offered
        if d in SUPPORTED_DIALECTS and config.min_dialect <= d <= config.max_dialect
    ]
    return max(common, default=None)


def server_security_mode(config: ServerConfig) -> int:
    mode = SecurityMode.SIGNING_ENABLED
    if config.require_signing:
        mode |= SecurityMode.SIGNING_REQUIRED
    return int(mode)


def server_capabilities(config: ServerConfig, dialect: int, client_caps: int) -> int:
    """[MS-SMB2] 3.3.5.4: the Capabilities of the NEGOTIATE response."""
    caps = 0
    if dialect >= SMB2_1:
        caps |= Capabilities.LEASING | Capabilities.LARGE_MTU
    if dialect >= SMB3_0:
        if config.multichannel:
            caps |= Capabilities.MULTI_CHANNEL
        if dialect < SMB3_1_1 and client_caps & Capabilities.ENCRYPTION:
            caps |= Capabilities.ENCRYPTION  # 3.1.1 says it with the cipher context
    return int(caps)


class NegotiateOutcome:
    """The pure decision for one NEGOTIATE request."""

    __slots__ = ("capabilities", "cipher", "contexts", "dialect", "signing_algorithm")

    def __init__(self) -> None:
        self.dialect = 0
        self.capabilities = 0
        self.cipher = 0
        self.signing_algorithm = crypto.HMAC_SHA256
        self.contexts: list[wire.NegotiateContext] = []


def decide(config: ServerConfig, r: wire.NegotiateRequest, salt: bytes) -> NegotiateOutcome:
    """[MS-SMB2] 3.3.5.4 without the I/O. Raises SMBError with the NTSTATUS to answer."""
    dialect = select_dialect(config, r.dialects)
    if dialect is None:
        raise SMBError(NTStatus.NOT_SUPPORTED, f"no common dialect in {r.dialects}")
    o = NegotiateOutcome()
    o.dialect = dialect
    o.capabilities = server_capabilities(config, dialect, r.capabilities)
    if dialect < SMB3_0:
        o.signing_algorithm = crypto.HMAC_SHA256
    else:
        o.signing_algorithm = crypto.AES_CMAC
        if dialect < SMB3_1_1 and o.capabilities & Capabilities.ENCRYPTION:
            o.cipher = crypto.AES_128_CCM
    if dialect != SMB3_1_1:
        return o
    seen: set[int] = set()
    preauth: wire.PreauthCapabilities | None = None
    ciphers: tuple[int, ...] | None = None
    signing: tuple[int, ...] | None = None
    for ctx in r.contexts:
        if ctx.type in seen and ctx.type in (
            wire.PREAUTH_INTEGRITY_CAPABILITIES,
            wire.ENCRYPTION_CAPABILITIES,
            wire.SIGNING_CAPABILITIES,
            wire.COMPRESSION_CAPABILITIES,
        ):
            raise SMBError(NTStatus.INVALID_PARAMETER, f"duplicate negotiate context {ctx.type}")
        seen.add(ctx.type)
        try:
            if ctx.type == wire.PREAUTH_INTEGRITY_CAPABILITIES:
                preauth = wire.parse_preauth_capabilities(ctx.data)
            elif ctx.type == wire.ENCRYPTION_CAPABILITIES:
                ciphers = wire.parse_encryption_capabilities(ctx.data)
            elif ctx.type == wire.SIGNING_CAPABILITIES:
                signing = wire.parse_signing_capabilities(ctx.data)
        except ParseError as e:
            raise SMBError(e.status, str(e)) from None
        # anything else (compression, netname, transport, RDMA, POSIX) is ignored
    if preauth is None:
        raise SMBError(NTStatus.INVALID_PARAMETER, "3.1.1 without PREAUTH_INTEGRITY_CAPABILITIES")
    if wire.HASH_SHA512 not in preauth.hash_algorithms:
        raise SMBError(NTStatus.SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP, "no SHA-512")
    o.contexts.append(
        wire.NegotiateContext(
            wire.PREAUTH_INTEGRITY_CAPABILITIES,
            wire.pack_preauth_capabilities(wire.HASH_SHA512, salt),
        )
    )
    if ciphers is not None:
        o.cipher = next((c for c in CIPHER_PREFERENCE if c in ciphers), 0)
        o.contexts.append(
            wire.NegotiateContext(wire.ENCRYPTION_CAPABILITIES, wire.pack_id_list([o.cipher]))
        )
    if signing is not None:
        o.signing_algorithm = next((a for a in SIGNING_PREFERENCE if a in signing), crypto.AES_CMAC)
        o.contexts.append(
            wire.NegotiateContext(
                wire.SIGNING_CAPABILITIES, wire.pack_id_list([o.signing_algorithm])
            )
        )
    return o


def _response_body(
    server: SMBServer, conn: Connection, dialect: int, contexts: Sequence[wire.NegotiateContext]
) -> bytes:
    config = server.config
    large = bool(conn.capabilities & Capabilities.LARGE_MTU)
    return wire.pack_negotiate_response(
        wire.NegotiateResponse(
            security_mode=server_security_mode(config),
            dialect=dialect,
            server_guid=config.server_guid,
            capabilities=conn.capabilities,
            max_transact_size=config.max_transact_size if large else SMALL_MTU,
            max_read_size=config.max_read_size if large else SMALL_MTU,
            max_write_size=config.max_write_size if large else SMALL_MTU,
            system_time=wire.filetime(server.wall_clock()),
            server_start_time=0,
            security_buffer=negotiate_token(),
            contexts=tuple(contexts),
        )
    )


def _apply(
    server: SMBServer, conn: Connection, r: wire.NegotiateRequest, o: NegotiateOutcome
) -> None:
    config = server.config
    conn.dialect = o.dialect
    conn.client_guid = r.client_guid
    conn.client_capabilities = r.capabilities
    conn.client_security_mode = r.security_mode
    conn.client_dialects = r.dialects
    conn.capabilities = o.capabilities
    conn.security_mode = server_security_mode(config)
    conn.cipher_id = o.cipher
    conn.signing_algorithm = o.signing_algorithm
    large = conn.supports_large_mtu
    conn.max_read_size = config.max_read_size if large else SMALL_MTU
    conn.max_write_size = config.max_write_size if large else SMALL_MTU
    conn.max_transact_size = config.max_transact_size if large else SMALL_MTU
    conn.state = ConnState.NEGOTIATED


async def handle_negotiate(req: Request) -> Response:
    """[MS-SMB2] 3.3.5.4 Receiving an SMB2 NEGOTIATE Request."""
    server = req.server
    conn = req.connection
    r = wire.parse_negotiate_request(req.body)
    salt = server.rng(32)
    o = decide(server.config, r, salt)
    _apply(server, conn, r, o)
    body = _response_body(server, conn, o.dialect, o.contexts)
    if o.dialect == SMB3_1_1:
        h = crypto.preauth_update(_ZERO_HASH, req.message)

        def _hash_response(sent: bytes) -> None:
            conn.preauth_hash = crypto.preauth_update(h, sent)

        req.on_response = _hash_response
    server.log.info(
        "negotiated SMB %s",
        conn.dialect_text,
        extra={
            "conn": conn.conn_id,
            "peer": conn.peer,
            "cipher": o.cipher,
            "signing": o.signing_algorithm,
        },
    )
    return Response([body])


async def handle_smb1_negotiate(
    server: SMBServer, conn: Connection, msg: memoryview
) -> OutMessage | None:
    """[MS-SMB2] 3.3.5.3.1: an SMB1 NEGOTIATE offering "SMB 2.???" is answered with
    dialect 0x02FF (the client then sends an SMB2 NEGOTIATE); one offering only
    "SMB 2.002" is answered with 2.0.2 directly, as Samba does. None: no SMB2 dialect
    (the caller disconnects)."""
    try:
        names = wire.parse_smb1_negotiate(msg)
    except ParseError:
        return None
    config = server.config
    if wire.SMB2_DIALECT_STRING_WILDCARD in names and config.max_dialect >= SMB2_1:
        dialect = DIALECT_WILDCARD
        conn.state = ConnState.WILDCARD
        conn.dialect = DIALECT_WILDCARD
        conn.capabilities = 0
    elif wire.SMB2_DIALECT_STRING_002 in names and config.min_dialect <= SMB2_0_2:
        dialect = SMB2_0_2
        _apply(
            server,
            conn,
            wire.NegotiateRequest(0, 0, bytes(16), (SMB2_0_2,), ()),
            decide(config, wire.NegotiateRequest(0, 0, bytes(16), (SMB2_0_2,), ()), b""),
        )
    else:
        return None
    # the SMB1 request consumed MessageId 0 ([MS-SMB2] 3.3.5.3.1)
    conn.credits.consume(0, 1)
    grant = conn.credits.grant(1)
    header = Header(
        credit_charge=0,
        status=NTStatus.SUCCESS,
        command=Command.NEGOTIATE,
        credits=grant,
        flags=0,
        next_command=0,
        message_id=0,
        async_id=0,
        tree_id=0,
        session_id=0,
        signature=bytes(16),
    )
    body = _response_body(server, conn, dialect, ())
    server.log.info(
        "SMB1 negotiate answered with 0x%04x",
        dialect,
        extra={"conn": conn.conn_id, "peer": conn.peer},
    )
    return OutMessage(header, [body])


# ------------------------------------------------------------------------------------
# FSCTL_VALIDATE_NEGOTIATE_INFO ([MS-SMB2] 2.2.31.4, 2.2.32.6, 3.3.5.15.12)

FSCTL_VALIDATE_NEGOTIATE_INFO = 0x00140204
_VNI_IN = struct.Struct("<I16sHH")
_VNI_OUT = struct.Struct("<I16sHH")


class ValidateNegotiateMismatch(Exception):
    """The client's view of the negotiation differs: the connection must be dropped."""


def validate_negotiate(server: SMBServer, conn: Connection, data: bytes | memoryview) -> bytes:
    """Check the client's VALIDATE_NEGOTIATE_INFO input against what NEGOTIATE saw; return
    the 24-byte output. Raises ValidateNegotiateMismatch (disconnect) or SMBError."""
    if conn.dialect == SMB2_0_2:
        raise SMBError(NTStatus.FILE_CLOSED, "VALIDATE_NEGOTIATE_INFO on 2.0.2")
    if len(data) < _VNI_IN.size:
        raise SMBError(NTStatus.INVALID_PARAMETER, "short VALIDATE_NEGOTIATE_INFO")
    caps, guid, mode, count = _VNI_IN.unpack_from(data, 0)
    if count == 0 or _VNI_IN.size + 2 * count > len(data):
        raise SMBError(NTStatus.INVALID_PARAMETER, "VALIDATE_NEGOTIATE_INFO dialects")
    dialects = struct.unpack_from(f"<{count}H", data, _VNI_IN.size)
    if (
        caps != conn.client_capabilities
        or bytes(guid) != conn.client_guid
        or mode != conn.client_security_mode
        or select_dialect(server.config, dialects) != conn.dialect
    ):
        raise ValidateNegotiateMismatch("VALIDATE_NEGOTIATE_INFO does not match NEGOTIATE")
    return _VNI_OUT.pack(
        conn.capabilities, server.config.server_guid, conn.security_mode, conn.dialect
    )


__all__ = [
    "CIPHER_PREFERENCE",
    "FSCTL_VALIDATE_NEGOTIATE_INFO",
    "SIGNING_PREFERENCE",
    "SUPPORTED_DIALECTS",
    "ValidateNegotiateMismatch",
    "decide",
    "handle_negotiate",
    "handle_smb1_negotiate",
    "select_dialect",
    "validate_negotiate",
]
