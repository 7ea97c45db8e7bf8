"""ServerAuthenticator against the [MS-NLMP] 4.2.4 example and real client implementations
(pyspnego, as smbprotocol uses it, and impacket), in process.
"""

from __future__ import annotations

import logging
import os
import struct

import pytest
import spnego as pyspnego
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from impacket import ntlm as impacket_ntlm
from impacket.spnego import SPNEGO_NegTokenInit, SPNEGO_NegTokenResp, TypesMech

from smbd.auth import (
    STATUS_INVALID_PARAMETER,
    STATUS_LOGON_FAILURE,
    STATUS_MORE_PROCESSING_REQUIRED,
    STATUS_SUCCESS,
    AuthResult,
    ServerAuthenticator,
    negotiate_token,
    ntlm,
    spnego,
)
from smbd.auth.nthash import nt_hash
from smbd.auth.spnego import NegState, NegTokenResp
from tests.smbd.auth import test_ntlm as v

FAILURES = {STATUS_LOGON_FAILURE, STATUS_INVALID_PARAMETER}
OID_KRB5 = bytes.fromhex("2a864886f712010202")  # 1.2.840.113554.1.2.2


def tok(value: bytes | None) -> bytes:
    """A client token that must exist."""
    assert value is not None
    return value


class Users:
    """A CredentialStore: names are case-insensitive, like vmstor's user file."""

    def __init__(self, **passwords: str) -> None:
        self._users = {name.lower(): (name, nt_hash(pw)) for name, pw in passwords.items()}

    def lookup(self, name: str) -> tuple[str, bytes] | None:
        return self._users.get(name.lower())


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_server(
    users: Users | None = None,
    *,
    allow_guest: bool = False,
    rng: object = os.urandom,
    now: object = None,
) -> ServerAuthenticator:
    import time

    return ServerAuthenticator(
        users or Users(alice="Secret-1"),
        server_name="VMSTOR",
        domain="WORKGROUP",
        allow_guest=allow_guest,
        rng=rng,  # type: ignore[arg-type]
        now=now or time.time,  # type: ignore[arg-type]
        logger=logging.getLogger("test.auth"),
    )


# --------------------------------------------------------------------------------------
# [MS-NLMP] 4.2.4: the documented exchange, with the server's challenge and clock pinned


def test_4_2_4_ntlmv2_example_authenticates_and_exports_the_random_session_key() -> None:
    server = make_server(
        Users(User=v.PASSWORD),
        rng=lambda n: v.SERVER_CHALLENGE,
        now=lambda: ntlm.unix_from_filetime(v.TIME),
    )
    negotiate = b"NTLMSSP\x00" + struct.pack("<II", 1, v.NEGOTIATE_FLAGS)
    first = server.step(negotiate)
    assert first.status == STATUS_MORE_PROCESSING_REQUIRED
    challenge = first.token
    assert challenge[:12] == b"NTLMSSP\x00\x02\x00\x00\x00"
    assert challenge[24:32] == v.SERVER_CHALLENGE
    (flags,) = struct.unpack_from("<I", challenge, 20)
    for flag in (ntlm.Flag.KEY_EXCH, ntlm.Flag.KEY_128, ntlm.Flag.EXTENDED_SESSIONSECURITY):
        assert flags & flag
    info_len, _, info_off = struct.unpack_from("<HHI", challenge, 40)
    pairs = ntlm.parse_av_pairs(challenge[info_off : info_off + info_len])
    assert pairs[ntlm.AvId.TIMESTAMP] == bytes(8)
    assert pairs[ntlm.AvId.NB_COMPUTER_NAME] == "VMSTOR".encode("utf-16-le")
    assert pairs[ntlm.AvId.NB_DOMAIN_NAME] == "WORKGROUP".encode("utf-16-le")

    result = server.step(v.VECTOR_AUTHENTICATE)
    assert result.status == STATUS_SUCCESS
    assert result.user == "User"
    assert result.domain == "Domain"
    assert result.session_key == v.RANDOM_SESSION_KEY
    assert result.token == b""
    assert not result.is_guest and not result.is_anonymous


def test_4_2_4_example_with_a_wrong_password_fails() -> None:
    server = make_server(
        Users(User="password"),  # case matters
        rng=lambda n: v.SERVER_CHALLENGE,
        now=lambda: ntlm.unix_from_filetime(v.TIME),
    )
    server.step(b"NTLMSSP\x00" + struct.pack("<II", 1, v.NEGOTIATE_FLAGS))
    assert server.step(v.VECTOR_AUTHENTICATE) == AuthResult(STATUS_LOGON_FAILURE)


# --------------------------------------------------------------------------------------
# pyspnego (smbprotocol's authentication library) as the client


def run_pyspnego(
    server: ServerAuthenticator, user: str, password: str, protocol: str
) -> tuple[AuthResult, pyspnego.ContextProxy]:
    client = pyspnego.client(
        user,
        password,
        hostname="vmstor",
        service="cifs",
        protocol=protocol,
    )
    token = client.step()
    assert token is not None
    for _ in range(4):
        result = server.step(token)
        if result.status != STATUS_MORE_PROCESSING_REQUIRED:
            break
        token = client.step(result.token)
        assert token is not None
    if result.status == STATUS_SUCCESS and result.token:
        assert client.step(result.token) is None
    return result, client


@pytest.mark.parametrize("protocol", ["negotiate", "ntlm"])
def test_pyspnego_client_good_password(protocol: str) -> None:
    result, client = run_pyspnego(make_server(), "ALICE", "Secret-1", protocol)
    assert result.status == STATUS_SUCCESS
    assert result.user == "alice"  # the store's spelling
    assert client.complete
    assert result.session_key == client.session_key
    assert result.session_key is not None and len(result.session_key) == 16
    if protocol == "negotiate":
        final = spnego.parse_token(result.token)
        assert isinstance(final, NegTokenResp)
        assert final.neg_state == NegState.ACCEPT_COMPLETED
        assert final.mech_list_mic is not None  # pyspnego checked it in client.step()
    else:
        assert result.token == b""


@pytest.mark.parametrize("protocol", ["negotiate", "ntlm"])
def test_pyspnego_client_wrong_password(protocol: str) -> None:
    result, _ = run_pyspnego(make_server(), "alice", "Secret-2", protocol)
    assert result == AuthResult(STATUS_LOGON_FAILURE)


def test_pyspnego_client_domain_qualified_user() -> None:
    result, client = run_pyspnego(make_server(), "WORKGROUP\\alice", "Secret-1", "negotiate")
    assert result.status == STATUS_SUCCESS
    assert result.domain == "WORKGROUP"
    assert result.session_key == client.session_key


def _split_spnego_auth(token: bytes) -> tuple[bytes, bytes | None]:
    resp = spnego.parse_token(token)
    assert isinstance(resp, NegTokenResp) and resp.response_token is not None
    return resp.response_token, resp.mech_list_mic


def _second_leg(server: ServerAuthenticator) -> tuple[bytes, pyspnego.ContextProxy]:
    client = pyspnego.client("alice", "Secret-1", protocol="negotiate")
    first = server.step(tok(client.step()))
    assert first.status == STATUS_MORE_PROCESSING_REQUIRED
    return tok(client.step(first.token)), client


def test_3_1_5_1_2_tampered_authenticate_mic_fails() -> None:
    server = make_server()
    token, _client = _second_leg(server)
    auth, mech_mic = _split_spnego_auth(token)
    assert ntlm.parse_authenticate(auth).mic is not None
    bad = bytearray(auth)
    bad[75] ^= 1  # inside the MIC
    rebuilt = spnego.build_neg_token_resp(NegState.ACCEPT_INCOMPLETE, None, bytes(bad), mech_mic)
    assert server.step(rebuilt).status == STATUS_LOGON_FAILURE


def test_3_1_5_1_2_mic_covers_the_whole_authenticate_message() -> None:
    server = make_server()
    token, _client = _second_leg(server)
    auth, mech_mic = _split_spnego_auth(token)
    msg = ntlm.parse_authenticate(auth)
    # change the workstation name's first byte: NTProofStr does not cover it, the MIC does
    ws_len, _, ws_off = struct.unpack_from("<HHI", auth, 44)
    assert ws_len
    bad = bytearray(auth)
    bad[ws_off] ^= 0x20
    assert ntlm.parse_authenticate(bytes(bad)).workstation != msg.workstation
    rebuilt = spnego.build_neg_token_resp(NegState.ACCEPT_INCOMPLETE, None, bytes(bad), mech_mic)
    assert server.step(rebuilt).status == STATUS_LOGON_FAILURE


def test_rfc4178_5_tampered_mech_list_mic_fails() -> None:
    server = make_server()
    token, _client = _second_leg(server)
    auth, mech_mic = _split_spnego_auth(token)
    assert mech_mic is not None
    bad = mech_mic[:5] + bytes([mech_mic[5] ^ 1]) + mech_mic[6:]
    rebuilt = spnego.build_neg_token_resp(NegState.ACCEPT_INCOMPLETE, None, auth, bad)
    assert server.step(rebuilt).status == STATUS_LOGON_FAILURE


def test_ntlmv2_timestamp_skew_is_refused() -> None:
    clock = Clock(1_800_000_000.0)
    server = make_server(now=clock)
    token, _client = _second_leg(server)  # the client echoes our MsvAvTimestamp
    clock.now += 301
    assert server.step(token).status == STATUS_LOGON_FAILURE

    clock = Clock(1_800_000_000.0)
    server = make_server(now=clock)
    token, _client = _second_leg(server)
    clock.now += 299
    assert server.step(token).status == STATUS_SUCCESS


# --------------------------------------------------------------------------------------
# impacket's NTLM client


def _impacket_exchange(
    server: ServerAuthenticator,
    user: str,
    password: str,
    *,
    wrap: bool,
    ntlmv2: bool = True,
) -> tuple[AuthResult, bytes]:
    type1 = impacket_ntlm.getNTLMSSPType1("WS01", "", signingRequired=True, use_ntlmv2=ntlmv2)
    if wrap:
        init = SPNEGO_NegTokenInit()
        init["MechTypes"] = [TypesMech["NTLMSSP - Microsoft NTLM Security Support Provider"]]
        init["MechToken"] = type1.getData()
        first = server.step(init.getData())
        assert first.status == STATUS_MORE_PROCESSING_REQUIRED
        challenge = SPNEGO_NegTokenResp(first.token)["ResponseToken"]
    else:
        first = server.step(type1.getData())
        assert first.status == STATUS_MORE_PROCESSING_REQUIRED
        challenge = first.token
    type3, exported = impacket_ntlm.getNTLMSSPType3(
        type1, challenge, user, password, "WORKGROUP", use_ntlmv2=ntlmv2
    )
    if wrap:
        resp = SPNEGO_NegTokenResp()
        resp["ResponseToken"] = type3.getData()
        return server.step(resp.getData()), exported
    return server.step(type3.getData()), exported


@pytest.mark.parametrize("wrap", [False, True])
def test_impacket_client_good_password(wrap: bool) -> None:
    result, exported = _impacket_exchange(make_server(), "alice", "Secret-1", wrap=wrap)
    assert result.status == STATUS_SUCCESS
    assert result.session_key == exported
    assert result.user == "alice"
    if wrap:
        assert SPNEGO_NegTokenResp(result.token)["NegState"] == b"\x00"


@pytest.mark.parametrize("wrap", [False, True])
def test_impacket_client_wrong_password_and_unknown_user(wrap: bool) -> None:
    result, _ = _impacket_exchange(make_server(), "alice", "wrong", wrap=wrap)
    assert result == AuthResult(STATUS_LOGON_FAILURE)
    result, _ = _impacket_exchange(make_server(), "mallory", "Secret-1", wrap=wrap)
    assert result == AuthResult(STATUS_LOGON_FAILURE)


def test_ntlmv1_is_refused() -> None:
    result, _ = _impacket_exchange(make_server(), "alice", "Secret-1", wrap=False, ntlmv2=False)
    assert result.status == STATUS_LOGON_FAILURE


def test_anonymous_refused_unless_guest_allowed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "test.auth"):
        result, _ = _impacket_exchange(make_server(), "", "", wrap=True)
    assert result == AuthResult(STATUS_LOGON_FAILURE)
    assert "anonymous logon refused" in caplog.text
    result, _ = _impacket_exchange(make_server(allow_guest=True), "", "", wrap=True)
    assert result.status == STATUS_SUCCESS
    assert result.is_anonymous and not result.is_guest
    assert result.session_key is None and result.user is None


def test_unknown_user_maps_to_guest_when_allowed_but_wrong_password_does_not() -> None:
    result, _ = _impacket_exchange(make_server(allow_guest=True), "mallory", "x", wrap=True)
    assert result.status == STATUS_SUCCESS
    assert result.is_guest and result.session_key is None
    result, _ = _impacket_exchange(make_server(allow_guest=True), "alice", "x", wrap=True)
    assert result == AuthResult(STATUS_LOGON_FAILURE)


# --------------------------------------------------------------------------------------
# SPNEGO negotiation paths and the state table


def test_empty_first_token_gets_the_negotiate_hint_then_works() -> None:
    server = make_server()
    result = server.step(b"")
    assert result == AuthResult(STATUS_MORE_PROCESSING_REQUIRED, negotiate_token())
    result, _client = run_pyspnego(server, "alice", "Secret-1", "negotiate")
    assert result.status == STATUS_SUCCESS


def _ntlm_client() -> pyspnego.ContextProxy:
    return pyspnego.client("alice", "Secret-1", protocol="ntlm")


def _kerberos_first_init(mech_token: bytes | None) -> tuple[bytes, bytes]:
    mech_list = spnego.der(0x30, spnego.der(0x06, OID_KRB5) + spnego.der(0x06, spnego.OID_NTLMSSP))
    fields = spnego.der(0xA0, mech_list)
    if mech_token is not None:
        fields += spnego.der(0xA2, spnego.der(0x04, mech_token))
    body = spnego.der(0xA0, spnego.der(0x30, fields))
    return spnego.der(0x60, spnego.der(0x06, spnego.OID_SPNEGO) + body), mech_list


@pytest.mark.parametrize("send_mic", [True, False])
def test_rfc4178_ntlm_not_preferred_requires_mech_list_mics(send_mic: bool) -> None:
    server = make_server()
    init, mech_list = _kerberos_first_init(b"\x6e\x03kerberos-ap-req")
    first = server.step(init)
    assert first.status == STATUS_MORE_PROCESSING_REQUIRED
    reply = spnego.parse_token(first.token)
    assert reply == NegTokenResp(NegState.REQUEST_MIC, spnego.OID_NTLMSSP, None, None)

    client = _ntlm_client()
    second = server.step(
        spnego.build_neg_token_resp(NegState.ACCEPT_INCOMPLETE, None, client.step())
    )
    assert second.status == STATUS_MORE_PROCESSING_REQUIRED
    challenge = spnego.parse_token(second.token)
    assert isinstance(challenge, NegTokenResp) and challenge.response_token is not None
    authenticate = client.step(challenge.response_token)
    mic = client.sign(mech_list) if send_mic else None
    final = server.step(
        spnego.build_neg_token_resp(NegState.ACCEPT_INCOMPLETE, None, authenticate, mic)
    )
    if not send_mic:
        assert final.status == STATUS_LOGON_FAILURE
        return
    assert final.status == STATUS_SUCCESS
    done = spnego.parse_token(final.token)
    assert isinstance(done, NegTokenResp) and done.mech_list_mic is not None
    client.verify(mech_list, done.mech_list_mic)  # raises if our MIC is wrong
    assert final.session_key == client.session_key


def test_spnego_without_ntlm_is_refused() -> None:
    mech_list = spnego.der(0x30, spnego.der(0x06, OID_KRB5))
    body = spnego.der(0xA0, spnego.der(0x30, spnego.der(0xA0, mech_list)))
    token = spnego.der(0x60, spnego.der(0x06, spnego.OID_SPNEGO) + body)
    assert make_server().step(token).status == STATUS_LOGON_FAILURE


def test_out_of_order_tokens_are_refused() -> None:
    # AUTHENTICATE first
    assert make_server().step(v.VECTOR_AUTHENTICATE).status in FAILURES
    # a raw NTLM token inside a SPNEGO exchange
    server = make_server()
    client = _ntlm_client()
    init = SPNEGO_NegTokenInit()
    init["MechTypes"] = [TypesMech["NTLMSSP - Microsoft NTLM Security Support Provider"]]
    init["MechToken"] = client.step()
    first = server.step(init.getData())
    assert first.status == STATUS_MORE_PROCESSING_REQUIRED
    challenge = SPNEGO_NegTokenResp(first.token)["ResponseToken"]
    assert server.step(tok(client.step(challenge))).status == STATUS_INVALID_PARAMETER
    # anything after the end
    assert server.step(b"").status == STATUS_INVALID_PARAMETER
    done = make_server()
    result, _ = run_pyspnego(done, "alice", "Secret-1", "ntlm")
    assert result.status == STATUS_SUCCESS
    assert done.step(b"NTLMSSP\x00" + struct.pack("<II", 1, 0)).status == STATUS_INVALID_PARAMETER


def test_oversized_token_is_refused() -> None:
    assert make_server().step(b"\xa1" * 70000).status == STATUS_INVALID_PARAMETER


# --------------------------------------------------------------------------------------
# Fuzzing: step() returns an AuthResult, and never raises


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.binary(max_size=200), second=st.binary(max_size=200))
def test_step_fuzz_random_tokens(first: bytes, second: bytes) -> None:
    server = make_server(allow_guest=True)
    for token in (first, second):
        result = server.step(token)
        assert isinstance(result, AuthResult)
        assert result.status in FAILURES | {STATUS_MORE_PROCESSING_REQUIRED}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), wrap=st.booleans())
def test_step_fuzz_mutated_second_leg(data: st.DataObject, wrap: bool) -> None:
    server = make_server(allow_guest=data.draw(st.booleans()))
    protocol = "negotiate" if wrap else "ntlm"
    client = pyspnego.client("alice", "Secret-1", protocol=protocol)
    first = server.step(tok(client.step()))
    assert first.status == STATUS_MORE_PROCESSING_REQUIRED
    token = bytearray(tok(client.step(first.token)))
    for _ in range(data.draw(st.integers(1, 4))):
        token[data.draw(st.integers(0, len(token) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(token)))
    result = server.step(bytes(token[: max(cut, len(token) - 8)]))
    assert isinstance(result, AuthResult)
    assert result.status in FAILURES | {STATUS_SUCCESS}


def test_non_ascii_user_names_from_python_and_windows_style_clients() -> None:
    # pyspnego upper-cases with Python's rules; a Windows client keeps "ß" as it is.
    # Both must authenticate the same account.
    users = Users(**{"straße": "Secret-1"})
    result, client = run_pyspnego(make_server(users), "straße", "Secret-1", "ntlm")
    assert result.status == STATUS_SUCCESS and result.session_key == client.session_key

    server = make_server(users)
    first = server.step(b"NTLMSSP\x00" + struct.pack("<II", 1, 0x62088215))
    challenge = first.token
    server_challenge = challenge[24:32]
    info_len, _, info_off = struct.unpack_from("<HHI", challenge, 40)
    info = challenge[info_off : info_off + info_len]
    timestamp = ntlm.parse_av_pairs(info)[ntlm.AvId.TIMESTAMP]
    blob = b"\x01\x01" + bytes(6) + timestamp + b"\x11" * 8 + bytes(4) + info + bytes(4)
    key = ntlm.ntowfv2(nt_hash("Secret-1"), "straße", "", windows_upcase=True)
    proof = ntlm.nt_proof_str(key, server_challenge, blob)
    auth = v.build_authenticate(
        flags=0x62088215 & ~ntlm.Flag.KEY_EXCH,
        lm=bytes(24),
        nt=proof + blob,
        domain="",
        user="straße",
        workstation="WIN",
        session_key=b"",
    )
    result = server.step(auth)
    assert result.status == STATUS_SUCCESS
    assert result.session_key == ntlm.session_base_key(key, proof)


def _authenticate_message(user: str, nt_response: bytes, lm_response: bytes = bytes(24)) -> bytes:
    """An [MS-NLMP] 2.2.1.3 AUTHENTICATE_MESSAGE without Version or MIC (Unicode)."""
    fields = [lm_response, nt_response, b"", user.encode("utf-16-le"), b"", b""]
    fixed, payload = bytearray(b"NTLMSSP\x00" + struct.pack("<I", 3)), bytearray()
    for value in fields:
        fixed += struct.pack("<HHI", len(value), len(value), 64 + len(payload))
        payload += value
    flags = ntlm.Flag.UNICODE | ntlm.Flag.NTLM | ntlm.Flag.EXTENDED_SESSIONSECURITY
    return bytes(fixed + struct.pack("<I", flags) + payload)


# The NTLMv2 response of NetApp's "net diag" tool that Samba's bug 14932 is about, as
# smbtorture's smb2.session.ntlmssp_bug14932 sends it: NTProofStr (0xab...), then an
# NTLMv2_CLIENT_CHALLENGE whose AV pairs run past the end of the response.
NETAPP_NT_RESPONSE = bytes.fromhex(
    "abababababababababababababababab"
    "0101000000000000" + "3f" * 8 + "b8823af1b3dd0815" + "00000000"
    "11a20881503822782b9447fe54947bff17275ab4f418badc2c38fd5bfb0ec1851ecc92bb9bb1c4d55314ff8c7649f5459019a2"
)


@pytest.mark.parametrize("user", ["alice", "mallory"])
def test_2_2_2_7_malformed_ntlmv2_client_challenge_is_invalid_parameter(user: str) -> None:
    """A malformed NTLMv2 response is refused for what it is, INVALID_PARAMETER (as
    Samba), before the password or even the user is looked at."""
    assert len(NETAPP_NT_RESPONSE) == 95
    server = make_server()
    first = server.step(b"NTLMSSP\x00" + struct.pack("<II", 1, 0x62088215))
    assert first.status == STATUS_MORE_PROCESSING_REQUIRED
    result = server.step(_authenticate_message(user, NETAPP_NT_RESPONSE))
    assert result == AuthResult(STATUS_INVALID_PARAMETER)
