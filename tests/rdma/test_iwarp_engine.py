"""The sans-IO iWARP endpoint, two of them wired back to back in memory: MPA setup, RTR,
Send reassembly, RDMA Write/Read, Send with Invalidate, and the Terminate each violation
gets (RFC 5040 7, RFC 5041 7, RFC 5044 8, RFC 6581)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdma.iwarp import ddp, mpa
from rdma.iwarp.ddp import Opcode
from rdma.iwarp.engine import Endpoint, Established, ProtocolError, State, TerminateReceived
from rdma.iwarp.errors import Layer, LlpCode
from rdma.iwarp.stags import Region, StagTable
from rdma.verbs import Access, WcOpcode, WcStatus, WorkCompletion

RW = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ


class Pair:
    def __init__(
        self, *, crc_a: bool = True, crc_p: bool = False, mulpdu: int = 64, **kw: object
    ) -> None:
        self.stags = StagTable()
        self.a = Endpoint(active=True, stags=self.stags, pd_id=1, crc=crc_a, mulpdu=mulpdu, **kw)  # type: ignore[arg-type]
        self.p = Endpoint(active=False, stags=self.stags, pd_id=2, crc=crc_p, mulpdu=mulpdu, **kw)  # type: ignore[arg-type]
        self.events: list[object] = []

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for src, dst in ((self.a, self.p), (self.p, self.a)):
                bufs, done = src.pull_output()
                src._completions.extend((False, wc) for wc in done)
                data = b"".join(bytes(b) for b in bufs)
                if data:
                    moved = True
                    self.events.extend(dst.receive_data(data))

    def connect(self, ird: int = 4, ord: int = 4) -> None:
        self.a.initiate()
        self.pump()
        assert state(self.p) is State.REQUEST_RECEIVED
        self.p.accept(ird=ird, ord=ord)
        self.pump()
        assert state(self.a) is State.RTS and state(self.p) is State.RTS

    def mr(self, pd_id: int, data: bytes | int, access: Access = RW) -> Region:
        buf = bytearray(data) if isinstance(data, bytes) else data
        return self.stags.register(pd_id, buf, access)


def state(ep: Endpoint) -> State:
    """The endpoint's state, read through a call so that mypy does not narrow it."""
    return ep.state


def completions(ep: Endpoint) -> list[WorkCompletion]:
    return [wc for _, wc in ep.take_completions()]


def test_rfc5044_7_1_crc_used_when_either_side_asks() -> None:
    pair = Pair(crc_a=False, crc_p=True)
    pair.connect()
    assert pair.a.crc and pair.p.crc
    assert any(isinstance(e, Established) and e.crc for e in pair.events)


def test_rfc6581_3_ird_ord_negotiation() -> None:
    pair = Pair()
    pair.a.ird, pair.a.ord = 8, 8
    pair.connect(ird=2, ord=16)
    assert pair.p.ord == 8  # capped at the initiator's IRD
    assert pair.a.ord == 2  # capped at the responder's IRD


@pytest.mark.parametrize("rtr", [mpa.RTR.READ, mpa.RTR.WRITE, mpa.RTR.SEND])
def test_rfc6581_3_2_peer_to_peer_rtr(rtr: mpa.RTR) -> None:
    pair = Pair(peer_to_peer=True, rtr=rtr)
    pair.a.initiate()
    pair.pump()
    pair.p.accept(ird=4, ord=4)
    assert state(pair.p) is State.WAIT_RTR
    recv = pair.mr(2, 64)
    pair.p.post_recv(1, recv.buf)
    pair.pump()
    assert state(pair.p) is State.RTS and pair.a.rtr is rtr
    # the RTR produced no completion, and the next Send lands normally
    src = pair.mr(1, b"after rtr")
    pair.a.post_send(5, [src.buf])
    pair.pump()
    assert completions(pair.p) == [WorkCompletion(1, WcStatus.SUCCESS, WcOpcode.RECV, 9)]
    assert bytes(recv.buf[:9]) == b"after rtr"


def test_rfc6581_3_2_wrong_rtr_is_no_matching_rtr() -> None:
    pair = Pair(peer_to_peer=True, rtr=mpa.RTR.READ)
    pair.a.initiate()
    pair.pump()
    pair.p.accept(ird=4, ord=4)
    # replace the RTR the initiator would send with a Send
    pair.a.peer_to_peer = False
    pair.a._sq.clear()
    pair.pump()
    recv = pair.mr(2, 64)
    pair.p.post_recv(1, recv.buf)
    pair.a.post_send(2, [pair.mr(1, b"x").buf])
    pair.pump()
    assert state(pair.p) is State.ERROR
    assert pair.p.terminate is not None
    assert (pair.p.terminate.layer, pair.p.terminate.code) == (Layer.LLP, LlpCode.NO_MATCHING_RTR)


def test_rfc5041_5_3_send_reassembled_from_segments() -> None:
    pair = Pair(mulpdu=40)  # 22 payload bytes per untagged segment
    pair.connect()
    recv = pair.mr(2, 256)
    pair.p.post_recv(9, recv.buf)
    msg = bytes(range(200))
    a, b = pair.mr(1, msg[:77]), pair.mr(1, msg[77:])
    pair.a.post_send(3, [a.buf, b.buf])
    pair.pump()
    assert completions(pair.p) == [WorkCompletion(9, WcStatus.SUCCESS, WcOpcode.RECV, 200)]
    assert bytes(recv.buf[:200]) == msg
    assert completions(pair.a) == [WorkCompletion(3, WcStatus.SUCCESS, WcOpcode.SEND, 200)]


def test_rfc5040_5_1_rdma_write_and_read() -> None:
    pair = Pair()
    pair.connect()
    target = pair.mr(2, 1000)
    src = pair.mr(1, bytes(range(256)) * 4)
    pair.a.post_write(1, [src.buf[:1000]], target.rkey, target.addr)
    pair.pump()
    assert bytes(target.buf) == bytes(src.buf[:1000])
    sink = pair.mr(1, 500)
    pair.a.post_read(2, sink.lkey, sink.addr, 500, target.rkey, target.addr + 100)
    pair.pump()
    assert bytes(sink.buf) == bytes(src.buf[100:600])
    assert completions(pair.a) == [
        WorkCompletion(1, WcStatus.SUCCESS, WcOpcode.RDMA_WRITE, 1000),
        WorkCompletion(2, WcStatus.SUCCESS, WcOpcode.RDMA_READ, 500),
    ]


def test_rfc5040_6_10_send_with_invalidate() -> None:
    pair = Pair()
    pair.connect()
    exposed = pair.mr(1, 64)
    recv = pair.mr(1, 64)
    pair.a.post_recv(4, recv.buf)
    pair.p.post_send(5, [pair.mr(2, b"done").buf], inv_stag=exposed.rkey)
    pair.pump()
    assert completions(pair.a) == [
        WorkCompletion(4, WcStatus.SUCCESS, WcOpcode.RECV, 4, invalidated_rkey=exposed.rkey)
    ]
    assert not exposed.valid
    # the invalidated STag is now refused: DDP tagged buffer error, invalid STag
    pair.p.post_write(6, [pair.mr(2, b"late").buf], exposed.rkey, exposed.addr)
    pair.pump()
    assert state(pair.a) is State.ERROR and state(pair.p) is State.ERROR
    assert pair.a.terminate == ddp.Terminate(
        Layer.DDP,
        1,
        0x00,
        18,
        ddp.tagged_header(Opcode.RDMA_WRITE, True, exposed.rkey, exposed.addr),
    )
    assert any(isinstance(e, TerminateReceived) for e in pair.events)


@pytest.mark.parametrize(
    ("case", "want"),
    [
        ("write unknown stag", (Layer.DDP, 1, 0x00)),
        ("write out of bounds", (Layer.DDP, 1, 0x01)),
        ("write without rights", (Layer.RDMAP, 1, 0x02)),
        ("write other pd", (Layer.DDP, 1, 0x02)),
        ("read out of bounds", (Layer.RDMAP, 1, 0x01)),
        ("read without rights", (Layer.RDMAP, 1, 0x02)),
        ("send without receive", (Layer.DDP, 2, 0x02)),
        ("send too long", (Layer.DDP, 2, 0x05)),
        ("invalidate unknown", (Layer.RDMAP, 1, 0x00)),
    ],
)
def test_rfc5040_7_violations_send_the_named_terminate(
    case: str, want: tuple[int, int, int]
) -> None:
    pair = Pair()
    pair.connect()
    pending_recv = pair.mr(2, 64)
    read_only = pair.mr(2, 100, Access.REMOTE_READ)
    target = pair.mr(2, 100)
    local_only = pair.mr(2, 100, Access.LOCAL_WRITE)
    other_pd = pair.mr(1, 100)
    src = pair.mr(1, 200)
    if case == "write unknown stag":
        pair.a.post_write(1, [src.buf[:10]], 0xDEAD00, 0)
    elif case == "write out of bounds":
        pair.a.post_write(1, [src.buf[:10]], target.rkey, target.addr + 95)
    elif case == "write without rights":
        pair.a.post_write(1, [src.buf[:10]], read_only.rkey, read_only.addr)
    elif case == "write other pd":
        pair.a.post_write(1, [src.buf[:10]], other_pd.rkey, other_pd.addr)
    elif case == "read out of bounds":
        pair.a.post_read(1, src.lkey, src.addr, 101, target.rkey, target.addr)
    elif case == "read without rights":
        pair.a.post_read(1, src.lkey, src.addr, 10, local_only.rkey, local_only.addr)
    elif case == "send without receive":
        pair.a.post_send(1, [src.buf[:10]])
    elif case == "send too long":
        pair.p.post_recv(7, pending_recv.buf[:8])
        pair.a.post_send(1, [src.buf[:10]])
    elif case == "invalidate unknown":
        pair.p.post_recv(7, pending_recv.buf)
        pair.a.post_send(1, [src.buf[:10]], inv_stag=0x4242)
    pair.pump()
    assert state(pair.p) is State.ERROR and state(pair.a) is State.ERROR
    term = pair.p.terminate
    assert term is not None and (term.layer, term.etype, term.code) == want
    assert pair.a.terminate == term  # the peer received exactly what was sent
    assert any(isinstance(e, ProtocolError) and e.terminate_sent for e in pair.events)
    # everything posted on the violator's side is flushed
    flushed = [wc for wc in completions(pair.p) if wc.status is WcStatus.FLUSHED]
    if case in ("send too long", "invalidate unknown"):
        assert [wc.wr_id for wc in flushed] == [7]


def test_rfc5040_read_request_beyond_ird_is_refused() -> None:
    pair = Pair()
    pair.a.ord = 8
    pair.connect(ird=1, ord=1)
    assert pair.a.ord == 1
    target = pair.mr(2, 100)
    sink = pair.mr(1, 100)
    for i in range(3):  # the initiator's ORD keeps only one in flight
        pair.a.post_read(i, sink.lkey, sink.addr, 10, target.rkey, target.addr)
    pair.pump()
    assert [wc.wr_id for wc in completions(pair.a)] == [0, 1, 2]
    # a peer ignoring ORD: two Read Requests at once against IRD 1
    pair.a.ord = 5
    for i in range(2):
        pair.a.post_read(10 + i, sink.lkey, sink.addr, 10, target.rkey, target.addr)
    bufs, _ = pair.a.pull_output()
    pair.p.receive_data(b"".join(bytes(b) for b in bufs))
    assert pair.p.terminate is not None
    assert (pair.p.terminate.layer, pair.p.terminate.etype, pair.p.terminate.code) == (
        Layer.DDP,
        2,
        0x02,
    )


def test_rfc5044_markers_are_rejected_like_siw() -> None:
    pair = Pair()
    frame = mpa.MpaFrame(reply=False, markers=True)
    events = pair.p.receive_data(mpa.encode_frame(frame))
    assert state(pair.p) is State.ERROR
    bufs, _ = pair.p.pull_output()
    reply = mpa.decode_frame(b"".join(bytes(b) for b in bufs), reply=True)
    assert reply.reject
    assert events


def test_rfc5044_bad_crc_terminates_with_llp_crc_error() -> None:
    pair = Pair(crc_a=True)
    pair.connect()
    pair.p.post_recv(1, pair.mr(2, 64).buf)
    pair.a.post_send(2, [pair.mr(1, b"payload").buf])
    bufs, _ = pair.a.pull_output()
    wire = bytearray(b"".join(bytes(b) for b in bufs))
    wire[-1] ^= 0xFF
    pair.p.receive_data(bytes(wire))
    assert pair.p.terminate is not None
    assert (pair.p.terminate.layer, pair.p.terminate.code) == (Layer.LLP, LlpCode.CRC_ERROR)
    assert [wc.status for wc in completions(pair.p)] == [WcStatus.FLUSHED]


def test_byte_at_a_time_delivery() -> None:
    pair = Pair()
    pair.a.initiate()
    bufs, _ = pair.a.pull_output()
    for byte in b"".join(bytes(b) for b in bufs):
        pair.p.receive_data(bytes([byte]))
    pair.p.accept(ird=4, ord=4)
    pair.pump()
    recv = pair.mr(2, 100)
    pair.p.post_recv(1, recv.buf)
    pair.a.post_send(2, [pair.mr(1, b"x" * 90).buf])
    bufs, _ = pair.a.pull_output()
    for byte in b"".join(bytes(b) for b in bufs):
        pair.p.receive_data(bytes([byte]))
    assert completions(pair.p) == [WorkCompletion(1, WcStatus.SUCCESS, WcOpcode.RECV, 90)]


@pytest.mark.parametrize(
    ("header", "payload", "want"),
    [
        # RFC 5041 7.2 untagged buffer errors
        (ddp.untagged_header(Opcode.SEND, True, ddp.QN_SEND, 5, 0), b"x", (Layer.DDP, 2, 0x03)),
        (ddp.untagged_header(Opcode.SEND, True, ddp.QN_SEND, 1, 10), b"x", (Layer.DDP, 2, 0x04)),
        (ddp.untagged_header(Opcode.SEND, True, 7, 1, 0), b"x", (Layer.DDP, 2, 0x01)),
        # RFC 5040 7.2 remote operation errors: opcodes where they do not belong
        (ddp.tagged_header(Opcode.SEND, True, 1, 0), b"x", (Layer.RDMAP, 2, 0x06)),
        (ddp.tagged_header(Opcode.READ_RESPONSE, True, 1, 0), b"x", (Layer.RDMAP, 2, 0x06)),
        (ddp.untagged_header(Opcode.RDMA_WRITE, True, ddp.QN_SEND, 1, 0), b"", (Layer.RDMAP, 2, 6)),
        (ddp.untagged_header(Opcode.READ_REQUEST, True, 1, 1, 0), b"short", (Layer.RDMAP, 2, 0xFF)),
    ],
)
def test_rfc5041_7_segments_outside_the_message_are_terminated(
    header: bytes, payload: bytes, want: tuple[int, int, int]
) -> None:
    pair = Pair()
    pair.connect()
    recv = pair.mr(2, 64)
    pair.p.post_recv(1, recv.buf)
    fpdu = b"".join(bytes(b) for b in mpa.encode_fpdu(header, [payload], pair.p.crc))
    events = pair.p.receive_data(fpdu)
    assert isinstance(events[-1], ProtocolError) and events[-1].terminate_sent
    term = pair.p.terminate
    assert term is not None and (term.layer, term.etype, term.code) == want
    assert term.ddp_segment_length == len(header) + len(payload)
    assert [wc.status for wc in completions(pair.p)] == [WcStatus.FLUSHED]
    pair.pump()
    assert pair.a.terminate == term and state(pair.a) is State.ERROR


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=6), st.booleans())
def test_fuzz_endpoint_never_raises(chunks: list[bytes], connected: bool) -> None:
    """Whatever arrives, the endpoint answers with a Terminate (or a reject/close) and
    flushes; it never raises."""
    pair = Pair()
    if connected:
        pair.connect()
        pair.p.post_recv(1, pair.mr(2, 256).buf)
    for chunk in chunks:
        if connected and chunk:
            # frame the garbage as FPDUs so it reaches DDP and RDMAP
            pair.p.receive_data(
                b"".join(bytes(b) for b in mpa.encode_fpdu(chunk[:2], [chunk[2:]], pair.p.crc))
            )
        else:
            pair.p.receive_data(chunk)
    assert state(pair.p) in (State.RTS, State.ERROR, State.WAIT_REQUEST, State.REQUEST_RECEIVED)
    if state(pair.p) is State.ERROR:
        assert all(wc.status is WcStatus.FLUSHED for wc in completions(pair.p))


def test_rfc5044_7_1_revision_1_initiator_gets_a_revision_1_reply() -> None:
    pair = Pair()
    req = mpa.MpaFrame(reply=False, revision=1, enhanced=False, crc=False)
    assert pair.p.receive_data(mpa.encode_frame(req))
    pair.p.accept(ird=4, ord=4)
    bufs, _ = pair.p.pull_output()
    reply = b"".join(bytes(b) for b in bufs)
    assert reply == b"MPA ID Rep Frame" + bytes([0x00, 0x01, 0x00, 0x00])  # no C: we did not ask
    assert state(pair.p) is State.RTS
