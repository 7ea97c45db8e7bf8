"""smbd.rpc stays sans-IO (DESIGN.md 1): no clock, randomness, sockets, files, threads or
trio; it imports nothing of the SMB server either (the handlers import it, not the other
way round)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sansio import IO_MODULES, imported_modules

ROOT = Path(__file__).resolve().parents[3]
MODULES = sorted((ROOT / "smbd" / "rpc").glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    for name in imported_modules(path):
        assert name.split(".")[0] not in IO_MODULES, f"{path.name} imports {name}"
        assert not name.startswith("smbd.server"), f"{path.name} imports {name}"


def test_modules_found() -> None:
    assert {p.name for p in MODULES} >= {"pdu.py", "ndr.py", "pipe.py", "srvsvc.py", "wkssvc.py"}
