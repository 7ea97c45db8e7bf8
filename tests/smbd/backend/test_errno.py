"""The one errno -> NTSTATUS table, and the promise that OS errors leave as BackendError."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import trio

from smbd.backend import BackendError, Disposition, PosixShare
from smbd.backend.errors import ERRNO_STATUS, os_errors, status_for_errno
from smbd.wire.status import NTStatus


@pytest.mark.parametrize(
    ("err", "status"),
    [
        (errno.ENOENT, NTStatus.OBJECT_NAME_NOT_FOUND),
        (errno.EEXIST, NTStatus.OBJECT_NAME_COLLISION),
        (errno.EACCES, NTStatus.ACCESS_DENIED),
        (errno.ENOTEMPTY, NTStatus.DIRECTORY_NOT_EMPTY),
        (errno.ENOSPC, NTStatus.DISK_FULL),
        (errno.EROFS, NTStatus.MEDIA_WRITE_PROTECTED),
        (errno.ELOOP, NTStatus.ACCESS_DENIED),
        (errno.EXDEV, NTStatus.NOT_SAME_DEVICE),
        (errno.ENOTDIR, NTStatus.OBJECT_PATH_NOT_FOUND),
        (errno.EWOULDBLOCK, NTStatus.UNSUCCESSFUL),
    ],
)
def test_table(err: int, status: int) -> None:
    assert status_for_errno(err) == status


def test_every_status_is_an_error_status() -> None:
    assert all(s & 0xC0000000 == 0xC0000000 for s in ERRNO_STATUS.values())


def test_os_errors() -> None:
    with pytest.raises(BackendError) as ei, os_errors("x"):
        raise FileNotFoundError(errno.ENOENT, "gone")
    assert ei.value.status == NTStatus.OBJECT_NAME_NOT_FOUND


async def test_async_calls_run_in_threads_and_map_errors(share_root: Path) -> None:
    limiter = trio.CapacityLimiter(2)
    share = PosixShare(share_root, limiter=limiter)
    try:
        r = await share.open(("f",), Disposition.CREATE, 0, want_write=True)
        assert await share.write(r.handle, memoryview(b"hello"), 0, sync=True) == 5
        buf = bytearray(10)
        assert await share.read_into(r.handle, memoryview(buf), 0) == 5
        await share.close_handle(r.handle)
        with pytest.raises(BackendError) as ei:
            await share.open(("missing",), Disposition.OPEN, 0, want_write=False)
        assert ei.value.status == NTStatus.OBJECT_NAME_NOT_FOUND
        with pytest.raises(BackendError) as ei:
            await share.read_into(r.handle, memoryview(buf), 0)  # closed fd
        assert ei.value.status == NTStatus.INVALID_HANDLE
        assert limiter.borrowed_tokens == 0
    finally:
        share.close()


def test_missing_root() -> None:
    with pytest.raises(BackendError) as ei:
        PosixShare("/nonexistent/share/root")
    assert ei.value.status == NTStatus.OBJECT_NAME_NOT_FOUND
