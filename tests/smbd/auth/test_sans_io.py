"""smbd.crypto and smbd.auth stay sans-IO: no clock, randomness, sockets, files or trio.
Clock and randomness are injected (DESIGN.md 1 and 3.3)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MODULES = [ROOT / "smbd" / "crypto.py", *sorted((ROOT / "smbd" / "auth").glob("*.py"))]
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
