"""RFC 7143 section 11: PDU layouts, byte-exact.

Vectors are laid out one field per line from the BHS figures of RFC 7143 11.x; the login
vector is the first Login Request libiscsi 1.19 sends (captured on loopback, data segment
left out).
"""

from __future__ import annotations

import pytest

from scsi.iscsi import pdu
from scsi.iscsi.errors import PduError, RejectReason


def test_rfc7143_11_3_scsi_command_decode() -> None:
    raw = bytes.fromhex(
        "01"  # opcode SCSI Command, not immediate
        "c1"  # F, R, ATTR simple
        "0000"  # reserved
        "00"  # TotalAHSLength
        "000000"  # DataSegmentLength
        "0001000000000000"  # LUN 1 (peripheral addressing)
        "12345678"  # ITT
        "00001000"  # Expected Data Transfer Length 4096
        "00000007"  # CmdSN
        "00000003"  # ExpStatSN
        "28000000001000000800000000000000"  # CDB READ(10) LBA 16, 8 blocks
    )
    rec = pdu.decode(raw)
    assert isinstance(rec, pdu.ScsiCommand)
    assert rec == pdu.ScsiCommand(
        itt=0x12345678,
        lun=1 << 48,
        expected_length=4096,
        cmdsn=7,
        exp_statsn=3,
        cdb=bytes.fromhex("28000000001000000800000000000000"),
        read=True,
        write=False,
        final=True,
        attr=1,
        immediate=False,
        data_length=0,
        ahs_words=0,
    )
    assert rec.encode() == raw


def test_rfc7143_11_4_scsi_response_encode() -> None:
    rec = pdu.ScsiResponse(
        itt=0x10,
        statsn=5,
        exp_cmdsn=8,
        max_cmdsn=71,
        status=0x02,
        exp_datasn=0,
        residual=512,
        underflow=True,
        data_length=20,
    )
    assert rec.encode() == bytes.fromhex(
        "21"  # opcode SCSI Response
        "82"  # F + U (residual underflow)
        "00"  # Response: command completed at target
        "02"  # Status CHECK CONDITION
        "00"  # TotalAHSLength
        "000014"  # DataSegmentLength 20 (SenseLength + 18 bytes of sense)
        "0000000000000000"  # reserved
        "00000010"  # ITT
        "00000000"  # SNACK Tag
        "00000005"  # StatSN
        "00000008"  # ExpCmdSN
        "00000047"  # MaxCmdSN
        "00000000"  # ExpDataSN
        "00000000"  # Bidirectional Read Residual Count
        "00000200"  # Residual Count
    )


def test_rfc7143_11_7_2_data_in_with_phase_collapsed_status() -> None:
    rec = pdu.DataIn(
        itt=0x20,
        datasn=3,
        offset=0x30000,
        final=True,
        statsn=9,
        exp_cmdsn=10,
        max_cmdsn=73,
        status=0,
        data_length=0x10000,
    )
    raw = rec.encode()
    assert raw == bytes.fromhex(
        "25"  # opcode Data-In
        "81"  # F + S
        "00"  # reserved
        "00"  # Status GOOD (valid with S)
        "00"  # TotalAHSLength
        "010000"  # DataSegmentLength 65536
        "0000000000000000"  # LUN
        "00000020"  # ITT
        "ffffffff"  # Target Transfer Tag (A not set)
        "00000009"  # StatSN
        "0000000a"  # ExpCmdSN
        "00000049"  # MaxCmdSN
        "00000003"  # DataSN
        "00030000"  # Buffer Offset
        "00000000"  # Residual Count
    )
    assert pdu.DataIn.decode(raw) == rec


def test_rfc7143_11_8_r2t() -> None:
    rec = pdu.R2T(0x30, 0x7, 4, 5, 68, r2tsn=1, offset=262144, length=262144, lun=0)
    assert rec.encode() == bytes.fromhex(
        "31"  # opcode R2T
        "80"  # F
        "0000"  # reserved
        "00000000"  # AHS + DSL
        "0000000000000000"  # LUN
        "00000030"  # ITT
        "00000007"  # TTT
        "00000004"  # StatSN
        "00000005"  # ExpCmdSN
        "00000044"  # MaxCmdSN
        "00000001"  # R2TSN
        "00040000"  # Buffer Offset
        "00040000"  # Desired Data Transfer Length
    )


def test_rfc7143_11_12_login_request_from_libiscsi() -> None:
    raw = bytes.fromhex(
        "43"  # opcode Login Request + immediate
        "87"  # T, CSG 1 (operational), NSG 3 (full feature)
        "00"  # Version-max
        "00"  # Version-min
        "00"  # TotalAHSLength
        "0001c4"  # DataSegmentLength 452
        "232620d5c35c"  # ISID (type 0x23... as libiscsi makes it)
        "0000"  # TSIH 0: new session
        "00000000"  # ITT
        "0000"  # CID
        "0000"  # reserved
        "5b1a2c19"  # CmdSN
        "00000000"  # ExpStatSN
        "00000000000000000000000000000000"  # reserved
    )
    rec = pdu.decode(raw)
    assert isinstance(rec, pdu.LoginRequest)
    assert (rec.csg, rec.nsg, rec.transit, rec.cont) == (1, 3, True, False)
    assert rec.isid == bytes.fromhex("232620d5c35c")
    assert rec.data_length == 452 and rec.cmdsn == 0x5B1A2C19
    assert rec.encode() == raw


def test_rfc7143_11_13_login_response_status() -> None:
    rec = pdu.LoginResponse(
        isid=b"\x80\x00\x00\x00\x00\x01",
        tsih=0,
        itt=1,
        statsn=0,
        exp_cmdsn=2,
        max_cmdsn=2,
        status_class=2,
        status_detail=2,
        csg=0,
        nsg=0,
        transit=False,
    )
    raw = rec.encode()
    assert raw[0] == 0x23 and raw[1] == 0x00
    assert raw[36:38] == b"\x02\x02"  # authorization failure
    assert pdu.LoginResponse.decode(raw) == rec


def test_rfc7143_11_17_reject_carries_the_rejected_header_length() -> None:
    rec = pdu.Reject(RejectReason.PROTOCOL_ERROR, 1, 2, 3)
    raw = rec.encode()
    assert raw[:8] == bytes.fromhex("3f80040000000030")
    assert raw[16:20] == b"\xff\xff\xff\xff"


def test_rfc7143_11_15_logout_response_times() -> None:
    raw = pdu.LogoutResponse(9, 0, 1, 2, 3, time2wait=2, time2retain=20).encode()
    assert raw[40:44] == bytes.fromhex("00020014")
    assert pdu.LogoutResponse.decode(raw).time2retain == 20


@pytest.mark.parametrize(
    "record",
    [
        pdu.NopOut(1, 0xFFFFFFFF, 2, 3, lun=5 << 48, immediate=True, data_length=4),
        pdu.TaskMgmt(1, 5, 0, 0xFFFFFFFF, 9, 8, ref_cmdsn=7),
        pdu.TextRequest(1, 0xFFFFFFFF, 2, 3, data_length=16),
        pdu.DataOut(1, 2, 3, 4096, 5, True, data_length=512),
        pdu.LogoutRequest(1, 0, 0, 4, 5),
        pdu.Snack(1, 1, 2, 3, 4),
        pdu.NopIn(0xFFFFFFFF, 7, 1, 2, 3),
        pdu.TaskMgmtResponse(1, 0, 2, 3, 4),
        pdu.TextResponse(1, 0xFFFFFFFF, 2, 3, 4, data_length=10),
        pdu.AsyncMessage(1, 2, 3, 0, data_length=20),
    ],
)
def test_rfc7143_11_every_record_round_trips(record: pdu.Pdu) -> None:
    raw = record.encode()
    assert len(raw) == pdu.BHS_LENGTH
    allowed = frozenset(pdu.Opcode)
    assert pdu.decode(raw, allowed=allowed) == record


def test_rfc7143_11_2_1_2_target_opcode_from_an_initiator_is_not_supported() -> None:
    raw = pdu.NopIn(1, 2, 3, 4, 5).encode()
    with pytest.raises(PduError) as e:
        pdu.decode(raw)
    assert e.value.reason == RejectReason.COMMAND_NOT_SUPPORTED


def test_rfc7143_11_2_1_short_header_is_a_protocol_error() -> None:
    with pytest.raises(PduError) as e:
        pdu.decode(b"\x01" * 47)
    assert e.value.reason == RejectReason.PROTOCOL_ERROR
