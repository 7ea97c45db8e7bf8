"""[C706] 14 NDR (as [MS-RPCE] 2.2.5 uses it): alignment, conformant varying strings,
[unique] pointers and where their referents go."""

from __future__ import annotations

import pytest

from smbd.rpc.ndr import NdrError, NdrReader, NdrWriter
from smbd.rpc.pdu import Fault


def test_14_2_2_alignment() -> None:
    w = NdrWriter()
    w.u16(1)
    w.u32(2)
    w.u16(3)
    w.u64(4)
    assert w.getvalue() == bytes.fromhex("010000000200000003000000000000000400000000000000")


def test_14_3_4_conformant_varying_string() -> None:
    w = NdrWriter()
    w.string("ab")
    w.u32(7)
    assert w.getvalue() == bytes.fromhex(
        "03000000"  # max_count
        "00000000"  # offset
        "03000000"  # actual_count (with the NUL)
        "610062000000"  # "ab\0"
        "0000"  # align
        "07000000"
    )
    r = NdrReader(w.getvalue())
    assert r.string() == "ab"
    assert r.u32() == 7
    r.end()


def test_14_3_12_3_embedded_pointers_are_deferred() -> None:
    """Referents of embedded pointers follow the construct, in order; a referent's own
    pointers follow that referent."""
    w = NdrWriter()
    with w.top():
        w.u32(2)  # array of two structs {string*, u32}
        for name, v in (("x", 1), ("y", 2)):
            w.unique_string(name)
            w.u32(v)
    w.u32(0xAA)

    def inner(v: int) -> None:
        w.u32(v)
        w.unique_string("z")

    with w.top():
        w.unique(5, inner)
    assert w.getvalue() == bytes.fromhex(
        "02000000"
        "00000200"
        "01000000"
        "04000200"
        "02000000"
        "02000000"
        "00000000"
        "02000000"
        "78000000"  # "x"
        "02000000"
        "00000000"
        "02000000"
        "79000000"  # "y"
        "aa000000"
        "08000200"  # pointer to {u32, string*}
        "05000000"
        "0c000200"  # its referent, then the referent's own referent
        "02000000"
        "00000000"
        "02000000"
        "7a000000"
    )


def test_unique_null() -> None:
    w = NdrWriter()
    with w.top():
        w.unique_string(None)
    assert w.getvalue() == bytes(4)
    assert NdrReader(bytes(4)).unique_string() is None


@pytest.mark.parametrize(
    "stub",
    [
        bytes.fromhex("02000000010000000200000061000000"),  # offset 1
        bytes.fromhex("01000000000000000200000061000000"),  # actual > max
        bytes.fromhex("02000000000000000200000061006200"),  # no NUL
        bytes.fromhex("0500000000000000050000006100"),  # beyond the stub
        bytes.fromhex("000000000000000000000000"),  # empty [string]
        bytes.fromhex("02000000000000000200000000d80000"),  # lone surrogate
        bytes.fromhex("0200"),
    ],
)
def test_reader_refuses_bad_strings(stub: bytes) -> None:
    with pytest.raises(NdrError) as info:
        NdrReader(stub).string()
    assert info.value.fault == Fault.NCA_S_FAULT_NDR
    assert not info.value.disconnect


def test_reader_end_allows_only_padding() -> None:
    NdrReader(bytes(8))  # nothing read: 8 bytes left is too much
    with pytest.raises(NdrError):
        NdrReader(bytes(8)).end()
    NdrReader(bytes(4)).end()
    with pytest.raises(NdrError):
        NdrReader(b"\x01").end()


def test_writer_refuses_pointers_outside_a_scope() -> None:
    w = NdrWriter()
    with pytest.raises(RuntimeError):
        w.unique(1, w.u32)
