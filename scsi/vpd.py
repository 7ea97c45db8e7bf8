"""INQUIRY data: the standard page (SPC-4 6.4.2) and the vital product data
pages (SPC-4 7.8, SBC-3 6.5).  Pure builders, no I/O."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .nexus import Nexus
from .sense import SenseError

if TYPE_CHECKING:
    from .lun import LogicalUnit

__all__ = [
    "SUPPORTED_VPD",
    "BlockLimits",
    "standard_inquiry",
    "third_party_copy_page",
    "vpd_page",
]

SUPPORTED_VPD = (0x00, 0x80, 0x83, 0x86, 0xB0, 0xB1, 0xB2)

# SPC-4 table 143 version descriptors: SAM-5, iSCSI, SPC-4, SBC-3.
VERSION_DESCRIPTORS = (0x00A0, 0x0960, 0x0460, 0x04C0)


@dataclass(frozen=True)
class BlockLimits:
    """The limits the target enforces and reports in VPD page B0h."""

    max_transfer_bytes: int = 64 << 20
    max_compare_and_write_blocks: int = 255
    max_unmap_lba_count: int = 0xFFFFFFFF
    max_unmap_descriptors: int = 256
    max_write_same_blocks: int = 1 << 24
    # WRITE ATOMIC(16) (SBC-4 4.29): other I/O to the unit waits while one runs, so
    # this also bounds how long they wait.
    max_atomic_transfer_bytes: int = 1 << 20


LIMITS = BlockLimits()


def max_atomic_blocks(block_size: int) -> int:
    """MAXIMUM ATOMIC TRANSFER LENGTH in logical blocks of ``block_size`` bytes."""
    return LIMITS.max_atomic_transfer_bytes // block_size


def _ascii(text: str, n: int) -> bytes:
    return text.encode("ascii", "replace")[:n].ljust(n, b" ")


def standard_inquiry(lu: LogicalUnit | None, *, third_party_copy: bool = False) -> bytes:
    """SPC-4 table 142, 96 bytes.  ``lu`` None: no LU at this LUN (peripheral
    qualifier 011b, device type 1Fh)."""
    out = bytearray(96)
    out[0] = 0x00 if lu is not None else 0x7F
    out[2] = 0x06  # SPC-4
    out[3] = 0x12  # HISUP, RESPONSE DATA FORMAT 2
    out[4] = len(out) - 5
    out[5] = 0x30 | (0x08 if third_party_copy else 0)  # TPGS 11b: implicit+explicit ALUA; 3PC
    out[6] = 0x10  # MULTIP
    out[7] = 0x02  # CMDQUE
    ident = lu.identity if lu is not None else None
    out[8:16] = _ascii(ident.vendor if ident else "VMSTOR", 8)
    out[16:32] = _ascii(ident.product if ident else "vmstor-lun", 16)
    out[32:36] = _ascii(ident.revision if ident else "0001", 4)
    for i, v in enumerate(VERSION_DESCRIPTORS):
        struct.pack_into(">H", out, 58 + 2 * i, v)
    return bytes(out)


def _designator(
    code_set: int, proto: int, piv: bool, assoc: int, dtype: int, ident: bytes
) -> bytes:
    b0 = (proto << 4 if piv else 0) | code_set
    b1 = (0x80 if piv else 0) | (assoc << 4) | dtype
    return bytes((b0, b1, 0, len(ident))) + ident


def _name_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    raw += bytes(-len(raw) % 4)
    return raw[:256]


def t10_vendor_id(lu: LogicalUnit) -> bytes:
    """The T10 vendor ID designator of the unit (SPC-4 7.8.6.6.4): vendor and serial."""
    return _ascii(lu.identity.vendor, 8) + lu.identity.serial.encode()


def device_identification(lu: LogicalUnit, nexus: Nexus, target_name: str) -> bytes:
    """VPD 83h (SPC-4 7.8.6): NAA 6, T10 vendor id, relative target port,
    target port group and SCSI name string designators."""
    ident = lu.identity
    iscsi = 0x5
    body = b"".join(
        (
            _designator(1, 0, False, 0, 3, ident.naa_bytes()),
            _designator(2, 0, False, 0, 1, t10_vendor_id(lu)),
            _designator(1, iscsi, True, 1, 4, struct.pack(">HH", 0, nexus.target_port)),
            _designator(1, iscsi, True, 1, 5, struct.pack(">HH", 0, nexus.tpg)),
            _designator(
                3,
                iscsi,
                True,
                1,
                8,
                _name_string(f"{target_name},t,0x{nexus.tpg:04x}"),
            ),
            _designator(3, iscsi, True, 2, 8, _name_string(target_name)),
        )
    )
    return body


def third_party_copy_descriptor(dtype: int, params: bytes) -> bytes:
    """One third-party copy descriptor of VPD page 8Fh (SPC-4 7.8.17.1): DESCRIPTOR
    TYPE, DESCRIPTOR LENGTH, then ``params`` padded to a multiple of 4 bytes."""
    params += bytes(-len(params) % 4)
    return struct.pack(">HH", dtype, len(params)) + params


def third_party_copy_page(descriptors: Iterable[tuple[int, bytes]]) -> bytes:
    """The body of VPD page 8Fh (SPC-4 7.8.17): the descriptors ``(type, params)`` in
    ascending type order."""
    return b"".join(third_party_copy_descriptor(t, p) for t, p in sorted(descriptors))


# extra VPD pages: page code -> builder(lu, nexus) of the page's body (after
# the 4-byte header), for pages other subsystems serve (third-party copy, 8Fh).
VpdBuilder = Callable[["LogicalUnit", Nexus], bytes]


def vpd_page(
    page: int,
    lu: LogicalUnit,
    nexus: Nexus,
    target_name: str,
    *,
    extra: Mapping[int, VpdBuilder] | None = None,
) -> bytes:
    """The VPD page ``page``, or INVALID FIELD IN CDB (byte 2) for one not served."""
    body: bytes | bytearray
    if extra and page in extra:
        body = extra[page](lu, nexus)
    elif page == 0x00:
        body = bytes(sorted(set(SUPPORTED_VPD) | set(extra or ())))
    elif page == 0x80:
        body = lu.identity.serial.encode()
    elif page == 0x83:
        body = device_identification(lu, nexus, target_name)
    elif page == 0x86:
        # Extended INQUIRY Data (SPC-4 7.8.7): HEADSUP|ORDSUP|SIMPSUP, V_SUP (a
        # volatile cache that SYNCHRONIZE CACHE flushes), LUICLR.
        body = bytearray(60)
        body[1] = 0x07
        body[2] = 0x01
        body[3] = 0x01
    elif page == 0xB0:
        bs = lu.block_size
        lim = LIMITS
        body = bytearray(60)
        body[0] = 0x00  # WSNZ=0: WRITE SAME with 0 blocks writes to the end
        body[1] = lim.max_compare_and_write_blocks
        struct.pack_into(">H", body, 2, max(1, 4096 // bs))
        struct.pack_into(">I", body, 4, lim.max_transfer_bytes // bs)
        struct.pack_into(">I", body, 8, min(lim.max_transfer_bytes, 1 << 20) // bs)
        struct.pack_into(">I", body, 12, lim.max_transfer_bytes // bs)
        if lu.thin:
            struct.pack_into(">I", body, 16, lim.max_unmap_lba_count)
            struct.pack_into(">I", body, 20, lim.max_unmap_descriptors)
            struct.pack_into(">I", body, 24, 1)  # OPTIMAL UNMAP GRANULARITY
        struct.pack_into(">Q", body, 32, lim.max_write_same_blocks)
        # SBC-4 6.6.4: MAXIMUM ATOMIC TRANSFER LENGTH; ATOMIC ALIGNMENT, ATOMIC TRANSFER
        # LENGTH GRANULARITY 0 (none); no atomic boundaries (bytes 56-63 zero).
        struct.pack_into(">III", body, 40, max_atomic_blocks(bs), 0, 0)
    elif page == 0xB1:
        body = bytearray(60)
        struct.pack_into(">H", body, 0, 1)  # MEDIUM ROTATION RATE: non-rotating
    elif page == 0xB2:
        body = bytearray(4)
        if lu.thin:
            body[1] = 0x80 | 0x40 | 0x20 | 0x04  # LBPU LBPWS LBPWS10 LBPRZ
            body[2] = 0x02  # PROVISIONING TYPE: thin
    else:
        raise SenseError.invalid_cdb(2)
    return bytes((0x00, page)) + struct.pack(">H", len(body)) + bytes(body)
