"""srvsvc ([MS-SRVS]), interface 4b324fc8-1670-01d3-1278-5a47bf6ee188 v3.0: the share and
server information clients ask for when they browse a server.

NetrShareEnum (opnum 15) and NetrShareEnumSticky (36) levels 0, 1, 2, 501 and 502;
NetrShareGetInfo (16) levels 0, 1, 2, 501, 502 and 1005; NetrShareCheck (20);
NetrServerGetInfo (21) levels 100, 101 and 102. Level 502 carries no security descriptor
(access is the tree connect's). Other opnums are answered with the fault
nca_s_op_rng_error by the association. Shares are listed as the server's share
configuration has them (every configured share is visible, as in Samba's default
``browseable = yes``), then IPC$ (whose path is empty).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Final

from smbd.rpc.ndr import NdrError, NdrReader, NdrWriter
from smbd.rpc.pdu import SyntaxId
from smbd.rpc.pipe import Interface, ServerEnv, ShareEntry

__all__ = [
    "INTERFACE",
    "STYPE_DISKTREE",
    "STYPE_IPC",
    "STYPE_SPECIAL",
    "SYNTAX",
]

SYNTAX: Final = SyntaxId(uuid.UUID("4b324fc8-1670-01d3-1278-5a47bf6ee188"), 3, 0)

# [MS-SRVS] 2.2.2.4 share types
STYPE_DISKTREE: Final = 0x00000000
STYPE_IPC: Final = 0x00000003
STYPE_SPECIAL: Final = 0x80000000

# [MS-SRVS] 2.2.2.5 SHI1005 flags ([MS-SMB2] 2.2.10 ShareFlags use the same values)
SHI1005_FLAGS_CSC_NONE: Final = 0x00000030
SHI1005_FLAGS_ENCRYPT_DATA: Final = 0x00008000

# [MS-SRVS] 2.2.2.6 platform id, 2.2.2.7 server types
PLATFORM_ID_NT: Final = 500
SV_TYPE_WORKSTATION: Final = 0x00000001
SV_TYPE_SERVER: Final = 0x00000002
SV_TYPE_NT: Final = 0x00001000
SV_TYPE_SERVER_NT: Final = 0x00008000
SERVER_TYPE: Final = SV_TYPE_WORKSTATION | SV_TYPE_SERVER | SV_TYPE_NT | SV_TYPE_SERVER_NT

# Win32 error codes ([MS-ERREF] 2.2) and NERR ([MS-SRVS] 2.2.1)
ERROR_SUCCESS: Final = 0
ERROR_INVALID_LEVEL: Final = 124
NERR_NET_NAME_NOT_FOUND: Final = 2310
NERR_DEVICE_NOT_SHARED: Final = 2311

SHARE_ENUM_LEVELS: Final = frozenset((0, 1, 2, 501, 502))
SHARE_INFO_LEVELS: Final = frozenset((0, 1, 2, 501, 502, 1005))
SERVER_INFO_LEVELS: Final = frozenset((100, 101, 102))


# -- SHARE_INFO_x ([MS-SRVS] 2.2.4.22 - 2.2.4.29) ---------------------------------------------


def _share_info(w: NdrWriter, level: int, s: ShareEntry) -> None:
    """The scalars of SHARE_INFO_<level>; the strings are queued as referents."""
    if level == 1005:
        w.u32(s.flags)
        return
    w.unique_string(s.name)
    if level == 0:
        return
    w.u32(s.type)
    w.unique_string(s.comment)
    if level == 1:
        return
    if level == 501:
        w.u32(s.flags)
        return
    # levels 2 and 502
    w.u32(0)  # permissions (ignored by servers of user-level security)
    w.u32(0xFFFFFFFF)  # max_uses: unlimited
    w.u32(0)  # current_uses
    w.unique_string(s.path)
    w.unique_string(None)  # passwd
    if level == 502:
        w.u32(0)  # shi502_reserved: the security descriptor's size
        w.u32(0)  # shi502_security_descriptor: none (the share grants what the tree does)


def _share_array(w: NdrWriter, level: int, shares: tuple[ShareEntry, ...]) -> None:
    w.u32(len(shares))  # conformant array: max_count
    for s in shares:
        _share_info(w, level, s)


def _container(w: NdrWriter, level: int, shares: tuple[ShareEntry, ...]) -> None:
    """SHARE_INFO_<level>_CONTAINER: EntriesRead, [size_is(EntriesRead)] Buffer*."""
    w.u32(len(shares))
    w.unique(shares, lambda v: _share_array(w, level, v))


def _server_name(r: NdrReader) -> str | None:
    return r.unique_string()


def net_share_enum(r: NdrReader, env: ServerEnv, *, sticky: bool = False) -> bytes:
    """NetrShareEnum (opnum 15, [MS-SRVS] 3.1.4.8); with ``sticky``, NetrShareEnumSticky
    (opnum 36, 3.1.4.9): the same call, listing the shares kept in the configuration
    (every disk share; not IPC$, which the server makes itself)."""
    _server_name(r)
    level = r.u32()  # SHARE_ENUM_STRUCT.Level
    tag = r.u32()  # the union's discriminant
    if tag != level:
        raise NdrError(f"SHARE_ENUM_STRUCT level {level} with union arm {tag}")
    if r.pointer():  # the container the client sends: EntriesRead, Buffer (NULL)
        r.u32()
        if r.pointer():
            raise NdrError("NetrShareEnum with an input share array")
    r.u32()  # PreferedMaximumLength: everything fits in one answer
    resume = r.u32() if r.pointer() else None
    r.end()

    w = NdrWriter()
    shares = None
    if level in SHARE_ENUM_LEVELS:
        shares = tuple(s for s in env.shares if not (sticky and s.type & STYPE_SPECIAL))
    with w.top():  # [in, out] LPSHARE_ENUM_STRUCT InfoStruct
        w.u32(level)
        w.u32(level)
        w.unique(shares, lambda v: _container(w, level, v))
    w.u32(len(shares) if shares is not None else 0)  # TotalEntries
    with w.top():  # [in, out, unique] DWORD* ResumeHandle
        w.unique(0 if resume is not None else None, w.u32)
    w.u32(ERROR_SUCCESS if shares is not None else ERROR_INVALID_LEVEL)
    return w.getvalue()


def _find(env: ServerEnv, name: str) -> ShareEntry | None:
    key = name.lower()
    return next((s for s in env.shares if s.name.lower() == key), None)


def net_share_get_info(r: NdrReader, env: ServerEnv) -> bytes:
    """NetrShareGetInfo (opnum 16, [MS-SRVS] 3.1.4.10)."""
    _server_name(r)
    name = r.string()  # [in, string] WCHAR* NetName (a [ref] pointer: no referent id)
    level = r.u32()
    r.end()
    share = _find(env, name)
    status = ERROR_SUCCESS
    if level not in SHARE_INFO_LEVELS:
        share, status = None, ERROR_INVALID_LEVEL
    elif share is None:
        status = NERR_NET_NAME_NOT_FOUND
    w = NdrWriter()
    with w.top():  # [out, switch_is(Level)] LPSHARE_INFO InfoStruct
        w.u32(level)
        w.unique(share, lambda s: _share_info(w, level, s))
    w.u32(status)
    return w.getvalue()


def _server_info(w: NdrWriter, level: int, env: ServerEnv) -> None:
    """SERVER_INFO_100 / 101 / 102 ([MS-SRVS] 2.2.4.40 - 2.2.4.42)."""
    w.u32(PLATFORM_ID_NT)
    w.unique_string(env.server_name)
    if level == 100:
        return
    w.u32(env.version[0])
    w.u32(env.version[1])
    w.u32(SERVER_TYPE)
    w.unique_string(env.comment)
    if level == 101:
        return
    w.u32(0xFFFFFFFF)  # sv102_users
    w.i32(-1)  # sv102_disc: never auto-disconnect
    w.u32(0)  # sv102_hidden
    w.u32(240)  # sv102_announce (seconds)
    w.u32(3000)  # sv102_anndelta (milliseconds)
    w.u32(0)  # sv102_licenses
    w.unique_string("C:\\")  # sv102_userpath


def net_server_get_info(r: NdrReader, env: ServerEnv) -> bytes:
    """NetrServerGetInfo (opnum 21, [MS-SRVS] 3.1.4.17)."""
    _server_name(r)
    level = r.u32()
    r.end()
    ok = level in SERVER_INFO_LEVELS
    w = NdrWriter()
    with w.top():  # [out, switch_is(Level)] LPSERVER_INFO InfoStruct
        w.u32(level)
        w.unique(env if ok else None, lambda e: _server_info(w, level, e))
    w.u32(ERROR_SUCCESS if ok else ERROR_INVALID_LEVEL)
    return w.getvalue()


def net_share_check(r: NdrReader, env: ServerEnv) -> bytes:
    """NetrShareCheck (opnum 20, [MS-SRVS] 3.1.4.16): is this local path shared?"""
    _server_name(r)
    device = r.string()
    r.end()
    key = device.rstrip("\\").lower()
    share = next((s for s in env.shares if s.path.rstrip("\\").lower() == key), None)
    w = NdrWriter()
    w.u32(share.type if share is not None else 0)
    w.u32(ERROR_SUCCESS if share is not None else NERR_DEVICE_NOT_SHARED)
    return w.getvalue()


def net_share_enum_sticky(r: NdrReader, env: ServerEnv) -> bytes:
    return net_share_enum(r, env, sticky=True)


OPERATIONS: Final[dict[int, Callable[[NdrReader, ServerEnv], bytes]]] = {
    15: net_share_enum,
    16: net_share_get_info,
    20: net_share_check,
    21: net_server_get_info,
    36: net_share_enum_sticky,
}

INTERFACE: Final = Interface("srvsvc", SYNTAX, OPERATIONS)
