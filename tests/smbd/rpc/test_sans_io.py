"""smbd.rpc stays sans-IO (DESIGN.md 1): no clock, randomness, sockets, files, threads or
trio; it imports nothing of the SMB server either (the handlers import it, not the other
way round)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MODULES = sorted((ROOT / "smbd" / "rpc").glob("*.py"))
FORBIDDEN = {"os", "time", "random", "secrets", "socket", "trio", "threading", "asyncio", "io"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
            assert not name.startswith("smbd.server"), f"{path.name} imports {name}"


def test_modules_found() -> None:
    assert {p.name for p in MODULES} >= {"pdu.py", "ndr.py", "pipe.py", "srvsvc.py", "wkssvc.py"}
