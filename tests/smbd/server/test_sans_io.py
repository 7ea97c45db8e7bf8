"""The SMB2 core stays sans-IO: the wire codecs, the data model, the credit window, message
composition, the request contract and the NEGOTIATE/SESSION_SETUP/TREE_CONNECT policy
import no clock, randomness, sockets, files or trio (DESIGN.md 1). The drivers
(smbd/server/processor.py, server.py, smbd/transport/) are where I/O lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sansio import IO_MODULES, imported_modules

ROOT = Path(__file__).resolve().parents[3]
WIRE = ["header", "constants", "status", "errors", "negotiate", "session", "tree", "misc"]
CORE = ["model", "credits", "compose", "request", "negotiate", "sessions", "trees"]
MODULES = [ROOT / "smbd" / "wire" / f"{m}.py" for m in WIRE] + [
    ROOT / "smbd" / "server" / f"{m}.py" for m in CORE
]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_io_imports(path: Path) -> None:
    for name in imported_modules(path):
        assert name.split(".")[0] not in IO_MODULES, f"{path.name} imports {name}"


def test_the_check_sees_run_time_imports_only(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "import struct\n"
        "if TYPE_CHECKING:\n"
        "    import trio\n"
        "else:\n"
        "    import socket\n"
        "def f():\n"
        "    from os import path\n"
        "    from .sibling import x\n"
    )
    assert imported_modules(src) == ["typing", "struct", "socket", "os", "sibling"]
