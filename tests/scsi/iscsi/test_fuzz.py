"""Hypothesis: every parser parses or raises its own error family, nothing else; the
connection core never raises on arbitrary PDUs (it rejects or closes)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from scsi.iscsi import pdu, text
from scsi.iscsi.connection import FAST_DONE, FAST_SLOW, Connection, Execute, Limits
from scsi.iscsi.errors import LoginError, PduError, TextError
from scsi.iscsi.framing import Framer
from scsi.iscsi.login import Login
from scsi.iscsi.negotiation import Params, TargetLimits
from scsi.nexus import ScsiResult
from tests.scsi.iscsi.test_connection import mem

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


def _pattern_reader(lun: int, cdb: memoryview, dest: memoryview) -> bool:
    """A SCSI layer that serves READ(10) of whole 512-byte blocks with a pattern."""
    if cdb[0] != 0x28 or len(dest) % 512:
        return False
    dest[:] = bytes(range(256)) * (len(dest) // 256)
    return True


def _core(hd: bool, dd: bool) -> Connection:
    return Connection(
        Params(max_send_data=8192, header_digest=hd, data_digest=dd),
        exp_cmdsn=100,
        statsn=7,
        framer=Framer(header_digest=hd, data_digest=dd),
        data_out_length=lambda cdb, lun: 0,
        fast_reader=_pattern_reader,
        limits=Limits(queue_depth=8, max_buffered=1 << 20, max_transfer=1 << 20),
    )


@settings(max_examples=500)
@given(
    st.sampled_from([512, 1024, 4096, 8192, 0, 1000, 8704, 70000]),
    st.lists(st.tuples(st.integers(0, 47), st.integers(0, 255)), max_size=3),
    st.booleans(),
    st.booleans(),
)
def test_fast_read_answers_like_the_full_path_or_leaves_it_alone(
    edtl: int, changes: list[tuple[int, int]], hd: bool, dd: bool
) -> None:
    """Connection.fast_read on a READ(10) BHS with up to three bytes changed anywhere:
    FAST_DONE only where receive() + complete() send the very same bytes (the SCSI
    layer answering GOOD with the same data); otherwise nothing changed, and the full
    path takes the PDU."""
    cdb = bytes.fromhex("28 00 00001000 00") + (edtl // 512).to_bytes(2, "big") + bytes(7)
    rec = pdu.ScsiCommand(1, 0, edtl, 100, 7, cdb, read=True)
    raw = bytearray(rec.encode())
    for pos, value in changes:
        raw[pos] = value
    fast, slow = _core(hd, dd), _core(hd, dd)
    bhs = memoryview(b"".join(bytes(b) for b in fast.framer.frame(bytes(raw))))
    got = fast.fast_read(bhs)
    if got != FAST_DONE:
        assert got == FAST_SLOW
        assert (fast.exp_cmdsn, fast.max_cmdsn, fast.statsn) == (100, 107, 7)
        assert fast.take_output() == [] and fast.stats.commands == 0
        return
    rx = slow.framer.finish(bhs[:48], bhs[48:])
    assert isinstance(rx.record, pdu.ScsiCommand)
    slow.receive(rx)
    (ev,) = slow.take_events()
    assert isinstance(ev, Execute)
    data = bytearray(rx.record.expected_length)
    assert _pattern_reader(0, memoryview(raw)[32:], memoryview(data))
    slow.complete(ev.task, ScsiResult(0, data))
    wire = [b"".join(mem(b) for iov in c.take_output() for b in iov) for c in (fast, slow)]
    assert wire[0] == wire[1]
    assert (fast.exp_cmdsn, fast.max_cmdsn, fast.statsn) == (
        slow.exp_cmdsn,
        slow.max_cmdsn,
        slow.statsn,
    )
