"""[MS-SMB2] 2.2.23 OPLOCK_BREAK Notification, 2.2.24 Acknowledgment and 2.2.25 Response,
for oplocks (2.2.23.1 / 2.2.24.1 / 2.2.25.1) and leases (2.2.23.2 / 2.2.24.2 / 2.2.25.2).

The two kinds share the OPLOCK_BREAK command and are told apart by StructureSize: 24 for
oplocks, 44 for a lease break notification and 36 for a lease acknowledgment/response.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from smbd.wire._util import Buffer
from smbd.wire.errors import ParseError

SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED: Final = 0x01

# StructureSize OplockLevel Reserved Reserved2 FileId.Persistent FileId.Volatile
_OPLOCK: Final = struct.Struct("<HBBIQQ")
# StructureSize NewEpoch Flags LeaseKey CurrentLeaseState NewLeaseState BreakReason
# AccessMaskHint ShareMaskHint
_LEASE_BREAK: Final = struct.Struct("<HHI16sIIIII")
# StructureSize Reserved Flags LeaseKey LeaseState LeaseDuration
_LEASE_ACK: Final = struct.Struct("<HHI16sIQ")


class OplockBreak(NamedTuple):
    """2.2.23.1 notification, 2.2.24.1 acknowledgment, 2.2.25.1 response (same layout)."""

    oplock_level: int
    file_id: tuple[int, int]


class LeaseBreakNotification(NamedTuple):
    """2.2.23.2 Lease Break Notification."""

    new_epoch: int
    flags: int
    lease_key: bytes
    current_state: int
    new_state: int
    break_reason: int = 0
    access_mask_hint: int = 0
    share_mask_hint: int = 0


class LeaseBreakAck(NamedTuple):
    """2.2.24.2 Lease Break Acknowledgment and 2.2.25.2 Lease Break Response."""

    flags: int
    lease_key: bytes
    lease_state: int
    lease_duration: int = 0


def pack_oplock_break(b: OplockBreak) -> bytes:
    """Notification (server), acknowledgment (client) or response (server): 24 bytes."""
    return _OPLOCK.pack(24, b.oplock_level, 0, 0, *b.file_id)


def pack_lease_break_notification(n: LeaseBreakNotification) -> bytes:
    return _LEASE_BREAK.pack(
        44,
        n.new_epoch,
        n.flags,
        n.lease_key,
        n.current_state,
        n.new_state,
        n.break_reason,
        n.access_mask_hint,
        n.share_mask_hint,
    )


def pack_lease_break_ack(a: LeaseBreakAck) -> bytes:
    """Acknowledgment (client) or response (server): 36 bytes."""
    return _LEASE_ACK.pack(36, 0, a.flags, a.lease_key, a.lease_state, a.lease_duration)


def parse_break_ack(body: Buffer) -> OplockBreak | LeaseBreakAck:
    """Parse an OPLOCK_BREAK request: an oplock acknowledgment (StructureSize 24) or a
    lease acknowledgment (36). Anything else is INVALID_PARAMETER ([MS-SMB2] 3.3.5.22)."""
    if len(body) < 2:
        raise ParseError("OPLOCK_BREAK body truncated")
    (size,) = struct.unpack_from("<H", body)
    if size == 24 and len(body) >= _OPLOCK.size:
        _, level, _, _, p, v = _OPLOCK.unpack_from(body)
        return OplockBreak(level, (p, v))
    if size == 36 and len(body) >= _LEASE_ACK.size:
        _, _, flags, key, state, duration = _LEASE_ACK.unpack_from(body)
        return LeaseBreakAck(flags, key, state, duration)
    raise ParseError(f"OPLOCK_BREAK StructureSize {size} with {len(body)} bytes")


def parse_lease_break_notification(body: Buffer) -> LeaseBreakNotification:
    if len(body) < _LEASE_BREAK.size or struct.unpack_from("<H", body)[0] != 44:
        raise ParseError("lease break notification")
    _, epoch, flags, key, cur, new, reason, amh, smh = _LEASE_BREAK.unpack_from(body)
    return LeaseBreakNotification(epoch, flags, key, cur, new, reason, amh, smh)


def parse_oplock_break(body: Buffer) -> OplockBreak:
    """A 24-byte oplock break structure (notification or response; tests and peers)."""
    b = parse_break_ack(body)
    if not isinstance(b, OplockBreak):
        raise ParseError("not an oplock break")
    return b
