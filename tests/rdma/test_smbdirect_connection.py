"""The sans-IO SMB Direct connection: a client and a server core wired back to back in
memory, with RDMA's rule that a message needs a posted receive at the peer.

Property tests (hypothesis) drive both sides through random interleavings of sends,
deliveries and receive reposting, and check the credit machine ([MS-SMBD] 3.1.5.1 and
3.1.5.9: never send without a credit, the last credit only with a grant) and reassembly
(every message arrives whole, in order).
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdma.smbdirect import wire
from rdma.smbdirect.connection import (
    Disconnect,
    MessageReceived,
    Negotiated,
    Role,
    SmbDirectConfig,
    SmbDirectConnection,
    State,
)


def state(ep: SmbDirectConnection) -> State:
    """Read through a call so that mypy does not narrow the attribute."""
    return ep.state


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Link:
    """Two cores; ``inflight[x]`` holds messages travelling towards ``x``."""

    def __init__(
        self, client: SmbDirectConfig | None = None, server: SmbDirectConfig | None = None
    ) -> None:
        self.clock = Clock()
        self.c = SmbDirectConnection(Role.CLIENT, client, clock=self.clock)
        self.s = SmbDirectConnection(Role.SERVER, server, clock=self.clock)
        self.inflight: dict[SmbDirectConnection, deque[bytes]] = {self.c: deque(), self.s: deque()}
        self.got: dict[SmbDirectConnection, list[bytes]] = {self.c: [], self.s: []}
        self.events: list[object] = []
        self.sent_data_messages = 0

    def peer(self, ep: SmbDirectConnection) -> SmbDirectConnection:
        return self.s if ep is self.c else self.c

    def post(self, ep: SmbDirectConnection) -> None:
        ep.receives_posted(ep.receives_wanted())

    def flush(self, ep: SmbDirectConnection) -> int:
        n = 0
        while True:
            credits_before = ep.send_credits
            connected = ep.state is State.CONNECTED
            out = bytearray(max(ep.config.max_send_size, 64))
            sent = ep.next_send_into(memoryview(out))
            if sent is None:
                return n
            msg = bytes(out[: sent.length])
            if connected:
                hdr, _ = wire.decode_data(memoryview(msg))
                assert credits_before >= 1, "sent without a send credit"
                if credits_before == 1:
                    assert hdr.credits_granted > 0, "last credit used without a grant"
                assert len(msg) <= self.peer(ep).config.max_receive_size
                self.sent_data_messages += 1
            self.inflight[self.peer(ep)].append(msg)
            n += 1

    def deliver(self, ep: SmbDirectConnection) -> int:
        q = self.inflight[ep]
        n = 0
        while q:
            assert ep.posted > 0, "a message arrived with no receive posted (RNR)"
            for ev in ep.receive(memoryview(q.popleft())):
                self.events.append(ev)
                if isinstance(ev, MessageReceived):
                    self.got[ep].append(bytes(ev.data))
            n += 1
        return n

    def settle(self, rounds: int = 10000) -> None:
        for _ in range(rounds):
            moved = 0
            for ep in (self.c, self.s):
                self.post(ep)
                moved += self.flush(ep)
                moved += self.deliver(ep)
            if not moved:
                return
        raise AssertionError("no quiescence: credit ping-pong")

    def connect(self) -> None:
        self.c.start()
        self.settle()
        assert self.c.state is State.CONNECTED and self.s.state is State.CONNECTED


def test_ms_smbd_4_1_negotiation_and_first_credits() -> None:
    cfg = SmbDirectConfig(
        receive_credit_max=10,
        send_credit_target=10,
        max_send_size=1024,
        max_receive_size=1024,
        max_fragmented_receive_size=131072,
        max_read_write_size=1 << 20,
    )
    link = Link(cfg, cfg)
    link.c.start()
    link.post(link.c)
    link.flush(link.c)
    assert (
        link.inflight[link.s][0]
        == wire.NegotiateRequest(0x100, 0x100, 10, 1024, 1024, 131072).encode()
    )
    link.post(link.s)
    link.deliver(link.s)
    link.post(link.s)  # the server posts its receives, then grants them in the response
    link.flush(link.s)
    assert wire.NegotiateResponse.decode(link.inflight[link.c][0]) == wire.NegotiateResponse(
        0x100, 0x100, 0x100, 10, 10, 0, 1 << 20, 1024, 1024, 131072
    )
    link.settle()
    assert link.c.send_credits >= 1 and link.s.send_credits >= 1
    assert next(e for e in link.events if isinstance(e, Negotiated)).max_send_size == 1024


def test_ms_smbd_3_1_5_1_fragmentation_and_reassembly() -> None:
    link = Link()
    link.connect()
    big = bytes(range(256)) * 2000  # 512000 bytes, ~380 fragments of 1340
    link.c.send([big[:100], memoryview(big)[100:]])
    link.s.send([b"\xfeSMB"])
    link.settle()
    assert link.got[link.s] == [big]
    assert link.got[link.c] == [b"\xfeSMB"]
    assert link.c.queued_bytes == 0


def test_ms_smbd_3_1_5_1_message_larger_than_peer_max_fragmented_is_refused() -> None:
    link = Link(server=SmbDirectConfig(max_fragmented_receive_size=131072))
    link.connect()
    with pytest.raises(ValueError):
        link.c.send([bytes(131073)])


def _violation(link: Link, ep: SmbDirectConnection, message: bytes) -> Disconnect:
    ep.receives_posted(1)
    events = ep.receive(memoryview(message))
    assert ep.state is State.DISCONNECTED
    assert len(events) == 1 and isinstance(events[0], Disconnect) and events[0].violation
    return events[0]


def _data(
    credits_requested: int = 255, granted: int = 0, remaining: int = 0, payload: bytes = b"x"
) -> bytes:
    return (
        wire.DataHeader(credits_requested, granted, 0, remaining, 24, len(payload)).encode()
        + payload
    )


def test_ms_smbd_3_1_5_8_message_without_credit_disconnects() -> None:
    link = Link()
    link.connect()
    link.s.receive_credits = 0  # the client has used every credit we granted
    assert "without a receive credit" in _violation(link, link.s, _data()).reason


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (b"\x01\x00" * 9, "20"),
        (_data(credits_requested=0), "CreditsRequested"),
        (_data(remaining=(1 << 20)), "MaxFragmentedSize"),
        (wire.DataHeader(255, 0, 0, 0, 20, 1).encode() + b"xxxx", "DataOffset"),
        (wire.DataHeader(255, 0, 0, 0, 24, 100).encode() + b"x", "beyond"),
    ],
)
def test_ms_smbd_3_1_5_8_bad_messages_disconnect(message: bytes, why: str) -> None:
    link = Link()
    link.connect()
    assert why in _violation(link, link.s, message).reason
    assert link.s.queued_bytes == 0 and link.s.receives_wanted() == 0


def test_ms_smbd_3_1_5_8_fragment_with_wrong_remaining_disconnects() -> None:
    link = Link()
    link.connect()
    link.s.receives_posted(2)
    assert link.s.receive(memoryview(_data(remaining=10, payload=b"abc"))) == []
    assert "announced" in _violation(link, link.s, _data(remaining=3, payload=b"abc")).reason


def test_ms_smbd_3_1_5_8_oversize_message_disconnects() -> None:
    link = Link()
    link.connect()
    assert "MaxReceiveSize" in _violation(link, link.s, _data(payload=bytes(2000))).reason


def test_ms_smbd_3_1_5_6_negotiate_without_common_version() -> None:
    s = SmbDirectConnection(Role.SERVER, clock=Clock())
    s.receives_posted(1)
    req = wire.NegotiateRequest(0x0200, 0x0300, 10, 1024, 1024, 131072).encode()
    events = s.receive(memoryview(req))
    assert isinstance(events[0], Disconnect)
    out = bytearray(64)
    sent = s.next_send_into(memoryview(out))
    assert sent is not None
    assert wire.NegotiateResponse.decode(out[: sent.length]).status == wire.STATUS_NOT_SUPPORTED


@pytest.mark.parametrize(
    "req",
    [
        wire.NegotiateRequest(0x100, 0x100, 0, 1024, 1024, 131072),
        wire.NegotiateRequest(0x100, 0x100, 10, 1024, 127, 131072),
        wire.NegotiateRequest(0x100, 0x100, 10, 1024, 1024, 131071),
    ],
)
def test_ms_smbd_3_1_5_6_bad_negotiate_requests(req: wire.NegotiateRequest) -> None:
    s = SmbDirectConnection(Role.SERVER, clock=Clock())
    s.receives_posted(1)
    events = s.receive(memoryview(req.encode()))
    assert isinstance(events[0], Disconnect) and s.state is State.DISCONNECTED


def test_ms_smbd_3_1_5_3_client_checks_the_response() -> None:
    c = SmbDirectConnection(Role.CLIENT, clock=Clock())
    c.start()
    c.receives_posted(1)
    bad = wire.NegotiateResponse(0x100, 0x100, 0x100, 10, 0, 0, 1 << 20, 1024, 1024, 131072)
    events = c.receive(memoryview(bad.encode()))
    assert isinstance(events[0], Disconnect) and "0 credits" in events[0].reason


def test_ms_smbd_3_1_6_2_keepalive_and_timeout() -> None:
    cfg = SmbDirectConfig(keepalive_interval=120.0, keepalive_timeout=5.0)
    link = Link(cfg, cfg)
    link.connect()
    link.clock.now += 121
    assert link.c.next_timer() is not None and link.c.next_timer() <= link.clock.now  # type: ignore[operator]
    assert link.c.handle_timer(link.clock.now) == []
    link.flush(link.c)
    hdr, payload = wire.decode_data(memoryview(link.inflight[link.s][-1]))
    assert hdr.flags & wire.FLAG_RESPONSE_REQUESTED and not payload
    # the server answers promptly (RESPONSE_REQUESTED), which resets the client's timer
    link.settle()
    assert link.c.handle_timer(link.clock.now + 4.9) == []
    assert state(link.c) is State.CONNECTED
    # a peer that stays silent after the next keep-alive is disconnected
    link.clock.now += 121
    link.c.handle_timer(link.clock.now)
    link.flush(link.c)
    link.clock.now += 5
    events = link.c.handle_timer(link.clock.now)
    assert isinstance(events[0], Disconnect) and not events[0].violation
    assert state(link.c) is State.DISCONNECTED


def test_credit_only_messages_do_not_ping_pong() -> None:
    link = Link()
    link.connect()
    before = link.sent_data_messages
    link.settle()
    assert link.sent_data_messages == before  # settle() also fails on endless exchange


actions = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.booleans(), st.integers(1, 6000)),
        st.tuples(st.just("post"), st.booleans(), st.just(0)),
        st.tuples(st.just("flush"), st.booleans(), st.just(0)),
        st.tuples(st.just("deliver"), st.booleans(), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    actions,
    st.integers(3, 12),
    st.integers(1, 12),
    st.sampled_from([128, 200, 1364]),
)
def test_property_credit_machine_and_reassembly(
    steps: list[tuple[str, bool, int]], c_credits: int, s_credits: int, recv_size: int
) -> None:
    """Any interleaving: no send without credit, the last credit always grants, every
    message arrives whole and in order, and the two sides never deadlock."""
    c_cfg = SmbDirectConfig(
        receive_credit_max=c_credits, send_credit_target=c_credits, max_receive_size=recv_size,
        max_send_size=recv_size,
    )  # fmt: skip
    s_cfg = SmbDirectConfig(
        receive_credit_max=max(s_credits, 3), send_credit_target=s_credits, max_receive_size=1364,
        max_send_size=1364,
    )  # fmt: skip
    link = Link(c_cfg, s_cfg)
    link.connect()
    sent: dict[SmbDirectConnection, list[bytes]] = {link.c: [], link.s: []}
    counter = 0
    for action, client_side, size in steps:
        ep = link.c if client_side else link.s
        if action == "send":
            counter += 1
            msg = bytes([counter % 256]) * size
            ep.send([msg])
            sent[ep].append(msg)
        elif action == "post":
            link.post(ep)
        elif action == "flush":
            link.flush(ep)
        else:
            link.deliver(ep)
        for side in (link.c, link.s):
            assert 0 <= side.receive_credits <= side.posted
            assert side.send_credits >= 0
    link.settle()
    assert not [e for e in link.events if isinstance(e, Disconnect)]
    assert link.got[link.s] == sent[link.c]
    assert link.got[link.c] == sent[link.s]
    assert link.c.queued_bytes == 0 and link.s.queued_bytes == 0
