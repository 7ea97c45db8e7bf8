"""A minimal SMB 3.1.1 client over direct TCP or SMB Direct, for tests and benchmarks (no
third-party SMB Direct client runs on Linux userspace).

It does what moving file data needs and no more: NEGOTIATE (3.1.1 with pre-auth integrity,
encryption and signing contexts), SESSION_SETUP with NTLM (pyspnego), TREE_CONNECT,
CREATE, READ, WRITE, CLOSE, LOGOFF; every request after the session is set up is signed,
or encrypted when the session or the share asks for it, and every response is checked.

Over SMB Direct, READ and WRITE of ``rdma_threshold`` bytes or more use
SMB2_CHANNEL_RDMA_V1_INVALIDATE: the client registers its buffer and the server moves the
data with RDMA Write / RDMA Read ([MS-SMB2] 3.2.4.6, 3.2.4.7). As the Linux client does,
a session that encrypts sends its data inline (the payload of an RDMA transfer is not
covered by SMB2 encryption without the 3.1.1 RDMA transform).

    async with await SMBClient.connect_tcp(host, port) as c:  # or connect_smbdirect(channel)
        await c.negotiate(); await c.session_setup(user, password)
        tid = await c.tree_connect(r"\\\\host\\share")
        fid = await c.create(tid, "disk.img", create=True)
        await c.write(tid, fid, 0, data)
        n = await c.read(tid, fid, 0, buf)
        await c.close(tid, fid)
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

import spnego
import trio

from rdma.smbdirect import RegisteredBuffer, SmbDirectChannel
from smbd import crypto
from smbd.config import SMB3_0_2, SMB3_1_1
from smbd.wire import close as close_wire
from smbd.wire import create as create_wire
from smbd.wire import ioctl as ioctl_wire
from smbd.wire import negotiate as nego
from smbd.wire import rw
from smbd.wire.constants import Capabilities, Command, HeaderFlags, SessionFlags, ShareFlags
from smbd.wire.header import HEADER_SIZE, Header, pack_header, parse_header
from smbd.wire.session import pack_session_setup_request, parse_session_setup_response
from smbd.wire.status import NTStatus
from smbd.wire.tree import pack_tree_connect_request, parse_tree_connect_response

__all__ = ["SMBClient", "SMBClientError"]

Buffer = bytes | bytearray | memoryview
_PREFIX = struct.Struct(">I")
_CREDIT_UNIT = 65536
_INLINE_SLACK = 4096  # header, fixed parts and transform header under MaxFragmentedSize
# [MS-SMB2] 2.2.21 WRITE request fixed part; inline data follows it at offset 0x70
_WRITE_REQ = struct.Struct("<HHIQQQIIHHI")
_WRITE_DATA_OFFSET = HEADER_SIZE + _WRITE_REQ.size


class SMBClientError(Exception):
    def __init__(self, command: str, status: int) -> None:
        try:
            name = NTStatus(status).name
        except ValueError:
            name = f"0x{status:08x}"
        super().__init__(f"{command} failed: {name}")
        self.status = status


class _Link(Protocol):
    async def send(self, parts: Sequence[Buffer]) -> None: ...
    async def receive(self) -> memoryview: ...
    async def aclose(self) -> None: ...


class _TcpLink:
    """[MS-SMB2] 2.1 direct TCP framing."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream

    async def send(self, parts: Sequence[Buffer]) -> None:
        views = [memoryview(_PREFIX.pack(sum(len(p) for p in parts)))]
        views += [memoryview(p).cast("B") for p in parts if len(p)]
        while views:
            sent = await self.stream.socket.sendmsg(views)
            while views and sent >= len(views[0]):
                sent -= len(views.pop(0))
            if views and sent:
                views[0] = views[0][sent:]

    async def _exactly(self, view: memoryview) -> None:
        got = 0
        while got < len(view):
            n = await self.stream.socket.recv_into(view[got:])
            if not n:
                raise EOFError("the server closed the connection")
            got += n

    async def receive(self) -> memoryview:
        prefix = bytearray(4)
        await self._exactly(memoryview(prefix))
        (n,) = _PREFIX.unpack(prefix)
        buf = bytearray(n & 0xFFFFFF)
        await self._exactly(memoryview(buf))
        return memoryview(buf)

    async def aclose(self) -> None:
        await self.stream.aclose()


class _SmbDirectLink:
    def __init__(self, channel: SmbDirectChannel) -> None:
        self.channel = channel

    async def send(self, parts: Sequence[Buffer]) -> None:
        await self.channel.send_message(parts)

    async def receive(self) -> memoryview:
        return await self.channel.receive_message()

    async def aclose(self) -> None:
        pass  # the channel's owner closes it


class SMBClient:
    def __init__(
        self,
        link: _Link,
        *,
        channel: SmbDirectChannel | None = None,
        rdma_threshold: int = 4096,
    ) -> None:
        self._link = link
        self.channel = channel
        self.rdma_threshold = rdma_threshold
        self._lock = trio.Lock()
        self.next_mid = 0
        self.credits = 1
        self.dialect = 0
        self.session_id = 0
        self.signing = True  # sign requests once the session has a key
        self.signing_key = b""
        self.signing_algorithm = crypto.AES_CMAC
        self.cipher = 0
        self.keys: crypto.SessionKeys | None = None
        self.encryptor: crypto.Encryptor | None = None
        self.encrypt_session = False
        self.encrypt_trees: set[int] = set()
        self.preauth = bytes(64)
        self.client_guid = uuid.uuid4().bytes
        self.max_read_size = 65536
        self.max_write_size = 65536
        self.rdma_reads = 0
        self.rdma_writes = 0
        self.last_request = b""

    @classmethod
    async def connect_tcp(cls, host: str, port: int) -> SMBClient:
        return cls(_TcpLink(await trio.open_tcp_stream(host, port)))

    @classmethod
    def over_smbdirect(cls, channel: SmbDirectChannel, *, rdma_threshold: int = 4096) -> SMBClient:
        """A client on an SMB Direct channel (from :func:`rdma.smbdirect.connect`)."""
        return cls(_SmbDirectLink(channel), channel=channel, rdma_threshold=rdma_threshold)

    async def __aenter__(self) -> SMBClient:
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        e: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._link.aclose()

    # ---------------------------------------------------------------- messages

    def _encrypts(self, tree_id: int) -> bool:
        return self.encryptor is not None and (
            self.encrypt_session or tree_id in self.encrypt_trees
        )

    async def call(
        self,
        command: int,
        body: Sequence[Buffer],
        *,
        tree_id: int = 0,
        charge_bytes: int = 0,
        sign: bool = True,
    ) -> tuple[Header, memoryview, bytes]:
        """Send one request, return (header, body, raw response) of its final response.
        ``last_request`` keeps the request's bytes (for the pre-auth hash)."""
        charge = max(1, (max(charge_bytes, 1) - 1) // _CREDIT_UNIT + 1) if self.dialect else 1
        async with self._lock:
            mid = self.next_mid
            self.next_mid += charge
            header = Header(
                credit_charge=charge if self.dialect else 0,
                status=0,
                command=command,
                credits=max(charge, 64),
                flags=0,
                next_command=0,
                message_id=mid,
                async_id=0,
                tree_id=tree_id,
                session_id=self.session_id,
                signature=bytes(16),
            )
            encrypt = self._encrypts(tree_id) and command != Command.SESSION_SETUP
            signed = sign and self.signing and bool(self.signing_key) and not encrypt
            if signed:
                header = header._replace(flags=HeaderFlags.SIGNED)
            hdr = pack_header(header)
            parts: list[Buffer] = [hdr, *body]
            if signed:
                hdr[48:64] = crypto.sign_parts(self.signing_algorithm, self.signing_key, parts)
            if encrypt:
                assert self.encryptor is not None
                parts = list(self.encryptor.encrypt(self.session_id, parts))
            if command in (Command.NEGOTIATE, Command.SESSION_SETUP):
                self.last_request = b"".join(bytes(p) for p in parts)
            await self._link.send(parts)
            while True:
                raw = await self._link.receive()
                was_encrypted = bytes(raw[:4]) == crypto.TRANSFORM_PROTOCOL_ID
                if was_encrypted:
                    assert self.keys is not None
                    _sid, plain = crypto.decrypt(self.cipher, self.keys.encryption, raw)
                    raw = memoryview(plain)
                h = parse_header(raw)
                if h.next_command:
                    raise SMBClientError("compound response", NTStatus.INVALID_PARAMETER)
                self.credits += h.credits
                if h.status == NTStatus.PENDING and h.flags & HeaderFlags.ASYNC_COMMAND:
                    continue
                if h.message_id != mid:
                    raise SMBClientError(f"response to message {h.message_id}", h.status)
                if encrypt and not was_encrypted:
                    raise SMBClientError("unencrypted response", h.status)
                if (
                    signed
                    and not was_encrypted
                    and not crypto.verify(self.signing_algorithm, self.signing_key, raw)
                ):
                    raise SMBClientError("response signature", h.status)
                return h, raw[HEADER_SIZE:], bytes(raw)

    async def _ok(
        self,
        command: int,
        body: Sequence[Buffer],
        name: str,
        *,
        tree_id: int = 0,
        charge_bytes: int = 0,
    ) -> tuple[Header, memoryview]:
        h, b, _raw = await self.call(command, body, tree_id=tree_id, charge_bytes=charge_bytes)
        if h.status != NTStatus.SUCCESS:
            raise SMBClientError(name, h.status)
        return h, b

    # ---------------------------------------------------------------- handshake

    async def negotiate(self) -> None:
        contexts = [
            nego.NegotiateContext(
                nego.PREAUTH_INTEGRITY_CAPABILITIES,
                nego.pack_preauth_capabilities(nego.HASH_SHA512, os.urandom(32)),
            ),
            nego.NegotiateContext(
                nego.ENCRYPTION_CAPABILITIES,
                nego.pack_id_list((crypto.AES_128_GCM, crypto.AES_128_CCM)),
            ),
            nego.NegotiateContext(
                nego.SIGNING_CAPABILITIES, nego.pack_id_list((crypto.AES_GMAC, crypto.AES_CMAC))
            ),
        ]
        body = nego.pack_negotiate_request(
            (SMB3_0_2, SMB3_1_1),
            security_mode=1,
            capabilities=int(
                Capabilities.LARGE_MTU | Capabilities.MULTI_CHANNEL | Capabilities.ENCRYPTION
            ),
            client_guid=self.client_guid,
            contexts=contexts,
        )
        h, b, raw = await self.call(Command.NEGOTIATE, [body])
        if h.status != NTStatus.SUCCESS:
            raise SMBClientError("NEGOTIATE", h.status)
        resp = nego.parse_negotiate_response(b)
        self.dialect = resp.dialect
        self.max_read_size = resp.max_read_size
        self.max_write_size = resp.max_write_size
        if resp.dialect == SMB3_0_2 and resp.capabilities & Capabilities.ENCRYPTION:
            self.cipher = crypto.AES_128_CCM
        for ctx in resp.contexts:
            if ctx.type == nego.ENCRYPTION_CAPABILITIES:
                self.cipher = nego.parse_encryption_capabilities(ctx.data)[0]
            elif ctx.type == nego.SIGNING_CAPABILITIES:
                self.signing_algorithm = nego.parse_signing_capabilities(ctx.data)[0]
        if resp.dialect == SMB3_1_1:
            self.preauth = crypto.preauth_update(
                crypto.preauth_update(bytes(64), self.last_request), raw
            )

    async def session_setup(self, user: str, password: str) -> None:
        ctx = spnego.client(user, password, hostname="vmstor", protocol="ntlm")
        token = ctx.step()
        preauth = self.preauth
        while True:
            assert token is not None
            body = pack_session_setup_request(token, security_mode=1)
            h, b, raw = await self.call(Command.SESSION_SETUP, [body], sign=False)
            preauth = crypto.preauth_update(preauth, self.last_request)
            self.session_id = h.session_id
            if h.status == NTStatus.MORE_PROCESSING_REQUIRED:
                preauth = crypto.preauth_update(preauth, raw)
                token = ctx.step(parse_session_setup_response(b).token)
                continue
            if h.status != NTStatus.SUCCESS:
                raise SMBClientError("SESSION_SETUP", h.status)
            resp = parse_session_setup_response(b)
            if resp.token:
                ctx.step(resp.token)
            break
        keys = crypto.derive_keys(
            ctx.session_key,
            self.dialect,
            preauth if self.dialect == SMB3_1_1 else None,
            self.cipher,
        )
        self.keys = keys
        self.signing_key = keys.signing
        if not crypto.verify(self.signing_algorithm, self.signing_key, raw):
            raise SMBClientError("SESSION_SETUP signature", h.status)
        if self.cipher and keys.decryption:
            # the client encrypts with the server's decryption key
            self.encryptor = crypto.Encryptor(self.cipher, keys.decryption, os.urandom)
        self.encrypt_session = bool(resp.session_flags & SessionFlags.ENCRYPT_DATA)

    async def tree_connect(self, path: str) -> int:
        h, b = await self._ok(
            Command.TREE_CONNECT, [pack_tree_connect_request(path)], "TREE_CONNECT"
        )
        tree = parse_tree_connect_response(b)
        if tree.share_flags & ShareFlags.ENCRYPT_DATA:
            self.encrypt_trees.add(h.tree_id)
        return h.tree_id

    async def logoff(self) -> None:
        await self._ok(Command.LOGOFF, [struct.pack("<HH", 4, 0)], "LOGOFF")

    # ---------------------------------------------------------------- files

    async def create(self, tree_id: int, name: str, *, create: bool = False) -> tuple[int, int]:
        access = create_wire.AccessMask
        req = create_wire.CreateRequest(
            security_flags=0,
            requested_oplock_level=0,
            impersonation_level=2,
            smb_create_flags=0,
            desired_access=int(
                access.FILE_READ_DATA
                | access.FILE_WRITE_DATA
                | access.FILE_READ_ATTRIBUTES
                | access.SYNCHRONIZE
            ),
            file_attributes=0x80,
            share_access=0x7,
            create_disposition=int(
                create_wire.CreateDisposition.OVERWRITE_IF
                if create
                else create_wire.CreateDisposition.OPEN
            ),
            create_options=int(create_wire.CreateOptions.NON_DIRECTORY_FILE),
            name=name,
            contexts=(),
        )
        _h, b = await self._ok(
            Command.CREATE, [create_wire.pack_create_request(req)], "CREATE", tree_id=tree_id
        )
        return create_wire.parse_create_response(b).file_id

    async def close(self, tree_id: int, file_id: tuple[int, int]) -> None:
        body = close_wire.pack_close_request(close_wire.CloseRequest(0, file_id))
        await self._ok(Command.CLOSE, [body], "CLOSE", tree_id=tree_id)

    async def ioctl(
        self,
        tree_id: int,
        ctl_code: int,
        data: Buffer = b"",
        *,
        file_id: tuple[int, int] = (0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF),
        max_output: int = 65536,
    ) -> bytes:
        """An FSCTL ([MS-SMB2] 2.2.31); its output."""
        body = ioctl_wire.pack_ioctl_request(
            ctl_code, file_id, data, max_output_response=max_output
        )
        _h, b = await self._ok(
            Command.IOCTL, [body], "IOCTL", tree_id=tree_id, charge_bytes=max_output
        )
        return bytes(ioctl_wire.parse_ioctl_response(b).output)

    def _use_rdma(self, tree_id: int, length: int) -> bool:
        return (
            self.channel is not None
            and length >= self.rdma_threshold
            and not self._encrypts(tree_id)
        )

    def io_size(self, tree_id: int, *, write: bool) -> int:
        """The largest single READ/WRITE this client sends."""
        size = self.max_write_size if write else self.max_read_size
        if self.channel is not None:
            if self._use_rdma(tree_id, size):
                size = min(size, self.channel.max_read_write_size)
            else:
                size = min(size, self.channel.max_message_size - _INLINE_SLACK)
        return size

    def _channel_value(self) -> int:
        return int(
            rw.Channel.RDMA_V1_INVALIDATE if self.dialect >= SMB3_0_2 else rw.Channel.RDMA_V1
        )

    async def write(self, tree_id: int, file_id: tuple[int, int], offset: int, data: Buffer) -> int:
        """One SMB2 WRITE of ``data`` (at most :meth:`io_size` bytes); the bytes written."""
        view = memoryview(data).cast("B")
        reg: RegisteredBuffer | None = None
        if self._use_rdma(tree_id, len(view)):
            assert self.channel is not None
            reg = self.channel.register_buffer(view, remote_write=False)
            descs = [rw.BufferDescriptor(d.offset, d.token, d.length) for d in reg.descriptors]
            req = rw.WriteRequest(
                memoryview(b""), offset, file_id, self._channel_value(), len(view), 0, tuple(descs)
            )
            self.rdma_writes += 1
            body = rw.pack_write_request(req)
        else:
            # the payload goes as its own iovec part, not copied into the body
            fixed = _WRITE_REQ.pack(
                49, _WRITE_DATA_OFFSET, len(view), offset, *file_id, 0, 0, 0, 0, 0
            )
            body = [fixed, view]
        try:
            _h, b = await self._ok(
                Command.WRITE,
                body,
                "WRITE",
                tree_id=tree_id,
                charge_bytes=len(view),
            )
        finally:
            if reg is not None:
                reg.deregister()
        count, _remaining = rw.parse_write_response(b)
        return count

    async def read(
        self, tree_id: int, file_id: tuple[int, int], offset: int, into: bytearray | memoryview
    ) -> int:
        """One SMB2 READ of ``len(into)`` bytes (at most :meth:`io_size`) into ``into``."""
        view = memoryview(into).cast("B")
        reg: RegisteredBuffer | None = None
        channel = 0
        descs: tuple[rw.BufferDescriptor, ...] = ()
        if self._use_rdma(tree_id, len(view)):
            assert self.channel is not None
            reg = self.channel.register_buffer(view, remote_write=True)
            descs = tuple(rw.BufferDescriptor(d.offset, d.token, d.length) for d in reg.descriptors)
            channel = self._channel_value()
            self.rdma_reads += 1
        req = rw.ReadRequest(0, 0, len(view), offset, file_id, 0, channel, 0, descs)
        try:
            _h, b = await self._ok(
                Command.READ,
                [rw.pack_read_request(req)],
                "READ",
                tree_id=tree_id,
                charge_bytes=len(view),
            )
        finally:
            if reg is not None:
                reg.deregister()
        resp = rw.parse_read_response(b)
        if reg is not None:
            return resp.data_remaining
        view[: len(resp.data)] = resp.data
        return len(resp.data)
