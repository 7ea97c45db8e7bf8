"""Persistent reservations (SPC-4 5.9, 6.15, 6.16).

A sans-IO model of one logical unit's registrations and reservation.  The
target calls :meth:`PersistentReservations.out` for PERSISTENT RESERVE OUT,
:meth:`PersistentReservations.read` for PERSISTENT RESERVE IN and
:meth:`PersistentReservations.conflicts` before every other command.  Unit
attentions for other nexuses come back as a list of
``(nexus key, (asc, ascq))`` for the target to queue.

Registrations are keyed by I_T nexus: (initiator port name, relative target
port).  The reservation is shared by all target ports (and so all paths).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from .sense import Asc, SenseError

__all__ = [
    "PersistentReservations",
    "PrIn",
    "PrOut",
    "PrOutParams",
    "PrType",
    "ReservationConflictError",
    "parse_pr_out",
]

NexusKey = tuple[str, int]
Ua = tuple[NexusKey, tuple[int, int]]

MAX_REGISTRATIONS = 1024  # per LU; more get INSUFFICIENT REGISTRATION RESOURCES


class PrIn(IntEnum):
    READ_KEYS = 0
    READ_RESERVATION = 1
    REPORT_CAPABILITIES = 2
    READ_FULL_STATUS = 3


class PrOut(IntEnum):
    REGISTER = 0
    RESERVE = 1
    RELEASE = 2
    CLEAR = 3
    PREEMPT = 4
    PREEMPT_AND_ABORT = 5
    REGISTER_AND_IGNORE = 6
    REGISTER_AND_MOVE = 7


class PrType(IntEnum):
    """SPC-4 table 173."""

    WRITE_EXCLUSIVE = 1
    EXCLUSIVE_ACCESS = 3
    WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 5
    EXCLUSIVE_ACCESS_REGISTRANTS_ONLY = 6
    WRITE_EXCLUSIVE_ALL_REGISTRANTS = 7
    EXCLUSIVE_ACCESS_ALL_REGISTRANTS = 8

    @property
    def all_registrants(self) -> bool:
        return self in (
            PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS,
            PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS,
        )

    @property
    def registrants_share(self) -> bool:
        """RO and AR types: every registrant has the holder's access."""
        return self >= PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY

    @property
    def exclusive_access(self) -> bool:
        return self in (
            PrType.EXCLUSIVE_ACCESS,
            PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY,
            PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS,
        )


class ReservationConflictError(Exception):
    """The command ends with RESERVATION CONFLICT status."""


class PrOutParams(NamedTuple):
    """PERSISTENT RESERVE OUT parameter list (SPC-4 6.16.3)."""

    key: int
    sa_key: int
    spec_i_pt: bool
    all_tg_pt: bool
    aptpl: bool
    # REGISTER AND MOVE (SPC-4 6.16.4): destination port and initiator.
    unreg: bool = False
    rtpi: int = 0
    transport_id: str = ""


_BASIC = struct.Struct(">QQ4sBBH")  # 24 bytes


def _parse_transport_id(data: bytes | memoryview) -> str:
    """An iSCSI TransportID (SPC-4 7.6.4.6): FORMAT CODE 00b (name) or 01b
    (name,i,0x<ISID>); returns the name as given."""
    if len(data) < 4:
        raise SenseError.param_list_length()
    proto = data[0] & 0x0F
    fmt = data[0] >> 6
    if proto != 0x5 or fmt not in (0, 1):
        raise SenseError.invalid_param(24)
    alen = int.from_bytes(data[2:4], "big")
    if alen < 4 or alen % 4 or 4 + alen > len(data):
        raise SenseError.invalid_param(26)
    raw = bytes(data[4 : 4 + alen]).split(b"\0", 1)[0]
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SenseError.invalid_param(28) from None
    if not name:
        raise SenseError.invalid_param(28)
    if fmt == 1:
        # Normalise "name,i,0x<isid>" separators as the Nexus builds them.
        parts = name.split(",")
        if len(parts) != 3 or parts[1].lower() != "i":
            raise SenseError.invalid_param(28)
        name = f"{parts[0]},i,{parts[2].lower()}"
    return name


def encode_transport_id(initiator_port: str) -> bytes:
    """iSCSI TransportID for ``initiator_port`` (FORMAT CODE 01b if it carries
    an ISID, else 00b), padded to a multiple of 4 bytes."""
    fmt = 0x40 if ",i," in initiator_port else 0x00
    name = initiator_port.encode() + b"\0"
    name += bytes(-len(name) % 4)
    return bytes((fmt | 0x05, 0)) + len(name).to_bytes(2, "big") + name


def parse_pr_out(sa: int, data: bytes | memoryview) -> PrOutParams:
    """PERSISTENT RESERVE OUT parameter list; raises SenseError only."""
    if sa == PrOut.REGISTER_AND_MOVE:
        if len(data) < 24:
            raise SenseError.param_list_length()
        key, sa_key = struct.unpack_from(">QQ", data, 0)
        flags = data[17]
        rtpi = int.from_bytes(data[18:20], "big")
        tid_len = int.from_bytes(data[20:24], "big")
        if len(data) < 24 + tid_len or tid_len < 24 - 4:
            raise SenseError.param_list_length()
        tid = _parse_transport_id(data[24 : 24 + tid_len])
        return PrOutParams(key, sa_key, False, False, bool(flags & 1), bool(flags & 2), rtpi, tid)
    if len(data) < 24:
        raise SenseError.param_list_length()
    key, sa_key, _obs, flags, _rsv, _obs2 = _BASIC.unpack_from(data, 0)
    spec_i_pt = bool(flags & 0x08)
    if not spec_i_pt and len(data) != 24:
        raise SenseError.param_list_length()
    return PrOutParams(key, sa_key, spec_i_pt, bool(flags & 0x04), bool(flags & 0x01))


@dataclass
class Registration:
    key: int
    initiator_port: str
    rtpi: int
    all_tg_pt: bool = False


class PersistentReservations:
    """Registrations and the persistent reservation of one logical unit."""

    def __init__(self) -> None:
        self.registrations: dict[NexusKey, Registration] = {}
        self.holder: NexusKey | None = None  # None with a type: all registrants
        self.type: PrType | None = None
        self.generation = 0
        self.aptpl = False

    # -- state queries ---------------------------------------------------------------

    @property
    def reserved(self) -> bool:
        return self.type is not None

    def is_holder(self, nexus: NexusKey) -> bool:
        if self.type is None:
            return False
        if self.type.all_registrants:
            return nexus in self.registrations
        return self.holder == nexus

    def conflicts(self, nexus: NexusKey, *, write: bool, read: bool) -> bool:
        """SPC-4 5.9.1 table 46: does a command of this class from ``nexus``
        conflict with the persistent reservation?"""
        t = self.type
        if t is None or self.is_holder(nexus):
            return False
        if t.registrants_share and nexus in self.registrations:
            return False
        if write:
            return True
        return read and t.exclusive_access

    # -- PERSISTENT RESERVE IN ----------------------------------------------------

    def read(self, sa: int) -> bytes:
        if sa == PrIn.READ_KEYS:
            keys = b"".join(struct.pack(">Q", r.key) for r in self.registrations.values())
            return struct.pack(">II", self.generation, len(keys)) + keys
        if sa == PrIn.READ_RESERVATION:
            if self.type is None:
                return struct.pack(">II", self.generation, 0)
            key = 0
            if not self.type.all_registrants and self.holder in self.registrations:
                key = self.registrations[self.holder].key
            return struct.pack(">IIQIBBH", self.generation, 16, key, 0, 0, int(self.type), 0)
        if sa == PrIn.REPORT_CAPABILITIES:
            # CRH=1, SIP_C=0, ATP_C=1, PTPL_C=1; TMV=1, ALLOW COMMANDS 000b,
            # PTPL_A; type mask: every type.
            return struct.pack(
                ">HBBBBH",
                8,
                0x10 | 0x04 | 0x01,
                0x80 | (0x01 if self.aptpl else 0),
                0x80 | 0x40 | 0x20 | 0x08 | 0x02,
                0x01,
                0,
            )
        if sa == PrIn.READ_FULL_STATUS:
            body = bytearray()
            for nk, r in self.registrations.items():
                tid = encode_transport_id(r.initiator_port)
                holder = self.is_holder(nk) and self.type is not None
                body += struct.pack(
                    ">Q4sBBIHI",
                    r.key,
                    b"",
                    (0x02 if r.all_tg_pt else 0) | (0x01 if holder else 0),
                    int(self.type) if holder and self.type is not None else 0,
                    0,
                    r.rtpi,
                    len(tid),
                )
                body += tid
            return struct.pack(">II", self.generation, len(body)) + bytes(body)
        raise SenseError.invalid_cdb(1, 4)

    # -- PERSISTENT RESERVE OUT ---------------------------------------------------

    def out(
        self,
        nexus: NexusKey,
        sa: int,
        scope: int,
        type_: int,
        p: PrOutParams,
        *,
        target_ports: Iterable[int] = (),
    ) -> list[Ua]:
        """Apply one PERSISTENT RESERVE OUT; returns the unit attentions to queue.

        Raises :class:`ReservationConflictError` or :class:`SenseError`."""
        if sa not in PrOut.__members__.values():
            raise SenseError.invalid_cdb(1, 4)
        sa = PrOut(sa)
        if p.spec_i_pt:
            # SIP_C=0 in REPORT CAPABILITIES.
            raise SenseError.invalid_param(20, 3)
        if sa in (PrOut.REGISTER, PrOut.REGISTER_AND_IGNORE):
            return self._register(nexus, sa, p, target_ports)
        if sa == PrOut.REGISTER_AND_MOVE:
            return self._register_and_move(nexus, scope, type_, p)
        reg = self.registrations.get(nexus)
        if reg is None or reg.key != p.key:
            raise ReservationConflictError
        if sa == PrOut.CLEAR:
            uas = [(nk, Asc.RESERVATIONS_PREEMPTED) for nk in self.registrations if nk != nexus]
            self.registrations.clear()
            self.holder = None
            self.type = None
            self.generation += 1
            return uas
        ptype = self._check_type(scope, type_)
        if sa == PrOut.RESERVE:
            if self.type is not None:
                if not self.is_holder(nexus):
                    raise ReservationConflictError
                if self.type != ptype:
                    raise ReservationConflictError
                return []
            self.type = ptype
            self.holder = None if ptype.all_registrants else nexus
            return []
        if sa == PrOut.RELEASE:
            if self.type is None or not self.is_holder(nexus):
                return []
            if self.type != ptype:
                raise SenseError.illegal(Asc.INVALID_RELEASE_OF_PERSISTENT_RESERVATION)
            return self._release(nexus)
        return self._preempt(nexus, ptype, p)

    def _check_type(self, scope: int, type_: int) -> PrType:
        if scope != 0:
            raise SenseError.invalid_cdb(2, 7)
        try:
            return PrType(type_)
        except ValueError:
            raise SenseError.invalid_cdb(2, 3) from None

    def _release(self, nexus: NexusKey) -> list[Ua]:
        """Drop the reservation; RO/AR types tell the other registrants (5.9.10.2)."""
        t = self.type
        self.type = None
        self.holder = None
        if t is not None and t.registrants_share:
            return [(nk, Asc.RESERVATIONS_RELEASED) for nk in self.registrations if nk != nexus]
        return []

    def _register(
        self, nexus: NexusKey, sa: PrOut, p: PrOutParams, target_ports: Iterable[int]
    ) -> list[Ua]:
        reg = self.registrations.get(nexus)
        if reg is None:
            if sa == PrOut.REGISTER and p.key != 0:
                raise ReservationConflictError
            if p.sa_key == 0:
                return []
            ports = sorted(set(target_ports) | {nexus[1]}) if p.all_tg_pt else [nexus[1]]
            if len(self.registrations) + len(ports) > MAX_REGISTRATIONS:
                raise SenseError.illegal(Asc.INSUFFICIENT_REGISTRATION_RESOURCES)
            for port in ports:
                self.registrations[(nexus[0], port)] = Registration(
                    p.sa_key, nexus[0], port, p.all_tg_pt
                )
            self.generation += 1
            self.aptpl = p.aptpl
            return []
        if sa == PrOut.REGISTER and p.key != reg.key:
            raise ReservationConflictError
        self.generation += 1
        self.aptpl = p.aptpl
        group = [nexus]
        if reg.all_tg_pt:
            group = [
                nk
                for nk, r in self.registrations.items()
                if r.initiator_port == nexus[0] and r.all_tg_pt
            ]
        if p.sa_key != 0:
            for nk in group:
                self.registrations[nk].key = p.sa_key
            return []
        # Unregister (SPC-4 5.9.11.3).
        uas: list[Ua] = []
        for nk in group:
            uas += self._unregister(nk)
        return uas

    def _unregister(self, nk: NexusKey) -> list[Ua]:
        del self.registrations[nk]
        t = self.type
        if t is None:
            return []
        if t.all_registrants:
            if not self.registrations:
                self.type = None
            return []
        if self.holder == nk:
            self.holder = None
            self.type = None
            if t.registrants_share:
                return [(o, Asc.RESERVATIONS_RELEASED) for o in self.registrations]
        return []

    def _preempt(self, nexus: NexusKey, ptype: PrType, p: PrOutParams) -> list[Ua]:
        """PREEMPT / PREEMPT AND ABORT (SPC-4 5.9.11.4)."""
        uas: list[Ua] = []

        def remove(match: int | None) -> list[NexusKey]:
            gone = [
                nk
                for nk, r in self.registrations.items()
                if nk != nexus and (match is None or r.key == match)
            ]
            for nk in gone:
                del self.registrations[nk]
                uas.append((nk, Asc.REGISTRATIONS_PREEMPTED))
            return gone

        t = self.type
        if t is None:
            if p.sa_key == 0:
                raise SenseError.invalid_param(8)
            if not remove(p.sa_key):
                raise ReservationConflictError
        elif t.all_registrants:
            if p.sa_key == 0:
                remove(None)
                self.type = ptype
                self.holder = None if ptype.all_registrants else nexus
            elif not remove(p.sa_key):
                raise ReservationConflictError
        else:
            holder_reg = self.registrations.get(self.holder) if self.holder else None
            if holder_reg is not None and holder_reg.key == p.sa_key:
                remove(p.sa_key)
                self.type = ptype
                self.holder = None if ptype.all_registrants else nexus
            else:
                if p.sa_key == 0:
                    raise SenseError.invalid_param(8)
                if not remove(p.sa_key):
                    raise ReservationConflictError
        self.generation += 1
        return uas

    def _register_and_move(
        self, nexus: NexusKey, scope: int, type_: int, p: PrOutParams
    ) -> list[Ua]:
        """REGISTER AND MOVE (SPC-4 5.9.8): hand the reservation to another I_T nexus."""
        reg = self.registrations.get(nexus)
        if reg is None:
            raise ReservationConflictError
        if reg.key != p.key:
            raise ReservationConflictError
        if self.type is None or not self.is_holder(nexus):
            raise ReservationConflictError
        if self.type.all_registrants:
            raise ReservationConflictError
        ptype = self._check_type(scope, type_)
        if p.sa_key == 0:
            raise SenseError.invalid_param(8)
        dest = (p.transport_id, p.rtpi)
        if dest == nexus:
            raise SenseError.invalid_param(24)
        dreg = self.registrations.get(dest)
        if dreg is None:
            self.registrations[dest] = Registration(p.sa_key, p.transport_id, p.rtpi)
        else:
            dreg.key = p.sa_key
        self.holder = dest
        self.type = ptype
        if p.unreg:
            del self.registrations[nexus]
        self.aptpl = p.aptpl
        self.generation += 1
        return []

    def nexus_key_for(self, initiator: str, initiator_port: str, rtpi: int) -> NexusKey:
        """The registration key a nexus matches: its port, or (after REGISTER
        AND MOVE with a name-only TransportID) its device name."""
        k = (initiator_port, rtpi)
        if k in self.registrations:
            return k
        alt = (initiator, rtpi)
        if alt in self.registrations:
            return alt
        return k

    # -- persistence --------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        return {
            "aptpl": self.aptpl,
            "generation": self.generation,
            "type": int(self.type) if self.type is not None else None,
            "holder": list(self.holder) if self.holder is not None else None,
            "registrations": [
                {
                    "key": f"{r.key:016x}",
                    "initiator_port": r.initiator_port,
                    "rtpi": r.rtpi,
                    "all_tg_pt": r.all_tg_pt,
                }
                for r in self.registrations.values()
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> PersistentReservations:
        pr = cls()
        pr.aptpl = bool(d.get("aptpl", False))
        pr.generation = int(str(d.get("generation", 0)))
        t = d.get("type")
        pr.type = PrType(int(str(t))) if t is not None else None
        h = d.get("holder")
        if isinstance(h, list) and len(h) == 2:
            pr.holder = (str(h[0]), int(h[1]))
        regs = d.get("registrations") or []
        assert isinstance(regs, list)
        for r in regs:
            assert isinstance(r, dict)
            reg = Registration(
                int(str(r["key"]), 16),
                str(r["initiator_port"]),
                int(r["rtpi"]),
                bool(r.get("all_tg_pt", False)),
            )
            pr.registrations[(reg.initiator_port, reg.rtpi)] = reg
        return pr
