"""[MS-FSCC] 2.1.5.1 stream names and where the POSIX backend keeps named streams."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as stt

from smbd.backend import BackendError, Disposition, PosixShare
from smbd.backend.paths import STREAMS_DIR, split_stream_path
from smbd.wire.status import NTStatus


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a", (("a",), None)),
        ("d\\f:s", (("d", "f"), "s")),
        ("d\\f:s:$DATA", (("d", "f"), "s")),
        ("f:s:$data", (("f",), "s")),
        ("f::$DATA", (("f",), None)),
    ],
)
def test_split_stream_path(name: str, expected: tuple[tuple[str, ...], str | None]) -> None:
    assert split_stream_path(name) == expected


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("f:s:$INDEX_ALLOCATION", NTStatus.OBJECT_NAME_INVALID),
        (":s", NTStatus.OBJECT_NAME_INVALID),
        ("f:a*b", NTStatus.OBJECT_NAME_INVALID),
        ("d:s\\f", NTStatus.OBJECT_NAME_INVALID),
        (STREAMS_DIR, NTStatus.OBJECT_NAME_NOT_FOUND),
        (STREAMS_DIR.upper() + "\\1\\s", NTStatus.OBJECT_NAME_NOT_FOUND),
    ],
)
def test_split_stream_path_refuses(name: str, status: int) -> None:
    with pytest.raises(BackendError) as e:
        split_stream_path(name)
    assert e.value.status == status


@given(stt.text(max_size=40))
def test_split_stream_path_parses_or_raises_backend_error(name: str) -> None:
    try:
        comps, stream = split_stream_path(name)
    except BackendError:
        return
    assert all(":" not in c for c in comps)
    assert stream is None or (stream and ":" not in stream)


def test_stream_lives_in_the_hidden_folder_and_goes_with_the_file(tmp_path: Path) -> None:
    share = PosixShare(tmp_path)
    try:
        with pytest.raises(BackendError) as e:
            share.stream_components_sync(("f",), "s", False)
        assert e.value.status == NTStatus.OBJECT_NAME_NOT_FOUND
        comps = share.stream_components_sync(("f",), "s", True)
        ino = (tmp_path / "f").stat().st_ino
        assert comps == (STREAMS_DIR, str(ino), "s")
        r = share.open_sync(comps, Disposition.CREATE, 0, want_write=True)
        share.write_sync(r.handle, memoryview(b"xyz"), 0)
        assert [(n, size) for n, size, _ in share.list_streams_sync(r.handle)] == [("s", 3)]
        share.close_sync(r.handle)
        root = share.open_sync((), Disposition.OPEN, 0, want_write=False)
        assert share.list_names_sync(root.handle) == ["f"]
        share.close_sync(root.handle)
        base = share.open_sync(("f",), Disposition.OPEN, 0, want_write=False)
        share.unlink_sync(base.handle)
        share.close_sync(base.handle)
        assert list((tmp_path / STREAMS_DIR).iterdir()) == []
    finally:
        share.close()


def test_streams_of_a_file_replaced_by_rename_go_with_it(tmp_path: Path) -> None:
    share = PosixShare(tmp_path)
    try:
        comps = share.stream_components_sync(("old",), "s", True)
        share.close_sync(share.open_sync(comps, Disposition.CREATE, 0, want_write=True).handle)
        share.close_sync(share.open_sync(("new",), Disposition.CREATE, 0, want_write=True).handle)
        r = share.open_sync(("new",), Disposition.OPEN, 0, want_write=False)
        share.rename_sync(r.handle, ("old",), True)
        assert share.list_streams_sync(r.handle) == []
        share.close_sync(r.handle)
        assert list((tmp_path / STREAMS_DIR).iterdir()) == []
    finally:
        share.close()


def test_a_new_file_never_inherits_streams_left_by_a_file_deleted_outside_smb(
    tmp_path: Path,
) -> None:
    """Stream folders are keyed by inode number; a file removed behind the server's back
    leaves its folder, and the file system hands the inode number out again (ext4 reuses a
    freed inode at once). The new file must not see the old file's stream data."""
    share = PosixShare(tmp_path)
    try:
        comps = share.stream_components_sync(("old",), "s", True)
        r = share.open_sync(comps, Disposition.CREATE, 0, want_write=True)
        share.write_sync(r.handle, memoryview(b"secret"), 0)
        share.close_sync(r.handle)
        old_ino = (tmp_path / "old").stat().st_ino
        (tmp_path / "old").unlink()  # outside SMB: the stream folder stays behind
        assert (tmp_path / STREAMS_DIR / str(old_ino) / "s").exists()
        new = share.open_sync(("new",), Disposition.CREATE, 0, want_write=True)
        assert share.list_streams_sync(new.handle) == []
        assert not (tmp_path / STREAMS_DIR / str(new.handle.ino)).exists()
        share.close_sync(new.handle)
        with pytest.raises(BackendError) as e:
            share.stream_components_sync(("new",), "s", False)
        assert e.value.status == NTStatus.OBJECT_NAME_NOT_FOUND
    finally:
        share.close()
