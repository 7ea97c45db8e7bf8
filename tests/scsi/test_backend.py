"""LUN backends: sparse (thin) and preallocated (thick) files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scsi import FileBackend, LogicalUnit
from scsi.backend import DEALLOCATED, MAPPED


async def test_thin_file_is_sparse_and_unmap_punches_holes(tmp_path: Path) -> None:
    be = FileBackend.create(tmp_path / "t.img", 4 << 20, block_size=4096, thin=True)
    try:
        assert be.num_blocks == 1024
        assert os.stat(be.path).st_blocks == 0
        assert await be.lba_status(0) == (1024, DEALLOCATED)
        await be.write(8, [b"\x01" * 4096, memoryview(b"\x02" * 8192)], fua=True)
        assert await be.read(8, 3) == b"\x01" * 4096 + b"\x02" * 8192
        assert await be.lba_status(0) == (8, DEALLOCATED)
        n, status = await be.lba_status(8)
        assert status == MAPPED and n >= 3
        await be.unmap([(8, 3)])
        assert await be.read(8, 3) == bytes(3 * 4096)
        assert await be.lba_status(0) == (1024, DEALLOCATED)
        await be.write_same(100, 5, b"\xab" * 4096)
        assert await be.read(100, 5) == b"\xab" * 5 * 4096
        await be.flush()
        # Cached data is read without a thread hop (RWF_NOWAIT).
        hits = be.nowait_hits
        await be.read(100, 5)
        assert be.nowait_hits == hits + 1
    finally:
        be.close()


async def test_thick_file_is_allocated(tmp_path: Path) -> None:
    be = FileBackend.create(tmp_path / "k.img", 1 << 20, block_size=512, thin=False)
    try:
        assert os.stat(be.path).st_blocks * 512 >= 1 << 20
        assert await be.lba_status(0) == (2048, MAPPED)
        await be.write(0, [b"x" * 512])
        await be.unmap([(0, 1)])  # zeroes, stays allocated
        assert await be.read(0, 1) == bytes(512)
    finally:
        be.close()


def test_block_size_must_be_512_or_4096(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FileBackend.create(tmp_path / "x.img", 1 << 20, block_size=1024)
    with pytest.raises(FileExistsError):
        FileBackend.create(tmp_path / "y.img", 1 << 20).close()
        FileBackend.create(tmp_path / "y.img", 1 << 20)


def test_logical_unit_definition_round_trip(tmp_path: Path) -> None:
    be = FileBackend.create(tmp_path / "l.img", 1 << 20)
    try:
        lu = LogicalUnit("vm1-disk0", be)
        lu.alua_override[2] = 1
        d = lu.to_dict()
        again = LogicalUnit.from_dict(d, be)
        assert again.identity == lu.identity
        assert again.to_dict() == d
        # The same name gives the same identity (NAA, serial) on every start.
        assert LogicalUnit("vm1-disk0", be).identity.naa_bytes() == lu.identity.naa_bytes()
    finally:
        be.close()
