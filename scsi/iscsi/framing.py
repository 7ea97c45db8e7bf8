"""PDU framing with optional CRC32C digests (RFC 7143 11.2 and 13.1).

Sans-IO: the driver reads :attr:`Framer.header_size` bytes, asks :meth:`Framer.rest_size`
how many more bytes the PDU needs, reads exactly those into a buffer of their own, and hands
both to :meth:`Framer.finish`. Sending is :meth:`Framer.frame`, which returns iovecs for
``sendmsg`` so that a payload is never copied to join it to its header.

Digests are CRC32C (Castagnoli) and travel least-significant byte first. The header digest
covers BHS + AHS; the data digest covers the data segment and its padding.

A data segment may also be a :class:`FileSpan`, a range of a file the driver sends with
``sendfile`` (zero copy) when no data digest was negotiated.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Protocol

import crc32c

from scsi.iscsi import pdu
from scsi.iscsi.errors import DigestError, PduError, RejectReason

_DIGEST = struct.Struct("<I")
_PADS = (b"", b"\0", b"\0\0", b"\0\0\0")


class FileSource(Protocol):
    def fileno(self) -> int:
        """The open file (-1 once closed: the send then fails and the connection ends)."""


class Hold(Protocol):
    def release(self) -> None:
        """The data of the span was sent (or will never be): whatever kept it valid may
        go (idempotent)."""


class FileSpan:
    """``length`` bytes of ``source``'s file from byte ``offset``: a data segment (or part
    of one) the driver sends from the file (``sendfile``), not from memory.  The file
    descriptor is taken from ``source`` when the span is sent."""

    __slots__ = ("length", "offset", "source")

    def __init__(self, source: FileSource, offset: int, length: int) -> None:
        self.source = source
        self.offset = offset
        self.length = length

    def __len__(self) -> int:
        return self.length

    def cut(self, start: int, length: int) -> FileSpan:
        """The ``length`` bytes from ``start`` of this span."""
        return FileSpan(self.source, self.offset + start, length)

    def __repr__(self) -> str:
        return f"FileSpan(fd={self.source.fileno()}, offset={self.offset}, length={self.length})"


Buffer = memoryview | bytes | bytearray
Piece = Buffer | FileSpan  # one iovec of a PDU to send


def crc(data: memoryview | bytes | bytearray, value: int = 0) -> int:
    return int(crc32c.crc32c(data, value=value))


class Received(NamedTuple):
    """One received PDU: its decoded BHS, the raw BHS (for a Reject), AHS and data views."""

    record: pdu.Pdu
    header: bytes
    ahs: memoryview
    data: memoryview


class Framer:
    """Framing state of one connection: digests and the receive limit (MaxRecvDSL)."""

    __slots__ = ("allowed", "data_digest", "header_digest", "max_recv_data")

    def __init__(
        self,
        *,
        max_recv_data: int = 8192,
        header_digest: bool = False,
        data_digest: bool = False,
        allowed: frozenset[int] = pdu.INITIATOR_OPCODES,
    ) -> None:
        self.max_recv_data = max_recv_data
        self.header_digest = header_digest
        self.data_digest = data_digest
        self.allowed = allowed

    @property
    def header_size(self) -> int:
        return pdu.BHS_LENGTH

    def rest_size(self, bhs: memoryview | bytes | bytearray) -> int:
        """Bytes after the BHS: AHS, header digest, padded data, data digest.

        Raises a fatal :class:`PduError` when the data segment exceeds what this side
        declared it can receive (the stream cannot be trusted after that).
        """
        head, dsl, tail = self.split(bhs)
        return head + dsl + tail

    def finish(self, bhs: memoryview | bytes | bytearray, rest: memoryview) -> Received:
        """Check digests and decode. Raises :class:`PduError` (or DigestError)."""
        ahs_len, dsl = pdu.lengths(bhs)
        head = ahs_len + (4 if self.header_digest else 0)
        padded = dsl + pdu.pad4(dsl)
        return self.finish_parts(
            bhs, rest[:head], rest[head : head + dsl], rest[head + dsl : head + padded + 4]
        )

    def split(self, bhs: memoryview | bytes | bytearray) -> tuple[int, int, int]:
        """Sizes of the three parts after the BHS: (AHS + header digest, data, padding +
        data digest), so a driver can receive the data straight into its destination."""
        ahs_len, dsl = pdu.lengths(bhs)
        if dsl > self.max_recv_data:
            raise PduError(
                RejectReason.PROTOCOL_ERROR,
                f"data segment of {dsl} bytes exceeds MaxRecvDataSegmentLength "
                f"{self.max_recv_data}",
                fatal=True,
            )
        head = ahs_len + (4 if self.header_digest else 0)
        tail = pdu.pad4(dsl) + (4 if self.data_digest and dsl else 0)
        return head, dsl, tail

    def finish_parts(
        self,
        bhs: memoryview | bytes | bytearray,
        head: memoryview,
        data: memoryview,
        tail: memoryview,
    ) -> Received:
        """:meth:`finish` for a PDU received in parts (see :meth:`split`)."""
        ahs_len, dsl = pdu.lengths(bhs)
        header = bytes(bhs[: pdu.BHS_LENGTH])
        ahs = head[:ahs_len]
        if self.header_digest:
            (got,) = _DIGEST.unpack_from(head, ahs_len)
            if got != crc(ahs, crc(header)):
                raise DigestError(RejectReason.PROTOCOL_ERROR, "header digest error", fatal=True)
        if self.data_digest and dsl:
            pad = -dsl & 3
            (got,) = _DIGEST.unpack_from(tail, pad)
            if got != crc(tail[:pad], crc(data)):
                raise DigestError(RejectReason.DATA_DIGEST_ERROR, "data digest error")
        record = pdu.decode(header, allowed=self.allowed)
        return Received(record, header, ahs, data)

    def frame(self, header: bytes, *data: Buffer) -> list[Buffer]:
        """iovecs for one PDU: header (+digest), data pieces, padding (+digest)."""
        out: list[Buffer] = []
        if self.header_digest:
            out.append(header + _DIGEST.pack(crc(header)))
        else:
            out.append(header)
        n = 0
        value = 0
        for piece in data:
            if piece:
                out.append(piece)
                n += len(piece)
                if self.data_digest:
                    value = crc(piece, value)
        if n:
            pad = _PADS[-n & 3]
            if self.data_digest:
                out.append(pad + _DIGEST.pack(crc(pad, value)))
            elif pad:
                out.append(pad)
        return out

    def frame_pieces(self, header: bytes, *data: Piece) -> list[Piece]:
        """:meth:`frame` for a data segment that may hold :class:`FileSpan` pieces; a
        data digest cannot cover those (ValueError)."""
        if not any(isinstance(piece, FileSpan) for piece in data):
            return list(self.frame(header, *data))  # type: ignore[arg-type]
        if self.data_digest:
            raise ValueError("a data digest needs the data in memory")
        out: list[Piece] = [header + _DIGEST.pack(crc(header)) if self.header_digest else header]
        n = 0
        for piece in data:
            if len(piece):
                out.append(piece)
                n += len(piece)
        if n & 3:
            out.append(_PADS[-n & 3])
        return out
