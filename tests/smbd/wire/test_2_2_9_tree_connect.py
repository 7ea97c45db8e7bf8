"""[MS-SMB2] 2.2.9 / 2.2.10 TREE_CONNECT. The request vector is smbclient 4.17's, captured
on this machine."""

from __future__ import annotations

import pytest

from smbd.wire import tree
from smbd.wire.errors import ParseError
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz

SMBCLIENT_TREE_CONNECT = bytes.fromhex(
    "0900"  # StructureSize 9
    "0000"  # Flags
    "4800"  # PathOffset 0x48
    "2200"  # PathLength 34
    "5c005c003100320037002e0030002e0030002e0031005c0073006800610072006500"  # \\127.0.0.1\share
)

TREE_CONNECT_RESPONSE = bytes.fromhex(
    "1000"  # StructureSize 16
    "01"  # ShareType DISK
    "00"  # Reserved
    "00800000"  # ShareFlags ENCRYPT_DATA
    "00000000"  # Capabilities
    "ff011f00"  # MaximalAccess FILE_ALL_ACCESS
)


def test_2_2_9_smbclient_request() -> None:
    r = tree.parse_tree_connect_request(SMBCLIENT_TREE_CONNECT, 0x0311)
    assert r == tree.TreeConnectRequest(0, "\\\\127.0.0.1\\share")
    assert tree.pack_tree_connect_request("\\\\127.0.0.1\\share") == SMBCLIENT_TREE_CONNECT
    assert tree.share_name_from_path(r.path) == ("127.0.0.1", "share")


def test_2_2_9_flags_are_reserved_before_3_1_1() -> None:
    raw = SMBCLIENT_TREE_CONNECT[:2] + b"\x04\x00" + SMBCLIENT_TREE_CONNECT[4:]
    assert tree.parse_tree_connect_request(raw, 0x0302).flags == 0


def test_2_2_9_truncation() -> None:
    check_truncation_and_trailing(
        tree.parse_tree_connect_request, SMBCLIENT_TREE_CONNECT, fixed=len(SMBCLIENT_TREE_CONNECT)
    )


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\x08" + SMBCLIENT_TREE_CONNECT[1:], 0xC000000D),
        (SMBCLIENT_TREE_CONNECT[:4] + b"\x40\x00" + SMBCLIENT_TREE_CONNECT[6:], 0xC000000D),
        (SMBCLIENT_TREE_CONNECT[:6] + b"\x23\x00" + SMBCLIENT_TREE_CONNECT[8:], 0xC00000CC),
        (SMBCLIENT_TREE_CONNECT[:6] + b"\x24\x00" + SMBCLIENT_TREE_CONNECT[8:], 0xC000000D),
        (SMBCLIENT_TREE_CONNECT[:8] + b"\x00\xd8" * 17, 0xC00000CC),  # lone surrogates
    ],
)
def test_2_2_9_bad(data: bytes, status: int) -> None:
    with pytest.raises(ParseError) as e:
        tree.parse_tree_connect_request(data, 0x0311)
    assert e.value.status == status


@pytest.mark.parametrize(
    "path", ["share", "\\\\server", "\\\\server\\", "\\\\\\share", "\\\\a\\b\\c", ""]
)
def test_3_3_5_7_bad_paths(path: str) -> None:
    with pytest.raises(ParseError) as e:
        tree.share_name_from_path(path)
    assert e.value.status == 0xC00000CC


def test_2_2_10_response() -> None:
    r = tree.TreeConnectResponse(1, 0x8000, 0, 0x001F01FF)
    assert tree.pack_tree_connect_response(r) == TREE_CONNECT_RESPONSE
    assert tree.parse_tree_connect_response(TREE_CONNECT_RESPONSE) == r


test_fuzz_request = fuzz(
    lambda b: tree.parse_tree_connect_request(b, 0x0311), SMBCLIENT_TREE_CONNECT
)
test_fuzz_request_extension = fuzz(
    lambda b: tree.parse_tree_connect_request(b, 0x0311),
    SMBCLIENT_TREE_CONNECT[:2] + b"\x04\x00" + SMBCLIENT_TREE_CONNECT[4:],
)
test_fuzz_response = fuzz(tree.parse_tree_connect_response, TREE_CONNECT_RESPONSE)
test_fuzz_path = fuzz(
    lambda b: tree.share_name_from_path(b.decode("latin-1")), b"\\\\server\\share"
)
