"""[MS-SMB2] 2.2.15/2.2.16 CLOSE and 2.2.17/2.2.18 FLUSH.

Vectors from smbclient 4.17 against Samba on this machine.
"""

from __future__ import annotations

import pytest

from smbd.wire import close, flush
from smbd.wire.errors import ParseError
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz

CLOSE_REQUEST = bytes.fromhex(
    "1800"  # StructureSize 24
    "0000"  # Flags
    "00000000"  # Reserved
    "d76c351900000000"  # FileId.Persistent
    "e8947c3b00000000"  # FileId.Volatile
)

CLOSE_RESPONSE = bytes.fromhex(
    "3c00"  # StructureSize 60
    "0000"  # Flags
    "00000000"  # Reserved
    "0000000000000000"  # CreationTime
    "0000000000000000"  # LastAccessTime
    "0000000000000000"  # LastWriteTime
    "0000000000000000"  # ChangeTime
    "0000000000000000"  # AllocationSize
    "0000000000000000"  # EndofFile
    "00000000"  # FileAttributes
)


def test_close_request() -> None:
    r = close.parse_close_request(CLOSE_REQUEST)
    assert r == close.CloseRequest(0, (0x19356CD7, 0x3B7C94E8))
    assert not r.postquery_attrib
    assert close.pack_close_request(r) == CLOSE_REQUEST


def test_close_response_without_attributes_matches_samba() -> None:
    assert close.EMPTY_CLOSE_RESPONSE == CLOSE_RESPONSE


def test_close_postquery_round_trip() -> None:
    r = close.CloseResponse(close.CLOSE_FLAG_POSTQUERY_ATTRIB, 1, 2, 3, 4, 4096, 10, 0x20)
    raw = close.pack_close_response(r)
    assert len(raw) == 60
    assert raw[:4] == bytes.fromhex("3c000100")
    assert close.parse_close_response(raw) == r


def test_close_bad_structure_size() -> None:
    with pytest.raises(ParseError):
        close.parse_close_request(b"\x19\x00" + CLOSE_REQUEST[2:])


FLUSH_REQUEST = bytes.fromhex(
    "1800"  # StructureSize 24
    "0000"  # Reserved1
    "00000000"  # Reserved2
    "0100000000000000"  # FileId.Persistent
    "0200000000000000"  # FileId.Volatile
)


def test_flush() -> None:
    assert flush.parse_flush_request(FLUSH_REQUEST) == (1, 2)
    assert flush.pack_flush_request((1, 2)) == FLUSH_REQUEST
    assert bytes.fromhex("04000000") == flush.FLUSH_RESPONSE


def test_truncation_and_trailing() -> None:
    check_truncation_and_trailing(close.parse_close_request, CLOSE_REQUEST, fixed=24)
    check_truncation_and_trailing(close.parse_close_response, CLOSE_RESPONSE, fixed=60)
    check_truncation_and_trailing(flush.parse_flush_request, FLUSH_REQUEST, fixed=24)


test_fuzz_close = fuzz(close.parse_close_request, CLOSE_REQUEST)
test_fuzz_close_response = fuzz(close.parse_close_response, CLOSE_RESPONSE)
test_fuzz_flush = fuzz(flush.parse_flush_request, FLUSH_REQUEST)
