"""wkssvc ([MS-WKST]), interface 6bffd098-a112-3610-9833-46c3f87e345a v1.0:
NetrWkstaGetInfo (opnum 0) levels 100 (what clients ask of a server's workstation service),
101 and 102. Other levels answer ERROR_INVALID_LEVEL; other opnums get the fault
nca_s_op_rng_error."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Final

from smbd.rpc.ndr import NdrReader, NdrWriter
from smbd.rpc.pdu import SyntaxId
from smbd.rpc.pipe import Interface, ServerEnv

__all__ = ["INTERFACE", "SYNTAX"]

SYNTAX: Final = SyntaxId(uuid.UUID("6bffd098-a112-3610-9833-46c3f87e345a"), 1, 0)
PLATFORM_ID_NT: Final = 500
ERROR_SUCCESS: Final = 0
ERROR_INVALID_LEVEL: Final = 124


LEVELS: Final = frozenset((100, 101, 102))


def _wksta_info(w: NdrWriter, level: int, env: ServerEnv) -> None:
    """WKSTA_INFO_100 / 101 / 102 ([MS-WKST] 2.2.5.1 - 2.2.5.3)."""
    w.u32(PLATFORM_ID_NT)
    w.unique_string(env.server_name)  # computername
    w.unique_string(env.domain)  # langroup
    w.u32(env.version[0])
    w.u32(env.version[1])
    if level == 100:
        return
    w.unique_string("C:\\")  # wki101_lanroot
    if level == 102:
        w.u32(0)  # wki102_logged_on_users: no interactive users on a server


def net_wksta_get_info(r: NdrReader, env: ServerEnv) -> bytes:
    """NetrWkstaGetInfo (opnum 0, [MS-WKST] 3.2.4.1)."""
    r.unique_string()  # ServerName
    level = r.u32()
    r.end()
    ok = level in LEVELS
    w = NdrWriter()
    with w.top():  # [out, switch_is(Level)] LPWKSTA_INFO WkstaInfo
        w.u32(level)
        w.unique(env if ok else None, lambda e: _wksta_info(w, level, e))
    w.u32(ERROR_SUCCESS if ok else ERROR_INVALID_LEVEL)
    return w.getvalue()


OPERATIONS: Final[dict[int, Callable[[NdrReader, ServerEnv], bytes]]] = {0: net_wksta_get_info}

INTERFACE: Final = Interface("wkssvc", SYNTAX, OPERATIONS)
