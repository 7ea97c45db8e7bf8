"""SCSI status codes and fixed-format sense data (SPC-4 4.5.3).

Every parser and command in the SCSI target reports failure by raising
:class:`SenseError`; the dispatcher turns it into CHECK CONDITION with the
18-byte fixed-format sense data built here.  Nothing else escapes a command.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "Asc",
    "SenseError",
    "SenseKey",
    "Status",
    "build_fixed_sense",
    "parse_fixed_sense",
]


class Status(IntEnum):
    """SAM-5 5.3.1 status codes."""

    GOOD = 0x00
    CHECK_CONDITION = 0x02
    CONDITION_MET = 0x04
    BUSY = 0x08
    RESERVATION_CONFLICT = 0x18
    TASK_SET_FULL = 0x28
    ACA_ACTIVE = 0x30
    TASK_ABORTED = 0x40


class SenseKey(IntEnum):
    """SPC-4 4.5.6 table 41: sense key descriptions."""

    NO_SENSE = 0x0
    RECOVERED_ERROR = 0x1
    NOT_READY = 0x2
    MEDIUM_ERROR = 0x3
    HARDWARE_ERROR = 0x4
    ILLEGAL_REQUEST = 0x5
    UNIT_ATTENTION = 0x6
    DATA_PROTECT = 0x7
    BLANK_CHECK = 0x8
    COPY_ABORTED = 0xA
    ABORTED_COMMAND = 0xB
    VOLUME_OVERFLOW = 0xD
    MISCOMPARE = 0xE


class Asc:
    """(ASC, ASCQ) pairs used by the target (SPC-4 annex D)."""

    NO_ADDITIONAL_SENSE = (0x00, 0x00)
    LU_NOT_READY_CAUSE_NOT_REPORTABLE = (0x04, 0x00)
    LU_NOT_READY_ALUA_TRANSITION = (0x04, 0x0A)
    LU_NOT_READY_TARGET_PORT_STANDBY = (0x04, 0x0B)
    LU_NOT_READY_TARGET_PORT_UNAVAILABLE = (0x04, 0x0C)
    LU_NOT_READY_OFFLINE = (0x04, 0x12)
    WRITE_ERROR = (0x0C, 0x00)
    THIRD_PARTY_DEVICE_FAILURE = (0x0D, 0x01)
    COPY_TARGET_DEVICE_NOT_REACHABLE = (0x0D, 0x02)
    OPERATION_IN_PROGRESS = (0x00, 0x16)
    UNRECOVERED_READ_ERROR = (0x11, 0x00)
    MISCOMPARE_DURING_VERIFY = (0x1D, 0x00)
    PARAMETER_LIST_LENGTH_ERROR = (0x1A, 0x00)
    INVALID_COMMAND_OPERATION_CODE = (0x20, 0x00)
    LBA_OUT_OF_RANGE = (0x21, 0x00)
    INVALID_FIELD_IN_CDB = (0x24, 0x00)
    LOGICAL_UNIT_NOT_SUPPORTED = (0x25, 0x00)
    INVALID_FIELD_IN_PARAMETER_LIST = (0x26, 0x00)
    PARAMETER_NOT_SUPPORTED = (0x26, 0x01)
    PARAMETER_VALUE_INVALID = (0x26, 0x02)
    INVALID_RELEASE_OF_PERSISTENT_RESERVATION = (0x26, 0x04)
    TOO_MANY_TARGET_DESCRIPTORS = (0x26, 0x06)
    UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE = (0x26, 0x07)
    TOO_MANY_SEGMENT_DESCRIPTORS = (0x26, 0x08)
    UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE = (0x26, 0x09)
    UNEXPECTED_INEXACT_SEGMENT = (0x26, 0x0A)
    INLINE_DATA_LENGTH_EXCEEDED = (0x26, 0x0B)
    WRITE_PROTECTED = (0x27, 0x00)
    POWER_ON_RESET = (0x29, 0x00)
    POWER_ON_OCCURRED = (0x29, 0x01)
    BUS_DEVICE_RESET_OCCURRED = (0x29, 0x03)
    I_T_NEXUS_LOSS_OCCURRED = (0x29, 0x07)
    PARAMETERS_CHANGED = (0x2A, 0x00)
    MODE_PARAMETERS_CHANGED = (0x2A, 0x01)
    RESERVATIONS_PREEMPTED = (0x2A, 0x03)
    RESERVATIONS_RELEASED = (0x2A, 0x04)
    REGISTRATIONS_PREEMPTED = (0x2A, 0x05)
    ASYMMETRIC_ACCESS_STATE_CHANGED = (0x2A, 0x06)
    CAPACITY_DATA_HAS_CHANGED = (0x2A, 0x09)
    COMMANDS_CLEARED_BY_ANOTHER_INITIATOR = (0x2F, 0x00)
    SAVING_PARAMETERS_NOT_SUPPORTED = (0x39, 0x00)
    MEDIUM_NOT_PRESENT = (0x3A, 0x00)
    REPORTED_LUNS_DATA_HAS_CHANGED = (0x3F, 0x0E)
    INQUIRY_DATA_HAS_CHANGED = (0x3F, 0x03)
    INSUFFICIENT_REGISTRATION_RESOURCES = (0x55, 0x04)
    MEDIUM_REMOVAL_PREVENTED = (0x53, 0x02)


FIXED_SENSE_LEN = 18


class SenseError(Exception):
    """A command ends in CHECK CONDITION with this sense (SPC-4 4.5.3 fixed format).

    ``field_pointer``/``bit`` fill the sense-key specific field (SPC-4 4.5.2.4.2):
    the byte (and bit) of the CDB (``in_cdb=True``) or of the parameter list
    that is in error.  ``information`` fills the INFORMATION field (VALID=1), for
    example the offset of the first miscompared byte (SBC-3 5.2).  For COPY ABORTED
    (SPC-4 6.4.3) ``command_specific`` is the number of the segment descriptor being
    processed and ``field_pointer`` a byte of that segment descriptor (SD=1).
    """

    key: int
    asc: int
    ascq: int

    def __init__(
        self,
        key: int,
        asc: int,
        ascq: int = 0,
        *,
        field_pointer: int | None = None,
        bit: int | None = None,
        in_cdb: bool = True,
        information: int | None = None,
        command_specific: int | None = None,
    ) -> None:
        super().__init__(f"sense {key:#x}/{asc:#04x}/{ascq:#04x}")
        self.command_specific = command_specific
        self.key = key
        self.asc = asc
        self.ascq = ascq
        self.field_pointer = field_pointer
        self.bit = bit
        self.in_cdb = in_cdb
        self.information = information

    @classmethod
    def illegal(
        cls,
        code: tuple[int, int],
        *,
        field_pointer: int | None = None,
        bit: int | None = None,
        in_cdb: bool = True,
    ) -> SenseError:
        return cls(
            SenseKey.ILLEGAL_REQUEST,
            *code,
            field_pointer=field_pointer,
            bit=bit,
            in_cdb=in_cdb,
        )

    @classmethod
    def invalid_cdb(cls, field_pointer: int | None = None, bit: int | None = None) -> SenseError:
        """ILLEGAL REQUEST, INVALID FIELD IN CDB (24/00)."""
        return cls.illegal(Asc.INVALID_FIELD_IN_CDB, field_pointer=field_pointer, bit=bit)

    @classmethod
    def invalid_param(cls, field_pointer: int | None = None, bit: int | None = None) -> SenseError:
        """ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST (26/00)."""
        return cls.illegal(
            Asc.INVALID_FIELD_IN_PARAMETER_LIST,
            field_pointer=field_pointer,
            bit=bit,
            in_cdb=False,
        )

    @classmethod
    def lba_out_of_range(cls) -> SenseError:
        """ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00)."""
        return cls.illegal(Asc.LBA_OUT_OF_RANGE)

    @classmethod
    def param_list_length(cls) -> SenseError:
        """ILLEGAL REQUEST, PARAMETER LIST LENGTH ERROR (1A/00)."""
        return cls.illegal(Asc.PARAMETER_LIST_LENGTH_ERROR)

    def to_bytes(self) -> bytes:
        return build_fixed_sense(
            self.key,
            self.asc,
            self.ascq,
            information=self.information,
            field_pointer=self.field_pointer,
            bit=self.bit,
            in_cdb=self.in_cdb,
            command_specific=self.command_specific,
        )


def build_fixed_sense(
    key: int,
    asc: int,
    ascq: int,
    *,
    information: int | None = None,
    field_pointer: int | None = None,
    bit: int | None = None,
    in_cdb: bool = True,
    command_specific: int | None = None,
) -> bytes:
    """SPC-4 4.5.3 table 48: 18 bytes, response code 70h (current), ADDITIONAL
    SENSE LENGTH 10."""
    code = 0x70
    info = b"\x00\x00\x00\x00"
    if information is not None:
        code |= 0x80  # VALID
        info = (information & 0xFFFFFFFF).to_bytes(4, "big")
    sks = b"\x00\x00\x00"
    if field_pointer is not None and key == SenseKey.ILLEGAL_REQUEST:
        b0 = 0x80  # SKSV
        if in_cdb:
            b0 |= 0x40  # C/D
        if bit is not None:
            b0 |= 0x08 | (bit & 7)  # BPV | BIT POINTER
        sks = bytes((b0,)) + (field_pointer & 0xFFFF).to_bytes(2, "big")
    elif field_pointer is not None and key == SenseKey.COPY_ABORTED:
        # Segment pointer (SPC-4 4.5.2.4.6): SKSV | SD, a byte of the segment descriptor.
        b0 = 0x80 | 0x20 | (0x08 | (bit & 7) if bit is not None else 0)
        sks = bytes((b0,)) + (field_pointer & 0xFFFF).to_bytes(2, "big")
    out = bytearray(FIXED_SENSE_LEN)
    out[0] = code
    out[2] = key & 0x0F
    out[3:7] = info
    out[7] = FIXED_SENSE_LEN - 8
    if command_specific is not None:
        out[8:12] = (command_specific & 0xFFFFFFFF).to_bytes(4, "big")
    out[12] = asc
    out[13] = ascq
    out[15:18] = sks
    return bytes(out)


def parse_fixed_sense(sense: bytes) -> tuple[int, int, int]:
    """(key, asc, ascq) of fixed-format sense data; for tests and logging."""
    if len(sense) < 14 or (sense[0] & 0x7F) not in (0x70, 0x71):
        raise ValueError("not fixed-format sense data")
    return sense[2] & 0x0F, sense[12], sense[13]
