"""[MS-SMB2] 2.2.3 NEGOTIATE Request, 2.2.3.1 negotiate contexts, 2.2.4 NEGOTIATE Response,
and [MS-SMB] 2.2.4.5.1 the SMB1 multi-protocol negotiate.

The request vector is what smbclient 4.17 (-m SMB3_11) sent to this server on this
machine; the response is cross-checked with smbprotocol's parser.
"""

from __future__ import annotations

import struct

import pytest
from smbprotocol.connection import SMB2NegotiateResponse

from smbd.wire import negotiate as nego
from smbd.wire.errors import ParseError
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz

CLIENT_GUID = bytes.fromhex("7a39698d04c7ba41b6b7ae143e245793")
SALT = bytes.fromhex("d0382bf1cba5206806c83a51c128b325b9c3f8254d4b85d5257d3fe8e3ec5c43")

SMBCLIENT_NEGOTIATE = bytes.fromhex(
    "2400"  # StructureSize 36
    "0500"  # DialectCount 5
    "0100"  # SecurityMode SIGNING_ENABLED
    "0000"  # Reserved
    "7f000000"  # Capabilities
    "7a39698d04c7ba41b6b7ae143e245793"  # ClientGuid
    "70000000"  # NegotiateContextOffset 0x70 (from the header)
    "0400"  # NegotiateContextCount 4
    "0000"  # Reserved2
    "0202"
    "1002"
    "0003"
    "0203"
    "1103"  # Dialects 2.0.2 2.1 3.0 3.0.2 3.1.1
    "0000"  # Padding to 8
    "0100"  # PREAUTH_INTEGRITY_CAPABILITIES
    "2600"  # DataLength 38
    "00000000"  # Reserved
    "0100"  # HashAlgorithmCount 1
    "2000"  # SaltLength 32
    "0100"  # SHA-512
    "d0382bf1cba5206806c83a51c128b325b9c3f8254d4b85d5257d3fe8e3ec5c43"  # Salt
    "0000"  # Padding to 8
    "0200"  # ENCRYPTION_CAPABILITIES
    "0a00"  # DataLength 10
    "00000000"  # Reserved
    "0400"  # CipherCount 4
    "0200"
    "0100"
    "0400"
    "0300"  # AES-128-GCM AES-128-CCM AES-256-GCM AES-256-CCM
    "000000000000"  # Padding to 8
    "0800"  # SIGNING_CAPABILITIES
    "0800"  # DataLength 8
    "00000000"  # Reserved
    "0300"  # SigningAlgorithmCount 3
    "0200"
    "0100"
    "0000"  # AES-GMAC AES-CMAC HMAC-SHA256
    "0500"  # NETNAME_NEGOTIATE_CONTEXT_ID
    "1200"  # DataLength 18
    "00000000"  # Reserved
    "3100320037002e0030002e0030002e003100"  # "127.0.0.1"
)


def test_2_2_3_smbclient_request() -> None:
    r = nego.parse_negotiate_request(SMBCLIENT_NEGOTIATE)
    assert r.security_mode == 1
    assert r.capabilities == 0x7F
    assert r.client_guid == CLIENT_GUID
    assert r.dialects == (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
    assert [c.type for c in r.contexts] == [1, 2, 8, 5]
    pre = nego.parse_preauth_capabilities(r.contexts[0].data)
    assert pre == nego.PreauthCapabilities((1,), SALT)
    assert nego.parse_encryption_capabilities(r.contexts[1].data) == (2, 1, 4, 3)
    assert nego.parse_signing_capabilities(r.contexts[2].data) == (2, 1, 0)
    assert r.contexts[3].data.decode("utf-16-le") == "127.0.0.1"


def test_2_2_3_pack_request_round_trip() -> None:
    r = nego.parse_negotiate_request(SMBCLIENT_NEGOTIATE)
    packed = nego.pack_negotiate_request(
        r.dialects,
        security_mode=r.security_mode,
        capabilities=r.capabilities,
        client_guid=r.client_guid,
        contexts=r.contexts,
    )
    assert packed == SMBCLIENT_NEGOTIATE


def test_2_2_3_request_without_3_1_1_has_no_contexts() -> None:
    body = nego.pack_negotiate_request([0x0202, 0x0300])
    r = nego.parse_negotiate_request(body)
    assert r.contexts == ()
    # ClientStartTime (the 8 bytes after the GUID) is ignored
    body = body[:28] + b"\xff" * 8 + body[36:]
    assert nego.parse_negotiate_request(body).dialects == (0x0202, 0x0300)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:2] + b"\x00\x00" + b[4:],  # DialectCount 0
        lambda b: b"\x25" + b[1:],  # StructureSize 37
        lambda b: b[:2] + b"\x30\x00" + b[4:],  # 48 dialects beyond the message
        lambda b: b[:28] + struct.pack("<I", 0x71) + b[32:],  # context offset not aligned
        lambda b: b[:28] + struct.pack("<I", 0x1000) + b[32:],  # context offset beyond
        lambda b: b[:28] + struct.pack("<I", 0x40) + b[32:],  # offset inside the fixed part
        lambda b: b[:32] + b"\x09\x00" + b[34:],  # 9 contexts, only 4 present
        lambda b: b[:50] + b"\xff\x00" + b[52:],  # preauth DataLength beyond the message
    ],
)
def test_2_2_3_bad_requests(mutate: object) -> None:
    with pytest.raises(ParseError) as e:
        nego.parse_negotiate_request(mutate(SMBCLIENT_NEGOTIATE))  # type: ignore[operator]
    assert e.value.status == 0xC000000D


def test_2_2_3_truncation() -> None:
    check_truncation_and_trailing(nego.parse_negotiate_request, SMBCLIENT_NEGOTIATE, fixed=46)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x00", b"\x01\x00", b"\x00\x00\x00\x00", b"\x01\x00\x05\x00\x01\x00"],
)
def test_2_2_3_1_1_bad_preauth(data: bytes) -> None:
    with pytest.raises(ParseError):
        nego.parse_preauth_capabilities(data)


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x00\x00", b"\x02\x00\x01\x00"])
def test_2_2_3_1_2_bad_id_lists(data: bytes) -> None:
    with pytest.raises(ParseError):
        nego.parse_encryption_capabilities(data)
    with pytest.raises(ParseError):
        nego.parse_signing_capabilities(data)


RESPONSE = nego.NegotiateResponse(
    security_mode=3,
    dialect=0x0311,
    server_guid=bytes(range(16)),
    capabilities=0x0E,
    max_transact_size=8 << 20,
    max_read_size=8 << 20,
    max_write_size=8 << 20,
    system_time=0x01DD7E3083C11406,
    server_start_time=0,
    security_buffer=b"\x60\x06" + b"SPNEGO",
    contexts=(
        nego.NegotiateContext(1, nego.pack_preauth_capabilities(1, SALT)),
        nego.NegotiateContext(2, nego.pack_id_list([2])),
        nego.NegotiateContext(8, nego.pack_id_list([2])),
    ),
)

RESPONSE_FIXED = bytes.fromhex(
    "4100"  # StructureSize 65
    "0300"  # SecurityMode SIGNING_ENABLED | SIGNING_REQUIRED
    "1103"  # DialectRevision 3.1.1
    "0300"  # NegotiateContextCount 3
    "000102030405060708090a0b0c0d0e0f"  # ServerGuid
    "0e000000"  # Capabilities LEASING | LARGE_MTU | MULTI_CHANNEL
    "00008000"  # MaxTransactSize 8 MiB
    "00008000"  # MaxReadSize
    "00008000"  # MaxWriteSize
    "0614c183307edd01"  # SystemTime
    "0000000000000000"  # ServerStartTime
    "8000"  # SecurityBufferOffset 128
    "0800"  # SecurityBufferLength 8
    "88000000"  # NegotiateContextOffset 0x88 (8-aligned after the buffer)
)


def test_2_2_4_response_layout() -> None:
    raw = nego.pack_negotiate_response(RESPONSE)
    assert raw[:64] == RESPONSE_FIXED
    assert raw[64:72] == RESPONSE.security_buffer
    assert nego.parse_negotiate_response(raw) == RESPONSE


def test_2_2_4_response_read_by_smbprotocol() -> None:
    raw = nego.pack_negotiate_response(RESPONSE)
    # smbprotocol parses the body after the header but counts offsets from the header
    theirs = SMB2NegotiateResponse()
    theirs.unpack(raw)
    assert theirs["dialect_revision"].get_value() == 0x0311
    assert theirs["buffer"].get_value() == RESPONSE.security_buffer
    ctxs = theirs["negotiate_context_list"].get_value()
    assert [c["context_type"].get_value() for c in ctxs] == [1, 2, 8]
    assert ctxs[1]["data"]["ciphers"].get_value() == [2]


def test_2_2_4_response_without_buffer_has_a_byte() -> None:
    r = RESPONSE._replace(security_buffer=b"", contexts=(), dialect=0x0302)
    raw = nego.pack_negotiate_response(r)
    assert len(raw) == 65
    assert nego.parse_negotiate_response(raw) == r


SMB1_NEGOTIATE = bytes.fromhex(
    "ff534d42"  # Protocol 0xFF 'SMB'
    "72"  # Command NEGOTIATE
    "00000000"  # Status
    "18"  # Flags
    "53c8"  # Flags2
    "0000000000000000000000000000000000000000"  # PIDHigh .. MID (20 bytes)
    "00"  # WordCount 0
    "2200"  # ByteCount 34
    "024e54204c4d20302e313200"  # 0x02 "NT LM 0.12"
    "02534d4220322e30303200"  # 0x02 "SMB 2.002"
    "02534d4220322e3f3f3f00"  # 0x02 "SMB 2.???"
)


def test_smb1_multi_protocol_negotiate() -> None:
    assert nego.pack_smb1_negotiate(["NT LM 0.12", "SMB 2.002", "SMB 2.???"]) == SMB1_NEGOTIATE
    assert nego.parse_smb1_negotiate(SMB1_NEGOTIATE) == ("NT LM 0.12", "SMB 2.002", "SMB 2.???")


@pytest.mark.parametrize(
    "data",
    [
        SMB1_NEGOTIATE[:-1],  # unterminated
        SMB1_NEGOTIATE[:4] + b"\x73" + SMB1_NEGOTIATE[5:],  # SESSION_SETUP_ANDX
        SMB1_NEGOTIATE[:32] + b"\x05" + SMB1_NEGOTIATE[33:],  # WordCount beyond
        SMB1_NEGOTIATE[:35] + b"\x01" + SMB1_NEGOTIATE[36:],  # bad buffer format
        b"\xfeSMB" + SMB1_NEGOTIATE[4:],
    ],
)
def test_smb1_bad(data: bytes) -> None:
    with pytest.raises(ParseError) as e:
        nego.parse_smb1_negotiate(data)
    assert e.value.disconnect


test_fuzz_negotiate_request = fuzz(nego.parse_negotiate_request, SMBCLIENT_NEGOTIATE)
test_fuzz_negotiate_response = fuzz(
    nego.parse_negotiate_response, nego.pack_negotiate_response(RESPONSE)
)
test_fuzz_preauth = fuzz(nego.parse_preauth_capabilities, nego.pack_preauth_capabilities(1, SALT))
test_fuzz_ciphers = fuzz(nego.parse_encryption_capabilities, nego.pack_id_list([2, 1, 4, 3]))
test_fuzz_signing = fuzz(nego.parse_signing_capabilities, nego.pack_id_list([2, 1, 0]))
test_fuzz_smb1 = fuzz(nego.parse_smb1_negotiate, SMB1_NEGOTIATE)
