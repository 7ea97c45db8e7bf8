"""[MS-SMB2] 2.2.1 SMB2 Packet Header (sync and async) and 2.2.2 ERROR Response. The vector
is smbclient 4.17's TREE_CONNECT header, captured on this machine."""

from __future__ import annotations

import pytest

from smbd.wire.constants import Command, HeaderFlags
from smbd.wire.errors import ParseError
from smbd.wire.header import Header, pack_error_body, pack_header, parse_header
from tests.smbd.wire.wirecheck import fuzz

SMBCLIENT_SYNC_HEADER = bytes.fromhex(
    "fe534d42"  # ProtocolId
    "4000"  # StructureSize 64
    "0100"  # CreditCharge 1
    "00000000"  # ChannelSequence / Reserved
    "0300"  # Command TREE_CONNECT
    "0100"  # CreditRequest 1
    "18000000"  # Flags SIGNED | PRIORITY 1
    "00000000"  # NextCommand
    "0300000000000000"  # MessageId 3
    "00000000"  # Reserved
    "00000000"  # TreeId
    "4bdc7f5f0ff92b0b"  # SessionId
    "dc6542c286ea0e6c75a0f01c8c74f3cd"  # Signature
)

ASYNC_HEADER = bytes.fromhex(
    "fe534d42"  # ProtocolId
    "4000"  # StructureSize 64
    "0100"  # CreditCharge
    "03010000"  # Status STATUS_PENDING
    "0f00"  # Command CHANGE_NOTIFY
    "0100"  # CreditResponse
    "03000000"  # Flags SERVER_TO_REDIR | ASYNC_COMMAND
    "00000000"  # NextCommand
    "0700000000000000"  # MessageId 7
    "0500000000000000"  # AsyncId 5
    "1100000000000000"  # SessionId
    "00000000000000000000000000000000"  # Signature
)


def test_2_2_1_2_sync() -> None:
    h = parse_header(SMBCLIENT_SYNC_HEADER)
    assert h.command == Command.TREE_CONNECT
    assert h.credit_charge == 1
    assert h.credits == 1
    assert h.flags == HeaderFlags.SIGNED | 0x10
    assert h.message_id == 3
    assert h.tree_id == 0
    assert h.session_id == 0x0B2BF90F5F7FDC4B
    assert not h.is_async
    assert pack_header(h) == SMBCLIENT_SYNC_HEADER


def test_2_2_1_1_async() -> None:
    h = parse_header(ASYNC_HEADER)
    assert h.is_async
    assert h.async_id == 5
    assert h.tree_id == 0
    assert h.status == 0x103
    assert pack_header(h) == ASYNC_HEADER


def test_2_2_1_at_offset() -> None:
    assert parse_header(b"\0" * 8 + SMBCLIENT_SYNC_HEADER, 8).message_id == 3


@pytest.mark.parametrize(
    "data",
    [
        SMBCLIENT_SYNC_HEADER[:63],
        b"\xffSMB" + SMBCLIENT_SYNC_HEADER[4:],
        SMBCLIENT_SYNC_HEADER[:4] + b"\x41\x00" + SMBCLIENT_SYNC_HEADER[6:],
    ],
)
def test_2_2_1_bad(data: bytes) -> None:
    with pytest.raises(ParseError) as e:
        parse_header(data)
    assert e.value.disconnect


def test_2_2_2_error_response() -> None:
    assert pack_error_body() == bytes.fromhex("090000000000000000")
    assert pack_error_body(b"\x01\x02") == bytes.fromhex("09000000020000000102")


def test_header_fields_round_trip() -> None:
    h = Header(2, 0xC0000022, 8, 33, 0x5, 64, 1 << 60, 0, 0xFFFFFFFF, 1, bytes(range(16)))
    assert parse_header(pack_header(h)) == h


test_fuzz_header = fuzz(parse_header, SMBCLIENT_SYNC_HEADER)
