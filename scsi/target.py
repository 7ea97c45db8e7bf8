"""The SCSI target device server: one target (an iSCSI target name) holding
logical units, target port groups and the table of I_T nexuses.

Transports call :meth:`Target.execute` for each command and the task
management hooks; everything SCSI (unit attentions, reservations, ALUA access
states, LUN masking) is decided here, transport-independently.
"""

from __future__ import annotations

import errno
import logging
import struct
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

import trio

from . import commands
from .alua import AluaState, TargetPortGroup, check_access
from .backend import Backend
from .cdb import Op, check_length, parameter_list_length, parse_rw
from .lun import LogicalUnit
from .nexus import Nexus, ScsiResult
from .pr import ReservationConflictError
from .sense import Asc, SenseError, SenseKey, Status, build_fixed_sense
from .vpd import LIMITS, VpdBuilder
from .xcopy import CopyManager

__all__ = ["Masking", "Target"]

log = logging.getLogger("vmstor.scsi")

_READ10 = struct.Struct(">BBIBHB")  # op, flags, lba, group, length, control
_READ16 = struct.Struct(">BBQIBB")
_NO_ENTRY: tuple[object, bytes] = (None, b"")

# masking(nexus) -> the LUN ids this nexus may see, or None for all of them.
Masking = Callable[[Nexus], Collection[int] | None]

# A unit attention listener (nexus key, lun, (asc, ascq)) lets a transport send
# an asynchronous event (iSCSI Async Message, event 0) as well.
UaListener = Callable[[tuple[str, int], int, tuple[int, int]], None]

MAX_UA_PER_LUN = 8  # SPC-4 7.5 / SAM-5 5.14: a bounded queue per I_T_L nexus


@dataclass
class _NexusState:
    """What the target remembers of one I_T nexus."""

    nexus: Nexus
    # Pending unit attentions per LUN, oldest first.
    ua: dict[int, deque[tuple[int, int]]] = field(default_factory=dict)
    # LUNs this nexus has addressed since it appeared (the rest still owe 29/00).
    seen: set[int] = field(default_factory=set)
    commands: int = 0


class ReadHold:
    """A READ whose data the transport sends from the LUN's file later (see
    :meth:`Target.read_span`): counted in the unit's WRITE ATOMIC gate until
    :meth:`release` (idempotent)."""

    __slots__ = ("_gate",)

    def __init__(self, gate: commands.IoGate) -> None:
        # The synchronous IoGate.enter: the gate is open (the unit is not in EXCLUSIVE,
        # which the caller checked), so there is nothing to wait for.
        gate.inflight += 1
        self._gate: commands.IoGate | None = gate

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.leave()


class Target:
    """One SCSI target device (SAM-5 4.6.4).

    ``name``: the target's SCSI name (an iSCSI IQN).
    ``port_groups``: the target port groups with their relative target ports;
    default: one group 1 holding port 1, active/optimized.
    ``masking``: LUN masking hook; None shows every LUN to every nexus.
    """

    def __init__(
        self,
        name: str,
        *,
        port_groups: Iterable[TargetPortGroup] | None = None,
        masking: Masking | None = None,
        ua_listener: UaListener | None = None,
        implicit_transition_secs: int = 0,
        non_optimized_delay: float = 0.0,
        on_state_change: Callable[[int], None] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        groups = list(port_groups) if port_groups is not None else [TargetPortGroup(1, [1])]
        self.port_groups: dict[int, TargetPortGroup] = {g.group_id: g for g in groups}
        self.luns: dict[int, LogicalUnit] = {}
        self.masking = masking
        self.ua_listener = ua_listener
        self.implicit_transition_secs = implicit_transition_secs
        # Seconds added to each data command on an active/non-optimized port.
        self.non_optimized_delay = non_optimized_delay
        # Called with a LUN id after persistent state of that LU changed (PR
        # registrations with APTPL): the application stores LogicalUnit.to_dict().
        self.on_state_change = on_state_change
        self.log = logger or log
        self._nexuses: dict[tuple[str, int], _NexusState] = {}
        self.command_table = commands.CommandTable()
        self.extra_vpd: dict[int, VpdBuilder] = {}
        self.third_party_copy = False
        # EXTENDED COPY (LID1), RECEIVE COPY RESULTS and VPD page 8Fh (scsi.xcopy).
        self.copy_manager = CopyManager(self)
        self._stats: dict[str, int] = {
            "commands": 0,
            "check_conditions": 0,
            "reservation_conflicts": 0,
            "unit_attentions": 0,
            "bytes_in": 0,
            "bytes_out": 0,
            "lun_resets": 0,
            "target_resets": 0,
            "nexus_losses": 0,
            "io_errors": 0,
        }

    # -- configuration at run time ---------------------------------------------

    def add_lun(self, lun_id: int, lu: LogicalUnit) -> None:
        """Present ``lu`` as ``lun_id``; every nexus that can see it gets
        REPORTED LUNS DATA HAS CHANGED (SPC-4 6.33)."""
        if lun_id in self.luns:
            raise ValueError(f"LUN {lun_id} is in use")
        if not 0 <= lun_id < 0x4000:
            raise ValueError("LUN ids are 0..16383")
        self.luns[lun_id] = lu
        self.luns_changed()

    def remove_lun(self, lun_id: int) -> LogicalUnit:
        lu = self.luns.pop(lun_id)
        for st in self._nexuses.values():
            st.ua.pop(lun_id, None)
            st.seen.discard(lun_id)
        self.luns_changed()
        return lu

    def add_command(self, op: int, sa: int | None, ext: commands.Extension) -> None:
        """Serve another operation code (or service action) with ``ext.handler``;
        it shows in REPORT SUPPORTED OPERATION CODES and obeys reservations and
        ALUA like the built-in commands."""
        self.command_table.add(op, sa, ext)

    def add_vpd_page(
        self, page: int, builder: VpdBuilder, *, third_party_copy: bool = False
    ) -> None:
        """Serve VPD page ``page`` (listed in page 00h); ``third_party_copy``
        sets the 3PC bit of the standard INQUIRY data (SPC-4 6.4.2)."""
        self.extra_vpd[page] = builder
        self.third_party_copy = self.third_party_copy or third_party_copy

    def capacity_changed(self, lun_id: int) -> None:
        """The unit's backend grew: every nexus gets CAPACITY DATA HAS CHANGED
        (2A/09, SBC-3 4.6) on that LUN."""
        self.queue_ua(lun_id, Asc.CAPACITY_DATA_HAS_CHANGED, nexus_keys=None)

    def set_masking(self, masking: Masking | None) -> None:
        self.masking = masking
        self.luns_changed()

    def luns_changed(self, affected: Callable[[Nexus], bool] | None = None) -> None:
        """Queue REPORTED LUNS DATA HAS CHANGED (3F/0E) on the nexuses ``affected``
        selects (all by default), on every LUN they can see.  The fabric calls
        this after changing what its masking hook returns."""
        for st in self._nexuses.values():
            if affected is None or affected(st.nexus):
                for lun in self.visible_luns(st.nexus):
                    self._queue_ua(st, lun, Asc.REPORTED_LUNS_DATA_HAS_CHANGED)

    def visible_luns(self, nexus: Nexus) -> list[int]:
        """The LUN ids ``nexus`` may address, ascending."""
        if self.masking is None:
            return sorted(self.luns)
        allowed = self.masking(nexus)
        if allowed is None:
            return sorted(self.luns)
        return sorted(lun for lun in self.luns if lun in allowed)

    def _lookup(self, nexus: Nexus, lun: int) -> LogicalUnit | None:
        lu = self.luns.get(lun)
        if lu is None:
            return None
        if self.masking is not None:
            allowed = self.masking(nexus)
            if allowed is not None and lun not in allowed:
                return None
        return lu

    def state_changed(self, lun: int) -> None:
        if self.on_state_change is not None:
            self.on_state_change(lun)

    # -- ALUA --------------------------------------------------------------------

    def alua_state(self, tpg: int, lu: LogicalUnit | None = None) -> AluaState:
        if lu is not None and tpg in lu.alua_override:
            return AluaState(lu.alua_override[tpg])
        g = self.port_groups.get(tpg)
        return g.state if g is not None else AluaState.UNAVAILABLE

    def set_alua_state(
        self,
        group: int,
        state: AluaState | int | str,
        *,
        lun: int | None = None,
        explicit: bool = False,
    ) -> None:
        """Change the access state of target port group ``group`` (for all LUs, or
        only for ``lun``) and queue ASYMMETRIC ACCESS STATE CHANGED (2A/06) on
        every I_T nexus of the affected LUs (SPC-4 5.15.2.7)."""
        if isinstance(state, str):
            state = AluaState.parse(state)
        state = AluaState(state)
        g = self.port_groups.get(group)
        if g is None:
            raise KeyError(f"no target port group {group}")
        if lun is None:
            changed = g.state != state
            g.state = state
            for lu in self.luns.values():
                lu.alua_override.pop(group, None)
            affected = list(self.luns)
        else:
            lu = self.luns[lun]
            changed = self.alua_state(group, lu) != state
            lu.alua_override[group] = int(state)
            affected = [lun]
        g.status_code = 1 if explicit else 2
        if not changed:
            return
        self.log.info(
            "ALUA state of group %d is now %s",
            group,
            state.name,
            extra={"tpg": group, "lun": lun},
        )
        for st in self._nexuses.values():
            for lun_id in affected:
                self._queue_ua(st, lun_id, Asc.ASYMMETRIC_ACCESS_STATE_CHANGED)

    async def transition_alua_state(
        self,
        group: int,
        state: AluaState | int | str,
        *,
        seconds: float | None = None,
        lun: int | None = None,
    ) -> None:
        """An implicit transition (SPC-4 5.15.2.6): the group reports
        TRANSITIONING (commands get NOT READY 04/0A) for ``seconds`` (default:
        the IMPLICIT TRANSITION TIME reported by RTPG), then ``state``."""
        self.set_alua_state(group, AluaState.TRANSITIONING, lun=lun)
        await trio.sleep(self.implicit_transition_secs if seconds is None else seconds)
        self.set_alua_state(group, state, lun=lun)

    # -- unit attentions --------------------------------------------------------

    def _queue_ua(self, st: _NexusState, lun: int, code: tuple[int, int]) -> None:
        q = st.ua.setdefault(lun, deque())
        if code in q:
            return
        if len(q) >= MAX_UA_PER_LUN:
            q.popleft()
        q.append(code)
        if self.ua_listener is not None:
            self.ua_listener(st.nexus.key, lun, code)

    def queue_ua(
        self, lun: int, code: tuple[int, int], *, nexus_keys: Iterable[tuple[str, int]] | None
    ) -> None:
        """Queue unit attention ``code`` for ``lun`` on the given nexuses (all if None)."""
        keys = set(nexus_keys) if nexus_keys is not None else None
        for key, st in self._nexuses.items():
            if keys is None or key in keys:
                self._queue_ua(st, lun, code)

    def _nexus(self, nexus: Nexus) -> _NexusState:
        st = self._nexuses.get(nexus.key)
        if st is None or (st.nexus is not nexus and st.nexus != nexus):
            st = _NexusState(nexus)
            self._nexuses[nexus.key] = st
        return st

    def pending_unit_attentions(self, nexus: Nexus, lun: int) -> list[tuple[int, int]]:
        st = self._nexuses.get(nexus.key)
        if st is None:
            return [Asc.POWER_ON_RESET]
        q = list(st.ua.get(lun, ()))
        if lun not in st.seen:
            q.insert(0, Asc.POWER_ON_RESET)
        return q

    def take_unit_attention(self, st: _NexusState, lun: int) -> tuple[int, int] | None:
        if lun not in st.seen:
            st.seen.add(lun)
            # A fresh nexus starts with POWER ON, RESET, OR BUS DEVICE RESET
            # OCCURRED, which supersedes anything queued before (SAM-5 5.14).
            st.ua.pop(lun, None)
            return Asc.POWER_ON_RESET
        q = st.ua.get(lun)
        if q:
            code = q.popleft()
            if not q:
                del st.ua[lun]
            return code
        return None

    def clear_ua(self, nexus: Nexus, lun: int, code: tuple[int, int] | None = None) -> None:
        st = self._nexuses.get(nexus.key)
        if st is None:
            return
        q = st.ua.get(lun)
        if q is None:
            return
        if code is None:
            q.clear()
        else:
            while code in q:
                q.remove(code)
        if not q:
            del st.ua[lun]

    # -- task management ---------------------------------------------------------

    def i_t_nexus_loss(self, nexus: Nexus) -> None:
        """The nexus is gone (session closed, connection dropped at ERL 0).

        SPC-2 reservations it held are released; persistent reservations and
        registrations stay (SPC-4 5.9.1).  Commands still running for it are the
        transport's to cancel."""
        self._stats["nexus_losses"] += 1
        self._nexuses.pop(nexus.key, None)
        self.copy_manager.nexus_lost(nexus.key)
        for lu in self.luns.values():
            if lu.reserved_by == nexus.key:
                lu.reserved_by = None

    def lun_reset(self, lun: int, nexus: Nexus | None = None) -> bool:
        """LOGICAL UNIT RESET (SAM-5 7.7): releases the SPC-2 reservation and
        queues 29/03 on every nexus.  False if there is no such LUN."""
        lu = self.luns.get(lun)
        if lu is None or (nexus is not None and self._lookup(nexus, lun) is None):
            return False
        self._stats["lun_resets"] += 1
        self._reset_lu(lun, lu, Asc.BUS_DEVICE_RESET_OCCURRED)
        return True

    def target_reset(self, nexus: Nexus | None = None) -> None:
        """TARGET RESET (warm or cold): every LU is reset; 29/00 everywhere."""
        self._stats["target_resets"] += 1
        for lun, lu in self.luns.items():
            self._reset_lu(lun, lu, Asc.POWER_ON_RESET)

    def _reset_lu(self, lun: int, lu: LogicalUnit, code: tuple[int, int]) -> None:
        lu.reserved_by = None
        lu.mode.reset()
        for st in self._nexuses.values():
            st.ua.pop(lun, None)
            self._queue_ua(st, lun, code)

    def abort_task_set(self, nexus: Nexus, lun: int) -> None:
        """ABORT TASK SET / CLEAR TASK SET: the transport cancels the tasks; no
        state is kept here per task (TAS=0: no other nexus is told)."""

    # -- command path --------------------------------------------------------------

    def data_out_length(self, cdb: bytes | memoryview, lun: int | None = None) -> int:
        """Bytes the command moves to the target, from the CDB alone (so the
        transport knows what to solicit).  Raises SenseError for a bad CDB."""
        check_length(cdb)
        op = cdb[0]
        if op in commands.WRITE_OPS:
            bs = self._block_size(lun)
            r = parse_rw(cdb)
            if op in (Op.WRITE_SAME_10, Op.WRITE_SAME_16):
                if op == Op.WRITE_SAME_16 and cdb[1] & 0x01:  # NDOB
                    return 0
                return bs
            if op == Op.COMPARE_AND_WRITE:
                return 2 * r.blocks * bs
            if op in commands.VERIFY_OPS:
                return r.blocks * bs if (cdb[1] >> 1) & 3 in (1, 3) else 0
            return r.blocks * bs
        ext = self.command_table.extensions.get(self.command_table.key(cdb))
        if ext is not None and ext.data_out is not None:
            return ext.data_out(cdb)
        return parameter_list_length(cdb)

    @property
    def max_transfer_bytes(self) -> int:
        """The largest data transfer of one command (VPD B0h MAXIMUM TRANSFER
        LENGTH); transports should admit at least this much per command."""
        return LIMITS.max_transfer_bytes

    def _block_size(self, lun: int | None) -> int:
        lu = self.luns.get(lun) if lun is not None else None
        if lu is None and self.luns:
            lu = self.luns[min(self.luns)]
        return lu.block_size if lu is not None else 512

    async def execute(
        self,
        nexus: Nexus,
        lun: int,
        cdb: bytes | memoryview,
        data_out: memoryview | None,
        *,
        expected_in: int,
        expected_out: int | None = None,
    ) -> ScsiResult:
        """Run one command.  Never raises for a bad command: errors come back as
        CHECK CONDITION with sense data, or RESERVATION CONFLICT.

        ``expected_in``: the initiator's expected data-in length.
        ``expected_out``: its expected data-out length (iSCSI EDTL of a write),
        when known; COMPARE AND WRITE and WRITE SAME check it against the CDB.
        ``data_out``: the data-out received, at most what
        :meth:`data_out_length` asked for.
        """
        st = self._nexus(nexus)
        try:
            ctx = self._admit(st, nexus, lun, cdb, data_out, expected_in, expected_out)
            if ctx is None:
                result = await commands.run_no_lu(self, st, nexus, lun, cdb)
            else:
                handler = commands.admit(ctx)
                if self._delayed(ctx):
                    # LIO's nonop_delay_msecs: the non-optimized path is measurably slower.
                    await trio.sleep(self.non_optimized_delay)
                if cdb[0] in commands.GATED_OPS:  # ordered against WRITE ATOMIC
                    result = await commands.run_ordinary(ctx, handler)
                else:
                    result = await handler(ctx)
        except (SenseError, ReservationConflictError, OSError) as exc:
            result = self._failed(exc, nexus, lun, cdb)
        return self._account(st, result, data_out)

    def execute_now(
        self, nexus: Nexus, lun: int, cdb: bytes | memoryview, *, expected_in: int
    ) -> ScsiResult | None:
        """:meth:`execute` for a command without data-out, done at once if it can finish
        without waiting (a READ whose data is in the page cache), else None: the
        transport then awaits :meth:`execute` as usual.  Same checks, same result; a
        None has changed nothing."""
        if not cdb or cdb[0] not in commands.READ_OPS:
            return None
        st = self._nexus(nexus)
        try:
            ctx = self._admit(st, nexus, lun, cdb, None, expected_in, None)
            if ctx is None:
                return None
            now = commands.NOW.get(commands.admit(ctx))
            if now is None or self._delayed(ctx):
                return None
            result = now(ctx)
            if result is None:
                return None
        except (SenseError, ReservationConflictError, OSError) as exc:
            result = self._failed(exc, nexus, lun, cdb)
        return self._account(st, result, None)

    def read_now_into(
        self, nexus: Nexus, lun: int, cdb: bytes | memoryview, dest: memoryview
    ) -> bool:
        """The fast path of a plain READ(10) or READ(16) whose data fills ``dest`` exactly
        and is at hand (page cache): True when the data is in ``dest`` and the command
        ended with GOOD status, accounted as :meth:`execute` would.

        It serves only what the full path would certainly answer with GOOD and the same
        data: a unit this nexus sees with no unit attention pending, on an active port
        group without a path delay, with no reservation held, a CDB without protection
        or control bits, in range.  Anything else is False, having changed nothing: the
        transport then runs the command through :meth:`execute_now` / :meth:`execute`,
        which report the error or wait for the disk."""
        plain = self._plain_read(nexus, lun, cdb, len(dest))
        if plain is None:
            return False
        lu, lba, _blocks = plain
        if not lu.backend.read_now_into(lba, dest):
            return False
        self._plain_read_done(nexus, lu, len(dest))
        return True

    def read_span(
        self, nexus: Nexus, lun: int, cdb: bytes | memoryview, length: int
    ) -> tuple[Backend, int, ReadHold] | None:
        """The zero-copy fast path of a plain READ(10) or READ(16) of ``length`` bytes
        (the initiator's expected length) whose data the page cache holds: the backend,
        the byte offset in its file (:meth:`Backend.fileno`) of the data, for the
        transport to send straight from the file, and a :class:`ReadHold` the transport
        releases once it has sent the data (or given up on it); the command counts as
        ended with GOOD status.  The same conditions as :meth:`read_now_into`; None
        changed nothing.

        Until released, the read counts as in flight on its unit, so that a WRITE ATOMIC
        waits for the data to have left (SBC-4 4.29.1: no command sees part of it)."""
        plain = self._plain_read(nexus, lun, cdb, length)
        if plain is None:
            return None
        lu, lba, blocks = plain
        backend = lu.backend
        if not backend.cached(lba, blocks):
            return None
        self._plain_read_done(nexus, lu, length)
        return backend, lba * lu.block_size, ReadHold(commands.io_gate(lu))

    def _plain_read(
        self, nexus: Nexus, lun: int, cdb: bytes | memoryview, length: int
    ) -> tuple[LogicalUnit, int, int] | None:
        """(unit, LBA, blocks) of a READ the fast paths may serve (see
        :meth:`read_now_into`) transferring exactly ``length`` bytes, else None."""
        op = cdb[0]
        if op == Op.READ_10:
            _, flags, lba, _group, blocks, control = _READ10.unpack_from(cdb)
        elif op == Op.READ_16:
            _, flags, lba, blocks, _group, control = _READ16.unpack_from(cdb)
        else:
            return None
        if flags & 0xE0 or control & 0x04:  # RDPROTECT, NACA: the full path decides
            return None
        lu = self.luns.get(lun)
        st = self._nexuses.get(nexus.key)
        if lu is None or st is None or (st.nexus is not nexus and st.nexus != nexus):
            return None
        if self.masking is not None:
            allowed = self.masking(nexus)
            if allowed is not None and lun not in allowed:
                return None
        if lun not in st.seen or st.ua.get(lun):
            return None
        if lu.reserved_by is not None or lu.pr.type is not None or lu in commands.EXCLUSIVE:
            return None
        state = self.alua_state(nexus.tpg, lu)
        if state != AluaState.ACTIVE_OPTIMIZED and (
            state != AluaState.ACTIVE_NON_OPTIMIZED or self.non_optimized_delay > 0
        ):
            return None
        if (
            not blocks
            or blocks * lu.block_size != length
            or length > LIMITS.max_transfer_bytes
            or lba + blocks > lu.num_blocks
            or self.command_table.entries.get((op, None), _NO_ENTRY)[0] is not commands.read
        ):
            return None
        return lu, lba, blocks

    def _plain_read_done(self, nexus: Nexus, lu: LogicalUnit, length: int) -> None:
        lu.stats["read_ops"] += 1
        lu.stats["read_bytes"] += length
        stats = self._stats
        stats["commands"] += 1
        stats["bytes_in"] += length
        self._nexuses[nexus.key].commands += 1

    def _account(
        self, st: _NexusState, result: ScsiResult, data_out: memoryview | None
    ) -> ScsiResult:
        self._stats["commands"] += 1
        st.commands += 1
        if result.status == Status.GOOD:
            self._stats["bytes_in"] += result.data_length
            if data_out is not None:
                self._stats["bytes_out"] += len(data_out)
        return result

    def _failed(
        self,
        exc: SenseError | ReservationConflictError | OSError,
        nexus: Nexus,
        lun: int,
        cdb: bytes | memoryview,
    ) -> ScsiResult:
        if isinstance(exc, ReservationConflictError):
            self._stats["reservation_conflicts"] += 1
            return ScsiResult(Status.RESERVATION_CONFLICT)
        if isinstance(exc, SenseError):
            self._stats["check_conditions"] += 1
            if exc.key == SenseKey.UNIT_ATTENTION:
                self._stats["unit_attentions"] += 1
            if self.log.isEnabledFor(logging.DEBUG):
                self.log.debug(
                    "CHECK CONDITION %x/%02x/%02x for opcode %#04x",
                    exc.key,
                    exc.asc,
                    exc.ascq,
                    cdb[0] if cdb else -1,
                    extra={"initiator": nexus.initiator_port, "lun": lun},
                )
            return ScsiResult(Status.CHECK_CONDITION, sense=exc.to_bytes())
        # The backing file failed: report it per SBC-3 4.x rather than dropping the
        # command (and the connection) on the floor.
        self._stats["io_errors"] += 1
        self.log.error(
            "I/O error on LUN %d, opcode %#04x: %s",
            lun,
            cdb[0],
            exc,
            extra={"initiator": nexus.initiator_port, "lun": lun},
        )
        return ScsiResult(Status.CHECK_CONDITION, sense=io_error_sense(cdb[0], exc))

    def _admit(
        self,
        st: _NexusState,
        nexus: Nexus,
        lun: int,
        cdb: bytes | memoryview,
        data_out: memoryview | None,
        expected_in: int,
        expected_out: int | None,
    ) -> commands.Context | None:
        """The LU-level checks of a command; None when there is no LU at ``lun`` for
        this nexus (INQUIRY, REPORT LUNS and REQUEST SENSE still answer there)."""
        if not cdb:
            raise SenseError.illegal(Asc.INVALID_COMMAND_OPERATION_CODE)
        op = cdb[0]
        lu = self._lookup(nexus, lun)
        if lu is None:
            # SPC-4 4.5.2: INQUIRY to an absent LU answers with peripheral
            # qualifier 011b; REPORT LUNS and REQUEST SENSE still work.
            if op in (Op.INQUIRY, Op.REPORT_LUNS, Op.REQUEST_SENSE):
                return None
            raise SenseError.illegal(Asc.LOGICAL_UNIT_NOT_SUPPORTED)
        # SAM-5 5.14: a pending unit attention is reported on any command but
        # INQUIRY, REPORT LUNS and REQUEST SENSE.
        if op not in (Op.INQUIRY, Op.REPORT_LUNS, Op.REQUEST_SENSE):
            code = self.take_unit_attention(st, lun)
            if code is not None:
                raise SenseError(SenseKey.UNIT_ATTENTION, *code)
        check_access(self.alua_state(nexus.tpg, lu), cdb)
        return commands.Context(self, st, nexus, lun, lu, cdb, data_out, expected_in, expected_out)

    def _delayed(self, ctx: commands.Context) -> bool:
        return (
            self.non_optimized_delay > 0
            and ctx.cdb[0] in commands.DATA_OPS
            and self.alua_state(ctx.nexus.tpg, ctx.lu) == AluaState.ACTIVE_NON_OPTIMIZED
        )

    # -- introspection -------------------------------------------------------------

    def nexuses(self) -> list[Nexus]:
        return [st.nexus for st in self._nexuses.values()]

    def statistics(self) -> dict[str, object]:
        return {
            **self._stats,
            "nexuses": len(self._nexuses),
            "luns": {
                lun: {"name": lu.name, **lu.stats, "registrations": len(lu.pr.registrations)}
                for lun, lu in self.luns.items()
            },
            "port_groups": {gid: g.state.name for gid, g in self.port_groups.items()},
            "copy_manager": self.copy_manager.statistics(),
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "port_groups": [g.to_dict() for g in self.port_groups.values()],
            "luns": {str(lun): lu.to_dict() for lun, lu in self.luns.items()},
        }


def io_error_sense(opcode: int, exc: OSError) -> bytes:
    """Sense data for a failed backend call: SPACE ALLOCATION FAILED WRITE
    PROTECT (27/07) when a thin unit's filesystem is full, WRITE ERROR (0C/00) or
    UNRECOVERED READ ERROR (11/00) for the data path, else INTERNAL TARGET
    FAILURE (44/00)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return build_fixed_sense(SenseKey.DATA_PROTECT, 0x27, 0x07)
    if opcode in commands.READ_OPS or opcode in commands.VERIFY_OPS:
        return build_fixed_sense(SenseKey.MEDIUM_ERROR, *Asc.UNRECOVERED_READ_ERROR)
    if opcode in commands.WRITE_OPS or opcode == Op.UNMAP:
        return build_fixed_sense(SenseKey.MEDIUM_ERROR, *Asc.WRITE_ERROR)
    return build_fixed_sense(SenseKey.HARDWARE_ERROR, 0x44, 0x00)
