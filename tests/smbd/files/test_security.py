"""[MS-DTYP] 2.4.6 security descriptors and 2.5.3.2 access checks, as the file service
keeps and enforces them."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from smbd.server.files import security as sec
from smbd.wire.errors import ParseError

READ, WRITE = 0x1, 0x2
RC, WDAC, WOWN, DELETE = 0x20000, 0x40000, 0x80000, 0x10000
OTHER = sec.sid_bytes("S-1-5-21-1-2-3-1000")


def _sd(
    aces: list[tuple[int, int, int, bytes]] | None, owner: bytes = sec.ADMINISTRATORS
) -> sec.SecurityDescriptor:
    dacl = sec._acl(aces) if aces is not None else None
    return sec.SecurityDescriptor(0x8004, owner=owner, group=sec.USERS, dacl=dacl)


def test_sid_bytes_vector() -> None:
    # S-1-5-32-544: revision 1, 2 subauthorities, NT authority 5, 32, 544
    assert sec.sid_bytes("S-1-5-32-544") == bytes.fromhex("01020000000000052000000020020000")


def test_pack_parse_round_trip_and_parts() -> None:
    sd = sec.default_descriptor()
    raw = sec.pack(sd)
    assert sec.parse(raw) == sd
    only_owner = sec.parse(sec.pack(sd, sec.OWNER))
    assert only_owner.owner == sd.owner and only_owner.group is None and only_owner.dacl is None
    assert not only_owner.control & sec.SE_DACL_PRESENT


def test_merge_null_dacl_and_owner() -> None:
    base = sec.default_descriptor()
    no_dacl = sec.SecurityDescriptor(0x8000)
    merged = sec.merge(base, no_dacl, sec.DACL)  # "set empty sd": a NULL DACL, present
    assert merged.control & sec.SE_DACL_PRESENT and merged.dacl is None
    assert merged.owner == base.owner
    merged = sec.merge(base, sec.SecurityDescriptor(0x8000, owner=sec.EVERYONE), sec.OWNER)
    assert merged.owner == sec.EVERYONE and merged.dacl == base.dacl
    new = sec.for_new_file(sec.SecurityDescriptor(0x8000))
    assert new.dacl is not None  # a new file always gets a DACL


def test_access_check() -> None:
    everyone_all = (0, 0, 0x1F01FF, sec.EVERYONE)
    assert sec.access_allowed(_sd(None)) == 0x1F01FF  # NULL DACL
    assert sec.access_allowed(_sd([everyone_all])) == 0x1F01FF
    # empty DACL: only what ownership, privilege and the parent give
    assert sec.access_allowed(_sd([])) == RC | WDAC | WOWN | DELETE
    assert sec.access_allowed(_sd([], owner=OTHER)) == WOWN | DELETE
    # order matters: a deny before the allow takes write away, after it does not
    deny_write = (1, 0, WRITE, sec.EVERYONE)
    assert not sec.access_allowed(_sd([deny_write, everyone_all])) & WRITE
    assert sec.access_allowed(_sd([everyone_all, deny_write])) & WRITE
    # ACEs for someone else and inherit-only ACEs do not count; generic rights are mapped
    assert not sec.access_allowed(_sd([(0, 0, READ, OTHER)])) & READ
    assert not sec.access_allowed(_sd([(0, 0x8, READ, sec.EVERYONE)])) & READ
    assert sec.access_allowed(_sd([(0, 0, 0x80000000, sec.EVERYONE)])) & READ  # GENERIC_READ


@given(st.binary(max_size=200))
def test_parse_fuzz(raw: bytes) -> None:
    try:
        sd = sec.parse(raw)
    except ParseError:
        return
    assert sec.parse(sec.pack(sd)) == sd


def test_parse_rejects_offsets_outside() -> None:
    raw = struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 4096)
    try:
        sec.parse(raw)
    except ParseError:
        return
    raise AssertionError("DACL offset outside the buffer accepted")
