"""DESIGN.md 1: the wire and core modules of the SCSI target do no I/O.

Their import statements (outside ``if TYPE_CHECKING:``) name no I/O module and,
inside the package, only other pure modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import scsi

PURE = {"sense", "cdb", "alua", "pr", "modepages", "vpd", "nexus"}
IO_MODULES = {"trio", "socket", "os", "time", "random", "threading", "ctypes", "select", "asyncio"}
ROOT = Path(scsi.__file__).parent


def _imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(relative level, module) of every import not guarded by TYPE_CHECKING."""
    out: list[tuple[int, str]] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                out.extend((0, a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                out.append((node.level, node.module or ""))
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit(getattr(node, field, []) or [])

    visit(tree.body)
    return out


@pytest.mark.parametrize("module", sorted(PURE))
def test_core_modules_import_no_io(module: str) -> None:
    tree = ast.parse((ROOT / f"{module}.py").read_text())
    for level, name in _imports(tree):
        top = name.split(".")[0]
        if level:
            assert top in PURE, f"scsi.{module} imports .{name}"
        else:
            assert top not in IO_MODULES, f"scsi.{module} imports {name}"
