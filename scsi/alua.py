"""Asymmetric logical unit access (SPC-4 5.15).

Target port groups, their access states, which commands each state admits
(SPC-4 5.15.2.4 - 5.15.2.6), and the REPORT/SET TARGET PORT GROUPS formats
(SPC-4 6.37, 6.45).  Pure: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from .cdb import Op, Sa
from .sense import Asc, SenseError, SenseKey

__all__ = [
    "AluaState",
    "TargetPortGroup",
    "check_access",
    "encode_rtpg",
    "parse_stpg",
]


class AluaState(IntEnum):
    """SPC-4 table 179: ASYMMETRIC ACCESS STATE."""

    ACTIVE_OPTIMIZED = 0x0
    ACTIVE_NON_OPTIMIZED = 0x1
    STANDBY = 0x2
    UNAVAILABLE = 0x3
    OFFLINE = 0xE
    TRANSITIONING = 0xF

    @classmethod
    def parse(cls, text: str) -> AluaState:
        names = {
            "ao": cls.ACTIVE_OPTIMIZED,
            "active/optimized": cls.ACTIVE_OPTIMIZED,
            "active_optimized": cls.ACTIVE_OPTIMIZED,
            "ano": cls.ACTIVE_NON_OPTIMIZED,
            "active/non-optimized": cls.ACTIVE_NON_OPTIMIZED,
            "active_non_optimized": cls.ACTIVE_NON_OPTIMIZED,
            "standby": cls.STANDBY,
            "unavailable": cls.UNAVAILABLE,
            "offline": cls.OFFLINE,
            "transitioning": cls.TRANSITIONING,
        }
        try:
            return names[text.strip().lower()]
        except KeyError:
            raise ValueError(f"unknown ALUA state {text!r}") from None


# SPC-4 6.37 table 180: the states this target supports (T, O, U, S, AN, AO).
SUPPORTED_BITS = 0x80 | 0x40 | 0x08 | 0x04 | 0x02 | 0x01


@dataclass
class TargetPortGroup:
    """A target port group: its id, state, and the relative target ports in it."""

    group_id: int
    ports: list[int] = field(default_factory=list)
    state: AluaState = AluaState.ACTIVE_OPTIMIZED
    preferred: bool = False
    # STATUS CODE of the last change: 0 none, 1 by STPG, 2 implicit.
    status_code: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "group_id": self.group_id,
            "ports": list(self.ports),
            "state": self.state.name.lower(),
            "preferred": self.preferred,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> TargetPortGroup:
        ports = d.get("ports", [])
        assert isinstance(ports, list)
        return cls(
            group_id=int(str(d["group_id"])),
            ports=[int(p) for p in ports],
            state=AluaState.parse(str(d.get("state", "ao"))),
            preferred=bool(d.get("preferred", False)),
        )


# Commands admitted in each non-active state (SPC-4 5.15.2.4 - 5.15.2.6; the same
# lists as LIO's core_alua_state_*).  Keys are (opcode, service action or None).
_COMMON = {
    (Op.INQUIRY, None),
    (Op.REPORT_LUNS, None),
    (Op.MAINTENANCE_IN, Sa.REPORT_TARGET_PORT_GROUPS),
    (Op.MAINTENANCE_IN, Sa.REPORT_SUPPORTED_OPCODES),
    (Op.MAINTENANCE_IN, Sa.REPORT_SUPPORTED_TMFS),
    (Op.REQUEST_SENSE, None),
    (Op.READ_BUFFER, None),
    (Op.WRITE_BUFFER, None),
}
_UNAVAILABLE = _COMMON | {(Op.MAINTENANCE_OUT, Sa.SET_TARGET_PORT_GROUPS)}
_STANDBY = _UNAVAILABLE | {
    (Op.MODE_SENSE_6, None),
    (Op.MODE_SENSE_10, None),
    (Op.MODE_SELECT_6, None),
    (Op.MODE_SELECT_10, None),
    (Op.READ_CAPACITY_10, None),
    (Op.SERVICE_ACTION_IN_16, Sa.READ_CAPACITY_16),
    (Op.PERSISTENT_RESERVE_IN, None),
    (Op.PERSISTENT_RESERVE_OUT, None),
}
_ALLOWED = {
    AluaState.STANDBY: (_STANDBY, Asc.LU_NOT_READY_TARGET_PORT_STANDBY),
    AluaState.UNAVAILABLE: (_UNAVAILABLE, Asc.LU_NOT_READY_TARGET_PORT_UNAVAILABLE),
    AluaState.TRANSITIONING: (_COMMON, Asc.LU_NOT_READY_ALUA_TRANSITION),
    AluaState.OFFLINE: (_COMMON, Asc.LU_NOT_READY_OFFLINE),
}
_SA_OPS = {Op.MAINTENANCE_IN, Op.MAINTENANCE_OUT, Op.SERVICE_ACTION_IN_16}


def check_access(state: AluaState, cdb: bytes | memoryview) -> None:
    """Raise NOT READY with the state's ASC/ASCQ unless the command is admitted."""
    if state <= AluaState.ACTIVE_NON_OPTIMIZED:
        return
    allowed, code = _ALLOWED[state]
    op = cdb[0]
    sa = (cdb[1] & 0x1F) if op in _SA_OPS and len(cdb) > 1 else None
    if (op, sa) in allowed or (op, None) in allowed:
        return
    raise SenseError(SenseKey.NOT_READY, *code)


_RTPG_HDR = struct.Struct(">I")
_RTPG_EXT_HDR = struct.Struct(">IBBH")
_TPG_DESC = struct.Struct(">BBHBBBB")


def encode_rtpg(
    groups: Iterable[tuple[TargetPortGroup, AluaState]],
    *,
    extended: bool,
    implicit_transition_secs: int = 0,
) -> bytes:
    """REPORT TARGET PORT GROUPS parameter data (SPC-4 6.37 tables 177, 178)."""
    body = bytearray()
    for g, state in groups:
        body += _TPG_DESC.pack(
            (0x80 if g.preferred else 0) | int(state),
            SUPPORTED_BITS,
            g.group_id,
            0,
            g.status_code,
            0,
            len(g.ports),
        )
        for rtpi in g.ports:
            body += struct.pack(">HH", 0, rtpi)
    if extended:
        hdr = _RTPG_EXT_HDR.pack(len(body) + 4, 0x10, implicit_transition_secs & 0xFF, 0)
    else:
        hdr = _RTPG_HDR.pack(len(body))
    return bytes(hdr) + bytes(body)


def parse_stpg(data: bytes | memoryview) -> list[tuple[int, AluaState]]:
    """SET TARGET PORT GROUPS parameter list (SPC-4 6.45 table 250): a 4-byte
    header, then 4-byte descriptors (state, reserved, TPG).  Only states 0-3 may
    be requested (26/00 otherwise)."""
    if len(data) < 4 or (len(data) - 4) % 4:
        raise SenseError.param_list_length()
    out: list[tuple[int, AluaState]] = []
    for off in range(4, len(data), 4):
        state = data[off] & 0x0F
        if state > AluaState.UNAVAILABLE:
            raise SenseError.invalid_param(off, 3)
        tpg = (data[off + 2] << 8) | data[off + 3]
        out.append((tpg, AluaState(state)))
    return out
