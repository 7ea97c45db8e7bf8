"""DESIGN.md 1: the wire and core modules import no I/O (trio, socket, os, time, random)."""

from __future__ import annotations

from pathlib import Path

import pytest

import scsi.fabric.model
import scsi.iscsi
from tests.sansio import IO_MODULES, imported_modules

CORE = ["pdu", "errors", "framing", "text", "negotiation", "chap", "login", "connection"]
# beyond the common list: an event-loop selector is I/O too
FORBIDDEN = IO_MODULES | {"selectors"}


def _io_imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)} & FORBIDDEN


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io(module: str) -> None:
    path = Path(scsi.iscsi.__file__).parent / f"{module}.py"
    assert not _io_imports(path)


def test_fabric_model_imports_no_io() -> None:
    assert not _io_imports(Path(scsi.fabric.model.__file__))
