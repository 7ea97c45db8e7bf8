"""smbtorture's test-only FSCTLs, answered only with ``[server] smbtorture_hooks = true``.

Samba's test suite checks a few client-side behaviours by asking the server to misbehave
in a controlled way; Samba answers these control codes when its configuration sets
``smbd:FSCTL_SMBTORTURE = yes`` (a switch of its own test environment). vmstor answers the
same codes behind its own switch, off by default: with it off they are unknown FSCTLs
(INVALID_DEVICE_REQUEST), as on any production server.

- FSCTL_SMBTORTURE_IOCTL_RESPONSE_BODY_PADDING8: this IOCTL response puts 8 zero bytes
  between its fixed part and its output (OutputOffset 0x78, not 0x70); the output is
  MaxOutputResponse bytes of 0x08. smb2.ioctl.bug14607 checks the client honours the
  offset instead of assuming it.
- FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8: from then on, every READ response
  on this connection puts 8 zero bytes between its 16-byte fixed part and the data
  (DataOffset 0x58, not 0x50). smb2.read.bug14607 checks the same for READ.
- FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP: the IOCTL waits InputBuffer[0] microseconds as a
  request running on its open (files.inflight), then answers FILE_CLOSED if the open was
  closed meanwhile. smb2.ioctl.bug14769 sends it with a CLOSE of the same handle and
  requires both to succeed: a CLOSE must not overtake a request still running on its open.

Not answered: FSCTL_SMBTORTURE_FORCE_UNACKED_TIMEOUT (SMB Direct/multichannel ack timing
that vmstor's transports do not model).
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import trio

from smbd.server.files import inflight
from smbd.server.files.common import lookup
from smbd.server.request import Buffer, Request, Response, SMBError
from smbd.wire import ioctl as wio
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.model import Connection

__all__ = [
    "FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP",
    "FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8",
    "FSCTL_SMBTORTURE_IOCTL_RESPONSE_BODY_PADDING8",
    "TORTURE_FSCTL_HANDLERS",
    "read_response",
]

# FSCTL_SMBTORTURE (device 0x8384) | FILE_WRITE_ACCESS | function | METHOD_NEITHER
FSCTL_SMBTORTURE_IOCTL_RESPONSE_BODY_PADDING8: Final = 0x83848013
FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8: Final = 0x83848023
FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP: Final = 0x83848043

BODY_PADDING: Final = 8
_OUTPUT_FILL: Final = 0x08
_IOCTL_INPUT_OFFSET_AT: Final = 24  # [MS-SMB2] 2.2.32: InputOffset, then OutputOffset at 32
_IOCTL_OUTPUT_OFFSET_AT: Final = 32
_IOCTL_OUTPUT_COUNT_AT: Final = 36
_READ_DATA_OFFSET_AT: Final = 2  # [MS-SMB2] 2.2.20: DataOffset (one byte)
_U32: Final = struct.Struct("<I")

# Connections that asked for padded READ responses, with the padding. Weak: the entry goes
# with its connection. Empty unless the hook was used, so READ pays one truth test.
_read_padding: weakref.WeakKeyDictionary[Connection, int] = weakref.WeakKeyDictionary()


def read_response(conn: Connection, parts: list[Buffer]) -> list[Buffer]:
    """A READ response's iovec parts ``[fixed 16 bytes, data]`` as this connection gets
    them: unchanged, or with the padding the GLOBAL_READ hook asked for (between the
    fixed part and the data, DataOffset moved past it). Stays two parts with the data
    view last, so the processor still hands the pooled buffer back."""
    if not _read_padding:
        return parts
    pad = _read_padding.get(conn, 0)
    if not pad:
        return parts
    fixed = bytearray(parts[0])
    fixed[_READ_DATA_OFFSET_AT] += pad
    fixed += bytes(pad)
    return [fixed, *parts[1:]]


def _no_input(r: wio.IoctlRequest, name: str) -> None:
    if len(r.input):
        raise SMBError(NTStatus.INVALID_PARAMETER, f"{name} takes no input")


async def _ioctl_padding8(req: Request, r: wio.IoctlRequest) -> Response:
    _no_input(r, "IOCTL_RESPONSE_BODY_PADDING8")
    output = bytes([_OUTPUT_FILL]) * r.max_output_response
    fixed, *_ = wio.pack_ioctl_response(r.ctl_code, r.file_id)
    body = bytearray(fixed)
    offset = wio.IOCTL_OUTPUT_OFFSET + BODY_PADDING
    _U32.pack_into(body, _IOCTL_INPUT_OFFSET_AT, offset)
    _U32.pack_into(body, _IOCTL_OUTPUT_OFFSET_AT, offset)
    _U32.pack_into(body, _IOCTL_OUTPUT_COUNT_AT, len(output))
    body += bytes(BODY_PADDING)
    return Response([body, output] if output else [body])


async def _global_read_padding8(req: Request, r: wio.IoctlRequest) -> Response:
    _no_input(r, "GLOBAL_READ_RESPONSE_BODY_PADDING8")
    _read_padding[req.connection] = BODY_PADDING
    return Response(wio.pack_ioctl_response(r.ctl_code, r.file_id))


async def _fsp_async_sleep(req: Request, r: wio.IoctlRequest) -> Response:
    if len(r.input) != 1:
        raise SMBError(NTStatus.INVALID_PARAMETER, "FSP_ASYNC_SLEEP takes one byte")
    o = lookup(req, r.file_id)
    async with inflight.running(o):  # a CLOSE of the open waits for the answer
        await trio.sleep(r.input[0] / 1e6)
    if o.closed:  # closed anyway: by a TREE_DISCONNECT, LOGOFF or lost connection
        raise SMBError(NTStatus.FILE_CLOSED, "the open was closed under a running IOCTL")
    return Response(wio.pack_ioctl_response(r.ctl_code, r.file_id))


TORTURE_FSCTL_HANDLERS: dict[int, Callable[[Request, wio.IoctlRequest], Awaitable[Response]]] = {
    FSCTL_SMBTORTURE_IOCTL_RESPONSE_BODY_PADDING8: _ioctl_padding8,
    FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8: _global_read_padding8,
    FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP: _fsp_async_sleep,
}
