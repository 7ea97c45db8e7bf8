"""What a module imports, for the tests that keep sans-IO packages free of I/O (DESIGN.md 1)."""

from __future__ import annotations

import ast
from pathlib import Path

# the standard modules that would bring a clock, randomness, sockets, files or threads
IO_MODULES = frozenset(
    {"os", "time", "random", "secrets", "socket", "trio", "threading", "asyncio", "io"}
)


def imported_modules(path: Path) -> list[str]:
    """Every module name ``path`` imports at run time (``import a.b`` and ``from a.b import
    c``, absolute or relative); imports under ``if TYPE_CHECKING:`` are annotations only
    and do not count."""
    return _imports(ast.parse(path.read_text(), str(path)))


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            names += [n for child in node.orelse for n in _imports_of(child)]
            continue
        names += _imports_of(node)
    return names


def _imports_of(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return _imports(node)
