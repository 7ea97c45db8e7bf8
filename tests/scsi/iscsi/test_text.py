"""RFC 7143 6.1 text format and 6.2 negotiation; 13 operational keys; 12.1.3 CHAP."""

from __future__ import annotations

import hashlib

import pytest

from scsi.iscsi import text
from scsi.iscsi.chap import ChapAuthenticator, ChapSecrets, decode_binary, response
from scsi.iscsi.errors import LoginError, LoginStatus, TextError
from scsi.iscsi.negotiation import Negotiator, TargetLimits


def test_rfc7143_6_1_key_value_pairs() -> None:
    data = b"InitiatorName=iqn.2007-10.com.example:x\0SessionType=Normal\0"
    assert text.decode_pairs(data) == [
        ("InitiatorName", "iqn.2007-10.com.example:x"),
        ("SessionType", "Normal"),
    ]
    assert text.encode_pairs(text.decode_pairs(data)) == data


@pytest.mark.parametrize(
    "bad",
    [b"NoNul=1", b"NoEquals\0", b"=v\0", b"A=1\0A=2\0", b"K" * 64 + b"=1\0", b"K=\xff\0"],
)
def test_rfc7143_6_1_malformed_text_is_rejected(bad: bytes) -> None:
    with pytest.raises(TextError):
        text.decode_pairs(bad)


def test_rfc7143_13_operational_key_results() -> None:
    n = Negotiator(TargetLimits(max_burst=1048576, first_burst=262144, initial_r2t=False))
    answers = dict(
        n.respond(
            [
                ("HeaderDigest", "CRC32C,None"),
                ("DataDigest", "None"),
                ("InitialR2T", "No"),
                ("ImmediateData", "Yes"),
                ("MaxBurstLength", "262144"),
                ("FirstBurstLength", "262144"),
                ("MaxOutstandingR2T", "8"),
                ("ErrorRecoveryLevel", "2"),
                ("DefaultTime2Wait", "0"),
                ("MaxRecvDataSegmentLength", "131072"),
                ("X-vendor.com.key", "1"),
                ("IFMarker", "No"),
            ]
        )
    )
    assert answers == {
        "HeaderDigest": "CRC32C",
        "DataDigest": "None",
        "InitialR2T": "No",
        "ImmediateData": "Yes",
        "MaxBurstLength": "262144",
        "FirstBurstLength": "262144",
        "MaxOutstandingR2T": "1",
        "ErrorRecoveryLevel": "0",
        "DefaultTime2Wait": "2",
        "X-vendor.com.key": "NotUnderstood",
        "IFMarker": "No",
    }
    p = n.result()
    assert p.header_digest and not p.data_digest
    assert p.max_send_data == 131072 and p.max_burst == 262144 and p.erl == 0
    assert n.declarations() == [("MaxRecvDataSegmentLength", "262144")]
    assert n.declarations() == []


def test_rfc7143_13_out_of_range_value_is_answered_reject() -> None:
    n = Negotiator(TargetLimits())
    assert n.respond([("MaxBurstLength", "100")]) == [("MaxBurstLength", "Reject")]
    assert n.respond([("ImmediateData", "Maybe")]) == [("ImmediateData", "Reject")]


def test_rfc7143_13_discovery_session_data_keys_are_irrelevant() -> None:
    n = Negotiator(TargetLimits(), discovery=True)
    assert n.respond([("MaxBurstLength", "262144")]) == [("MaxBurstLength", "Irrelevant")]


def _rng(n: int) -> bytes:
    return bytes(range(1, n + 1))


def test_rfc1994_chap_md5_response() -> None:
    # RFC 1994 4.1: Response = MD5(Identifier || secret || Challenge).
    assert response(7, "secret", b"\x01\x02") == hashlib.md5(b"\x07secret\x01\x02").digest()


def test_rfc7143_12_1_3_one_way_chap() -> None:
    auth = ChapAuthenticator(ChapSecrets("alice", "a-long-secret"), _rng)
    offer = dict(auth.offer("7,5"))
    assert offer["CHAP_A"] == "5" and offer["CHAP_I"] == "1"
    challenge = decode_binary(offer["CHAP_C"])
    assert challenge == _rng(16)
    good = "0x" + response(1, "a-long-secret", challenge).hex()
    assert auth.verify({"CHAP_N": "alice", "CHAP_R": good}) == []
    assert auth.done


def test_rfc7143_12_1_3_wrong_chap_response_is_authentication_failure() -> None:
    auth = ChapAuthenticator(ChapSecrets("alice", "a-long-secret"), _rng)
    auth.offer("5")
    with pytest.raises(LoginError) as e:
        auth.verify({"CHAP_N": "alice", "CHAP_R": "0x" + "00" * 16})
    assert e.value.status == LoginStatus.AUTHENTICATION_FAILURE


def test_rfc7143_12_1_3_mutual_chap_and_reflection() -> None:
    secrets = ChapSecrets("alice", "a-long-secret", "target", "target-secret")
    auth = ChapAuthenticator(secrets, _rng)
    auth.offer("5")
    good = "0x" + response(1, "a-long-secret", _rng(16)).hex()
    out = dict(auth.verify({"CHAP_N": "alice", "CHAP_R": good, "CHAP_I": "9", "CHAP_C": "0xabcd"}))
    assert out["CHAP_N"] == "target"
    assert decode_binary(out["CHAP_R"]) == response(9, "target-secret", b"\xab\xcd")
    again = ChapAuthenticator(secrets, _rng)
    again.offer("5")
    with pytest.raises(LoginError):
        again.verify(
            {"CHAP_N": "alice", "CHAP_R": good, "CHAP_I": "1", "CHAP_C": "0x" + _rng(16).hex()}
        )
