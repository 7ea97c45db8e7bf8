"""The full feature phase of one connection (= one session, ERL 0), target side.

Sans-IO, in the manner of h11: the driver feeds each received PDU to :meth:`Connection.receive`,
then takes the PDUs to send from :meth:`Connection.take_output` and the work to do from
:meth:`Connection.take_events` (commands ready to execute, task management to carry out,
logout). When a command finishes, the driver hands the result to :meth:`Connection.complete`.
Nothing here imports trio, sockets, time or randomness.

Sequence numbers (RFC 7143 4.2.2): non-immediate commands must arrive in the window
[ExpCmdSN, MaxCmdSN] and are released to the SCSI layer in CmdSN order; commands outside it
are dropped silently (4.2.2.1). MaxCmdSN only grows as tasks complete, so at most
``queue_depth`` tasks are outstanding. StatSN is per connection and advances with every
status-bearing PDU.

Data-Out (RFC 7143 4.2.5, 11.7, 11.8): immediate data up to FirstBurstLength; unsolicited
Data-Out (TTT 0xffffffff) up to FirstBurstLength when InitialR2T=No; the rest is solicited
with R2Ts of at most MaxBurstLength, MaxOutstandingR2T at a time. Data must arrive in order
(DataPDUInOrder=Yes, DataSequenceInOrder=Yes); anything else is a protocol error, which at
ERL 0 ends the connection after a Reject.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from scsi.iscsi import pdu, text
from scsi.iscsi.errors import PduError, RejectReason, TextError
from scsi.iscsi.framing import FileSource, FileSpan, Framer, Hold, Piece, Received, crc
from scsi.iscsi.negotiation import Params
from scsi.iscsi.pdu import RESERVED_TAG, TmfFunction, TmfResponse
from scsi.nexus import ScsiResult
from scsi.sense import SenseError, Status

log = logging.getLogger("vmstor.iscsi")

Buffer = bytes | bytearray | memoryview
Iovecs = Sequence[Piece]  # one PDU: buffers, and file data (FileSpan) when sent from a file

SERIAL_HALF = 1 << 31

# The READ fast path (Connection.fast_read): reads up to FAST_READ_MAX bytes are answered
# with one Data-In PDU carrying the status, built in place in a per-connection output arena
# of OUTPUT_ARENA bytes that is reused once everything in it has been sent.
FAST_READ_MAX = 64 * 1024
OUTPUT_ARENA = 256 * 1024
FAST_DONE, FAST_SLOW, FAST_FULL = 1, 0, -1
# SCSI Command BHS up to the CDB: opcode, flags, 2 reserved, AHS/DSL, LUN, ITT, EDTL, CmdSN.
_COMMAND_HEAD = struct.Struct(">BBHIQIII")
_DIGEST = struct.Struct("<I")
_PADS = (b"", b"\0", b"\0\0", b"\0\0\0")


def sn_lt(a: int, b: int) -> bool:
    """RFC 1982 serial number arithmetic on 32 bits: a < b."""
    return a != b and ((b - a) & 0xFFFFFFFF) < SERIAL_HALF


def sn_le(a: int, b: int) -> bool:
    return a == b or sn_lt(a, b)


def decode_lun(lun: int) -> int:
    """SAM-5 4.7 LUN field -> LUN id (peripheral and flat space addressing)."""
    b0, b1 = (lun >> 56) & 0xFF, (lun >> 48) & 0xFF
    if lun & 0xFFFFFFFFFFFF:
        return -1
    method = b0 >> 6
    if method == 0:
        return b1 if b0 == 0 else -1
    if method == 1:
        return ((b0 & 0x3F) << 8) | b1
    return -1


def encode_lun(lun_id: int) -> int:
    """LUN id -> 8-byte LUN field (peripheral below 256, flat space above)."""
    if lun_id < 256:
        return lun_id << 48
    return ((0x40 | (lun_id >> 8)) << 56) | ((lun_id & 0xFF) << 48)


class TaskState(Enum):
    RECEIVING = "receiving"  # data-out still arriving
    READY = "ready"  # handed to the driver, not yet executing
    RUNNING = "running"
    DONE = "done"


class Task:
    """One SCSI command of this connection."""

    __slots__ = (
        "buffer",
        "cdb",
        "cmdsn",
        "edtl",
        "filled",
        "immediate",
        "in_order",
        "itt",
        "lun",
        "lun_id",
        "needed",
        "next_r2t_offset",
        "outstanding",
        "r2tsn",
        "read",
        "reserved",
        "state",
        "status_override",
        "unsol_datasn",
        "unsol_done",
        "unsol_end",
        "want",
        "write",
    )

    def __init__(self, cmd: pdu.ScsiCommand, cdb: bytes, lun_id: int) -> None:
        self.itt = cmd.itt
        self.lun = cmd.lun
        self.lun_id = lun_id
        self.cmdsn = cmd.cmdsn
        self.cdb = cdb
        self.read = cmd.read
        self.write = cmd.write
        self.edtl = cmd.expected_length
        self.immediate = cmd.immediate
        self.in_order = cmd.immediate
        self.state = TaskState.RECEIVING
        self.want = 0  # bytes of data-out the command uses
        self.needed = 0  # bytes of data-out the CDB asks for (may exceed EDTL)
        self.buffer: bytearray | None = None
        self.filled = 0  # contiguous bytes of data-out received from offset 0
        self.unsol_end = 0  # end offset of the unsolicited burst
        self.unsol_done = True
        self.unsol_datasn = 0
        self.next_r2t_offset = 0
        self.outstanding: dict[int, list[int]] = {}  # ttt -> [offset, end, next datasn]
        self.r2tsn = 0
        self.reserved = 0  # bytes counted against the session budget
        # The outcome, when decided before execution (bad CDB, too large, no memory).
        self.status_override: ScsiResult | None = None

    @property
    def data_out(self) -> memoryview | None:
        if self.buffer is None:
            return None
        return memoryview(self.buffer)[: self.filled]


class Execute(NamedTuple):
    """Run ``task`` on the SCSI layer and call :meth:`Connection.complete`."""

    task: Task


@dataclass(frozen=True)
class ManageTasks:
    """Carry out a TMF: cancel ``tasks`` (running ones too), act on the LU or target, then
    call :meth:`Connection.tmf_done`."""

    request: pdu.TaskMgmt
    lun_id: int
    tasks: tuple[Task, ...]


@dataclass(frozen=True)
class Logout:
    """Cancel every task, then call :meth:`Connection.logout_done`; close after sending."""

    request: pdu.LogoutRequest
    tasks: tuple[Task, ...]


@dataclass(frozen=True)
class Close:
    """The connection must end (after the output queued so far is sent)."""

    reason: str


Event = Execute | ManageTasks | Logout | Close


@dataclass
class Limits:
    """Per-session bounds (memory and concurrency)."""

    queue_depth: int = 64
    max_buffered: int = 64 * 1024 * 1024  # data-out + expected data-in bytes in flight
    # Largest EDTL accepted for one command: the SCSI layer's MAXIMUM TRANSFER LENGTH
    # (VPD B0h) is 64 MiB; larger transfers get INVALID FIELD IN CDB.
    max_transfer: int = 64 * 1024 * 1024


@dataclass
class Stats:
    commands: int = 0
    fast_reads: int = 0  # commands of them served by the READ fast path
    file_reads: int = 0  # READs whose Data-In is sent from the LUN's file (complete_span)
    bytes_in: int = 0  # data-in sent to the initiator
    bytes_out: int = 0  # data-out received from the initiator
    rejects: int = 0
    dropped_cmdsn: int = 0
    r2ts: int = 0
    nops: int = 0
    tmfs: int = 0
    task_set_full: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Connection:
    """State of one logged-in connection (session with MaxConnections=1)."""

    def __init__(
        self,
        params: Params,
        *,
        exp_cmdsn: int,
        statsn: int,
        framer: Framer,
        data_out_length: Callable[[bytes, int], int],
        fast_reader: Callable[[int, memoryview, memoryview], bool] | None = None,
        send_targets: Callable[[str], list[tuple[str, list[str]]]] | None = None,
        discovery: bool = False,
        limits: Limits | None = None,
        logger: logging.Logger | None = None,
        log_extra: dict[str, object] | None = None,
    ) -> None:
        self.params = params
        self.framer = framer
        self.limits = limits or Limits()
        self.exp_cmdsn = exp_cmdsn
        self.max_cmdsn = (exp_cmdsn + self.limits.queue_depth - 1) & 0xFFFFFFFF
        self.statsn = statsn
        self.data_out_length = data_out_length
        self.fast_reader = fast_reader
        self.arena: bytearray | None = None  # allocated by the first fast READ
        self.arena_view = memoryview(b"")
        self.arena_used = 0
        self.send_targets = send_targets
        self.discovery = discovery
        self.log = logger or log
        self.extra = log_extra or {}
        self.tasks: dict[int, Task] = {}  # by ITT
        self.waiting: dict[int, Task] = {}  # non-immediate tasks by CmdSN, ahead of ExpCmdSN
        self.skip_cmdsn: set[int] = set()  # CmdSNs aborted before they arrived
        self.next_ttt = 1
        self.ttt_owner: dict[int, Task] = {}
        self.buffered = 0
        self.out: deque[Iovecs] = deque()
        self.holds: list[Hold] = []  # of the FileSpans in self.out
        self.events: list[Event] = []
        self.pending_ping: int | None = None
        self.text_pending: bytes = b""  # a long Text Response continued with TTT
        self.text_ttt = 0
        self.closing = False
        self.stats = Stats()

    # ------------------------------------------------------------------------- driver API

    def take_output(self) -> list[Iovecs]:
        out = list(self.out)
        self.out.clear()
        return out

    def take_events(self) -> list[Event]:
        ev, self.events = self.events, []
        return ev

    def receive(self, rx: Received) -> None:
        """One PDU from the initiator. Protocol errors answer with a Reject; fatal ones
        also queue :class:`Close`."""
        if self.closing:
            return
        try:
            self._dispatch(rx)
        except PduError as e:
            self.reject(e.reason, rx.header, str(e))
            if e.fatal:
                self._close(str(e))

    def fast_read(self, bhs: memoryview) -> int:
        """The READ fast path: ``bhs`` is a SCSI Command BHS (with its header digest when
        negotiated) at the head of the receive buffer.  If it is a plain, in-order READ
        that :attr:`fast_reader` can serve at once (the SCSI layer's own fast path, which
        fills the Data-In buffer), the Data-In PDU with phase-collapsed GOOD status is
        queued straight from the output arena, without a task: FAST_DONE.  FAST_SLOW: the
        PDU must go through :meth:`receive` (nothing changed).  FAST_FULL: the arena has
        no room until the output queued so far is sent (see :meth:`output_sent`)."""
        op, flags, _, word, lun, itt, edtl, cmdsn = _COMMAND_HEAD.unpack_from(bhs)
        if (
            op != pdu.Opcode.SCSI_COMMAND  # an immediate command (I bit) goes the full way
            or flags & 0xE0 != 0xC0  # F=1, R=1, W=0
            or word  # no AHS, no immediate data
            or cmdsn != self.exp_cmdsn
            or not sn_le(cmdsn, self.max_cmdsn)  # the window is closed: dropped
            or not 0 < edtl <= FAST_READ_MAX
            or edtl > self.params.max_send_data
            or self.buffered + edtl > self.limits.max_buffered
            or self.fast_reader is None
            or self.closing
            or self.waiting
            or itt in self.tasks
            or itt == RESERVED_TAG
            or cmdsn in self.skip_cmdsn
        ):
            return FAST_SLOW
        framer = self.framer
        head = pdu.BHS_LENGTH
        if framer.header_digest:
            if _DIGEST.unpack_from(bhs, head)[0] != crc(bhs[:head]):
                return FAST_SLOW  # the full path rejects it
            head += 4
        pad = -edtl & 3
        size = head + edtl + pad + (4 if framer.data_digest else 0)
        arena = self.arena
        if arena is None:
            arena = self.arena = bytearray(OUTPUT_ARENA)
            self.arena_view = memoryview(arena)
        pos = self.arena_used
        if pos + size > len(arena):
            return FAST_FULL if pos else FAST_SLOW
        view = self.arena_view
        start = pos + head
        end = start + edtl
        if not self.fast_reader(decode_lun(lun), bhs[32:48], view[start:end]):
            return FAST_SLOW
        self.exp_cmdsn = (cmdsn + 1) & 0xFFFFFFFF
        stats = self.stats
        stats.commands += 1
        stats.fast_reads += 1
        stats.bytes_in += edtl
        self._grow_window()
        statsn = self.statsn
        self.statsn = (statsn + 1) & 0xFFFFFFFF
        pdu.pack_data_in_status(arena, pos, itt, lun, edtl, statsn, self.exp_cmdsn, self.max_cmdsn)
        if framer.header_digest:
            _DIGEST.pack_into(arena, pos + pdu.BHS_LENGTH, crc(view[pos : pos + pdu.BHS_LENGTH]))
        if pad:
            arena[end : end + pad] = _PADS[pad]
        if framer.data_digest:
            _DIGEST.pack_into(arena, end + pad, crc(view[start : end + pad]))
        self.arena_used = pos + size
        self.out.append([view[pos : pos + size]])
        return FAST_DONE

    def take_holds(self) -> list[Hold]:
        """The holds of the file data queued so far (:meth:`complete_span`): the driver
        releases them once the output taken with them has been sent, or dropped."""
        holds, self.holds = self.holds, []
        return holds

    def output_sent(self) -> None:
        """The driver sent everything :meth:`take_output` gave it; when nothing more is
        queued, no buffer refers to the output arena any more and it is reused."""
        if not self.out:
            self.arena_used = 0

    def data_destination(self, bhs: bytes | bytearray) -> memoryview | None:
        """Where the data of a Data-Out PDU goes, when it is valid and in order: a slice of
        its task's buffer, so the driver can receive it there without a copy. None means
        "receive it into a buffer of its own" (the PDU is then checked as usual)."""
        if bhs[0] & 0x3F != pdu.Opcode.DATA_OUT or bhs[4]:
            return None
        d = pdu.DataOut.decode(bhs)
        task = self.tasks.get(d.itt)
        if task is None or task.buffer is None or task.state is not TaskState.RECEIVING:
            return None
        if d.offset != task.filled:
            return None
        if d.ttt == RESERVED_TAG:
            if task.unsol_done or d.datasn != task.unsol_datasn:
                return None
            end = task.unsol_end
        else:
            seq = task.outstanding.get(d.ttt)
            if seq is None or d.datasn != seq[2]:
                return None
            end = seq[1]
        if d.offset + d.data_length > min(end, task.want):
            return None
        return memoryview(task.buffer)[d.offset : d.offset + d.data_length]

    def drop_task_of(self, header: bytes) -> None:
        """A command or Data-Out PDU was rejected before decoding (a data digest error):
        at ERL 0 its task cannot complete, so it is dropped (the initiator fails it)."""
        if len(header) < pdu.BHS_LENGTH:
            return
        if header[0] & 0x3F not in (pdu.Opcode.DATA_OUT, pdu.Opcode.SCSI_COMMAND):
            return
        task = self.tasks.get(int.from_bytes(header[16:20], "big"))
        if task is not None and task.state is TaskState.RECEIVING:
            self._finish(task)

    def reject(self, reason: int, header: bytes, why: str) -> None:
        self.stats.rejects += 1
        self.log.warning("reject %#04x: %s", reason, why, extra=self.extra)
        rec = pdu.Reject(reason, self.statsn, self.exp_cmdsn, self.max_cmdsn)
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        self.out.append(self.framer.frame(rec.encode(), header[: pdu.BHS_LENGTH]))

    def complete(self, task: Task, result: ScsiResult) -> None:
        """Queue Data-In and status for a finished task."""
        if self.tasks.get(task.itt) is not task:
            return  # aborted meanwhile
        self._finish(task)
        self._respond(task, result)

    def complete_span(
        self, task: Task, source: FileSource, offset: int, hold: Hold | None = None
    ) -> None:
        """A READ that ended with GOOD status, its ``task.edtl`` bytes of data at ``offset``
        in ``source``'s file (the SCSI layer's zero-copy path): the Data-In PDUs, status
        collapsed into the last, carry :class:`FileSpan` segments the driver sends from the
        file.  ``hold`` is released once the driver has sent them or given up (see
        :meth:`take_holds`).  Not with a data digest (ValueError): its CRC needs the data
        in memory."""
        if self.framer.data_digest or self.tasks.get(task.itt) is not task:
            if hold is not None:
                hold.release()
            if self.framer.data_digest:
                raise ValueError("a data digest needs the data in memory")
            return  # aborted meanwhile
        if hold is not None:
            self.holds.append(hold)
        self._finish(task)
        self.stats.file_reads += 1
        self._respond(task, ScsiResult(Status.GOOD), [FileSpan(source, offset, task.edtl)])

    def abandon(self, task: Task) -> None:
        """Forget a task without a response (aborted by a TMF or a logout)."""
        if self.tasks.get(task.itt) is task:
            self._finish(task)

    def tmf_done(self, req: pdu.TaskMgmt, response: int) -> None:
        rec = pdu.TaskMgmtResponse(req.itt, response, self.statsn, self.exp_cmdsn, self.max_cmdsn)
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        self.out.append(self.framer.frame(rec.encode()))

    def logout_done(self, req: pdu.LogoutRequest) -> None:
        rec = pdu.LogoutResponse(
            req.itt,
            pdu.LogoutResponseCode.SUCCESS,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            self.params.time2wait,
            self.params.time2retain,
        )
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        self.out.append(self.framer.frame(rec.encode()))
        self._close("logout")

    def ping(self) -> bool:
        """Queue a target-initiated NOP-In (RFC 7143 11.19). False if one is unanswered."""
        if self.pending_ping is not None:
            return False
        ttt = self._new_ttt()
        self.pending_ping = ttt
        rec = pdu.NopIn(RESERVED_TAG, ttt, self.statsn, self.exp_cmdsn, self.max_cmdsn)
        self.out.append(self.framer.frame(rec.encode()))
        return True

    def async_event(self, lun_id: int, sense: bytes) -> None:
        """Queue an Async Message, event 0 (SCSI async event) carrying ``sense``."""
        data = len(sense).to_bytes(2, "big") + sense
        rec = pdu.AsyncMessage(
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            pdu.AsyncEvent.SCSI_EVENT,
            lun=encode_lun(lun_id),
            data_length=len(data),
        )
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        self.out.append(self.framer.frame(rec.encode(), data))

    def statistics(self) -> dict[str, object]:
        s = self.stats
        return {
            "commands": s.commands,
            "fast_reads": s.fast_reads,
            "file_reads": s.file_reads,
            "bytes_in": s.bytes_in,
            "bytes_out": s.bytes_out,
            "rejects": s.rejects,
            "dropped_cmdsn": s.dropped_cmdsn,
            "r2ts": s.r2ts,
            "nops": s.nops,
            "tmfs": s.tmfs,
            "task_set_full": s.task_set_full,
            "tasks": len(self.tasks),
            "buffered": self.buffered,
            "exp_cmdsn": self.exp_cmdsn,
            "max_cmdsn": self.max_cmdsn,
            "statsn": self.statsn,
        }

    # -------------------------------------------------------------------------- dispatch

    def _dispatch(self, rx: Received) -> None:
        rec = rx.record
        handler = _HANDLERS.get(type(rec))
        if handler is None:
            raise PduError(RejectReason.COMMAND_NOT_SUPPORTED, f"{type(rec).__name__} not expected")
        handler(self, rx)

    def _close(self, why: str) -> None:
        if not self.closing:
            self.closing = True
            self.events.append(Close(why))

    def _new_ttt(self) -> int:
        ttt = self.next_ttt
        self.next_ttt = (self.next_ttt + 1) & 0x7FFFFFFF or 1
        return ttt

    def _check_cmdsn(self, cmdsn: int, immediate: bool) -> bool:
        """True if a non-immediate PDU's CmdSN is acceptable (RFC 7143 4.2.2.1)."""
        if immediate:
            return True
        if sn_le(self.exp_cmdsn, cmdsn) and sn_le(cmdsn, self.max_cmdsn):
            return True
        self.stats.dropped_cmdsn += 1
        self.log.info(
            "dropping PDU with CmdSN %d outside [%d, %d]",
            cmdsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            extra=self.extra,
        )
        return False

    def _advance(self) -> None:
        """Release waiting tasks whose CmdSN has come up."""
        while self.exp_cmdsn in self.waiting:
            task = self.waiting.pop(self.exp_cmdsn)
            self.exp_cmdsn = (self.exp_cmdsn + 1) & 0xFFFFFFFF
            task.in_order = True
            self._maybe_ready(task)

    def _consume_cmdsn(self, cmdsn: int) -> None:
        """A non-task PDU (NOP-Out, Text, Logout) with a CmdSN: it occupies its slot."""
        if cmdsn == self.exp_cmdsn:
            self.exp_cmdsn = (self.exp_cmdsn + 1) & 0xFFFFFFFF
            self._grow_window()
            self._advance()

    def _grow_window(self) -> None:
        active = len(self.tasks)
        candidate = (self.exp_cmdsn + max(self.limits.queue_depth - active, 1) - 1) & 0xFFFFFFFF
        if sn_lt(self.max_cmdsn, candidate):
            self.max_cmdsn = candidate

    # ------------------------------------------------------------------- SCSI commands

    def _on_command(self, rx: Received) -> None:
        cmd = rx.record
        assert isinstance(cmd, pdu.ScsiCommand)
        if self.discovery:
            raise PduError(RejectReason.PROTOCOL_ERROR, "SCSI command in a discovery session")
        if not self._check_cmdsn(cmd.cmdsn, cmd.immediate):
            return
        if not cmd.immediate and cmd.cmdsn in self.skip_cmdsn:
            self.skip_cmdsn.discard(cmd.cmdsn)
            self._consume_cmdsn(cmd.cmdsn)
            return
        if cmd.itt == RESERVED_TAG or cmd.itt in self.tasks:
            raise PduError(RejectReason.INVALID_PDU_FIELD, f"ITT {cmd.itt:#x} in use or reserved")
        if not cmd.final and not (cmd.write and not self.params.initial_r2t):
            # F=0 announces unsolicited Data-Out (RFC 7143 11.3.1), allowed only then.
            raise PduError(RejectReason.PROTOCOL_ERROR, "F=0 without unsolicited data allowed")
        cdb = cmd.cdb
        if rx.ahs:
            cdb = self._extended_cdb(cdb, rx.ahs)
        if cmd.read and cmd.write:
            raise PduError(RejectReason.COMMAND_NOT_SUPPORTED, "bidirectional commands")
        if not self.params.immediate_data and cmd.data_length:
            raise PduError(RejectReason.PROTOCOL_ERROR, "immediate data not negotiated")
        if cmd.data_length and not cmd.write:
            raise PduError(RejectReason.PROTOCOL_ERROR, "immediate data without the W bit")
        if cmd.data_length > min(self.params.first_burst, cmd.expected_length):
            raise PduError(RejectReason.PROTOCOL_ERROR, "immediate data beyond FirstBurstLength")

        task = Task(cmd, cdb, decode_lun(cmd.lun))
        self.tasks[cmd.itt] = task
        self.stats.commands += 1
        if not cmd.immediate:
            if cmd.cmdsn == self.exp_cmdsn:
                self.exp_cmdsn = (self.exp_cmdsn + 1) & 0xFFFFFFFF
                task.in_order = True
            else:
                self.waiting[cmd.cmdsn] = task
        self._setup_data(task, cmd, rx.data)
        if task.in_order:
            self._maybe_ready(task)
            self._advance()

    def _extended_cdb(self, cdb: bytes, ahs: memoryview) -> bytes:
        """RFC 7143 11.2.2 Extended CDB AHS (type 1): the CDB bytes past 16."""
        if len(ahs) < 4:
            raise PduError(RejectReason.PROTOCOL_ERROR, "short AHS")
        length = int.from_bytes(ahs[0:2], "big")
        if ahs[2] != 1 or length < 1 or 3 + length > len(ahs):
            raise PduError(RejectReason.PROTOCOL_ERROR, "unsupported or malformed AHS")
        return cdb + bytes(ahs[4 : 3 + length])

    def _setup_data(self, task: Task, cmd: pdu.ScsiCommand, immediate: memoryview) -> None:
        if task.edtl > self.limits.max_transfer:
            task.status_override = ScsiResult(
                Status.CHECK_CONDITION, sense=SenseError.invalid_cdb().to_bytes()
            )
        want = 0
        if task.write and task.status_override is None:
            try:
                task.needed = self.data_out_length(task.cdb, task.lun_id)
                want = min(task.edtl, task.needed)
            except SenseError as e:
                task.status_override = ScsiResult(Status.CHECK_CONDITION, sense=e.to_bytes())
        reserve = (want if task.write else 0) + (task.edtl if task.read else 0)
        if task.status_override is None and self.buffered + reserve > self.limits.max_buffered:
            self.stats.task_set_full += 1
            task.status_override = ScsiResult(Status.TASK_SET_FULL)
        if task.status_override is None:
            task.reserved = reserve
            self.buffered += reserve
            task.want = want
        if task.write:
            # The initiator sends unsolicited data regardless of what we need: immediate
            # data, and with F=0 Data-Out PDUs up to FirstBurstLength (RFC 7143 11.3.1).
            task.unsol_end = cmd.data_length
            if not cmd.final:
                task.unsol_end = max(min(task.edtl, self.params.first_burst), cmd.data_length)
            task.unsol_done = task.unsol_end == cmd.data_length
            if task.want:
                task.buffer = bytearray(task.want)
            if cmd.data_length:
                self._accept(task, 0, immediate)
            task.next_r2t_offset = max(task.filled, min(task.unsol_end, task.want))

    def _accept(self, task: Task, offset: int, data: memoryview) -> None:
        if offset != task.filled and offset < task.want:
            raise PduError(RejectReason.PROTOCOL_ERROR, "data out of order")
        n = len(data)
        self.stats.bytes_out += n
        if task.buffer is not None and offset < task.want:
            end = min(offset + n, task.want)
            if data.obj is not task.buffer:  # not received in place (data_destination)
                task.buffer[offset:end] = data[: end - offset]
            task.filled = end

    def _maybe_ready(self, task: Task) -> None:
        """Send R2Ts while data is missing; hand the task to the driver when complete."""
        if task.state is not TaskState.RECEIVING or not task.in_order:
            return
        if not task.unsol_done:
            return
        if task.status_override is None:
            self._issue_r2ts(task)
            if task.filled < task.want or task.outstanding:
                return
        task.state = TaskState.READY
        if task.status_override is not None:
            self.complete(task, task.status_override)
            return
        self.events.append(Execute(task))

    def _issue_r2ts(self, task: Task) -> None:
        p = self.params
        while len(task.outstanding) < p.max_outstanding_r2t and task.next_r2t_offset < task.want:
            offset = task.next_r2t_offset
            length = min(p.max_burst, task.want - offset)
            ttt = self._new_ttt()
            task.outstanding[ttt] = [offset, offset + length, 0]
            self.ttt_owner[ttt] = task
            task.next_r2t_offset = offset + length
            rec = pdu.R2T(
                task.itt,
                ttt,
                self.statsn,
                self.exp_cmdsn,
                self.max_cmdsn,
                task.r2tsn,
                offset,
                length,
                lun=task.lun,
            )
            task.r2tsn += 1
            self.stats.r2ts += 1
            self.out.append(self.framer.frame(rec.encode()))

    def _on_data_out(self, rx: Received) -> None:
        d = rx.record
        assert isinstance(d, pdu.DataOut)
        task = self.tasks.get(d.itt)
        if task is None or task.state is not TaskState.RECEIVING:
            # RFC 7143 7.x: data for a task we no longer know (e.g. aborted) is discarded.
            if task is None and d.ttt != RESERVED_TAG and d.ttt not in self.ttt_owner:
                raise PduError(RejectReason.INVALID_PDU_FIELD, f"unknown TTT {d.ttt:#x}")
            return
        try:
            self._data_out(task, d, rx.data)
        except PduError:
            # ERL 0: the task cannot complete; the initiator fails it on the Reject.
            self._finish(task)
            raise

    def _data_out(self, task: Task, d: pdu.DataOut, data: memoryview) -> None:
        n = d.data_length
        if d.ttt == RESERVED_TAG:
            if task.unsol_done:
                raise PduError(RejectReason.PROTOCOL_ERROR, "unsolicited data not expected")
            if d.datasn != task.unsol_datasn:
                raise PduError(RejectReason.PROTOCOL_ERROR, f"DataSN {d.datasn} out of order")
            if d.offset + n > task.unsol_end:
                raise PduError(RejectReason.PROTOCOL_ERROR, "unsolicited data beyond FirstBurst")
            task.unsol_datasn += 1
            self._accept(task, d.offset, data)
            if d.final:
                if d.offset + n != task.unsol_end:
                    raise PduError(RejectReason.PROTOCOL_ERROR, "short unsolicited burst")
                task.unsol_done = True
                self._maybe_ready(task)
            return
        seq = task.outstanding.get(d.ttt)
        if seq is None:
            raise PduError(RejectReason.INVALID_PDU_FIELD, f"TTT {d.ttt:#x} not outstanding")
        start, end, datasn = seq
        if d.datasn != datasn:
            raise PduError(RejectReason.PROTOCOL_ERROR, f"DataSN {d.datasn} expected {datasn}")
        if d.offset != (task.filled if task.filled >= start else start) or d.offset + n > end:
            raise PduError(RejectReason.PROTOCOL_ERROR, "Data-Out outside the R2T's burst")
        seq[2] = datasn + 1
        self._accept(task, d.offset, data)
        if d.final:
            if task.filled != end:
                raise PduError(RejectReason.PROTOCOL_ERROR, "burst ended early")
            del task.outstanding[d.ttt]
            self.ttt_owner.pop(d.ttt, None)
            self._maybe_ready(task)

    def _finish(self, task: Task) -> None:
        task.state = TaskState.DONE
        del self.tasks[task.itt]
        if task.cmdsn in self.waiting and self.waiting[task.cmdsn] is task:
            del self.waiting[task.cmdsn]
        for ttt in task.outstanding:
            self.ttt_owner.pop(ttt, None)
        task.outstanding.clear()
        self.buffered -= task.reserved
        task.reserved = 0
        task.buffer = None
        self._grow_window()

    def _respond(
        self, task: Task, result: ScsiResult, spans: Sequence[Piece] | None = None
    ) -> None:
        """Data-In PDUs (phase-collapsed status when possible) and/or a SCSI Response.
        The data is ``result.data``, or ``spans`` when given."""
        p = self.params
        status: int = result.status
        sense: bytes = result.sense
        chunks: Sequence[Piece]
        if spans is not None:
            chunks = spans
        else:
            data = result.data
            chunks = data if isinstance(data, list) else [data]
        total = sum(len(c) for c in chunks)
        send = min(total, task.edtl) if task.read else 0
        residual, over, under = 0, False, False
        if task.read:
            if total > task.edtl:
                residual, over = total - task.edtl, True
            elif total < task.edtl:
                residual, under = task.edtl - total, True
        elif task.write:
            needed = task.needed
            # RFC 7143 11.4.5.1: overflow = bytes not transferred because the EDTL was too
            # small; underflow = expected bytes that were not transferred.
            if needed > task.edtl:
                residual, over = needed - task.edtl, True
            elif needed < task.edtl:
                residual, under = task.edtl - needed, True
        elif task.edtl:
            residual, under = task.edtl, True

        collapse = status == 0 and not sense and send > 0
        datasn = 0
        if send:
            mrdsl = p.max_send_data
            offset = 0
            views = _segments(chunks, send, mrdsl)
            for i, seg in enumerate(views):
                n = sum(len(v) for v in seg)
                last = i == len(views) - 1
                if last and collapse:
                    rec = pdu.DataIn(
                        task.itt,
                        datasn,
                        offset,
                        True,
                        self.statsn,
                        self.exp_cmdsn,
                        self.max_cmdsn,
                        status,
                        residual,
                        over,
                        under,
                        lun=task.lun,
                        data_length=n,
                    )
                    self.statsn = (self.statsn + 1) & 0xFFFFFFFF
                else:
                    rec = pdu.DataIn(
                        task.itt,
                        datasn,
                        offset,
                        last,
                        0,
                        self.exp_cmdsn,
                        self.max_cmdsn,
                        lun=task.lun,
                        data_length=n,
                    )
                self.out.append(self.framer.frame_pieces(rec.encode(), *seg))
                datasn += 1
                offset += n
            self.stats.bytes_in += send
            if collapse:
                return
        payload = b""
        if sense:
            payload = len(sense).to_bytes(2, "big") + sense
        rsp = pdu.ScsiResponse(
            task.itt,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            status,
            0,
            datasn,
            residual,
            over,
            under,
            data_length=len(payload),
        )
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        self.out.append(self.framer.frame(rsp.encode(), payload))

    # ----------------------------------------------------------------------- other PDUs

    def _on_nop_out(self, rx: Received) -> None:
        nop = rx.record
        assert isinstance(nop, pdu.NopOut)
        self.stats.nops += 1
        if nop.itt == RESERVED_TAG:
            # The answer to our ping (TTT echoes it), or an unanswered-ping NOP (RFC 11.18.2).
            if nop.ttt != RESERVED_TAG and nop.ttt == self.pending_ping:
                self.pending_ping = None
            elif nop.ttt != RESERVED_TAG:
                raise PduError(RejectReason.PROTOCOL_ERROR, "NOP-Out answers no ping of ours")
            if not nop.immediate and self._check_cmdsn(nop.cmdsn, False):
                self._consume_cmdsn(nop.cmdsn)
            return
        if nop.ttt != RESERVED_TAG:
            raise PduError(RejectReason.PROTOCOL_ERROR, "NOP-Out ping with a TTT")
        if not nop.immediate:
            if not self._check_cmdsn(nop.cmdsn, False):
                return
            self._consume_cmdsn(nop.cmdsn)
        rec = pdu.NopIn(
            nop.itt,
            RESERVED_TAG,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            nop.lun,
            data_length=len(rx.data),
        )
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        self.out.append(self.framer.frame(rec.encode(), bytes(rx.data)))

    def _on_tmf(self, rx: Received) -> None:
        req = rx.record
        assert isinstance(req, pdu.TaskMgmt)
        self.stats.tmfs += 1
        if not req.immediate:
            if not self._check_cmdsn(req.cmdsn, False):
                return
            self._consume_cmdsn(req.cmdsn)
        lun_id = decode_lun(req.lun)
        fn = req.function
        if fn == TmfFunction.ABORT_TASK:
            task = self.tasks.get(req.ref_itt)
            if task is None or task.lun != req.lun:
                # RFC 7143 11.5.1 b): a command not received yet whose CmdSN is in the window
                # counts as received (and is dropped when it arrives): "function complete".
                # A command already finished does not exist any more.
                unseen = sn_le(self.exp_cmdsn, req.ref_cmdsn) and sn_le(
                    req.ref_cmdsn, self.max_cmdsn
                )
                if unseen and req.ref_cmdsn not in self.waiting:
                    self.skip_cmdsn.add(req.ref_cmdsn)
                self.tmf_done(
                    req, TmfResponse.COMPLETE if unseen else TmfResponse.TASK_DOES_NOT_EXIST
                )
                return
            self.events.append(ManageTasks(req, lun_id, (task,)))
        elif fn in (
            TmfFunction.ABORT_TASK_SET,
            TmfFunction.CLEAR_TASK_SET,
            TmfFunction.LOGICAL_UNIT_RESET,
        ):
            tasks = tuple(t for t in self.tasks.values() if t.lun == req.lun)
            self.events.append(ManageTasks(req, lun_id, tasks))
        elif fn in (TmfFunction.TARGET_WARM_RESET, TmfFunction.TARGET_COLD_RESET):
            self.events.append(ManageTasks(req, lun_id, tuple(self.tasks.values())))
        elif fn == TmfFunction.TASK_REASSIGN:
            self.tmf_done(req, TmfResponse.REASSIGNMENT_NOT_SUPPORTED)
        else:
            self.tmf_done(req, TmfResponse.NOT_SUPPORTED)

    def _on_logout(self, rx: Received) -> None:
        req = rx.record
        assert isinstance(req, pdu.LogoutRequest)
        if not req.immediate:
            if not self._check_cmdsn(req.cmdsn, False):
                return
            self._consume_cmdsn(req.cmdsn)
        if req.reason == pdu.LogoutReason.REMOVE_FOR_RECOVERY:
            rec = pdu.LogoutResponse(
                req.itt,
                pdu.LogoutResponseCode.RECOVERY_NOT_SUPPORTED,
                self.statsn,
                self.exp_cmdsn,
                self.max_cmdsn,
            )
            self.statsn = (self.statsn + 1) & 0xFFFFFFFF
            self.out.append(self.framer.frame(rec.encode()))
            return
        self.events.append(Logout(req, tuple(self.tasks.values())))

    def _on_text(self, rx: Received) -> None:
        req = rx.record
        assert isinstance(req, pdu.TextRequest)
        if not req.immediate:
            if not self._check_cmdsn(req.cmdsn, False):
                return
            self._consume_cmdsn(req.cmdsn)
        if req.ttt != RESERVED_TAG:
            if req.ttt != self.text_ttt or not self.text_pending:
                raise PduError(RejectReason.PROTOCOL_ERROR, "Text continuation with unknown TTT")
            self._send_text(req.itt, self.text_pending)
            return
        if not req.final or req.cont:
            raise PduError(RejectReason.COMMAND_NOT_SUPPORTED, "multi-PDU Text requests")
        try:
            pairs = text.decode_pairs(rx.data)
        except TextError as e:
            raise PduError(RejectReason.PROTOCOL_ERROR, f"bad text: {e}") from None
        answer: list[tuple[str, str]] = []
        for k, v in pairs:
            if k == "SendTargets" and self.send_targets is not None:
                if not self.discovery and v == "All":
                    v = ""
                for name, addresses in self.send_targets(v):
                    answer.append(("TargetName", name))
                    answer.extend(("TargetAddress", a) for a in addresses)
            else:
                answer.append((k, "NotUnderstood"))
        self._send_text(req.itt, text.encode_pairs(answer))

    def _send_text(self, itt: int, data: bytes) -> None:
        limit = self.params.max_send_data
        chunk, rest = data[:limit], data[limit:]
        ttt = RESERVED_TAG
        if rest:
            self.text_ttt = ttt = self._new_ttt()
        self.text_pending = rest
        rec = pdu.TextResponse(
            itt,
            ttt,
            self.statsn,
            self.exp_cmdsn,
            self.max_cmdsn,
            final=not rest,
            cont=bool(rest),
            data_length=len(chunk),
        )
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        self.out.append(self.framer.frame(rec.encode(), chunk))

    def _on_snack(self, rx: Received) -> None:
        raise PduError(RejectReason.PROTOCOL_ERROR, "SNACK at ErrorRecoveryLevel 0")

    def _on_login(self, rx: Received) -> None:
        raise PduError(RejectReason.PROTOCOL_ERROR, "Login Request in full feature phase")


def _segments(chunks: Sequence[Piece], total: int, limit: int) -> list[list[Piece]]:
    """Split the first ``total`` bytes of ``chunks`` into PDUs of at most ``limit`` bytes,
    as memoryview slices or :class:`FileSpan` cuts (no copy)."""
    pieces = [c if isinstance(c, FileSpan) else memoryview(c).cast("B") for c in chunks]
    if len(pieces) == 1 and total <= limit:  # the common case: one buffer, one PDU
        return [[_cut(pieces[0], 0, total)]]
    out: list[list[Piece]] = []
    cur: list[Piece] = []
    room = limit
    left = total
    for c in pieces:
        pos = 0
        while pos < len(c) and left:
            n = min(len(c) - pos, room, left)
            cur.append(_cut(c, pos, n))
            pos += n
            room -= n
            left -= n
            if room == 0:
                out.append(cur)
                cur, room = [], limit
        if not left:
            break
    if cur:
        out.append(cur)
    return out


def _cut(piece: FileSpan | memoryview, start: int, length: int) -> Piece:
    """``length`` bytes of ``piece`` from ``start``, without copying them."""
    if isinstance(piece, FileSpan):
        return piece.cut(start, length)
    return piece[start : start + length]


_HANDLERS: dict[type, Callable[[Connection, Received], None]] = {
    pdu.ScsiCommand: Connection._on_command,
    pdu.DataOut: Connection._on_data_out,
    pdu.NopOut: Connection._on_nop_out,
    pdu.TaskMgmt: Connection._on_tmf,
    pdu.LogoutRequest: Connection._on_logout,
    pdu.TextRequest: Connection._on_text,
    pdu.Snack: Connection._on_snack,
    pdu.LoginRequest: Connection._on_login,
}
