"""[MS-FSA] 2.1.5.1 / [MS-SMB2] 2.2.13 CreateDisposition and CreateOptions on the backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smbd.backend import BackendError, CreateAction, CreateOptions, Disposition, PosixShare
from smbd.backend.attrs import FileAttributes
from smbd.wire.status import NTStatus

D = Disposition
DIR = CreateOptions.DIRECTORY_FILE
NONDIR = CreateOptions.NON_DIRECTORY_FILE

# disposition -> (action or status when missing, action or status when present)
TABLE = {
    D.SUPERSEDE: (CreateAction.CREATED, CreateAction.SUPERSEDED),
    D.OPEN: (NTStatus.OBJECT_NAME_NOT_FOUND, CreateAction.OPENED),
    D.CREATE: (CreateAction.CREATED, NTStatus.OBJECT_NAME_COLLISION),
    D.OPEN_IF: (CreateAction.CREATED, CreateAction.OPENED),
    D.OVERWRITE: (NTStatus.OBJECT_NAME_NOT_FOUND, CreateAction.OVERWRITTEN),
    D.OVERWRITE_IF: (CreateAction.CREATED, CreateAction.OVERWRITTEN),
}


@pytest.mark.parametrize("disp", list(Disposition))
@pytest.mark.parametrize("exists", [False, True])
def test_file_dispositions(share: PosixShare, share_root: Path, disp: D, exists: bool) -> None:
    if exists:
        (share_root / "f").write_bytes(b"old data")
    expected = TABLE[disp][exists]
    if isinstance(expected, CreateAction):
        r = share.open_sync(("f",), disp, 0, want_write=True)
        assert r.action == expected
        size = share.stat_sync(r.handle).end_of_file
        assert size == (8 if expected == CreateAction.OPENED else 0)
        share.close_sync(r.handle)
    else:
        with pytest.raises(BackendError) as ei:
            share.open_sync(("f",), disp, 0, want_write=True)
        assert ei.value.status == expected
        assert (share_root / "f").exists() == exists


def test_directory_create_and_type_checks(share: PosixShare, share_root: Path) -> None:
    r = share.open_sync(("d",), D.CREATE, DIR, want_write=False)
    assert r.action == CreateAction.CREATED and r.handle.is_dir
    assert (share_root / "d").is_dir()
    st = share.stat_sync(r.handle)
    assert st.is_dir and st.attributes & FileAttributes.DIRECTORY
    assert share.open_sync(("d",), D.OPEN_IF, DIR, want_write=False).action == CreateAction.OPENED
    for disp in (D.SUPERSEDE, D.OVERWRITE, D.OVERWRITE_IF):
        with pytest.raises(BackendError) as ei:
            share.open_sync(("d",), disp, DIR, want_write=False)
        assert ei.value.status == NTStatus.INVALID_PARAMETER
    with pytest.raises(BackendError) as ei:
        share.open_sync(("d",), D.OPEN, NONDIR, want_write=False)
    assert ei.value.status == NTStatus.FILE_IS_A_DIRECTORY
    (share_root / "f").write_bytes(b"")
    with pytest.raises(BackendError) as ei:
        share.open_sync(("f",), D.OPEN, DIR, want_write=False)
    assert ei.value.status == NTStatus.NOT_A_DIRECTORY
    with pytest.raises(BackendError) as ei:
        share.open_sync(("f",), D.OPEN, DIR | NONDIR, want_write=False)
    assert ei.value.status == NTStatus.INVALID_PARAMETER


def test_root(share: PosixShare) -> None:
    r = share.open_sync((), D.OPEN, 0, want_write=False)
    assert r.handle.is_dir and r.handle.components == ()
    with pytest.raises(BackendError) as ei:
        share.open_sync((), D.CREATE, DIR, want_write=False)
    assert ei.value.status == NTStatus.OBJECT_NAME_COLLISION


def test_read_only_share(share_root: Path) -> None:
    (share_root / "f").write_bytes(b"x")
    ro = PosixShare(share_root, read_only=True)
    try:
        with pytest.raises(BackendError) as ei:
            ro.open_sync(("new",), D.CREATE, 0, want_write=True)
        assert ei.value.status == NTStatus.ACCESS_DENIED
        with pytest.raises(BackendError):
            ro.open_sync(("f",), D.OVERWRITE, 0, want_write=False)
        assert ro.open_sync(("f",), D.OPEN, 0, want_write=False).action == CreateAction.OPENED
    finally:
        ro.close()


def test_dos_attributes_and_creation_time_persist(share: PosixShare, share_root: Path) -> None:
    ft = 132_000_000_000_000_000
    r = share.open_sync(("f",), D.CREATE, 0, want_write=True, attributes=FileAttributes.HIDDEN)
    st = share.stat_sync(r.handle)
    assert st.attributes & FileAttributes.HIDDEN and st.attributes & FileAttributes.ARCHIVE
    share.set_basic_sync(
        r.handle, creation_time=ft, attributes=FileAttributes.SYSTEM | FileAttributes.READONLY
    )
    share.close_sync(r.handle)
    assert os.getxattr(share_root / "f", "user.vmstor.dosattrib")
    assert not os.stat(share_root / "f").st_mode & 0o222  # READONLY is the mode bits
    r = share.open_sync(("f",), D.OPEN, 0, want_write=False)
    st = share.stat_sync(r.handle)
    assert st.creation_time == ft
    assert st.attributes == FileAttributes.SYSTEM | FileAttributes.READONLY
    share.set_basic_sync(r.handle, attributes=FileAttributes.NORMAL)
    assert share.stat_sync(r.handle).attributes == FileAttributes.NORMAL
    assert os.stat(share_root / "f").st_mode & 0o200


def test_rename_and_delete(share: PosixShare, share_root: Path) -> None:
    (share_root / "a").write_bytes(b"a")
    (share_root / "b").write_bytes(b"b")
    (share_root / "sub").mkdir()
    h = share.open_sync(("a",), D.OPEN, 0, want_write=True).handle
    with pytest.raises(BackendError) as ei:
        share.rename_sync(h, ("b",), replace=False)
    assert ei.value.status == NTStatus.OBJECT_NAME_COLLISION
    share.rename_sync(h, ("b",), replace=True)
    assert (share_root / "b").read_bytes() == b"a" and not (share_root / "a").exists()
    share.rename_sync(h, ("sub", "c"), replace=False)
    assert h.components == ("sub", "c")
    assert (share_root / "sub" / "c").read_bytes() == b"a"
    d = share.open_sync(("sub",), D.OPEN, DIR, want_write=False).handle
    assert not share.is_empty_dir_sync(d)
    with pytest.raises(BackendError) as ei:
        share.unlink_sync(d)
    assert ei.value.status == NTStatus.DIRECTORY_NOT_EMPTY
    with pytest.raises(BackendError) as ei:
        share.rename_sync(d, ("sub", "inner"), replace=False)
    assert ei.value.status == NTStatus.INVALID_PARAMETER
    share.unlink_sync(h)
    assert share.is_empty_dir_sync(d)
    share.unlink_sync(d)
    assert sorted(os.listdir(share_root)) == []


def test_unlink_refuses_a_replaced_name(share: PosixShare, share_root: Path) -> None:
    (share_root / "f").write_bytes(b"1")
    h = share.open_sync(("f",), D.OPEN, 0, want_write=True).handle
    os.unlink(share_root / "f")
    (share_root / "f").write_bytes(b"2")
    with pytest.raises(BackendError) as ei:
        share.unlink_sync(h)
    assert ei.value.status == NTStatus.FILE_RENAMED
    assert (share_root / "f").read_bytes() == b"2"


def test_names_match_ignoring_case_and_keep_their_case(share: PosixShare, share_root: Path) -> None:
    """NTFS semantics: lookups ignore case, names keep the case they were created with."""
    (share_root / "Dir").mkdir()
    (share_root / "Dir" / "File.TXT").write_bytes(b"x")
    r = share.open_sync(("dir", "file.txt"), D.OPEN, 0, want_write=False)
    assert r.handle.components == ("Dir", "File.TXT")
    r2 = share.open_sync(("DIR", "New.txt"), D.CREATE, 0, want_write=True)
    assert r2.handle.components == ("Dir", "New.txt")
    assert (share_root / "Dir" / "New.txt").exists()
    with pytest.raises(BackendError) as ei:
        share.open_sync(("dir", "FILE.txt"), D.CREATE, 0, want_write=True)
    assert ei.value.status == NTStatus.OBJECT_NAME_COLLISION
    share.rename_sync(r.handle, ("Dir", "FILE.txt"), replace=False)  # a change of case
    assert sorted(os.listdir(share_root / "Dir")) == ["FILE.txt", "New.txt"]
    with pytest.raises(BackendError) as ei:
        share.rename_sync(r.handle, ("dir", "new.TXT"), replace=False)
    assert ei.value.status == NTStatus.OBJECT_NAME_COLLISION
    share.rename_sync(r.handle, ("dir", "new.TXT"), replace=True)
    assert sorted(os.listdir(share_root / "Dir")) == ["new.TXT"]
    exact = PosixShare(share_root, case_insensitive=False)
    try:
        with pytest.raises(BackendError):
            exact.open_sync(("dir",), D.OPEN, 0, want_write=False)
    finally:
        exact.close()


def test_case_matching_never_follows_symlinks(share: PosixShare, share_root: Path) -> None:
    (share_root / "Link").symlink_to(share_root.parent / "outside")
    with pytest.raises(BackendError) as ei:
        share.open_sync(("link", "secret"), D.OPEN, 0, want_write=False)
    assert ei.value.status == NTStatus.OBJECT_PATH_NOT_FOUND
