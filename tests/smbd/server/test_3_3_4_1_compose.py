"""Laying out and signing responses ([MS-SMB2] 3.3.4.1, 3.3.4.1.1, 3.3.4.1.3):
smbd.server.compose, pure. A READ response whose data was read into a buffer with room
in front (Response.frame) goes out as that one buffer; its bytes and signature are the
same as those of the same response laid out as separate parts."""

from __future__ import annotations

import pytest

from smbd import crypto
from smbd.server.compose import OutMessage, build_chain
from smbd.server.request import Buffer
from smbd.wire.constants import Command
from smbd.wire.header import HEADER_SIZE, Header, parse_header
from smbd.wire.rw import READ_DATA_OFFSET, pack_read_response

KEY = bytes(range(16))


def _header(mid: int) -> Header:
    return Header(1, 0, Command.READ, 1, 0, 0, mid, 0, 5, 0x1234, bytes(16))


def _read_response(mid: int, data: bytes, *, framed: bool, algorithm: int) -> OutMessage:
    if framed:
        frame = memoryview(bytearray(READ_DATA_OFFSET + len(data)))
        frame[READ_DATA_OFFSET:] = data  # the data was read here, after the room
        body = pack_read_response(frame[READ_DATA_OFFSET:])
    else:
        frame, body = None, pack_read_response(data)
    m = OutMessage(_header(mid), body, frame=frame)
    m.sign_key, m.sign_algorithm = KEY, algorithm
    return m


def _wire(parts: list[Buffer]) -> bytes:
    return b"".join(bytes(p) for p in parts)


@pytest.mark.parametrize("algorithm", [crypto.HMAC_SHA256, crypto.AES_CMAC, crypto.AES_GMAC])
@pytest.mark.parametrize("size", [1, 4096, 70_000])  # both sides of the signing join threshold
def test_framed_read_response_is_one_buffer_with_the_same_bytes(algorithm: int, size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    framed = build_chain([_read_response(7, data, framed=True, algorithm=algorithm)])
    plain = build_chain([_read_response(7, data, framed=False, algorithm=algorithm)])
    assert len(framed) == 1 and len(plain) == 3  # header, fixed part, data
    assert _wire(framed) == _wire(plain)
    msg = _wire(framed)
    assert crypto.verify(algorithm, KEY, msg)
    assert parse_header(msg).next_command == 0
    assert msg[HEADER_SIZE + 16 :] == data


def test_frame_is_not_used_inside_a_compound_chain() -> None:
    """Every response of a chain is padded to 8 bytes and points at the next: the parts
    path lays it out, and the result is what it would be without frames."""
    data = b"x" * 5
    chain = [_read_response(m, data, framed=True, algorithm=crypto.AES_GMAC) for m in (1, 2)]
    plain = [_read_response(m, data, framed=False, algorithm=crypto.AES_GMAC) for m in (1, 2)]
    out = build_chain(chain)
    assert _wire(out) == _wire(build_chain(plain))
    assert len(out) > 2


def test_frame_that_does_not_fit_the_body_is_not_used() -> None:
    """A body changed after the data was read (the smbtorture padding hook lengthens the
    fixed part) no longer matches the frame: the response goes out as parts."""
    data = b"y" * 300
    m = _read_response(3, data, framed=True, algorithm=crypto.AES_GMAC)
    m.body = [bytes(m.body[0]) + bytes(8), m.body[1]]
    out = build_chain([m])
    assert len(out) == 3
    assert crypto.verify(crypto.AES_GMAC, KEY, _wire(out))
