"""The copy manager: EXTENDED COPY (LID1), RECEIVE COPY RESULTS and VPD page 8Fh
(SPC-4 5.17, 6.4, 6.18, 7.8.17), with byte-exact parameter lists."""

from __future__ import annotations

import struct

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scsi import Target
from scsi.sense import SenseError, Status
from scsi.xcopy import LIMITS, _copy_fds, parse_parameter_list

from .conftest import INI_A, INI_B, data, ready, run, sense

THIN_NAA = "6001405400838aec400838aec14099a5"  # LuIdentity.for_name("thin")
THICK_NAA = "60014058aa82ce5a8aa82ce5a4176a5b"


def cdb(n: int) -> bytes:
    """EXTENDED COPY (LID1), PARAMETER LIST LENGTH n (SPC-4 6.4.1 table 102)."""
    return bytes.fromhex("83 00 00000000 00000000") + struct.pack(">I", n) + b"\x00\x00"


def rcr(sa: int, list_id: int = 0, alloc: int = 1024) -> bytes:
    return bytes((0x84, sa, list_id)) + bytes(7) + struct.pack(">I", alloc) + b"\x00\x00"


def ident(naa: str, block_length: int) -> bytes:
    """An identification CSCD descriptor (E4h) naming a unit by its NAA designator."""
    return (
        bytes.fromhex("e4 00 0000 01 03 00 10")
        + bytes.fromhex(naa)
        + bytes(4)
        + bytes((0,))
        + block_length.to_bytes(3, "big")
    )


def b2b(src: int, dst: int, blocks: int, src_lba: int, dst_lba: int, dc: int = 0) -> bytes:
    return struct.pack(">BBHHHHHQQ", 0x02, dc << 1, 0x18, src, dst, 0, blocks, src_lba, dst_lba)


def plist(cscds: list[bytes], segs: list[bytes], list_id: int = 1, usage: int = 0) -> bytes:
    c, s = b"".join(cscds), b"".join(segs)
    return struct.pack(">BBHIII", list_id, usage << 3, len(c), 0, len(s), 0) + c + s


async def xcopy(t: Target, params: bytes, **kw: object) -> tuple[int, bytes]:
    r = await run(t, cdb(len(params)), params, **kw)  # type: ignore[arg-type]
    return r.status, bytes(r.sense)


async def write(t: Target, lun: int, lba: int, payload: bytes) -> None:
    bs = t.luns[lun].block_size
    c = bytes.fromhex("8a 00") + struct.pack(">QIBB", lba, len(payload) // bs, 0, 0)
    assert (await run(t, c, payload, lun=lun)).status == Status.GOOD


async def read(t: Target, lun: int, lba: int, blocks: int) -> bytes:
    c = bytes.fromhex("88 00") + struct.pack(">QIBB", lba, blocks, 0, 0)
    return data(await run(t, c, lun=lun))


# -- SPC-4 6.4: EXTENDED COPY (LID1) ------------------------------------------------------


async def test_spc4_6_4_block_to_block_copy_within_a_unit(target: Target) -> None:
    await ready(target)
    await write(target, 0, 0, b"A" * 512 * 16)
    params = bytes.fromhex(
        # header: LIST ID 1, hold, CSCD list 32 bytes, segment list 28 bytes
        "01 00 0020 00000000 0000001c 00000000"
        # E4h CSCD: LU, NAA designator of "thin", DISK BLOCK LENGTH 512
        "e4 00 0000 01 03 00 10" + THIN_NAA + "00000000 00 000200"
        # 02h segment: CSCD 0 -> CSCD 0, 16 blocks, LBA 0 -> LBA 2032
        "02 00 0018 0000 0000 0000 0010 0000000000000000 00000000000007f0"
    )
    assert params == plist([ident(THIN_NAA, 512)], [b2b(0, 0, 16, 0, 2032)])
    assert await xcopy(target, params) == (Status.GOOD, b"")
    assert await read(target, 0, 2032, 16) == b"A" * 512 * 16


async def test_spc4_6_4_copy_between_units_of_different_block_sizes(target: Target) -> None:
    await ready(target)
    await ready(target, lun=1)
    payload = bytes(range(256)) * 64  # 16 KiB: 32 blocks of 512, 4 of 4096
    await write(target, 0, 100, payload)
    params = plist(
        [ident(THIN_NAA, 512), ident(THICK_NAA, 4096)],
        [b2b(0, 1, 4, 100, 10, dc=1), b2b(1, 0, 4, 10, 1000)],
    )
    assert await xcopy(target, params) == (Status.GOOD, b"")
    assert await read(target, 1, 10, 4) == payload
    assert await read(target, 0, 1000, 32) == payload


async def test_spc4_6_4_overlapping_ranges_copy_as_read_then_write(target: Target) -> None:
    await ready(target)
    payload = b"".join(bytes((i,)) * 512 for i in range(64))
    await write(target, 0, 0, payload)
    params = plist([ident(THIN_NAA, 512)], [b2b(0, 0, 64, 0, 8)])
    assert await xcopy(target, params) == (Status.GOOD, b"")
    assert await read(target, 0, 8, 64) == payload


async def test_spc4_6_4_1_empty_parameter_list_copies_nothing(target: Target) -> None:
    await ready(target)
    assert await xcopy(target, b"") == (Status.GOOD, b"")


async def test_spc4_6_4_3_list_shorter_than_its_lengths(target: Target) -> None:
    await ready(target)
    full = plist([ident(THIN_NAA, 512)], [b2b(0, 0, 1, 0, 1)])
    for n in (15, 47, len(full) - 1):
        r = await run(target, cdb(n), full[:n])
        assert sense(r) == (0x5, 0x1A, 0x00)


async def test_spc4_6_4_3_descriptor_limits(target: Target) -> None:
    await ready(target)
    one = ident(THIN_NAA, 512)
    seg = b2b(0, 0, 1, 0, 1)
    r = await run(target, *_args(plist([one] * (LIMITS.max_cscd_descriptors + 1), [seg])))
    assert sense(r) == (0x5, 0x26, 0x06)
    r = await run(target, *_args(plist([one], [seg] * (LIMITS.max_segment_descriptors + 1))))
    assert sense(r) == (0x5, 0x26, 0x08)
    many = plist([one] * 9, [seg] * 140)  # beyond MAXIMUM DESCRIPTOR LIST LENGTH
    assert sense(await run(target, *_args(many))) == (0x5, 0x1A, 0x00)


def _args(params: bytes) -> tuple[bytes, bytes]:
    return cdb(len(params)), params


async def test_spc4_6_4_3_unsupported_descriptor_types(target: Target) -> None:
    await ready(target)
    fc = b"\xe0" + ident(THIN_NAA, 512)[1:]  # Fibre Channel N_Port_Name CSCD
    r = await run(target, *_args(plist([fc], [b2b(0, 0, 1, 0, 1)])))
    assert r.sense == bytes.fromhex("70 00 05 00000000 0a 00000000 26 07 00 80 0010")
    stream = bytes.fromhex("03 00 0010") + bytes(16)  # stream-to-stream segment
    r = await run(target, *_args(plist([ident(THIN_NAA, 512)], [stream])))
    assert sense(r) == (0x5, 0x26, 0x09)


async def test_spc4_6_4_3_list_id_usage(target: Target) -> None:
    await ready(target)
    seg = [b2b(0, 0, 1, 0, 1)]
    r = await run(target, *_args(plist([ident(THIN_NAA, 512)], seg, usage=0b01)))
    assert sense(r) == (0x5, 0x26, 0x00)
    r = await run(target, *_args(plist([ident(THIN_NAA, 512)], seg, list_id=5, usage=0b11)))
    assert sense(r) == (0x5, 0x26, 0x00)
    r = await run(target, *_args(plist([ident(THIN_NAA, 512)], seg, list_id=0, usage=0b11)))
    assert r.status == Status.GOOD


async def test_spc4_6_4_6_copy_target_not_reachable(target: Target) -> None:
    await ready(target)
    unknown = ident("6" + "0" * 31, 512)
    r = await run(target, *_args(plist([unknown], [b2b(0, 0, 1, 0, 1)])))
    # COPY ABORTED, COPY TARGET DEVICE NOT REACHABLE; segment 0 in COMMAND-SPECIFIC
    # INFORMATION, segment pointer (SD=1) at its SOURCE CSCD DESCRIPTOR INDEX.
    assert r.sense == bytes.fromhex("70 00 0a 00000000 0a 00000000 0d 02 00 a0 0004")
    # An index past the CSCD list is no reachable device either.
    r = await run(target, *_args(plist([ident(THIN_NAA, 512)], [b2b(0, 1, 1, 0, 1)])))
    assert r.sense == bytes.fromhex("70 00 0a 00000000 0a 00000000 0d 02 00 a0 0006")


async def test_spc4_6_4_6_designators_resolve_only_among_visible_luns(target: Target) -> None:
    target.set_masking(lambda n: {0} if n == INI_B else None)
    await ready(target, INI_B)
    params = plist([ident(THIN_NAA, 512), ident(THICK_NAA, 4096)], [b2b(1, 0, 1, 0, 0)])
    r = await run(target, *_args(params), nexus=INI_B)
    assert sense(r) == (0xA, 0x0D, 0x02)
    await ready(target, INI_A)
    assert (await run(target, *_args(params), nexus=INI_A)).status == Status.GOOD


async def test_spc4_6_4_segment_beyond_capacity_is_copy_aborted(target: Target) -> None:
    await ready(target)
    r = await run(target, *_args(plist([ident(THIN_NAA, 512)], [b2b(0, 0, 2048, 0, 2047)])))
    assert r.sense == bytes.fromhex("70 00 0a 00000000 0a 00000000 00 00 00 a0 0014")


async def test_spc4_6_4_wrong_disk_block_length(target: Target) -> None:
    await ready(target)
    r = await run(target, *_args(plist([ident(THIN_NAA, 4096)], [b2b(0, 0, 1, 0, 1)])))
    assert r.sense == bytes.fromhex("70 00 05 00000000 0a 00000000 26 00 00 80 002d")


async def test_spc4_6_4_write_protected_destination(target: Target) -> None:
    await ready(target)
    target.luns[1].read_only = True
    params = plist([ident(THIN_NAA, 512), ident(THICK_NAA, 4096)], [b2b(0, 1, 8, 0, 0)])
    assert sense(await run(target, *_args(params))) == (0x7, 0x27, 0x00)


async def test_spc4_6_4_destination_reserved_by_another_nexus(target: Target) -> None:
    await ready(target, INI_B, lun=1)
    assert (await run(target, bytes.fromhex("16 00 00 00 00 00"), nexus=INI_B, lun=1)).status == 0
    await ready(target)
    params = plist([ident(THIN_NAA, 512), ident(THICK_NAA, 4096)], [b2b(0, 1, 8, 0, 0)])
    assert sense(await run(target, *_args(params))) == (0xA, 0x0D, 0x02)


# -- SPC-4 6.18: RECEIVE COPY RESULTS --------------------------------------------------


async def test_spc4_6_18_3_receive_copy_status(target: Target) -> None:
    await ready(target)
    assert sense(await run(target, rcr(0x00, 7))) == (0x5, 0x24, 0x00)
    params = plist([ident(THIN_NAA, 512)], [b2b(0, 0, 8, 0, 8)] * 2, list_id=7)
    assert await xcopy(target, params) == (Status.GOOD, b"")
    # AVAILABLE DATA 8; completed without error; 2 segments; 8192 bytes.
    assert data(await run(target, rcr(0x00, 7))) == bytes.fromhex("00000008 01 0002 00 00002000")
    # Held results of a completed copy are reported once (SPC-4 5.17.4.3).
    assert sense(await run(target, rcr(0x00, 7))) == (0x5, 0x24, 0x00)
    # A failed copy: completed with error, no segment processed.
    bad = plist([ident(THIN_NAA, 512)], [b2b(0, 0, 8, 2047, 0)], list_id=7)
    assert (await xcopy(target, bad))[0] == Status.CHECK_CONDITION
    assert data(await run(target, rcr(0x00, 7))) == bytes.fromhex("00000008 02 0000 00 00000000")
    # LIST ID USAGE 10b holds nothing; results are per I_T nexus.
    nohold = plist([ident(THIN_NAA, 512)], [b2b(0, 0, 8, 0, 8)], list_id=7, usage=0b10)
    assert await xcopy(target, nohold) == (Status.GOOD, b"")
    assert sense(await run(target, rcr(0x00, 7))) == (0x5, 0x24, 0x00)
    assert await xcopy(target, params) == (Status.GOOD, b"")
    await ready(target, INI_B)
    assert sense(await run(target, rcr(0x00, 7), nexus=INI_B)) == (0x5, 0x24, 0x00)
    target.i_t_nexus_loss(INI_A)
    await ready(target)
    assert sense(await run(target, rcr(0x00, 7))) == (0x5, 0x24, 0x00)


async def test_spc4_6_18_4_receive_copy_operating_parameters(target: Target) -> None:
    await ready(target)
    assert data(await run(target, rcr(0x03))) == bytes.fromhex(
        "0000002a"  # AVAILABLE DATA
        "00 000000"  # SNLID=0
        "0008 0040"  # MAXIMUM CSCD / SEGMENT DESCRIPTOR COUNT
        "00001000"  # MAXIMUM DESCRIPTOR LIST LENGTH
        "10000000"  # MAXIMUM SEGMENT LENGTH (256 MiB)
        "00000000 00000000 00000000"  # inline, held data, stream transfer size
        "0000 0010 10"  # TOTAL / MAXIMUM CONCURRENT COPIES
        "00 00 00 000000"  # granularities
        "02 02 e4"  # IMPLEMENTED DESCRIPTOR LIST
    )
    assert data(await run(target, rcr(0x03, alloc=4))) == bytes.fromhex("0000002a")
    assert sense(await run(target, rcr(0x01))) == (0x5, 0x24, 0x00)


async def test_spc4_6_35_rsoc_lists_the_copy_commands(target: Target) -> None:
    await ready(target)
    d = data(await run(target, bytes.fromhex("a3 0c 02 83 0000 00000100 00 00")))
    assert d == bytes.fromhex("00 03 0010 83 1f 0000000000000000 ffffffff 00 07")
    d = data(await run(target, bytes.fromhex("a3 0c 02 84 0003 00000100 00 00")))
    assert d == bytes.fromhex("00 03 0010 84 1f ff 00000000000000 ffffffff 00 07")


# -- SPC-4 7.8.17: Third-party Copy VPD page ---------------------------------------------


async def test_spc4_7_8_17_third_party_copy_vpd_page(target: Target) -> None:
    assert data(await run(target, bytes.fromhex("12 01 8f 0100 00"))) == bytes.fromhex(
        "00 8f 0060"
        # Supported Commands: 83h {00h}, 84h {00h, 03h}
        "0001 0008 07 83 01 00 84 02 00 03"
        # Parameter Data
        "0004 001c 00000000 0008 0040 00001000 00000000 000000000000000000000000"
        # Supported Descriptors: 02h, E4h
        "0008 0004 02 02 e4 00"
        # Supported CSCD Descriptor IDs: none
        "000c 0004 0000 0000"
        # General Copy Operations
        "8001 0020 00000010 00000010 10000000 00 00" + "00" * 18
    )
    assert data(await run(target, bytes.fromhex("12 00 00 0024 00")))[5] & 0x08  # 3PC


# -- the copy itself ---------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), [(0, 4096), (4096, 0), (0, 1024), (1024, 0)])
async def test_copy_fds_overlap_within_one_file(tmp_path: object, src: int, dst: int) -> None:
    import os
    from pathlib import Path

    path = Path(str(tmp_path)) / "f"
    payload = os.urandom(16384)
    path.write_bytes(bytes(src) + payload + bytes(8192))
    fd = os.open(path, os.O_RDWR)
    try:
        await trio.to_thread.run_sync(_copy_fds, fd, fd, src, dst, 16384)
    finally:
        os.close(fd)
    assert path.read_bytes()[dst : dst + 16384] == payload


# -- fuzzing -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parse_parameter_list_fuzz_raw(blob: bytes) -> None:
    try:
        parse_parameter_list(blob)
    except SenseError as e:
        assert e.key in (0x5,)


_cscd = st.builds(
    lambda t, b1, dlen, body: bytes((t, b1, 0, 0, 1, 3, 0, dlen)) + body,
    st.sampled_from([0xE4, 0xE4, 0xE0, 0xEA, 0x12]),
    st.integers(0, 255),
    st.integers(0, 24),
    st.binary(min_size=24, max_size=24),
)
_seg = st.builds(
    lambda t, ln, rest: bytes((t, 0)) + struct.pack(">H", ln) + rest,
    st.sampled_from([0x02, 0x02, 0x03, 0xBF]),
    st.sampled_from([0x18, 0x18, 0x10, 0]),
    st.binary(min_size=24, max_size=24),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_cscd, max_size=10),
    st.lists(_seg, max_size=70),
    st.integers(0, 255),
    st.integers(0, 3),
    st.integers(-40, 40),
)
def test_parse_parameter_list_fuzz_structured(
    cscds: list[bytes], segs: list[bytes], list_id: int, usage: int, cut: int
) -> None:
    blob = plist(cscds, segs, list_id=list_id, usage=usage)
    blob = blob[: len(blob) + cut] if cut < 0 else blob + bytes(cut)
    try:
        p = parse_parameter_list(blob)
    except SenseError as e:
        assert e.key == 0x5 and e.asc in (0x1A, 0x26)
        return
    if p is not None:
        assert len(p.cscds) <= LIMITS.max_cscd_descriptors
        assert len(p.segments) <= LIMITS.max_segment_descriptors


async def test_spc4_6_4_aborted_copy_releases_its_list_identifier(target: Target) -> None:
    """A copy whose task is cancelled (ABORT TASK) reports completed-with-error and frees
    its LIST IDENTIFIER for the next EXTENDED COPY."""
    await ready(target)
    params = plist([ident(THIN_NAA, 512)], [b2b(0, 0, 8, 0, 8)], list_id=9)
    started = trio.Event()
    release = trio.Event()
    manager = target.copy_manager
    real = manager._copy_segment

    async def slow(plan: object) -> None:
        started.set()
        await release.wait()

    manager._copy_segment = slow  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(xcopy, target, params)
        await started.wait()
        r = await run(target, rcr(0x00, 9))
        assert data(r) == bytes.fromhex("00000008 00 0000 00 00000000")  # in progress
        r = await run(target, *_args(params))
        assert sense(r) == (0x5, 0x00, 0x16)  # OPERATION IN PROGRESS
        nursery.cancel_scope.cancel()
    assert data(await run(target, rcr(0x00, 9))) == bytes.fromhex("00000008 02 0000 00 00000000")
    manager._copy_segment = real  # type: ignore[method-assign]
    assert await xcopy(target, params) == (Status.GOOD, b"")
    assert manager.statistics()["running"] == 0


async def test_spc4_6_4_3_failing_copy_target_is_third_party_device_failure(
    target: Target,
) -> None:
    await ready(target)

    async def broken(plan: object) -> None:
        raise OSError(5, "Input/output error")

    target.copy_manager._copy_segment = broken  # type: ignore[method-assign]
    params = plist([ident(THIN_NAA, 512)], [b2b(0, 0, 8, 0, 8)] * 2, list_id=3)
    r = await run(target, *_args(params))
    assert r.sense == bytes.fromhex("70 00 0a 00000000 0a 00000000 0d 01 00 000000")
    assert data(await run(target, rcr(0x00, 3))) == bytes.fromhex("00000008 02 0000 00 00000000")
    assert target.statistics()["copy_manager"] == {
        "copies": 0,
        "copy_bytes": 0,
        "copy_errors": 1,
        "running": 0,
        "held_results": 0,
    }


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    naas=st.lists(st.sampled_from([THIN_NAA, THICK_NAA, "6" + "1" * 31]), min_size=1, max_size=3),
    sizes=st.lists(st.sampled_from([512, 4096]), min_size=3, max_size=3),
    segs=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 3),
            st.integers(0, 300),
            st.integers(0, 2100),
            st.integers(0, 2100),
            st.integers(0, 1),
        ),
        max_size=4,
    ),
    usage=st.sampled_from([0, 2, 3]),
)
def test_extended_copy_through_the_target_fuzz(
    target: Target,
    naas: list[str],
    sizes: list[int],
    segs: list[tuple[int, int, int, int, int, int]],
    usage: int,
) -> None:
    """Whatever the descriptors say, EXTENDED COPY ends in GOOD or CHECK CONDITION with
    fixed sense data, and the copy manager is idle afterwards."""
    params = plist(
        [ident(n, sizes[i]) for i, n in enumerate(naas)],
        [b2b(*s) for s in segs],
        list_id=0 if usage == 3 else 4,
        usage=usage,
    )

    async def one() -> None:
        r = await run(target, *_args(params), lun=0)
        assert r.status in (Status.GOOD, Status.CHECK_CONDITION)
        if r.status == Status.CHECK_CONDITION:
            assert len(r.sense) == 18 and r.sense[2] in (0x5, 0x6, 0x7, 0xA)
        assert target.copy_manager.statistics()["running"] == 0

    trio.run(one)
