"""[MS-SMB2] 3.3.5.7 TREE_CONNECT: a share's ``valid_users`` admits the users it lists
(case-insensitively) and refuses everyone else with ACCESS_DENIED."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from smbd.config import ShareConfig
from smbd.wire.status import NTStatus
from vmstor.config import ConfigError, from_dict
from vmstor.daemon import smb_shares


async def test_valid_users(start_server: Callable[..., Any]) -> None:
    smb = await start_server()
    shares = dict(smb.server.shares)
    shares["staff"] = ShareConfig("staff", smb.root, valid_users=frozenset({"alice"}))
    shares["nobody"] = replace(shares["staff"], name="nobody", valid_users=frozenset())
    smb.server.update_shares(shares)
    alice = await smb.session()
    assert (await alice.tree_connect(r"\\x\staff")).status == NTStatus.SUCCESS
    assert (await alice.tree_connect(r"\\x\STAFF")).status == NTStatus.SUCCESS
    assert (await alice.tree_connect(r"\\x\nobody")).status == NTStatus.ACCESS_DENIED
    assert (await alice.tree_connect(r"\\x\share")).status == NTStatus.SUCCESS  # no list
    bob = await smb.client()
    assert (await bob.negotiate((0x0311,))).status == NTStatus.SUCCESS
    assert (await bob.session_setup("Bob", "bobpass")).status == NTStatus.SUCCESS
    assert (await bob.tree_connect(r"\\x\staff")).status == NTStatus.ACCESS_DENIED
    assert (await bob.tree_connect(r"\\x\share")).status == NTStatus.SUCCESS


def test_admits() -> None:
    everyone = ShareConfig("s", Path("/"))
    assert everyone.admits("anyone")
    listed = ShareConfig("s", Path("/"), valid_users=frozenset({"alice"}))
    assert listed.admits("ALICE") and not listed.admits("bob")


def test_valid_users_in_the_config_file(tmp_path: Path) -> None:
    vms: dict[str, Any] = {"path": "vms", "valid_users": ["Alice", "hyperv"]}
    raw = {"shares": {"vms": vms, "open": {"path": "open"}}}
    cfg = from_dict(raw, tmp_path / "vmstor.toml")
    assert cfg.shares["vms"].valid_users == ("Alice", "hyperv")
    assert cfg.shares["open"].valid_users is None
    shares = smb_shares(cfg)
    assert shares["vms"].valid_users == frozenset({"alice", "hyperv"})
    assert shares["vms"].admits("ALICE") and not shares["vms"].admits("bob")
    assert shares["open"].admits("bob")
    for bad in ("alice", [1], [""]):
        vms["valid_users"] = bad
        with pytest.raises(ConfigError, match="valid_users"):
            from_dict(raw, tmp_path / "vmstor.toml")
