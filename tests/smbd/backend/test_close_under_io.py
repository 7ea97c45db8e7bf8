"""A close that comes while a worker thread still uses the open's descriptor.

SMB lets a client send CLOSE while a READ or WRITE on the same open is still running, and
the server closes files from the event loop and from worker threads. The descriptor must
stay open until the last call using it returns: closed earlier, its number could be handed
to another open and the running read would return another file's data.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
import trio

from smbd.backend import Disposition, PosixShare
from smbd.backend.posix import FileHandle, pinned


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        assert exc.errno == errno.EBADF
        return False
    return True


async def test_close_during_a_threaded_call_waits_for_it(
    share: PosixShare, share_root: Path
) -> None:
    (share_root / "data").write_bytes(b"first file's bytes")
    handle = share.open_sync(("data",), Disposition.OPEN, 0, want_write=False).handle
    fd = handle.fd
    started, release = threading.Event(), threading.Event()
    seen: list[bytes] = []

    def slow_read(h: FileHandle) -> None:
        started.set()
        release.wait(10)
        seen.append(os.pread(h.fd, 64, 0))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(share.run, slow_read, handle)
        await trio.to_thread.run_sync(started.wait, 10)
        await share.close_handle(handle)  # from a worker thread, as CLOSE does
        assert handle.close_pending and _is_open(fd)
        share.close_sync(handle)  # and inline, as a session teardown does
        assert _is_open(fd)
        release.set()
    assert seen == [b"first file's bytes"]
    assert handle.fd == -1 and handle.users == 0
    assert not _is_open(fd)


async def test_write_and_inline_calls_pin_their_handle(share: PosixShare, share_root: Path) -> None:
    handle = share.open_sync(("new",), Disposition.CREATE, 0, want_write=True).handle
    assert await share.write(handle, memoryview(b"abc"), 0) == 3
    assert await share.run_meta(lambda h: h.users, handle) == 1
    assert handle.users == 0
    share.close_sync(handle)
    assert handle.fd == -1 and not handle.close_pending
    assert (share_root / "new").read_bytes() == b"abc"


def test_pinned_closes_once_the_last_user_leaves(share: PosixShare, share_root: Path) -> None:
    (share_root / "f").write_bytes(b"x")
    handle = share.open_sync(("f",), Disposition.OPEN, 0, want_write=False).handle
    fd = handle.fd
    with pinned(handle), pinned(handle):
        share.close_sync(handle)
        assert handle.users == 2 and _is_open(fd)
    assert handle.fd == -1 and not _is_open(fd)
    share.close_sync(handle)  # closing twice is harmless


@pytest.mark.parametrize("n", [1, 3])
def test_pin_and_unpin_without_close_keep_the_fd(
    share: PosixShare, share_root: Path, n: int
) -> None:
    (share_root / "g").write_bytes(b"y")
    handle = share.open_sync(("g",), Disposition.OPEN, 0, want_write=False).handle
    for _ in range(n):
        with pinned(handle):
            pass
    assert handle.users == 0 and _is_open(handle.fd)
    share.close_sync(handle)
