"""Hypothesis: parsers and the dispatcher raise SenseError or answer, nothing else."""

from __future__ import annotations

import contextlib

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scsi import Target
from scsi.alua import parse_stpg
from scsi.cdb import decode_lun, parse_rw
from scsi.commands import parse_unmap
from scsi.modepages import ModePages, parse_mode_select
from scsi.pr import parse_pr_out
from scsi.sense import SenseError, Status

from .conftest import INI_A, run

OPS = [
    0x00,
    0x03,
    0x08,
    0x0A,
    0x12,
    0x15,
    0x16,
    0x17,
    0x1A,
    0x1B,
    0x1E,
    0x25,
    0x28,
    0x2A,
    0x2E,
    0x2F,
    0x34,
    0x35,
    0x37,
    0x41,
    0x42,
    0x55,
    0x56,
    0x57,
    0x5A,
    0x5E,
    0x5F,
    0x83,
    0x84,
    0x88,
    0x89,
    0x8A,
    0x8B,
    0x8E,
    0x8F,
    0x90,
    0x91,
    0x93,
    0x9C,
    0x9E,
    0xA0,
    0xA3,
    0xA4,
    0xA8,
    0xAA,
    0xAE,
    0xAF,
    0xB7,
]


@given(st.binary(max_size=64))
def test_parse_rw_fuzz(cdb: bytes) -> None:
    with contextlib.suppress(SenseError):
        parse_rw(cdb)


@given(st.binary(max_size=600), st.booleans())
def test_mode_select_fuzz(plist: bytes, ten: bool) -> None:
    mp = ModePages()
    with contextlib.suppress(SenseError):
        mp.select(parse_mode_select(plist, ten=ten, block_size=512))


@given(st.binary(max_size=300))
def test_unmap_parameter_list_fuzz(plist: bytes) -> None:
    try:
        for lba, n in parse_unmap(plist, 1000):
            assert lba + n <= 1000
    except SenseError:
        pass


@given(st.integers(0, 7), st.binary(max_size=300))
def test_pr_out_parameter_list_fuzz(sa: int, plist: bytes) -> None:
    with contextlib.suppress(SenseError):
        parse_pr_out(sa, plist)


@given(st.binary(max_size=100))
def test_stpg_fuzz(plist: bytes) -> None:
    with contextlib.suppress(SenseError):
        parse_stpg(plist)


@given(st.binary(min_size=8, max_size=8))
def test_lun_field_fuzz(field: bytes) -> None:
    assert -1 <= decode_lun(field) < 0x4000


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    op=st.sampled_from(OPS),
    rest=st.binary(min_size=0, max_size=20),
    data=st.one_of(st.none(), st.binary(max_size=1100)),
)
def test_dispatcher_fuzz(target: Target, op: int, rest: bytes, data: bytes | None) -> None:
    async def one() -> None:
        cdb = bytes((op,)) + rest
        with contextlib.suppress(SenseError):
            target.data_out_length(cdb, 0)
        r = await run(target, cdb, data, nexus=INI_A, lun=0, expected_in=4096)
        assert r.status in (Status.GOOD, Status.CHECK_CONDITION, Status.RESERVATION_CONFLICT)
        if r.status == Status.CHECK_CONDITION:
            assert len(r.sense) == 18
        # Leave no software write protection or reservation behind for the next example.
        target.luns[0].mode.reset()
        target.luns[0].reserved_by = None

    trio.run(one)
