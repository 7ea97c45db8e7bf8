"""The SAN commands of ``vmstor`` (vmstor/san_cli.py), run through ``vmstor.cli.main``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from vmstor.cli import main


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "vmstor.toml"
    cfg.write_text(
        '[server]\nlisten = ["127.0.0.1:0"]\nstate_dir = "state"\n'
        '[iscsi]\nportals = ["127.0.0.1:3260", "127.0.0.1:3261"]\n'
        'target_name = "iqn.2026-11.org.vmstor:cli"\n'
    )
    return cfg


def vm(config: Path, line: str) -> int:
    return main([*shlex.split(line), "--config", str(config)])


def test_lun_lifecycle(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vm(config, "lun create a --size 8M") == 0
    assert vm(config, "lun create b --size 4M --thick --block-size 4096") == 0
    assert vm(config, "lun create a --size 8M") == 1  # exists
    assert vm(config, "lun create c --size lots") == 1  # bad size
    capsys.readouterr()
    assert vm(config, "lun list --json") == 0
    luns = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert luns["a"]["thin"] and not luns["b"]["thin"] and luns["b"]["block_size"] == 4096
    assert Path(luns["b"]["path"]).stat().st_size == 4 << 20
    assert vm(config, "lun delete a") == 0
    assert not Path(luns["a"]["path"]).exists()
    state = json.loads((config.parent / "state/san/luns.json").read_text())
    assert list(state) == ["b"]


def test_fabric_show_and_vm_attach(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for line in (
        "lun create disk --size 8M",
        "vsan create fabA",
        "vhba add vm1 --vsan fabA",
        "lun map disk --vm vm1",
    ):
        assert vm(config, line) == 0
    capsys.readouterr()
    assert vm(config, "fabric show") == 0
    table = capsys.readouterr().out
    assert "c0:03:ff:00:00:00:00:02" in table and "A*" in table
    assert "iqn.2026-11.org.vmstor:cli" in table and "127.0.0.1:3261,2" in table
    assert vm(config, "vm attach vm1") == 0
    line = capsys.readouterr().out.strip()
    assert "initiator-name=naa.c003ff0000000002" in line
    assert "file=iscsi://127.0.0.1:3260/iqn.2026-11.org.vmstor:cli/0,format=raw" in line
    assert vm(config, "vhba switch vm1") == 0
    capsys.readouterr()
    assert vm(config, "vm attach vm1") == 0
    assert "initiator-name=naa.c003ff0000000004" in capsys.readouterr().out
    assert vm(config, "fabric show --json") == 0
    view = json.loads(capsys.readouterr().out)
    assert view["vms"][0]["vhbas"][0]["active"] == "B"
    assert view["vms"][0]["luns"] == [0]


def test_errors_are_reported_not_raised(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vm(config, "vhba add vm1 --vsan nope") == 1
    assert "no vSAN nope" in capsys.readouterr().err
    assert vm(config, "lun map nope --vm vm1") == 1
    assert vm(config, "chap set --user u --secret short") == 1
    assert vm(config, "vsan create fabA") == 0
    for _ in range(4):
        assert vm(config, "vhba add vm1 --vsan fabA") == 0
    assert vm(config, "vhba add vm1 --vsan fabA") == 1
    assert vm(config, "zone add z --vsan fabA --wwpn c0:03:ff:00:00:00:00:02 --port 1") == 0
    assert vm(config, "zone list") == 0
    assert "c0:03:ff:00:00:00:00:02" in capsys.readouterr().out


def test_chap_secrets_file_is_private(config: Path) -> None:
    line = (
        "chap set --user host --secret twelve-chars-or-more"
        " --target-user t --target-secret t-secret-1234"
    )
    assert vm(config, line) == 0
    path = config.parent / "state/san/chap.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["target"]["target_user"] == "t"
