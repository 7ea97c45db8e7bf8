"""Mode parameters (SPC-4 7.5, SBC-3 6.4): MODE SENSE and MODE SELECT.

Each page is kept as three byte strings, current, default and changeable (a
mask of the bits MODE SELECT may change).  Saved values are not supported: the
application keeps configuration, so PC=11b and SP=1 are refused.  Pure: no I/O.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .sense import Asc, SenseError

__all__ = ["ModePages", "ModeSense", "parse_mode_select"]

Buffer = bytes | bytearray | memoryview

PAGE_RW_ERROR_RECOVERY = 0x01
PAGE_DISCONNECT_RECONNECT = 0x02
PAGE_CACHING = 0x08
PAGE_CONTROL = 0x0A
PAGE_INFORMATIONAL_EXCEPTIONS = 0x1C
ALL_PAGES = 0x3F

# Byte positions of the bits the target acts on.
CACHING_WCE = (2, 0x04)
CACHING_RCD = (2, 0x01)
CONTROL_SWP = (4, 0x08)


def _page(code: int, body: bytes) -> bytes:
    return bytes((code, len(body))) + body


# Defaults (SBC-3 6.4.5 caching, SPC-4 7.5.8 control, SBC-3 6.4.7 rw error
# recovery, SPC-4 7.5.14 informational exceptions, SPC-4 7.5.9 disconnect-reconnect).
_DEFAULTS: dict[int, tuple[bytes, bytes]] = {
    PAGE_RW_ERROR_RECOVERY: (
        _page(0x01, bytes((0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0))),  # AWRE | ARRE
        _page(0x01, bytes(10)),
    ),
    PAGE_DISCONNECT_RECONNECT: (_page(0x02, bytes(14)), _page(0x02, bytes(14))),
    PAGE_CACHING: (
        # WCE=1: writes are cached until SYNCHRONIZE CACHE or FUA.
        _page(0x08, bytes((0x04, 0, 0xFF, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF) + (0,) * 8)),
        _page(0x08, bytes((0x04,) + (0,) * 17)),
    ),
    PAGE_CONTROL: (
        # QUEUE ALGORITHM MODIFIER 1 (unrestricted), QERR 00b, TAS=0 (tasks of
        # other nexuses are not aborted by this one's task management); busy
        # timeout unlimited (FFFFh); extended self-test time 0.
        _page(0x0A, bytes((0x00, 0x10, 0x00, 0x00, 0, 0, 0xFF, 0xFF, 0, 0))),
        _page(0x0A, bytes((0x00, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0))),  # SWP
    ),
    PAGE_INFORMATIONAL_EXCEPTIONS: (_page(0x1C, bytes(10)), _page(0x1C, bytes(10))),
}
PAGE_ORDER = sorted(_DEFAULTS)


class ModeSense(NamedTuple):
    """The MODE SENSE(6)/(10) CDB fields (SPC-4 6.11, 6.12)."""

    dbd: bool
    llbaa: bool
    pc: int
    page: int
    subpage: int
    alloc: int
    ten: bool


def parse_mode_sense(cdb: Buffer) -> ModeSense:
    ten = cdb[0] == 0x5A
    alloc = int.from_bytes(cdb[7:9], "big") if ten else cdb[4]
    return ModeSense(
        dbd=bool(cdb[1] & 0x08),
        llbaa=bool(cdb[1] & 0x10) and ten,
        pc=cdb[2] >> 6,
        page=cdb[2] & 0x3F,
        subpage=cdb[3],
        alloc=alloc,
        ten=ten,
    )


class ModePages:
    """Current and changeable values of the mode pages of one logical unit."""

    def __init__(self) -> None:
        self.current: dict[int, bytearray] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the default values (power on, LUN reset)."""
        self.current = {code: bytearray(d[0]) for code, d in _DEFAULTS.items()}

    def bit(self, page: int, where: tuple[int, int]) -> bool:
        off, mask = where
        return bool(self.current[page][off] & mask)

    @property
    def write_cache(self) -> bool:
        return self.bit(PAGE_CACHING, CACHING_WCE)

    @property
    def software_write_protect(self) -> bool:
        return self.bit(PAGE_CONTROL, CONTROL_SWP)

    def page_bytes(self, code: int, pc: int) -> bytes:
        if pc == 1:
            return _DEFAULTS[code][1]
        if pc == 2:
            return _DEFAULTS[code][0]
        return bytes(self.current[code])

    def sense(
        self,
        req: ModeSense,
        *,
        device_specific: int,
        block_size: int,
        num_blocks: int,
    ) -> bytes:
        """MODE SENSE parameter data, truncated to the allocation length."""
        if req.pc == 3:
            raise SenseError.illegal(Asc.SAVING_PARAMETERS_NOT_SUPPORTED, field_pointer=2, bit=7)
        if req.page == ALL_PAGES:
            if req.subpage not in (0x00, 0xFF):
                raise SenseError.invalid_cdb(3)
            pages = b"".join(self.page_bytes(c, req.pc) for c in PAGE_ORDER)
        elif req.page in _DEFAULTS:
            if req.subpage not in (0x00, 0xFF):
                raise SenseError.invalid_cdb(3)
            pages = self.page_bytes(req.page, req.pc)
        else:
            raise SenseError.invalid_cdb(2, 5)
        bd = b""
        if not req.dbd:
            if req.llbaa:
                bd = struct.pack(">QII", num_blocks, 0, block_size)
            else:
                bd = struct.pack(">II", min(num_blocks, 0xFFFFFFFF), block_size & 0xFFFFFF)
        if req.ten:
            total = 8 + len(bd) + len(pages)
            hdr = struct.pack(
                ">HBBBBH", total - 2, 0, device_specific, 1 if req.llbaa else 0, 0, len(bd)
            )
        else:
            total = 4 + len(bd) + len(pages)
            hdr = struct.pack(">BBBB", min(total - 1, 0xFF), 0, device_specific, len(bd))
        return (hdr + bd + pages)[: req.alloc]

    def select(self, pages: list[tuple[int, int, bytes]]) -> bool:
        """Apply parsed MODE SELECT pages; True when a value changed.

        Every page is checked before any is applied: a page the target does not
        have, a wrong length, or a change to a bit that is not changeable is
        INVALID FIELD IN PARAMETER LIST with the offset of the offending byte.
        """
        updates: list[tuple[int, bytes]] = []
        for offset, code, body in pages:
            if code not in _DEFAULTS:
                raise SenseError.invalid_param(offset, 5)
            cur = self.current[code]
            mask = _DEFAULTS[code][1]
            if len(body) != len(cur):
                raise SenseError.invalid_param(offset + 1)
            for i in range(2, len(cur)):
                if (body[i] ^ cur[i]) & ~mask[i] & 0xFF:
                    raise SenseError.invalid_param(offset + i)
            updates.append((code, body))
        changed = False
        for code, body in updates:
            new = bytearray(body)
            new[0] = code
            if new != self.current[code]:
                self.current[code] = new
                changed = True
        return changed


def parse_mode_select(data: Buffer, *, ten: bool, block_size: int) -> list[tuple[int, int, bytes]]:
    """MODE SELECT(6)/(10) parameter list (SPC-4 7.5.4-7.5.6) into
    (offset, page code, page bytes) records.  Subpage-format pages (SPF=1) are
    not served here and are refused."""
    hlen = 8 if ten else 4
    if len(data) < hlen:
        if len(data) == 0:
            return []
        raise SenseError.param_list_length()
    if ten:
        bdlen = int.from_bytes(data[6:8], "big")
        long_lba = bool(data[4] & 1)
    else:
        bdlen = data[3]
        long_lba = False
    off = hlen
    if bdlen:
        dlen = 16 if long_lba else 8
        if bdlen % dlen or off + bdlen > len(data):
            raise SenseError.invalid_param(hlen - 1)
        for d in range(off, off + bdlen, dlen):
            blen = int.from_bytes(data[d + dlen - 3 : d + dlen], "big")
            if blen != block_size:
                raise SenseError.invalid_param(d + dlen - 3)
        off += bdlen
    pages: list[tuple[int, int, bytes]] = []
    while off < len(data):
        code = data[off] & 0x3F
        if data[off] & 0x40:  # SPF
            raise SenseError.invalid_param(off, 6)
        if off + 2 > len(data):
            raise SenseError.param_list_length()
        plen = data[off + 1]
        end = off + 2 + plen
        if end > len(data):
            raise SenseError.param_list_length()
        pages.append((off, code, bytes(data[off:end])))
        off = end
    return pages
