"""The copy manager: EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 5.17, 6.4,
6.18) with the Third-party Copy VPD page (SPC-4 7.8.17).

A copy moves blocks between logical units of this target without passing the data
through the initiator: identification CSCD descriptors (type E4h) name the units by a
designator of their VPD page 83h, block-to-block segment descriptors (type 02h) say what
goes where.  Designators resolve only among the LUNs the issuing I_T nexus may see (LUN
masking holds for copies too: CVE-2020-28374 was a copy manager that looked further), and
persistent reservations of every unit involved are honoured.

:func:`parse_parameter_list` is the sans-IO parser (it raises :class:`SenseError` with the
sense data SPC-4 names); :class:`CopyManager` resolves, checks and runs the copy in a worker
thread (``os.copy_file_range`` between the backing files where the kernel can, else
``pread``/``pwrite``), and keeps the results RECEIVE COPY STATUS reports.
"""

from __future__ import annotations

import errno
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from . import vpd
from .cdb import Op, u16, u32
from .commands import Context, Extension, io_gate
from .lun import LogicalUnit
from .nexus import Nexus, ScsiResult
from .sense import Asc, SenseError, SenseKey, Status

if TYPE_CHECKING:
    from .target import Target

__all__ = [
    "LIMITS",
    "CopyLimits",
    "CopyManager",
    "Cscd",
    "ParameterList",
    "Segment",
    "parse_parameter_list",
]

Buffer = bytes | bytearray | memoryview

HEADER_LEN = 16
CSCD_LEN = 32
B2B_LEN = 28

# Descriptor type codes (SPC-4 tables 106 and 107).
SEG_BLOCK_TO_BLOCK = 0x02
CSCD_IDENTIFICATION = 0xE4
# Lengths of the CSCD descriptor types SPC-4 defines (E0h-E9h 32 bytes, EAh-EBh 64).
_CSCD_SIZES = {**dict.fromkeys(range(0xE0, 0xEA), 32), 0xEA: 64, 0xEB: 64}

# LIST ID USAGE (SPC-4 table 104).
LIST_ID_HOLD = 0b00
LIST_ID_NO_HOLD = 0b10
LIST_ID_NONE = 0b11

# RECEIVE COPY RESULTS service actions (SPC-4 table 131).
SA_COPY_STATUS = 0x00
SA_OPERATING_PARAMETERS = 0x03

# COPY MANAGER STATUS of RECEIVE COPY STATUS (SPC-4 table 133).
COPY_IN_PROGRESS = 0x00
COPY_DONE = 0x01
COPY_FAILED = 0x02

COPY_CHUNK = 8 << 20  # bytes per copy_file_range / pread call


@dataclass(frozen=True)
class CopyLimits:
    """What RECEIVE COPY OPERATING PARAMETERS and VPD page 8Fh report, and enforce."""

    max_cscd_descriptors: int = 8
    max_segment_descriptors: int = 64
    max_descriptor_list_length: int = 4096
    max_segment_bytes: int = 256 << 20
    total_concurrent_copies: int = 16
    max_held_results: int = 64  # held RECEIVE COPY STATUS results per copy manager


LIMITS = CopyLimits()


@dataclass(frozen=True)
class Cscd:
    """An identification CSCD descriptor (SPC-4 6.4.5.6.1)."""

    offset: int  # of the descriptor in the parameter list
    code_set: int
    association: int
    designator_type: int
    designator: bytes
    block_length: int  # DISK BLOCK LENGTH of the block device type specific parameters


@dataclass(frozen=True)
class Segment:
    """A block device to block device segment descriptor (SPC-4 6.4.6.5)."""

    offset: int
    source: int  # CSCD descriptor index
    destination: int
    dc: bool  # NUMBER OF BLOCKS counts destination blocks (else source blocks)
    blocks: int
    source_lba: int
    destination_lba: int


@dataclass(frozen=True)
class ParameterList:
    """The EXTENDED COPY (LID1) parameter list (SPC-4 6.4.2 table 103)."""

    list_id: int
    list_id_usage: int
    cscds: tuple[Cscd, ...]
    segments: tuple[Segment, ...]


def parse_parameter_list(data: Buffer, limits: CopyLimits = LIMITS) -> ParameterList | None:
    """Parse and check an EXTENDED COPY (LID1) parameter list; None for an empty one (no
    copy, SPC-4 6.4.1).  Raises SenseError: PARAMETER LIST LENGTH ERROR (1A/00) for lists
    shorter than their lengths say or longer than the MAXIMUM DESCRIPTOR LIST LENGTH, TOO
    MANY TARGET/SEGMENT DESCRIPTORS (26/06, 26/08), UNSUPPORTED TARGET/SEGMENT DESCRIPTOR
    TYPE CODE (26/07, 26/09), INLINE DATA LENGTH EXCEEDED (26/0B), INVALID FIELD IN
    PARAMETER LIST (26/00) for anything else."""
    if len(data) == 0:
        return None
    if len(data) < HEADER_LEN:
        raise SenseError.param_list_length()
    list_id = data[0]
    usage = (data[1] >> 3) & 0x03
    if usage == 0b01:
        raise SenseError.invalid_param(1, 3)
    if usage == LIST_ID_NONE and list_id:
        raise SenseError.invalid_param(0)
    cscd_len = u16(data, 2)
    seg_len = u32(data, 8)
    inline_len = u32(data, 12)
    if HEADER_LEN + cscd_len + seg_len + inline_len > len(data):
        raise SenseError.param_list_length()
    if cscd_len + seg_len > limits.max_descriptor_list_length:
        raise SenseError.param_list_length()
    if inline_len:
        raise SenseError.illegal(Asc.INLINE_DATA_LENGTH_EXCEEDED, field_pointer=12, in_cdb=False)
    cscds = _parse_cscds(data, HEADER_LEN, cscd_len, limits)
    segments = _parse_segments(data, HEADER_LEN + cscd_len, seg_len, limits)
    return ParameterList(list_id, usage, tuple(cscds), tuple(segments))


def _parse_cscds(data: Buffer, start: int, length: int, limits: CopyLimits) -> list[Cscd]:
    out: list[Cscd] = []
    off, end = start, start + length
    while off < end:
        dtype = data[off]
        size = _CSCD_SIZES.get(dtype)
        if size is None or dtype != CSCD_IDENTIFICATION:
            raise SenseError.illegal(
                Asc.UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE, field_pointer=off, in_cdb=False
            )
        if off + size > end:
            raise SenseError.param_list_length()
        if len(out) == limits.max_cscd_descriptors:
            raise SenseError.illegal(
                Asc.TOO_MANY_TARGET_DESCRIPTORS, field_pointer=off, in_cdb=False
            )
        # Byte 1: LU ID TYPE and NUL are ignored (SPC-4 6.4.5.6.1; NUL is obsolete);
        # only block devices (PERIPHERAL DEVICE TYPE 0) take part in block copies.
        if data[off + 1] & 0x1F:
            raise SenseError.invalid_param(off + 1, 4)
        dlen = data[off + 7]
        if dlen > 20:
            raise SenseError.invalid_param(off + 7)
        out.append(
            Cscd(
                offset=off,
                code_set=data[off + 4] & 0x0F,
                association=(data[off + 5] >> 4) & 0x03,
                designator_type=data[off + 5] & 0x0F,
                designator=bytes(data[off + 8 : off + 8 + dlen]),
                block_length=int.from_bytes(data[off + 29 : off + 32], "big"),
            )
        )
        off += size
    return out


def _parse_segments(data: Buffer, start: int, length: int, limits: CopyLimits) -> list[Segment]:
    out: list[Segment] = []
    off, end = start, start + length
    while off < end:
        if off + 4 > end:
            raise SenseError.param_list_length()
        dtype = data[off]
        if dtype != SEG_BLOCK_TO_BLOCK:
            raise SenseError.illegal(
                Asc.UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE, field_pointer=off, in_cdb=False
            )
        if len(out) == limits.max_segment_descriptors:
            raise SenseError.illegal(
                Asc.TOO_MANY_SEGMENT_DESCRIPTORS, field_pointer=off, in_cdb=False
            )
        if u16(data, off + 2) != B2B_LEN - 4:
            raise SenseError.invalid_param(off + 2)
        if off + B2B_LEN > end:
            raise SenseError.param_list_length()
        src, dst, _rsvd, blocks, src_lba, dst_lba = struct.unpack_from(">HHHHQQ", data, off + 4)
        out.append(
            Segment(
                offset=off,
                source=src,
                destination=dst,
                dc=bool(data[off + 1] & 0x02),
                blocks=blocks,
                source_lba=src_lba,
                destination_lba=dst_lba,
            )
        )
        off += B2B_LEN
    return out


# -- sense data of a failed copy ------------------------------------------------------


def copy_aborted(code: tuple[int, int], segment: int, field: int | None = None) -> SenseError:
    """COPY ABORTED with the segment number in COMMAND-SPECIFIC INFORMATION and, when
    given, the byte of that segment descriptor in error (SPC-4 6.4.3)."""
    return SenseError(SenseKey.COPY_ABORTED, *code, field_pointer=field, command_specific=segment)


# -- the copy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """One resolved segment: byte ranges of two units."""

    src: LogicalUnit
    dst: LogicalUnit
    src_offset: int
    dst_offset: int
    length: int


def _copy_fds(src_fd: int, dst_fd: int, src_off: int, dst_off: int, length: int) -> None:
    """Copy ``length`` bytes between two files inside the kernel where it can
    (``copy_file_range``), else through a buffer.  Overlapping ranges of one file
    are copied as if read whole before written (back to front when they need it)."""
    same = os.path.sameopenfile(src_fd, dst_fd)
    overlap = same and src_off < dst_off < src_off + length
    if not same or abs(src_off - dst_off) >= length:
        done = 0
        try:
            while done < length:
                n = os.copy_file_range(
                    src_fd, dst_fd, min(COPY_CHUNK, length - done), src_off + done, dst_off + done
                )
                if n == 0:  # source shorter than its unit: the rest reads as zeros
                    break
                done += n
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
        src_off, dst_off, length = src_off + done, dst_off + done, length - done
        if length == 0:
            return
    # Buffered: front to back, or back to front when the destination overlaps the tail
    # of the source.
    starts = range(0, length, COPY_CHUNK)
    for start in reversed(starts) if overlap else starts:
        n = min(COPY_CHUNK, length - start)
        chunk = os.pread(src_fd, n, src_off + start).ljust(n, b"\0")
        view = memoryview(chunk)
        while view:
            view = view[os.pwrite(dst_fd, view, dst_off + start + n - len(view)) :]


class CopyManager:
    """The copy manager of one target (SPC-4 5.17): serves EXTENDED COPY (LID1),
    RECEIVE COPY RESULTS (COPY STATUS, OPERATING PARAMETERS) and VPD page 8Fh.

    ``descriptors``: extra third-party copy descriptors for page 8Fh, by type (a token
    copy subsystem adds its ROD descriptors here); the Supported Commands descriptor lists
    every service action of 83h/84h the target's command table serves.
    """

    def __init__(self, target: Target, limits: CopyLimits = LIMITS) -> None:
        self.target = target
        self.limits = limits
        self.descriptors: dict[int, bytes] = {}
        self._limiter = trio.CapacityLimiter(2)
        # (nexus key, LUN, list id) -> (COPY MANAGER STATUS, segments processed, bytes)
        self._held: OrderedDict[tuple[tuple[str, int], int, int], tuple[int, int, int]] = (
            OrderedDict()
        )
        self._running: set[tuple[tuple[str, int], int, int]] = set()
        self._active = 0
        self.stats = {"copies": 0, "copy_bytes": 0, "copy_errors": 0}
        xcopy_usage = bytes.fromhex("83 1f 0000000000000000 ffffffff 00 07")
        rcr_usage = bytes.fromhex("84 1f ff 00000000000000 ffffffff 00 07")
        target.add_command(Op.EXTENDED_COPY, 0x00, Extension(self.extended_copy, xcopy_usage))
        for sa in (SA_COPY_STATUS, SA_OPERATING_PARAMETERS):
            target.add_command(
                Op.RECEIVE_COPY_RESULTS,
                sa,
                Extension(self.receive_copy_results, rcr_usage, pr_class="allowed"),
            )
        target.add_vpd_page(0x8F, self.vpd_page, third_party_copy=True)

    # -- VPD page 8Fh and OPERATING PARAMETERS ---------------------------------

    def vpd_page(self, lu: LogicalUnit, nexus: Nexus) -> bytes:
        """SPC-4 7.8.17: Supported Commands, Parameter Data, Supported Descriptors,
        Supported CSCD Descriptor IDs and General Copy Operations descriptors."""
        lim = self.limits
        table = self.target.command_table.entries
        cmds = b""
        for op in (Op.EXTENDED_COPY, Op.RECEIVE_COPY_RESULTS):
            sas = sorted(sa for (o, sa) in table if o == op and sa is not None)
            cmds += bytes((op, len(sas), *sas))
        descs = {
            0x0001: bytes((len(cmds),)) + cmds,
            0x0004: struct.pack(
                ">IHHII12s",
                0,
                lim.max_cscd_descriptors,
                lim.max_segment_descriptors,
                lim.max_descriptor_list_length,
                0,  # MAXIMUM INLINE DATA LENGTH
                b"",
            ),
            0x0008: bytes((2, SEG_BLOCK_TO_BLOCK, CSCD_IDENTIFICATION)),
            0x000C: struct.pack(">H", 0),  # no CSCD descriptor IDs (null device etc.)
            0x8001: struct.pack(
                ">IIIBB18s",
                lim.total_concurrent_copies,
                lim.total_concurrent_copies,
                lim.max_segment_bytes,
                0,  # DATA SEGMENT GRANULARITY (log2 bytes): any
                0,  # INLINE DATA GRANULARITY
                b"",
            ),
        }
        descs.update(self.descriptors)
        return vpd.third_party_copy_page(descs.items())

    def operating_parameters(self) -> bytes:
        """RECEIVE COPY OPERATING PARAMETERS data (SPC-4 6.18.4 table 136)."""
        lim = self.limits
        codes = bytes((SEG_BLOCK_TO_BLOCK, CSCD_IDENTIFICATION))
        body = struct.pack(
            ">B3sHHIIIII2sHBBBB3sB",
            0x00,  # SNLID=0: list identifiers are honoured
            b"",
            lim.max_cscd_descriptors,
            lim.max_segment_descriptors,
            lim.max_descriptor_list_length,
            lim.max_segment_bytes,
            0,  # MAXIMUM INLINE DATA LENGTH
            0,  # HELD DATA LIMIT: no held data (RECEIVE DATA is not served)
            0,  # MAXIMUM STREAM DEVICE TRANSFER SIZE
            b"",
            lim.total_concurrent_copies,
            min(lim.total_concurrent_copies, 0xFF),
            0,  # DATA SEGMENT GRANULARITY
            0,  # INLINE DATA GRANULARITY
            0,  # HELD DATA GRANULARITY
            b"",
            len(codes),
        )
        body += codes
        return struct.pack(">I", len(body)) + body

    # -- RECEIVE COPY RESULTS -------------------------------------------------------

    async def receive_copy_results(self, ctx: Context) -> ScsiResult:
        cdb = ctx.cdb
        sa = cdb[1] & 0x1F
        alloc = u32(cdb, 10)
        if sa == SA_OPERATING_PARAMETERS:
            return ScsiResult(Status.GOOD, self.operating_parameters()[:alloc])
        key = (ctx.nexus.key, ctx.lun, cdb[2])
        if key in self._running:
            held = (COPY_IN_PROGRESS, 0, 0)
        else:
            found = self._held.pop(key, None)
            if found is None:  # no copy with this LIST IDENTIFIER (SPC-4 6.18.3)
                raise SenseError.invalid_cdb(2)
            held = found
        status, segments, count = held
        units = 0
        while count > 0xFFFFFFFF:
            count >>= 10
            units += 1
        data = struct.pack(">IBHBI", 8, status, segments, units, count)
        return ScsiResult(Status.GOOD, data[:alloc])

    # -- EXTENDED COPY ---------------------------------------------------------------

    async def extended_copy(self, ctx: Context) -> ScsiResult:
        data = ctx.param_data()
        params = parse_parameter_list(data, self.limits)
        if params is None:
            return ScsiResult(Status.GOOD)
        key = (ctx.nexus.key, ctx.lun, params.list_id)
        tracked = params.list_id_usage != LIST_ID_NONE
        if tracked and key in self._running:
            raise SenseError.illegal(Asc.OPERATION_IN_PROGRESS, field_pointer=0, in_cdb=False)
        if self._active >= self.limits.total_concurrent_copies:
            return ScsiResult(Status.BUSY)
        if tracked:
            self._held.pop(key, None)
            self._running.add(key)
        self._active += 1
        done = moved = 0
        outcome = COPY_FAILED  # also when the task is aborted
        try:
            plans = self._resolve(ctx, params)
            for i, plan in enumerate(plans):
                try:
                    await self._copy(plan)
                except OSError as exc:
                    self.target.log.error(
                        "EXTENDED COPY segment %d (%s -> %s) failed: %s",
                        i,
                        plan.src.name,
                        plan.dst.name,
                        exc,
                        extra={"initiator": ctx.nexus.initiator_port, "lun": ctx.lun},
                    )
                    raise copy_aborted(Asc.THIRD_PARTY_DEVICE_FAILURE, i) from exc
                done += 1
                moved += plan.length
            outcome = COPY_DONE
        except SenseError:
            self.stats["copy_errors"] += 1
            raise
        finally:
            self._active -= 1
            self.stats["copy_bytes"] += moved
            self._finish(key, params, outcome, done, moved)
        self.stats["copies"] += 1
        return ScsiResult(Status.GOOD)

    def _finish(
        self,
        key: tuple[tuple[str, int], int, int],
        params: ParameterList,
        status: int,
        segments: int,
        moved: int,
    ) -> None:
        if params.list_id_usage == LIST_ID_NONE:
            return
        self._running.discard(key)
        if params.list_id_usage == LIST_ID_HOLD:
            self._held[key] = (status, segments, moved)
            while len(self._held) > self.limits.max_held_results:
                self._held.popitem(last=False)

    def statistics(self) -> dict[str, int]:
        return {**self.stats, "running": self._active, "held_results": len(self._held)}

    def nexus_lost(self, nexus_key: tuple[str, int]) -> None:
        """Held results belong to their I_T nexus: gone with it (SPC-4 5.17.4.3)."""
        for k in [k for k in self._held if k[0] == nexus_key]:
            del self._held[k]

    def _lookup(self, ctx: Context, cscd: Cscd) -> LogicalUnit | None:
        """The unit a CSCD designator names, among the LUNs this nexus may see."""
        if cscd.association != 0:
            return None
        t = self.target
        kind = (cscd.designator_type, cscd.code_set)
        for lun in t.visible_luns(ctx.nexus):
            lu = t.luns[lun]
            if kind == (3, 1) and cscd.designator == lu.identity.naa_bytes():
                return lu
            if kind == (1, 2) and cscd.designator == vpd.t10_vendor_id(lu):
                return lu
        return None

    def _resolve(self, ctx: Context, params: ParameterList) -> list[_Plan]:
        """Every segment checked before any data moves: units reachable by this nexus,
        block lengths, ranges, write protection and reservations."""
        units: dict[int, LogicalUnit | None] = {}
        plans: list[_Plan] = []
        for i, seg in enumerate(params.segments):
            ends = []
            for field, index in ((4, seg.source), (6, seg.destination)):
                if index >= len(params.cscds):
                    raise copy_aborted(Asc.COPY_TARGET_DEVICE_NOT_REACHABLE, i, field)
                if index not in units:
                    units[index] = self._lookup(ctx, params.cscds[index])
                lu = units[index]
                if lu is None:
                    raise copy_aborted(Asc.COPY_TARGET_DEVICE_NOT_REACHABLE, i, field)
                cscd = params.cscds[index]
                if cscd.block_length != lu.block_size:
                    raise SenseError.invalid_param(cscd.offset + 29)
                ends.append(lu)
            src, dst = ends
            length = seg.blocks * (dst.block_size if seg.dc else src.block_size)
            if length % src.block_size or length % dst.block_size:
                raise SenseError.illegal(
                    Asc.UNEXPECTED_INEXACT_SEGMENT, field_pointer=seg.offset + 10, in_cdb=False
                )
            if length > self.limits.max_segment_bytes:
                raise SenseError.invalid_param(seg.offset + 10)
            for lu, lba, field in ((src, seg.source_lba, 12), (dst, seg.destination_lba, 20)):
                if lba + length // lu.block_size > lu.num_blocks:
                    raise copy_aborted(Asc.NO_ADDITIONAL_SENSE, i, field)
            self._check_access(ctx, src, dst, i)
            plans.append(
                _Plan(
                    src,
                    dst,
                    seg.source_lba * src.block_size,
                    seg.destination_lba * dst.block_size,
                    length,
                )
            )
        return plans

    def _check_access(self, ctx: Context, src: LogicalUnit, dst: LogicalUnit, segment: int) -> None:
        """The copy manager reads and writes as this nexus would: its reservations and
        write protection hold (a conflict on the addressed unit itself was checked before
        the command started)."""
        if dst.read_only or dst.mode.software_write_protect:
            raise SenseError(SenseKey.DATA_PROTECT, *Asc.WRITE_PROTECTED)
        nexus = ctx.nexus
        for lu, write in ((src, False), (dst, True)):
            if lu is ctx.lu:
                continue
            if lu.reserved_by is not None and lu.reserved_by != nexus.key:
                raise copy_aborted(Asc.COPY_TARGET_DEVICE_NOT_REACHABLE, segment)
            if lu.pr.type is None:
                continue
            itn = lu.pr.nexus_key_for(nexus.initiator, nexus.initiator_port, nexus.target_port)
            if lu.pr.conflicts(itn, write=write, read=not write):
                raise copy_aborted(Asc.COPY_TARGET_DEVICE_NOT_REACHABLE, segment)

    async def _copy(self, plan: _Plan) -> None:
        """One segment, counted as a data command of both units (a WRITE ATOMIC to either
        waits for it, and it for the WRITE ATOMIC)."""
        if plan.length == 0:
            return
        gates = [io_gate(plan.src)] + ([io_gate(plan.dst)] if plan.dst is not plan.src else [])
        entered = []
        try:
            for gate in gates:
                await gate.enter()
                entered.append(gate)
            await self._copy_segment(plan)
        finally:
            for gate in entered:
                gate.leave()

    async def _copy_segment(self, plan: _Plan) -> None:
        src_fd = _fileno(plan.src)
        dst_fd = _fileno(plan.dst)
        if src_fd is not None and dst_fd is not None:
            await trio.to_thread.run_sync(
                _copy_fds,
                src_fd,
                dst_fd,
                plan.src_offset,
                plan.dst_offset,
                plan.length,
                limiter=self._limiter,
            )
        else:
            await self._copy_through_backends(plan)
        dst = plan.dst
        if not dst.mode.write_cache:
            await dst.backend.flush()
        dst.stats["write_ops"] += 1
        dst.stats["write_bytes"] += plan.length

    async def _copy_through_backends(self, plan: _Plan) -> None:
        """For backends without a file descriptor: whole-buffer reads, then writes (the
        source is read before the destination is written, so overlap is harmless)."""
        sbs, dbs = plan.src.block_size, plan.dst.block_size
        step = COPY_CHUNK - COPY_CHUNK % max(sbs, dbs)
        starts = list(range(0, plan.length, step))
        if plan.src is plan.dst and plan.src_offset < plan.dst_offset:
            starts.reverse()
        for start in starts:
            n = min(step, plan.length - start)
            buf = await plan.src.backend.read((plan.src_offset + start) // sbs, n // sbs)
            await plan.dst.backend.write((plan.dst_offset + start) // dbs, [buf])


def _fileno(lu: LogicalUnit) -> int | None:
    fileno = getattr(lu.backend, "fileno", None)
    if fileno is None:
        return None
    fd = fileno()
    return fd if isinstance(fd, int) and fd >= 0 else None
