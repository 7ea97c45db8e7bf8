"""The STag table: memory regions by STag (RFC 5040 5.1 / RFC 5041 5.2), with the checks a
tagged access must pass.

An STag is a 24-bit index and an 8-bit key (as siw); lkey == rkey. Each region has a base
tagged offset (``addr``) handed out from a per-device virtual space, so a peer names byte
``i`` of a region as ``addr + i``.
"""

from __future__ import annotations

from .. import verbs_types as verbs
from .errors import DDPError, DdpEType, DdpTaggedCode, IwarpError, RdmapCode, RDMAPError, RdmapEType

_INDEX_LIMIT = 1 << 24
_ADDR_BASE = 0x7F00_0000_0000
_ADDR_ALIGN = 1 << 12


class Region:
    """A registered memory region (implements :class:`rdma.verbs.MemoryRegion`)."""

    __slots__ = ("_access", "_addr", "_buf", "_stag", "_table", "_valid", "pd_id")

    def __init__(
        self,
        table: StagTable,
        pd_id: int,
        stag: int,
        buf: memoryview,
        addr: int,
        access: verbs.Access,
    ) -> None:
        self._table = table
        self.pd_id = pd_id
        self._stag = stag
        self._buf = buf
        self._addr = addr
        self._access = access
        self._valid = True

    @property
    def buf(self) -> memoryview:
        return self._buf

    @property
    def addr(self) -> int:
        return self._addr

    @property
    def length(self) -> int:
        return len(self._buf)

    @property
    def lkey(self) -> int:
        return self._stag

    @property
    def rkey(self) -> int:
        return self._stag

    @property
    def access(self) -> verbs.Access:
        return self._access

    @property
    def valid(self) -> bool:
        return self._valid

    def deregister(self) -> None:
        self._table.remove(self)

    def invalidate(self) -> None:
        self._valid = False

    def __repr__(self) -> str:
        return f"<Region stag={self._stag:#010x} addr={self._addr:#x} len={len(self._buf)}>"


class StagTable:
    """All regions of one device; lookups are by STag, checks by PD, rights and bounds."""

    def __init__(self) -> None:
        self._regions: dict[int, Region] = {}
        self._indexes: set[int] = set()
        self._next_index = 1  # index 0 is never used: STag 0 is the zero-length/RTR STag
        self._key = 0
        self._next_addr = _ADDR_BASE

    def __len__(self) -> int:
        return len(self._regions)

    def register(
        self, pd_id: int, buffer: int | bytearray | memoryview, access: verbs.Access
    ) -> Region:
        if isinstance(buffer, int):
            if buffer <= 0:
                raise verbs.VerbsError("memory region length must be positive")
            view = memoryview(bytearray(buffer))
        else:
            view = memoryview(buffer).cast("B")
            if view.readonly and access & (verbs.Access.LOCAL_WRITE | verbs.Access.REMOTE_WRITE):
                raise verbs.VerbsError("write access asked for a read-only buffer")
        if len(self._regions) >= _INDEX_LIMIT - 1:
            raise verbs.VerbsError("STag space exhausted")
        index = self._next_index
        while index in self._indexes:
            index = index % (_INDEX_LIMIT - 1) + 1
        self._next_index = index % (_INDEX_LIMIT - 1) + 1
        self._key = (self._key + 1) & 0xFF
        stag = (index << 8) | self._key
        self._indexes.add(index)
        addr = self._next_addr
        self._next_addr += (len(view) + _ADDR_ALIGN - 1) // _ADDR_ALIGN * _ADDR_ALIGN + _ADDR_ALIGN
        region = Region(self, pd_id, stag, view, addr, access)
        self._regions[stag] = region
        return region

    def remove(self, region: Region) -> None:
        region.invalidate()
        if self._regions.get(region.lkey) is region:
            del self._regions[region.lkey]
            self._indexes.discard(region.lkey >> 8)

    def get(self, stag: int) -> Region | None:
        return self._regions.get(stag)

    def local(self, sge: verbs.Sge, pd_id: int, need_write: bool) -> memoryview:
        """The bytes of a local SGE, checked like ``ibv_post_*`` would (raises VerbsError)."""
        region = self._regions.get(sge.mr.lkey)
        if region is None or region is not sge.mr or not region.valid:
            raise verbs.VerbsError(f"invalid lkey {sge.mr.lkey:#x}")
        if region.pd_id != pd_id:
            raise verbs.VerbsError("memory region belongs to another protection domain")
        if need_write and not region.access & verbs.Access.LOCAL_WRITE:
            raise verbs.VerbsError("memory region lacks LOCAL_WRITE")
        if sge.offset < 0 or sge.length < 0 or sge.offset + sge.length > region.length:
            raise verbs.VerbsError("SGE outside its memory region")
        return region.buf[sge.offset : sge.offset + sge.length]

    def tagged_sink(
        self, stag: int, to: int, length: int, pd_id: int, need: verbs.Access
    ) -> memoryview:
        """Where a tagged segment lands (RDMA Write, Read Response): DDP tagged buffer errors
        for STag and bounds, RDMAP access rights for rights (as siw's siw_tagged_error)."""
        region = self._regions.get(stag)
        if region is None or not region.valid:
            raise DDPError(
                f"invalid STag {stag:#010x}", DdpEType.TAGGED_BUFFER, DdpTaggedCode.INVALID_STAG
            )
        if region.pd_id != pd_id:
            raise DDPError(
                f"STag {stag:#010x} not associated with this stream",
                DdpEType.TAGGED_BUFFER,
                DdpTaggedCode.STAG_NOT_ASSOCIATED,
            )
        if not region.access & need:
            raise RDMAPError(
                f"STag {stag:#010x} lacks {need.name}",
                RdmapEType.REMOTE_PROTECTION,
                RdmapCode.ACCESS_RIGHTS,
            )
        if to + length > 0xFFFF_FFFF_FFFF_FFFF:
            raise DDPError("tagged offset wraps", DdpEType.TAGGED_BUFFER, DdpTaggedCode.TO_WRAP)
        off = to - region.addr
        if off < 0 or off + length > region.length:
            raise DDPError(
                f"TO {to:#x}+{length} outside STag {stag:#010x}",
                DdpEType.TAGGED_BUFFER,
                DdpTaggedCode.BASE_BOUNDS,
            )
        return region.buf[off : off + length]

    def read_source(self, stag: int, to: int, length: int, pd_id: int) -> memoryview:
        """The source of an RDMA Read Request: RDMAP remote protection errors (RFC 5040 7.2)."""
        region = self._regions.get(stag)
        err: IwarpError | None = None
        if region is None or not region.valid:
            err = RDMAPError(f"invalid STag {stag:#010x}", code=RdmapCode.INVALID_STAG)
        elif region.pd_id != pd_id:
            err = RDMAPError(
                "STag not associated with this stream", code=RdmapCode.STAG_NOT_ASSOCIATED
            )
        elif not region.access & verbs.Access.REMOTE_READ:
            err = RDMAPError(f"STag {stag:#010x} lacks REMOTE_READ", code=RdmapCode.ACCESS_RIGHTS)
        elif to + length > 0xFFFF_FFFF_FFFF_FFFF:
            err = RDMAPError("tagged offset wraps", code=RdmapCode.TO_WRAP)
        if err is not None:
            err.etype = RdmapEType.REMOTE_PROTECTION
            raise err
        assert region is not None
        off = to - region.addr
        if off < 0 or off + length > region.length:
            raise RDMAPError(
                f"read of {to:#x}+{length} outside STag {stag:#010x}",
                RdmapEType.REMOTE_PROTECTION,
                RdmapCode.BASE_BOUNDS,
            )
        return region.buf[off : off + length]

    def invalidate_remote(self, stag: int, pd_id: int) -> Region:
        """Send with Invalidate (RFC 5040 6.10.2): the STag must name a region of this PD."""
        region = self._regions.get(stag)
        if region is None or not region.valid:
            raise RDMAPError(
                f"Send with Invalidate of unknown STag {stag:#010x}",
                RdmapEType.REMOTE_PROTECTION,
                RdmapCode.INVALID_STAG,
            )
        if region.pd_id != pd_id or not region.access & (
            verbs.Access.REMOTE_READ | verbs.Access.REMOTE_WRITE
        ):
            raise RDMAPError(
                f"STag {stag:#010x} cannot be invalidated",
                RdmapEType.REMOTE_OPERATION,
                RdmapCode.STAG_NOT_INVALIDATABLE,
            )
        region.invalidate()
        return region
