"""[MS-SMB2] 2.2.26 LOCK Request (2.2.26.1 lock elements) and 2.2.27 LOCK Response.

The LockCount-0 vector is smbtorture smb2.lock.valid-request's, which Samba answers with
INVALID_PARAMETER.
"""

from __future__ import annotations

import pytest

from smbd.wire import lock
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz

TWO_LOCKS = bytes.fromhex(
    "3000"  # StructureSize 48
    "0200"  # LockCount 2
    "35000000"  # LockSequenceNumber 5, LockSequenceIndex 3
    "1d3f6e0000000000"  # FileId.Persistent
    "4265d2a200000000"  # FileId.Volatile
    # SMB2_LOCK_ELEMENT
    "0000000000000000"  # Offset
    "0010000000000000"  # Length 4096
    "12000000"  # Flags EXCLUSIVE | FAIL_IMMEDIATELY
    "00000000"  # Reserved
    # SMB2_LOCK_ELEMENT
    "ffffffffffffffff"  # Offset
    "0100000000000000"  # Length 1
    "01000000"  # Flags SHARED
    "00000000"  # Reserved
)

LOCK_COUNT_ZERO = bytes.fromhex("30000000000000001d3f6e00000000004265d2a200000000")


def test_parse_two_locks() -> None:
    r = lock.parse_lock_request(TWO_LOCKS)
    assert r.lock_sequence_number == 5 and r.lock_sequence_index == 3
    assert r.file_id == (0x6E3F1D, 0xA2D26542)
    assert r.locks == (
        lock.LockElement(0, 4096, lock.LockFlags.EXCLUSIVE_LOCK | lock.LockFlags.FAIL_IMMEDIATELY),
        lock.LockElement(0xFFFFFFFFFFFFFFFF, 1, lock.LockFlags.SHARED_LOCK),
    )
    assert lock.pack_lock_request(r) == TWO_LOCKS


def test_lock_count_zero_and_too_many() -> None:
    with pytest.raises(ParseError) as e:
        lock.parse_lock_request(LOCK_COUNT_ZERO + bytes(24))
    assert e.value.status == NTStatus.INVALID_PARAMETER
    with pytest.raises(ParseError):
        lock.parse_lock_request(LOCK_COUNT_ZERO)
    bad = bytearray(TWO_LOCKS)
    bad[2] = 3
    with pytest.raises(ParseError):
        lock.parse_lock_request(bytes(bad))


def test_response() -> None:
    assert bytes.fromhex("04000000") == lock.LOCK_RESPONSE


def test_truncation_and_trailing() -> None:
    check_truncation_and_trailing(lock.parse_lock_request, TWO_LOCKS, fixed=48)


test_fuzz_lock = fuzz(lock.parse_lock_request, TWO_LOCKS)
