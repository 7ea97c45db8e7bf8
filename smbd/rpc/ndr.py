"""A small NDR (transfer syntax 8a885d04-1ceb-11c9-9fe8-08002b104860 v2, little-endian)
encoder and decoder: what srvsvc and wkssvc need ([C706] 14, [MS-RPCE] 2.2.5).

Primitives are aligned to their size. Pointers follow the NDR rule for deferral: the
referent of an embedded pointer is written after the construct that holds it, in the
order the pointers appear; the referents of a top-level parameter's pointers come right
after that parameter. :meth:`NdrWriter.unique` queues a referent; :meth:`NdrWriter.top`
opens a top-level scope that writes the queue (each referent in a scope of its own, so
nested pointers follow their own referent).

The reader is strict: every read is bounds-checked and raises :class:`NdrError`, a
:class:`~smbd.rpc.pdu.ParseError` answered with the fault nca_s_fault_ndr; conformant
varying strings must be well formed (offset 0, actual count within max count, a NUL
terminator where the IDL says ``[string]``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, TypeVar

from smbd.rpc.pdu import Fault, ParseError

__all__ = ["NdrError", "NdrReader", "NdrWriter"]

T = TypeVar("T")

_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_I32: Final = struct.Struct("<i")
_U64: Final = struct.Struct("<Q")
_CV_HEADER: Final = struct.Struct("<III")  # max_count offset actual_count
MAX_STRING_CHARS: Final = 0x8000  # far beyond any name an interface here takes


class NdrError(ParseError):
    """Stub data that does not decode: fault nca_s_fault_ndr; the association goes on."""

    def __init__(self, message: str) -> None:
        super().__init__(message, Fault.NCA_S_FAULT_NDR, disconnect=False)


class NdrWriter:
    """Builds one stub. Referent ids count up from 0x00020000 as Windows numbers them."""

    __slots__ = ("_buf", "_deferred", "_next_ref")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._deferred: list[Callable[[], None]] | None = None
        self._next_ref = 0x00020000

    def getvalue(self) -> bytes:
        if self._deferred:
            raise RuntimeError("referents still queued outside a top() scope")
        return bytes(self._buf)

    def align(self, n: int) -> None:
        self._buf += bytes(-len(self._buf) % n)

    def u16(self, v: int) -> None:
        self.align(2)
        self._buf += _U16.pack(v)

    def u32(self, v: int) -> None:
        self.align(4)
        self._buf += _U32.pack(v)

    def i32(self, v: int) -> None:
        self.align(4)
        self._buf += _I32.pack(v)

    def u64(self, v: int) -> None:
        self.align(8)
        self._buf += _U64.pack(v)

    def string(self, s: str) -> None:
        """A conformant varying UTF-16 string with its NUL ([string] wchar_t*)."""
        data = (s + "\0").encode("utf-16-le")
        n = len(data) // 2
        self.align(4)
        self._buf += _CV_HEADER.pack(n, 0, n)
        self._buf += data

    @contextmanager
    def top(self) -> Iterator[None]:
        """A top-level parameter: the referents its pointers queue are written at the end
        of the scope, each followed by its own referents."""
        outer, self._deferred = self._deferred, []
        try:
            yield
            while self._deferred:
                queue, self._deferred = self._deferred, []
                for write in queue:
                    with self.top():
                        write()
        finally:
            self._deferred = outer

    def unique(self, value: T | None, write: Callable[[T], None]) -> None:
        """A [unique] pointer: 0 for None, else a referent id now and the referent later."""
        if value is None:
            self.u32(0)
            return
        self.u32(self._next_ref)
        self._next_ref += 4
        if self._deferred is None:
            raise RuntimeError("unique() outside a top() scope")
        v = value
        self._deferred.append(lambda: write(v))

    def unique_string(self, s: str | None) -> None:
        self.unique(s, self.string)


class NdrReader:
    """Reads one stub; every read is bounds-checked."""

    __slots__ = ("_view", "pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self.pos = 0

    def _take(self, n: int) -> int:
        off = self.pos
        if off + n > len(self._view):
            raise NdrError(f"stub ends at {len(self._view)}, {n} bytes wanted at {off}")
        self.pos = off + n
        return off

    def align(self, n: int) -> None:
        self._take(-self.pos % n)

    def u16(self) -> int:
        self.align(2)
        return int(_U16.unpack_from(self._view, self._take(2))[0])

    def u32(self) -> int:
        self.align(4)
        return int(_U32.unpack_from(self._view, self._take(4))[0])

    def pointer(self) -> bool:
        """A [unique] pointer's referent id: True when a referent follows later."""
        return self.u32() != 0

    def string(self) -> str:
        """A conformant varying UTF-16 [string]."""
        self.align(4)
        max_count, offset, actual = _CV_HEADER.unpack_from(self._view, self._take(12))
        if offset != 0 or actual > max_count or actual == 0 or max_count > MAX_STRING_CHARS:
            raise NdrError(f"string max {max_count} offset {offset} actual {actual}")
        raw = self._view[self._take(2 * actual) :][: 2 * actual]
        if bytes(raw[-2:]) != b"\0\0":
            raise NdrError("string without its terminating NUL")
        try:
            return bytes(raw[:-2]).decode("utf-16-le")
        except UnicodeDecodeError as exc:
            raise NdrError("string is not UTF-16") from exc

    def unique_string(self) -> str | None:
        """A top-level ``[in, string, unique] wchar_t*``: referent id then the string."""
        return self.string() if self.pointer() else None

    def end(self) -> None:
        """Nothing may follow the last parameter but alignment padding to 8."""
        rest = len(self._view) - self.pos
        if rest >= 8 or any(self._view[self.pos :]):
            raise NdrError(f"{rest} bytes after the last parameter")
