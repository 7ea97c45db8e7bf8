from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smbd.backend import PosixShare


@pytest.fixture
def share_root(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"outside secret")
    return root


@pytest.fixture
def share(share_root: Path) -> Iterator[PosixShare]:
    s = PosixShare(share_root)
    yield s
    s.close()
