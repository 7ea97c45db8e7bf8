from pathlib import Path

import pytest

from vmstor.config import DEFAULT_CONFIG, ConfigError, load, parse_hostport
from vmstor.statefile import read_json, write_atomic, write_json


def test_default_config_matches_the_documented_keys(tmp_path: Path) -> None:
    path = tmp_path / "vmstor.toml"
    path.write_text(DEFAULT_CONFIG)
    cfg = load(path)
    assert cfg.smb.listen == (("127.0.0.1", 4455),)
    assert cfg.state_dir == tmp_path / "state"
    share = cfg.shares["vms"]
    assert share.path == tmp_path / "vms"
    assert (share.encrypt, share.read_only) == (False, False)
    assert cfg.smb.require_signing and not cfg.smb.allow_guest


def test_paths_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    (sub / "c.toml").write_text(
        '[server]\nlisten = ["127.0.0.1:1", "[::1]:2"]\nstate_dir = "st"\n'
        '[shares.Data]\npath = "../data"\nencrypt = true\nread_only = true\n'
    )
    cfg = load(sub / "c.toml")
    assert cfg.smb.listen == (("127.0.0.1", 1), ("::1", 2))
    assert cfg.state_dir == sub / "st"
    assert cfg.shares["data"].name == "Data"
    assert cfg.shares["data"].path == tmp_path / "data"
    assert cfg.shares["data"].encrypt and cfg.shares["data"].read_only


@pytest.mark.parametrize(
    "text",
    [
        "[server]\nlisten = 5\n",
        '[server]\nlisten = ["127.0.0.1:x"]\n',
        '[server]\nlisten = ["127.0.0.1:70000"]\n',
        "[shares.a]\nencrypt = true\n",
        '[shares.a]\npath = "a"\nencrypt = "yes"\n',
        '[shares."IPC$"]\npath = "a"\n',
        '[shares."a/b"]\npath = "a"\n',
        "[server\n",
    ],
)
def test_bad_config_is_reported_with_the_file_name(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load(path)


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load(tmp_path / "nope.toml")


def test_parse_hostport_default_port() -> None:
    assert parse_hostport("10.0.0.1", 445) == ("10.0.0.1", 445)
    assert parse_hostport("[fe80::1]:99", 445) == ("fe80::1", 99)


def test_atomic_write_replaces_whole_file_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "s" / "x.json"
    write_json(path, {"a": 1}, mode=0o600)
    write_json(path, {"a": 2}, mode=0o600)
    assert read_json(path, None) == {"a": 2}
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temp file left
    write_atomic(path, b"raw")
    assert path.read_bytes() == b"raw"
    assert read_json(tmp_path / "missing.json", {"d": 1}) == {"d": 1}
