"""The ``vmstor`` command line. Every command takes ``--config FILE``."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from vmstor import control
from vmstor.config import DEFAULT_CONFIG, Config, ConfigError, load
from vmstor.tables import human_bytes, render
from vmstor.users import UserDB, UserError

Command = Callable[[argparse.Namespace], int]


def default_config_path() -> Path:
    return Path(os.environ.get("VMSTOR_CONFIG", "vmstor.toml"))


def _load(args: argparse.Namespace) -> Config:
    return load(Path(args.config))


def first_run(path: Path) -> str | None:
    """Write the embedded default config, its share folder and a user. Returns the password."""
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEFAULT_CONFIG)
    cfg = load(path)
    os.makedirs(cfg.state_dir, mode=0o700, exist_ok=True)
    for share in cfg.shares.values():
        share.path.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    UserDB(cfg.state_dir).add("vmstor", password)
    return password


def cmd_serve(args: argparse.Namespace) -> int:
    from vmstor.daemon import serve_until_signal

    path = Path(args.config)
    password = first_run(path)
    cfg = _load(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def ready() -> None:
        host, port = cfg.smb.listen[0]
        print(
            f"vmstor serving SMB on {', '.join(f'{h}:{p}' for h, p in cfg.smb.listen)}", flush=True
        )
        print(f"  config: {cfg.path}", flush=True)
        for share in cfg.shares.values():
            print(f"  share {share.name}: {share.path}", flush=True)
        if password is not None:
            share_name = next(iter(cfg.shares.values())).name if cfg.shares else "IPC$"
            print("  created user 'vmstor' with password (shown only this once):", flush=True)
            print(f"    {password}", flush=True)
            print("  try:", flush=True)
            line = f"smbclient //{host}/{share_name} -p {port} -U 'vmstor%{password}' -m SMB3_11"
            print(f"    {line} -c ls", flush=True)

    trio.run(serve_until_signal, cfg, ready)
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Retype password: "):
        raise UserError("passwords do not match")
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    cfg = _load(args)
    UserDB(cfg.state_dir).add(args.name, _read_password(args), replace=args.replace)
    print(f"user {args.name} added")
    return 0


def cmd_user_del(args: argparse.Namespace) -> int:
    cfg = _load(args)
    UserDB(cfg.state_dir).delete(args.name)
    print(f"user {args.name} deleted")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    cfg = _load(args)
    names = UserDB(cfg.state_dir).names()
    print(render("Users", ["name"], [[n] for n in names]))
    return 0


def cmd_share_list(args: argparse.Namespace) -> int:
    cfg = _load(args)
    rows = [
        [
            s.name,
            str(s.path),
            "yes" if s.encrypt or cfg.smb.encrypt else "no",
            "yes" if s.read_only else "no",
        ]
        for s in cfg.shares.values()
    ]
    if args.json:
        print(
            json.dumps(
                [dict(zip(["name", "path", "encrypt", "read_only"], r, strict=True)) for r in rows]
            )
        )
    else:
        print(render("Shares", ["name", "path", "encrypted", "read-only"], rows))
    return 0


def format_status(status: dict[str, Any]) -> str:
    smb = status.get("smb", {})
    out = []
    out.append(
        render(
            "Sessions",
            ["session", "user", "dialect", "signed", "encrypted", "channels"],
            [
                [s["id"], s["user"], s["dialect"], s["signed"], s["encrypted"], s["channels"]]
                for s in smb.get("sessions", [])
            ],
        )
    )
    out.append(
        render(
            "Channels",
            ["session", "connection", "peer", "transport"],
            [
                [c["session"], c["connection"], c["peer"], c["transport"]]
                for c in smb.get("channels", [])
            ],
        )
    )
    out.append(
        render(
            "Opens",
            ["session", "share", "path", "durable", "lease"],
            [
                [o["session"], o["share"], o["path"], o["durable"], o["lease"]]
                for o in smb.get("opens", [])
            ],
        )
    )
    out.append(
        render(
            "Shares",
            ["share", "path", "read", "written", "operations"],
            [
                [
                    s["name"],
                    s["path"],
                    human_bytes(s["bytes_read"]),
                    human_bytes(s["bytes_written"]),
                    s["ops"],
                ]
                for s in smb.get("shares", [])
            ],
        )
    )
    for name, section in status.items():
        if name != "smb" and isinstance(section, dict) and "tables" in section:
            for t in section["tables"]:
                out.append(render(t["title"], t["headers"], t["rows"]))
    return "\n\n".join(out)


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _load(args)
    status = control.request(cfg.state_dir, "status")
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(format_status(status))
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=str(default_config_path()),
        help="config file (default: $VMSTOR_CONFIG or ./vmstor.toml)",
    )
    p = argparse.ArgumentParser(prog="vmstor", description=__doc__, parents=[common])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "serve", parents=[common], help="run the daemon (writes a default config on first run)"
    )
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", parents=[common], help="manage users").add_subparsers(
        dest="sub", required=True
    )
    ua = user.add_parser(
        "add", parents=[common], help="add a user (password from a prompt or stdin)"
    )
    ua.add_argument("name")
    ua.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin",
    )
    ua.add_argument(
        "--replace", action="store_true", help="change the password of an existing user"
    )
    ua.set_defaults(func=cmd_user_add)
    ud = user.add_parser("del", parents=[common], help="delete a user")
    ud.add_argument("name")
    ud.set_defaults(func=cmd_user_del)
    ul = user.add_parser("list", parents=[common], help="list users")
    ul.set_defaults(func=cmd_user_list)

    share = sub.add_parser("share", parents=[common], help="shares").add_subparsers(
        dest="sub", required=True
    )
    sl = share.add_parser("list", parents=[common], help="list the configured shares")
    sl.add_argument("--json", action="store_true")
    sl.set_defaults(func=cmd_share_list)

    st = sub.add_parser(
        "status", parents=[common], help="sessions, channels, opens and per-share counters"
    )
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    for register in _extensions():
        register(sub, common)
    return p


def _extensions() -> list[Callable[[Any, argparse.ArgumentParser], None]]:
    """Command groups of the other subsystems (SAN, RDMA), each in its own module."""
    from vmstor import san_cli

    return [san_cli.register]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except (ConfigError, UserError, control.ControlError) as e:
        print(f"vmstor: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
