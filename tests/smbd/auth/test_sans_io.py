"""smbd.crypto and smbd.auth stay sans-IO: no clock, randomness, sockets, files or trio.
Clock and randomness are injected (DESIGN.md 1 and 3.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sansio import IO_MODULES, imported_modules

ROOT = Path(__file__).resolve().parents[3]
MODULES = [ROOT / "smbd" / "crypto.py", *sorted((ROOT / "smbd" / "auth").glob("*.py"))]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    for name in imported_modules(path):
        assert name.split(".")[0] not in IO_MODULES, f"{path.name} imports {name}"
