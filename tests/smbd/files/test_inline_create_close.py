"""CREATE and CLOSE ([MS-SMB2] 3.3.5.9, 3.3.5.10) without a worker thread where the work
is metadata: opening, creating, statting and closing a small file run on the event loop;
overwriting or deleting a large file and closing a large file written through the handle
go to a thread."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from smbd.backend.posix import INLINE_CLOSE_MAX, INLINE_TRUNCATE_MAX, PosixShare
from smbd.config import ShareConfig
from smbd.server.files.state import FileServerState
from smbd.wire import create as wc

from .harness import Client, make_state

T = TypeVar("T")
D = wc.CreateDisposition


def _threads(
    files: FileServerState, share: ShareConfig, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    backend: PosixShare = files.runtime(share).backend
    sent: list[str] = []
    real = backend.run

    async def run(fn: Callable[..., T], *args: object) -> T:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args)

    monkeypatch.setattr(backend, "run", run)
    return sent


async def test_small_files_need_no_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, share = make_state(tmp_path)
    c = Client(files, share)
    sent = _threads(files, share, monkeypatch)
    r = await c.create("new.txt", disposition=D.CREATE)
    await c.close(r.file_id, postquery=True)
    (tmp_path / "old.txt").write_bytes(b"x" * 4096)
    r = await c.create("old.txt", disposition=D.OPEN)
    assert await c.read(r.file_id, 0, 65536) == b"x" * 4096
    await c.close(r.file_id)
    r = await c.create("old.txt", disposition=D.OVERWRITE)  # truncating 4 KiB: inline
    await c.close(r.file_id)
    assert (tmp_path / "old.txt").stat().st_size == 0
    assert sent == []


async def test_large_files_go_to_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, share = make_state(tmp_path)
    c = Client(files, share)
    sent = _threads(files, share, monkeypatch)
    with (tmp_path / "big").open("wb") as f:
        f.truncate(INLINE_TRUNCATE_MAX + 1)
    r = await c.create("big", disposition=D.OVERWRITE)
    assert sent == ["_overwrite_and_stat"]
    await c.write(r.file_id, INLINE_CLOSE_MAX, b"y")  # written and larger than the limit
    sent.clear()
    await c.close(r.file_id)
    assert sent == ["finish_close_sync"]
    sent.clear()
    r = await c.create("big", disposition=D.OPEN, options=wc.CreateOptions.DELETE_ON_CLOSE)
    assert sent == []
    await c.close(r.file_id)
    assert sent == ["finish_close_sync"]  # the unlink
    assert not (tmp_path / "big").exists()
