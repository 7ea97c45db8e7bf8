"""The SMB2 core stays sans-IO: the wire codecs, the data model, the credit window, message
composition, the request contract and the NEGOTIATE/SESSION_SETUP/TREE_CONNECT policy
import no clock, randomness, sockets, files or trio (DESIGN.md 1). The drivers
(smbd/server/processor.py, server.py, smbd/transport/) are where I/O lives."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WIRE = ["header", "constants", "status", "errors", "negotiate", "session", "tree", "misc"]
CORE = ["model", "credits", "compose", "request", "negotiate", "sessions", "trees"]
MODULES = [ROOT / "smbd" / "wire" / f"{m}.py" for m in WIRE] + [
    ROOT / "smbd" / "server" / f"{m}.py" for m in CORE
]
FORBIDDEN = {"os", "time", "random", "secrets", "socket", "trio", "threading", "asyncio", "io"}


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # annotations only
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
        else:
            names += _imports(node)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_io_imports(path: Path) -> None:
    for name in _imports(ast.parse(path.read_text(), str(path))):
        assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
