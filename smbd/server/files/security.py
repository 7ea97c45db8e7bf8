"""Security descriptors ([MS-DTYP] 2.4.6): parse, merge, build and check access. Pure.

A share is served by one Unix account, so there is no per-user identity to map: every
authenticated user is given the same token (Everyone, Authenticated Users, BUILTIN\\Users
and BUILTIN\\Administrators), new files are owned by Administrators, and a file without a
stored descriptor grants that token full access. What clients set with SET_INFO (or the
SecD create context) is stored per file and enforced at CREATE, so a DACL that denies does
deny -- the behaviour Windows tools and smbtorture expect -- without pretending to be an
identity mapping.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Final

from smbd.wire.create import map_generic_access
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus

__all__ = [
    "DEFAULT_TOKEN",
    "SecurityDescriptor",
    "access_allowed",
    "default_descriptor",
    "merge",
    "pack",
    "parse",
    "sid_bytes",
]

OWNER: Final = 0x1
GROUP: Final = 0x2
DACL: Final = 0x4
SACL: Final = 0x8

SE_OWNER_DEFAULTED: Final = 0x0001
SE_GROUP_DEFAULTED: Final = 0x0002
SE_DACL_PRESENT: Final = 0x0004
SE_DACL_DEFAULTED: Final = 0x0008
SE_SACL_PRESENT: Final = 0x0010
SE_SACL_DEFAULTED: Final = 0x0020
SE_DACL_AUTO_INHERITED: Final = 0x0400
SE_SACL_AUTO_INHERITED: Final = 0x0800
SE_DACL_PROTECTED: Final = 0x1000
SE_SACL_PROTECTED: Final = 0x2000
SE_SELF_RELATIVE: Final = 0x8000
_DACL_BITS: Final = SE_DACL_PRESENT | SE_DACL_DEFAULTED | SE_DACL_AUTO_INHERITED | SE_DACL_PROTECTED
_SACL_BITS: Final = SE_SACL_PRESENT | SE_SACL_DEFAULTED | SE_SACL_AUTO_INHERITED | SE_SACL_PROTECTED

ACCESS_ALLOWED_ACE_TYPE: Final = 0x00
ACCESS_DENIED_ACE_TYPE: Final = 0x01
INHERIT_ONLY_ACE: Final = 0x08
READ_CONTROL: Final = 0x00020000
WRITE_DAC: Final = 0x00040000
WRITE_OWNER: Final = 0x00080000
DELETE: Final = 0x00010000
FILE_ALL_ACCESS: Final = 0x001F01FF

_HEADER: Final = struct.Struct("<BBHIIII")
_ACL: Final = struct.Struct("<BBHHH")
_ACE: Final = struct.Struct("<BBHI")


def sid_bytes(sid: str) -> bytes:
    """``"S-1-5-32-544"`` -> [MS-DTYP] 2.4.2.2 binary SID."""
    parts = sid.split("-")
    subs = [int(p) for p in parts[3:]]
    return (
        struct.pack("<BB", int(parts[1]), len(subs))
        + int(parts[2]).to_bytes(6, "big")
        + b"".join(struct.pack("<I", s) for s in subs)
    )


ADMINISTRATORS: Final = sid_bytes("S-1-5-32-544")
USERS: Final = sid_bytes("S-1-5-32-545")
EVERYONE: Final = sid_bytes("S-1-1-0")
AUTHENTICATED_USERS: Final = sid_bytes("S-1-5-11")
DEFAULT_TOKEN: Final = frozenset({EVERYONE, AUTHENTICATED_USERS, USERS, ADMINISTRATORS})


@dataclass(frozen=True, slots=True)
class SecurityDescriptor:
    """The parts of a descriptor, each kept as its raw bytes. ``dacl is None`` with
    SE_DACL_PRESENT is a NULL DACL (everyone may do anything)."""

    control: int
    owner: bytes | None = None
    group: bytes | None = None
    sacl: bytes | None = None
    dacl: bytes | None = None


def _sid_at(buf: memoryview, off: int) -> bytes:
    if off + 8 > len(buf):
        raise ParseError("SID outside the descriptor")
    size = 8 + 4 * buf[off + 1]
    if buf[off] != 1 or buf[off + 1] > 15 or off + size > len(buf):
        raise ParseError("bad SID")
    return bytes(buf[off : off + size])


def _acl_at(buf: memoryview, off: int) -> bytes:
    if off + _ACL.size > len(buf):
        raise ParseError("ACL outside the descriptor")
    _rev, _, size, count, _ = _ACL.unpack_from(buf, off)
    if size < _ACL.size or off + size > len(buf):
        raise ParseError("ACL size")
    acl = bytes(buf[off : off + size])
    pos = _ACL.size
    for _ in range(count):
        if pos + _ACE.size > size:
            raise ParseError("ACE outside the ACL")
        _t, _f, ace_size, _m = _ACE.unpack_from(acl, pos)
        if ace_size < _ACE.size + 8 or pos + ace_size > size:
            raise ParseError("ACE size")
        _sid_at(memoryview(acl)[: pos + ace_size], pos + _ACE.size)
        pos += ace_size
    return acl


def parse(raw: bytes | memoryview) -> SecurityDescriptor:
    """A self-relative descriptor; every offset checked. Raises ParseError
    (INVALID_PARAMETER)."""
    buf = memoryview(raw)
    if len(buf) < _HEADER.size:
        raise ParseError("security descriptor truncated")
    rev, _, control, o_owner, o_group, o_sacl, o_dacl = _HEADER.unpack_from(buf)
    if rev != 1:
        raise ParseError("security descriptor revision", NTStatus.INVALID_PARAMETER)
    return SecurityDescriptor(
        control=control | SE_SELF_RELATIVE,
        owner=_sid_at(buf, o_owner) if o_owner else None,
        group=_sid_at(buf, o_group) if o_group else None,
        sacl=_acl_at(buf, o_sacl) if o_sacl and control & SE_SACL_PRESENT else None,
        dacl=_acl_at(buf, o_dacl) if o_dacl and control & SE_DACL_PRESENT else None,
    )


def pack(sd: SecurityDescriptor, parts: int = OWNER | GROUP | DACL | SACL) -> bytes:
    """Self-relative bytes of the ``parts`` asked for (SACL, DACL, owner, group order, as
    Windows lays them out)."""
    control = sd.control | SE_SELF_RELATIVE
    if not parts & DACL:
        control &= ~_DACL_BITS
    if not parts & SACL:
        control &= ~_SACL_BITS
    body = bytearray()
    offsets = [0, 0, 0, 0]  # owner, group, sacl, dacl
    for idx, bit, blob in (
        (2, SACL, sd.sacl),
        (3, DACL, sd.dacl),
        (0, OWNER, sd.owner),
        (1, GROUP, sd.group),
    ):
        if parts & bit and blob is not None:
            offsets[idx] = _HEADER.size + len(body)
            body += blob
    return _HEADER.pack(1, 0, control, *offsets) + bytes(body)


def _acl(aces: list[tuple[int, int, int, bytes]]) -> bytes:
    body = b"".join(_ACE.pack(t, f, _ACE.size + len(sid), mask) + sid for t, f, mask, sid in aces)
    return _ACL.pack(2, 0, _ACL.size + len(body), len(aces), 0) + body


def default_descriptor() -> SecurityDescriptor:
    """What a file without a stored descriptor has: owned by Administrators, group Users,
    Everyone allowed FILE_ALL_ACCESS."""
    return SecurityDescriptor(
        control=SE_SELF_RELATIVE | SE_DACL_PRESENT,
        owner=ADMINISTRATORS,
        group=USERS,
        dacl=_acl([(ACCESS_ALLOWED_ACE_TYPE, 0, FILE_ALL_ACCESS, EVERYONE)]),
    )


def merge(old: SecurityDescriptor, new: SecurityDescriptor, parts: int) -> SecurityDescriptor:
    """SET_INFO with SecurityInformation ``parts``: those parts of ``new`` replace ``old``'s.
    A DACL set without SE_DACL_PRESENT becomes a NULL DACL, as on Windows."""
    sd = old
    if parts & OWNER and new.owner is not None:
        sd = replace(sd, owner=new.owner)
    if parts & GROUP and new.group is not None:
        sd = replace(sd, group=new.group)
    if parts & DACL:
        control = (sd.control & ~_DACL_BITS) | (new.control & _DACL_BITS) | SE_DACL_PRESENT
        sd = replace(sd, control=control, dacl=new.dacl if new.control & SE_DACL_PRESENT else None)
    if parts & SACL:
        control = (sd.control & ~_SACL_BITS) | (new.control & _SACL_BITS)
        sd = replace(sd, control=control, sacl=new.sacl)
    return sd


def for_new_file(given: SecurityDescriptor | None) -> SecurityDescriptor:
    """The descriptor of a file created with the SecD context ``given``: the parts it
    leaves out come from the default (a DACL is always present on a new file)."""
    base = default_descriptor()
    if given is None:
        return base
    parts = OWNER | GROUP | SACL | (DACL if given.control & SE_DACL_PRESENT else 0)
    return merge(base, given, parts)


def aces(acl: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, mask, SID) of each ACE of a parsed ACL."""
    out = []
    _, _, _, count, _ = _ACL.unpack_from(acl)
    pos = _ACL.size
    for _ in range(count):
        t, f, size, mask = _ACE.unpack_from(acl, pos)
        out.append((t, f, mask, acl[pos + _ACE.size : pos + size]))
        pos += size
    return out


def access_allowed(sd: SecurityDescriptor, token: frozenset[bytes] = DEFAULT_TOKEN) -> int:
    """The access mask ``token`` is granted by ``sd`` ([MS-DTYP] 2.5.3.2, the
    MAXIMUM_ALLOWED walk): ACEs in order, a deny only taking what no earlier allow gave;
    the owner always keeps READ_CONTROL and WRITE_DAC, administrators WRITE_OWNER; no DACL
    (or a NULL one) allows all."""
    if sd.dacl is None:
        return FILE_ALL_ACCESS
    granted = denied = 0
    if sd.owner in token:
        granted |= READ_CONTROL | WRITE_DAC
    if ADMINISTRATORS in token:
        granted |= WRITE_OWNER  # SeTakeOwnershipPrivilege
    # FILE_DELETE_CHILD on the parent grants DELETE whatever the file's DACL says; parents
    # carry the default descriptor (or the client's), so deleting stays possible
    granted |= DELETE
    for t, flags, mask, sid in aces(sd.dacl):
        if flags & INHERIT_ONLY_ACE or sid not in token:
            continue
        mask = map_generic_access(mask)
        if t == ACCESS_ALLOWED_ACE_TYPE:
            granted |= mask & ~denied
        elif t == ACCESS_DENIED_ACE_TYPE:
            denied |= mask & ~granted
    return granted & FILE_ALL_ACCESS
