"""SPC-4 4.5.3 fixed format sense data."""

from __future__ import annotations

from scsi.sense import Asc, SenseError, SenseKey, build_fixed_sense, parse_fixed_sense


def test_spc4_4_5_3_fixed_format_lba_out_of_range() -> None:
    expected = bytes.fromhex(
        "70"  # RESPONSE CODE current, VALID=0
        "00"  # obsolete
        "05"  # SENSE KEY ILLEGAL REQUEST
        "00000000"  # INFORMATION
        "0a"  # ADDITIONAL SENSE LENGTH
        "00000000"  # COMMAND-SPECIFIC INFORMATION
        "21"  # ASC LOGICAL BLOCK ADDRESS OUT OF RANGE
        "00"  # ASCQ
        "00"  # FRU
        "000000"  # SENSE KEY SPECIFIC
    )
    assert SenseError.lba_out_of_range().to_bytes() == expected


def test_spc4_4_5_2_4_2_field_pointer_in_cdb() -> None:
    # INVALID FIELD IN CDB, byte 1 bit 7: SKSV | C/D | BPV | bit 7, pointer 0001h.
    s = SenseError.invalid_cdb(1, 7).to_bytes()
    assert s[12:14] == b"\x24\x00"
    assert s[15:18] == bytes.fromhex("cf0001")


def test_spc4_4_5_2_4_2_field_pointer_in_parameter_list() -> None:
    s = SenseError.invalid_param(20).to_bytes()
    assert s[12:14] == b"\x26\x00"
    assert s[15:18] == bytes.fromhex("800014")  # SKSV, C/D=0, no bit pointer


def test_sbc3_5_2_miscompare_information_field() -> None:
    s = SenseError(
        SenseKey.MISCOMPARE, *Asc.MISCOMPARE_DURING_VERIFY, information=0x1234
    ).to_bytes()
    assert s[0] == 0xF0  # VALID | 70h
    assert s[2] == 0x0E
    assert s[3:7] == bytes.fromhex("00001234")
    assert s[12:14] == b"\x1d\x00"


def test_unit_attention_round_trip() -> None:
    s = build_fixed_sense(SenseKey.UNIT_ATTENTION, *Asc.REPORTED_LUNS_DATA_HAS_CHANGED)
    assert len(s) == 18
    assert parse_fixed_sense(s) == (0x6, 0x3F, 0x0E)
