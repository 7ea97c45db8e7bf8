"""SESSION_SETUP ([MS-SMB2] 3.3.5.5: new sessions, re-authentication, binding) and LOGOFF
(3.3.5.6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smbd import crypto
from smbd.auth import ServerAuthenticator
from smbd.config import SMB3_0, SMB3_1_1
from smbd.server.model import Channel, Session, SessionState
from smbd.server.request import Request, Response, SMBError
from smbd.wire.constants import HeaderFlags, SecurityMode, SessionFlags
from smbd.wire.misc import SIMPLE_BODY, parse_simple
from smbd.wire.session import pack_session_setup_response, parse_session_setup_request
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.server import SMBServer


class Binding:
    """A binding exchange in progress on one connection ([MS-SMB2] 3.3.5.5.2)."""

    __slots__ = ("authenticator", "preauth_hash")

    def __init__(self, authenticator: ServerAuthenticator, preauth_hash: bytes | None) -> None:
        self.authenticator = authenticator
        self.preauth_hash = preauth_hash


def new_authenticator(server: SMBServer) -> ServerAuthenticator:
    return ServerAuthenticator(
        server.credentials,
        server_name=server.config.server_name,
        domain=server.config.server_name,
        allow_guest=server.config.allow_guest,
        rng=server.rng,
        now=server.wall_clock,
        logger=server.log.getChild("auth"),
    )


async def handle_session_setup(req: Request) -> Response:
    server = req.server
    conn = req.connection
    r = parse_session_setup_request(req.body)
    sid = req.header.session_id
    if r.binding:
        return _bind(req, r.token, sid)
    if sid == 0:
        if len(conn.sessions) >= server.limits.sessions_per_connection:
            raise SMBError(NTStatus.INSUFFICIENT_RESOURCES, "too many sessions on a connection")
        session = server.new_session(conn)
        session.authenticator = new_authenticator(server)
    else:
        found = conn.sessions.get(sid)
        if found is None or server.sessions.get(sid) is not found:
            other = server.sessions.get(sid)
            if (
                other is not None
                and other.keys is not None
                and req.header.flags & HeaderFlags.SIGNED
                and crypto.verify(other.signing_algorithm, other.signing_key, req.message)
            ):
                req.session = other  # signed with its key: clients that sign require it
            raise SMBError(NTStatus.USER_SESSION_DELETED, f"no session 0x{sid:x}")
        session = found
        if session.authenticator is None:  # re-authentication starts
            session.authenticator = new_authenticator(server)
    req.session = session
    new = session.state is SessionState.IN_PROGRESS
    hashing = new and conn.dialect == SMB3_1_1 and session.preauth_hash is not None
    if hashing:
        assert session.preauth_hash is not None
        session.preauth_hash = crypto.preauth_update(session.preauth_hash, req.message)

    result = session.authenticator.step(r.token)
    extra = {"conn": conn.conn_id, "session": session.session_id}
    if result.status == NTStatus.MORE_PROCESSING_REQUIRED:
        if hashing:

            def _hash(sent: bytes) -> None:
                if session.preauth_hash is not None:
                    session.preauth_hash = crypto.preauth_update(session.preauth_hash, sent)

            req.on_response = _hash
        return Response(
            [pack_session_setup_response(0, result.token)], NTStatus.MORE_PROCESSING_REQUIRED
        )
    session.authenticator = None
    if result.status != NTStatus.SUCCESS:
        server.log.warning(
            "authentication failed (0x%08x)", result.status, extra={**extra, "user": result.user}
        )
        await server.logoff(session)  # a failed re-authentication ends the session too
        raise SMBError(result.status, "authentication failed")
    if (result.is_guest or result.is_anonymous) and not server.config.allow_guest:
        await server.logoff(session)
        status = NTStatus.ACCESS_DENIED if result.is_anonymous else NTStatus.LOGON_FAILURE
        raise SMBError(status, "guest and anonymous sessions are not allowed")

    if not new:
        # [MS-SMB2] 3.3.5.5.3: a re-authentication keeps the keys.
        session.user = result.user or ""
        session.domain = result.domain or ""
        server.log.info("re-authenticated %s", session.user, extra=extra)
        return Response([pack_session_setup_response(_flags(session), result.token)])

    session.user = result.user or ""
    session.domain = result.domain or ""
    session.is_guest = result.is_guest
    session.is_anonymous = result.is_anonymous
    session.dialect = conn.dialect
    can_sign = bool(result.session_key) and not (result.is_guest or result.is_anonymous)
    if can_sign:
        assert result.session_key is not None
        session.session_key = result.session_key
        session.keys = crypto.derive_keys(
            result.session_key,
            conn.dialect,
            session.preauth_hash if conn.dialect == SMB3_1_1 else None,
            conn.cipher_id,
        )
        session.signing_required = bool(
            server.config.require_signing
            or conn.client_security_mode & SecurityMode.SIGNING_REQUIRED
        )
        if conn.supports_encryption and session.keys.encryption:
            session.encryptor = crypto.Encryptor(
                conn.cipher_id, session.keys.encryption, server.rng
            )
            session.encrypt_data = server.config.encrypt
    if server.config.encrypt and not session.encrypt_data:
        # [MS-SMB2] 3.3.5.5.3: the server rejects unencrypted access
        await server.logoff(session)
        raise SMBError(NTStatus.ACCESS_DENIED, "the server requires encryption")
    session.channels = [Channel(conn, session.keys.signing if session.keys else b"")]
    session.state = SessionState.VALID
    req.sign_response = True
    server.log.info(
        "session for %s\\%s (SMB %s%s%s)",
        session.domain,
        session.user,
        conn.dialect_text,
        ", signed" if session.signing_required else "",
        ", encrypted" if session.encrypt_data else "",
        extra=extra,
    )
    if r.previous_session_id and r.previous_session_id != session.session_id:
        prev = server.sessions.get(r.previous_session_id)
        if prev is not None and prev.user == session.user and prev.domain == session.domain:
            await server.logoff(prev)
    return Response([pack_session_setup_response(_flags(session), result.token)])


def _flags(session: Session) -> int:
    flags = 0
    if session.is_guest:
        flags |= SessionFlags.IS_GUEST
    if session.is_anonymous:
        flags |= SessionFlags.IS_NULL
    if session.encrypt_data and session.dialect >= SMB3_0:
        flags |= SessionFlags.ENCRYPT_DATA
    return int(flags)


def _bind(req: Request, token: bytes, sid: int) -> Response:
    """[MS-SMB2] 3.3.5.5.2: bind this connection to an existing session as a new channel."""
    server = req.server
    conn = req.connection
    if sid == 0:
        raise SMBError(NTStatus.INVALID_PARAMETER, "binding without a SessionId")
    session = server.sessions.get(sid)
    if session is None:
        raise SMBError(NTStatus.USER_SESSION_DELETED, f"no session 0x{sid:x} to bind")
    signed = bool(req.header.flags & HeaderFlags.SIGNED) and crypto.verify(
        session.signing_algorithm, session.signing_key, req.message
    )
    if signed:
        req.session = session  # every answer, errors included, is signed with its key
    if session.signing_algorithm != conn.signing_algorithm:
        # HMAC-SHA256 and AES-CMAC channels may mix (each channel signs with what its
        # connection negotiated); GMAC may not. The order of these checks is the one the
        # smb2.session.bind_negative_* tests expect (as Windows and Samba answer).
        if session.signing_algorithm == crypto.AES_GMAC:
            raise SMBError(NTStatus.REQUEST_OUT_OF_SEQUENCE, "session signs with GMAC")
        if conn.signing_algorithm == crypto.AES_GMAC:
            raise SMBError(NTStatus.NOT_SUPPORTED, "connection signs with GMAC")
    if conn.dialect < SMB3_0 or not (server.config.multichannel and conn.supports_multichannel):
        raise SMBError(NTStatus.REQUEST_NOT_ACCEPTED, "multichannel is not negotiated")
    if session.state is not SessionState.VALID:
        raise SMBError(NTStatus.REQUEST_NOT_ACCEPTED, "session is not valid")
    if session.is_guest or session.is_anonymous or session.keys is None:
        raise SMBError(NTStatus.NOT_SUPPORTED, "guest sessions cannot bind")
    if session.dialect != conn.dialect:
        raise SMBError(NTStatus.INVALID_PARAMETER, "binding from another dialect")
    if session.cipher_id != conn.cipher_id:
        raise SMBError(NTStatus.INVALID_PARAMETER, "binding with a different cipher")
    if not req.header.flags & HeaderFlags.SIGNED:
        raise SMBError(NTStatus.INVALID_PARAMETER, "binding request is not signed")
    if session.channel_for(conn) is not None:
        # the core has checked the request with this channel's key (3.3.5.2.4)
        req.session = session
        raise SMBError(NTStatus.REQUEST_NOT_ACCEPTED, "already bound on this connection")
    if not signed:
        raise SMBError(NTStatus.ACCESS_DENIED, "binding request has a bad signature")
    if len(session.channels) >= server.limits.channels_per_session:
        raise SMBError(NTStatus.INSUFFICIENT_RESOURCES, "too many channels")
    binding = conn.bindings.get(sid)
    if binding is None:
        binding = Binding(new_authenticator(server), conn.preauth_hash)
        conn.bindings[sid] = binding
    if binding.preauth_hash is not None:
        binding.preauth_hash = crypto.preauth_update(binding.preauth_hash, req.message)
    result = binding.authenticator.step(token)
    if result.status == NTStatus.MORE_PROCESSING_REQUIRED:

        def _hash(sent: bytes) -> None:
            if binding.preauth_hash is not None:
                binding.preauth_hash = crypto.preauth_update(binding.preauth_hash, sent)

        req.on_response = _hash
        return Response(
            [pack_session_setup_response(0, result.token)], NTStatus.MORE_PROCESSING_REQUIRED
        )
    del conn.bindings[sid]
    if result.status != NTStatus.SUCCESS:
        raise SMBError(result.status, "binding authentication failed")
    if (result.user or "").lower() != session.user.lower() or not result.session_key:
        raise SMBError(NTStatus.ACCESS_DENIED, "binding as a different user")
    keys = crypto.derive_keys(
        result.session_key,
        conn.dialect,
        binding.preauth_hash if conn.dialect == SMB3_1_1 else None,
        conn.cipher_id,
    )
    session.channels.append(Channel(conn, keys.signing))
    conn.sessions[sid] = session
    req.sign_response = True
    server.log.info(
        "bound channel %d of session for %s",
        len(session.channels),
        session.user,
        extra={"conn": conn.conn_id, "session": sid},
    )
    return Response([pack_session_setup_response(_flags(session), result.token)])


async def handle_logoff(req: Request) -> Response:
    """[MS-SMB2] 3.3.5.6"""
    parse_simple(req.body, "LOGOFF")
    assert req.session is not None
    await req.server.logoff(req.session)
    return Response([SIMPLE_BODY])


__all__ = ["Binding", "handle_logoff", "handle_session_setup"]
