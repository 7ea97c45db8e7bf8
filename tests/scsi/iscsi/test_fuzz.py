"""Hypothesis: every parser parses or raises its own error family, nothing else; the
connection core never raises on arbitrary PDUs (it rejects or closes)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from scsi.iscsi import pdu, text
from scsi.iscsi.connection import Connection, Limits
from scsi.iscsi.errors import LoginError, PduError, TextError
from scsi.iscsi.framing import Framer
from scsi.iscsi.login import Login
from scsi.iscsi.negotiation import Params, TargetLimits

bhs = st.binary(min_size=48, max_size=48)


@given(bhs)
def test_decode_parses_or_raises_pdu_error(raw: bytes) -> None:
    try:
        rec = pdu.decode(raw)
    except PduError:
        return
    assert rec.encode()[0] & 0x3F == raw[0] & 0x3F


@given(bhs, st.binary(max_size=300), st.booleans(), st.booleans())
def test_framer_parses_or_raises_pdu_error(head: bytes, rest: bytes, hd: bool, dd: bool) -> None:
    f = Framer(max_recv_data=256, header_digest=hd, data_digest=dd)
    try:
        n = f.rest_size(head)
        f.finish(head, memoryview(rest[:n].ljust(n, b"\0")))
    except PduError:
        pass


@given(st.binary(max_size=400))
def test_text_parses_or_raises_text_error(raw: bytes) -> None:
    with contextlib.suppress(TextError):
        text.decode_pairs(raw)


class _Policy:
    def has_target(self, target_name: str) -> bool:
        return True

    def authorize(self, initiator_name: str, target_name: str, portal_group_tag: int) -> bool:
        return True

    def chap_secrets(self, target_name: str | None) -> None:
        return None

    def tsih_exists(self, tsih: int) -> bool:
        return False


@given(st.lists(st.tuples(bhs, st.binary(max_size=200)), max_size=5))
def test_login_answers_every_request(reqs: list[tuple[bytes, bytes]]) -> None:
    lg = Login(_Policy(), TargetLimits(), portal_group_tag=1, new_tsih=lambda: 1, rng=bytes)
    for head, data in reqs:
        raw = bytes([0x43]) + head[1:]
        rec = pdu.LoginRequest.decode(raw)
        try:
            reply = lg.receive(rec, data)
        except LoginError:  # pragma: no cover - receive() turns these into a status
            raise
        assert reply.record.itt == rec.itt


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x10, 0x41, 0x42]),
            st.binary(min_size=47, max_size=47),
            st.binary(max_size=64),
        ),
        max_size=12,
    )
)
def test_connection_core_never_raises(pdus: list[tuple[int, bytes, bytes]]) -> None:
    c = Connection(
        Params(),
        exp_cmdsn=0,
        statsn=0,
        framer=Framer(),
        data_out_length=lambda cdb, lun: 512 if cdb[:1] == b"\x2a" else 0,
        limits=Limits(queue_depth=8, max_buffered=1 << 20, max_transfer=1 << 20),
    )
    for op, rest, data in pdus:
        raw = bytes([op]) + rest
        raw = raw[:4] + bytes([0]) + len(data).to_bytes(3, "big") + raw[8:]
        try:
            received = Framer(max_recv_data=1 << 20).finish(
                raw, memoryview(data + bytes(-len(data) & 3))
            )
        except PduError:
            continue
        c.receive(received)
        c.take_output()
        c.take_events()
    assert c.buffered >= 0
