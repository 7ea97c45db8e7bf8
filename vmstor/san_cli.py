"""``vmstor`` commands of the SAN: LUNs, virtual SANs, vHBAs, zones, the fabric, CHAP.

Every command changes the state files (see :mod:`vmstor.san`) and then tells a running
daemon to reload them, so changes take effect at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from scsi.alua import AluaState
from scsi.backend import FileBackend
from scsi.fabric.model import FabricError, VHba, format_wwn, initiator_name, parse_wwn
from scsi.iscsi.chap import MIN_SECRET
from vmstor import control
from vmstor.config import ConfigError, load
from vmstor.san import LunDef, SanSettings, SanState
from vmstor.tables import human_bytes, render

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    try:
        n = float(t[: len(t) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise ConfigError(f"bad size {text!r} (examples: 512M, 1G, 10G)") from None
    if n <= 0:
        raise ConfigError(f"bad size {text!r}")
    return int(n)


def _open(args: argparse.Namespace) -> tuple[SanSettings, SanState]:
    cfg = load(Path(args.config))
    settings = SanSettings.from_config(cfg)
    return settings, SanState(cfg.state_dir, settings.wwn_prefix, settings.open_initiators)


def _notify(state: SanState) -> None:
    control.notify(state.dir.parent, "san")


def _fail(msg: str) -> int:
    print(f"vmstor: {msg}", file=sys.stderr)
    return 1


_T = TypeVar("_T")


def _change_fabric(
    args: argparse.Namespace,
    change: Callable[[SanState], _T],
    report: Callable[[_T], list[str]],
) -> int:
    """Load the state, make ``change``, save the fabric, tell the daemon and print the lines
    of ``report``. A LUN that does not exist (KeyError) or a fabric change that cannot be
    made (FabricError) fails the command with its message and saves nothing."""
    _, state = _open(args)
    try:
        result = change(state)
    except (KeyError, FabricError) as e:
        return _fail(str(e.args[0]))
    state.save_fabric()
    _notify(state)
    for line in report(result):
        print(line)
    return 0


# ------------------------------------------------------------------------------- LUNs


def cmd_lun_create(args: argparse.Namespace) -> int:
    settings, state = _open(args)
    if args.name in state.luns:
        return _fail(f"LUN {args.name} exists")
    used = {d.id for d in state.luns.values()}
    lun_id = args.id if args.id is not None else next(i for i in range(16384) if i not in used)
    if lun_id in used:
        return _fail(f"LUN number {lun_id} is in use")
    size = parse_size(args.size)
    os.makedirs(settings.lun_dir, mode=0o700, exist_ok=True)
    path = settings.lun_dir / f"{args.name}.img"
    thin = not args.thick
    FileBackend.create(path, size, block_size=args.block_size, thin=thin).close()
    state.luns[args.name] = LunDef(
        args.name, lun_id, str(path), size, args.block_size, thin, read_only=args.read_only
    )
    state.save_luns()
    _notify(state)
    kind = ("thin" if thin else "thick") + (", read-only" if args.read_only else "")
    print(f"LUN {args.name} created: number {lun_id}, {human_bytes(size)} {kind}, {path}")
    return 0


def cmd_lun_list(args: argparse.Namespace) -> int:
    _, state = _open(args)
    fab = state.fabric
    rows = []
    for d in sorted(state.luns.values(), key=lambda d: d.id):
        vms = sorted(
            vm
            for vm, hbas in fab.vhbas.items()
            if any(d.id in fab.masks.get(w, set()) for h in hbas for w in h.wwpns)
        )
        rows.append(
            [
                d.id,
                d.name,
                human_bytes(d.size),
                d.block_size,
                ("thin" if d.thin else "thick") + (" ro" if d.read_only else ""),
                ",".join(vms) or "-",
                d.path,
            ]
        )
    if args.json:
        print(json.dumps([{**d.to_dict(), "name": d.name} for d in state.luns.values()]))
    else:
        print(render("LUNs", ["lun", "name", "size", "block", "type", "VMs", "path"], rows))
    return 0


def cmd_lun_delete(args: argparse.Namespace) -> int:
    _, state = _open(args)
    try:
        d = state.lun(args.name)
    except KeyError as e:
        return _fail(str(e.args[0]))
    del state.luns[d.name]
    state.fabric.forget_lun(d.id)
    state.save_fabric()
    state.save_luns()
    _notify(state)
    if not args.keep_file:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(d.path)
    print(f"LUN {d.name} deleted")
    return 0


def cmd_lun_map(args: argparse.Namespace) -> int:
    def change(state: SanState) -> tuple[LunDef, list[int]]:
        d = state.lun(args.lun)
        return d, state.fabric.map_lun(d.id, args.vm)

    def report(done: tuple[LunDef, list[int]]) -> list[str]:
        d, wwpns = done
        return [
            f"LUN {d.name} (number {d.id}) mapped to {args.vm}: {len(wwpns)} WWPNs (sets A and B)"
        ]

    return _change_fabric(args, change, report)


def cmd_lun_unmap(args: argparse.Namespace) -> int:
    def change(state: SanState) -> LunDef:
        d = state.lun(args.lun)
        state.fabric.unmap_lun(d.id, args.vm)
        return d

    return _change_fabric(args, change, lambda d: [f"LUN {d.name} unmapped from {args.vm}"])


def cmd_lun_alua(args: argparse.Namespace) -> int:
    settings, state = _open(args)
    try:
        d = state.lun(args.lun)
        st = AluaState.parse(args.state)
    except (KeyError, ValueError) as e:
        return _fail(str(e.args[0]))
    if not 1 <= args.group <= len(settings.port_groups):
        return _fail(f"no target port group {args.group} (1..{len(settings.port_groups)})")
    over = dict(d.scsi.get("alua_override", {}))
    over[str(args.group)] = int(st)
    d.scsi = {**d.scsi, "alua_override": over}
    state.save_luns()
    told = _notify_ok(state)
    print(
        f"LUN {d.name}: group {args.group} is {st.name}" + ("" if told else " (daemon not running)")
    )
    return 0


def _notify_ok(state: SanState) -> bool:
    return control.notify(state.dir.parent, "san")


# ------------------------------------------------------------------------- fabric


def cmd_vsan_create(args: argparse.Namespace) -> int:
    return _change_fabric(
        args,
        lambda state: state.fabric.create_vsan(args.name, args.ports),
        lambda _: [f"vSAN {args.name} created"],
    )


def cmd_vsan_delete(args: argparse.Namespace) -> int:
    return _change_fabric(
        args,
        lambda state: state.fabric.delete_vsan(args.name),
        lambda _: [f"vSAN {args.name} deleted"],
    )


def cmd_vhba_add(args: argparse.Namespace) -> int:
    def report(h: VHba) -> list[str]:
        return [
            f"vHBA {h.index} of {args.vm} on vSAN {args.vsan}",
            f"  set A: WWNN {format_wwn(h.wwnn_a)}  WWPN {format_wwn(h.wwpn_a)}  (active)",
            f"  set B: WWNN {format_wwn(h.wwnn_b)}  WWPN {format_wwn(h.wwpn_b)}",
            f"  initiator name: {initiator_name(h.active_wwpn)}",
        ]

    return _change_fabric(args, lambda state: state.fabric.add_vhba(args.vm, args.vsan), report)


def cmd_vhba_del(args: argparse.Namespace) -> int:
    return _change_fabric(
        args,
        lambda state: state.fabric.remove_vhba(args.vm, args.index),
        lambda _: [f"vHBA {args.index} of {args.vm} removed"],
    )


def cmd_vhba_switch(args: argparse.Namespace) -> int:
    return _change_fabric(
        args,
        lambda state: state.fabric.switch_active(args.vm, args.set),
        lambda hbas: [
            f"vHBA {h.index} of {args.vm}: set {h.active} active, {initiator_name(h.active_wwpn)}"
            for h in hbas
        ],
    )


def cmd_zone_add(args: argparse.Namespace) -> int:
    return _change_fabric(
        args,
        lambda state: state.fabric.add_zone(
            args.name, args.vsan, [parse_wwn(w) for w in args.wwpn], args.port
        ),
        lambda _: [f"zone {args.name} updated"],
    )


def cmd_zone_del(args: argparse.Namespace) -> int:
    return _change_fabric(
        args,
        lambda state: state.fabric.del_zone(args.name, [parse_wwn(w) for w in args.wwpn]),
        lambda _: [f"zone {args.name} {'updated' if args.wwpn else 'deleted'}"],
    )


def cmd_zone_list(args: argparse.Namespace) -> int:
    _, state = _open(args)
    rows = [
        [z.name, z.vsan, " ".join(format_wwn(w) for w in z.members) or "-", _ports(z.ports)]
        for z in state.fabric.zones.values()
    ]
    print(render("Zones", ["zone", "vSAN", "members", "target ports"], rows))
    return 0


def _ports(ports: list[int]) -> str:
    return ",".join(str(p) for p in ports) if ports else "all"


def fabric_view(settings: SanSettings, state: SanState) -> dict[str, Any]:
    fab = state.fabric
    lun_names = {d.id: d.name for d in state.luns.values()}
    vms = []
    for vm, hbas in sorted(fab.vhbas.items()):
        vms.append(
            {
                "vm": vm,
                "luns": sorted(fab.vm_luns(vm)),
                "vhbas": [
                    {
                        "index": h.index,
                        "vsan": h.vsan,
                        "active": h.active,
                        "wwnn_a": format_wwn(h.wwnn_a),
                        "wwpn_a": format_wwn(h.wwpn_a),
                        "wwnn_b": format_wwn(h.wwnn_b),
                        "wwpn_b": format_wwn(h.wwpn_b),
                        "initiator": initiator_name(h.active_wwpn),
                    }
                    for h in hbas
                ],
            }
        )
    return {
        "target": settings.target_name,
        "portals": [p.address for p in settings.portal_objects()],
        "port_groups": [list(g) for g in settings.port_groups],
        "vsans": {n: {"ports": v.ports} for n, v in fab.vsans.items()},
        "vms": vms,
        "zones": {
            n: {"vsan": z.vsan, "members": [format_wwn(w) for w in z.members], "ports": z.ports}
            for n, z in fab.zones.items()
        },
        "luns": {str(d.id): {"name": d.name, "size": d.size} for d in state.luns.values()},
        "lun_names": {str(k): v for k, v in lun_names.items()},
    }


def cmd_fabric_show(args: argparse.Namespace) -> int:
    settings, state = _open(args)
    view = fabric_view(settings, state)
    if args.json:
        print(json.dumps(view, indent=2, sort_keys=True))
        return 0
    names = {int(k): v for k, v in view["lun_names"].items()}
    print(f"Target {view['target']}")
    print(f"Portals {', '.join(view['portals'])}")
    print()
    rows = []
    for vm in view["vms"]:
        luns = ",".join(f"{n}:{names.get(n, '?')}" for n in vm["luns"]) or "-"
        for h in vm["vhbas"]:
            for s in ("A", "B"):
                mark = "*" if h["active"] == s else ""
                rows.append(
                    [
                        vm["vm"],
                        h["index"],
                        h["vsan"],
                        s + mark,
                        h[f"wwnn_{s.lower()}"],
                        h[f"wwpn_{s.lower()}"],
                        luns,
                    ]
                )
    print(
        render(
            "VMs and vHBAs (* = active set)",
            ["VM", "vHBA", "vSAN", "set", "WWNN", "WWPN", "LUNs"],
            rows,
        )
    )
    print()
    print(
        render(
            "vSANs",
            ["vSAN", "target ports"],
            [[n, _ports(v["ports"])] for n, v in view["vsans"].items()],
        )
    )
    print()
    print(
        render(
            "Zones",
            ["zone", "vSAN", "members", "target ports"],
            [
                [n, z["vsan"], " ".join(z["members"]) or "-", _ports(z["ports"])]
                for n, z in view["zones"].items()
            ],
        )
    )
    print()
    print(
        render(
            "LUNs",
            ["lun", "name", "size"],
            [
                [int(k), v["name"], human_bytes(v["size"])]
                for k, v in sorted(view["luns"].items(), key=lambda kv: int(kv[0]))
            ],
        )
    )
    return 0


def cmd_vm_attach(args: argparse.Namespace) -> int:
    settings, state = _open(args)
    fab = state.fabric
    hbas = fab.vhbas.get(args.vm)
    if not hbas:
        return _fail(f"VM {args.vm} has no vHBA")
    h = hbas[0]
    luns = sorted(fab.vm_luns(args.vm))
    if not luns:
        return _fail(f"no LUN is mapped to {args.vm}")
    portal = next(
        (
            p
            for p in settings.portal_objects()
            if fab.authorize(initiator_name(h.active_wwpn), p.tag)
        ),
        None,
    )
    if portal is None:
        return _fail(f"{args.vm}'s active WWPN is not zoned to any portal")
    host = f"[{portal.host}]" if ":" in portal.host else portal.host
    cmd = [
        args.qemu,
        "-name",
        args.vm,
        "-m",
        args.memory,
        "-nographic",
        "-iscsi",
        f"initiator-name={initiator_name(h.active_wwpn)}",
        "-device",
        "virtio-scsi-pci,id=scsi0",
    ]
    for lun in luns:
        url = f"iscsi://{host}:{portal.port}/{settings.target_name}/{lun}"
        cmd += [
            "-drive",
            f"file={url},format=raw,if=none,id=lun{lun},cache=none",
            "-device",
            f"scsi-hd,drive=lun{lun},bus=scsi0.0,lun={lun}",
        ]
    print(shlex.join(cmd))
    if args.run:
        return subprocess.call(cmd)
    return 0


def cmd_chap_set(args: argparse.Namespace) -> int:
    _, state = _open(args)
    kind = "discovery" if args.discovery else "target"
    if args.clear:
        state.chap.pop(kind, None)
    else:
        if not args.user or not args.secret:
            return _fail("--user and --secret are required (or --clear)")
        for s in (args.secret, args.target_secret):
            if s and len(s) < MIN_SECRET:
                return _fail(f"CHAP secrets must have at least {MIN_SECRET} characters")
        if bool(args.target_user) != bool(args.target_secret):
            return _fail("mutual CHAP needs both --target-user and --target-secret")
        state.chap[kind] = {
            "user": args.user,
            "secret": args.secret,
            "target_user": args.target_user or "",
            "target_secret": args.target_secret or "",
        }
    state.save_chap()
    _notify(state)
    print(f"CHAP for {kind} sessions {'cleared' if args.clear else 'set'}")
    return 0


# ------------------------------------------------------------------------------ parser


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the SAN command groups to the ``vmstor`` parser."""
    lun = sub.add_parser("lun", parents=[common], help="LUNs").add_subparsers(
        dest="sub", required=True
    )
    p = lun.add_parser("create", parents=[common], help="create a LUN (a thin or thick file)")
    p.add_argument("name")
    p.add_argument("--size", required=True, help="for example 512M, 1G")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--thin", action="store_true", help="sparse file (the default)")
    g.add_argument("--thick", action="store_true", help="preallocated file")
    p.add_argument("--block-size", type=int, choices=(512, 4096), default=512)
    p.add_argument("--id", type=int, help="LUN number (default: the lowest free one)")
    p.add_argument(
        "--read-only",
        action="store_true",
        help="write protected: MODE SENSE reports WP, writes get DATA PROTECT",
    )
    p.set_defaults(func=cmd_lun_create)
    p = lun.add_parser("list", parents=[common], help="list LUNs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lun_list)
    p = lun.add_parser("delete", parents=[common], help="delete a LUN and its file")
    p.add_argument("name")
    p.add_argument("--keep-file", action="store_true")
    p.set_defaults(func=cmd_lun_delete)
    p = lun.add_parser(
        "map", parents=[common], help="mask a LUN to every WWPN of a VM and zone them"
    )
    p.add_argument("lun")
    p.add_argument("--vm", required=True)
    p.set_defaults(func=cmd_lun_map)
    p = lun.add_parser("unmap", parents=[common], help="remove a LUN from a VM's masks")
    p.add_argument("lun")
    p.add_argument("--vm", required=True)
    p.set_defaults(func=cmd_lun_unmap)
    p = lun.add_parser(
        "alua", parents=[common], help="set the ALUA state of a target port group for a LUN"
    )
    p.add_argument("lun")
    p.add_argument("--group", type=int, required=True)
    p.add_argument(
        "--state", required=True, help="ao, ano, standby, unavailable, offline, transitioning"
    )
    p.set_defaults(func=cmd_lun_alua)

    vsan = sub.add_parser("vsan", parents=[common], help="virtual SANs").add_subparsers(
        dest="sub", required=True
    )
    p = vsan.add_parser("create", parents=[common], help="create a virtual SAN")
    p.add_argument("name")
    p.add_argument("--ports", type=int, nargs="*", help="portal numbers it reaches (default: all)")
    p.set_defaults(func=cmd_vsan_create)
    p = vsan.add_parser("delete", parents=[common], help="delete an unused virtual SAN")
    p.add_argument("name")
    p.set_defaults(func=cmd_vsan_delete)

    vhba = sub.add_parser("vhba", parents=[common], help="virtual HBAs").add_subparsers(
        dest="sub", required=True
    )
    p = vhba.add_parser(
        "add", parents=[common], help="add a vHBA (WWNN + WWPN sets A and B) to a VM"
    )
    p.add_argument("vm")
    p.add_argument("--vsan", required=True)
    p.set_defaults(func=cmd_vhba_add)
    p = vhba.add_parser("del", parents=[common], help="remove a vHBA")
    p.add_argument("vm")
    p.add_argument("index", type=int)
    p.set_defaults(func=cmd_vhba_del)
    p = vhba.add_parser(
        "switch", parents=[common], help="switch the active WWPN set (live migration)"
    )
    p.add_argument("vm")
    p.add_argument("--set", choices=("A", "B"))
    p.set_defaults(func=cmd_vhba_switch)

    zone = sub.add_parser("zone", parents=[common], help="zoning").add_subparsers(
        dest="sub", required=True
    )
    p = zone.add_parser("add", parents=[common], help="add WWPNs (and target ports) to a zone")
    p.add_argument("name")
    p.add_argument("--vsan", required=True)
    p.add_argument("--wwpn", action="append", default=[])
    p.add_argument("--port", type=int, action="append", default=[])
    p.set_defaults(func=cmd_zone_add)
    p = zone.add_parser("del", parents=[common], help="delete a zone, or WWPNs from it")
    p.add_argument("name")
    p.add_argument("--wwpn", action="append", default=[])
    p.set_defaults(func=cmd_zone_del)
    p = zone.add_parser("list", parents=[common], help="list zones")
    p.set_defaults(func=cmd_zone_list)

    fabric = sub.add_parser("fabric", parents=[common], help="the virtual fabric").add_subparsers(
        dest="sub", required=True
    )
    p = fabric.add_parser(
        "show", parents=[common], help="VMs, vHBAs, WWPNs, zones, LUNs, target and portals"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fabric_show)

    vm = sub.add_parser("vm", parents=[common], help="VMs").add_subparsers(
        dest="sub", required=True
    )
    p = vm.add_parser(
        "attach", parents=[common], help="print (or run) the QEMU command line for a VM's LUNs"
    )
    p.add_argument("vm")
    p.add_argument("--run", action="store_true")
    p.add_argument("--qemu", default="qemu-system-x86_64")
    p.add_argument("--memory", default="1G")
    p.set_defaults(func=cmd_vm_attach)

    chap = sub.add_parser("chap", parents=[common], help="CHAP").add_subparsers(
        dest="sub", required=True
    )
    p = chap.add_parser("set", parents=[common], help="set (or clear) CHAP secrets")
    p.add_argument("--user")
    p.add_argument("--secret")
    p.add_argument("--target-user", help="mutual CHAP: the target's name")
    p.add_argument("--target-secret", help="mutual CHAP: the target's secret")
    p.add_argument("--discovery", action="store_true", help="for discovery sessions")
    p.add_argument("--clear", action="store_true")
    p.set_defaults(func=cmd_chap_set)
