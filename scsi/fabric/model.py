"""The virtual Fibre Channel fabric: Hyper-V's object model carried over iSCSI.

- A **virtual SAN** is a named fabric: a set of target ports (iSCSI portal group tags);
  empty means every portal of the target.
- A **vHBA** belongs to one VM (at most :data:`MAX_VHBAS_PER_VM`) and one vSAN, and has two
  address sets, A and B, each a (WWNN, WWPN) pair from the pool (Hyper-V's ``C0:03:FF``
  prefix by default). One set is active; a live migration logs in with the other one
  first, so both sets are always zoned and masked alike.
- A vHBA port logs in with the initiator name ``naa.<wwpn hex>`` (RFC 3980).
- **Zoning** lists which WWPNs may reach which target ports of a vSAN; it is checked at login.
- **LUN masking** maps a WWPN to the LUN ids it may see (REPORT LUNS, every command).

Pure data and policy: no I/O. Persistence is :meth:`Fabric.to_dict` / :meth:`Fabric.from_dict`,
written atomically by the application.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_VHBAS_PER_VM = 4
DEFAULT_PREFIX = 0xC003FF  # NAA 0xC (EUI-64 mapped) + Microsoft OUI 00-03-FF
_NAA = re.compile(r"^naa\.([0-9a-fA-F]{16})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class FabricError(Exception):
    """A fabric change that cannot be made; the message says why."""


def format_wwn(wwn: int) -> str:
    """``0xC003FF0000000001`` -> ``c0:03:ff:00:00:00:00:01``."""
    return ":".join(f"{b:02x}" for b in wwn.to_bytes(8, "big"))


def parse_wwn(text: str) -> int:
    digits = text.replace(":", "").replace("-", "").lower().removeprefix("0x")
    if len(digits) != 16 or not all(c in "0123456789abcdef" for c in digits):
        raise FabricError(f"bad WWN {text!r}: want 16 hex digits")
    return int(digits, 16)


def initiator_name(wwpn: int) -> str:
    """The iSCSI initiator name of a vHBA port (RFC 3980 ``naa.`` form)."""
    return f"naa.{wwpn:016x}"


def wwpn_of(name: str) -> int | None:
    """The WWPN in an ``naa.`` initiator name, or None for other names (IQN, EUI)."""
    m = _NAA.match(name.strip())
    return int(m.group(1), 16) if m else None


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise FabricError(f"bad {kind} name {name!r}: letters, digits, . _ : - (max 64)")
    return name


@dataclass
class VirtualSan:
    name: str
    ports: list[int] = field(default_factory=list)  # portal group tags; empty = all

    def reaches(self, tag: int) -> bool:
        return not self.ports or tag in self.ports


@dataclass
class VHba:
    vm: str
    index: int
    vsan: str
    wwnn_a: int
    wwpn_a: int
    wwnn_b: int
    wwpn_b: int
    active: str = "A"

    @property
    def wwpns(self) -> tuple[int, int]:
        return (self.wwpn_a, self.wwpn_b)

    @property
    def active_wwpn(self) -> int:
        return self.wwpn_a if self.active == "A" else self.wwpn_b

    @property
    def active_wwnn(self) -> int:
        return self.wwnn_a if self.active == "A" else self.wwnn_b


@dataclass
class Zone:
    name: str
    vsan: str
    members: list[int] = field(default_factory=list)  # WWPNs
    ports: list[int] = field(default_factory=list)  # portal group tags; empty = vSAN's


@dataclass
class Fabric:
    """All virtual SANs, vHBAs, zones and masks of one target."""

    prefix: int = DEFAULT_PREFIX
    next_serial: int = 1
    vsans: dict[str, VirtualSan] = field(default_factory=dict)
    vhbas: dict[str, list[VHba]] = field(default_factory=dict)
    zones: dict[str, Zone] = field(default_factory=dict)
    masks: dict[int, set[int]] = field(default_factory=dict)  # WWPN -> LUN ids
    # Initiator names outside the fabric (plain IQNs) that see every LUN on every port.
    open_initiators: set[str] = field(default_factory=set)

    # --------------------------------------------------------------------- access checks

    def vhba_of(self, wwpn: int) -> VHba | None:
        for hbas in self.vhbas.values():
            for h in hbas:
                if wwpn in h.wwpns:
                    return h
        return None

    def authorize(self, initiator: str, tag: int) -> bool:
        """Zoning (checked at login): may ``initiator`` log in through portal ``tag``?"""
        if initiator in self.open_initiators or "*" in self.open_initiators:
            return True
        wwpn = wwpn_of(initiator)
        if wwpn is None:
            return False
        hba = self.vhba_of(wwpn)
        if hba is None:
            return False
        vsan = self.vsans.get(hba.vsan)
        if vsan is None or not vsan.reaches(tag):
            return False
        for z in self.zones.values():
            if z.vsan == hba.vsan and wwpn in z.members and (not z.ports or tag in z.ports):
                return True
        return False

    def visible_luns(self, initiator: str) -> set[int] | None:
        """LUN masking: the LUN ids ``initiator`` may see; None = every LUN."""
        if initiator in self.open_initiators or "*" in self.open_initiators:
            return None
        wwpn = wwpn_of(initiator)
        if wwpn is None:
            return set()
        return set(self.masks.get(wwpn, ()))

    # ------------------------------------------------------------------------- changes

    def _allocate(self) -> int:
        serial = self.next_serial
        if serial >= 1 << 40:
            raise FabricError("WWN pool exhausted")
        self.next_serial += 1
        return (self.prefix << 40) | serial

    def create_vsan(self, name: str, ports: list[int] | None = None) -> VirtualSan:
        check_name("vSAN", name)
        if name in self.vsans:
            raise FabricError(f"vSAN {name} exists")
        v = VirtualSan(name, sorted(ports or []))
        self.vsans[name] = v
        return v

    def delete_vsan(self, name: str) -> None:
        if name not in self.vsans:
            raise FabricError(f"no vSAN {name}")
        users = [h.vm for hbas in self.vhbas.values() for h in hbas if h.vsan == name]
        if users:
            raise FabricError(f"vSAN {name} is used by {', '.join(sorted(set(users)))}")
        del self.vsans[name]
        for z in [z for z in self.zones.values() if z.vsan == name]:
            del self.zones[z.name]

    def add_vhba(self, vm: str, vsan: str) -> VHba:
        """Allocate WWNN and WWPN sets A and B for a new vHBA of ``vm`` on ``vsan``."""
        check_name("VM", vm)
        if vsan not in self.vsans:
            raise FabricError(f"no vSAN {vsan} (create it with: vmstor vsan create {vsan})")
        hbas = self.vhbas.setdefault(vm, [])
        if len(hbas) >= MAX_VHBAS_PER_VM:
            raise FabricError(f"VM {vm} already has {MAX_VHBAS_PER_VM} vHBAs (the maximum)")
        index = next(i for i in range(MAX_VHBAS_PER_VM) if i not in {h.index for h in hbas})
        hba = VHba(
            vm,
            index,
            vsan,
            wwnn_a=self._allocate(),
            wwpn_a=self._allocate(),
            wwnn_b=self._allocate(),
            wwpn_b=self._allocate(),
        )
        hbas.append(hba)
        hbas.sort(key=lambda h: h.index)
        # A new vHBA of a VM sees what the VM's other vHBAs see (same LUN map).
        luns = self.vm_luns(vm)
        if luns:
            for w in hba.wwpns:
                self.masks[w] = set(luns)
            self._zone_vm(vm)
        return hba

    def remove_vhba(self, vm: str, index: int) -> VHba:
        hbas = self.vhbas.get(vm, [])
        for h in hbas:
            if h.index == index:
                hbas.remove(h)
                if not hbas:
                    del self.vhbas[vm]
                for w in h.wwpns:
                    self.masks.pop(w, None)
                    for z in self.zones.values():
                        if w in z.members:
                            z.members.remove(w)
                return h
        raise FabricError(f"VM {vm} has no vHBA {index}")

    def vm_luns(self, vm: str) -> set[int]:
        out: set[int] = set()
        for h in self.vhbas.get(vm, []):
            for w in h.wwpns:
                out |= self.masks.get(w, set())
        return out

    def _zone_vm(self, vm: str) -> None:
        """Zone every WWPN (both sets) of ``vm`` in a per-vSAN zone ``<vm>-<vsan>``."""
        for h in self.vhbas.get(vm, []):
            name = f"{vm}-{h.vsan}"
            zone = self.zones.get(name) or Zone(name, h.vsan)
            self.zones[name] = zone
            for w in h.wwpns:
                if w not in zone.members:
                    zone.members.append(w)

    def map_lun(self, lun: int, vm: str) -> list[int]:
        """Mask ``lun`` to every WWPN of ``vm`` (sets A and B) and zone them. Returns the
        WWPNs affected."""
        hbas = self.vhbas.get(vm)
        if not hbas:
            raise FabricError(
                f"VM {vm} has no vHBA (add one with: vmstor vhba add {vm} --vsan ...)"
            )
        wwpns = [w for h in hbas for w in h.wwpns]
        for w in wwpns:
            self.masks.setdefault(w, set()).add(lun)
        self._zone_vm(vm)
        return wwpns

    def unmap_lun(self, lun: int, vm: str) -> list[int]:
        wwpns = [w for h in self.vhbas.get(vm, []) for w in h.wwpns]
        if not any(lun in self.masks.get(w, set()) for w in wwpns):
            raise FabricError(f"LUN {lun} is not mapped to {vm}")
        for w in wwpns:
            s = self.masks.get(w)
            if s is not None:
                s.discard(lun)
                if not s:
                    del self.masks[w]
        return wwpns

    def forget_lun(self, lun: int) -> None:
        for w in list(self.masks):
            self.masks[w].discard(lun)
            if not self.masks[w]:
                del self.masks[w]

    def add_zone(
        self, name: str, vsan: str, members: list[int], ports: list[int] | None = None
    ) -> Zone:
        check_name("zone", name)
        if vsan not in self.vsans:
            raise FabricError(f"no vSAN {vsan}")
        zone = self.zones.get(name)
        if zone is None:
            zone = self.zones[name] = Zone(name, vsan, [], sorted(ports or []))
        elif zone.vsan != vsan:
            raise FabricError(f"zone {name} belongs to vSAN {zone.vsan}")
        for w in members:
            if w not in zone.members:
                zone.members.append(w)
        if ports:
            zone.ports = sorted(set(zone.ports) | set(ports))
        return zone

    def del_zone(self, name: str, members: list[int] | None = None) -> None:
        zone = self.zones.get(name)
        if zone is None:
            raise FabricError(f"no zone {name}")
        if not members:
            del self.zones[name]
            return
        zone.members = [w for w in zone.members if w not in members]

    def switch_active(self, vm: str, which: str | None = None) -> list[VHba]:
        """Live migration: every vHBA of ``vm`` changes its active set (to ``which`` or
        the other one). Zoning and masks cover both sets, so LUNs stay reachable."""
        hbas = self.vhbas.get(vm)
        if not hbas:
            raise FabricError(f"VM {vm} has no vHBA")
        for h in hbas:
            target = which or ("B" if h.active == "A" else "A")
            if target not in ("A", "B"):
                raise FabricError("the address set is A or B")
            h.active = target
        return hbas

    # --------------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": f"{self.prefix:06x}",
            "next_serial": self.next_serial,
            "vsans": {n: {"ports": v.ports} for n, v in sorted(self.vsans.items())},
            "vhbas": {
                vm: [
                    {
                        "index": h.index,
                        "vsan": h.vsan,
                        "wwnn_a": format_wwn(h.wwnn_a),
                        "wwpn_a": format_wwn(h.wwpn_a),
                        "wwnn_b": format_wwn(h.wwnn_b),
                        "wwpn_b": format_wwn(h.wwpn_b),
                        "active": h.active,
                    }
                    for h in hbas
                ]
                for vm, hbas in sorted(self.vhbas.items())
            },
            "zones": {
                n: {"vsan": z.vsan, "members": [format_wwn(w) for w in z.members], "ports": z.ports}
                for n, z in sorted(self.zones.items())
            },
            "masks": {format_wwn(w): sorted(luns) for w, luns in sorted(self.masks.items())},
            "open_initiators": sorted(self.open_initiators),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, prefix: int | None = None) -> Fabric:
        f = cls(prefix=int(str(d.get("prefix", f"{prefix or DEFAULT_PREFIX:06x}")), 16))
        if prefix is not None and not d:
            f.prefix = prefix
        f.next_serial = int(d.get("next_serial", 1))
        for n, v in dict(d.get("vsans", {})).items():
            f.vsans[n] = VirtualSan(n, [int(p) for p in v.get("ports", [])])
        for vm, hbas in dict(d.get("vhbas", {})).items():
            f.vhbas[vm] = [
                VHba(
                    vm,
                    int(h["index"]),
                    str(h["vsan"]),
                    parse_wwn(h["wwnn_a"]),
                    parse_wwn(h["wwpn_a"]),
                    parse_wwn(h["wwnn_b"]),
                    parse_wwn(h["wwpn_b"]),
                    str(h.get("active", "A")),
                )
                for h in hbas
            ]
        for n, z in dict(d.get("zones", {})).items():
            f.zones[n] = Zone(
                n,
                str(z["vsan"]),
                [parse_wwn(w) for w in z.get("members", [])],
                [int(p) for p in z.get("ports", [])],
            )
        for w, luns in dict(d.get("masks", {})).items():
            f.masks[parse_wwn(w)] = {int(x) for x in luns}
        f.open_initiators = set(d.get("open_initiators", []))
        return f
