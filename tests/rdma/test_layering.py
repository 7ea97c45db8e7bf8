"""The wire and core modules stay free of I/O (DESIGN 1): importing them in a fresh
interpreter pulls in no trio, socket, os-level I/O, time, random or threading module."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE_MODULES = [
    "rdma.verbs_types",
    "rdma.config",
    "rdma.iwarp.errors",
    "rdma.iwarp.mpa",
    "rdma.iwarp.ddp",
    "rdma.iwarp.stags",
    "rdma.iwarp.engine",
    "rdma.smbdirect.wire",
    "rdma.smbdirect.connection",
]
FORBIDDEN = {"trio", "socket", "selectors", "asyncio", "threading", "time", "random"}


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_io(module: str) -> None:
    # crc32c (a C extension) reads its version with importlib.metadata, which drags in
    # email.utils -> socket: import it first, so only what our modules add is judged.
    code = (
        "import sys, json, crc32c; before = set(sys.modules); "
        f"import {module}; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert not loaded & FORBIDDEN, f"{module} imports {sorted(loaded & FORBIDDEN)}"
