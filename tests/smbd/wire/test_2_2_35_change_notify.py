"""[MS-SMB2] 2.2.35 CHANGE_NOTIFY Request / 2.2.36 Response and [MS-FSCC] 2.7.1
FILE_NOTIFY_INFORMATION. Vectors from smbtorture smb2.notify.valid-req against Samba."""

from __future__ import annotations

import pytest

from smbd.wire import notify
from smbd.wire.errors import ParseError
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz

REQUEST = bytes.fromhex(
    "2000"  # StructureSize 32
    "0000"  # Flags
    "00008000"  # OutputBufferLength 8 MiB
    "7fdffada00000000"  # FileId.Persistent
    "6a709f6000000000"  # FileId.Volatile
    "ff0f0000"  # CompletionFilter: all
    "00000000"  # Reserved
)

RESPONSE = bytes.fromhex(
    "0900"  # StructureSize 9
    "4800"  # OutputBufferOffset 0x48
    "30000000"  # OutputBufferLength 48
    # FILE_NOTIFY_INFORMATION
    "00000000"  # NextEntryOffset
    "01000000"  # Action ADDED
    "22000000"  # FileNameLength 34
    "73006d00620032002d006e006f007400690066007900300031002e00640061007400"  # name
    "0000"  # padding to 4
)


def test_request() -> None:
    r = notify.parse_change_notify_request(REQUEST)
    assert r == notify.ChangeNotifyRequest(0, 8 << 20, (0xDAFADF7F, 0x609F706A), 0xFFF)
    assert not r.watch_tree
    assert notify.pack_change_notify_request(r) == REQUEST


def test_response_matches_samba() -> None:
    entries = notify.encode_notify_entries(
        [notify.NotifyEntry(notify.NotifyAction.ADDED, "smb2-notify01.dat")]
    )
    assert b"".join(bytes(p) for p in notify.pack_change_notify_response(entries)) == RESPONSE
    out = notify.parse_change_notify_response(RESPONSE)
    assert notify.parse_notify_entries(out) == [notify.NotifyEntry(1, "smb2-notify01.dat")]


def test_chain_is_4_byte_aligned() -> None:
    entries = [
        notify.NotifyEntry(notify.NotifyAction.RENAMED_OLD_NAME, "a"),
        notify.NotifyEntry(notify.NotifyAction.RENAMED_NEW_NAME, "dir\\bc"),
        notify.NotifyEntry(notify.NotifyAction.REMOVED, "xyz"),
    ]
    raw = notify.encode_notify_entries(entries)
    assert raw[:16] == bytes.fromhex(
        "10000000"  # NextEntryOffset 16
        "04000000"  # RENAMED_OLD_NAME
        "02000000"  # FileNameLength
        "6100"
        "0000"  # "a", padding
    )
    assert len(raw) % 4 == 0
    assert notify.parse_notify_entries(raw) == entries
    assert notify.encode_notify_entries([]) == b""


def test_empty_response() -> None:
    assert notify.pack_change_notify_response(b"") == [bytes.fromhex("0900000000000000"), b"\0"]


def test_bad_entries() -> None:
    with pytest.raises(ParseError):
        notify.parse_notify_entries(bytes.fromhex("0000000001000000100000006100"))


def test_truncation_and_trailing() -> None:
    check_truncation_and_trailing(notify.parse_change_notify_request, REQUEST, fixed=32)
    check_truncation_and_trailing(notify.parse_change_notify_response, RESPONSE, fixed=8)


test_fuzz_request = fuzz(notify.parse_change_notify_request, REQUEST)
test_fuzz_response = fuzz(notify.parse_change_notify_response, RESPONSE)
test_fuzz_entries = fuzz(notify.parse_notify_entries, RESPONSE[8:])
