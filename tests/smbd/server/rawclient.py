"""A small SMB2 client for tests: it sends exactly the bytes a test wants (bad ones
included) and reads the server's answers. Signing and encryption use smbd.crypto, whose
own tests check it against Microsoft's vectors and smbprotocol."""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Sequence

import spnego
import trio

from smbd import crypto
from smbd.config import SMB3_0, SMB3_1_1
from smbd.wire import negotiate as nego
from smbd.wire.constants import Command, HeaderFlags
from smbd.wire.header import HEADER_SIZE, Header, pack_header, parse_header
from smbd.wire.session import pack_session_setup_request, parse_session_setup_response
from smbd.wire.status import NTStatus
from smbd.wire.tree import pack_tree_connect_request, parse_tree_connect_response

ALL_DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)


class Reply:
    def __init__(self, header: Header, body: bytes, raw: bytes) -> None:
        self.header = header
        self.body = body
        self.raw = raw

    @property
    def status(self) -> int:
        return self.header.status


class Disconnected(Exception):
    pass


class RawClient:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buf = bytearray()
        self.next_mid = 0
        self.credits = 1
        self.dialect = 0
        self.session_id = 0
        self.signing_key = b""
        self.signing_algorithm = crypto.HMAC_SHA256
        self.cipher = 0
        self.keys: crypto.SessionKeys | None = None
        self.encryptor: crypto.Encryptor | None = None
        self.preauth = bytes(64)
        self.client_guid = uuid.uuid4().bytes
        self.negotiate_reply: nego.NegotiateResponse | None = None

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def aclose(self) -> None:
        await self.stream.aclose()

    # ---------------------------------------------------------------- framing

    async def send_frame(self, payload: bytes) -> None:
        await self.stream.send_all(struct.pack(">I", len(payload)) + payload)

    async def recv_frame(self) -> bytes:
        while True:
            if len(self._buf) >= 4:
                (n,) = struct.unpack_from(">I", self._buf)
                if len(self._buf) >= 4 + n:
                    frame = bytes(self._buf[4 : 4 + n])
                    del self._buf[: 4 + n]
                    return frame
            data = await self.stream.receive_some(1 << 20)
            if not data:
                raise Disconnected("server closed the connection")
            self._buf += data

    async def expect_disconnect(self, timeout: float = 5.0) -> None:
        with trio.fail_after(timeout):
            try:
                while True:
                    await self.recv_frame()
            except (Disconnected, trio.BrokenResourceError):
                return

    # ---------------------------------------------------------------- messages

    def header(
        self,
        command: int,
        *,
        message_id: int | None = None,
        tree_id: int = 0,
        session_id: int | None = None,
        flags: int = 0,
        credit_charge: int = 1,
        credits: int = 64,
        async_id: int = 0,
        channel_sequence: int = 0,
    ) -> Header:
        if message_id is None:
            message_id = self.next_mid
            self.next_mid += max(credit_charge, 1)
        return Header(
            credit_charge=credit_charge,
            status=channel_sequence,
            command=command,
            credits=credits,
            flags=flags,
            next_command=0,
            message_id=message_id,
            async_id=async_id,
            tree_id=tree_id,
            session_id=self.session_id if session_id is None else session_id,
            signature=bytes(16),
        )

    def build(self, header: Header, body: bytes, *, sign: bool | None = None) -> bytes:
        if sign is None:
            # as clients do: everything of a session is signed, its re-authentication too
            sign = bool(self.signing_key) and (
                header.command != Command.NEGOTIATE
                and (header.command != Command.SESSION_SETUP or header.session_id != 0)
            )
        if sign:
            header = header._replace(flags=header.flags | HeaderFlags.SIGNED)
        msg = bytearray(pack_header(header)) + body
        if sign:
            msg[48:64] = crypto.sign(self.signing_algorithm, self.signing_key, msg)
        return bytes(msg)

    def compound(self, messages: Sequence[tuple[Header, bytes]], *, sign: bool = True) -> bytes:
        out = bytearray()
        for i, (h, body) in enumerate(messages):
            size = HEADER_SIZE + len(body)
            pad = (-size) % 8 if i + 1 < len(messages) else 0
            h = h._replace(next_command=size + pad if i + 1 < len(messages) else 0)
            out += self.build(h, body + bytes(pad), sign=sign and bool(self.signing_key))
        return bytes(out)

    async def send(self, msg: bytes, *, encrypt: bool = False) -> None:
        if encrypt:
            assert self.encryptor is not None
            th, ct = self.encryptor.encrypt(self.session_id, [msg])
            msg = bytes(th) + bytes(ct)
        await self.send_frame(msg)

    async def recv(self) -> list[Reply]:
        """One frame, decrypted, split into its chain of replies."""
        frame = await self.recv_frame()
        if frame[:4] == crypto.TRANSFORM_PROTOCOL_ID:
            assert self.keys is not None
            _sid, plain = crypto.decrypt(self.cipher, self.keys.encryption, frame)
            frame = bytes(plain)
        replies = []
        off = 0
        while True:
            h = parse_header(frame, off)
            end = off + h.next_command if h.next_command else len(frame)
            replies.append(Reply(h, frame[off + HEADER_SIZE : end], frame[off:end]))
            self.credits += h.credits
            if not h.next_command:
                return replies
            off = end

    async def recv_one(self, *, skip_pending: bool = True) -> Reply:
        while True:
            (r,) = await self.recv()
            if skip_pending and r.status == NTStatus.PENDING:
                continue
            return r

    async def call(
        self, command: int, body: bytes, *, encrypt: bool = False, **kw: object
    ) -> Reply:
        h = self.header(command, **kw)  # type: ignore[arg-type]
        await self.send(self.build(h, body), encrypt=encrypt)
        return await self.recv_one()

    # ---------------------------------------------------------------- handshake

    async def negotiate(
        self,
        dialects: Sequence[int] = ALL_DIALECTS,
        *,
        ciphers: Sequence[int] = (crypto.AES_128_GCM, crypto.AES_128_CCM),
        signing: Sequence[int] = (crypto.AES_GMAC, crypto.AES_CMAC),
        security_mode: int = 1,
        capabilities: int = 0x7F,
    ) -> Reply:
        contexts = []
        if SMB3_1_1 in dialects:
            contexts.append(
                nego.NegotiateContext(
                    nego.PREAUTH_INTEGRITY_CAPABILITIES,
                    nego.pack_preauth_capabilities(nego.HASH_SHA512, bytes(32)),
                )
            )
            if ciphers:
                contexts.append(
                    nego.NegotiateContext(nego.ENCRYPTION_CAPABILITIES, nego.pack_id_list(ciphers))
                )
            if signing:
                contexts.append(
                    nego.NegotiateContext(nego.SIGNING_CAPABILITIES, nego.pack_id_list(signing))
                )
        body = nego.pack_negotiate_request(
            dialects,
            security_mode=security_mode,
            capabilities=capabilities,
            client_guid=self.client_guid,
            contexts=contexts,
        )
        req = self.build(self.header(Command.NEGOTIATE, credits=1), body)
        await self.send(req)
        r = await self.recv_one()
        if r.status == NTStatus.SUCCESS:
            resp = nego.parse_negotiate_response(r.body)
            self.negotiate_reply = resp
            self.dialect = resp.dialect
            self.signing_algorithm = (
                crypto.HMAC_SHA256 if resp.dialect < SMB3_0 else crypto.AES_CMAC
            )
            if resp.dialect in (0x0300, 0x0302) and resp.capabilities & 0x40:
                self.cipher = crypto.AES_128_CCM
            for ctx in resp.contexts:
                if ctx.type == nego.ENCRYPTION_CAPABILITIES:
                    self.cipher = nego.parse_encryption_capabilities(ctx.data)[0]
                elif ctx.type == nego.SIGNING_CAPABILITIES:
                    self.signing_algorithm = nego.parse_signing_capabilities(ctx.data)[0]
            if resp.dialect == SMB3_1_1:
                self.preauth = crypto.preauth_update(crypto.preauth_update(bytes(64), req), r.raw)
        return r

    async def session_setup(
        self,
        user: str,
        password: str,
        *,
        reauth: bool = False,
        bind_to: RawClient | None = None,
    ) -> Reply:
        """Authenticate: a new session; ``reauth`` re-authenticates this client's session;
        ``bind_to`` binds this connection to another client's session as a channel."""
        ctx = spnego.client(user, password, hostname="vmstor", protocol="ntlm")
        token = ctx.step()
        preauth = self.preauth
        session_id = 0
        flags = 0
        sign_key = b""
        if reauth:
            session_id = self.session_id
            sign_key = self.signing_key
        elif bind_to is not None:
            session_id = bind_to.session_id
            sign_key = bind_to.signing_key
            flags = 0x01  # SMB2_SESSION_FLAG_BINDING
        while True:
            assert token is not None
            h = self.header(Command.SESSION_SETUP, session_id=session_id)
            body = pack_session_setup_request(token, flags=flags)
            if sign_key:
                saved = self.signing_key, self.signing_algorithm
                self.signing_key = sign_key
                if bind_to is not None:  # signed with the session's key and algorithm
                    self.signing_algorithm = bind_to.signing_algorithm
                req = self.build(h, body, sign=True)
                self.signing_key, self.signing_algorithm = saved
            else:
                req = self.build(h, body)
            preauth = crypto.preauth_update(preauth, req)
            await self.send(req)
            r = await self.recv_one()
            session_id = r.header.session_id
            if r.status == NTStatus.MORE_PROCESSING_REQUIRED:
                preauth = crypto.preauth_update(preauth, r.raw)
                token = ctx.step(parse_session_setup_response(r.body).token)
                continue
            if r.status != NTStatus.SUCCESS:
                return r
            resp = parse_session_setup_response(r.body)
            if resp.token:
                ctx.step(resp.token)
            if reauth:
                return r
            self.session_id = session_id
            keys = crypto.derive_keys(
                ctx.session_key,
                self.dialect,
                preauth if self.dialect == SMB3_1_1 else None,
                self.cipher,
            )
            self.signing_key = keys.signing
            if bind_to is not None:
                # a channel signs with its own key; the other keys are the session's
                assert r.header.flags & HeaderFlags.SIGNED
                assert crypto.verify(self.signing_algorithm, self.signing_key, r.raw)
                self.keys = bind_to.keys
                self.encryptor = bind_to.encryptor
                return r
            self.keys = keys
            if keys.decryption and self.cipher:
                # the client encrypts with the server's decryption key
                self.encryptor = crypto.Encryptor(self.cipher, keys.decryption, _rng)
            if r.header.flags & HeaderFlags.SIGNED:
                assert crypto.verify(self.signing_algorithm, self.signing_key, r.raw)
            return r

    async def tree_connect(self, path: str, *, encrypt: bool = False, credits: int = 64) -> Reply:
        r = await self.call(
            Command.TREE_CONNECT, pack_tree_connect_request(path), encrypt=encrypt, credits=credits
        )
        if r.status == NTStatus.SUCCESS:
            parse_tree_connect_response(r.body)
        return r


def _rng(n: int) -> bytes:
    return os.urandom(n)
