"""smbd.auth.ntlm against the [MS-NLMP] 4.2 examples, and fuzzing of its parsers.

Vector source: [MS-NLMP] 4.2.1 (common values), 4.2.4 (NTLMv2 authentication), as
published on learn.microsoft.com (openspecs/windows_protocols/ms-nlmp).
"""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbd.auth import ntlm
from smbd.auth.nthash import nt_hash
from smbd.auth.ntlm import Arc4, AvId, Flag, NtlmError


def h(*fields: str) -> bytes:
    return bytes.fromhex("".join(fields).replace(" ", ""))


# [MS-NLMP] 4.2.1 common values
USER = "User"
USER_DOM = "Domain"
PASSWORD = "Password"
SERVER_NAME = "Server"
WORKSTATION = "COMPUTER"
RANDOM_SESSION_KEY = h("55555555555555555555555555555555")
TIME = 0
CLIENT_CHALLENGE = h("aaaaaaaaaaaaaaaa")
SERVER_CHALLENGE = h("0123456789abcdef")

# [MS-NLMP] 4.2.4 NTLMv2
NEGOTIATE_FLAGS = 0xE28A8233
NT_HASH = h("a4f49c406510bdcab6824ee7c30fd852")  # 4.2.2.1.2 NTOWFv1("Password")
NTOWFV2 = h("0c868a403bfd7a93a3001ef22ef02e3f")  # 4.2.4.1.1
SESSION_BASE_KEY = h("8de40ccadbc14a82f15cb0ad0de95ca3")  # 4.2.4.1.2
CHALLENGE_AV_PAIRS = h(
    "0200 0c00 44006f006d00610069006e00",  # MsvAvNbDomainName "Domain"
    "0100 0c00 530065007200760065007200",  # MsvAvNbComputerName "Server"
    "0000 0000",  # MsvAvEOL
)
NTLMV2_TEMP = h(
    "01",  # RespType
    "01",  # HiRespType
    "0000",  # Reserved1
    "00000000",  # Reserved2
    "0000000000000000",  # TimeStamp
    "aaaaaaaaaaaaaaaa",  # ChallengeFromClient
    "00000000",  # Reserved3
    "0200 0c00 44006f006d00610069006e00",  # AvPairs ...
    "0100 0c00 530065007200760065007200",
    "0000 0000",
    "00000000",  # Z(4)
)
NT_PROOF_STR = h("68cd0ab851e51c96aabc927bebef6a1c")  # 4.2.4.2.2
LMV2_RESPONSE = h("86c35097ac9cec102554764a57cccc19 aaaaaaaaaaaaaaaa")  # 4.2.4.2.1
ENCRYPTED_SESSION_KEY = h("c5dad2544fc9799094ce1ce90bc9d03e")  # 4.2.4.2.3
CLIENT_SIGN_KEY = h("4788dc861b4782f35d43fd98fe1a2d39")  # 4.2.4.4 (SignKey, client)
SERVER_SIGN_KEY = h("d04d6f10741041d1d246d64188d7a8ad")
CLIENT_SEAL_KEY = h("59f600973cc4960a25480a7c196e4c58")  # 4.2.4.4 (SealKey, client, 128)
PLAINTEXT = "Plaintext".encode("utf-16-le")
SEALED_PLAINTEXT = h("54e50165bf1936dc996020c1811b0f06fb5f")  # 4.2.4.4
SEAL_SIGNATURE = h("01000000 7fb38ec5c55d4976 00000000")  # 4.2.4.4 Version, Checksum, SeqNum


def test_4_2_4_1_ntowfv2_and_session_base_key() -> None:
    assert nt_hash(PASSWORD) == NT_HASH
    assert ntlm.ntowfv2(NT_HASH, USER, USER_DOM) == NTOWFV2
    proof = ntlm.nt_proof_str(NTOWFV2, SERVER_CHALLENGE, NTLMV2_TEMP)
    assert proof == NT_PROOF_STR
    assert ntlm.session_base_key(NTOWFV2, proof) == SESSION_BASE_KEY


def test_4_2_4_2_3_key_exchange_decrypts_the_random_session_key() -> None:
    assert ntlm.arc4(SESSION_BASE_KEY, ENCRYPTED_SESSION_KEY) == RANDOM_SESSION_KEY
    assert ntlm.arc4(SESSION_BASE_KEY, RANDOM_SESSION_KEY) == ENCRYPTED_SESSION_KEY


def test_4_2_4_4_sign_and_seal_keys() -> None:
    assert ntlm.sign_key(RANDOM_SESSION_KEY, client_to_server=True) == CLIENT_SIGN_KEY
    assert ntlm.sign_key(RANDOM_SESSION_KEY, client_to_server=False) == SERVER_SIGN_KEY
    assert ntlm.seal_key(Flag.KEY_128, RANDOM_SESSION_KEY, client_to_server=True) == (
        CLIENT_SEAL_KEY
    )


def test_4_2_4_4_sealed_message_signature() -> None:
    # GSS_WrapEx: the sealing handle encrypts the message, then the checksum.
    handle = Arc4(CLIENT_SEAL_KEY)
    assert handle.update(PLAINTEXT) == SEALED_PLAINTEXT
    checksum = ntlm.hmac_md5(CLIENT_SIGN_KEY, struct.pack("<I", 0), PLAINTEXT)[:8]
    assert struct.pack("<I", 1) + handle.update(checksum) + struct.pack("<I", 0) == (SEAL_SIGNATURE)


def test_3_4_4_2_mic_signature_without_key_exch() -> None:
    # The same 4.2.4 keys without KEY_EXCH: the checksum is not RC4-sealed. The expected
    # value is the one pyspnego's test suite (test_seal_ntlmv2_no_key_exch) checks.
    flags = Flag.SIGN | Flag.SEAL | Flag.EXTENDED_SESSIONSECURITY | Flag.KEY_128
    assert ntlm.mic_signature(flags, RANDOM_SESSION_KEY, True, 0, PLAINTEXT) == h(
        "01000000 7035 2851 f256 4309 00000000"
    )


def test_rc4_rfc6229_vector() -> None:
    # RFC 6229 section 2, 40-bit key 0x0102030405, keystream offset 0
    assert ntlm.arc4(h("0102030405"), bytes(16)) == h("b2396305f03dc027ccc3524a0a1118a8")


# --------------------------------------------------------------------------------------
# Messages


def build_authenticate(
    *,
    flags: int,
    lm: bytes,
    nt: bytes,
    domain: str,
    user: str,
    workstation: str,
    session_key: bytes,
    version: bytes | None = b"\x06\x00\x70\x17\x00\x00\x00\x0f",
    mic: bytes | None = None,
) -> bytes:
    """An AUTHENTICATE_MESSAGE laid out as [MS-NLMP] 2.2.1.3 does (payload in the order
    domain, user, workstation, LM, NT, session key, as Windows sends it)."""
    fixed = 64 + (8 if version is not None else 0) + (16 if mic is not None else 0)
    payload = [
        domain.encode("utf-16-le"),
        user.encode("utf-16-le"),
        workstation.encode("utf-16-le"),
        lm,
        nt,
        session_key,
    ]
    offsets = []
    pos = fixed
    for item in payload:
        offsets.append(pos)
        pos += len(item)
    d, u, w, lm_off, nt_off, k = offsets

    def field(data: bytes, offset: int) -> bytes:
        return struct.pack("<HHI", len(data), len(data), offset)

    return b"".join(
        [
            b"NTLMSSP\x00",  # Signature
            struct.pack("<I", 3),  # MessageType
            field(lm, lm_off),  # LmChallengeResponseFields
            field(nt, nt_off),  # NtChallengeResponseFields
            field(payload[0], d),  # DomainNameFields
            field(payload[1], u),  # UserNameFields
            field(payload[2], w),  # WorkstationFields
            field(session_key, k),  # EncryptedRandomSessionKeyFields
            struct.pack("<I", flags),  # NegotiateFlags
            version or b"",  # Version
            mic or b"",  # MIC
            *payload,
        ]
    )


VECTOR_AUTHENTICATE = build_authenticate(
    flags=NEGOTIATE_FLAGS,
    lm=LMV2_RESPONSE,
    nt=NT_PROOF_STR + NTLMV2_TEMP,
    domain=USER_DOM,
    user=USER,
    workstation=WORKSTATION,
    session_key=ENCRYPTED_SESSION_KEY,
)


def test_2_2_1_3_parse_authenticate() -> None:
    msg = ntlm.parse_authenticate(VECTOR_AUTHENTICATE)
    assert msg.flags == NEGOTIATE_FLAGS
    assert msg.user == USER
    assert msg.domain == USER_DOM
    assert msg.workstation == WORKSTATION
    assert msg.lm_response == LMV2_RESPONSE
    assert msg.nt_response == NT_PROOF_STR + NTLMV2_TEMP
    assert msg.encrypted_session_key == ENCRYPTED_SESSION_KEY
    assert msg.mic is None  # payload starts at 72: Version only
    with_mic = build_authenticate(
        flags=NEGOTIATE_FLAGS,
        lm=b"",
        nt=NT_PROOF_STR + NTLMV2_TEMP,
        domain=USER_DOM,
        user=USER,
        workstation="",
        session_key=b"",
        mic=b"\x11" * 16,
    )
    assert ntlm.parse_authenticate(with_mic).mic == b"\x11" * 16


def test_2_2_1_3_parse_authenticate_oem_names() -> None:
    raw = bytearray(VECTOR_AUTHENTICATE)
    struct.pack_into("<I", raw, 60, NEGOTIATE_FLAGS & ~Flag.UNICODE)
    msg = ntlm.parse_authenticate(bytes(raw))
    assert msg.user == "U\x00s\x00e\x00r\x00"  # the same bytes read as OEM


@pytest.mark.parametrize("field_offset", [12, 20, 28, 36, 44, 52])
def test_2_2_1_3_fields_outside_the_message_are_rejected(field_offset: int) -> None:
    raw = bytearray(VECTOR_AUTHENTICATE)
    struct.pack_into("<HHI", raw, field_offset, 8, 8, len(raw) - 4)
    with pytest.raises(NtlmError):
        ntlm.parse_authenticate(bytes(raw))
    struct.pack_into("<HHI", raw, field_offset, 8, 8, 10)  # inside the fixed header
    with pytest.raises(NtlmError):
        ntlm.parse_authenticate(bytes(raw))


def test_2_2_1_3_odd_utf16_name_is_rejected() -> None:
    raw = bytearray(VECTOR_AUTHENTICATE)
    length, _max, offset = struct.unpack_from("<HHI", raw, 36)
    struct.pack_into("<HHI", raw, 36, length - 1, length - 1, offset)
    with pytest.raises(NtlmError):
        ntlm.parse_authenticate(bytes(raw))


def test_2_2_1_1_parse_negotiate() -> None:
    raw = h(
        "4e544c4d53535000",  # Signature
        "01000000",  # MessageType
        "97820862",  # NegotiateFlags
        "0000 0000 00000000",  # DomainNameFields
        "0000 0000 00000000",  # WorkstationFields
    )
    msg = ntlm.parse_negotiate(raw)
    assert msg.flags == 0x62088297
    assert msg.raw == raw
    with pytest.raises(NtlmError):
        ntlm.parse_negotiate(raw[:15])
    with pytest.raises(NtlmError):
        ntlm.parse_negotiate(VECTOR_AUTHENTICATE)


def test_2_2_1_2_build_challenge_layout() -> None:
    info = ntlm.build_av_pairs(
        [
            (AvId.NB_DOMAIN_NAME, USER_DOM.encode("utf-16-le")),
            (AvId.NB_COMPUTER_NAME, SERVER_NAME.encode("utf-16-le")),
        ]
    )
    assert info == CHALLENGE_AV_PAIRS
    challenge = ntlm.build_challenge(NEGOTIATE_FLAGS, SERVER_CHALLENGE, SERVER_NAME, info)
    assert (
        challenge
        == h(
            "4e544c4d53535000",  # Signature
            "02000000",  # MessageType
            "0c00 0c00 38000000",  # TargetNameFields: "Server" at 56
            "33828ae2",  # NegotiateFlags
            "0123456789abcdef",  # ServerChallenge
            "0000000000000000",  # Reserved
            "2400 2400 44000000",  # TargetInfoFields: 36 bytes at 68
            "0a00 0000 000000 0f",  # Version: 10.0 build 0, NTLMSSP revision 15
            "530065007200760065007200",  # TargetName "Server"
        )
        + CHALLENGE_AV_PAIRS
    )


def test_2_2_2_1_av_pairs() -> None:
    assert ntlm.parse_av_pairs(CHALLENGE_AV_PAIRS + b"trailing") == {
        AvId.NB_DOMAIN_NAME: USER_DOM.encode("utf-16-le"),
        AvId.NB_COMPUTER_NAME: SERVER_NAME.encode("utf-16-le"),
    }
    for bad in (b"", b"\x02\x00", b"\x02\x00\x10\x00abc", CHALLENGE_AV_PAIRS[:-4]):
        with pytest.raises(NtlmError):
            ntlm.parse_av_pairs(bad)


def test_2_2_2_7_client_challenge() -> None:
    cc = ntlm.parse_client_challenge(NTLMV2_TEMP)
    assert cc.timestamp == TIME
    assert cc.challenge_from_client == CLIENT_CHALLENGE
    assert cc.av_pairs[AvId.NB_COMPUTER_NAME] == SERVER_NAME.encode("utf-16-le")
    with pytest.raises(NtlmError):
        ntlm.parse_client_challenge(b"\x02" + NTLMV2_TEMP[1:])
    with pytest.raises(NtlmError):
        ntlm.parse_client_challenge(NTLMV2_TEMP[:27])


def test_filetime_conversion() -> None:
    assert ntlm.filetime_from_unix(0) == 116444736000000000
    assert ntlm.unix_from_filetime(116444736000000000) == 0
    assert ntlm.filetime_from_unix(-11644473600.0) == 0


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_parsers_fuzz_raise_only_ntlm_error(data: bytes) -> None:
    for candidate in (
        data,
        b"NTLMSSP\x00\x03\x00\x00\x00" + data,
        b"NTLMSSP\x00\x01\x00\x00\x00" + data,
    ):
        for parse in (ntlm.parse_authenticate, ntlm.parse_negotiate, ntlm.parse_av_pairs):
            with contextlib.suppress(NtlmError):
                parse(candidate)
        with contextlib.suppress(NtlmError):
            ntlm.parse_client_challenge(b"\x01\x01" + candidate)


@settings(max_examples=200)
@given(st.data())
def test_authenticate_mutations_fuzz(data: st.DataObject) -> None:
    raw = bytearray(VECTOR_AUTHENTICATE)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        msg = ntlm.parse_authenticate(bytes(raw[:cut]))
    except NtlmError:
        return
    assert len(msg.nt_response) <= cut


def test_3_3_2_ntowfv2_windows_upcase_keeps_length() -> None:
    # "ß" has no single-character upper case; Windows leaves it, Python makes "SS".
    python_style = ntlm.hmac_md5(NT_HASH, "STRASSEDomain".encode("utf-16-le"))
    windows_style = ntlm.hmac_md5(NT_HASH, "STRAßEDomain".encode("utf-16-le"))
    assert ntlm.ntowfv2(NT_HASH, "straße", USER_DOM) == python_style
    assert ntlm.ntowfv2(NT_HASH, "straße", USER_DOM, windows_upcase=True) == windows_style
    assert ntlm.ntowfv2(NT_HASH, USER, USER_DOM, windows_upcase=True) == NTOWFV2
