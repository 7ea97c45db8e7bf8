"""NTOWFv1 (the NT hash): MD4 over the UTF-16LE password. [MS-NLMP] 3.3.1."""

from __future__ import annotations

import struct

_S = (3, 7, 11, 19, 3, 5, 9, 13, 3, 9, 11, 15)


def _rotl(x: int, n: int) -> int:
    x &= 0xFFFFFFFF
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def md4(data: bytes) -> bytes:
    """RFC 1320 MD4. OpenSSL 3 hides MD4 in its legacy provider, so it is done here."""
    msg = bytearray(data)
    bit_len = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    msg.append(0x80)
    msg.extend(b"\0" * ((56 - len(msg) % 64) % 64))
    msg.extend(struct.pack("<Q", bit_len))
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack_from("<16I", msg, off)
        aa, bb, cc, dd = a, b, c, d
        for i in range(16):  # round 1
            k = i
            f = (b & c) | (~b & d)
            a, b, c, d = d, _rotl(a + f + x[k], _S[i % 4]), b, c
        for i in range(16):  # round 2
            k = (i % 4) * 4 + i // 4
            g = (b & c) | (b & d) | (c & d)
            a, b, c, d = d, _rotl(a + g + x[k] + 0x5A827999, _S[4 + i % 4]), b, c
        for i in range(16):  # round 3
            k = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i]
            h = b ^ c ^ d
            a, b, c, d = d, _rotl(a + h + x[k] + 0x6ED9EBA1, _S[8 + i % 4]), b, c
        a = (a + aa) & 0xFFFFFFFF
        b = (b + bb) & 0xFFFFFFFF
        c = (c + cc) & 0xFFFFFFFF
        d = (d + dd) & 0xFFFFFFFF
    return struct.pack("<4I", a, b, c, d)


def nt_hash(password: str) -> bytes:
    return md4(password.encode("utf-16-le"))
