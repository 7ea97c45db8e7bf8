"""[MS-SMB2] 2.2.31 SMB2 IOCTL Request and 2.2.32 SMB2 IOCTL Response.

Input and output buffers are addressed by offsets from the SMB2 header. The FSCTL
structures carried inside them are in :mod:`smbd.wire.fsctl`.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from smbd.wire._util import Buffer, body_view, region
from smbd.wire.header import HEADER_SIZE

SMB2_0_IOCTL_IS_FSCTL: Final = 0x00000001

# StructureSize Reserved CtlCode FileId.Persistent FileId.Volatile InputOffset InputCount
# MaxInputResponse OutputOffset OutputCount MaxOutputResponse Flags Reserved2
_REQ: Final = struct.Struct("<HHIQQIIIIIIII")
# StructureSize Reserved CtlCode FileId.Persistent FileId.Volatile InputOffset InputCount
# OutputOffset OutputCount Flags Reserved2
_RESP: Final = struct.Struct("<HHIQQIIIIII")
IOCTL_OUTPUT_OFFSET: Final = HEADER_SIZE + _RESP.size  # 112


class IoctlRequest(NamedTuple):
    """[MS-SMB2] 2.2.31. ``input`` and ``output`` are views into the request."""

    ctl_code: int
    file_id: tuple[int, int]
    input: memoryview
    max_input_response: int
    output: memoryview
    max_output_response: int
    flags: int

    @property
    def is_fsctl(self) -> bool:
        return bool(self.flags & SMB2_0_IOCTL_IS_FSCTL)


def parse_ioctl_request(body: Buffer) -> IoctlRequest:
    """InputOffset/InputCount and OutputOffset/OutputCount must lie inside the request after
    the fixed part (a zero count with any offset is "absent"): INVALID_PARAMETER."""
    mv = body_view(body, 57, "IOCTL")
    (_, _, code, p, v, in_off, in_len, max_in, out_off, out_len, max_out, flags, _) = (
        _REQ.unpack_from(mv)
    )
    inp = region(mv, in_off, in_len, "IOCTL input", minimum=_REQ.size)
    out = region(mv, out_off, out_len, "IOCTL output", minimum=_REQ.size)
    return IoctlRequest(code, (p, v), inp, max_in, out, max_out, flags)


def pack_ioctl_request(
    ctl_code: int,
    file_id: tuple[int, int],
    input: Buffer = b"",
    *,
    max_input_response: int = 0,
    max_output_response: int = 65536,
    flags: int = SMB2_0_IOCTL_IS_FSCTL,
) -> bytes:
    in_off = HEADER_SIZE + _REQ.size  # clients put 0x78 here even when InputCount is 0
    fixed = _REQ.pack(
        57,
        0,
        ctl_code,
        file_id[0],
        file_id[1],
        in_off,
        len(input),
        max_input_response,
        0,
        0,
        max_output_response,
        flags,
        0,
    )
    return fixed + (bytes(input) or b"\0")


def pack_ioctl_response(
    ctl_code: int, file_id: tuple[int, int], output: Buffer = b"", *, flags: int = 0
) -> list[Buffer]:
    """[MS-SMB2] 2.2.32 as iovec parts ``[fixed 48 bytes, output]``. InputCount is 0 and
    InputOffset equals OutputOffset (0x70), as Windows sends; Flags is 0."""
    fixed = _RESP.pack(
        49,
        0,
        ctl_code,
        file_id[0],
        file_id[1],
        IOCTL_OUTPUT_OFFSET,
        0,
        IOCTL_OUTPUT_OFFSET,
        len(output),
        flags,
        0,
    )
    return [fixed, output] if len(output) else [fixed]


class IoctlResponse(NamedTuple):
    ctl_code: int
    file_id: tuple[int, int]
    input: memoryview
    output: memoryview
    flags: int


def parse_ioctl_response(body: Buffer) -> IoctlResponse:
    mv = body_view(body, 49, "IOCTL response")
    _, _, code, p, v, in_off, in_len, out_off, out_len, flags, _ = _RESP.unpack_from(mv)
    inp = region(mv, in_off, in_len, "IOCTL response input", minimum=_RESP.size)
    out = region(mv, out_off, out_len, "IOCTL response output", minimum=_RESP.size)
    return IoctlResponse(code, (p, v), inp, out, flags)


def output_fits(output_len: int, max_output_response: int) -> bool:
    """3.3.5.15: an output longer than MaxOutputResponse is not sent (the FSCTL answers
    BUFFER_OVERFLOW with a truncated buffer, or BUFFER_TOO_SMALL, as its section says)."""
    return output_len <= max_output_response


__all__ = [
    "IOCTL_OUTPUT_OFFSET",
    "SMB2_0_IOCTL_IS_FSCTL",
    "IoctlRequest",
    "IoctlResponse",
    "output_fits",
    "pack_ioctl_request",
    "pack_ioctl_response",
    "parse_ioctl_request",
    "parse_ioctl_response",
]
