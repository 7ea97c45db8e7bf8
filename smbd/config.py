"""Settings the SMB server is built from. The application (vmstor/) fills these in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Dialect revisions ([MS-SMB2] 2.2.3)
SMB2_0_2 = 0x0202
SMB2_1 = 0x0210
SMB3_0 = 0x0300
SMB3_0_2 = 0x0302
SMB3_1_1 = 0x0311

DIALECT_NAMES = {
    "2.0.2": SMB2_0_2,
    "2.1": SMB2_1,
    "3.0": SMB3_0,
    "3.0.2": SMB3_0_2,
    "3.1.1": SMB3_1_1,
}


@dataclass(frozen=True)
class ShareConfig:
    """One disk share. ``path`` is the folder every path of the share is confined to."""

    name: str
    path: Path
    encrypt: bool = False
    read_only: bool = False
    continuous_availability: bool = False
    comment: str = ""
    # the users who may connect to the share (compared case-insensitively); None: every
    # user. Others are refused at TREE_CONNECT with ACCESS_DENIED.
    valid_users: frozenset[str] | None = None

    def admits(self, user: str) -> bool:
        return self.valid_users is None or user.casefold() in self.valid_users


@dataclass(frozen=True)
class ServerConfig:
    server_guid: bytes  # 16 bytes, stable across restarts (kept in the state dir)
    server_name: str = "VMSTOR"
    require_signing: bool = True
    encrypt: bool = False  # every share requires encryption
    allow_guest: bool = False
    min_dialect: int = SMB2_0_2
    max_dialect: int = SMB3_1_1
    max_read_size: int = 8 * 1024 * 1024
    max_write_size: int = 8 * 1024 * 1024
    max_transact_size: int = 8 * 1024 * 1024
    multichannel: bool = True
    # test only: answer smbtorture's FSCTL_SMBTORTURE_* control codes (files.torture)
    smbtorture_hooks: bool = False


class CredentialStore(Protocol):
    """Where NTLM finds a user's NT hash. Looked up at each authentication."""

    def lookup(self, name: str) -> tuple[str, bytes] | None:
        """(canonical user name, 16-byte NT hash), or None for an unknown user."""
        ...
