"""RFC 7143 6.3 login phase, 11.12-11.13 Login Request/Response, status codes."""

from __future__ import annotations

from scsi.iscsi import pdu, text
from scsi.iscsi.chap import ChapSecrets, decode_binary, response
from scsi.iscsi.errors import LoginStatus
from scsi.iscsi.login import Login, Reply
from scsi.iscsi.negotiation import TargetLimits

TARGET = "iqn.2026-11.org.vmstor:t"
ISID = bytes.fromhex("400001370000")


class Policy:
    def __init__(self, zoned: set[str], chap: ChapSecrets | None = None) -> None:
        self.zoned = zoned
        self.chap = chap

    def has_target(self, target_name: str) -> bool:
        return target_name == TARGET

    def authorize(self, initiator_name: str, target_name: str, portal_group_tag: int) -> bool:
        return initiator_name in self.zoned

    def chap_secrets(self, target_name: str | None) -> ChapSecrets | None:
        return self.chap if target_name else None

    def tsih_exists(self, tsih: int) -> bool:
        return tsih == 5


def login(policy: Policy) -> Login:
    return Login(
        policy,
        TargetLimits(),
        portal_group_tag=2,
        new_tsih=lambda: 7,
        rng=lambda n: bytes(range(1, n + 1)),
    )


def req(
    pairs: list[tuple[str, str]], csg: int, nsg: int, *, transit: bool = True, tsih: int = 0
) -> tuple[pdu.LoginRequest, bytes]:
    data = text.encode_pairs(pairs)
    rec = pdu.LoginRequest(ISID, tsih, 1, 0, 10, 0, csg, nsg, transit, data_length=len(data))
    return rec, data


def status(reply: Reply) -> int:
    return int((reply.record.status_class << 8) | reply.record.status_detail)


def test_rfc7143_6_3_normal_login_skipping_security() -> None:
    lg = login(Policy({"naa.c003ff0000000001"}))
    rec, data = req(
        [
            ("InitiatorName", "naa.c003ff0000000001"),
            ("TargetName", TARGET),
            ("SessionType", "Normal"),
            ("MaxRecvDataSegmentLength", "65536"),
            ("ImmediateData", "Yes"),
        ],
        1,
        3,
    )
    reply = lg.receive(rec, data)
    assert status(reply) == 0
    assert reply.record.transit and reply.record.nsg == 3 and reply.record.tsih == 7
    keys = dict(text.decode_pairs(reply.data))
    assert keys["TargetPortalGroupTag"] == "2"
    assert keys["ImmediateData"] == "Yes"
    assert keys["MaxRecvDataSegmentLength"] == "262144"
    assert lg.result is not None
    assert lg.result.params.max_send_data == 65536 and lg.result.exp_cmdsn == 10


def test_rfc7143_11_13_5_not_zoned_is_authorization_failure_0202() -> None:
    lg = login(Policy(set()))
    rec, data = req([("InitiatorName", "naa.c003ff00000000ff"), ("TargetName", TARGET)], 1, 3)
    assert status(lg.receive(rec, data)) == LoginStatus.AUTHORIZATION_FAILURE
    assert LoginStatus.AUTHORIZATION_FAILURE.value == 0x0202
    assert lg.failed


def test_rfc7143_11_13_5_unknown_target_is_not_found_0203() -> None:
    lg = login(Policy({"i"}))
    rec, data = req([("InitiatorName", "i"), ("TargetName", "iqn.nope")], 1, 3)
    assert status(lg.receive(rec, data)) == 0x0203


def test_rfc7143_11_13_5_missing_initiator_name_is_0207() -> None:
    lg = login(Policy({"i"}))
    rec, data = req([("TargetName", TARGET)], 1, 3)
    assert status(lg.receive(rec, data)) == 0x0207


def test_rfc7143_11_13_5_unknown_tsih_is_session_does_not_exist() -> None:
    lg = login(Policy({"i"}))
    rec, data = req([("InitiatorName", "i"), ("TargetName", TARGET)], 1, 3, tsih=9)
    assert status(lg.receive(rec, data)) == 0x020A


def test_rfc7143_6_3_discovery_login() -> None:
    lg = login(Policy(set()))
    rec, data = req([("InitiatorName", "x"), ("SessionType", "Discovery")], 0, 1)
    reply = lg.receive(rec, data)
    assert status(reply) == 0 and reply.record.nsg == 1
    assert "TargetPortalGroupTag" not in dict(text.decode_pairs(reply.data))
    rec, data = req([("MaxBurstLength", "262144")], 1, 3)
    reply = lg.receive(rec, data)
    assert dict(text.decode_pairs(reply.data))["MaxBurstLength"] == "Irrelevant"
    assert lg.result is not None and lg.result.discovery


def test_rfc7143_12_1_3_chap_login() -> None:
    lg = login(Policy({"i"}, ChapSecrets("user", "secret-of-12+")))
    rec, data = req(
        [("InitiatorName", "i"), ("TargetName", TARGET), ("AuthMethod", "CHAP,None")],
        0,
        1,
        transit=False,
    )
    reply = lg.receive(rec, data)
    assert dict(text.decode_pairs(reply.data))["AuthMethod"] == "CHAP"
    rec, data = req([("CHAP_A", "5")], 0, 1, transit=False)
    keys = dict(text.decode_pairs(lg.receive(rec, data).data))
    r = response(int(keys["CHAP_I"]), "secret-of-12+", decode_binary(keys["CHAP_C"]))
    rec, data = req([("CHAP_N", "user"), ("CHAP_R", "0x" + r.hex())], 0, 1)
    reply = lg.receive(rec, data)
    assert status(reply) == 0 and reply.record.transit and reply.record.nsg == 1
    rec, data = req([("HeaderDigest", "None")], 1, 3)
    assert lg.receive(rec, data).record.tsih == 7


def test_rfc7143_12_1_3_skipping_chap_when_required_is_authentication_failure() -> None:
    lg = login(Policy({"i"}, ChapSecrets("user", "secret-of-12+")))
    rec, data = req([("InitiatorName", "i"), ("TargetName", TARGET)], 1, 3)
    assert status(lg.receive(rec, data)) == 0x0201


def test_rfc7143_6_3_bad_stage_transition_is_initiator_error() -> None:
    lg = login(Policy({"i"}))
    rec, data = req([("InitiatorName", "i"), ("TargetName", TARGET)], 1, 1)
    assert status(lg.receive(rec, data)) == 0x0200


def test_rfc7143_11_12_unsupported_version() -> None:
    lg = login(Policy({"i"}))
    data = text.encode_pairs([("InitiatorName", "i"), ("TargetName", TARGET)])
    rec = pdu.LoginRequest(
        ISID, 0, 1, 0, 1, 0, 1, 3, True, version_max=2, version_min=1, data_length=len(data)
    )
    assert status(lg.receive(rec, data)) == 0x0205
