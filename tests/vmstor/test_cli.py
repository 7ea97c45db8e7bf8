"""The vmstor command line: first run, users, shares, status through the control socket."""

import json
import stat
from pathlib import Path

import pytest
import trio

from vmstor import cli, control
from vmstor.config import load
from vmstor.daemon import Daemon
from vmstor.users import UserDB


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "vmstor.toml"
    path.write_text(
        '[server]\nlisten = ["127.0.0.1:0"]\nstate_dir = "state"\n'
        '[shares.vms]\npath = "vms"\n[shares.secure]\npath = "sec"\nencrypt = true\n' + extra
    )
    return path


def test_first_run_writes_default_config_share_and_user(tmp_path: Path) -> None:
    path = tmp_path / "vmstor.toml"
    password = cli.first_run(path)
    assert password is not None and len(password) >= 12
    cfg = load(path)
    assert cfg.shares["vms"].path.is_dir()
    assert UserDB(cfg.state_dir).check_password("vmstor", password)
    assert stat.S_IMODE(cfg.state_dir.stat().st_mode) == 0o700
    assert cli.first_run(path) is None  # never overwrites


def test_user_add_from_stdin_and_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("Secret-1\n"))
    assert cli.main(["user", "add", "bob", "--password-stdin", "--config", str(path)]) == 0
    db = UserDB(tmp_path / "state")
    assert db.check_password("bob", "Secret-1")
    assert cli.main(["user", "list", "--config", str(path)]) == 0
    assert "bob" in capsys.readouterr().out
    assert cli.main(["user", "del", "bob", "--config", str(path)]) == 0
    assert db.lookup("bob") is None
    assert cli.main(["user", "del", "bob", "--config", str(path)]) == 1
    assert "no user" in capsys.readouterr().err


def test_share_list_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert cli.main(["share", "list", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "vms" in out and "secure" in out
    assert cli.main(["share", "list", "--json", "--config", str(path)]) == 0
    shares = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert shares["secure"]["encrypt"] == "yes" and shares["vms"]["encrypt"] == "no"


def test_status_without_daemon_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert cli.main(["status", "--config", str(path)]) == 1
    assert "no daemon is running" in capsys.readouterr().err


async def test_status_through_the_control_socket(tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path))
    daemon = Daemon(cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        sock = cfg.state_dir / control.SOCKET_NAME
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        status = await trio.to_thread.run_sync(control.request, cfg.state_dir, "status")
        names = sorted(s["name"] for s in status["smb"]["shares"])
        assert names == ["secure", "vms"]
        assert status["smb"]["sessions"] == []
        text = cli.format_status(status)
        assert "Sessions" in text and "Shares" in text and "secure" in text
        with pytest.raises(control.ControlError, match="nothing to reload"):
            await trio.to_thread.run_sync(
                lambda: control.request(cfg.state_dir, "reload", what="bogus")
            )
        nursery.cancel_scope.cancel()
    assert not sock.exists()
