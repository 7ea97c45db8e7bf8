"""The sans-IO SMB Direct connection ([MS-SMBD] 3.1): negotiation, credits, fragmentation,
reassembly, keep-alives.  No I/O, no clock of its own (``clock`` is injected).

The driver owns the queue pair and the buffers; this object tells it what to do:

- :meth:`receives_wanted` / :meth:`receives_posted`: how many receives to post (each of
  ``config.max_receive_size`` bytes); credits are granted only for receives really posted.
- :meth:`receive`: one receive completion's bytes -> events (:class:`Negotiated`,
  :class:`MessageReceived` with a reassembled upper-layer message, :class:`Disconnect`).
- :meth:`send`: queue one upper-layer message (SMB2, no 4-byte length prefix).
- :meth:`next_send_into`: write the next message (negotiate, data fragment, credit-only or
  keep-alive) into a send buffer, consuming a send credit; None when nothing may be sent.
- :meth:`handle_timer` / :meth:`next_timer`: the idle/keep-alive timer (3.1.6.2).

Credit rules ([MS-SMBD] 3.1.5.1 and 3.1.5.9): every data transfer message costs one send
credit; CreditsGranted is the number of receives posted since the last grant; the last send
credit is used only by a message that grants at least one credit (so neither side can be
left without credits); a message arriving when we granted none is a violation.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from . import wire
from .wire import SmbdParseError

Buffer = bytes | bytearray | memoryview

MIN_RECEIVE_TARGET = 3


@dataclass(frozen=True)
class SmbDirectConfig:
    """Local limits; defaults follow Windows and Linux ([MS-SMBD] Appendix B <2>, ksmbd)."""

    receive_credit_max: int = 255
    send_credit_target: int = 255
    max_send_size: int = 1364
    max_receive_size: int = 1364
    max_fragmented_receive_size: int = 1 << 20
    max_read_write_size: int = 8 << 20
    keepalive_interval: float = 120.0  # idle connection timer
    keepalive_timeout: float = 5.0  # wait for any message after a keep-alive

    def __post_init__(self) -> None:
        if self.max_receive_size < wire.MIN_RECEIVE_SIZE:
            raise ValueError("max_receive_size below the MS-SMBD minimum of 128")
        if self.max_send_size <= wire.DATA_OFFSET:
            raise ValueError("max_send_size must exceed the 24-byte data header")
        if self.max_fragmented_receive_size < wire.MIN_FRAGMENTED_SIZE:
            raise ValueError("max_fragmented_receive_size below the minimum of 131072")
        if not (
            MIN_RECEIVE_TARGET <= self.receive_credit_max <= 0xFFFF
            and 1 <= self.send_credit_target <= 0xFFFF
        ):
            raise ValueError(
                f"receive_credit_max must be {MIN_RECEIVE_TARGET}..65535, "
                "send_credit_target 1..65535"
            )


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    NEGOTIATE_WAIT = "negotiate wait"  # server: waiting for the negotiate request
    NEGOTIATE_SENT = "negotiate sent"  # client: request sent, waiting for the response
    RESPONSE_PENDING = "response pending"  # server: response to send once receives are posted
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class Negotiated(NamedTuple):
    max_send_size: int
    max_receive_size: int
    max_fragmented_send_size: int
    max_read_write_size: int
    send_credit_target: int


class MessageReceived(NamedTuple):
    data: memoryview  # one reassembled upper-layer message


class OutgoingSend(NamedTuple):
    length: int  # bytes written into the send buffer
    invalidate_rkey: int | None = None  # post as Send with Invalidate of this peer STag


class Disconnect(NamedTuple):
    reason: str
    violation: bool


Event = Negotiated | MessageReceived | Disconnect


class SmbDirectConnection:
    def __init__(
        self,
        role: Role,
        config: SmbDirectConfig | None = None,
        *,
        clock: Callable[[], float],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.role = role
        self.config = config or SmbDirectConfig()
        self._clock = clock
        self.log = logger or logging.getLogger("rdma.smbdirect")
        self.state = State.NEGOTIATE_WAIT if role is Role.SERVER else State.NEGOTIATE_SENT
        self.disconnect_reason: str | None = None
        # negotiated
        self.max_send_size = self.config.max_send_size
        self.max_fragmented_send_size = wire.MIN_FRAGMENTED_SIZE
        self.max_read_write_size = self.config.max_read_write_size
        # credits
        self.send_credits = 0
        self.receive_credits = 0
        self.posted = 0
        self.receive_credit_target = 1
        # queues
        self._raw: deque[bytes] = deque()  # negotiate request/response
        self._sendq: deque[list[memoryview]] = deque()
        self._send_invalidate: deque[int | None] = deque()
        self.queued_bytes = 0
        self._response_requested = False
        self._keepalive_due = False
        self._keepalive_deadline: float | None = None
        self._last_rx = clock()
        # reassembly
        self._reasm: bytearray | None = None
        self._reasm_pos = 0
        self._reasm_remaining = 0
        # statistics
        self.messages_in = 0
        self.messages_out = 0
        self.fragments_in = 0
        self.fragments_out = 0
        self.credit_only_out = 0
        self.keepalives_out = 0

    # -- negotiation -------------------------------------------------------------------

    def start(self) -> None:
        """Client: queue the negotiate request ([MS-SMBD] 3.1.5.2); post one receive first."""
        if self.role is not Role.CLIENT:
            raise RuntimeError("only the client starts negotiation")
        cfg = self.config
        req = wire.NegotiateRequest(
            wire.SMBD_VERSION,
            wire.SMBD_VERSION,
            cfg.send_credit_target,
            cfg.max_send_size,
            cfg.max_receive_size,
            cfg.max_fragmented_receive_size,
        )
        self._raw.append(req.encode())

    def _on_negotiate_request(self, buf: memoryview) -> list[Event]:
        req = wire.NegotiateRequest.decode(buf)
        cfg = self.config
        if not req.min_version <= wire.SMBD_VERSION <= req.max_version:
            resp = wire.NegotiateResponse(
                wire.SMBD_VERSION, wire.SMBD_VERSION, wire.SMBD_VERSION, 0, 0,
                wire.STATUS_NOT_SUPPORTED, 0, 0, 0, 0,
            )  # fmt: skip
            self._raw.append(resp.encode())
            return [
                self._violation(f"no common version in {req.min_version:#x}..{req.max_version:#x}")
            ]
        if req.credits_requested == 0:
            return [self._violation("negotiate request asks for 0 credits")]
        if req.max_receive_size < wire.MIN_RECEIVE_SIZE:
            return [self._violation(f"peer MaxReceiveSize {req.max_receive_size} < 128")]
        if req.max_fragmented_size < wire.MIN_FRAGMENTED_SIZE:
            return [self._violation(f"peer MaxFragmentedSize {req.max_fragmented_size} < 131072")]
        self.max_send_size = min(cfg.max_send_size, req.max_receive_size)
        self.max_fragmented_send_size = req.max_fragmented_size
        self.receive_credit_target = self._target(req.credits_requested)
        self.state = State.RESPONSE_PENDING
        return [self._negotiated()]

    def _negotiate_response(self) -> bytes:
        cfg = self.config
        grant = self.posted - self.receive_credits
        resp = wire.NegotiateResponse(
            wire.SMBD_VERSION,
            wire.SMBD_VERSION,
            wire.SMBD_VERSION,
            cfg.send_credit_target,
            grant,
            wire.STATUS_SUCCESS,
            self.max_read_write_size,
            self.max_send_size,
            cfg.max_receive_size,
            cfg.max_fragmented_receive_size,
        )
        self.receive_credits += grant
        self.state = State.CONNECTED
        return resp.encode()

    def _on_negotiate_response(self, buf: memoryview) -> list[Event]:
        resp = wire.NegotiateResponse.decode(buf)
        cfg = self.config
        if resp.status != wire.STATUS_SUCCESS:
            return [self._violation(f"negotiate refused with status {resp.status:#010x}")]
        if resp.negotiated_version != wire.SMBD_VERSION:
            return [self._violation(f"negotiated version {resp.negotiated_version:#x}")]
        if resp.credits_granted == 0 or resp.credits_requested == 0:
            return [self._violation("negotiate response grants or requests 0 credits")]
        if resp.preferred_send_size > cfg.max_receive_size:
            return [
                self._violation(
                    f"peer PreferredSendSize {resp.preferred_send_size} > our MaxReceiveSize"
                )
            ]
        if resp.max_receive_size < wire.MIN_RECEIVE_SIZE:
            return [self._violation(f"peer MaxReceiveSize {resp.max_receive_size} < 128")]
        if resp.max_fragmented_size < wire.MIN_FRAGMENTED_SIZE:
            return [self._violation(f"peer MaxFragmentedSize {resp.max_fragmented_size} < 131072")]
        self.max_send_size = min(cfg.max_send_size, resp.max_receive_size)
        self.max_fragmented_send_size = resp.max_fragmented_size
        self.max_read_write_size = min(cfg.max_read_write_size, resp.max_read_write_size)
        self.send_credits = resp.credits_granted
        self.receive_credit_target = self._target(resp.credits_requested)
        self.state = State.CONNECTED
        return [self._negotiated()]

    def _target(self, requested: int) -> int:
        """Receives to keep posted: what the peer asks for, but at least MIN_RECEIVE_TARGET
        (granting more than asked is allowed, and it keeps credit-only traffic finite)."""
        return min(max(requested, MIN_RECEIVE_TARGET), self.config.receive_credit_max)

    def _negotiated(self) -> Negotiated:
        return Negotiated(
            self.max_send_size,
            self.config.max_receive_size,
            self.max_fragmented_send_size,
            self.max_read_write_size,
            self.config.send_credit_target,
        )

    # -- receive buffers ---------------------------------------------------------------

    def receives_wanted(self) -> int:
        """How many more receives the driver should post now."""
        if self.state is State.DISCONNECTED:
            return 0
        if self.state in (State.NEGOTIATE_WAIT, State.NEGOTIATE_SENT):
            return max(0, 1 - self.posted)
        return max(0, self.receive_credit_target - self.posted)

    def receives_posted(self, n: int) -> None:
        self.posted += n

    def receive_flushed(self) -> None:
        """A posted receive came back without data (the queue pair is going away)."""
        self.posted = max(0, self.posted - 1)
        self.receive_credits = min(self.receive_credits, self.posted)

    # -- receive path ------------------------------------------------------------------

    def receive(self, message: memoryview) -> list[Event]:
        """One receive completed with these bytes ([MS-SMBD] 3.1.5.7 / 3.1.5.8)."""
        if self.posted <= 0:
            raise RuntimeError("receive() with no receive posted")
        self.posted -= 1
        if self.state is State.DISCONNECTED:
            return []
        self._last_rx = self._clock()
        self._keepalive_deadline = None
        self._keepalive_due = False
        try:
            if self.state is State.NEGOTIATE_WAIT:
                return self._on_negotiate_request(message)
            if self.state is State.NEGOTIATE_SENT:
                return self._on_negotiate_response(message)
            if self.state is State.RESPONSE_PENDING:
                return [self._violation("data message before the negotiate response")]
            return self._on_data(message)
        except SmbdParseError as e:
            return [self._violation(str(e))]

    def _on_data(self, message: memoryview) -> list[Event]:
        if len(message) > self.config.max_receive_size:
            return [self._violation(f"{len(message)}-byte message > MaxReceiveSize")]
        if self.receive_credits <= 0:
            return [self._violation("message received without a receive credit")]
        self.receive_credits -= 1
        hdr, payload = wire.decode_data(message)
        self.fragments_in += 1
        if hdr.credits_requested == 0:
            return [self._violation("CreditsRequested is 0")]
        if len(payload) + hdr.remaining_data_length > self.config.max_fragmented_receive_size:
            return [
                self._violation(
                    f"DataLength {len(payload)} + RemainingDataLength "
                    f"{hdr.remaining_data_length} exceed MaxFragmentedSize "
                    f"{self.config.max_fragmented_receive_size}"
                )
            ]
        if self.send_credits + hdr.credits_granted > 0xFFFF:
            return [self._violation("peer granted more than 65535 send credits")]
        self.send_credits += hdr.credits_granted
        self.receive_credit_target = self._target(hdr.credits_requested)
        if hdr.flags & wire.FLAG_RESPONSE_REQUESTED:
            self._response_requested = True
        if not payload:
            return []
        return self._reassemble(payload, hdr.remaining_data_length)

    def _reassemble(self, payload: memoryview, remaining: int) -> list[Event]:
        n = len(payload)
        if self._reasm is None:
            total = n + remaining
            if total > self.config.max_fragmented_receive_size:
                return [
                    self._violation(
                        f"{total}-byte message exceeds MaxFragmentedSize "
                        f"{self.config.max_fragmented_receive_size}"
                    )
                ]
            if remaining == 0:
                self.messages_in += 1
                return [MessageReceived(memoryview(bytes(payload)))]
            self._reasm = bytearray(total)
            self._reasm[:n] = payload
            self._reasm_pos = n
            self._reasm_remaining = remaining
            return []
        if n + remaining != self._reasm_remaining:
            return [
                self._violation(
                    f"fragment of {n} bytes with RemainingDataLength {remaining}; "
                    f"{self._reasm_remaining} bytes were announced"
                )
            ]
        pos = self._reasm_pos
        self._reasm[pos : pos + n] = payload
        self._reasm_pos = pos + n
        self._reasm_remaining = remaining
        if remaining:
            return []
        data, self._reasm = self._reasm, None
        self.messages_in += 1
        return [MessageReceived(memoryview(data))]

    # -- send path ---------------------------------------------------------------------

    def send(self, buffers: Sequence[Buffer], invalidate_rkey: int | None = None) -> None:
        """Queue one upper-layer message (at most the peer's MaxFragmentedSize).  With
        ``invalidate_rkey`` its last fragment goes as Send with Invalidate of that peer STag
        (SMB2_CHANNEL_RDMA_V1_INVALIDATE, [MS-SMBD] 3.1.4.1)."""
        if self.state is not State.CONNECTED:
            raise RuntimeError(f"send() in state {self.state.value}")
        views = [memoryview(b).cast("B") for b in buffers if len(b)]
        total = sum(len(v) for v in views)
        if total == 0:
            raise ValueError("empty upper-layer message")
        if total > self.max_fragmented_send_size:
            raise ValueError(
                f"{total}-byte message exceeds the peer's MaxFragmentedSize "
                f"{self.max_fragmented_send_size}"
            )
        self._sendq.append(views)
        self._send_invalidate.append(invalidate_rkey)
        self.queued_bytes += total
        self.messages_out += 1

    @property
    def grantable(self) -> int:
        return self.posted - self.receive_credits

    def _needs_credit_message(self) -> bool:
        """Whether to send a credit-only message now ([MS-SMBD] 3.1.5.8 "promptly send").

        Granting back every reposted receive at once would make two idle peers trade
        credit-only messages forever (each consumes a receive the other reposts and
        grants), so: answer RESPONSE_REQUESTED and keep-alives; rescue a peer that has no
        credit at all; otherwise top up only once the peer is down to half its target and
        the grant is at least half a target (a credit-only message then never triggers one
        back: it costs the other side one receive, less than half a target).
        """
        if self._response_requested or self._keepalive_due:
            return True
        grant = self.grantable
        if grant <= 0:
            return False
        if self.receive_credits == 0:
            return True
        half = self.receive_credit_target // 2
        return self.receive_credits <= half and grant >= self.receive_credit_target - half

    def wants_to_send(self) -> bool:
        return bool(self._raw) or (
            self.state is State.CONNECTED and (bool(self._sendq) or self._needs_credit_message())
        )

    def next_send_into(self, out: memoryview) -> OutgoingSend | None:
        """Write the next message into ``out`` (at least ``max_send_size`` bytes) and return
        its length; None if there is nothing to send or no credit to send it with."""
        if self._raw:
            msg = self._raw.popleft()
            out[: len(msg)] = msg
            return OutgoingSend(len(msg))
        if self.state is State.RESPONSE_PENDING:
            if self.grantable <= 0:
                return None
            msg = self._negotiate_response()
            out[: len(msg)] = msg
            return OutgoingSend(len(msg))
        if self.state is not State.CONNECTED or self.send_credits <= 0:
            return None
        has_data = bool(self._sendq)
        if not has_data and not self._needs_credit_message():
            return None
        grant = min(self.grantable, 0xFFFF)
        if self.send_credits == 1 and grant == 0:
            return None  # [MS-SMBD] 3.1.5.9: the last credit must carry a grant
        self.send_credits -= 1
        self.receive_credits += grant
        flags = 0
        if self._keepalive_due:
            flags |= wire.FLAG_RESPONSE_REQUESTED
        if self._keepalive_due:
            self._keepalive_due = False
            self.keepalives_out += 1
        self._response_requested = False
        if not has_data:
            self.credit_only_out += 1
            return OutgoingSend(
                wire.encode_data_header_into(
                    out, self.config.send_credit_target, grant, flags, 0, 0
                )
            )
        views = self._sendq[0]
        room = self.max_send_size - wire.DATA_OFFSET
        pos = wire.DATA_OFFSET
        taken = 0
        while views and taken < room:
            v = views[0]
            k = min(len(v), room - taken)
            out[pos : pos + k] = v[:k]
            pos += k
            taken += k
            if k == len(v):
                views.pop(0)
            else:
                views[0] = v[k:]
        remaining = sum(len(v) for v in views)
        invalidate: int | None = None
        if not views:
            self._sendq.popleft()
            invalidate = self._send_invalidate.popleft()
        if self.send_credits == 0 and self._sendq:
            flags |= wire.FLAG_RESPONSE_REQUESTED  # out of credits with more to send
        self.queued_bytes -= taken
        self.fragments_out += 1
        wire.encode_data_header_into(
            out, self.config.send_credit_target, grant, flags, remaining, taken
        )
        return OutgoingSend(pos, invalidate)

    # -- timers and shutdown -----------------------------------------------------------

    def next_timer(self) -> float | None:
        if self.state is not State.CONNECTED:
            return None
        if self._keepalive_deadline is not None:
            return self._keepalive_deadline
        return self._last_rx + self.config.keepalive_interval

    def handle_timer(self, now: float) -> list[Event]:
        """Idle timer ([MS-SMBD] 3.1.6.2): send a keep-alive asking for a response; no
        message within ``keepalive_timeout`` after it -> disconnect."""
        if self.state is not State.CONNECTED:
            return []
        if self._keepalive_deadline is not None:
            if now >= self._keepalive_deadline:
                return [self._violation("no response to keep-alive", violation=False)]
            return []
        if not self._keepalive_due and now - self._last_rx >= self.config.keepalive_interval:
            # The wait starts now even if no credit lets the keep-alive go yet: a peer that
            # grants us nothing must not hold the connection open forever.
            self._keepalive_due = True
            self._keepalive_deadline = now + self.config.keepalive_timeout
        return []

    def close(self, reason: str = "local close") -> None:
        """Orderly shutdown: nothing more is sent or accepted."""
        if self.state is not State.DISCONNECTED:
            self.state = State.DISCONNECTED
            self.disconnect_reason = reason
            self._drop_queues()

    def _drop_queues(self) -> None:
        self._sendq.clear()
        self._send_invalidate.clear()
        self.queued_bytes = 0
        self._reasm = None

    def _violation(self, reason: str, violation: bool = True) -> Disconnect:
        if violation:
            self.log.warning("SMB Direct: disconnecting: %s", reason, extra={"smbd_reason": reason})
        else:
            self.log.info("SMB Direct: disconnecting: %s", reason, extra={"smbd_reason": reason})
        self.state = State.DISCONNECTED
        self.disconnect_reason = reason
        self._drop_queues()
        return Disconnect(reason, violation)

    def statistics(self) -> dict[str, int | str]:
        return {
            "state": self.state.value,
            "send_credits": self.send_credits,
            "receive_credits": self.receive_credits,
            "posted_receives": self.posted,
            "queued_bytes": self.queued_bytes,
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "fragments_in": self.fragments_in,
            "fragments_out": self.fragments_out,
            "credit_only_out": self.credit_only_out,
            "keepalives_out": self.keepalives_out,
        }
