"""The [rdma] table."""

from __future__ import annotations

import tomllib

import pytest

from rdma.config import RdmaConfig, RdmaConfigError


def test_rdma_table_from_the_readme() -> None:
    table = tomllib.loads('[rdma]\nlisten = ["127.0.0.1:5445"]\nprovider = "iwarp"\n')["rdma"]
    cfg = RdmaConfig.from_table(table)
    assert cfg == RdmaConfig(listen=(("127.0.0.1", 5445),), provider="iwarp")
    assert cfg.enabled


def test_defaults_and_forms() -> None:
    assert not RdmaConfig.from_table({}).enabled
    cfg = RdmaConfig.from_table(
        {"listen": ["10.0.0.1", "[::1]:15445"], "provider": "pyverbs", "device": "rxe0"}
    )
    assert cfg.listen == (("10.0.0.1", 5445), ("::1", 15445))
    assert (cfg.provider, cfg.device, cfg.crc) == ("pyverbs", "rxe0", True)
    assert RdmaConfig.from_table({"listen": "127.0.0.1:1"}).listen == (("127.0.0.1", 1),)


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ({"provider": "rxe"}, "provider must be one of"),
        ({"listen": [5445]}, "listen must be"),
        ({"listen": ["127.0.0.1:x"]}, "port is not a number"),
        ({"listen": ["127.0.0.1:70000"]}, "port out of range"),
        ({"listen": [":5445"]}, "no host"),
        ({"crc": "yes"}, "crc must be"),
        ({"device": 1}, "device must be"),
        ({"lisen": []}, "unknown key"),
    ],
)
def test_bad_tables(table: dict[str, object], why: str) -> None:
    with pytest.raises(RdmaConfigError, match=why):
        RdmaConfig.from_table(table, where="vmstor.toml [rdma]")
