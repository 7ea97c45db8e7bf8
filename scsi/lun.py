"""Logical units: a backend plus the per-LU SCSI state (identity, mode
parameters, reservations).

The definition (:meth:`LogicalUnit.to_dict`) and the persistent-reservation
state (:meth:`LogicalUnit.pr.to_dict`) are plain dicts the application stores
atomically; :meth:`LogicalUnit.from_dict` rebuilds a unit around a backend.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import trio

from .backend import Backend
from .modepages import ModePages
from .pr import PersistentReservations

__all__ = ["LogicalUnit", "LuIdentity"]

# IEEE company ID used in the NAA 6 designator (a locally administered value
# derived from "vmstor"; change it with the LU definition when one is assigned).
DEFAULT_OUI = 0x001405


@dataclass
class LuIdentity:
    """What INQUIRY tells about the unit (SPC-4 6.4.2, 7.8.6)."""

    name: str
    serial: str
    naa_id: int  # 64 bits of vendor-specific identifier in the NAA 6 designator
    vendor: str = "VMSTOR"
    product: str = "vmstor-lun"
    revision: str = "0001"

    @classmethod
    def for_name(cls, name: str) -> LuIdentity:
        digest = hashlib.sha256(name.encode()).digest()
        return cls(
            name=name,
            serial=digest[:8].hex(),
            naa_id=int.from_bytes(digest[8:16], "big"),
        )

    def naa_bytes(self) -> bytes:
        """NAA 6 IEEE Registered Extended (SPC-4 7.8.6.6.5): 16 bytes."""
        # NAA(4) | OUI(24) | vendor specific id (36 bits) | extension (64 bits)
        head = (0x6 << 60) | (DEFAULT_OUI << 36) | ((self.naa_id >> 28) & 0xFFFFFFFFF)
        return head.to_bytes(8, "big") + (self.naa_id & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


@dataclass(eq=False)
class LogicalUnit:
    """One block logical unit (SBC-3) over a :class:`~scsi.backend.Backend`."""

    name: str
    backend: Backend
    identity: LuIdentity = field(default_factory=lambda: LuIdentity("", "", 0))
    read_only: bool = False
    pr: PersistentReservations = field(default_factory=PersistentReservations)
    mode: ModePages = field(default_factory=ModePages)
    # SPC-2 RESERVE(6)/RELEASE(6) holder: an I_T nexus key, or None.
    reserved_by: tuple[str, int] | None = None
    # Per-TPG ALUA state overrides for this unit (group id -> state); groups not
    # listed use the target-wide state.
    alua_override: dict[int, int] = field(default_factory=dict)
    # Block-level statistics.
    stats: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.identity.name:
            self.identity = LuIdentity.for_name(self.name)
        self.caw_lock = trio.Lock()
        for k in ("read_ops", "write_ops", "read_bytes", "write_bytes", "unmap_ops"):
            self.stats.setdefault(k, 0)

    @property
    def block_size(self) -> int:
        return self.backend.block_size

    @property
    def num_blocks(self) -> int:
        return self.backend.num_blocks

    @property
    def thin(self) -> bool:
        return self.backend.thin

    def to_dict(self) -> dict[str, object]:
        """The unit's definition (the backend's location is the application's)."""
        return {
            "name": self.name,
            "serial": self.identity.serial,
            "naa_id": f"{self.identity.naa_id:016x}",
            "vendor": self.identity.vendor,
            "product": self.identity.product,
            "revision": self.identity.revision,
            "read_only": self.read_only,
            "block_size": self.block_size,
            "thin": self.thin,
            "alua_override": {str(k): v for k, v in self.alua_override.items()},
            "pr": self.pr.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object], backend: Backend) -> LogicalUnit:
        name = str(d["name"])
        ident = LuIdentity(
            name=name,
            serial=str(d.get("serial") or LuIdentity.for_name(name).serial),
            naa_id=int(str(d.get("naa_id") or f"{LuIdentity.for_name(name).naa_id:x}"), 16),
            vendor=str(d.get("vendor", "VMSTOR")),
            product=str(d.get("product", "vmstor-lun")),
            revision=str(d.get("revision", "0001")),
        )
        pr_state = d.get("pr")
        pr = PersistentReservations()
        if isinstance(pr_state, dict) and pr_state.get("aptpl"):
            pr = PersistentReservations.from_dict(pr_state)
        over = d.get("alua_override") or {}
        assert isinstance(over, dict)
        return cls(
            name=name,
            backend=backend,
            identity=ident,
            read_only=bool(d.get("read_only", False)),
            pr=pr,
            alua_override={int(k): int(v) for k, v in over.items()},
        )
