"""What a module imports, for the tests that keep sans-IO packages free of I/O (DESIGN.md 1)."""

from __future__ import annotations

import ast
from pathlib import Path

# the standard modules that would bring a clock, randomness, sockets, files or threads
IO_MODULES = frozenset(
    {"os", "time", "random", "secrets", "socket", "trio", "threading", "asyncio", "io"}
)


def imported_modules(path: Path) -> list[str]:
    """Every module name ``path`` imports (``import a.b`` and ``from a.b import c``)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names
