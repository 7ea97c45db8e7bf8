"""DESIGN.md 1: the wire and core modules import no I/O (trio, socket, os, time, random)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import scsi.iscsi

CORE = ["pdu", "errors", "framing", "text", "negotiation", "chap", "login", "connection"]
FORBIDDEN = {"trio", "socket", "os", "time", "random", "threading", "asyncio", "selectors"}


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io(module: str) -> None:
    path = Path(scsi.iscsi.__file__).parent / f"{module}.py"
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, imported & FORBIDDEN


def test_fabric_model_imports_no_io() -> None:
    import scsi.fabric.model as m

    tree = ast.parse(Path(m.__file__).read_text())
    names = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not names & FORBIDDEN
