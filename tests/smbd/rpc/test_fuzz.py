"""Every parser parses or raises its one error family (hypothesis); the pipe survives any
byte stream: it answers, faults, or disconnects, and never holds more than its limits."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from smbd.rpc import ENDPOINTS, pdu, srvsvc, wkssvc
from smbd.rpc.ndr import NdrReader
from smbd.rpc.pdu import ParseError
from smbd.rpc.pipe import NamedPipe, PipeLimits, RpcAssociation, ServerEnv, ShareEntry
from tests.smbd.rpc import vectors

ENV = ServerEnv("VMSTOR", (ShareEntry("vms", 0, "c"), ShareEntry("IPC$", 0x80000003)))
SEEDS = [vectors.SMBCLIENT_BIND, vectors.SMBCLIENT_SHARE_ENUM]


def mutated() -> st.SearchStrategy[bytes]:
    def flip(seed: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
        b = bytearray(seed)
        for pos, val in edits:
            b[pos % len(b)] = val
        return bytes(b[: max(cut, 0) or len(b)])

    return st.builds(
        flip,
        st.sampled_from(SEEDS),
        st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
        st.integers(0, 120),
    )


any_bytes = st.one_of(st.binary(max_size=300), mutated())


@settings(max_examples=400)
@given(any_bytes)
def test_pdu_parsers(raw: bytes) -> None:
    for parse in (
        pdu.parse_header,
        pdu.parse_bind,
        pdu.parse_request,
        pdu.parse_bind_ack,
        pdu.parse_response,
        pdu.parse_fault,
    ):
        with contextlib.suppress(ParseError):
            parse(raw)


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=200), mutated().map(lambda b: b[24:])))
def test_operations(stub: bytes) -> None:
    for op in (*srvsvc.OPERATIONS.values(), *wkssvc.OPERATIONS.values()):
        try:
            out = op(NdrReader(stub), ENV)
        except ParseError:
            continue
        assert len(out) % 4 == 0


@settings(max_examples=300)
@given(st.lists(any_bytes, max_size=6), st.integers(1, 300))
def test_pipe_stream(writes: list[bytes], read_size: int) -> None:
    limits = PipeLimits(max_request=2048, max_output=2048)
    assoc = RpcAssociation(
        ENDPOINTS["srvsvc"], sec_addr="\\PIPE\\srvsvc", env=lambda: ENV, limits=limits
    )
    p = NamedPipe(assoc)
    for w in [vectors.SMBCLIENT_BIND, *writes]:
        if p.disconnected:
            break
        p.write(w)
        assert len(p._inbuf) < assoc.max_recv_frag
        assert p.output_bytes <= limits.max_output + 4280 + 64
        while p.readable:
            data, _more = p.read(read_size)
            assert data
