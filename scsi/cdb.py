"""Command descriptor blocks: operation codes and parsers (SPC-4 4.2, SBC-3 5).

Pure functions on ``bytes``/``memoryview``; every parser either returns a typed
record or raises :class:`~scsi.sense.SenseError` (never anything else), so a
malformed CDB always ends in the sense data SPC-4 asks for.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from .sense import Asc, SenseError

__all__ = [
    "Op",
    "RwCdb",
    "cdb_length",
    "decode_lun",
    "encode_lun",
    "parse_rw",
    "service_action",
]

Buffer = bytes | bytearray | memoryview


class Op(IntEnum):
    """Operation codes served by the block target (SPC-4 annex E, SBC-3 table 13)."""

    TEST_UNIT_READY = 0x00
    REQUEST_SENSE = 0x03
    READ_6 = 0x08
    WRITE_6 = 0x0A
    INQUIRY = 0x12
    MODE_SELECT_6 = 0x15
    RESERVE_6 = 0x16
    RELEASE_6 = 0x17
    MODE_SENSE_6 = 0x1A
    START_STOP_UNIT = 0x1B
    PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1E
    READ_CAPACITY_10 = 0x25
    READ_10 = 0x28
    WRITE_10 = 0x2A
    WRITE_AND_VERIFY_10 = 0x2E
    VERIFY_10 = 0x2F
    PRE_FETCH_10 = 0x34
    SYNCHRONIZE_CACHE_10 = 0x35
    READ_DEFECT_DATA_10 = 0x37
    WRITE_BUFFER = 0x3B
    READ_BUFFER = 0x3C
    WRITE_SAME_10 = 0x41
    UNMAP = 0x42
    MODE_SELECT_10 = 0x55
    RESERVE_10 = 0x56
    RELEASE_10 = 0x57
    MODE_SENSE_10 = 0x5A
    PERSISTENT_RESERVE_IN = 0x5E
    PERSISTENT_RESERVE_OUT = 0x5F
    EXTENDED_COPY = 0x83
    RECEIVE_COPY_RESULTS = 0x84
    READ_16 = 0x88
    COMPARE_AND_WRITE = 0x89
    WRITE_16 = 0x8A
    ORWRITE_16 = 0x8B
    WRITE_AND_VERIFY_16 = 0x8E
    VERIFY_16 = 0x8F
    PRE_FETCH_16 = 0x90
    SYNCHRONIZE_CACHE_16 = 0x91
    WRITE_SAME_16 = 0x93
    SERVICE_ACTION_IN_16 = 0x9E
    REPORT_LUNS = 0xA0
    MAINTENANCE_IN = 0xA3
    MAINTENANCE_OUT = 0xA4
    READ_12 = 0xA8
    WRITE_12 = 0xAA
    WRITE_AND_VERIFY_12 = 0xAE
    VERIFY_12 = 0xAF
    READ_DEFECT_DATA_12 = 0xB7


class Sa:
    """Service actions."""

    READ_CAPACITY_16 = 0x10  # SERVICE ACTION IN(16)
    GET_LBA_STATUS = 0x12  # SERVICE ACTION IN(16)
    REPORT_TARGET_PORT_GROUPS = 0x0A  # MAINTENANCE IN
    REPORT_SUPPORTED_OPCODES = 0x0C  # MAINTENANCE IN
    REPORT_SUPPORTED_TMFS = 0x0D  # MAINTENANCE IN
    SET_TARGET_PORT_GROUPS = 0x0A  # MAINTENANCE OUT


# SPC-4 4.2.5.1: the group code (top 3 bits) fixes the CDB length.
_GROUP_LEN = {0: 6, 1: 10, 2: 10, 4: 16, 5: 12}


def cdb_length(opcode: int) -> int:
    """Length of a CDB by its group code; 0 for reserved/vendor groups."""
    return _GROUP_LEN.get(opcode >> 5, 0)


def check_length(cdb: Buffer) -> int:
    """The CDB's length, after checking the buffer holds it (else 24/00)."""
    if not cdb:
        raise SenseError.invalid_cdb(0)
    n = cdb_length(cdb[0])
    if n == 0:
        raise SenseError.illegal(Asc.INVALID_COMMAND_OPERATION_CODE, field_pointer=0)
    if len(cdb) < n:
        raise SenseError.invalid_cdb(len(cdb))
    return n


def service_action(cdb: Buffer) -> int:
    return cdb[1] & 0x1F


class RwCdb(NamedTuple):
    """The fields of the READ/WRITE/VERIFY/WRITE SAME family (SBC-3 5.x)."""

    lba: int
    blocks: int
    flags: int  # byte 1 as sent: RD/WR/VRPROTECT 7-5, DPO 4, FUA 3, ... (BYTCHK 2-1)
    group: int


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_RW10 = struct.Struct(">BBIBH")  # op, flags, lba, group, length
_RW12 = struct.Struct(">BBIIB")
_RW16 = struct.Struct(">BBQIB")


def parse_rw(cdb: Buffer) -> RwCdb:
    """LBA/length of the 6/10/12/16-byte block commands.

    READ(6)/WRITE(6) transfer 256 blocks when the length byte is 0 (SBC-3 5.11);
    the other lengths are literal, so a 0 means no transfer.
    """
    n = check_length(cdb)
    op = cdb[0]
    if n == 6:
        lba = ((cdb[1] & 0x1F) << 16) | (cdb[2] << 8) | cdb[3]
        blocks = cdb[4] or 256
        return RwCdb(lba, blocks, 0, 0)
    if n == 10:
        _, flags, lba, group, blocks = _RW10.unpack_from(cdb)
        return RwCdb(lba, blocks, flags, group & 0x3F)
    if n == 12:
        _, flags, lba, blocks, group = _RW12.unpack_from(cdb)
        return RwCdb(lba, blocks, flags, group & 0x3F)
    _, flags, lba, blocks, group = _RW16.unpack_from(cdb)
    if op == Op.COMPARE_AND_WRITE:
        blocks = cdb[13]
        group = cdb[14]
    return RwCdb(lba, blocks, flags, group & 0x3F)


def u16(buf: Buffer, off: int) -> int:
    return int(_U16.unpack_from(buf, off)[0])


def u32(buf: Buffer, off: int) -> int:
    return int(_U32.unpack_from(buf, off)[0])


def u64(buf: Buffer, off: int) -> int:
    return int(_U64.unpack_from(buf, off)[0])


def allocation_length(cdb: Buffer) -> int:
    """ALLOCATION LENGTH of the data-in commands served (SPC-4 4.2.5.6)."""
    op = cdb[0]
    if op in (Op.INQUIRY,):
        return u16(cdb, 3)
    if op in (Op.REQUEST_SENSE, Op.MODE_SENSE_6):
        return cdb[4]
    if op in (Op.MODE_SENSE_10, Op.PERSISTENT_RESERVE_IN, Op.READ_DEFECT_DATA_10):
        return u16(cdb, 7)
    if op in (Op.REPORT_LUNS, Op.MAINTENANCE_IN, Op.READ_DEFECT_DATA_12):
        return u32(cdb, 6)
    if op == Op.SERVICE_ACTION_IN_16:
        return u32(cdb, 10)
    if op == Op.READ_BUFFER:
        return int.from_bytes(cdb[6:9], "big")
    if op == Op.RECEIVE_COPY_RESULTS:
        return u32(cdb, 10)
    return 0


def parameter_list_length(cdb: Buffer) -> int:
    """PARAMETER LIST LENGTH of the data-out commands carrying a parameter list."""
    op = cdb[0]
    if op == Op.MODE_SELECT_6:
        return cdb[4]
    if op in (Op.MODE_SELECT_10, Op.UNMAP):
        return u16(cdb, 7)
    if op == Op.PERSISTENT_RESERVE_OUT:
        return u32(cdb, 5)
    if op == Op.MAINTENANCE_OUT:
        return u32(cdb, 6)
    if op == Op.WRITE_BUFFER:
        return int.from_bytes(cdb[6:9], "big")
    if op == Op.EXTENDED_COPY:
        return u32(cdb, 10)
    if op == Op.RESERVE_10 and cdb[1] & 0x02:  # LONGID (SPC-2 7.21)
        return u16(cdb, 7)
    return 0


# SAM-5 4.6: LUN encodings in the 8-byte LUN field.
def encode_lun(lun: int) -> bytes:
    """The 8-byte LUN field for ``lun``: peripheral device addressing below 256,
    flat space addressing up to 16383 (SAM-5 4.7.5, 4.7.7)."""
    if 0 <= lun < 256:
        return bytes((0, lun, 0, 0, 0, 0, 0, 0))
    if lun < 0x4000:
        return bytes((0x40 | (lun >> 8), lun & 0xFF, 0, 0, 0, 0, 0, 0))
    raise ValueError(f"LUN {lun} cannot be encoded in single level addressing")


def decode_lun(field: Buffer) -> int:
    """The LUN number of an 8-byte LUN field; -1 for an encoding not served
    (the command then gets LOGICAL UNIT NOT SUPPORTED)."""
    if len(field) < 8 or any(field[2:8]):
        return -1
    method = field[0] >> 6
    if method == 0 and field[0] == 0:
        return field[1]
    if method == 1:
        return ((field[0] & 0x3F) << 8) | field[1]
    return -1
