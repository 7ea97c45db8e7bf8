"""Text key=value pairs of Login and Text PDUs (RFC 7143 6.1 and 6.2).

A data segment is a sequence of ``key=value`` strings each ended by a NUL. Keys are at most
63 bytes; values at most 255 bytes for simple values and 8192 for lists and CHAP binary values
(RFC 7143 6.1). A key that appears twice in one negotiation is an error (6.2).
"""

from __future__ import annotations

from collections.abc import Iterable

from scsi.iscsi.errors import TextError

MAX_KEY = 63
MAX_VALUE = 8192
# Bound on a whole (possibly multi-PDU) text exchange, to bound memory per connection.
MAX_TEXT = 64 * 1024

_KEY_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-+@_")


def decode_pairs(
    data: bytes | bytearray | memoryview, *, unique: bool = True
) -> list[tuple[str, str]]:
    """Parse ``key=value\\0...`` into ordered pairs; raises :class:`TextError`.

    ``unique=False`` accepts repeated keys (SendTargets replies repeat TargetAddress).
    """
    raw = bytes(data)
    if len(raw) > MAX_TEXT:
        raise TextError("text too long")
    if not raw:
        return []
    if raw[-1] != 0:
        raise TextError("text does not end with NUL")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in raw[:-1].split(b"\0"):
        if not item:
            continue  # tolerate padding NULs between pairs
        key, sep, value = item.partition(b"=")
        if not sep:
            raise TextError(f"no '=' in {item[:40]!r}")
        if not key or len(key) > MAX_KEY or not set(key) <= _KEY_CHARS:
            raise TextError(f"bad key {key[:70]!r}")
        if len(value) > MAX_VALUE:
            raise TextError(f"value of {key!r} too long")
        try:
            k, v = key.decode("ascii"), value.decode("utf-8")
        except UnicodeDecodeError:
            raise TextError(f"value of {key!r} is not UTF-8") from None
        if unique and k in seen:
            raise TextError(f"key {k} repeated")
        seen.add(k)
        out.append((k, v))
    return out


def encode_pairs(pairs: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in pairs)
