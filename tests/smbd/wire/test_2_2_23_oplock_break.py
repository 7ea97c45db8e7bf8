"""[MS-SMB2] 2.2.23-2.2.25 oplock and lease break notification, acknowledgment and
response. Layouts per the spec; the lease key is smbtorture's LEASE1."""

from __future__ import annotations

import pytest

from smbd.wire import oplock
from smbd.wire.errors import ParseError
from tests.smbd.wire.wirecheck import fuzz

OPLOCK_BREAK = bytes.fromhex(
    "1800"  # StructureSize 24
    "01"  # OplockLevel II
    "00"  # Reserved
    "00000000"  # Reserved2
    "0100000000000000"  # FileId.Persistent
    "0200000000000000"  # FileId.Volatile
)

LEASE_BREAK_NOTIFICATION = bytes.fromhex(
    "2c00"  # StructureSize 44
    "0200"  # NewEpoch
    "01000000"  # Flags ACK_REQUIRED
    "0df0dde0fe0fdcbaf20f221f01f02345"  # LeaseKey
    "07000000"  # CurrentLeaseState RWH
    "01000000"  # NewLeaseState R
    "00000000"  # BreakReason
    "00000000"  # AccessMaskHint
    "00000000"  # ShareMaskHint
)

LEASE_BREAK_ACK = bytes.fromhex(
    "2400"  # StructureSize 36
    "0000"  # Reserved
    "00000000"  # Flags
    "0df0dde0fe0fdcbaf20f221f01f02345"  # LeaseKey
    "01000000"  # LeaseState R
    "0000000000000000"  # LeaseDuration
)

KEY = bytes.fromhex("0df0dde0fe0fdcbaf20f221f01f02345")


def test_oplock_break() -> None:
    assert oplock.pack_oplock_break(oplock.OplockBreak(1, (1, 2))) == OPLOCK_BREAK
    assert oplock.parse_break_ack(OPLOCK_BREAK) == oplock.OplockBreak(1, (1, 2))
    assert oplock.parse_oplock_break(OPLOCK_BREAK) == oplock.OplockBreak(1, (1, 2))


def test_lease_break() -> None:
    n = oplock.LeaseBreakNotification(2, 1, KEY, 7, 1)
    assert oplock.pack_lease_break_notification(n) == LEASE_BREAK_NOTIFICATION
    assert oplock.parse_lease_break_notification(LEASE_BREAK_NOTIFICATION) == n
    a = oplock.LeaseBreakAck(0, KEY, 1)
    assert oplock.pack_lease_break_ack(a) == LEASE_BREAK_ACK
    assert oplock.parse_break_ack(LEASE_BREAK_ACK) == a
    with pytest.raises(ParseError):
        oplock.parse_oplock_break(LEASE_BREAK_ACK)


@pytest.mark.parametrize(
    "body", [b"", OPLOCK_BREAK[:23], LEASE_BREAK_ACK[:35], b"\x2c\x00" + bytes(42)]
)
def test_bad_acks(body: bytes) -> None:
    with pytest.raises(ParseError):
        oplock.parse_break_ack(body)


def test_trailing() -> None:
    assert oplock.parse_break_ack(LEASE_BREAK_ACK + b"xx") == oplock.parse_break_ack(
        LEASE_BREAK_ACK
    )


test_fuzz_ack = fuzz(oplock.parse_break_ack, LEASE_BREAK_ACK)
test_fuzz_notification = fuzz(oplock.parse_lease_break_notification, LEASE_BREAK_NOTIFICATION)
