"""iSCSI PDUs (RFC 7143 section 11): the Basic Header Segment of every opcode.

Pure and stateless: bytes <-> typed records. Every record is a NamedTuple whose ``decode``
reads the 48-byte BHS with one precompiled ``struct.Struct`` and whose ``encode`` returns the
48 bytes. The data segment and AHS never pass through this module's records; they stay
memoryview slices of the receive buffer (see :mod:`scsi.iscsi.framing`).

All multi-byte fields are big-endian. Bytes 4-7 of every BHS hold TotalAHSLength (in 4-byte
words) and the 24-bit DataSegmentLength, read here as one word.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple, Protocol

from scsi.iscsi.errors import PduError, RejectReason

BHS_LENGTH = 48
RESERVED_TAG = 0xFFFFFFFF
MAX_DATA_SEGMENT = 0xFFFFFF

IMMEDIATE = 0x40
FINAL = 0x80


class Opcode(IntEnum):
    """RFC 7143 11.2.1.2 Opcode."""

    NOP_OUT = 0x00
    SCSI_COMMAND = 0x01
    TASK_MGMT = 0x02
    LOGIN = 0x03
    TEXT = 0x04
    DATA_OUT = 0x05
    LOGOUT = 0x06
    SNACK = 0x10
    NOP_IN = 0x20
    SCSI_RESPONSE = 0x21
    TASK_MGMT_RESPONSE = 0x22
    LOGIN_RESPONSE = 0x23
    TEXT_RESPONSE = 0x24
    DATA_IN = 0x25
    LOGOUT_RESPONSE = 0x26
    R2T = 0x31
    ASYNC = 0x32
    REJECT = 0x3F


INITIATOR_OPCODES = frozenset(
    {
        Opcode.NOP_OUT,
        Opcode.SCSI_COMMAND,
        Opcode.TASK_MGMT,
        Opcode.LOGIN,
        Opcode.TEXT,
        Opcode.DATA_OUT,
        Opcode.LOGOUT,
        Opcode.SNACK,
    }
)


class TaskAttr(IntEnum):
    """RFC 7143 11.3.1 ATTR."""

    UNTAGGED = 0
    SIMPLE = 1
    ORDERED = 2
    HEAD_OF_QUEUE = 3
    ACA = 4


class TmfFunction(IntEnum):
    """RFC 7143 11.5.1 Function."""

    ABORT_TASK = 1
    ABORT_TASK_SET = 2
    CLEAR_ACA = 3
    CLEAR_TASK_SET = 4
    LOGICAL_UNIT_RESET = 5
    TARGET_WARM_RESET = 6
    TARGET_COLD_RESET = 7
    TASK_REASSIGN = 8


class TmfResponse(IntEnum):
    """RFC 7143 11.6.1 Response."""

    COMPLETE = 0
    TASK_DOES_NOT_EXIST = 1
    LUN_DOES_NOT_EXIST = 2
    TASK_STILL_ALLEGIANT = 3
    REASSIGNMENT_NOT_SUPPORTED = 4
    NOT_SUPPORTED = 5
    AUTHORIZATION_FAILED = 6
    REJECTED = 255


class LogoutReason(IntEnum):
    """RFC 7143 11.14.1 Reason Code."""

    CLOSE_SESSION = 0
    CLOSE_CONNECTION = 1
    REMOVE_FOR_RECOVERY = 2


class LogoutResponseCode(IntEnum):
    """RFC 7143 11.15.1 Response."""

    SUCCESS = 0
    CID_NOT_FOUND = 1
    RECOVERY_NOT_SUPPORTED = 2
    CLEANUP_FAILED = 3


class AsyncEvent(IntEnum):
    """RFC 7143 11.9.1 AsyncEvent."""

    SCSI_EVENT = 0
    LOGOUT_REQUEST = 1
    DROP_CONNECTION = 2
    DROP_ALL_CONNECTIONS = 3
    NEGOTIATION_REQUEST = 4
    TASK_TERMINATION = 5
    VENDOR = 255


class Stage(IntEnum):
    """RFC 7143 11.12.3 CSG and NSG."""

    SECURITY = 0
    OPERATIONAL = 1
    FULL_FEATURE = 3


# ---------------------------------------------------------------------------------------
# Struct layouts. Offsets 0-3: opcode, flags, two opcode-specific bytes; 4-7 AHS+DSL word.

# NOP-Out, SCSI Command, Task Mgmt, Text, Data-Out, Logout, SNACK and all target PDUs share
# "LUN or opcode-specific" at 8-15, ITT at 16, then seven 32-bit words.
_GENERIC = struct.Struct(">BBBBIQIIIIIIII")
# Login Request/Response: ISID (6) and TSIH (2) at 8-15; CID (2) + reserved (2) at 20.
_LOGIN = struct.Struct(">BBBBI6sHIHHIIIBBH8x")
# Logout Response: Time2Wait and Time2Retain are 16-bit at 40 and 42.
_LOGOUT_RSP = struct.Struct(">BBBBIQIIIIIIHHI")
# Logout Request: CID (2) at 20.
_LOGOUT_REQ = struct.Struct(">BBBBIQIHHIIIIII")
# Async Message: AsyncEvent, AsyncVCode, Parameter1-3 at 36-43.
_ASYNC = struct.Struct(">BBBBIQIIIIIBBHHHI")

assert _GENERIC.size == _LOGIN.size == _LOGOUT_RSP.size == _LOGOUT_REQ.size == BHS_LENGTH
assert _ASYNC.size == BHS_LENGTH


def _word(ahs_words: int, data_length: int) -> int:
    if not 0 <= data_length <= MAX_DATA_SEGMENT:
        raise ValueError(f"data segment length {data_length} out of range")
    if not 0 <= ahs_words <= 0xFF:
        raise ValueError(f"AHS length {ahs_words} out of range")
    return (ahs_words << 24) | data_length


class Record(Protocol):
    @property
    def itt(self) -> int: ...
    @property
    def data_length(self) -> int: ...
    @property
    def ahs_words(self) -> int: ...

    def encode(self) -> bytes: ...


_UNUSED_WORDS = (0,) * 7


def _pack_generic(
    op: int,
    flags: int,
    pdu: Record,
    *words: int,
    lun: int = 0,
    itt: int | None = None,
    byte2: int = 0,
    byte3: int = 0,
) -> bytes:
    """A BHS in the generic layout: opcode, flags and bytes 2-3, the AHS and data segment
    lengths of ``pdu``, LUN at 8, ITT at 16 (``pdu.itt`` unless given), then the 32-bit
    ``words`` from offset 20 on; the words after them are zero."""
    return _GENERIC.pack(
        op,
        flags,
        byte2,
        byte3,
        _word(pdu.ahs_words, pdu.data_length),
        lun,
        pdu.itt if itt is None else itt,
        *words,
        *_UNUSED_WORDS[len(words) :],
    )


def _login_flags(transit: bool, cont: bool, csg: int, nsg: int) -> int:
    """Byte 1 of a Login Request or Response (RFC 7143 11.12.2-3): T, C, CSG, NSG."""
    fl = (0x80 if transit else 0) | (0x40 if cont else 0)
    return fl | (csg & 3) << 2 | (nsg & 3 if transit else 0)


# ------------------------------------------------------------------------ initiator PDUs


class NopOut(NamedTuple):
    """RFC 7143 11.18 NOP-Out."""

    itt: int
    ttt: int
    cmdsn: int
    exp_statsn: int
    lun: int = 0
    immediate: bool = False
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> NopOut:
        op, _fl, _, _, w, lun, itt, ttt, cmdsn, expsn, *_ = _GENERIC.unpack_from(b)
        return cls(itt, ttt, cmdsn, expsn, lun, bool(op & IMMEDIATE), w & 0xFFFFFF, w >> 24)

    def encode(self) -> bytes:
        op = Opcode.NOP_OUT | (IMMEDIATE if self.immediate else 0)
        return _pack_generic(op, FINAL, self, self.ttt, self.cmdsn, self.exp_statsn, lun=self.lun)


class ScsiCommand(NamedTuple):
    """RFC 7143 11.3 SCSI Command. ``cdb`` is the 16-byte CDB field (an AHS may extend it)."""

    itt: int
    lun: int
    expected_length: int
    cmdsn: int
    exp_statsn: int
    cdb: bytes
    read: bool = False
    write: bool = False
    final: bool = True
    attr: int = TaskAttr.SIMPLE
    immediate: bool = False
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> ScsiCommand:
        op, fl, _, _, w, lun, itt, edtl, cmdsn, expsn, *_ = _GENERIC.unpack_from(b)
        cdb = bytes(b[32:48])
        return cls(
            itt,
            lun,
            edtl,
            cmdsn,
            expsn,
            cdb,
            bool(fl & 0x40),
            bool(fl & 0x20),
            bool(fl & FINAL),
            fl & 0x07,
            bool(op & IMMEDIATE),
            w & 0xFFFFFF,
            w >> 24,
        )

    def encode(self) -> bytes:
        if len(self.cdb) > 16:
            raise ValueError("CDBs longer than 16 bytes need an extended-CDB AHS")
        op = Opcode.SCSI_COMMAND | (IMMEDIATE if self.immediate else 0)
        fl = (FINAL if self.final else 0) | (0x40 if self.read else 0) | (0x20 if self.write else 0)
        fl |= self.attr & 0x07
        head = _pack_generic(
            op, fl, self, self.expected_length, self.cmdsn, self.exp_statsn, lun=self.lun
        )
        return head[:32] + self.cdb.ljust(16, b"\0")


class TaskMgmt(NamedTuple):
    """RFC 7143 11.5 SCSI Task Management Function Request."""

    itt: int
    function: int
    lun: int
    ref_itt: int
    cmdsn: int
    exp_statsn: int
    ref_cmdsn: int = 0
    exp_datasn: int = 0
    immediate: bool = True
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> TaskMgmt:
        op, fl, _, _, w, lun, itt, rtt, cmdsn, expsn, refsn, expdsn, _, _ = _GENERIC.unpack_from(b)
        return cls(
            itt,
            fl & 0x7F,
            lun,
            rtt,
            cmdsn,
            expsn,
            refsn,
            expdsn,
            bool(op & IMMEDIATE),
            w & 0xFFFFFF,
            w >> 24,
        )

    def encode(self) -> bytes:
        op = Opcode.TASK_MGMT | (IMMEDIATE if self.immediate else 0)
        return _pack_generic(
            op,
            FINAL | (self.function & 0x7F),
            self,
            self.ref_itt,
            self.cmdsn,
            self.exp_statsn,
            self.ref_cmdsn,
            self.exp_datasn,
            lun=self.lun,
        )


class LoginRequest(NamedTuple):
    """RFC 7143 11.12 Login Request."""

    isid: bytes
    tsih: int
    itt: int
    cid: int
    cmdsn: int
    exp_statsn: int
    csg: int
    nsg: int
    transit: bool
    cont: bool = False
    version_max: int = 0
    version_min: int = 0
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> LoginRequest:
        _, fl, vmax, vmin, w, isid, tsih, itt, cid, _, cmdsn, expsn, *_ = _LOGIN.unpack_from(b)
        return cls(
            isid,
            tsih,
            itt,
            cid,
            cmdsn,
            expsn,
            (fl >> 2) & 3,
            fl & 3,
            bool(fl & 0x80),
            bool(fl & 0x40),
            vmax,
            vmin,
            w & 0xFFFFFF,
            w >> 24,
        )

    def encode(self) -> bytes:
        fl = _login_flags(self.transit, self.cont, self.csg, self.nsg)
        return _LOGIN.pack(
            Opcode.LOGIN | IMMEDIATE,
            fl,
            self.version_max,
            self.version_min,
            _word(self.ahs_words, self.data_length),
            self.isid,
            self.tsih,
            self.itt,
            self.cid,
            0,
            self.cmdsn,
            self.exp_statsn,
            0,
            0,
            0,
            0,
        )


class TextRequest(NamedTuple):
    """RFC 7143 11.10 Text Request."""

    itt: int
    ttt: int
    cmdsn: int
    exp_statsn: int
    final: bool = True
    cont: bool = False
    lun: int = 0
    immediate: bool = False
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> TextRequest:
        op, fl, _, _, w, lun, itt, ttt, cmdsn, expsn, *_ = _GENERIC.unpack_from(b)
        return cls(
            itt,
            ttt,
            cmdsn,
            expsn,
            bool(fl & FINAL),
            bool(fl & 0x40),
            lun,
            bool(op & IMMEDIATE),
            w & 0xFFFFFF,
            w >> 24,
        )

    def encode(self) -> bytes:
        op = Opcode.TEXT | (IMMEDIATE if self.immediate else 0)
        fl = (FINAL if self.final else 0) | (0x40 if self.cont else 0)
        return _pack_generic(op, fl, self, self.ttt, self.cmdsn, self.exp_statsn, lun=self.lun)


class DataOut(NamedTuple):
    """RFC 7143 11.7 SCSI Data-Out."""

    itt: int
    ttt: int
    datasn: int
    offset: int
    exp_statsn: int
    final: bool
    lun: int = 0
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> DataOut:
        _, fl, _, _, w, lun, itt, ttt, _, expsn, _, dsn, off, _ = _GENERIC.unpack_from(b)
        return cls(itt, ttt, dsn, off, expsn, bool(fl & FINAL), lun, w & 0xFFFFFF, w >> 24)

    def encode(self) -> bytes:
        return _pack_generic(
            Opcode.DATA_OUT,
            FINAL if self.final else 0,
            self,
            self.ttt,
            0,
            self.exp_statsn,
            0,
            self.datasn,
            self.offset,
            lun=self.lun,
        )


class LogoutRequest(NamedTuple):
    """RFC 7143 11.14 Logout Request."""

    itt: int
    reason: int
    cid: int
    cmdsn: int
    exp_statsn: int
    immediate: bool = True
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> LogoutRequest:
        op, fl, _, _, w, _, itt, cid, _, cmdsn, expsn, *_ = _LOGOUT_REQ.unpack_from(b)
        return cls(itt, fl & 0x7F, cid, cmdsn, expsn, bool(op & IMMEDIATE), w & 0xFFFFFF, w >> 24)

    def encode(self) -> bytes:
        op = Opcode.LOGOUT | (IMMEDIATE if self.immediate else 0)
        return _LOGOUT_REQ.pack(
            op,
            FINAL | (self.reason & 0x7F),
            0,
            0,
            _word(self.ahs_words, self.data_length),
            0,
            self.itt,
            self.cid,
            0,
            self.cmdsn,
            self.exp_statsn,
            0,
            0,
            0,
            0,
        )


class Snack(NamedTuple):
    """RFC 7143 11.16 SNACK Request (not supported at ErrorRecoveryLevel 0)."""

    itt: int
    snack_type: int
    ttt: int
    begrun: int
    runlength: int
    exp_statsn: int = 0
    lun: int = 0
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> Snack:
        _, fl, _, _, w, lun, itt, ttt, _, expsn, _, _, beg, run = _GENERIC.unpack_from(b)
        return cls(itt, fl & 0x0F, ttt, beg, run, expsn, lun, w & 0xFFFFFF, w >> 24)

    def encode(self) -> bytes:
        return _pack_generic(
            Opcode.SNACK,
            FINAL | (self.snack_type & 0x0F),
            self,
            self.ttt,
            0,
            self.exp_statsn,
            0,
            0,
            self.begrun,
            self.runlength,
            lun=self.lun,
        )


# --------------------------------------------------------------------------- target PDUs


class NopIn(NamedTuple):
    """RFC 7143 11.19 NOP-In."""

    itt: int
    ttt: int
    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    lun: int = 0
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> NopIn:
        _, _, _, _, w, lun, itt, ttt, sn, exp, mx, *_ = _GENERIC.unpack_from(b)
        return cls(itt, ttt, sn, exp, mx, lun, w & 0xFFFFFF, w >> 24)

    def encode(self) -> bytes:
        return _pack_generic(
            Opcode.NOP_IN,
            FINAL,
            self,
            self.ttt,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            lun=self.lun,
        )


class ScsiResponse(NamedTuple):
    """RFC 7143 11.4 SCSI Response. ``residual`` > 0 with ``overflow`` or ``underflow``."""

    itt: int
    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    status: int
    response: int = 0
    exp_datasn: int = 0
    residual: int = 0
    overflow: bool = False
    underflow: bool = False
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> ScsiResponse:
        _, fl, rsp, st, w, _, itt, _, sn, exp, mx, edsn, _, res = _GENERIC.unpack_from(b)
        return cls(
            itt,
            sn,
            exp,
            mx,
            st,
            rsp,
            edsn,
            res,
            bool(fl & 0x04),
            bool(fl & 0x02),
            w & 0xFFFFFF,
            w >> 24,
        )

    def encode(self) -> bytes:
        fl = FINAL | (0x04 if self.overflow else 0) | (0x02 if self.underflow else 0)
        return _pack_generic(
            Opcode.SCSI_RESPONSE,
            fl,
            self,
            0,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            self.exp_datasn,
            0,
            self.residual,
            byte2=self.response,
            byte3=self.status,
        )


class TaskMgmtResponse(NamedTuple):
    """RFC 7143 11.6 SCSI Task Management Function Response."""

    itt: int
    response: int
    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> TaskMgmtResponse:
        _, _, rsp, _, w, _, itt, _, sn, exp, mx, *_ = _GENERIC.unpack_from(b)
        return cls(itt, rsp, sn, exp, mx, w & 0xFFFFFF, w >> 24)

    def encode(self) -> bytes:
        return _pack_generic(
            Opcode.TASK_MGMT_RESPONSE,
            FINAL,
            self,
            0,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            byte2=self.response,
        )


class LoginResponse(NamedTuple):
    """RFC 7143 11.13 Login Response."""

    isid: bytes
    tsih: int
    itt: int
    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    status_class: int
    status_detail: int
    csg: int
    nsg: int
    transit: bool
    cont: bool = False
    version_max: int = 0
    version_active: int = 0
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> LoginResponse:
        _, fl, vmax, vact, w, isid, tsih, itt, _, _, sn, exp, mx, scl, sdt, _ = _LOGIN.unpack_from(
            b
        )
        return cls(
            isid,
            tsih,
            itt,
            sn,
            exp,
            mx,
            scl,
            sdt,
            (fl >> 2) & 3,
            fl & 3,
            bool(fl & 0x80),
            bool(fl & 0x40),
            vmax,
            vact,
            w & 0xFFFFFF,
            w >> 24,
        )

    def encode(self) -> bytes:
        fl = _login_flags(self.transit, self.cont, self.csg, self.nsg)
        # Bytes 20-23 are reserved in a response; _LOGIN puts CID there for requests.
        return _LOGIN.pack(
            Opcode.LOGIN_RESPONSE,
            fl,
            self.version_max,
            self.version_active,
            _word(self.ahs_words, self.data_length),
            self.isid,
            self.tsih,
            self.itt,
            0,
            0,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            self.status_class,
            self.status_detail,
            0,
        )


class TextResponse(NamedTuple):
    """RFC 7143 11.11 Text Response."""

    itt: int
    ttt: int
    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    final: bool = True
    cont: bool = False
    lun: int = 0
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> TextResponse:
        _, fl, _, _, w, lun, itt, ttt, sn, exp, mx, *_ = _GENERIC.unpack_from(b)
        return cls(
            itt, ttt, sn, exp, mx, bool(fl & FINAL), bool(fl & 0x40), lun, w & 0xFFFFFF, w >> 24
        )

    def encode(self) -> bytes:
        fl = (FINAL if self.final else 0) | (0x40 if self.cont else 0)
        return _pack_generic(
            Opcode.TEXT_RESPONSE,
            fl,
            self,
            self.ttt,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            lun=self.lun,
        )


def pack_data_in_status(
    buf: bytearray,
    offset: int,
    itt: int,
    lun: int,
    data_length: int,
    statsn: int,
    exp_cmdsn: int,
    max_cmdsn: int,
) -> None:
    """Write at ``buf[offset:]`` the BHS of the only Data-In PDU of a read that returns
    all its expected data with GOOD status (RFC 7143 11.7: F and S set, DataSN 0, buffer
    offset 0, no residual): :meth:`DataIn.encode` of that PDU, without the record."""
    _GENERIC.pack_into(
        buf,
        offset,
        Opcode.DATA_IN,
        FINAL | 0x01,
        0,
        0,
        data_length,
        lun,
        itt,
        RESERVED_TAG,
        statsn,
        exp_cmdsn,
        max_cmdsn,
        0,
        0,
        0,
    )


class DataIn(NamedTuple):
    """RFC 7143 11.7 SCSI Data-In. With ``status`` set (S bit) it carries the final status."""

    itt: int
    datasn: int
    offset: int
    final: bool
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    status: int | None = None
    residual: int = 0
    overflow: bool = False
    underflow: bool = False
    ack: bool = False
    ttt: int = RESERVED_TAG
    lun: int = 0
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> DataIn:
        _, fl, _, st, w, lun, itt, ttt, sn, exp, mx, dsn, off, res = _GENERIC.unpack_from(b)
        return cls(
            itt,
            dsn,
            off,
            bool(fl & FINAL),
            sn,
            exp,
            mx,
            st if fl & 0x01 else None,
            res,
            bool(fl & 0x04),
            bool(fl & 0x02),
            bool(fl & 0x40),
            ttt,
            lun,
            w & 0xFFFFFF,
            w >> 24,
        )

    def encode(self) -> bytes:
        fl = (FINAL if self.final else 0) | (0x40 if self.ack else 0)
        status = 0
        statsn = 0
        if self.status is not None:
            fl |= 0x01 | (0x04 if self.overflow else 0) | (0x02 if self.underflow else 0)
            status, statsn = self.status, self.statsn
        return _pack_generic(
            Opcode.DATA_IN,
            fl,
            self,
            self.ttt,
            statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            self.datasn,
            self.offset,
            self.residual if self.status is not None else 0,
            lun=self.lun,
            byte3=status,
        )


class LogoutResponse(NamedTuple):
    """RFC 7143 11.15 Logout Response."""

    itt: int
    response: int
    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    time2wait: int = 0
    time2retain: int = 0
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> LogoutResponse:
        _, _, rsp, _, w, _, itt, _, sn, exp, mx, _, t2w, t2r, _ = _LOGOUT_RSP.unpack_from(b)
        return cls(itt, rsp, sn, exp, mx, t2w, t2r, w & 0xFFFFFF, w >> 24)

    def encode(self) -> bytes:
        return _LOGOUT_RSP.pack(
            Opcode.LOGOUT_RESPONSE,
            FINAL,
            self.response,
            0,
            _word(self.ahs_words, self.data_length),
            0,
            self.itt,
            0,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            0,
            self.time2wait,
            self.time2retain,
            0,
        )


class R2T(NamedTuple):
    """RFC 7143 11.8 Ready To Transfer."""

    itt: int
    ttt: int
    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    r2tsn: int
    offset: int
    length: int
    lun: int = 0
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> R2T:
        _, _, _, _, w, lun, itt, ttt, sn, exp, mx, r2tsn, off, ln = _GENERIC.unpack_from(b)
        return cls(itt, ttt, sn, exp, mx, r2tsn, off, ln, lun, w & 0xFFFFFF, w >> 24)

    def encode(self) -> bytes:
        return _pack_generic(
            Opcode.R2T,
            FINAL,
            self,
            self.ttt,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            self.r2tsn,
            self.offset,
            self.length,
            lun=self.lun,
        )


class AsyncMessage(NamedTuple):
    """RFC 7143 11.9 Asynchronous Message."""

    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    event: int
    vcode: int = 0
    param1: int = 0
    param2: int = 0
    param3: int = 0
    lun: int = 0
    itt: int = RESERVED_TAG
    data_length: int = 0
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> AsyncMessage:
        _, _, _, _, w, lun, itt, _, sn, exp, mx, ev, vc, p1, p2, p3, _ = _ASYNC.unpack_from(b)
        return cls(sn, exp, mx, ev, vc, p1, p2, p3, lun, itt, w & 0xFFFFFF, w >> 24)

    def encode(self) -> bytes:
        return _ASYNC.pack(
            Opcode.ASYNC,
            FINAL,
            0,
            0,
            _word(self.ahs_words, self.data_length),
            self.lun,
            RESERVED_TAG,
            0,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            self.event,
            self.vcode,
            self.param1,
            self.param2,
            self.param3,
            0,
        )


class Reject(NamedTuple):
    """RFC 7143 11.17 Reject. The data segment is the rejected PDU's header."""

    reason: int
    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    datasn: int = 0
    itt: int = RESERVED_TAG
    data_length: int = BHS_LENGTH
    ahs_words: int = 0

    @classmethod
    def decode(cls, b: memoryview | bytes | bytearray) -> Reject:
        _, _, reason, _, w, _, itt, _, sn, exp, mx, dsn, _, _ = _GENERIC.unpack_from(b)
        return cls(reason, sn, exp, mx, dsn, itt, w & 0xFFFFFF, w >> 24)

    def encode(self) -> bytes:
        return _pack_generic(
            Opcode.REJECT,
            FINAL,
            self,
            0,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            self.datasn,
            byte2=self.reason,
            itt=RESERVED_TAG,
        )


Pdu = (
    NopOut
    | ScsiCommand
    | TaskMgmt
    | LoginRequest
    | TextRequest
    | DataOut
    | LogoutRequest
    | Snack
    | NopIn
    | ScsiResponse
    | TaskMgmtResponse
    | LoginResponse
    | TextResponse
    | DataIn
    | LogoutResponse
    | R2T
    | AsyncMessage
    | Reject
)

DECODERS: dict[int, type[Pdu]] = {
    Opcode.NOP_OUT: NopOut,
    Opcode.SCSI_COMMAND: ScsiCommand,
    Opcode.TASK_MGMT: TaskMgmt,
    Opcode.LOGIN: LoginRequest,
    Opcode.TEXT: TextRequest,
    Opcode.DATA_OUT: DataOut,
    Opcode.LOGOUT: LogoutRequest,
    Opcode.SNACK: Snack,
    Opcode.NOP_IN: NopIn,
    Opcode.SCSI_RESPONSE: ScsiResponse,
    Opcode.TASK_MGMT_RESPONSE: TaskMgmtResponse,
    Opcode.LOGIN_RESPONSE: LoginResponse,
    Opcode.TEXT_RESPONSE: TextResponse,
    Opcode.DATA_IN: DataIn,
    Opcode.LOGOUT_RESPONSE: LogoutResponse,
    Opcode.R2T: R2T,
    Opcode.ASYNC: AsyncMessage,
    Opcode.REJECT: Reject,
}


def opcode_of(bhs: memoryview | bytes) -> int:
    return bhs[0] & 0x3F


def lengths(bhs: memoryview | bytes | bytearray) -> tuple[int, int]:
    """(TotalAHSLength in bytes, DataSegmentLength) of a BHS (RFC 7143 11.2.1.4-5)."""
    if len(bhs) < BHS_LENGTH:
        raise PduError(RejectReason.PROTOCOL_ERROR, "short basic header segment")
    return bhs[4] * 4, (bhs[5] << 16) | (bhs[6] << 8) | bhs[7]


def decode(
    bhs: memoryview | bytes | bytearray, *, allowed: frozenset[int] = INITIATOR_OPCODES
) -> Pdu:
    """Decode a 48-byte BHS into its record, or raise :class:`PduError` (reason code)."""
    if len(bhs) < BHS_LENGTH:
        raise PduError(RejectReason.PROTOCOL_ERROR, "short basic header segment")
    op = bhs[0] & 0x3F
    if op not in allowed:
        raise PduError(RejectReason.COMMAND_NOT_SUPPORTED, f"opcode {op:#04x} not accepted here")
    return DECODERS[op].decode(bhs)


def pad4(n: int) -> int:
    """Bytes of padding after a data segment of ``n`` bytes (RFC 7143 11.2.3)."""
    return -n & 3
