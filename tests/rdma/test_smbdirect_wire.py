"""[MS-SMBD] 2.2 message vectors (the 4.1 example exchange) and parser fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdma.smbdirect import wire
from rdma.smbdirect.wire import SmbdParseError

# [MS-SMBD] 4.1 Establishing a Connection: the example negotiate request.
NEGOTIATE_REQUEST_4_1 = bytes.fromhex(
    "0001"  # MinVersion 0x0100
    "0001"  # MaxVersion 0x0100
    "0000"  # Reserved
    "0a00"  # CreditsRequested 10
    "00040000"  # PreferredSendSize 1 KiB
    "00040000"  # MaxReceiveSize 1 KiB
    "00000200"  # MaxFragmentedSize 128 KiB
)

# [MS-SMBD] 4.1: the example negotiate response.
NEGOTIATE_RESPONSE_4_1 = bytes.fromhex(
    "0001"  # MinVersion
    "0001"  # MaxVersion
    "0001"  # NegotiatedVersion
    "0000"  # Reserved
    "0a00"  # CreditsRequested 10
    "0a00"  # CreditsGranted 10
    "00000000"  # Status STATUS_SUCCESS
    "00001000"  # MaxReadWriteSize 1 MiB
    "00040000"  # PreferredSendSize 1 KiB
    "00040000"  # MaxReceiveSize 1 KiB
    "00000200"  # MaxFragmentedSize 128 KiB
)


def test_ms_smbd_2_2_1_negotiate_request_4_1_example() -> None:
    req = wire.NegotiateRequest(0x0100, 0x0100, 10, 1024, 1024, 131072)
    assert req.encode() == NEGOTIATE_REQUEST_4_1
    assert wire.NegotiateRequest.decode(NEGOTIATE_REQUEST_4_1) == req
    with pytest.raises(SmbdParseError):
        wire.NegotiateRequest.decode(NEGOTIATE_REQUEST_4_1[:19])


def test_ms_smbd_2_2_2_negotiate_response_4_1_example() -> None:
    resp = wire.NegotiateResponse(0x0100, 0x0100, 0x0100, 10, 10, 0, 1 << 20, 1024, 1024, 131072)
    assert resp.encode() == NEGOTIATE_RESPONSE_4_1
    assert wire.NegotiateResponse.decode(NEGOTIATE_RESPONSE_4_1) == resp
    with pytest.raises(SmbdParseError):
        wire.NegotiateResponse.decode(NEGOTIATE_RESPONSE_4_1[:31])


DATA_MESSAGE = (
    bytes.fromhex(
        "ff00"  # CreditsRequested 255
        "0300"  # CreditsGranted 3
        "0100"  # Flags SMB_DIRECT_RESPONSE_REQUESTED
        "0000"  # Reserved
        "10000000"  # RemainingDataLength 16
        "18000000"  # DataOffset 24
        "05000000"  # DataLength 5
        "00000000"  # Padding
    )
    + b"\xfeSMB2"
)


def test_ms_smbd_2_2_3_data_transfer_message() -> None:
    hdr, payload = wire.decode_data(memoryview(DATA_MESSAGE))
    assert hdr == wire.DataHeader(255, 3, wire.FLAG_RESPONSE_REQUESTED, 16, 24, 5)
    assert bytes(payload) == b"\xfeSMB2"
    assert hdr.encode() + b"\xfeSMB2" == DATA_MESSAGE
    out = bytearray(64)
    at = wire.encode_data_header_into(memoryview(out), 255, 3, 1, 16, 5)
    assert at == 24 and bytes(out[:24]) == DATA_MESSAGE[:24]


def test_ms_smbd_2_2_3_credit_only_message_is_20_bytes() -> None:
    keepalive = bytes.fromhex("ff00000001000000000000000000000000000000")
    hdr, payload = wire.decode_data(memoryview(keepalive))
    assert hdr.flags == wire.FLAG_RESPONSE_REQUESTED and not payload
    assert wire.DataHeader(255, 0, 1, 0, 0, 0).encode() == keepalive


@pytest.mark.parametrize(
    "message",
    [
        DATA_MESSAGE[:19],  # shorter than the 20-byte header
        DATA_MESSAGE[:24] + b"\xfeSM",  # DataOffset + DataLength beyond the message
        DATA_MESSAGE[:16] + bytes.fromhex("14000000") + DATA_MESSAGE[20:],  # offset 20
        DATA_MESSAGE[:16] + bytes.fromhex("1c000000") + DATA_MESSAGE[20:],  # offset 28, unaligned
        DATA_MESSAGE[:16] + bytes.fromhex("08000000") + DATA_MESSAGE[20:],  # offset in header
    ],
)
def test_ms_smbd_3_1_5_8_bad_data_messages(message: bytes) -> None:
    with pytest.raises(SmbdParseError):
        wire.decode_data(memoryview(message))


def test_ms_smbd_2_2_3_1_buffer_descriptor_v1() -> None:
    d = wire.BufferDescriptorV1(offset=0x7F0000001000, token=0x00012345, length=1 << 20)
    assert d.encode() == (
        bytes.fromhex("00100000007f0000")  # Offset
        + bytes.fromhex("45230100")  # Token
        + bytes.fromhex("00001000")  # Length
    )
    two = wire.encode_descriptors([d, d._replace(token=7)])
    assert wire.decode_descriptors(two) == [d, d._replace(token=7)]
    for bad in (b"", two[:-1]):
        with pytest.raises(SmbdParseError):
            wire.decode_descriptors(bad)


@given(st.binary(max_size=64))
def test_fuzz_smbd_parsers(data: bytes) -> None:
    for parse in (
        wire.NegotiateRequest.decode,
        wire.NegotiateResponse.decode,
        lambda b: wire.decode_data(memoryview(b)),
        wire.decode_descriptors,
    ):
        with contextlib.suppress(SmbdParseError):
            parse(data)
