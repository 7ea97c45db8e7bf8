"""RFC 7143 full feature phase on the sans-IO core: 4.2.2 CmdSN window, 4.2.5 / 11.7-11.8
data transfer (immediate data, unsolicited Data-Out, R2T), 11.4.5.1 residuals, 11.18-11.19
NOP, 11.5-11.6 task management, 11.14-11.15 logout, 11.17 reject."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scsi.iscsi import pdu
from scsi.iscsi.connection import (
    FAST_DONE,
    FAST_FULL,
    FAST_SLOW,
    OUTPUT_ARENA,
    Close,
    Connection,
    Execute,
    Limits,
    Logout,
    ManageTasks,
    decode_lun,
    encode_lun,
)
from scsi.iscsi.framing import FileSpan, Framer, Piece, Received
from scsi.iscsi.negotiation import Params
from scsi.nexus import ScsiResult

WRITE10_8 = bytes.fromhex("2a000000000000000800") + bytes(6)  # 8 blocks = 4096 bytes
READ10_8 = bytes.fromhex("28000000000000000800") + bytes(6)


def data_out_length(cdb: bytes, lun: int) -> int:
    return int.from_bytes(cdb[7:9], "big") * 512 if cdb[0] == 0x2A else 0


def make(**kw: object) -> Connection:
    p = replace(Params(max_send_data=1024, max_burst=2048, first_burst=1024), **kw)  # type: ignore[arg-type]
    return Connection(
        p,
        exp_cmdsn=100,
        statsn=50,
        framer=Framer(max_recv_data=8192),
        data_out_length=data_out_length,
        limits=Limits(queue_depth=4),
    )


def rx(rec: pdu.Pdu, data: bytes = b"") -> Received:
    return Received(rec, rec.encode(), memoryview(b""), memoryview(data))


def mem(piece: Piece) -> bytes:
    """The bytes of an output piece held in memory (a FileSpan is not)."""
    assert not isinstance(piece, FileSpan)
    return bytes(piece)


def sent(conn: Connection) -> list[pdu.Pdu]:
    out = []
    for iov in conn.take_output():
        out.append(pdu.decode(mem(iov[0])[:48], allowed=frozenset(pdu.Opcode)))
    return out


def cmd(itt: int, cmdsn: int, cdb: bytes, edtl: int, **kw: object) -> pdu.ScsiCommand:
    write = cdb[0] == 0x2A
    return pdu.ScsiCommand(
        itt,
        0,
        edtl,
        cmdsn,
        50,
        cdb,
        read=not write,
        write=write,
        **kw,  # type: ignore[arg-type]
    )


def test_rfc7143_4_2_2_1_commands_outside_the_window_are_dropped() -> None:
    c = make()
    c.receive(rx(cmd(1, 99, READ10_8, 4096)))
    c.receive(rx(cmd(2, 104, READ10_8, 4096)))  # MaxCmdSN is 103
    assert c.take_events() == [] and c.stats.dropped_cmdsn == 2


def test_rfc7143_4_2_2_1_commands_are_released_in_cmdsn_order() -> None:
    c = make()
    c.receive(rx(cmd(2, 101, READ10_8, 4096)))
    assert c.take_events() == []
    c.receive(rx(cmd(1, 100, READ10_8, 4096)))
    ev = c.take_events()
    assert [e.task.itt for e in ev if isinstance(e, Execute)] == [1, 2]
    assert c.exp_cmdsn == 102


def test_rfc7143_11_7_2_data_in_split_by_max_recv_and_phase_collapsed() -> None:
    c = make()
    c.receive(rx(cmd(1, 100, READ10_8, 4096)))
    (ev,) = c.take_events()
    assert isinstance(ev, Execute)
    c.complete(ev.task, ScsiResult(0, bytes(4096)))
    out = sent(c)
    assert [type(p).__name__ for p in out] == ["DataIn"] * 4
    assert [p.datasn for p in out] == [0, 1, 2, 3]  # type: ignore[union-attr]
    last = out[-1]
    assert isinstance(last, pdu.DataIn) and last.status == 0 and last.statsn == 50
    assert c.max_cmdsn == 104  # the finished task opened the window by one


def test_rfc7143_11_4_5_1_read_underflow_residual() -> None:
    c = make()
    c.receive(rx(cmd(1, 100, READ10_8, 4096)))
    (ev,) = c.take_events()
    assert isinstance(ev, Execute)
    c.complete(ev.task, ScsiResult(0, bytes(512)))
    (d,) = sent(c)
    assert isinstance(d, pdu.DataIn) and d.underflow and d.residual == 3584


def test_rfc7143_11_4_5_1_write_with_small_edtl_is_overflow() -> None:
    c = make()
    c.receive(rx(cmd(1, 100, WRITE10_8, 512, data_length=512), bytes(512)))
    (ev,) = c.take_events()
    assert isinstance(ev, Execute) and ev.task.data_out is not None
    assert len(ev.task.data_out) == 512
    c.complete(ev.task, ScsiResult(0))
    (r,) = sent(c)
    assert isinstance(r, pdu.ScsiResponse) and r.overflow and r.residual == 3584


def test_rfc7143_4_2_5_immediate_unsolicited_then_r2t() -> None:
    c = make(initial_r2t=False)
    c.receive(rx(cmd(1, 100, WRITE10_8, 4096, data_length=512, final=False), b"a" * 512))
    c.receive(rx(pdu.DataOut(1, 0xFFFFFFFF, 0, 512, 50, True, data_length=512), b"b" * 512))
    (r2t,) = sent(c)
    assert isinstance(r2t, pdu.R2T)
    assert (r2t.offset, r2t.length, r2t.r2tsn) == (1024, 2048, 0)  # MaxBurstLength 2048
    c.receive(rx(pdu.DataOut(1, r2t.ttt, 0, 1024, 50, False, data_length=1024), b"c" * 1024))
    c.receive(rx(pdu.DataOut(1, r2t.ttt, 1, 2048, 50, True, data_length=1024), b"d" * 1024))
    (r2t2,) = sent(c)
    assert isinstance(r2t2, pdu.R2T) and (r2t2.offset, r2t2.length, r2t2.r2tsn) == (3072, 1024, 1)
    assert c.take_events() == []
    c.receive(rx(pdu.DataOut(1, r2t2.ttt, 0, 3072, 50, True, data_length=1024), b"e" * 1024))
    (ev,) = c.take_events()
    assert isinstance(ev, Execute)
    assert (
        bytes(ev.task.data_out or b"")
        == b"a" * 512 + b"b" * 512 + b"c" * 1024 + b"d" * 1024 + b"e" * 1024
    )


def test_rfc7143_11_7_4_wrong_datasn_is_rejected_and_the_task_dropped() -> None:
    c = make(initial_r2t=True)
    c.receive(rx(cmd(1, 100, WRITE10_8, 4096)))
    (r2t,) = sent(c)
    assert isinstance(r2t, pdu.R2T)
    c.receive(rx(pdu.DataOut(1, r2t.ttt, 27, 0, 50, True, data_length=512), bytes(512)))
    (rej,) = sent(c)
    assert isinstance(rej, pdu.Reject) and rej.reason == 0x04
    assert c.tasks == {}


def test_rfc7143_11_3_1_f_bit_set_means_no_unsolicited_data_follows() -> None:
    c = make(initial_r2t=False)
    c.receive(rx(cmd(1, 100, WRITE10_8, 4096, data_length=512), b"a" * 512))
    (r2t,) = sent(c)
    assert isinstance(r2t, pdu.R2T) and r2t.offset == 512


def test_rfc7143_4_2_5_data_beyond_the_burst_is_a_protocol_error() -> None:
    c = make(initial_r2t=False)
    c.receive(rx(cmd(1, 100, WRITE10_8, 4096, final=False)))
    c.receive(rx(pdu.DataOut(1, 0xFFFFFFFF, 0, 0, 50, True, data_length=2048), bytes(2048)))
    (rej,) = sent(c)
    assert isinstance(rej, pdu.Reject) and rej.reason == 0x04


def test_rfc7143_11_18_nop_out_ping_is_echoed() -> None:
    c = make()
    c.receive(rx(pdu.NopOut(5, 0xFFFFFFFF, 100, 50, immediate=True, data_length=4), b"ping"))
    (nop,) = c.take_output()
    head = pdu.NopIn.decode(mem(nop[0]))
    assert head.itt == 5 and head.ttt == 0xFFFFFFFF and mem(nop[1]) == b"ping"


def test_rfc7143_11_19_target_ping_and_answer() -> None:
    c = make()
    assert c.ping()
    (nop,) = sent(c)
    assert isinstance(nop, pdu.NopIn) and nop.itt == 0xFFFFFFFF
    assert not c.ping()
    c.receive(rx(pdu.NopOut(0xFFFFFFFF, nop.ttt, 100, 51, immediate=True)))
    assert c.ping()


def test_rfc7143_11_5_1_abort_task_of_a_finished_task_does_not_exist() -> None:
    c = make()
    c.receive(rx(cmd(1, 100, READ10_8, 4096)))
    (ev,) = c.take_events()
    assert isinstance(ev, Execute)
    c.complete(ev.task, ScsiResult(0, bytes(4096)))
    sent(c)
    c.receive(rx(pdu.TaskMgmt(9, 1, 0, 1, 101, 50, ref_cmdsn=100)))
    (r,) = sent(c)
    assert isinstance(r, pdu.TaskMgmtResponse) and r.response == 1


def test_rfc7143_11_5_1_abort_task_of_a_running_task() -> None:
    c = make()
    c.receive(rx(cmd(1, 100, READ10_8, 4096)))
    (ev,) = c.take_events()
    assert isinstance(ev, Execute)
    c.receive(rx(pdu.TaskMgmt(9, 1, 0, 1, 101, 50, ref_cmdsn=100)))
    (m,) = c.take_events()
    assert isinstance(m, ManageTasks) and m.tasks == (ev.task,)
    c.abandon(ev.task)
    c.tmf_done(m.request, 0)
    c.complete(ev.task, ScsiResult(0, bytes(4096)))  # too late: no response
    (r,) = sent(c)
    assert isinstance(r, pdu.TaskMgmtResponse) and r.response == 0


def test_rfc7143_11_14_logout() -> None:
    c = make()
    c.receive(rx(pdu.LogoutRequest(3, 0, 0, 100, 50)))
    (ev,) = c.take_events()
    assert isinstance(ev, Logout)
    c.logout_done(ev.request)
    (r,) = sent(c)
    assert isinstance(r, pdu.LogoutResponse) and r.response == 0 and r.time2wait == 2
    assert isinstance(c.take_events()[0], Close)


def test_rfc7143_11_16_snack_at_erl0_is_rejected() -> None:
    c = make()
    c.receive(rx(pdu.Snack(1, 0, 0, 0, 0)))
    (r,) = sent(c)
    assert isinstance(r, pdu.Reject)


def test_sam5_4_7_lun_field_encoding() -> None:
    for lun in (0, 1, 255, 256, 16383):
        assert decode_lun(encode_lun(lun)) == lun
    assert decode_lun(0x0001000000000001) == -1


def test_memory_per_session_is_bounded_with_task_set_full() -> None:
    c = make()
    c.limits.max_buffered = 4096
    c.receive(rx(cmd(1, 100, READ10_8, 4096)))
    c.receive(rx(cmd(2, 101, READ10_8, 4096)))
    ev = c.take_events()
    assert len(ev) == 1
    (r,) = sent(c)
    assert isinstance(r, pdu.ScsiResponse) and r.status == 0x28


# -- the READ fast path ------------------------------------------------------------------


def _fill_pattern(lun: int, cdb: memoryview, dest: memoryview) -> bool:
    dest[:] = bytes(range(256)) * (len(dest) // 256)
    return True


def _refuse(lun: int, cdb: memoryview, dest: memoryview) -> bool:
    return False


def _fast(**kw: object) -> Connection:
    c = make(**kw)
    c.fast_reader = _fill_pattern
    return c


def _bhs(rec: pdu.ScsiCommand, framer: Framer) -> memoryview:
    return memoryview(b"".join(bytes(b) for b in framer.frame(rec.encode())))


def _wire(conn: Connection) -> bytes:
    return b"".join(mem(b) for iov in conn.take_output() for b in iov)


def test_rfc7143_11_7_fast_read_sends_the_bytes_of_the_full_path() -> None:
    """A READ served by Connection.fast_read goes out as the very bytes receive() and
    complete() produce: one Data-In with F and S set, GOOD, the next StatSN, the window
    moved on; with digests as without."""
    for digests in (False, True):
        kw = {"header_digest": digests, "data_digest": digests}
        slow, fast = make(**kw), _fast(**kw)
        for c in (slow, fast):
            c.framer = Framer(max_recv_data=8192, header_digest=digests, data_digest=digests)
        command = cmd(7, 100, READ10_8[:7] + b"\x00\x02" + READ10_8[9:], 1024)
        slow.receive(rx(command))
        (ev,) = slow.take_events()
        assert isinstance(ev, Execute)
        slow.complete(ev.task, ScsiResult(0, bytes(range(256)) * 4))
        assert fast.fast_read(_bhs(command, fast.framer)) == FAST_DONE
        assert fast.take_events() == [] and not fast.tasks
        assert _wire(fast) == _wire(slow)
        assert (fast.exp_cmdsn, fast.max_cmdsn, fast.statsn) == (101, 104, 51)
        assert (slow.exp_cmdsn, slow.max_cmdsn, slow.statsn) == (101, 104, 51)
        assert fast.statistics()["commands"] == fast.statistics()["fast_reads"] == 1
        assert fast.stats.bytes_in == 1024


def test_rfc7143_4_2_2_1_fast_read_leaves_other_commands_to_the_full_path() -> None:
    """Out-of-order, immediate, write, oversized (beyond MaxRecvDataSegmentLength) and
    unserved reads are FAST_SLOW, having changed nothing."""
    c = _fast()
    cases = [
        cmd(1, 101, READ10_8, 4096),  # CmdSN ahead of ExpCmdSN
        cmd(1, 100, READ10_8, 4096, immediate=True),
        cmd(1, 100, WRITE10_8, 4096, final=True),
        cmd(1, 100, READ10_8, 4096),  # more than MaxRecvDataSegmentLength 1024
        cmd(1, 100, READ10_8, 0),
    ]
    for command in cases:
        assert c.fast_read(_bhs(command, c.framer)) == FAST_SLOW
    c.max_cmdsn = 99  # the window is closed (every slot busy): the full path drops it
    assert c.fast_read(_bhs(cmd(1, 100, READ10_8, 1024), c.framer)) == FAST_SLOW
    c.max_cmdsn = 103
    c.fast_reader = _refuse
    assert c.fast_read(_bhs(cmd(1, 100, READ10_8, 1024), c.framer)) == FAST_SLOW
    assert (c.exp_cmdsn, c.statsn, c.stats.commands, c.take_output()) == (100, 50, 0, [])
    # A bad header digest is left to the full path, which rejects it.
    c = _fast(header_digest=True)
    c.framer = Framer(header_digest=True)
    bhs = bytearray(_bhs(cmd(1, 100, READ10_8, 1024), c.framer))
    bhs[48] ^= 1
    assert c.fast_read(memoryview(bhs)) == FAST_SLOW


def test_fast_read_output_arena_is_bounded_and_reused_once_sent() -> None:
    """The Data-In PDUs of the fast path live in one bounded arena: when it is full the
    driver must send (FAST_FULL); output_sent() makes it reusable."""
    c = _fast(max_send_data=65536)
    c.limits = Limits(queue_depth=64)
    c.max_cmdsn = 100 + 63
    read64k = bytes.fromhex("28 00 00000000 00 0080 00") + bytes(6)
    results = [c.fast_read(_bhs(cmd(i, 100 + i, read64k, 65536), c.framer)) for i in range(4)]
    assert results == [FAST_DONE] * 3 + [FAST_FULL]
    assert len(c.arena or b"") == OUTPUT_ARENA
    c.output_sent()
    assert c.arena_used != 0  # PDUs still queued: the arena is still in use
    assert len(c.take_output()) == 3
    c.output_sent()
    assert c.arena_used == 0
    assert c.fast_read(_bhs(cmd(3, 103, read64k, 65536), c.framer)) == FAST_DONE


class _File:
    """A FileSource over bytes in memory, for turning FileSpan output into bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def fileno(self) -> int:
        return -1


def _materialize(conn: Connection, source: _File) -> bytes:
    out = b""
    for iov in conn.take_output():
        for b in iov:
            if isinstance(b, FileSpan):
                assert b.source is source
                out += source.data[b.offset : b.offset + b.length]
            else:
                out += bytes(b)
    return out


def test_rfc7143_11_7_2_data_in_from_the_file_is_the_data_in_of_the_full_path() -> None:
    """Connection.complete_span (the zero-copy READ path) queues the very bytes complete()
    queues for the same data: Data-In PDUs split by MaxRecvDataSegmentLength, DataSN and
    buffer offsets consecutive, status collapsed into the last; file data as FileSpans,
    never copied; with and without a header digest."""
    data = bytes(range(256)) * 16  # 4 KiB at byte 1536 of the file
    source = _File(bytes(1536) + data + bytes(512))
    for header_digest in (False, True):
        slow, fast = make(), make()
        for c in (slow, fast):
            c.framer = Framer(max_recv_data=8192, header_digest=header_digest)
        tasks = []
        for c in (slow, fast):
            c.receive(rx(cmd(7, 100, READ10_8, 4096)))
            (ev,) = c.take_events()
            assert isinstance(ev, Execute)
            tasks.append(ev.task)
        slow.complete(tasks[0], ScsiResult(0, data))
        fast.complete_span(tasks[1], source, 1536)
        pieces = [b for iov in fast.out for b in iov]
        assert sum(isinstance(b, FileSpan) for b in pieces) == 4  # 4096 / MaxSendDSL 1024
        assert _materialize(fast, source) == _wire(slow)
        assert (fast.exp_cmdsn, fast.max_cmdsn, fast.statsn) == (101, 104, 51)
        assert not fast.tasks and fast.buffered == 0
        assert fast.statistics()["file_reads"] == 1 and fast.stats.bytes_in == 4096


def test_rfc7143_11_7_2_data_in_from_the_file_needs_no_data_digest() -> None:
    """A data digest must cover data in memory: complete_span refuses, changing nothing."""
    c = make()
    c.framer = Framer(max_recv_data=8192, data_digest=True)
    c.receive(rx(cmd(7, 100, READ10_8, 4096)))
    (ev,) = c.take_events()
    assert isinstance(ev, Execute)
    with pytest.raises(ValueError):
        c.complete_span(ev.task, _File(bytes(4096)), 0)
    assert c.tasks and not c.out
    with pytest.raises(ValueError):
        c.framer.frame_pieces(bytes(48), FileSpan(_File(b""), 0, 4))


def test_data_in_from_the_file_of_an_aborted_task_is_not_sent() -> None:
    c = make()
    c.receive(rx(cmd(7, 100, READ10_8, 4096)))
    (ev,) = c.take_events()
    assert isinstance(ev, Execute)
    c.abandon(ev.task)
    statsn = c.statsn
    c.complete_span(ev.task, _File(bytes(4096)), 0)
    assert not c.out and c.statsn == statsn and c.stats.file_reads == 0
