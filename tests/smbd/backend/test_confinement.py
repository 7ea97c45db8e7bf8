"""Path confinement: [MS-SMB2] 3.3.5.9 names relative to the share, [MS-FSCC] 2.1.5 names.

Every lookup walks from the share root's fd with O_NOFOLLOW, so symlinks pointing outside
(to / or to a sibling folder) can be neither read nor written through, even when a
symlink replaces a directory while the server resolves a path (see the race test).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as stt

from smbd.backend import BackendError, Disposition, PosixShare, split_path
from smbd.backend.posix import CreateOptions
from smbd.wire.status import NTStatus


@pytest.mark.parametrize(
    ("path", "components"),
    [
        ("a\\..", ()),
        ("a\\..\\b", ("b",)),
        ("a\\b\\..\\..\\c\\d", ("c", "d")),
        ("zqy\\..\\", ()),
    ],
)
def test_split_path_resolves_dotdot_inside_the_share(
    path: str, components: tuple[str, ...]
) -> None:
    """smbtorture smb2.notify.tree opens ``dir\\zqy\\..``: Windows names the folder that
    holds zqy; a ``..`` that would climb above the share root stays OBJECT_NAME_INVALID."""
    assert split_path(path) == components


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("..", NTStatus.OBJECT_NAME_INVALID),
        ("a\\..\\..\\etc\\passwd", NTStatus.OBJECT_NAME_INVALID),
        ("a\\.\\b", NTStatus.OBJECT_NAME_INVALID),
        ("\\etc\\passwd", NTStatus.INVALID_PARAMETER),
        ("a\\\\b", NTStatus.OBJECT_NAME_INVALID),
        ("a/../../b", NTStatus.OBJECT_NAME_INVALID),
        ("nul\0byte", NTStatus.OBJECT_NAME_INVALID),
        ("a:stream", NTStatus.OBJECT_NAME_INVALID),
        ("wild*", NTStatus.OBJECT_NAME_INVALID),
        ("x" * 256, NTStatus.OBJECT_NAME_INVALID),
        ("bad\ud800surrogate", NTStatus.OBJECT_NAME_INVALID),
    ],
)
def test_split_path_rejects(path: str, status: int) -> None:
    with pytest.raises(BackendError) as ei:
        split_path(path)
    assert ei.value.status == status


def test_split_path_accepts() -> None:
    assert split_path("") == ()
    assert split_path("a\\B c\\d.txt") == ("a", "B c", "d.txt")
    assert split_path("dir\\") == ("dir",)
    assert split_path("f.txt::$DATA") == ("f.txt",)
    assert split_path("\u00e9t\u00e9") == ("\u00e9t\u00e9",)


@given(stt.text(max_size=40))
def test_split_path_never_escapes(path: str) -> None:
    try:
        comps = split_path(path)
    except BackendError as e:
        assert e.status in (NTStatus.OBJECT_NAME_INVALID, NTStatus.INVALID_PARAMETER)
        return
    for c in comps:
        assert c not in ("", ".", "..")
        assert "/" not in c and "\0" not in c and "\\" not in c


def _read(share: PosixShare, comps: tuple[str, ...]) -> bytes:
    r = share.open_sync(comps, Disposition.OPEN, 0, want_write=False)
    try:
        buf = bytearray(100)
        n = share.read_into_sync(r.handle, memoryview(buf), 0)
        return bytes(buf[:n])
    finally:
        share.close_sync(r.handle)


def test_symlink_to_root_is_not_followed(share: PosixShare, share_root: Path) -> None:
    (share_root / "root").symlink_to("/")
    with pytest.raises(BackendError) as ei:
        _read(share, ("root", "etc", "passwd"))
    assert ei.value.status == NTStatus.OBJECT_PATH_NOT_FOUND
    with pytest.raises(BackendError) as ei:
        share.open_sync(("root",), Disposition.OPEN, 0, want_write=False)
    assert ei.value.status == NTStatus.ACCESS_DENIED


def test_symlink_to_sibling_cannot_read_or_write(share: PosixShare, share_root: Path) -> None:
    outside = share_root.parent / "outside"
    (share_root / "sib").symlink_to(outside)
    (share_root / "file").symlink_to(outside / "secret")
    (share_root / "dangling").symlink_to(outside / "new")
    for comps in [("sib", "secret"), ("file",)]:
        with pytest.raises(BackendError):
            _read(share, comps)
    for disp in Disposition:
        for comps in [("sib", "x"), ("file",), ("dangling",)]:
            with pytest.raises(BackendError):
                share.open_sync(comps, disp, 0, want_write=True)
    # and nothing was created or changed outside
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"outside secret"


def test_symlinks_are_left_out_of_listings_and_not_renamed_onto(
    share: PosixShare, share_root: Path
) -> None:
    (share_root / "esc").symlink_to(share_root.parent / "outside")
    (share_root / "real").write_bytes(b"x")
    root = share.open_sync((), Disposition.OPEN, 0, want_write=False).handle
    names = share.list_names_sync(root)
    stats = {n: share.stat_entry_sync(root, n) for n in names}
    assert stats["esc"] is None
    assert stats["real"] is not None
    f = share.open_sync(("real",), Disposition.OPEN, 0, want_write=True).handle
    with pytest.raises(BackendError) as ei:
        share.rename_sync(f, ("esc", "moved"), replace=True)
    assert ei.value.status == NTStatus.OBJECT_PATH_NOT_FOUND
    assert (share_root / "real").exists()


def test_swap_dir_for_symlink_race(share: PosixShare, share_root: Path) -> None:
    """A directory is swapped with a symlink to a sibling folder as fast as a thread can
    while the backend keeps opening ``d\\secret``: every successful read sees the inside
    file, never the outside one."""
    d = share_root / "d"
    d.mkdir()
    (d / "secret").write_bytes(b"inside")
    link = share_root / "link"
    link.symlink_to(share_root.parent / "outside")
    spare = share_root / "spare"
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            os.rename(d, spare)
            os.rename(link, d)
            os.rename(d, link)
            os.rename(spare, d)

    t = threading.Thread(target=swapper)
    t.start()
    seen = set()
    try:
        for _ in range(3000):
            try:
                seen.add(_read(share, ("d", "secret")))
            except BackendError as e:
                assert e.status in (
                    NTStatus.OBJECT_PATH_NOT_FOUND,
                    NTStatus.OBJECT_NAME_NOT_FOUND,
                )
    finally:
        stop.set()
        t.join()
    assert b"outside secret" not in seen
    assert seen <= {b"inside"}


def test_fifo_and_devices_are_refused(share: PosixShare, share_root: Path) -> None:
    os.mkfifo(share_root / "fifo")
    with pytest.raises(BackendError) as ei:
        share.open_sync(("fifo",), Disposition.OPEN, 0, want_write=False)
    assert ei.value.status == NTStatus.ACCESS_DENIED


def test_intermediate_file_is_path_not_found(share: PosixShare, share_root: Path) -> None:
    (share_root / "f").write_bytes(b"")
    with pytest.raises(BackendError) as ei:
        share.open_sync(("f", "x"), Disposition.OPEN_IF, 0, want_write=True)
    assert ei.value.status == NTStatus.OBJECT_PATH_NOT_FOUND
    with pytest.raises(BackendError) as ei:
        share.open_sync(("nodir", "x"), Disposition.OPEN_IF, CreateOptions(0), want_write=True)
    assert ei.value.status == NTStatus.OBJECT_PATH_NOT_FOUND
