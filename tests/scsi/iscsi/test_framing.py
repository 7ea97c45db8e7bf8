"""RFC 7143 11.2 (PDU layout) and 13.1 / RFC 3720 B.4 (CRC32C digests)."""

from __future__ import annotations

import pytest

from scsi.iscsi import pdu
from scsi.iscsi.errors import DigestError, PduError, RejectReason
from scsi.iscsi.framing import Framer, crc

# RFC 3720 appendix B.4 (kept by RFC 7143): CRC32C examples, digest bytes as sent on the wire.
B4_VECTORS = [
    (bytes(32), "aa36918a"),
    (b"\xff" * 32, "43aba862"),
    (bytes(range(32)), "4e79dd46"),
    (bytes(range(31, -1, -1)), "5cdb3f11"),
]


@pytest.mark.parametrize(("data", "wire"), B4_VECTORS)
def test_rfc3720_b4_crc32c_examples_least_significant_byte_first(data: bytes, wire: str) -> None:
    assert crc(data).to_bytes(4, "little").hex() == wire


def test_rfc7143_11_2_3_data_segment_is_padded_to_four_bytes() -> None:
    f = Framer()
    head = pdu.NopIn(1, 0xFFFFFFFF, 1, 1, 1, data_length=5).encode()
    wire = b"".join(bytes(b) for b in f.frame(head, b"hello"))
    assert wire == head + b"hello\0\0\0"


def test_rfc7143_13_1_header_and_data_digests_round_trip() -> None:
    f = Framer(header_digest=True, data_digest=True, max_recv_data=1024)
    g = Framer(header_digest=True, data_digest=True, max_recv_data=1024)
    head = pdu.NopOut(1, 0xFFFFFFFF, 1, 1, data_length=6).encode()
    wire = b"".join(bytes(b) for b in f.frame(head, b"ab", b"cdef"))
    assert wire[48:52] == crc(head).to_bytes(4, "little")
    assert wire[-4:] == crc(b"abcdef\0\0").to_bytes(4, "little")
    assert g.rest_size(wire[:48]) == len(wire) - 48
    rx = g.finish(wire[:48], memoryview(wire[48:]))
    assert bytes(rx.data) == b"abcdef"
    assert isinstance(rx.record, pdu.NopOut)


def test_rfc7143_13_1_bad_header_digest_is_fatal() -> None:
    g = Framer(header_digest=True)
    head = pdu.NopOut(1, 0xFFFFFFFF, 1, 1).encode()
    with pytest.raises(DigestError) as e:
        g.finish(head, memoryview(b"\0\0\0\0"))
    assert e.value.fatal


def test_rfc7143_13_1_bad_data_digest_is_a_data_digest_reject() -> None:
    g = Framer(data_digest=True)
    head = pdu.NopOut(1, 0xFFFFFFFF, 1, 1, data_length=4).encode()
    with pytest.raises(DigestError) as e:
        g.finish(head, memoryview(b"abcd\0\0\0\0"))
    assert e.value.reason == RejectReason.DATA_DIGEST_ERROR and not e.value.fatal


def test_rfc7143_13_12_data_beyond_max_recv_data_segment_length_is_fatal() -> None:
    g = Framer(max_recv_data=8192)
    head = pdu.NopOut(1, 0xFFFFFFFF, 1, 1, data_length=8193).encode()
    with pytest.raises(PduError) as e:
        g.rest_size(head)
    assert e.value.fatal
