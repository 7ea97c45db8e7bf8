"""The configuration file (TOML), documented in full in README.md.

Relative paths are taken relative to the folder that holds the config file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdma.config import parse_hostport as _parse_hostport


class ConfigError(Exception):
    """The configuration file is missing, unreadable or wrong; the message says where."""


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``"127.0.0.1:4455"`` / ``"[::1]:4455"`` / ``"127.0.0.1"`` -> (host, port)."""
    try:
        return _parse_hostport(text, default_port)
    except ValueError as e:
        raise ConfigError(str(e)) from None


@dataclass(frozen=True)
class ShareSettings:
    name: str
    path: Path
    encrypt: bool = False
    read_only: bool = False
    continuous_availability: bool = False
    comment: str = ""
    valid_users: tuple[str, ...] | None = None  # None: every user may connect


@dataclass(frozen=True)
class SMBSettings:
    listen: tuple[tuple[str, int], ...]
    require_signing: bool = True
    encrypt: bool = False  # server-wide encryption
    allow_guest: bool = False
    min_dialect: str = "2.0.2"
    max_dialect: str = "3.1.1"
    server_name: str = "VMSTOR"
    multichannel: bool = True
    smbtorture_hooks: bool = False  # test only: Samba's FSCTL_SMBTORTURE_* hooks


@dataclass(frozen=True)
class Config:
    path: Path  # the config file
    base: Path  # its folder
    state_dir: Path
    smb: SMBSettings
    shares: dict[str, ShareSettings]
    raw: dict[str, Any] = field(default_factory=dict)  # every table, for subsystems

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: [{name}] must be a table")
        return value


def _bool(table: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false")
    return value


def _str(table: dict[str, Any], key: str, default: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string")
    return value


def _names(table: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {key} must be a list of user names")
    return tuple(value)


def _listen(
    table: dict[str, Any], key: str, default: list[str], port: int, where: str
) -> tuple[tuple[str, int], ...]:
    value = table.get(key, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where}: {key} must be a list of "host:port" strings')
    try:
        return tuple(parse_hostport(v, port) for v in value)
    except ConfigError as e:
        raise ConfigError(f"{where}: {key}: {e}") from None


def load(path: Path) -> Config:
    path = path.resolve()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    return from_dict(raw, path)


def from_dict(raw: dict[str, Any], path: Path) -> Config:
    base = path.parent
    server = raw.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"{path}: [server] must be a table")
    where = f"{path} [server]"
    state_dir = base / _str(server, "state_dir", "state", where)
    smb = SMBSettings(
        listen=_listen(server, "listen", ["127.0.0.1:4455"], 445, where),
        require_signing=_bool(server, "require_signing", True, where),
        encrypt=_bool(server, "encrypt", False, where),
        allow_guest=_bool(server, "allow_guest", False, where),
        min_dialect=_str(server, "min_dialect", "2.0.2", where),
        max_dialect=_str(server, "max_dialect", "3.1.1", where),
        server_name=_str(server, "server_name", "VMSTOR", where),
        multichannel=_bool(server, "multichannel", True, where),
        smbtorture_hooks=_bool(server, "smbtorture_hooks", False, where),
    )
    shares: dict[str, ShareSettings] = {}
    tables = raw.get("shares", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: [shares] must be a table of shares")
    for name, table in tables.items():
        w = f"{path} [shares.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{w}: must be a table")
        if name.upper() == "IPC$" or not name or any(c in name for c in '\\/:*?"<>|'):
            raise ConfigError(f"{w}: bad share name")
        if "path" not in table:
            raise ConfigError(f"{w}: path is required")
        shares[name.lower()] = ShareSettings(
            name=name,
            path=(base / _str(table, "path", "", w)).resolve(),
            encrypt=_bool(table, "encrypt", False, w),
            read_only=_bool(table, "read_only", False, w),
            continuous_availability=_bool(table, "continuous_availability", False, w),
            comment=_str(table, "comment", "", w),
            valid_users=_names(table, "valid_users", w),
        )
    return Config(
        path=path, base=base, state_dir=state_dir.resolve(), smb=smb, shares=shares, raw=raw
    )


DEFAULT_CONFIG = """\
# vmstor configuration (see README.md, "Configuration", for every key)
[server]
listen = ["127.0.0.1:4455"]      # host:port, several allowed
state_dir = "state"              # relative to this file's folder

[shares.vms]
path = "vms"                     # relative to this file's folder
encrypt = false                  # true: this share requires encryption
read_only = false
"""
