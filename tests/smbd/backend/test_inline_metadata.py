"""Which backend calls run on the event loop and which go to a worker thread.

Metadata calls on the dentry and inode caches (open, create, stat, close of a small file)
and page-cache reads run inline, as Samba's smbd makes them; work that can take long
(truncating or unlinking a large file, closing a large written file, FIEMAP) keeps going
to a thread. Either way an OS error leaves as BackendError.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from smbd.backend import BackendError, Disposition, PosixShare
from smbd.backend.posix import INLINE_CLOSE_MAX
from smbd.wire.status import NTStatus

T = TypeVar("T")


def _count_threads(share: PosixShare, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every function sent to a worker thread."""
    sent: list[str] = []
    real = share.run

    async def run(fn: Callable[..., T], *args: object) -> T:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args)

    monkeypatch.setattr(share, "run", run)
    return sent


async def test_run_meta_runs_on_the_loop(share: PosixShare) -> None:
    loop_thread = threading.get_ident()
    assert await share.run_meta(threading.get_ident) == loop_thread


async def test_run_meta_without_inline_metadata_uses_a_thread(share_root: Path) -> None:
    share = PosixShare(share_root, inline_metadata=False)
    try:
        assert await share.run_meta(threading.get_ident) != threading.get_ident()
    finally:
        share.close()


async def test_run_meta_turns_os_errors_into_backend_errors(share: PosixShare) -> None:
    def fail() -> None:
        raise FileNotFoundError(2, "gone")

    with pytest.raises(BackendError) as info:
        await share.run_meta(fail)
    assert info.value.status == NTStatus.OBJECT_NAME_NOT_FOUND


async def test_open_stat_read_close_of_a_small_file_need_no_thread(
    share: PosixShare, share_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (share_root / "small").write_bytes(b"x" * 4096)
    sent = _count_threads(share, monkeypatch)
    r = await share.run_meta(
        functools.partial(share.open_sync, want_write=False), ("small",), Disposition.OPEN, 0
    )
    st = await share.stat(r.handle)
    assert st.end_of_file == 4096
    buf = memoryview(bytearray(65536))
    # a read past the end of a cached file is short, and answered without a thread
    assert await share.read_into(r.handle, buf, 0) == 4096
    assert bytes(buf[:4096]) == b"x" * 4096
    assert await share.read_into(r.handle, buf, 4096) == 0
    assert share.cheap_to_close(r.handle)
    await share.run_meta(share.close_sync, r.handle)
    assert sent == []


def test_closing_a_large_written_file_is_not_cheap(share: PosixShare, share_root: Path) -> None:
    r = share.open_sync(("big",), Disposition.CREATE, 0, want_write=True)
    try:
        assert share.cheap_to_close(r.handle)
        share.set_end_of_file_sync(r.handle, INLINE_CLOSE_MAX + 1)
        assert not share.cheap_to_close(r.handle)
    finally:
        share.close_sync(r.handle)
    ro = share.open_sync(("big",), Disposition.OPEN, 0, want_write=False)
    try:
        assert share.cheap_to_close(ro.handle)  # nothing written through it
    finally:
        share.close_sync(ro.handle)
