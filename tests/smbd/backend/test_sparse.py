"""Sparse files stay sparse; SET_ZERO_DATA ([MS-FSA] 2.1.5.10.37), QUERY_ALLOCATED_RANGES
(2.1.5.10.22), allocation size (2.1.5.14.1), copy_file_range."""

from __future__ import annotations

import os
from pathlib import Path

from smbd.backend import Disposition, FileAttributes, PosixShare

MiB = 1 << 20


def test_writes_past_eof_leave_holes(share: PosixShare, share_root: Path) -> None:
    h = share.open_sync(("f",), Disposition.CREATE, 0, want_write=True).handle
    share.write_sync(h, memoryview(b"a" * 4096), 0)
    share.write_sync(h, memoryview(b"b" * 4096), 64 * MiB)
    st = os.stat(share_root / "f")
    assert st.st_size == 64 * MiB + 4096
    assert st.st_blocks * 512 <= 64 * 1024  # two blocks-ish, not 64 MiB
    ranges, more = share.allocated_ranges_sync(h, 0, 1 << 40, 16)
    assert not more
    assert ranges == [(0, 4096), (64 * MiB, 4096)]
    ranges, more = share.allocated_ranges_sync(h, 0, 1 << 40, 1)
    assert ranges == [(0, 4096)] and more
    assert share.allocated_ranges_sync(h, 4096, 4096, 16) == ([], False)


def test_extend_by_end_of_file_is_a_hole(share: PosixShare, share_root: Path) -> None:
    h = share.open_sync(("f",), Disposition.CREATE, 0, want_write=True).handle
    share.set_end_of_file_sync(h, 1 << 30)
    st = share.stat_sync(h)
    assert st.end_of_file == 1 << 30
    assert st.allocation_size == 0
    share.set_end_of_file_sync(h, 10)
    assert share.stat_sync(h).end_of_file == 10


def test_zero_data_punches_holes_in_sparse_files(share: PosixShare, share_root: Path) -> None:
    h = share.open_sync(("f",), Disposition.CREATE, 0, want_write=True).handle
    share.write_sync(h, memoryview(b"x" * (4 * MiB)), 0)
    share.set_sparse_sync(h, True)
    assert share.stat_sync(h).attributes & FileAttributes.SPARSE_FILE
    share.zero_range_sync(h, MiB, 3 * MiB)
    share.zero_range_sync(h, 8 * MiB, 9 * MiB)  # beyond EOF: no extension
    st = share.stat_sync(h)
    assert st.end_of_file == 4 * MiB
    assert st.allocation_size <= 2 * MiB + 64 * 1024
    assert share.allocated_ranges_sync(h, 0, 1 << 40, 8)[0] == [(0, MiB), (3 * MiB, MiB)]
    data = (share_root / "f").read_bytes()
    assert data == b"x" * MiB + bytes(2 * MiB) + b"x" * MiB


def test_zero_data_keeps_non_sparse_files_allocated(share: PosixShare, share_root: Path) -> None:
    h = share.open_sync(("f",), Disposition.CREATE, 0, want_write=True).handle
    share.write_sync(h, memoryview(b"x" * (2 * MiB)), 0)
    share.zero_range_sync(h, 0, MiB)
    st = share.stat_sync(h)
    assert st.allocation_size >= 2 * MiB
    assert (share_root / "f").read_bytes() == bytes(MiB) + b"x" * MiB


def test_allocation_size(share: PosixShare) -> None:
    h = share.open_sync(("f",), Disposition.CREATE, 0, want_write=True).handle
    share.set_allocation_sync(h, 8 * MiB)
    st = share.stat_sync(h)
    assert st.end_of_file == 0 and st.allocation_size >= 8 * MiB
    share.write_sync(h, memoryview(b"y" * 100), 0)
    share.set_allocation_sync(h, 10)  # below EOF truncates
    assert share.stat_sync(h).end_of_file == 10
    s = share.open_sync(("s",), Disposition.CREATE, 0, want_write=True).handle
    share.set_sparse_sync(s, True)
    share.set_allocation_sync(s, 8 * MiB)  # sparse: no reservation
    assert share.stat_sync(s).allocation_size == 0


def test_copy_range_and_read_into(share: PosixShare) -> None:
    src = share.open_sync(("src",), Disposition.CREATE, 0, want_write=True).handle
    dst = share.open_sync(("dst",), Disposition.CREATE, 0, want_write=True).handle
    payload = os.urandom(3 * MiB + 123)
    share.write_sync(src, memoryview(payload), 0)
    assert share.copy_range_sync(src, dst, MiB, 10, 2 * MiB) == 2 * MiB
    assert share.copy_range_sync(src, dst, 3 * MiB, 4 * MiB, MiB) == 123  # short at source EOF
    buf = bytearray(2 * MiB)
    n = share.read_into_sync(dst, memoryview(buf), 10)
    assert n == 2 * MiB
    assert bytes(buf[:n]) == payload[MiB : 3 * MiB]


def test_xattr_blocks_are_not_allocation(share: PosixShare) -> None:
    """Extended attributes that spill into a block of their own (EAs, descriptors) are
    not the file's allocation: an empty file reports 0, as NTFS would."""
    h = share.open_sync(("f",), Disposition.CREATE, 0, want_write=True).handle
    for i in range(8):
        share.set_ea_sync(h, f"EA{i}".encode(), b"v" * 200)
    assert os.fstat(h.fd).st_blocks > 0  # the xattr block
    assert share.stat_sync(h).allocation_size == 0
    root = share.open_sync((), Disposition.OPEN, 0, want_write=False).handle
    entry = share.stat_entry_sync(root, "f")
    assert entry is not None and entry.allocation_size == 0  # listings agree
    share.set_allocation_sync(h, MiB)
    assert share.stat_sync(h).allocation_size >= MiB
