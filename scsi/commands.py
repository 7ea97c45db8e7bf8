"""Command handlers of the block target (SPC-4 6, SBC-3 5), one coroutine per
operation code, found through the :data:`HANDLERS` table.

A handler validates the CDB, applies policy (write protection, reservations
are checked before it runs), awaits the backend and returns a
:class:`~scsi.nexus.ScsiResult`; every failure is a raised
:class:`~scsi.sense.SenseError`.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, NamedTuple

import trio

from . import alua, vpd
from .backend import DEALLOCATED
from .cdb import (
    Op,
    RwCdb,
    Sa,
    allocation_length,
    check_length,
    encode_lun,
    parameter_list_length,
    parse_rw,
    u16,
    u32,
)
from .lun import LogicalUnit
from .modepages import parse_mode_select, parse_mode_sense
from .nexus import Nexus, ScsiResult
from .pr import PersistentReservations, ReservationConflictError, parse_pr_out
from .sense import Asc, SenseError, SenseKey, Status, build_fixed_sense

if TYPE_CHECKING:
    from .target import Target, _NexusState

Buffer = bytes | bytearray | memoryview

READ_OPS = {Op.READ_6, Op.READ_10, Op.READ_12, Op.READ_16}
VERIFY_OPS = {Op.VERIFY_10, Op.VERIFY_12, Op.VERIFY_16}
WRITE_VERIFY_OPS = {Op.WRITE_AND_VERIFY_10, Op.WRITE_AND_VERIFY_12, Op.WRITE_AND_VERIFY_16}
PLAIN_WRITE_OPS = {Op.WRITE_6, Op.WRITE_10, Op.WRITE_12, Op.WRITE_16}
# Commands whose data-out length is counted in blocks.
# SBC-4 5.48 WRITE ATOMIC(16): a WRITE(16) whose TRANSFER LENGTH is bytes 12-13 (bytes
# 10-11 are reserved, so parse_rw's 32-bit length reads it when they are zero).
WRITE_ATOMIC_16 = 0x9C
WRITE_OPS = (
    PLAIN_WRITE_OPS
    | WRITE_VERIFY_OPS
    | VERIFY_OPS
    | {Op.WRITE_SAME_10, Op.WRITE_SAME_16, Op.COMPARE_AND_WRITE, Op.ORWRITE_16, WRITE_ATOMIC_16}
)


class Context:
    """One command on its way through the handlers."""

    __slots__ = (
        "cdb",
        "data_out",
        "expected_in",
        "expected_out",
        "lu",
        "lun",
        "nexus",
        "st",
        "target",
    )

    def __init__(
        self,
        target: Target,
        st: _NexusState,
        nexus: Nexus,
        lun: int,
        lu: LogicalUnit,
        cdb: Buffer,
        data_out: memoryview | None,
        expected_in: int,
        expected_out: int | None = None,
    ) -> None:
        self.target = target
        self.expected_out = expected_out
        self.st = st
        self.nexus = nexus
        self.lun = lun
        self.lu = lu
        self.cdb = cdb
        self.data_out = data_out
        self.expected_in = expected_in

    @property
    def itn(self) -> tuple[str, int]:
        return self.lu.pr.nexus_key_for(
            self.nexus.initiator, self.nexus.initiator_port, self.nexus.target_port
        )

    def param_data(self) -> memoryview:
        """The parameter list: PARAMETER LIST LENGTH bytes of data-out."""
        n = parameter_list_length(self.cdb)
        data = self.data_out if self.data_out is not None else memoryview(b"")
        if len(data) < n:
            raise SenseError.param_list_length()
        return data[:n]


def good(data: Buffer = b"") -> ScsiResult:
    return ScsiResult(Status.GOOD, data)


# Commands that move user data (subject to the non-optimized path delay).
DATA_OPS = READ_OPS | WRITE_OPS | {Op.UNMAP}
# The data commands a WRITE ATOMIC waits for and holds off (see IoGate).
GATED_OPS = frozenset(DATA_OPS - {WRITE_ATOMIC_16})


class IoGate:
    """Makes WRITE ATOMIC(16) atomic against the other data commands of its unit (SBC-4
    4.29.1: no command sees or mixes with part of it).

    Other data commands count themselves in and out (:func:`run_ordinary`); an atomic
    write closes the gate, waits until the count drops to zero, writes, and opens it.
    Commands arriving meanwhile wait, and the synchronous read fast paths decline while
    the unit is in :data:`EXCLUSIVE` (their callers then take the waiting path).
    """

    __slots__ = ("__weakref__", "_idle", "_lock", "_open", "exclusive", "inflight")

    def __init__(self) -> None:
        self.inflight = 0
        self.exclusive = False
        self._idle: trio.Event | None = None
        self._open = trio.Event()
        self._open.set()
        self._lock = trio.Lock()

    async def enter(self) -> None:
        while self.exclusive:
            await self._open.wait()
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and self._idle is not None:
            self._idle.set()

    @asynccontextmanager
    async def exclusively(self, lu: LogicalUnit) -> AsyncIterator[None]:
        async with self._lock:
            self.exclusive = True
            self._open = trio.Event()
            EXCLUSIVE.add(lu)
            try:
                while self.inflight:
                    self._idle = trio.Event()
                    await self._idle.wait()
                self._idle = None
                yield
            finally:
                EXCLUSIVE.discard(lu)
                self.exclusive = False
                self._open.set()


_GATES: weakref.WeakKeyDictionary[LogicalUnit, IoGate] = weakref.WeakKeyDictionary()
# Units with a WRITE ATOMIC in progress: synchronous fast paths must not serve them.
EXCLUSIVE: set[LogicalUnit] = set()


def io_gate(lu: LogicalUnit) -> IoGate:
    gate = _GATES.get(lu)
    if gate is None:
        gate = _GATES[lu] = IoGate()
    return gate


async def run_ordinary(ctx: Context, handler: Handler) -> ScsiResult:
    """Run a data command counted in its unit's :class:`IoGate`."""
    gate = io_gate(ctx.lu)
    await gate.enter()
    try:
        return await handler(ctx)
    finally:
        gate.leave()


# -- reservations -------------------------------------------------------------------

# SPC-4 5.9.1 table 46 classes: commands not listed are always allowed.
_PR_READ = (
    READ_OPS
    | VERIFY_OPS
    | {Op.PRE_FETCH_10, Op.PRE_FETCH_16, Op.READ_DEFECT_DATA_10, Op.READ_DEFECT_DATA_12}
)
_PR_WRITE = (
    PLAIN_WRITE_OPS
    | WRITE_VERIFY_OPS
    | {
        Op.WRITE_SAME_10,
        Op.WRITE_SAME_16,
        Op.COMPARE_AND_WRITE,
        Op.ORWRITE_16,
        WRITE_ATOMIC_16,
        Op.UNMAP,
        Op.SYNCHRONIZE_CACHE_10,
        Op.SYNCHRONIZE_CACHE_16,
        Op.MODE_SELECT_6,
        Op.MODE_SELECT_10,
        Op.START_STOP_UNIT,
        Op.PREVENT_ALLOW_MEDIUM_REMOVAL,
        Op.RESERVE_6,
        Op.RESERVE_10,
        Op.RELEASE_6,
        Op.RELEASE_10,
        Op.MAINTENANCE_OUT,
    }
)
# SPC-2 7.21: commands another nexus's RESERVE(6) does not block.
_SPC2_ALLOWED = {
    Op.INQUIRY,
    Op.REPORT_LUNS,
    Op.REQUEST_SENSE,
    Op.RELEASE_6,
    Op.RELEASE_10,
    Op.MAINTENANCE_IN,
    Op.SERVICE_ACTION_IN_16,
    Op.READ_CAPACITY_10,
}


def check_reservations(ctx: Context, ext: Extension | None = None) -> None:
    op = ctx.cdb[0]
    lu = ctx.lu
    allowed = op in _SPC2_ALLOWED if ext is None else ext.pr_class == "allowed"
    if lu.reserved_by is not None and lu.reserved_by != ctx.nexus.key and not allowed:
        raise ReservationConflictError
    pr = lu.pr
    if pr.type is None or op in (Op.PERSISTENT_RESERVE_IN, Op.PERSISTENT_RESERVE_OUT):
        return
    if ext is None:
        write, read = op in _PR_WRITE, op in _PR_READ
    else:
        write, read = ext.pr_class == "write", ext.pr_class == "read"
    if pr.conflicts(ctx.itn, write=write, read=read):
        raise ReservationConflictError


# -- helpers ------------------------------------------------------------------------------


def _check_control(cdb: Buffer, n: int) -> None:
    if cdb[n - 1] & 0x04:  # NACA: ACA is not supported (SAM-5 5.9)
        raise SenseError.invalid_cdb(n - 1, 2)


def _check_range(lu: LogicalUnit, lba: int, blocks: int) -> None:
    """LOGICAL BLOCK ADDRESS OUT OF RANGE unless [lba, lba + blocks) is on the medium."""
    if lba + blocks > lu.num_blocks:
        raise SenseError.lba_out_of_range()


def _check_writable(lu: LogicalUnit) -> None:
    if lu.read_only or lu.mode.software_write_protect:
        raise SenseError(SenseKey.DATA_PROTECT, *Asc.WRITE_PROTECTED)


def _check_protect(cdb: Buffer) -> None:
    """RD/WR/VRPROTECT must be 0: no protection information (SBC-3 5.x)."""
    if cdb[1] & 0xE0:
        raise SenseError.invalid_cdb(1, 7)


def _check_transfer(lu: LogicalUnit, blocks: int) -> None:
    if blocks * lu.block_size > vpd.LIMITS.max_transfer_bytes:
        raise SenseError.invalid_cdb(7 if blocks < 0x10000 else 10)


def _parse_rw_protect(cdb: Buffer) -> RwCdb:
    """:func:`parse_rw`, then :func:`_check_protect` (6-byte CDBs have no PROTECT field)."""
    r = parse_rw(cdb)
    if cdb[0] not in (Op.READ_6, Op.WRITE_6):
        _check_protect(cdb)
    return r


def _data_out(ctx: Context, n: int) -> memoryview:
    """Exactly ``n`` bytes of data-out, or INVALID FIELD IN CDB."""
    data = ctx.data_out if ctx.data_out is not None else memoryview(b"")
    if len(data) < n:
        raise SenseError.invalid_cdb()
    return data[:n]


def _data_out_blocks(ctx: Context, blocks: int) -> tuple[memoryview, int]:
    """The whole blocks of data-out received, at most ``blocks``.

    When the initiator's expected transfer length is shorter than the CDB's
    transfer length (an overflow, RFC 7143 11.4.5.1), the command works on the
    data actually transferred, as LIO, tgt and libiscsi's iSCSIResiduals tests
    expect; the transport reports the residual."""
    bs = ctx.lu.block_size
    data = ctx.data_out if ctx.data_out is not None else memoryview(b"")
    got = min(blocks, len(data) // bs)
    return data[: got * bs], got


def _write_data(ctx: Context, r: RwCdb) -> tuple[memoryview, int]:
    """What a write with a data-out buffer checks before it writes: a writable unit, the
    range on the medium and the transfer length; then :func:`_data_out_blocks` (no blocks:
    nothing to write)."""
    lu = ctx.lu
    _check_writable(lu)
    _check_range(lu, r.lba, r.blocks)
    if r.blocks == 0:
        return memoryview(b""), 0
    _check_transfer(lu, r.blocks)
    return _data_out_blocks(ctx, r.blocks)


def _first_mismatch(a: Buffer, b: Buffer) -> int:
    """Offset of the first differing byte of two equal-length buffers, or -1."""
    if a == b:
        return -1
    # Narrow down in chunks to stay fast on large buffers.
    ma, mb = memoryview(a), memoryview(b)
    step = 4096
    for off in range(0, len(ma), step):
        if ma[off : off + step] != mb[off : off + step]:
            for i in range(off, min(off + step, len(ma))):
                if ma[i] != mb[i]:
                    return i
    return -1


# -- SPC-4 commands ---------------------------------------------------------------------


async def test_unit_ready(ctx: Context) -> ScsiResult:
    return good()


async def inquiry(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    alloc = u16(cdb, 3)
    if cdb[1] & 0x02:  # CMDDT (obsolete)
        raise SenseError.invalid_cdb(1, 1)
    t = ctx.target
    if cdb[1] & 0x01:
        data = vpd.vpd_page(cdb[2], ctx.lu, ctx.nexus, t.name, extra=t.extra_vpd)
    else:
        if cdb[2]:
            raise SenseError.invalid_cdb(2)
        data = vpd.standard_inquiry(ctx.lu, third_party_copy=t.third_party_copy)
    return good(data[:alloc])


async def request_sense(ctx: Context) -> ScsiResult:
    alloc = ctx.cdb[4]
    code = ctx.target.take_unit_attention(ctx.st, ctx.lun)
    if code is not None:
        sense = build_fixed_sense(SenseKey.UNIT_ATTENTION, *code)
    else:
        sense = build_fixed_sense(SenseKey.NO_SENSE, 0, 0)
    return good(sense[:alloc])


def report_luns_data(target: Target, nexus: Nexus, cdb: Buffer) -> bytes:
    if cdb[2] not in (0x00, 0x01, 0x02):
        raise SenseError.invalid_cdb(2)
    alloc = u32(cdb, 6)
    if alloc < 4:
        raise SenseError.invalid_cdb(6)
    luns = target.visible_luns(nexus) if cdb[2] != 0x01 else []
    body = b"".join(encode_lun(lun) for lun in luns)
    return (struct.pack(">II", len(body), 0) + body)[:alloc]


async def report_luns(ctx: Context) -> ScsiResult:
    data = report_luns_data(ctx.target, ctx.nexus, ctx.cdb)
    for lun in ctx.target.visible_luns(ctx.nexus):
        ctx.target.clear_ua(ctx.nexus, lun, Asc.REPORTED_LUNS_DATA_HAS_CHANGED)
    return good(data)


async def mode_sense(ctx: Context) -> ScsiResult:
    req = parse_mode_sense(ctx.cdb)
    lu = ctx.lu
    dsp = 0x10  # DPOFUA
    if lu.read_only or lu.mode.software_write_protect:
        dsp |= 0x80  # WP
    data = lu.mode.sense(
        req, device_specific=dsp, block_size=lu.block_size, num_blocks=lu.num_blocks
    )
    return good(data)


async def mode_select(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    if cdb[1] & 0x01:  # SP: saved pages are not supported
        raise SenseError.invalid_cdb(1, 0)
    if not cdb[1] & 0x10:  # PF=0: vendor-specific page format
        raise SenseError.invalid_cdb(1, 4)
    data = ctx.param_data()
    pages = parse_mode_select(data, ten=cdb[0] == Op.MODE_SELECT_10, block_size=ctx.lu.block_size)
    if ctx.lu.mode.select(pages):
        keys = [n.key for n in ctx.target.nexuses() if n.key != ctx.nexus.key]
        ctx.target.queue_ua(ctx.lun, Asc.MODE_PARAMETERS_CHANGED, nexus_keys=keys)
    return good()


async def persistent_reserve_in(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    sa = cdb[1] & 0x1F
    if sa > 3:
        raise SenseError.invalid_cdb(1, 4)
    alloc = u16(cdb, 7)
    return good(ctx.lu.pr.read(sa)[:alloc])


async def persistent_reserve_out(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    sa = cdb[1] & 0x1F
    if sa > 7:
        raise SenseError.invalid_cdb(1, 4)
    data = ctx.param_data()
    params = parse_pr_out(sa, data)
    pr: PersistentReservations = ctx.lu.pr
    ports = [p for g in ctx.target.port_groups.values() for p in g.ports]
    uas = pr.out(ctx.itn, sa, cdb[2] >> 4, cdb[2] & 0x0F, params, target_ports=ports)
    for key, code in uas:
        ctx.target.queue_ua(ctx.lun, code, nexus_keys=[key])
    ctx.target.state_changed(ctx.lun)
    return good()


async def maintenance_in(ctx: Context) -> ScsiResult:
    sa = ctx.cdb[1] & 0x1F
    if sa == Sa.REPORT_TARGET_PORT_GROUPS:
        return await report_target_port_groups(ctx)
    if sa == Sa.REPORT_SUPPORTED_OPCODES:
        return await report_supported_opcodes(ctx)
    if sa == Sa.REPORT_SUPPORTED_TMFS:
        alloc = u32(ctx.cdb, 6)
        # ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LUN RESET, I_T NEXUS RESET... (SPC-4 6.42)
        return good(bytes((0x80 | 0x40 | 0x20 | 0x08, 0x01, 0, 0))[:alloc])
    raise SenseError.invalid_cdb(1, 4)


async def report_target_port_groups(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    fmt = cdb[1] >> 5
    if fmt not in (0, 1):
        raise SenseError.invalid_cdb(1, 7)
    alloc = u32(cdb, 6)
    t = ctx.target
    groups = [(g, t.alua_state(g.group_id, ctx.lu)) for g in t.port_groups.values()]
    data = alua.encode_rtpg(
        groups, extended=fmt == 1, implicit_transition_secs=t.implicit_transition_secs
    )
    return good(data[:alloc])


async def maintenance_out(ctx: Context) -> ScsiResult:
    if ctx.cdb[1] & 0x1F != Sa.SET_TARGET_PORT_GROUPS:
        raise SenseError.invalid_cdb(1, 4)
    data = ctx.param_data()
    t = ctx.target
    changes = alua.parse_stpg(data)
    for i, (tpg, _state) in enumerate(changes):
        if tpg not in t.port_groups:
            raise SenseError.invalid_param(4 + 4 * i + 2)
    for tpg, state in changes:
        t.set_alua_state(tpg, state, lun=None, explicit=True)
    # The nexus that asked knows: no unit attention for it (SPC-4 5.15.2.7).
    for lun in t.luns:
        t.clear_ua(ctx.nexus, lun, Asc.ASYMMETRIC_ACCESS_STATE_CHANGED)
    return good()


async def reserve(ctx: Context) -> ScsiResult:
    """RESERVE(6)/(10) (SPC-2 7.21): a whole-LU reservation for this nexus."""
    lu = ctx.lu
    if ctx.cdb[0] == Op.RESERVE_10 and ctx.cdb[1] & 0x03:  # 3RDPTY / LONGID
        raise SenseError.invalid_cdb(1)
    if lu.pr.type is not None or lu.pr.registrations:
        raise ReservationConflictError
    if lu.reserved_by is not None and lu.reserved_by != ctx.nexus.key:
        raise ReservationConflictError
    lu.reserved_by = ctx.nexus.key
    return good()


async def release(ctx: Context) -> ScsiResult:
    lu = ctx.lu
    if lu.pr.type is not None:
        raise ReservationConflictError
    if lu.reserved_by == ctx.nexus.key:
        lu.reserved_by = None
    return good()


# -- SBC-3 commands ---------------------------------------------------------------------


async def read_capacity_10(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    if not cdb[8] & 0x01 and u32(cdb, 2):  # LBA without PMI
        raise SenseError.invalid_cdb(2)
    last = ctx.lu.num_blocks - 1
    return good(struct.pack(">II", min(last, 0xFFFFFFFF), ctx.lu.block_size))


def read_capacity_16_data(lu: LogicalUnit) -> bytes:
    """SBC-3 5.16.2.  A 512-byte unit reports 4096-byte physical blocks (LOGICAL BLOCKS
    PER PHYSICAL BLOCK EXPONENT 3, as VPD B0h's OPTIMAL TRANSFER LENGTH GRANULARITY): the
    backing file lives in 4 KiB pages and filesystem blocks, so smaller writes are
    read-modify-write there, and guests align their partitions to it."""
    flags = 0xC0 if lu.thin else 0x00  # LBPME | LBPRZ
    lbppbe = max(1, 4096 // lu.block_size).bit_length() - 1
    return struct.pack(">QIBBBB16s", lu.num_blocks - 1, lu.block_size, 0, lbppbe, flags, 0, b"")


async def service_action_in(ctx: Context) -> ScsiResult:
    sa = ctx.cdb[1] & 0x1F
    if sa == Sa.READ_CAPACITY_16:
        alloc = u32(ctx.cdb, 10)
        return good(read_capacity_16_data(ctx.lu)[:alloc])
    if sa == Sa.GET_LBA_STATUS:
        return await get_lba_status(ctx)
    raise SenseError.invalid_cdb(1, 4)


def _read_cdb(ctx: Context) -> RwCdb:
    r = _parse_rw_protect(ctx.cdb)
    lu = ctx.lu
    _check_range(lu, r.lba, r.blocks)
    if r.blocks:
        _check_transfer(lu, r.blocks)
    return r


def _read_done(lu: LogicalUnit, data: bytearray) -> ScsiResult:
    lu.stats["read_ops"] += 1
    lu.stats["read_bytes"] += len(data)
    return good(data)


async def read(ctx: Context) -> ScsiResult:
    r = _read_cdb(ctx)
    if r.blocks == 0:
        return good()
    return _read_done(ctx.lu, await ctx.lu.backend.read(r.lba, r.blocks))


def read_now(ctx: Context) -> ScsiResult | None:
    """:func:`read` when the backend has the data at hand; None when it would wait."""
    if ctx.lu in EXCLUSIVE:
        return None
    r = _read_cdb(ctx)
    if r.blocks == 0:
        return good()
    data = ctx.lu.backend.read_now(r.lba, r.blocks)
    return None if data is None else _read_done(ctx.lu, data)


async def write(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    r = _parse_rw_protect(cdb)
    lu = ctx.lu
    data, blocks = _write_data(ctx, r)
    if blocks == 0:
        return good()
    fua = bool(r.flags & 0x08) or not lu.mode.write_cache or cdb[0] in WRITE_VERIFY_OPS
    await lu.backend.write(r.lba, [data], fua=fua)
    lu.stats["write_ops"] += 1
    lu.stats["write_bytes"] += len(data)
    return good()


async def verify(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    r = _parse_rw_protect(cdb)
    lu = ctx.lu
    bytchk = (cdb[1] >> 1) & 0x03
    if bytchk == 2:
        raise SenseError.invalid_cdb(1, 2)
    _check_range(lu, r.lba, r.blocks)
    if r.blocks == 0 or bytchk == 0:
        return good()
    _check_transfer(lu, r.blocks)
    bs = lu.block_size
    blocks = r.blocks
    if bytchk == 1:
        want, blocks = _data_out_blocks(ctx, r.blocks)
        if blocks == 0:
            return good()
    else:
        want = _data_out(ctx, bs)
    have = await lu.backend.read(r.lba, blocks)
    expect: Buffer = want if bytchk == 1 else bytes(want) * blocks
    off = _first_mismatch(have, expect)
    if off >= 0:
        raise SenseError(SenseKey.MISCOMPARE, *Asc.MISCOMPARE_DURING_VERIFY, information=off)
    return good()


async def write_same(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    r = _parse_rw_protect(cdb)
    lu = ctx.lu
    if cdb[1] & 0x10:  # ANCHOR: ANC_SUP=0
        raise SenseError.invalid_cdb(1, 4)
    if cdb[1] & 0x06:  # PBDATA / LBDATA
        raise SenseError.invalid_cdb(1, 2 if cdb[1] & 0x04 else 1)
    ndob = cdb[0] == Op.WRITE_SAME_16 and bool(cdb[1] & 0x01)
    unmap = bool(cdb[1] & 0x08)
    if unmap and not lu.thin:  # LBPWS/LBPWS10 are 0 on a fully provisioned unit
        raise SenseError.invalid_cdb(1, 3)
    _check_writable(lu)
    blocks = r.blocks
    if r.lba > lu.num_blocks:
        raise SenseError.lba_out_of_range()
    if blocks == 0:
        blocks = lu.num_blocks - r.lba  # WSNZ=0: to the end of the medium
    _check_range(lu, r.lba, blocks)
    if blocks > vpd.LIMITS.max_write_same_blocks:
        raise SenseError.invalid_cdb(10 if cdb[0] == Op.WRITE_SAME_16 else 7)
    bs = lu.block_size
    if ndob:
        block: Buffer = bytes(bs)
    else:
        # The Data-Out buffer is exactly one logical block (SBC-3 5.42); an initiator
        # announcing more or less (its EDTL) gets INVALID FIELD IN CDB, as from LIO.
        data = ctx.data_out if ctx.data_out is not None else memoryview(b"")
        if len(data) != bs or (ctx.expected_out is not None and ctx.expected_out != bs):
            raise SenseError.invalid_cdb()
        block = data
    if blocks == 0:
        return good()
    if unmap and lu.thin:
        # UNMAP=1 on a thin unit deallocates the range whatever the data (as LIO
        # and tgt do, and libiscsi's WriteSame*.Unmap* tests expect); with
        # LBPRZ=1 it then reads as zeros.
        await lu.backend.unmap([(r.lba, blocks)])
        lu.stats["unmap_ops"] += 1
    else:
        await lu.backend.write_same(r.lba, blocks, block)
        if not lu.mode.write_cache:
            await lu.backend.flush()
    lu.stats["write_ops"] += 1
    return good()


def parse_unmap(data: Buffer, num_blocks: int) -> list[tuple[int, int]]:
    """UNMAP parameter list (SBC-3 5.28.2): 8-byte header, 16-byte descriptors."""
    if len(data) == 0:
        return []
    if len(data) < 8:
        raise SenseError.param_list_length()
    data_len = u16(data, 0)
    desc_len = u16(data, 2)
    if data_len + 2 > len(data) or desc_len + 8 > len(data) or desc_len % 16:
        raise SenseError.param_list_length()
    n = desc_len // 16
    if n > vpd.LIMITS.max_unmap_descriptors:
        raise SenseError.invalid_param(2)
    out: list[tuple[int, int]] = []
    total = 0
    for i in range(n):
        off = 8 + 16 * i
        lba, count = struct.unpack_from(">QI", data, off)
        if lba + count > num_blocks:
            raise SenseError.lba_out_of_range()
        total += count
        if count:
            out.append((lba, count))
    if total > vpd.LIMITS.max_unmap_lba_count:
        raise SenseError.invalid_param(8)
    return out


async def unmap(ctx: Context) -> ScsiResult:
    lu = ctx.lu
    if not lu.thin:
        raise SenseError.illegal(Asc.INVALID_COMMAND_OPERATION_CODE, field_pointer=0)
    if ctx.cdb[1] & 0x01:  # ANCHOR
        raise SenseError.invalid_cdb(1, 0)
    _check_writable(lu)
    extents = parse_unmap(ctx.param_data(), lu.num_blocks)
    if extents:
        await lu.backend.unmap(extents)
        lu.stats["unmap_ops"] += 1
    return good()


async def get_lba_status(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    lba = struct.unpack_from(">Q", cdb, 2)[0]
    alloc = u32(cdb, 10)
    lu = ctx.lu
    if lba >= lu.num_blocks:
        raise SenseError.lba_out_of_range()
    descs = bytearray()
    max_desc = max(1, min(64, (alloc - 8) // 16)) if alloc >= 24 else 1
    cur = lba
    while cur < lu.num_blocks and len(descs) // 16 < max_desc:
        n, status = await lu.backend.lba_status(cur)
        n = max(1, min(n, lu.num_blocks - cur, 0xFFFFFFFF))
        descs += struct.pack(">QIB3s", cur, n, 1 if status == DEALLOCATED else 0, b"")
        cur += n
    data = struct.pack(">II", len(descs) + 4, 0) + bytes(descs)
    return good(data[:alloc])


async def compare_and_write(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    r = _parse_rw_protect(cdb)
    lu = ctx.lu
    _check_writable(lu)
    if r.blocks > vpd.LIMITS.max_compare_and_write_blocks:
        raise SenseError.invalid_cdb(13)
    _check_range(lu, r.lba, r.blocks)
    if r.blocks == 0:
        if ctx.expected_out:
            raise SenseError.invalid_cdb(13)
        return good()
    n = r.blocks * lu.block_size
    if ctx.expected_out is not None and ctx.expected_out != 2 * n:
        raise SenseError.invalid_cdb(13)
    data = _data_out(ctx, 2 * n)
    async with lu.caw_lock:
        have = await lu.backend.read(r.lba, r.blocks)
        off = _first_mismatch(have, data[:n])
        if off >= 0:
            raise SenseError(SenseKey.MISCOMPARE, *Asc.MISCOMPARE_DURING_VERIFY, information=off)
        fua = bool(r.flags & 0x08) or not lu.mode.write_cache
        await lu.backend.write(r.lba, [data[n:]], fua=fua)
    lu.stats["write_ops"] += 1
    return good()


async def write_atomic(ctx: Context) -> ScsiResult:
    """WRITE ATOMIC(16) (SBC-4 5.48): all of the data or none of it, as seen by every other
    command: the unit's :class:`IoGate` holds them off while it writes."""
    cdb = ctx.cdb
    lu = ctx.lu
    if cdb[10] or cdb[11]:  # reserved
        raise SenseError.invalid_cdb(10 if cdb[10] else 11)
    r = _parse_rw_protect(cdb)
    if r.blocks > vpd.max_atomic_blocks(lu.block_size):
        raise SenseError.invalid_cdb(12)
    data, blocks = _write_data(ctx, r)
    if blocks == 0:
        return good()
    if blocks != r.blocks:  # a torn atomic write is no atomic write
        raise SenseError.invalid_cdb(12)
    fua = bool(r.flags & 0x08) or not lu.mode.write_cache
    async with io_gate(lu).exclusively(lu):
        await lu.backend.write(r.lba, [data], fua=fua)
    lu.stats["write_ops"] += 1
    lu.stats["write_bytes"] += len(data)
    return good()


async def orwrite(ctx: Context) -> ScsiResult:
    r = _parse_rw_protect(ctx.cdb)
    lu = ctx.lu
    data, blocks = _write_data(ctx, r)
    if blocks == 0:
        return good()
    async with lu.caw_lock:
        have = await lu.backend.read(r.lba, blocks)
        merged = (int.from_bytes(have, "big") | int.from_bytes(data, "big")).to_bytes(
            len(have), "big"
        )
        await lu.backend.write(r.lba, [merged], fua=bool(r.flags & 0x08))
    return good()


async def synchronize_cache(ctx: Context) -> ScsiResult:
    r = parse_rw(ctx.cdb)
    _check_range(ctx.lu, r.lba, r.blocks)
    await ctx.lu.backend.flush()
    return good()


async def pre_fetch(ctx: Context) -> ScsiResult:
    r = parse_rw(ctx.cdb)
    _check_range(ctx.lu, r.lba, r.blocks)
    return good()


async def start_stop_unit(ctx: Context) -> ScsiResult:
    return good()


async def prevent_allow(ctx: Context) -> ScsiResult:
    return good()


async def read_defect_data(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    fmt = cdb[2] & 0x1F if cdb[0] == Op.READ_DEFECT_DATA_10 else cdb[1] & 0x1F
    alloc = allocation_length(cdb)
    if cdb[0] == Op.READ_DEFECT_DATA_10:
        data = bytes((0, fmt, 0, 0))
    else:
        data = bytes((0, fmt, 0, 0, 0, 0, 0, 0))
    return good(data[:alloc])


# -- REPORT SUPPORTED OPERATION CODES (SPC-4 6.35) ------------------------------------


Handler = Callable[[Context], Awaitable[ScsiResult]]

# (opcode, service action or None) -> (handler, CDB usage data).  The usage data
# marks the CDB bits the target looks at (SPC-4 6.35.3).
_U = bytes.fromhex


def _rw_usage(n: int, flags: int) -> bytes:
    return {
        10: bytes((0, flags, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F, 0xFF, 0xFF, 0x07)),
        12: bytes((0, flags, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F, 0x07)),
        16: bytes((0, flags) + (0xFF,) * 12 + (0x3F, 0x07)),
    }[n]


def _with_op(op: int, usage: bytes) -> bytes:
    return bytes((op,)) + usage[1:]


COMMANDS: dict[tuple[int, int | None], tuple[Handler, bytes]] = {}


def _reg(op: int, sa: int | None, handler: Handler, usage: bytes) -> None:
    COMMANDS[(op, sa)] = (handler, _with_op(op, usage))


_reg(Op.TEST_UNIT_READY, None, test_unit_ready, _U("000000000007"))
_reg(Op.REQUEST_SENSE, None, request_sense, _U("000000 00ff07"))
_reg(Op.READ_6, None, read, _U("001fffffff07"))
_reg(Op.WRITE_6, None, write, _U("001fffffff07"))
_reg(Op.INQUIRY, None, inquiry, _U("0001ffffff07"))
_reg(Op.MODE_SELECT_6, None, mode_select, _U("001100 00ff07"))
_reg(Op.RESERVE_6, None, reserve, _U("000000000007"))
_reg(Op.RELEASE_6, None, release, _U("000000000007"))
_reg(Op.MODE_SENSE_6, None, mode_sense, _U("0008ffffff07"))
_reg(Op.START_STOP_UNIT, None, start_stop_unit, _U("0001000ff707"))
_reg(Op.PREVENT_ALLOW_MEDIUM_REMOVAL, None, prevent_allow, _U("000000000307"))
_reg(Op.READ_CAPACITY_10, None, read_capacity_10, _U("00 00 ffffffff 0000 01 07"))
_reg(Op.READ_10, None, read, _rw_usage(10, 0xF8))
_reg(Op.WRITE_10, None, write, _rw_usage(10, 0xF8))
_reg(Op.WRITE_AND_VERIFY_10, None, write, _rw_usage(10, 0xF2))
_reg(Op.VERIFY_10, None, verify, _rw_usage(10, 0xF6))
_reg(Op.PRE_FETCH_10, None, pre_fetch, _rw_usage(10, 0x02))
_reg(Op.SYNCHRONIZE_CACHE_10, None, synchronize_cache, _rw_usage(10, 0x06))
_reg(Op.READ_DEFECT_DATA_10, None, read_defect_data, _U("0000 1f 00000000 ffff 07"))
_reg(Op.WRITE_SAME_10, None, write_same, _rw_usage(10, 0xE8))
_reg(Op.UNMAP, None, unmap, _U("00 01 000000 0000 3f ffff 07"))
_reg(Op.MODE_SELECT_10, None, mode_select, _U("00 11 0000000000 ffff 07"))
_reg(Op.RESERVE_10, None, reserve, _U("00 00 00 00 00 00 00 00 00 07"))
_reg(Op.RELEASE_10, None, release, _U("00 00 00 00 00 00 00 00 00 07"))
_reg(Op.MODE_SENSE_10, None, mode_sense, _U("00 18 ff ff 00 00 00 ff ff 07"))
for _sa in range(4):
    _reg(Op.PERSISTENT_RESERVE_IN, _sa, persistent_reserve_in, _U("00 1f 0000000000 ffff 07"))
for _sa in range(8):
    _reg(Op.PERSISTENT_RESERVE_OUT, _sa, persistent_reserve_out, _U("00 1f ff 0000 ffffffff 07"))
_reg(Op.READ_16, None, read, _rw_usage(16, 0xF8))
_reg(
    Op.COMPARE_AND_WRITE,
    None,
    compare_and_write,
    bytes((0, 0xF8)) + b"\xff" * 8 + b"\x00\x00\x00\xff\x3f\x07",
)
_reg(Op.WRITE_16, None, write, _rw_usage(16, 0xF8))
_reg(Op.ORWRITE_16, None, orwrite, _rw_usage(16, 0xF8))
_reg(
    WRITE_ATOMIC_16,
    None,
    write_atomic,
    bytes((0, 0xF8)) + b"\xff" * 8 + b"\x00\x00\xff\xff\x3f\x07",
)
_reg(Op.WRITE_AND_VERIFY_16, None, write, _rw_usage(16, 0xF2))
_reg(Op.VERIFY_16, None, verify, _rw_usage(16, 0xF6))
_reg(Op.PRE_FETCH_16, None, pre_fetch, _rw_usage(16, 0x02))
_reg(Op.SYNCHRONIZE_CACHE_16, None, synchronize_cache, _rw_usage(16, 0x06))
_reg(Op.WRITE_SAME_16, None, write_same, _rw_usage(16, 0xE9))
_reg(
    Op.SERVICE_ACTION_IN_16,
    Sa.READ_CAPACITY_16,
    service_action_in,
    bytes((0, 0x1F)) + b"\x00" * 8 + b"\xff" * 4 + b"\x00\x07",
)
_reg(
    Op.SERVICE_ACTION_IN_16,
    Sa.GET_LBA_STATUS,
    service_action_in,
    bytes((0, 0x1F)) + b"\xff" * 12 + b"\x00\x07",
)
_reg(Op.REPORT_LUNS, None, report_luns, _U("00 00 ff 000000 ffffffff 00 07"))
_reg(
    Op.MAINTENANCE_IN,
    Sa.REPORT_TARGET_PORT_GROUPS,
    maintenance_in,
    _U("00 ff 00000000 ffffffff 00 07"),
)
_reg(
    Op.MAINTENANCE_IN,
    Sa.REPORT_SUPPORTED_OPCODES,
    maintenance_in,
    _U("00 1f 87 ff ffff ffffffff 00 07"),
)
_reg(
    Op.MAINTENANCE_IN,
    Sa.REPORT_SUPPORTED_TMFS,
    maintenance_in,
    _U("00 1f 00 00 0000 ffffffff 00 07"),
)
_reg(
    Op.MAINTENANCE_OUT,
    Sa.SET_TARGET_PORT_GROUPS,
    maintenance_out,
    _U("00 1f 00000000 ffffffff 00 07"),
)
_reg(Op.READ_12, None, read, _rw_usage(12, 0xF8))
_reg(Op.WRITE_12, None, write, _rw_usage(12, 0xF8))
_reg(Op.WRITE_AND_VERIFY_12, None, write, _rw_usage(12, 0xF2))
_reg(Op.VERIFY_12, None, verify, _rw_usage(12, 0xF6))
_reg(Op.READ_DEFECT_DATA_12, None, read_defect_data, _U("00 1f 00000000 ffffffff 00 07"))

# Fix the service action bits of usage data: byte 1 of an SA command marks
# the SA field.
_SA_OPS = {op for (op, sa) in COMMANDS if sa is not None}
_TIMEOUTS = struct.pack(">HBBII", 0x0A, 0, 0, 0, 30)  # nominal unknown, 30 s recommended


def _descriptor(op: int, sa: int | None, usage: bytes, rctd: bool) -> bytes:
    flags = (0x02 if rctd else 0) | (0x01 if sa is not None else 0)
    d = struct.pack(">BBHBBH", op, 0, sa or 0, 0, flags, len(usage))
    return d + (_TIMEOUTS if rctd else b"")


async def report_supported_opcodes(ctx: Context) -> ScsiResult:
    cdb = ctx.cdb
    table = ctx.target.command_table
    commands = table.entries
    sa_ops = table.sa_ops
    rctd = bool(cdb[2] & 0x80)
    opts = cdb[2] & 0x07
    op = cdb[3]
    sa = u16(cdb, 4)
    alloc = u32(cdb, 6)
    if opts == 0:
        body = b"".join(
            _descriptor(o, s, commands[(o, s)][1], rctd)
            for (o, s) in sorted(commands, key=_sort_key)
        )
        data = struct.pack(">I", len(body)) + body
        return good(data[:alloc])
    if opts == 1:
        if op in sa_ops:
            raise SenseError.invalid_cdb(2, 2)
        entry = commands.get((op, None))
    elif opts == 2:
        if op not in sa_ops:
            raise SenseError.invalid_cdb(2, 2)
        entry = commands.get((op, sa))
    elif opts == 3:
        entry = commands.get((op, sa if op in sa_ops else None))
        if entry is None and op not in sa_ops and sa:
            raise SenseError.invalid_cdb(4)
    else:
        raise SenseError.invalid_cdb(2, 2)
    if entry is None:
        data = bytes((0, 0x01, 0, 0))  # SUPPORT 001b: not supported
    else:
        usage = entry[1]
        data = bytes((0, (0x80 if rctd else 0) | 0x03)) + struct.pack(">H", len(usage)) + usage
        if rctd:
            data += _TIMEOUTS
    return good(data[:alloc])


def _sort_key(k: tuple[int, int | None]) -> tuple[int, int]:
    return (k[0], k[1] if k[1] is not None else -1)


# -- dispatch ------------------------------------------------------------------------------


class Extension(NamedTuple):
    """A command served by another subsystem (the copy manager, for one),
    added with :meth:`scsi.target.Target.add_command`.

    ``usage``: the CDB usage data for REPORT SUPPORTED OPERATION CODES (byte 0
    is set to the opcode); ``pr_class``: how persistent reservations treat it
    (SPC-4 5.9.1 table 46): ``"read"``, ``"write"`` or ``"allowed"``;
    ``data_out``: its data-out length from the CDB (default: the PARAMETER LIST
    LENGTH of the opcodes :func:`scsi.cdb.parameter_list_length` knows).
    """

    handler: Handler
    usage: bytes
    pr_class: str = "write"
    data_out: Callable[[Buffer], int] | None = None


class CommandTable:
    """The commands one target serves: the built-in set plus extensions."""

    def __init__(self) -> None:
        self.entries: dict[tuple[int, int | None], tuple[Handler, bytes]] = dict(COMMANDS)
        self.sa_ops: set[int] = set(_SA_OPS)
        self.extensions: dict[tuple[int, int | None], Extension] = {}

    def add(self, op: int, sa: int | None, ext: Extension) -> None:
        # An opcode either has service actions or not, for every entry of it.
        known = {s is not None for (o, s) in self.entries if o == op}
        if known and known != {sa is not None}:
            raise ValueError(f"opcode {op:#04x} is {'not ' if sa is not None else ''}SA-based")
        self.entries[(op, sa)] = (ext.handler, _with_op(op, ext.usage))
        self.extensions[(op, sa)] = ext
        if sa is not None:
            self.sa_ops.add(op)

    def key(self, cdb: Buffer) -> tuple[int, int | None]:
        op = cdb[0]
        return (op, cdb[1] & 0x1F if op in self.sa_ops else None)


def admit(ctx: Context) -> Handler:
    """The checks every command passes before its handler runs (opcode, CONTROL byte,
    reservations); returns the handler.  Raises SenseError or ReservationConflictError."""
    cdb = ctx.cdb
    n = check_length(cdb)
    table = ctx.target.command_table
    key = table.key(cdb)
    entry = table.entries.get(key)
    if entry is None:
        if key[1] is not None:
            raise SenseError.invalid_cdb(1, 4)
        raise SenseError.illegal(Asc.INVALID_COMMAND_OPERATION_CODE, field_pointer=0)
    _check_control(cdb, n)
    check_reservations(ctx, table.extensions.get(key))
    return entry[0]


async def dispatch(ctx: Context) -> ScsiResult:
    return await admit(ctx)(ctx)


# Handlers with a synchronous variant that finishes without waiting or says it cannot
# (returns None): the transport may run these on its receive path.
NOW: dict[Handler, Callable[[Context], ScsiResult | None]] = {read: read_now}


async def run_no_lu(
    target: Target, st: _NexusState, nexus: Nexus, lun: int, cdb: Buffer
) -> ScsiResult:
    """INQUIRY, REPORT LUNS and REQUEST SENSE to a LUN with no logical unit
    (SPC-4 4.5.2, 6.33): peripheral qualifier 011b, the LUN inventory, and
    LOGICAL UNIT NOT SUPPORTED sense data."""
    op = cdb[0]
    check_length(cdb)
    if op == Op.REPORT_LUNS:
        return good(report_luns_data(target, nexus, cdb))
    if op == Op.REQUEST_SENSE:
        sense = build_fixed_sense(SenseKey.ILLEGAL_REQUEST, *Asc.LOGICAL_UNIT_NOT_SUPPORTED)
        return good(sense[: cdb[4]])
    if cdb[1] & 0x01:
        raise SenseError.illegal(Asc.LOGICAL_UNIT_NOT_SUPPORTED)
    return good(vpd.standard_inquiry(None)[: u16(cdb, 3)])
