"""[MS-SMB2] 2.2.5 / 2.2.6 SESSION_SETUP, 2.2.7 / 2.2.8 LOGOFF (and the other four-byte
bodies: 2.2.11/2.2.12 TREE_DISCONNECT, 2.2.28/2.2.29 ECHO, 2.2.30 CANCEL).

The request vector is smbclient 4.17's first SESSION_SETUP (SPNEGO NegTokenInit carrying an
NTLMSSP NEGOTIATE), captured on this machine.
"""

from __future__ import annotations

import pytest

from smbd.wire import misc, session
from smbd.wire.errors import ParseError
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz

TOKEN = bytes.fromhex(
    "604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa22a04284e544c4d5353500001"
    "0000001582086200000000280000000000000028000000060100000000000f"
)

SMBCLIENT_SESSION_SETUP = (
    bytes.fromhex(
        "1900"  # StructureSize 25
        "00"  # Flags
        "01"  # SecurityMode SIGNING_ENABLED
        "01000000"  # Capabilities DFS
        "00000000"  # Channel
        "5800"  # SecurityBufferOffset 0x58
        "4a00"  # SecurityBufferLength 74
        "0000000000000000"  # PreviousSessionId
    )
    + TOKEN
)

SESSION_SETUP_RESPONSE = (
    bytes.fromhex(
        "0900"  # StructureSize 9
        "0400"  # SessionFlags ENCRYPT_DATA
        "4800"  # SecurityBufferOffset 0x48
        "0700"  # SecurityBufferLength 7
    )
    + b"\xa1\x050\x03\n\x01\x00"  # NegTokenResp accept-completed
)


def test_2_2_5_smbclient_request() -> None:
    r = session.parse_session_setup_request(SMBCLIENT_SESSION_SETUP)
    assert r == session.SessionSetupRequest(0, 1, 1, 0, 0, TOKEN)
    assert not r.binding
    assert (
        session.pack_session_setup_request(TOKEN, security_mode=1, capabilities=1)
        == SMBCLIENT_SESSION_SETUP
    )


def test_2_2_5_binding_flag() -> None:
    raw = session.pack_session_setup_request(b"x", flags=session.SESSION_FLAG_BINDING)
    assert session.parse_session_setup_request(raw).binding


def test_2_2_5_truncation() -> None:
    check_truncation_and_trailing(
        session.parse_session_setup_request, SMBCLIENT_SESSION_SETUP, fixed=len(TOKEN) + 24
    )


@pytest.mark.parametrize(
    "data",
    [
        b"\x18" + SMBCLIENT_SESSION_SETUP[1:],  # StructureSize 24
        SMBCLIENT_SESSION_SETUP[:12] + b"\x10\x00" + SMBCLIENT_SESSION_SETUP[14:],  # in header
        SMBCLIENT_SESSION_SETUP[:14] + b"\xff\x00" + SMBCLIENT_SESSION_SETUP[16:],  # too long
    ],
)
def test_2_2_5_bad(data: bytes) -> None:
    with pytest.raises(ParseError):
        session.parse_session_setup_request(data)


def test_2_2_6_response() -> None:
    token = SESSION_SETUP_RESPONSE[8:]
    assert session.pack_session_setup_response(4, token) == SESSION_SETUP_RESPONSE
    assert session.parse_session_setup_response(SESSION_SETUP_RESPONSE) == (
        session.SessionSetupResponse(4, token)
    )


def test_2_2_6_response_without_token() -> None:
    raw = session.pack_session_setup_response(1, b"")
    assert raw == bytes.fromhex("0900010000000000")


def test_four_byte_bodies() -> None:
    assert misc.SIMPLE_BODY == b"\x04\x00\x00\x00"
    misc.parse_simple(b"\x04\x00\xff\xff")  # Reserved is ignored
    for bad in (b"", b"\x04\x00", b"\x05\x00\x00\x00"):
        with pytest.raises(ParseError):
            misc.parse_simple(bad)


test_fuzz_request = fuzz(session.parse_session_setup_request, SMBCLIENT_SESSION_SETUP)
test_fuzz_response = fuzz(session.parse_session_setup_response, SESSION_SETUP_RESPONSE)
test_fuzz_simple = fuzz(misc.parse_simple, misc.SIMPLE_BODY)
