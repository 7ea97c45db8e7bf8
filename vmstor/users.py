"""The user database: names and NT hashes only, in ``users.json`` (mode 0600) in the state dir.

The NT hash (MD4 of the UTF-16LE password) is what NTLMv2 needs on the server side; the
password itself is never written anywhere.
"""

from __future__ import annotations

import hmac
import re
from pathlib import Path

from smbd.auth.nthash import nt_hash
from vmstor.statefile import read_json, write_json

_NAME = re.compile(r"^[A-Za-z0-9._-][A-Za-z0-9._ -]{0,63}$")


class UserError(Exception):
    pass


class UserDB:
    """Users with their NT hashes. Names compare case-insensitively, as Windows does."""

    FILE = "users.json"

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / self.FILE

    def _load(self) -> dict[str, dict[str, str]]:
        data = read_json(self.path, {"users": {}})
        users = data.get("users", {})
        assert isinstance(users, dict)
        return users

    def names(self) -> list[str]:
        return sorted(u["name"] for u in self._load().values())

    def add(self, name: str, password: str, *, replace: bool = False) -> None:
        if not _NAME.match(name):
            raise UserError(f"bad user name {name!r}")
        if not password:
            raise UserError("empty password")
        users = self._load()
        if name.lower() in users and not replace:
            raise UserError(f"user {name!r} exists")
        users[name.lower()] = {"name": name, "nt_hash": nt_hash(password).hex()}
        write_json(self.path, {"users": users}, mode=0o600)

    def delete(self, name: str) -> None:
        users = self._load()
        if users.pop(name.lower(), None) is None:
            raise UserError(f"no user {name!r}")
        write_json(self.path, {"users": users}, mode=0o600)

    def lookup(self, name: str) -> tuple[str, bytes] | None:
        """(canonical name, NT hash) or None. Reads the file each time, so changes apply at once."""
        entry = self._load().get(name.lower())
        if entry is None:
            return None
        return entry["name"], bytes.fromhex(entry["nt_hash"])

    def check_password(self, name: str, password: str) -> bool:
        found = self.lookup(name)
        return found is not None and hmac.compare_digest(found[1], nt_hash(password))
