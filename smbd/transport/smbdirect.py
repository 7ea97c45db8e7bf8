"""SMB2 over SMB Direct ([MS-SMB2] 2.1, [MS-SMBD]): the transport adapter the server runs
a connection on, and the RDMA side of SMB2 READ and WRITE ([MS-SMB2] 3.3.5.12, 3.3.5.13).

An :class:`SmbDirectTransport` wraps one :class:`rdma.smbdirect.SmbDirectChannel`: each
SMB Direct message is one SMB2 message (no 4-byte length prefix), so the SMB2 layer runs
on it exactly as on direct TCP.

READ and WRITE with Channel SMB2_CHANNEL_RDMA_V1 / RDMA_V1_INVALIDATE move their payload
with RDMA Write / RDMA Read against the client's SMB_DIRECT_BUFFER_DESCRIPTOR_V1 list:
:func:`note_channel` (right after parsing), :func:`read_channel` and :func:`pull_write`
are what the READ and WRITE handlers call.
RDMA_V1_INVALIDATE ([MS-SMBD] 3.1.4.2) is answered with Send with Invalidate of the first
descriptor's token, whatever the response's status (the client relies on it to have lost
access to its buffer, as ksmbd learned).  That is done through the request's
``on_response`` hook: the core calls it when the response is built, right before the
message goes to :meth:`SmbDirectTransport.send` with no checkpoint between the two, so
the send that follows carries the invalidation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import trio

from rdma.smbdirect import BufferDescriptorV1, ChannelClosed, SmbDirectChannel, SmbDirectError
from rdma.smbdirect.transport import MAX_DESCRIPTORS
from smbd.config import SMB3_0
from smbd.crypto import TRANSFORM_HEADER_SIZE
from smbd.transport.base import Buffer, TransportClosed
from smbd.wire import rw
from smbd.wire.header import HEADER_SIZE
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.request import Request

__all__ = [
    "RdmaRead",
    "SmbDirectTransport",
    "note_channel",
    "pull_write",
    "read_channel",
    "smbdirect_transport",
]

log = logging.getLogger("smbd.transport.smbdirect")

RDMA_CHANNELS = (rw.Channel.RDMA_V1, rw.Channel.RDMA_V1_INVALIDATE)
MAX_RDMA_REQUESTS = 8  # READs/WRITEs per connection holding a payload buffer at once
_READ_RESPONSE_OVERHEAD = HEADER_SIZE + 16 + TRANSFORM_HEADER_SIZE


def _addr(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class SmbDirectTransport:
    """One SMB Direct connection as an SMB2 :class:`~smbd.transport.base.Transport`.

    ``max_message_size`` is fixed by SMB Direct's own reassembly limit (MaxFragmentedSize,
    which the channel enforces); the core's attempts to size it are ignored.
    """

    name = "rdma"

    def __init__(self, channel: SmbDirectChannel) -> None:
        self.channel = channel
        self.peer = _addr(channel.remote_address)
        self.local = _addr(channel.local_address)
        # Payload buffers of RDMA READs/WRITEs: taken before the buffer is allocated,
        # given back when the response is built (bounds memory per connection).
        self.payload_slots = trio.Semaphore(MAX_RDMA_REQUESTS)
        self._invalidate: int | None = None
        self.invalidations = 0
        self.rdma_requests = 0

    @property
    def max_message_size(self) -> int:
        return self.channel.config.smbd.max_fragmented_receive_size

    @max_message_size.setter
    def max_message_size(self, value: int) -> None:
        pass  # SMB Direct negotiated its own limit

    @property
    def max_send_size(self) -> int:
        """The largest message the client reassembles (its MaxFragmentedSize)."""
        return self.channel.max_message_size

    @property
    def max_read_write_size(self) -> int:
        return self.channel.max_read_write_size

    def invalidate_with_next_send(self, token: int) -> None:
        """The next message sent goes as Send with Invalidate of ``token``."""
        if self._invalidate is None:
            self._invalidate = token

    async def receive(self) -> memoryview:
        try:
            return await self.channel.receive_message()
        except ChannelClosed as e:
            raise TransportClosed(str(e)) from None

    async def send(self, parts: Sequence[Buffer]) -> None:
        token, self._invalidate = self._invalidate, None
        total = sum(len(p) for p in parts)
        if total > self.max_send_size:
            # nothing can carry it: the connection ends (as on TCP past 16 MiB)
            raise TransportClosed(
                f"a {total}-byte message exceeds the client's MaxFragmentedSize "
                f"{self.max_send_size}"
            )
        if token is not None:
            self.invalidations += 1
        try:
            await self.channel.send_message(parts, invalidate_token=token)
        except SmbDirectError as e:
            raise TransportClosed(str(e)) from None

    async def aclose(self) -> None:
        await self.channel.aclose()

    def statistics(self) -> dict[str, int | str]:
        return {
            **self.channel.statistics(),
            "rdma_requests": self.rdma_requests,
            "invalidations": self.invalidations,
        }


def smbdirect_transport(req: Request) -> SmbDirectTransport | None:
    """The SMB Direct transport ``req`` arrived on, or None (direct TCP)."""
    if req.connection.transport != SmbDirectTransport.name:
        return None
    proc = req.server.processors.get(req.connection.conn_id)
    transport = getattr(proc, "transport", None)
    return transport if isinstance(transport, SmbDirectTransport) else None


def _smb_error(status: int, message: str) -> Exception:
    from smbd.server.request import SMBError

    return SMBError(status, message)


def _check_channel(
    req: Request, channel: int, descriptors: Sequence[rw.BufferDescriptor], length: int
) -> SmbDirectTransport | None:
    """[MS-SMB2] 3.3.5.12 / 3.3.5.13 channel checks; the transport for an RDMA channel,
    None for SMB2_CHANNEL_NONE."""
    dialect = req.connection.dialect
    if channel == rw.Channel.NONE or dialect < SMB3_0:
        return None  # 2.0.2 and 2.1: Channel is reserved, and ignored ([MS-SMB2] 2.2.19)
    if (req.session is not None and req.session.encrypt_data) or (
        req.tree is not None and req.tree.encrypt_data
    ):
        # RDMA payloads bypass the transform header; without the 3.1.1 RDMA transform an
        # encrypted session or share must move its data inline (as Windows clients do).
        raise _smb_error(NTStatus.ACCESS_DENIED, "RDMA channel where encryption is required")
    allowed = RDMA_CHANNELS if dialect > SMB3_0 else (rw.Channel.RDMA_V1,)
    if channel not in allowed:
        raise _smb_error(NTStatus.INVALID_PARAMETER, f"Channel 0x{channel:x}")
    transport = smbdirect_transport(req)
    if transport is None:
        raise _smb_error(NTStatus.INVALID_PARAMETER, "RDMA channel on a TCP connection")
    if not descriptors:
        raise _smb_error(NTStatus.INVALID_PARAMETER, "RDMA channel without buffer descriptors")
    if len(descriptors) > MAX_DESCRIPTORS:
        raise _smb_error(
            NTStatus.INVALID_PARAMETER,
            f"{len(descriptors)} buffer descriptors (at most {MAX_DESCRIPTORS})",
        )
    if length > transport.max_read_write_size:
        raise _smb_error(
            NTStatus.INVALID_PARAMETER,
            f"{length} bytes over RDMA exceed MaxReadWriteSize {transport.max_read_write_size}",
        )
    if length > sum(d.length for d in descriptors):
        raise _smb_error(
            NTStatus.INVALID_PARAMETER, "the buffer descriptors are shorter than the transfer"
        )
    return transport


def _when_response_built(req: Request, action: Callable[[], None]) -> None:
    """Run ``action`` once, when the core builds the response to ``req`` (success or
    error), right before it is sent."""
    previous = req.on_response
    done = False

    def hook(sent: bytes) -> None:
        nonlocal done
        if previous is not None:
            previous(sent)
        if not done:
            done = True
            action()

    req.on_response = hook


def note_channel(req: Request, channel: int, descriptors: Sequence[rw.BufferDescriptor]) -> None:
    """Call right after parsing a READ or WRITE: with SMB2_CHANNEL_RDMA_V1_INVALIDATE on
    SMB Direct, the response, whatever its status, goes as Send with Invalidate of the
    first descriptor's token ([MS-SMBD] 3.1.4.2): the client takes its buffer back either
    way."""
    if channel != rw.Channel.RDMA_V1_INVALIDATE or not descriptors:
        return
    if req.connection.dialect <= SMB3_0:
        return
    transport = smbdirect_transport(req)
    if transport is not None:
        token = descriptors[0].token
        _when_response_built(req, lambda: transport.invalidate_with_next_send(token))


async def _take_payload_slot(req: Request, transport: SmbDirectTransport) -> None:
    await transport.payload_slots.acquire()
    transport.rdma_requests += 1
    _when_response_built(req, transport.payload_slots.release)


def _descriptors(descs: Sequence[rw.BufferDescriptor]) -> list[BufferDescriptorV1]:
    return [BufferDescriptorV1(d.offset, d.token, d.length) for d in descs]


def _transfer_failed(transport: SmbDirectTransport, what: str, error: Exception) -> Exception:
    """A failed RDMA transfer: a channel that died with it (a bad STag or range gets a
    Terminate that tears the queue pair down) drops the connection; otherwise the
    request fails with STATUS_IO_DEVICE_ERROR."""
    if transport.channel.closed:
        from smbd.server.processor import Disconnect

        return Disconnect(f"{what} failed: {error}")
    return _smb_error(NTStatus.IO_DEVICE_ERROR, f"{what} failed: {error}")


class RdmaRead:
    """An SMB2 READ whose data goes to the client by RDMA Write."""

    __slots__ = ("descriptors", "transport")

    def __init__(
        self, transport: SmbDirectTransport, descriptors: list[BufferDescriptorV1]
    ) -> None:
        self.transport = transport
        self.descriptors = descriptors

    async def respond(self, data: memoryview) -> list[Buffer]:
        """RDMA Write ``data`` to the client's buffers; the READ response body
        (DataLength 0, DataRemaining = the bytes written, [MS-SMB2] 3.3.5.12)."""
        if len(data):
            try:
                await self.transport.channel.rdma_write(self.descriptors, data)
            except SmbDirectError as e:
                raise _transfer_failed(self.transport, "RDMA write", e) from None
        return rw.pack_read_response(b"", data_remaining=len(data))


async def read_channel(req: Request, r: rw.ReadRequest) -> RdmaRead | None:
    """Check a READ's Channel. None: the data goes in the response (then, on SMB Direct,
    the response must fit the client's MaxFragmentedSize). Otherwise the handler reads
    into a buffer and returns ``await rdma.respond(view)`` as the body."""
    transport = _check_channel(req, r.channel, r.channel_info, r.length)
    if transport is None:
        inline = smbdirect_transport(req)
        if inline is not None and r.length + _READ_RESPONSE_OVERHEAD > inline.max_send_size:
            raise _smb_error(
                NTStatus.INVALID_PARAMETER,
                f"an inline READ of {r.length} bytes does not fit the client's "
                f"MaxFragmentedSize {inline.max_send_size}",
            )
        return None
    await _take_payload_slot(req, transport)
    return RdmaRead(transport, _descriptors(r.channel_info))


async def pull_write(req: Request, w: rw.WriteRequest) -> rw.WriteRequest:
    """Check a WRITE's Channel; for an RDMA channel, RDMA Read RemainingBytes from the
    client's buffers into a buffer of its own and return the request with ``data`` a
    view of it ([MS-SMB2] 3.3.5.13). Channel NONE: ``w`` unchanged."""
    length = w.remaining_bytes
    transport = _check_channel(req, w.channel, w.channel_info, length)
    if transport is None:
        return w
    await _take_payload_slot(req, transport)
    if len(w.data):
        raise _smb_error(NTStatus.INVALID_PARAMETER, "RDMA WRITE with inline data")
    if length > req.connection.max_write_size:
        raise _smb_error(NTStatus.INVALID_PARAMETER, f"WRITE of {length} bytes")
    buf = bytearray(length)
    if length:
        try:
            await transport.channel.rdma_read(_descriptors(w.channel_info), buf)
        except SmbDirectError as e:
            raise _transfer_failed(transport, "RDMA read", e) from None
    return w._replace(data=memoryview(buf))
