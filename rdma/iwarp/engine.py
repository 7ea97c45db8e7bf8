"""The sans-IO iWARP endpoint: one RDMAP stream over one TCP byte stream.

Bytes in (:meth:`Endpoint.receive_data`), bytes out (:meth:`Endpoint.pull_output`), work
requests posted by the provider, completions out.  No I/O, no clock.

Receive path: MPA request/reply, then FPDUs (CRC checked when negotiated) -> DDP segments ->
tagged placement (RDMA Write, Read Response) through the STag table, or untagged queues:
QN 0 Sends into posted receives (MSN/MO reassembly, in order like siw), QN 1 Read Requests
(answered from the STag table within IRD), QN 2 Terminate.  Any violation raises an
:class:`~.errors.IwarpError`; the endpoint sends the Terminate it names (RFC 5040 7.1) and
moves to ERROR, flushing all posted work.

Send path: the send queue (Send, Send with Invalidate, RDMA Write, RDMA Read Request bounded
by ORD) and the inbound read queue (Read Responses) are cut into FPDUs of at most ``mulpdu``
bytes, alternating between the two.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

from ..verbs_types import Access, WcOpcode, WcStatus, WorkCompletion
from . import ddp, mpa
from .ddp import Opcode
from .errors import (
    DDPError,
    DdpEType,
    DdpTaggedCode,
    DdpUntaggedCode,
    IwarpError,
    LlpCode,
    MPAError,
    RdmapCode,
    RDMAPError,
    RdmapEType,
)
from .stags import StagTable

Buffer = bytes | memoryview


class State(enum.Enum):
    WAIT_REQUEST = "wait MPA request"  # passive, TCP accepted
    REQUEST_RECEIVED = "MPA request received"  # passive, waiting for accept/reject
    WAIT_REPLY = "wait MPA reply"  # active, request sent
    WAIT_RTR = "wait RTR"  # passive, peer-to-peer: nothing may be sent before the RTR
    RTS = "rts"
    ERROR = "error"


class Established(NamedTuple):
    ird: int
    ord: int
    crc: bool


class RequestReceived(NamedTuple):
    frame: mpa.MpaFrame


class Rejected(NamedTuple):
    frame: mpa.MpaFrame


class TerminateReceived(NamedTuple):
    terminate: ddp.Terminate


class ProtocolError(NamedTuple):
    error: IwarpError
    terminate_sent: bool


Event = Established | RequestReceived | Rejected | TerminateReceived | ProtocolError


class _SendJob:
    """A Send / Send with Invalidate / RDMA Write being cut into segments."""

    __slots__ = (
        "done",
        "inv_stag",
        "length",
        "msn",
        "opcode",
        "pos",
        "stag",
        "to",
        "views",
        "wr_id",
    )

    def __init__(
        self,
        wr_id: int | None,
        opcode: Opcode,
        views: Sequence[memoryview],
        stag: int = 0,
        to: int = 0,
    ) -> None:
        self.wr_id = wr_id  # None: internal (RTR)
        self.opcode = opcode
        self.views = list(views)
        self.length = sum(len(v) for v in views)
        self.stag = stag
        self.to = to
        self.inv_stag = 0
        self.msn = 0
        self.pos = 0
        self.done = False


class _ReadJob:
    __slots__ = ("length", "received", "sink_stag", "sink_to", "src_stag", "src_to", "wr_id")

    def __init__(
        self,
        wr_id: int | None,
        sink_stag: int,
        sink_to: int,
        length: int,
        src_stag: int,
        src_to: int,
    ) -> None:
        self.wr_id = wr_id
        self.sink_stag = sink_stag
        self.sink_to = sink_to
        self.length = length
        self.src_stag = src_stag
        self.src_to = src_to
        self.received = 0


class _ResponseJob:
    __slots__ = ("pos", "sink_stag", "sink_to", "source")

    def __init__(self, sink_stag: int, sink_to: int, source: memoryview) -> None:
        self.sink_stag = sink_stag
        self.sink_to = sink_to
        self.source = source
        self.pos = 0


class Endpoint:
    """One iWARP endpoint (the stream half of a queue pair)."""

    def __init__(
        self,
        *,
        active: bool,
        stags: StagTable,
        pd_id: int,
        crc: bool = True,
        ird: int = 16,
        ord: int = 16,
        peer_to_peer: bool = False,
        rtr: mpa.RTR = mpa.RTR.READ,
        mulpdu: int = 16384,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.active = active
        self.stags = stags
        self.pd_id = pd_id
        self.want_crc = crc
        self.crc = False
        self.ird = ird  # our inbound read depth
        self.ord = ord  # our outbound read depth (lowered to the peer's IRD)
        self.peer_to_peer = peer_to_peer
        self.rtr_offer = rtr
        self.rtr: mpa.RTR = mpa.RTR.NONE  # the negotiated RTR
        self.mulpdu = max(64, min(mulpdu, 0xFFFF))
        self.log = logger or logging.getLogger("rdma.iwarp")
        self.state = State.WAIT_REPLY if active else State.WAIT_REQUEST
        self.peer_frame: mpa.MpaFrame | None = None
        self.terminate: ddp.Terminate | None = None  # received or sent

        self._in = bytearray()
        self._raw_out: deque[Buffer] = deque()  # MPA frames, Terminate: ahead of all else
        self._sq: deque[_SendJob | _ReadJob] = deque()
        self._orq: deque[_ReadJob] = deque()  # read requests sent, responses pending
        self._irq: deque[_ResponseJob] = deque()  # read responses to send
        self._rq: deque[tuple[int, memoryview]] = deque()
        self._completions: list[tuple[bool, WorkCompletion]] = []  # (on the recv CQ?, wc)
        self._send_msn = 1
        self._rreq_msn = 1
        self._recv_msn = 1
        self._recv_mo = 0
        self._rreq_in_msn = 1
        self._term_msn = 1
        self._turn = False
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def failed(self) -> bool:
        return self.state is State.ERROR

    # -- connection setup ---------------------------------------------------------------

    def initiate(self, private_data: bytes = b"") -> None:
        """Active side: queue the MPA Request (RFC 5044 7.1.1, RFC 6581 3)."""
        rtr = self.rtr_offer if self.peer_to_peer else mpa.RTR.NONE
        frame = mpa.MpaFrame(
            reply=False,
            crc=self.want_crc,
            ird=self.ird,
            ord=self.ord,
            peer_to_peer=self.peer_to_peer,
            rtr=rtr,
            private_data=private_data,
        )
        self._raw_out.append(mpa.encode_frame(frame))
        self.state = State.WAIT_REPLY

    def accept(self, *, ird: int, ord: int, private_data: bytes = b"") -> None:
        """Passive side: queue the MPA Reply; IRD/ORD per RFC 6581 3.1 (our ORD is capped
        at the initiator's IRD; our IRD is what we can serve)."""
        req = self.peer_frame
        if self.state is not State.REQUEST_RECEIVED or req is None:
            raise RuntimeError("accept() without a pending MPA request")
        self.crc = self.want_crc or req.crc
        self.ird = ird
        self.ord = min(ord, req.ird) if req.enhanced else ord
        rtr = mpa.RTR.NONE
        if req.enhanced and req.peer_to_peer:
            for kind in (mpa.RTR.READ, mpa.RTR.WRITE, mpa.RTR.SEND):
                if req.rtr & kind:
                    rtr = kind
                    break
            self.rtr = rtr
        reply = mpa.MpaFrame(
            reply=True,
            crc=self.crc,
            revision=mpa.REVISION_2 if req.enhanced else req.revision,
            enhanced=req.enhanced,
            ird=self.ird,
            ord=self.ord,
            peer_to_peer=req.enhanced and req.peer_to_peer,
            rtr=rtr,
            private_data=private_data,
        )
        self._raw_out.append(mpa.encode_frame(reply))
        self.state = State.WAIT_RTR if rtr else State.RTS

    def reject(self, private_data: bytes = b"") -> None:
        req = self.peer_frame
        reply = mpa.MpaFrame(
            reply=True,
            reject=True,
            crc=bool(req and req.crc),
            revision=req.revision if req else mpa.REVISION_2,
            enhanced=bool(req and req.enhanced),
            ird=0,
            ord=0,
            private_data=private_data,
        )
        self._raw_out.append(mpa.encode_frame(reply))
        self._enter_error()

    # -- posting (SGEs already resolved and checked by the provider) ---------------------

    def post_recv(self, wr_id: int, view: memoryview) -> None:
        self._rq.append((wr_id, view))

    def post_send(
        self, wr_id: int, views: Sequence[memoryview], inv_stag: int | None = None
    ) -> None:
        job = _SendJob(wr_id, Opcode.SEND if inv_stag is None else Opcode.SEND_INVALIDATE, views)
        job.inv_stag = inv_stag or 0
        self._sq.append(job)

    def post_write(self, wr_id: int, views: Sequence[memoryview], stag: int, to: int) -> None:
        self._sq.append(_SendJob(wr_id, Opcode.RDMA_WRITE, views, stag, to))

    def post_read(
        self, wr_id: int, sink_stag: int, sink_to: int, length: int, stag: int, to: int
    ) -> None:
        self._sq.append(_ReadJob(wr_id, sink_stag, sink_to, length, stag, to))

    def take_completions(self) -> list[tuple[bool, WorkCompletion]]:
        out, self._completions = self._completions, []
        return out

    # -- receive path ------------------------------------------------------------------

    def receive_data(self, data: Buffer) -> list[Event]:
        """Feed bytes from TCP; returns the connection events they caused."""
        if self.state is State.ERROR:
            return []
        self.bytes_in += len(data)
        if self._in:
            self._in += data
            blob: Buffer = bytes(self._in)
            self._in.clear()
        else:
            blob = data
        buf = memoryview(blob)
        events: list[Event] = []
        consumed = 0
        segment: ddp.Segment | None = None
        ulen: int | None = None
        try:
            while not self.failed:
                if self.state in (State.WAIT_REQUEST, State.WAIT_REPLY):
                    n = mpa.frame_length(buf[consumed:])
                    if n is None or len(buf) - consumed < n:
                        break
                    events.extend(self._on_frame(buf[consumed : consumed + n]))
                    consumed += n
                    continue
                if self.state is State.REQUEST_RECEIVED:
                    if len(buf) > consumed:
                        raise MPAError("FPDU before the MPA reply", code=LlpCode.INVALID_REQ_REP)
                    break
                got = mpa.next_fpdu(buf[consumed:], self.crc)
                if got is None:
                    break
                ulpdu, n = got
                ulen = len(ulpdu)
                segment = None
                segment = ddp.decode_segment(ulpdu)
                self._on_segment(segment, events)
                consumed += n
                segment = None
        except IwarpError as err:
            events.append(self._protocol_error(err, segment, ulen))
            consumed = len(buf)
        if consumed < len(buf) and not self.failed:
            self._in += buf[consumed:]
        return events

    def _on_frame(self, frame_bytes: memoryview) -> list[Event]:
        if self.state is State.WAIT_REQUEST:
            req = mpa.decode_frame(frame_bytes, reply=False)
            if req.markers:
                self.peer_frame = req
                self.log.warning("MPA request asks for markers; rejecting (siw does likewise)")
                self.reject()
                return [Rejected(req)]
            self.peer_frame = req
            self.state = State.REQUEST_RECEIVED
            return [RequestReceived(req)]
        rep = mpa.decode_frame(frame_bytes, reply=True)
        self.peer_frame = rep
        if rep.reject:
            self._enter_error()
            return [Rejected(rep)]
        if rep.markers:
            raise MPAError("MPA reply asks for markers", code=LlpCode.INVALID_REQ_REP)
        self.crc = self.want_crc or rep.crc
        if rep.enhanced:
            if rep.ord > self.ird:
                raise MPAError(
                    f"responder ORD {rep.ord} exceeds our IRD {self.ird}",
                    code=LlpCode.INSUFFICIENT_IRD,
                )
            self.ord = min(self.ord, rep.ird)
        if self.peer_to_peer:
            chosen = rep.rtr if rep.enhanced and rep.peer_to_peer else mpa.RTR.NONE
            if (
                chosen not in (mpa.RTR.SEND, mpa.RTR.WRITE, mpa.RTR.READ)
                or not chosen & self.rtr_offer
            ):
                raise MPAError(
                    f"no matching RTR in MPA reply ({chosen!r})", code=LlpCode.NO_MATCHING_RTR
                )
            self.rtr = chosen
            self._queue_rtr(chosen)
        self.state = State.RTS
        return [Established(self.ird, self.ord, self.crc)]

    def _queue_rtr(self, kind: mpa.RTR) -> None:
        if kind is mpa.RTR.READ:
            self._sq.appendleft(_ReadJob(None, 0, 0, 0, 0, 0))
        elif kind is mpa.RTR.WRITE:
            self._sq.appendleft(_SendJob(None, Opcode.RDMA_WRITE, ()))
        else:
            self._sq.appendleft(_SendJob(None, Opcode.SEND, ()))

    def _on_segment(self, seg: ddp.Segment, events: list[Event]) -> None:
        if self.state is State.WAIT_RTR:
            self._check_rtr(seg)
            return
        op = seg.opcode
        if seg.tagged:
            if op == Opcode.RDMA_WRITE:
                if seg.payload:
                    sink = self.stags.tagged_sink(
                        seg.stag, seg.to, len(seg.payload), self.pd_id, Access.REMOTE_WRITE
                    )
                    sink[:] = seg.payload
            elif op == Opcode.READ_RESPONSE:
                self._on_read_response(seg)
            else:
                raise RDMAPError(
                    f"tagged segment with opcode {op}",
                    RdmapEType.REMOTE_OPERATION,
                    RdmapCode.UNEXPECTED_OPCODE,
                )
            return
        if seg.qn == ddp.QN_SEND:
            if op not in ddp.SEND_OPCODES:
                raise RDMAPError(
                    f"opcode {op} on the Send queue",
                    RdmapEType.REMOTE_OPERATION,
                    RdmapCode.UNEXPECTED_OPCODE,
                )
            self._on_send(seg)
        elif seg.qn == ddp.QN_READ_REQUEST:
            if op != Opcode.READ_REQUEST:
                raise RDMAPError(
                    f"opcode {op} on the Read Request queue",
                    RdmapEType.REMOTE_OPERATION,
                    RdmapCode.UNEXPECTED_OPCODE,
                )
            self._on_read_request(seg)
        elif seg.qn == ddp.QN_TERMINATE:
            if op != Opcode.TERMINATE:
                raise RDMAPError(
                    f"opcode {op} on the Terminate queue",
                    RdmapEType.REMOTE_OPERATION,
                    RdmapCode.UNEXPECTED_OPCODE,
                )
            term = ddp.Terminate.decode(seg.payload)
            self.terminate = term
            self.log.warning(
                "iWARP Terminate received: layer %d etype %d code %#04x",
                term.layer,
                term.etype,
                term.code,
                extra={"terminate": term},
            )
            self._enter_error()
            events.append(TerminateReceived(term))
        else:
            raise DDPError(
                f"invalid QN {seg.qn}", DdpEType.UNTAGGED_BUFFER, DdpUntaggedCode.INVALID_QN
            )

    def _check_rtr(self, seg: ddp.Segment) -> None:
        """The first FPDU in peer-to-peer mode must be the negotiated RTR (RFC 6581 3.2)."""
        kind = self.rtr
        ok = seg.last
        if kind is mpa.RTR.READ:
            ok = (
                ok
                and not seg.tagged
                and seg.qn == ddp.QN_READ_REQUEST
                and seg.opcode == Opcode.READ_REQUEST
            )
            if ok:
                req = ddp.ReadRequest.decode(seg.payload)
                ok = req.size == 0
            if ok:
                self.state = State.RTS
                self._on_read_request(seg)
                return
        elif kind is mpa.RTR.WRITE:
            ok = ok and seg.tagged and seg.opcode == Opcode.RDMA_WRITE and not seg.payload
        else:
            ok = ok and not seg.tagged and seg.qn == ddp.QN_SEND and seg.opcode == Opcode.SEND
            ok = ok and not seg.payload and seg.msn == self._recv_msn and seg.mo == 0
            if ok:
                self._recv_msn += 1
        if not ok:
            raise MPAError("first FPDU is not the negotiated RTR", code=LlpCode.NO_MATCHING_RTR)
        self.state = State.RTS

    def _on_send(self, seg: ddp.Segment) -> None:
        if seg.msn != self._recv_msn:
            raise DDPError(
                f"Send MSN {seg.msn}, expected {self._recv_msn}",
                DdpEType.UNTAGGED_BUFFER,
                DdpUntaggedCode.MSN_RANGE,
            )
        if not self._rq:
            raise DDPError(
                "Send with no receive posted", DdpEType.UNTAGGED_BUFFER, DdpUntaggedCode.NO_BUFFER
            )
        if seg.mo != self._recv_mo:
            raise DDPError(
                f"Send MO {seg.mo}, expected {self._recv_mo}",
                DdpEType.UNTAGGED_BUFFER,
                DdpUntaggedCode.INVALID_MO,
            )
        wr_id, view = self._rq[0]
        end = seg.mo + len(seg.payload)
        if end > len(view):
            raise DDPError(
                f"Send of {end}+ bytes into a {len(view)}-byte receive",
                DdpEType.UNTAGGED_BUFFER,
                DdpUntaggedCode.TOO_LONG,
            )
        view[seg.mo : end] = seg.payload
        self._recv_mo = end
        if not seg.last:
            return
        invalidated: int | None = None
        if seg.opcode in ddp.INVALIDATE_OPCODES:
            invalidated = self.stags.invalidate_remote(seg.stag, self.pd_id).rkey
        self._rq.popleft()
        self._recv_msn += 1
        self._recv_mo = 0
        self._completions.append(
            (True, WorkCompletion(wr_id, WcStatus.SUCCESS, WcOpcode.RECV, end, invalidated))
        )

    def _on_read_request(self, seg: ddp.Segment) -> None:
        if seg.msn != self._rreq_in_msn:
            raise DDPError(
                f"Read Request MSN {seg.msn}, expected {self._rreq_in_msn}",
                DdpEType.UNTAGGED_BUFFER,
                DdpUntaggedCode.MSN_RANGE,
            )
        if seg.mo != 0 or not seg.last:
            raise DDPError(
                "Read Request not in one segment",
                DdpEType.UNTAGGED_BUFFER,
                DdpUntaggedCode.INVALID_MO,
            )
        if len(self._irq) >= max(self.ird, 1):
            raise DDPError(
                f"more than IRD={self.ird} Read Requests outstanding",
                DdpEType.UNTAGGED_BUFFER,
                DdpUntaggedCode.NO_BUFFER,
            )
        req = ddp.ReadRequest.decode(seg.payload)
        self._rreq_in_msn += 1
        source = memoryview(b"")
        if req.size:
            source = self.stags.read_source(req.src_stag, req.src_to, req.size, self.pd_id)
        self._irq.append(_ResponseJob(req.sink_stag, req.sink_to, source))

    def _on_read_response(self, seg: ddp.Segment) -> None:
        if not self._orq:
            raise RDMAPError(
                "Read Response with no read outstanding",
                RdmapEType.REMOTE_OPERATION,
                RdmapCode.UNEXPECTED_OPCODE,
            )
        job = self._orq[0]
        n = len(seg.payload)
        if n:
            if (
                seg.stag != job.sink_stag
                or seg.to != job.sink_to + job.received
                or job.received + n > job.length
            ):
                raise DDPError(
                    "Read Response outside the requested sink",
                    DdpEType.TAGGED_BUFFER,
                    DdpTaggedCode.BASE_BOUNDS,
                )
            sink = self.stags.tagged_sink(seg.stag, seg.to, n, self.pd_id, Access.LOCAL_WRITE)
            sink[:] = seg.payload
            job.received += n
        if seg.last:
            if job.received != job.length:
                raise DDPError(
                    f"Read Response of {job.received} bytes for a {job.length}-byte read",
                    DdpEType.TAGGED_BUFFER,
                    DdpTaggedCode.BASE_BOUNDS,
                )
            self._orq.popleft()
            if job.wr_id is not None:
                self._completions.append(
                    (
                        False,
                        WorkCompletion(job.wr_id, WcStatus.SUCCESS, WcOpcode.RDMA_READ, job.length),
                    )
                )

    # -- send path ---------------------------------------------------------------------

    def has_output(self) -> bool:
        if self._raw_out:
            return True
        if self.state is not State.RTS:
            return False
        if self._irq:
            return True
        if self._sq:
            head = self._sq[0]
            return not (isinstance(head, _ReadJob) and len(self._orq) >= max(self.ord, 1))
        return False

    @property
    def idle(self) -> bool:
        """Nothing left to send and no read awaiting its response."""
        return not (self._raw_out or self._sq or self._irq or self._orq)

    def pull_output(self, budget: int = 1 << 18) -> tuple[list[Buffer], list[WorkCompletion]]:
        """FPDUs to write (as iovecs, up to about ``budget`` bytes) and the send completions
        to report once they are written."""
        out: list[Buffer] = []
        done: list[WorkCompletion] = []
        size = 0
        while self._raw_out and size < budget:
            b = self._raw_out.popleft()
            out.append(b)
            size += len(b)
        while size < budget and self.state is State.RTS:
            use_irq = bool(self._irq) and (self._turn or not self._sq_ready())
            self._turn = not self._turn
            if use_irq:
                bufs = self._next_response_fpdu()
            elif self._sq_ready():
                bufs = self._next_sq_fpdu(done)
            elif self._irq:
                bufs = self._next_response_fpdu()
            else:
                break
            out.extend(bufs)
            size += sum(len(b) for b in bufs)
        self.bytes_out += size
        return out, done

    def _sq_ready(self) -> bool:
        if not self._sq:
            return False
        head = self._sq[0]
        return not (isinstance(head, _ReadJob) and len(self._orq) >= max(self.ord, 1))

    def _next_response_fpdu(self) -> list[Buffer]:
        job = self._irq[0]
        room = self.mulpdu - ddp.TAGGED.size
        chunk = job.source[job.pos : job.pos + room]
        last = job.pos + len(chunk) >= len(job.source)
        hdr = ddp.tagged_header(Opcode.READ_RESPONSE, last, job.sink_stag, job.sink_to + job.pos)
        job.pos += len(chunk)
        if last:
            self._irq.popleft()
        return mpa.encode_fpdu(hdr, [chunk] if chunk else [], self.crc)

    def _next_sq_fpdu(self, done: list[WorkCompletion]) -> list[Buffer]:
        job = self._sq[0]
        if isinstance(job, _ReadJob):
            self._sq.popleft()
            self._orq.append(job)
            req = ddp.ReadRequest(job.sink_stag, job.sink_to, job.length, job.src_stag, job.src_to)
            hdr = ddp.untagged_header(
                Opcode.READ_REQUEST, True, ddp.QN_READ_REQUEST, self._rreq_msn, 0
            )
            self._rreq_msn += 1
            return mpa.encode_fpdu(hdr, [req.encode()], self.crc)
        tagged = job.opcode == Opcode.RDMA_WRITE
        room = self.mulpdu - (ddp.TAGGED.size if tagged else ddp.UNTAGGED.size)
        start = job.pos
        chunks: list[memoryview] = []
        while job.views and room > 0:
            v = job.views[0]
            if len(v) <= room:
                chunks.append(v)
                room -= len(v)
                job.views.pop(0)
            else:
                chunks.append(v[:room])
                job.views[0] = v[room:]
                room = 0
        job.pos += sum(len(c) for c in chunks)
        last = not job.views
        if tagged:
            hdr = ddp.tagged_header(Opcode.RDMA_WRITE, last, job.stag, job.to + start)
        else:
            if start == 0:
                job.msn = self._send_msn
                self._send_msn += 1
            hdr = ddp.untagged_header(job.opcode, last, ddp.QN_SEND, job.msn, start, job.inv_stag)
        if last:
            self._sq.popleft()
            if job.wr_id is not None:
                op = WcOpcode.RDMA_WRITE if tagged else WcOpcode.SEND
                done.append(WorkCompletion(job.wr_id, WcStatus.SUCCESS, op, job.length))
        return mpa.encode_fpdu(hdr, chunks, self.crc)

    # -- teardown ----------------------------------------------------------------------

    def _protocol_error(
        self, err: IwarpError, seg: ddp.Segment | None, ulen: int | None
    ) -> ProtocolError:
        sent = False
        if self.state in (State.RTS, State.WAIT_RTR):
            term = ddp.Terminate.from_error(err, seg, ulen)
            self.terminate = term
            hdr = ddp.untagged_header(Opcode.TERMINATE, True, ddp.QN_TERMINATE, self._term_msn, 0)
            self._term_msn += 1
            self._raw_out.extend(mpa.encode_fpdu(hdr, [term.encode()], self.crc))
            sent = True
        self.log.warning(
            "iWARP protocol error (%s); %s",
            err,
            "Terminate sent" if sent else "closing",
            extra={"layer": int(err.layer), "etype": err.etype, "code": err.code},
        )
        self._enter_error()
        return ProtocolError(err, sent)

    def _enter_error(self) -> None:
        """Move to ERROR and flush every posted work request (as verbs do)."""
        self.state = State.ERROR
        for wr_id, _ in self._rq:
            self._completions.append((True, WorkCompletion(wr_id, WcStatus.FLUSHED, WcOpcode.RECV)))
        self._rq.clear()
        for job in self._sq:
            if job.wr_id is None:
                continue
            if isinstance(job, _ReadJob):
                op = WcOpcode.RDMA_READ
            else:
                op = WcOpcode.RDMA_WRITE if job.opcode == Opcode.RDMA_WRITE else WcOpcode.SEND
            self._completions.append((False, WorkCompletion(job.wr_id, WcStatus.FLUSHED, op)))
        self._sq.clear()
        for rjob in self._orq:
            if rjob.wr_id is not None:
                self._completions.append(
                    (False, WorkCompletion(rjob.wr_id, WcStatus.FLUSHED, WcOpcode.RDMA_READ))
                )
        self._orq.clear()
        self._irq.clear()

    def close(self) -> None:
        """Local teardown (disconnect, peer gone): flush, send nothing more."""
        if self.state is not State.ERROR:
            self._enter_error()
