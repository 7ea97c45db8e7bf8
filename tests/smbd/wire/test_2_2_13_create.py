"""[MS-SMB2] 2.2.13 CREATE Request, 2.2.13.2 create contexts, 2.2.14 CREATE Response.

Vectors captured from smbclient 4.17 / smbtorture against Samba on this machine
(`smbclient -m SMB3_00 ... -c 'put f.bin a.bin'`, `smbtorture smb2.lease.request`).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbd.wire import create as c
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz

# smbclient `put f.bin a.bin`: CREATE of a.bin, OVERWRITE_IF, no contexts.
PUT_CREATE = bytes.fromhex(
    "3900"  # StructureSize 57
    "00"  # SecurityFlags
    "00"  # RequestedOplockLevel NONE
    "02000000"  # ImpersonationLevel Impersonation
    "0000000000000000"  # SmbCreateFlags
    "0000000000000000"  # Reserved
    "9f011200"  # DesiredAccess 0x0012019f
    "00000000"  # FileAttributes
    "03000000"  # ShareAccess READ|WRITE
    "05000000"  # CreateDisposition OVERWRITE_IF
    "40000000"  # CreateOptions NON_DIRECTORY_FILE
    "7800"  # NameOffset 0x78
    "0a00"  # NameLength 10
    "00000000"  # CreateContextsOffset
    "00000000"  # CreateContextsLength
    "61002e00620069006e00"  # "a.bin"
    "0000"  # padding
)

# smbtorture smb2.lease.request: lease_request.dat with an RqLs v1 context, RWH.
LEASE_CREATE = bytes.fromhex(
    "3900"  # StructureSize
    "00"  # SecurityFlags
    "ff"  # RequestedOplockLevel LEASE
    "02000000"  # ImpersonationLevel
    "0000000000000000"  # SmbCreateFlags
    "0000000000000000"  # Reserved
    "ff011f00"  # DesiredAccess FILE_ALL_ACCESS
    "80000000"  # FileAttributes NORMAL
    "07000000"  # ShareAccess READ|WRITE|DELETE
    "03000000"  # CreateDisposition OPEN_IF
    "64002000"  # CreateOptions
    "7800"  # NameOffset
    "2200"  # NameLength 34
    "a0000000"  # CreateContextsOffset 0xa0
    "38000000"  # CreateContextsLength 56
    "6c0065006100730065005f0072006500710075006500730074002e00640061007400"
    "000000000000"  # padding to 8
    # SMB2_CREATE_CONTEXT
    "00000000"  # Next
    "1000"  # NameOffset 16
    "0400"  # NameLength 4
    "0000"  # Reserved
    "1800"  # DataOffset 24
    "20000000"  # DataLength 32
    "52714c73"  # "RqLs"
    "00000000"  # padding
    "0df0dde0fe0fdcbaf20f221f01f02345"  # LeaseKey
    "07000000"  # LeaseState RWH
    "00000000"  # LeaseFlags
    "0000000000000000"  # LeaseDuration
)

# Samba's CREATE response to smb2.lease.request with the RqLs v1 response context.
LEASE_CREATE_RESPONSE = bytes.fromhex(
    "5900"  # StructureSize 89
    "ff"  # OplockLevel LEASE
    "00"  # Flags
    "02000000"  # CreateAction CREATED
    "0bd4ab3a2f7edd01"  # CreationTime
    "0bd4ab3a2f7edd01"  # LastAccessTime
    "0bd4ab3a2f7edd01"  # LastWriteTime
    "0bd4ab3a2f7edd01"  # ChangeTime
    "0000000000000000"  # AllocationSize
    "0000000000000000"  # EndofFile
    "20000000"  # FileAttributes ARCHIVE
    "00000000"  # Reserved2
    "fe2c214300000000"  # FileId.Persistent
    "aba16ece00000000"  # FileId.Volatile
    "98000000"  # CreateContextsOffset 152
    "38000000"  # CreateContextsLength 56
    "00000000"
    "1000"
    "0400"
    "0000"
    "1800"
    "20000000"
    "52714c73"
    "00000000"
    "0df0dde0fe0fdcbaf20f221f01f02345"  # LeaseKey
    "07000000"  # LeaseState RWH granted
    "00000000"  # LeaseFlags
    "0000000000000000"  # LeaseDuration
)


def test_parse_smbclient_create() -> None:
    r = c.parse_create_request(PUT_CREATE)
    assert r.name == "a.bin"
    assert r.impersonation_level == c.ImpersonationLevel.IMPERSONATION
    assert r.desired_access == 0x0012019F
    assert r.share_access == c.ShareAccess.READ | c.ShareAccess.WRITE
    assert r.create_disposition == c.CreateDisposition.OVERWRITE_IF
    assert r.create_options == c.CreateOptions.NON_DIRECTORY_FILE
    assert r.contexts == ()


def test_parse_lease_create() -> None:
    r = c.parse_create_request(LEASE_CREATE)
    assert r.name == "lease_request.dat"
    assert r.requested_oplock_level == c.OplockLevel.LEASE
    assert [x.name for x in r.contexts] == [c.CTX_REQUEST_LEASE]
    ctx = r.context(c.CTX_REQUEST_LEASE)
    assert ctx is not None
    lease = c.parse_lease(ctx.data)
    assert lease == c.Lease(
        bytes.fromhex("0df0dde0fe0fdcbaf20f221f01f02345"), 7, 0, 0, bytes(16), 0, 1
    )
    assert r.context(c.CTX_QUERY_MAXIMAL_ACCESS) is None


def test_pack_create_response_matches_samba() -> None:
    lease = c.Lease(bytes.fromhex("0df0dde0fe0fdcbaf20f221f01f02345"), 7, version=1)
    resp = c.CreateResponse(
        c.OplockLevel.LEASE,
        0,
        c.CreateAction.CREATED,
        0x01DD7E2F3AABD40B,
        0x01DD7E2F3AABD40B,
        0x01DD7E2F3AABD40B,
        0x01DD7E2F3AABD40B,
        0,
        0,
        c.FileAttributes.ARCHIVE,
        (0x43212CFE, 0xCE6EA1AB),
        ((c.CTX_REQUEST_LEASE, c.pack_lease(lease)),),
    )
    assert b"".join(c.pack_create_response(resp)) == LEASE_CREATE_RESPONSE
    assert c.parse_create_response(LEASE_CREATE_RESPONSE) == resp


def test_response_without_contexts() -> None:
    resp = c.CreateResponse(0, 0, 1, 1, 2, 3, 4, 4096, 10, 0x20, (1, 2))
    parts = c.pack_create_response(resp)
    assert len(parts) == 1 and len(parts[0]) == 88
    assert struct.unpack_from("<II", parts[0], 80) == (0, 0)
    assert c.parse_create_response(parts[0]) == resp


def test_request_round_trip_with_several_contexts() -> None:
    mv = memoryview
    req = c.CreateRequest(
        0,
        c.OplockLevel.BATCH,
        2,
        0,
        c.AccessMask.MAXIMUM_ALLOWED,
        0,
        7,
        c.CreateDisposition.OPEN,
        0,
        "dir\\file.vhdx",
        (
            c.CreateContext(c.CTX_QUERY_MAXIMAL_ACCESS, mv(b"")),
            c.CreateContext(c.CTX_QUERY_ON_DISK_ID, mv(b"")),
            c.CreateContext(
                c.CTX_DURABLE_HANDLE_REQUEST_V2,
                mv(c.pack_durable_v2_request(c.DurableV2Request(0, 0, b"G" * 16))),
            ),
            c.CreateContext(c.CTX_APP_INSTANCE_ID, mv(struct.pack("<HH16s", 20, 0, b"A" * 16))),
        ),
    )
    body = c.pack_create_request(req)
    back = c.parse_create_request(body)
    assert back.name == req.name
    assert [(x.name, bytes(x.data)) for x in back.contexts] == [
        (x.name, bytes(x.data)) for x in req.contexts
    ]
    dh2q = back.context(c.CTX_DURABLE_HANDLE_REQUEST_V2)
    assert dh2q is not None
    assert c.parse_durable_v2_request(dh2q.data) == c.DurableV2Request(0, 0, b"G" * 16)
    app = back.context(c.CTX_APP_INSTANCE_ID)
    assert app is not None and c.parse_app_instance_id(app.data) == b"A" * 16


def test_empty_name_any_offset() -> None:
    body = bytearray(PUT_CREATE)
    struct.pack_into("<HH", body, 44, 0, 0)
    assert c.parse_create_request(bytes(body)).name == ""
    struct.pack_into("<HH", body, 44, 0xFFFF, 0)
    assert c.parse_create_request(bytes(body)).name == ""


@pytest.mark.parametrize(
    ("name_off", "name_len"),
    [
        (0x77, 10),  # overlaps the fixed part
        (0x78, 14),  # runs past the message
        (0x40, 2),  # inside the header
        (0xFFFF, 2),
    ],
)
def test_name_outside_message(name_off: int, name_len: int) -> None:
    body = bytearray(PUT_CREATE)
    struct.pack_into("<HH", body, 44, name_off, name_len)
    with pytest.raises(ParseError) as e:
        c.parse_create_request(bytes(body))
    assert e.value.status == NTStatus.INVALID_PARAMETER


def test_name_odd_length_and_bad_utf16() -> None:
    body = bytearray(PUT_CREATE)
    struct.pack_into("<H", body, 46, 9)
    with pytest.raises(ParseError) as e:
        c.parse_create_request(bytes(body))
    assert e.value.status == NTStatus.INVALID_PARAMETER
    body = bytearray(PUT_CREATE)
    body[56:58] = b"\x00\xd8"  # unpaired high surrogate
    with pytest.raises(ParseError) as e:
        c.parse_create_request(bytes(body))
    assert e.value.status == NTStatus.OBJECT_NAME_INVALID


def test_wrong_structure_size() -> None:
    with pytest.raises(ParseError):
        c.parse_create_request(b"\x38\x00" + PUT_CREATE[2:])


def _ctx_variant(offset: int, fmt: str, value: int) -> bytes:
    body = bytearray(LEASE_CREATE)
    struct.pack_into(fmt, body, 96 + offset, value)
    return bytes(body)


@pytest.mark.parametrize(
    ("offset", "fmt", "value"),
    [
        (0, "<I", 8),  # Next points at a truncated second context
        (0, "<I", 0x3C),  # Next unaligned
        (0, "<I", 0x100),  # Next beyond the chain
        (4, "<H", 8),  # NameOffset inside the context header
        (4, "<H", 0x38),  # name beyond the context
        (6, "<H", 2),  # name shorter than 4
        (10, "<H", 0x14),  # DataOffset unaligned
        (10, "<H", 0x10),  # data overlaps the name
        (12, "<I", 0x21),  # data beyond the context
    ],
)
def test_bad_context_chain(offset: int, fmt: str, value: int) -> None:
    with pytest.raises(ParseError) as e:
        c.parse_create_request(_ctx_variant(offset, fmt, value))
    assert e.value.status == NTStatus.INVALID_PARAMETER


def test_contexts_offset_unaligned_or_outside() -> None:
    body = bytearray(LEASE_CREATE)
    struct.pack_into("<I", body, 48, 0x9C)
    with pytest.raises(ParseError):
        c.parse_create_request(bytes(body))
    struct.pack_into("<I", body, 48, 0xA8)
    with pytest.raises(ParseError):
        c.parse_create_request(bytes(body))


def test_context_payload_lengths() -> None:
    assert c.parse_mxac_request(b"") is None
    assert c.parse_mxac_request(struct.pack("<Q", 5)) == 5
    for bad in (b"\0", bytes(9)):
        with pytest.raises(ParseError):
            c.parse_mxac_request(bad)
    with pytest.raises(ParseError):
        c.parse_lease(bytes(33))
    with pytest.raises(ParseError):
        c.parse_durable_request(bytes(15))
    c.parse_durable_request(bytes(16))
    assert c.parse_durable_reconnect(struct.pack("<QQ", 1, 2)) == (1, 2)
    with pytest.raises(ParseError):
        c.parse_durable_v2_reconnect(bytes(35))
    assert c.parse_allocation_size(struct.pack("<Q", 1 << 20)) == 1 << 20
    assert c.parse_timewarp_token(struct.pack("<Q", 7)) == 7
    with pytest.raises(ParseError):
        c.parse_app_instance_id(struct.pack("<HH16s", 24, 0, bytes(16)))


def test_mxac_and_qfid_and_durable_responses() -> None:
    assert c.pack_mxac_response(0, 0x1F01FF) == bytes.fromhex(
        "00000000"  # QueryStatus SUCCESS
        "ff011f00"  # MaximalAccess
    )
    assert c.parse_mxac_response(c.pack_mxac_response(0, 0x1F01FF)) == (0, 0x1F01FF)
    q = c.pack_qfid_response(0x1122, 0x33)
    assert q == bytes.fromhex("22110000000000003300000000000000") + bytes(16)
    assert c.parse_qfid_response(q) == (0x1122, 0x33)
    assert c.pack_durable_v2_response(60000, 2) == bytes.fromhex("60ea000002000000")
    assert c.parse_durable_v2_response(bytes.fromhex("60ea000002000000")) == (60000, 2)
    r = c.DurableV2Reconnect((1, 2), b"g" * 16, 2)
    assert c.parse_durable_v2_reconnect(c.pack_durable_v2_reconnect(r)) == r
    assert bytes(8) == c.DURABLE_RESPONSE


def test_lease_v2_round_trip() -> None:
    lease = c.Lease(b"k" * 16, 3, c.LeaseFlags.PARENT_LEASE_KEY_SET, 0, b"p" * 16, 5, 2)
    raw = c.pack_lease(lease)
    assert len(raw) == 52
    assert c.parse_lease(raw) == lease


def test_duplicate_contexts() -> None:
    mv = memoryview(b"")
    c.check_no_duplicates([c.CreateContext(b"MxAc", mv), c.CreateContext(b"QFid", mv)])
    with pytest.raises(ParseError):
        c.check_no_duplicates([c.CreateContext(b"MxAc", mv), c.CreateContext(b"MxAc", mv)])


def test_map_generic_access() -> None:
    assert c.map_generic_access(c.AccessMask.GENERIC_ALL) == c.FILE_ALL_ACCESS
    assert c.map_generic_access(c.AccessMask.GENERIC_READ) == 0x00120089
    assert c.map_generic_access(c.AccessMask.DELETE | c.AccessMask.GENERIC_WRITE) == 0x00130116


@given(st.lists(st.tuples(st.binary(min_size=4, max_size=16), st.binary(max_size=64)), max_size=5))
def test_context_chain_round_trip(items: list[tuple[bytes, bytes]]) -> None:
    raw = c.pack_create_contexts(items)
    if not items:
        assert raw == b""
        return
    back = c.parse_create_contexts(raw)
    assert [(x.name, bytes(x.data)) for x in back] == items


def test_truncation_and_trailing() -> None:
    check_truncation_and_trailing(c.parse_create_request, PUT_CREATE, fixed=56)
    check_truncation_and_trailing(c.parse_create_request, LEASE_CREATE, fixed=56)
    check_truncation_and_trailing(c.parse_create_response, LEASE_CREATE_RESPONSE, fixed=88)


test_fuzz_create_request = fuzz(c.parse_create_request, LEASE_CREATE)
test_fuzz_create_response = fuzz(c.parse_create_response, LEASE_CREATE_RESPONSE)
test_fuzz_contexts = fuzz(c.parse_create_contexts, LEASE_CREATE[96:])
test_fuzz_lease = fuzz(c.parse_lease, LEASE_CREATE[120:])
