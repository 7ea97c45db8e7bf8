"""smbd.auth.spnego against Windows' own tokens, pyspnego and impacket, and fuzzing.

Windows tokens come from the SESSION_SETUP messages of Microsoft's "SMB 3.1.1
Pre-authentication integrity in Windows 10" blog vectors (see tests/smbd/test_crypto.py).
"""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from impacket.spnego import SPNEGO_NegTokenInit, SPNEGO_NegTokenResp, TypesMech
from spnego._spnego import NegTokenInit as PyspnegoNegTokenInit
from spnego._spnego import unpack_token

from smbd.auth import negotiate_token, ntlm, spnego
from smbd.auth.spnego import NegState, NegTokenInit, NegTokenResp, SpnegoError
from tests.smbd.test_crypto import (
    PAI_SESSION_SETUP_REQUEST_1,
    PAI_SESSION_SETUP_REQUEST_2,
    PAI_SESSION_SETUP_RESPONSE_1,
)

NTLM_OID = "1.3.6.1.4.1.311.2.2.10"


def _security_buffer(message: bytes, field_offset: int) -> bytes:
    """The security buffer of a SESSION_SETUP request (field at 64+12) or response (64+4)."""
    offset, length = struct.unpack_from("<HH", message, field_offset)
    return message[offset : offset + length]


WINDOWS_INIT = _security_buffer(PAI_SESSION_SETUP_REQUEST_1, 64 + 12)
WINDOWS_CHALLENGE_RESP = _security_buffer(PAI_SESSION_SETUP_RESPONSE_1, 64 + 4)
WINDOWS_AUTH_RESP = _security_buffer(PAI_SESSION_SETUP_REQUEST_2, 64 + 12)


def test_rfc4178_4_2_1_windows_neg_token_init() -> None:
    token = spnego.parse_token(WINDOWS_INIT)
    assert isinstance(token, NegTokenInit)
    assert token.mech_types == (spnego.OID_NTLMSSP,)
    assert token.mech_types_der == bytes.fromhex("300c060a2b06010401823702020a")
    assert token.mech_token is not None
    assert ntlm.parse_negotiate(token.mech_token).flags == 0xE2088297
    assert token.mech_list_mic is None


def test_rfc4178_4_2_2_windows_neg_token_resp_is_what_we_build() -> None:
    token = spnego.parse_token(WINDOWS_CHALLENGE_RESP)
    assert isinstance(token, NegTokenResp)
    assert token.neg_state == NegState.ACCEPT_INCOMPLETE
    assert token.supported_mech == spnego.OID_NTLMSSP
    assert token.response_token is not None
    # Windows Server's reply to the first leg, rebuilt byte for byte.
    rebuilt = spnego.build_neg_token_resp(
        NegState.ACCEPT_INCOMPLETE, spnego.OID_NTLMSSP, token.response_token
    )
    assert rebuilt == WINDOWS_CHALLENGE_RESP


def test_rfc4178_4_2_2_windows_authenticate_with_mech_list_mic() -> None:
    token = spnego.parse_token(WINDOWS_AUTH_RESP)
    assert isinstance(token, NegTokenResp)
    assert token.neg_state == NegState.ACCEPT_INCOMPLETE
    assert token.mech_list_mic == bytes.fromhex("0100000063775a9a5fd97f0600000000")
    assert token.response_token is not None
    msg = ntlm.parse_authenticate(token.response_token)
    assert (msg.user, msg.domain, msg.workstation) == ("administrator", "SUT311", "DRIVER311")
    assert msg.mic == bytes.fromhex("ecac77a5f385a8bf9c38c706eeeddcd3")
    blob = ntlm.parse_client_challenge(msg.nt_response[16:])
    assert blob.av_pairs[ntlm.AvId.FLAGS] == b"\x02\x00\x00\x00"  # MIC present


def test_ms_spng_2_2_1_negotiate_token_read_by_pyspnego() -> None:
    token = negotiate_token()
    parsed = unpack_token(token)
    assert isinstance(parsed, PyspnegoNegTokenInit)
    assert parsed.mech_types == [NTLM_OID]
    assert parsed.hint_name == b"not_defined_in_RFC4178@please_ignore"
    assert (
        token
        == bytes.fromhex(
            "6048"  # [APPLICATION 0] InitialContextToken, 72 bytes
            "06062b0601050502"  # thisMech: SPNEGO 1.3.6.1.5.5.2
            "a03e"  # [0] NegTokenInit2
            "303c"  # SEQUENCE
            "a00e300c060a2b06010401823702020a"  # [0] mechTypes: NTLMSSP 1.3.6.1.4.1.311.2.2.10
            "a32a"  # [3] negHints
            "3028"  # SEQUENCE
            "a026"  # [0] hintName
            "1b24"  # GeneralString, 36 bytes
        )
        + b"not_defined_in_RFC4178@please_ignore"
    )


def test_parse_tokens_built_by_impacket() -> None:
    init = SPNEGO_NegTokenInit()
    init["MechTypes"] = [TypesMech["NTLMSSP - Microsoft NTLM Security Support Provider"]]
    init["MechToken"] = b"NTLMSSP\x00\x01\x00\x00\x00" + bytes(4)
    parsed = spnego.parse_token(init.getData())
    assert isinstance(parsed, NegTokenInit)
    assert parsed.mech_types == (spnego.OID_NTLMSSP,)
    assert parsed.mech_token == init["MechToken"]
    resp = SPNEGO_NegTokenResp()
    resp["ResponseToken"] = b"x" * 300
    parsed_resp = spnego.parse_token(resp.getData())
    assert isinstance(parsed_resp, NegTokenResp)
    assert parsed_resp.response_token == b"x" * 300
    # and impacket reads what we build
    ours = spnego.build_neg_token_resp(NegState.ACCEPT_COMPLETED, None, b"tok", b"mic")
    back = SPNEGO_NegTokenResp(ours)
    assert back["NegState"] == b"\x00"
    assert back["ResponseToken"] == b"tok"


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x60",
        b"\x60\x80\x00\x00",  # indefinite length
        b"\x60\x05\x06\x06\x2b\x06",  # element runs past its container
        b"\xa1\x03\x30\x01\x00",  # SEQUENCE holds a truncated element
        b"\xa1\x05\x30\x03\xa5\x01\x00",  # unknown field [5]
        b"\xa1\x02\x30\x00\xff",  # trailing byte
        b"\x30\x00",  # neither init nor resp
        b"\x60\x0a\x06\x06\x2b\x06\x01\x05\x05\x03\xa0\x00",  # not SPNEGO
        b"\x60\x0c\x06\x06\x2b\x06\x01\x05\x05\x02\xa0\x02\x30\x00",  # no mechTypes
        b"\xa1\x0a\x30\x08\xa0\x03\x0a\x01\x01\xa0\x01\x00",  # field repeated
        b"\x60\x85\x01\x00\x00\x00\x00",  # 5-octet length
        b"\x7f\x01\x00",  # multi-byte tag
    ],
)
def test_malformed_tokens_raise_spnego_error(bad: bytes) -> None:
    with pytest.raises(SpnegoError):
        spnego.parse_token(bad)


def test_der_long_lengths_round_trip() -> None:
    for n in (0, 1, 127, 128, 255, 256, 65535, 70000):
        token = spnego.build_neg_token_resp(NegState.ACCEPT_INCOMPLETE, None, b"a" * n)
        parsed = spnego.parse_token(token)
        assert isinstance(parsed, NegTokenResp)
        assert parsed.response_token == b"a" * n


@settings(max_examples=500)
@given(st.binary(max_size=120))
def test_parse_token_fuzz_raises_only_spnego_error(data: bytes) -> None:
    for candidate in (data, b"\xa1" + data, b"\x60" + data, WINDOWS_INIT[:20] + data):
        with contextlib.suppress(SpnegoError):
            spnego.parse_token(candidate)


@settings(max_examples=300)
@given(st.data())
def test_parse_token_mutations_fuzz(data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from([WINDOWS_INIT, WINDOWS_AUTH_RESP])))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(SpnegoError):
        spnego.parse_token(bytes(raw))
