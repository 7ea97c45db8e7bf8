"""The SAN service: LUNs, the virtual Fibre Channel fabric and the iSCSI target, assembled
from the config's ``[iscsi]`` table and the state directory.

State (all written atomically with :func:`vmstor.statefile.write_json`):

- ``san/luns.json``: LUN definitions (id, backing file, size, block size, thin/thick, the
  SCSI identity, ALUA overrides and APTPL persistent reservations);
- ``san/fabric.json``: vSANs, vHBAs with their WWPN sets, zones, LUN masks;
- ``san/chap.json`` (mode 0600): CHAP secrets.

The CLI changes these files and calls ``vmstor.control.notify(state_dir, "san")``; the
daemon then runs :meth:`SanService.reload`, which applies the difference at once (new LUNs
appear, masks change with REPORTED LUNS DATA HAS CHANGED, sessions that lost their zoning
end, ALUA states change with their unit attention).
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from scsi.alua import AluaState, TargetPortGroup
from scsi.backend import FileBackend
from scsi.fabric.model import DEFAULT_PREFIX, Fabric, initiator_name
from scsi.iscsi.chap import ChapSecrets
from scsi.iscsi.negotiation import TargetLimits
from scsi.iscsi.server import IscsiServer, Portal, Settings
from scsi.lun import LogicalUnit
from scsi.nexus import Nexus
from scsi.target import Target
from scsi.vpd import LIMITS as BLOCK_LIMITS
from vmstor.config import Config, ConfigError, parse_hostport
from vmstor.statefile import read_json, write_json

log = logging.getLogger("vmstor.san")

DEFAULT_PORT = 3260


def default_target_name() -> str:
    host = "".join(c for c in socket.gethostname().lower() if c.isalnum() or c in ".-") or "host"
    return f"iqn.2026-11.org.vmstor:{host}"


@dataclass(frozen=True)
class SanSettings:
    """The ``[iscsi]`` table."""

    portals: tuple[tuple[str, int], ...]
    target_name: str
    port_groups: tuple[tuple[int, ...], ...]  # portal numbers (1-based) per ALUA group
    lun_dir: Path
    wwn_prefix: int
    nop_interval: float
    max_burst: int
    first_burst: int
    max_recv_data: int
    immediate_data: bool
    initial_r2t: bool
    queue_depth: int
    open_initiators: tuple[str, ...] = ()  # names outside the fabric that see every LUN

    @classmethod
    def from_config(cls, cfg: Config) -> SanSettings:
        t = cfg.section("iscsi")
        where = f"{cfg.path} [iscsi]"
        raw_portals = t.get("portals", [f"127.0.0.1:{DEFAULT_PORT}"])
        if isinstance(raw_portals, str):
            raw_portals = [raw_portals]
        if not isinstance(raw_portals, list) or not raw_portals:
            raise ConfigError(f'{where}: portals must be a list of "host:port" strings')
        portals = tuple(parse_hostport(str(p), DEFAULT_PORT) for p in raw_portals)
        groups_raw = t.get("port_groups", [list(range(1, len(portals) + 1))])
        try:
            groups = tuple(tuple(int(x) for x in g) for g in groups_raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: port_groups must be lists of portal numbers") from None
        seen = [p for g in groups for p in g]
        if sorted(seen) != list(range(1, len(portals) + 1)):
            raise ConfigError(
                f"{where}: port_groups must place each portal (1..{len(portals)}) in one group"
            )

        def num(key: str, default: int, lo: int, hi: int) -> int:
            v = t.get(key, default)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ConfigError(f"{where}: {key} must be a number in {lo}..{hi}")
            return v

        def flag(key: str, default: bool) -> bool:
            v = t.get(key, default)
            if not isinstance(v, bool):
                raise ConfigError(f"{where}: {key} must be true or false")
            return v

        try:
            prefix = int(str(t.get("wwn_prefix", f"{DEFAULT_PREFIX:06x}")).replace(":", ""), 16)
        except ValueError:
            raise ConfigError(f"{where}: wwn_prefix must be 6 hex digits") from None
        return cls(
            portals=portals,
            target_name=str(t.get("target_name", default_target_name())),
            port_groups=groups,
            lun_dir=(cfg.base / str(t.get("lun_dir", "luns"))).resolve(),
            wwn_prefix=prefix,
            nop_interval=float(num("nop_interval", 30, 0, 3600)),
            max_burst=num("max_burst_length", 1048576, 512, 2**24 - 1),
            first_burst=num("first_burst_length", 262144, 512, 2**24 - 1),
            max_recv_data=num("max_recv_data_segment_length", 262144, 512, 2**24 - 1),
            immediate_data=flag("immediate_data", True),
            initial_r2t=flag("initial_r2t", False),
            queue_depth=num("queue_depth", 64, 1, 1024),
            open_initiators=tuple(str(x) for x in t.get("open_initiators", [])),
        )

    def portal_objects(self) -> list[Portal]:
        group_of = {p: gi + 1 for gi, g in enumerate(self.port_groups) for p in g}
        return [
            Portal(host, port, tag=i + 1, rtpi=i + 1, tpg=group_of[i + 1])
            for i, (host, port) in enumerate(self.portals)
        ]


@dataclass
class LunDef:
    """One LUN as stored in ``san/luns.json``."""

    name: str
    id: int
    path: str
    size: int
    block_size: int = 512
    thin: bool = True
    scsi: dict[str, Any] = field(default_factory=dict)  # LogicalUnit.to_dict()
    read_only: bool = False  # write protected: MODE SENSE WP=1, writes get 7/27/00

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "size": self.size,
            "block_size": self.block_size,
            "thin": self.thin,
            "read_only": self.read_only,
            "scsi": self.scsi,
        }

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> LunDef:
        return cls(
            name,
            int(d["id"]),
            str(d["path"]),
            int(d["size"]),
            int(d.get("block_size", 512)),
            bool(d.get("thin", True)),
            dict(d.get("scsi", {})),
            bool(d.get("read_only", False)),
        )


class SanState:
    """The persistent state files; shared by the CLI and the daemon."""

    def __init__(
        self,
        state_dir: Path,
        wwn_prefix: int = DEFAULT_PREFIX,
        open_initiators: tuple[str, ...] = (),
    ) -> None:
        self.dir = state_dir / "san"
        self.wwn_prefix = wwn_prefix
        self.open_initiators = open_initiators
        self.luns: dict[str, LunDef] = {}
        self.fabric = Fabric(prefix=wwn_prefix)
        self.chap: dict[str, dict[str, str]] = {}
        self.load()

    @property
    def luns_path(self) -> Path:
        return self.dir / "luns.json"

    @property
    def fabric_path(self) -> Path:
        return self.dir / "fabric.json"

    @property
    def chap_path(self) -> Path:
        return self.dir / "chap.json"

    def load(self) -> None:
        raw = read_json(self.luns_path, {})
        self.luns = {n: LunDef.from_dict(n, d) for n, d in raw.items()}
        fab = read_json(self.fabric_path, {})
        self.fabric = Fabric.from_dict(fab, prefix=self.wwn_prefix)
        self.fabric.open_initiators |= set(self.open_initiators)
        self.chap = read_json(self.chap_path, {})

    def save_luns(self) -> None:
        write_json(self.luns_path, {n: d.to_dict() for n, d in sorted(self.luns.items())})

    def save_fabric(self) -> None:
        d = self.fabric.to_dict()
        # Initiators opened by the config stay in the config.
        d["open_initiators"] = sorted(set(d["open_initiators"]) - set(self.open_initiators))
        write_json(self.fabric_path, d)

    def save_chap(self) -> None:
        write_json(self.chap_path, self.chap, mode=0o600)

    def lun(self, ref: str) -> LunDef:
        """A LUN by name or by number."""
        if ref in self.luns:
            return self.luns[ref]
        for d in self.luns.values():
            if ref.isdigit() and d.id == int(ref):
                return d
        raise KeyError(f"no LUN {ref!r}")

    def chap_secrets(self, kind: str) -> ChapSecrets | None:
        c = self.chap.get(kind)
        if not c or not c.get("user"):
            return None
        return ChapSecrets(
            c["user"], c["secret"], c.get("target_user", ""), c.get("target_secret", "")
        )


class _FabricAccess:
    def __init__(self, service: SanService) -> None:
        self.service = service

    def authorize(self, initiator: str, target: str, portal_group_tag: int) -> bool:
        return self.service.state.fabric.authorize(initiator, portal_group_tag)

    def chap_secrets(self, target: str | None) -> ChapSecrets | None:
        return self.service.state.chap_secrets("discovery" if target is None else "target")


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_transfer_buffers() -> None:
    """Let glibc keep freed transfer buffers (1 MiB reads and writes) in the heap.

    By default such buffers come from mmap or from heap top that ``free`` trims right
    away, so every command faults its pages in afresh: a 1 MiB read cost about twice the
    CPU.  Buffers up to 4 MiB now come from the heap, and up to 64 MiB of free heap (one
    session's bound on buffered data) is kept.  No-op without glibc.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mallopt(_M_MMAP_THRESHOLD, 4 << 20)
    mallopt(_M_TRIM_THRESHOLD, 64 << 20)


class SanService:
    """LUNs + fabric + iSCSI target of the daemon."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.settings = SanSettings.from_config(cfg)
        self.state = SanState(
            cfg.state_dir, self.settings.wwn_prefix, self.settings.open_initiators
        )
        portals = self.settings.portal_objects()
        groups = [
            TargetPortGroup(gi + 1, list(g), AluaState.ACTIVE_OPTIMIZED)
            for gi, g in enumerate(self.settings.port_groups)
        ]
        self.limiter = trio.CapacityLimiter(8)
        self.target = Target(
            self.settings.target_name,
            port_groups=groups,
            masking=self._mask,
            ua_listener=lambda key, lun, code: self.server.unit_attention(key, lun, code),
        )
        self.target.on_state_change = self._lun_state_changed
        s = self.settings
        self.server = IscsiServer(
            self.target,
            portals,
            access=_FabricAccess(self),
            settings=Settings(
                limits=TargetLimits(
                    max_recv_data=s.max_recv_data,
                    max_burst=s.max_burst,
                    first_burst=s.first_burst,
                    immediate_data=s.immediate_data,
                    initial_r2t=s.initial_r2t,
                ),
                nop_interval=s.nop_interval,
            ),
        )
        limits = self.server.settings.session_limits
        limits.queue_depth = s.queue_depth
        limits.max_transfer = BLOCK_LIMITS.max_transfer_bytes
        limits.max_buffered = max(limits.max_buffered, BLOCK_LIMITS.max_transfer_bytes)
        self._mask_fabric: object = None
        self._mask_cache: dict[str, set[int] | None] = {}
        self._open_luns()

    # ----------------------------------------------------------------------- LUNs

    def _mask(self, nexus: Nexus) -> set[int] | None:
        """LUN masking, asked on every command: answered from a per-initiator cache that
        :meth:`reload` (the one place the daemon's fabric changes) empties."""
        fabric = self.state.fabric
        if fabric is not self._mask_fabric:
            self._mask_fabric = fabric
            self._mask_cache.clear()
        try:
            return self._mask_cache[nexus.initiator]
        except KeyError:
            visible = self._mask_cache[nexus.initiator] = fabric.visible_luns(nexus.initiator)
            return visible

    def _open(self, d: LunDef) -> LogicalUnit:
        backend = FileBackend(d.path, block_size=d.block_size, thin=d.thin, limiter=self.limiter)
        if d.scsi:
            lu = LogicalUnit.from_dict({**d.scsi, "name": d.name}, backend)
        else:
            lu = LogicalUnit(d.name, backend)
        lu.read_only = d.read_only
        return lu

    def _open_luns(self) -> None:
        for d in sorted(self.state.luns.values(), key=lambda d: d.id):
            try:
                self.target.add_lun(d.id, self._open(d))
            except (OSError, ValueError) as e:
                log.error("LUN %s (%s) cannot be opened: %s", d.name, d.path, e)

    def _lun_state_changed(self, lun: int) -> None:
        """Persist what SCSI changed on a LU (APTPL reservations, ALUA overrides)."""
        lu = self.target.luns.get(lun)
        if lu is None:
            return
        for d in self.state.luns.values():
            if d.id == lun:
                d.scsi = lu.to_dict()
        self.state.save_luns()

    # --------------------------------------------------------------------- reload

    def reload(self) -> None:
        """Apply the state files as the CLI left them."""
        old_fabric = self.state.fabric.to_dict()
        old_luns = {d.id: d for d in self.state.luns.values()}
        self.state.load()
        self._mask_cache.clear()
        new_luns = {d.id: d for d in self.state.luns.values()}
        for lun_id in sorted(set(old_luns) - set(new_luns)):
            if lun_id in self.target.luns:
                self.target.remove_lun(lun_id).backend.close()
        for lun_id in sorted(set(new_luns) - set(old_luns)):
            try:
                self.target.add_lun(lun_id, self._open(new_luns[lun_id]))
            except (OSError, ValueError) as e:
                log.error("LUN %s cannot be opened: %s", new_luns[lun_id].name, e)
        for lun_id, d in new_luns.items():
            lu = self.target.luns.get(lun_id)
            overrides = {int(k): int(v) for k, v in d.scsi.get("alua_override", {}).items()}
            if lu is not None and overrides != lu.alua_override:
                for group, state in overrides.items():
                    if group in self.target.port_groups:
                        self.target.set_alua_state(group, state, lun=lun_id)
        if self.state.fabric.to_dict() != old_fabric:
            self.target.luns_changed()
            fabric = self.state.fabric
            dropped = self.server.drop_sessions(lambda ini, tag: not fabric.authorize(ini, tag))
            if dropped:
                log.info("ended %d session(s) whose zoning was removed", dropped)
        log.info("SAN state reloaded: %d LUN(s)", len(self.target.luns))

    # --------------------------------------------------------------------- running

    async def run(self, *, task_status: trio.TaskStatus[list[tuple[str, int]]]) -> None:
        os.makedirs(self.state.dir, mode=0o700, exist_ok=True)
        keep_transfer_buffers()
        try:
            async with trio.open_nursery() as nursery:
                bound = await nursery.start(self.server.serve)
                task_status.started(bound)
        finally:
            for lu in self.target.luns.values():
                lu.backend.close()

    def status(self) -> dict[str, Any]:
        sessions = self.server.session_info()
        stats = self.target.statistics()
        luns_stats = stats.get("luns", {})
        assert isinstance(luns_stats, dict)
        rows = []
        for d in sorted(self.state.luns.values(), key=lambda d: d.id):
            st = luns_stats.get(d.id, {})
            rows.append(
                [
                    d.id,
                    d.name,
                    st.get("read_ops", 0),
                    st.get("write_ops", 0),
                    st.get("read_bytes", 0),
                    st.get("write_bytes", 0),
                ]
            )
        return {
            "target": self.target.name,
            "portals": [p.address for p in self.server.portals],
            "sessions": sessions,
            "statistics": self.server.statistics(),
            "tables": [
                {
                    "title": f"iSCSI sessions ({self.target.name})",
                    "headers": ["tsih", "initiator", "portal", "peer", "digests", "commands"],
                    "rows": [
                        [
                            s["tsih"],
                            s["initiator"],
                            s["portal"],
                            s["peer"],
                            s["digests"],
                            s["commands"],
                        ]
                        for s in sessions
                    ],
                },
                {
                    "title": "LUNs",
                    "headers": ["lun", "name", "reads", "writes", "bytes read", "bytes written"],
                    "rows": rows,
                },
            ],
        }


def active_initiators(fabric: Fabric, vm: str) -> list[str]:
    return [initiator_name(h.active_wwpn) for h in fabric.vhbas.get(vm, [])]
