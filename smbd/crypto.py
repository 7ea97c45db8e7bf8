"""SMB2/3 signing, key derivation and encryption. Pure functions and small objects, no I/O.

Sources: [MS-SMB2] 3.1.4.1 (signing), 3.1.4.2 (KDF), 3.1.4.3 (encryption), 3.3.5.5.3
(key derivation at SESSION_SETUP), 2.2.41 (SMB2 TRANSFORM_HEADER), 2.2.3.1.2 and
2.2.3.1.7 (cipher and signing algorithm ids); NIST SP800-108 (counter-mode KDF).

Everything here takes and returns bytes-like objects; the server core owns the buffers.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM
from cryptography.hazmat.primitives.cmac import CMAC

__all__ = [
    "AES_128_CCM",
    "AES_128_GCM",
    "AES_256_CCM",
    "AES_256_GCM",
    "AES_CMAC",
    "AES_GMAC",
    "HMAC_SHA256",
    "TRANSFORM_HEADER_SIZE",
    "CryptoError",
    "Encryptor",
    "SessionKeys",
    "TransformHeader",
    "decrypt",
    "derive_keys",
    "kdf",
    "parse_transform_header",
    "preauth_update",
    "sign",
    "sign_parts",
    "verify",
]

# [MS-SMB2] 2.2.3.1.2 SMB2_ENCRYPTION_CAPABILITIES cipher ids
AES_128_CCM = 1
AES_128_GCM = 2
AES_256_CCM = 3
AES_256_GCM = 4

# [MS-SMB2] 2.2.3.1.7 SMB2_SIGNING_CAPABILITIES algorithm ids
HMAC_SHA256 = 0
AES_CMAC = 1
AES_GMAC = 2

# Dialect revisions ([MS-SMB2] 2.2.3); kept local so this module depends on nothing.
_SMB2_0_2 = 0x0202
_SMB2_1 = 0x0210
_SMB3_0 = 0x0300
_SMB3_0_2 = 0x0302
_SMB3_1_1 = 0x0311

# SMB2 header offsets ([MS-SMB2] 2.2.1)
_HEADER_SIZE = 64
_SIG_OFFSET = 48
_SIG_END = 64
_ZERO_SIG = bytes(16)
_SIGN_JOIN_THRESHOLD = 16 * 1024
_SERVER_TO_REDIR = 0x00000001
_CANCEL = 0x000C
_GMAC_FIELDS = struct.Struct("<HxxIxxxxQ")  # from offset 12: Command, Flags@16, MessageId@24

# [MS-SMB2] 2.2.41 SMB2 TRANSFORM_HEADER
TRANSFORM_PROTOCOL_ID = b"\xfdSMB"
TRANSFORM_HEADER_SIZE = 52
_TRANSFORM = struct.Struct("<4s16s16sIHHQ")
_TRANSFORM_AAD_OFFSET = 20  # the AAD is the header from Nonce to the end
TRANSFORM_FLAG_ENCRYPTED = 0x0001  # 3.1.1 Flags; in 3.0/3.0.2 EncryptionAlgorithm AES-128-CCM
_TAG_SIZE = 16

# Above this size AES-GCM runs through the streaming interface: it writes the ciphertext
# once instead of sealing into a buffer that is then sliced (~3x faster at 8 MiB), while
# the one-shot AEAD is ~4 us cheaper per small message.
_GCM_STREAM_THRESHOLD = 16 * 1024

_CCM_CIPHERS = frozenset((AES_128_CCM, AES_256_CCM))
_GCM_CIPHERS = frozenset((AES_128_GCM, AES_256_GCM))
_KEY_SIZE = {AES_128_CCM: 16, AES_128_GCM: 16, AES_256_CCM: 32, AES_256_GCM: 32}
_NONCE_SIZE = {AES_128_CCM: 11, AES_256_CCM: 11, AES_128_GCM: 12, AES_256_GCM: 12}

# STATUS_ACCESS_DENIED: what Samba answers before it drops a connection whose encrypted
# message does not decrypt ([MS-SMB2] 3.3.5.2.1.1 says disconnect).
_STATUS_ACCESS_DENIED = 0xC0000022


class CryptoError(Exception):
    """A message failed a cryptographic check or is malformed for one.

    ``status`` is the NTSTATUS to log or answer with; [MS-SMB2] 3.3.5.2.1.1 requires the
    server to disconnect when decryption fails, so ``disconnect`` is True by default.
    """

    def __init__(
        self, message: str, status: int = _STATUS_ACCESS_DENIED, *, disconnect: bool = True
    ) -> None:
        super().__init__(message)
        self.status = status
        self.disconnect = disconnect


# --------------------------------------------------------------------------------------
# Key derivation


def kdf(ki: bytes, label: bytes, context: bytes, length_bits: int) -> bytes:
    """NIST SP800-108 KDF in counter mode, PRF HMAC-SHA256, r = 32 ([MS-SMB2] 3.1.4.2).

    ``label`` and ``context`` are passed as the spec writes them, trailing NUL included;
    the separator byte 0x00 between them is added here.
    """
    if length_bits <= 0 or length_bits % 8:
        raise ValueError("length_bits must be a positive multiple of 8")
    tail = b"\x00" + context + struct.pack(">I", length_bits)
    out = bytearray()
    counter = 1
    while len(out) * 8 < length_bits:
        out += hmac.digest(ki, struct.pack(">I", counter) + label + tail, "sha256")
        counter += 1
    return bytes(out[: length_bits // 8])


def preauth_update(previous: bytes, message: bytes | memoryview) -> bytes:
    """One step of the 3.1.1 pre-authentication integrity hash ([MS-SMB2] 3.2.5.2, 3.3.5.4):
    SHA-512(previous || message). Start from 64 zero bytes."""
    h = hashlib.sha512(previous)
    h.update(message)
    return h.digest()


@dataclass(frozen=True)
class SessionKeys:
    """The keys of one session ([MS-SMB2] 3.3.5.5.3), named from the server's side.

    ``encryption`` protects server->client messages, ``decryption`` client->server ones.
    Both are empty when the dialect has no encryption (2.0.2, 2.1).
    """

    signing: bytes
    encryption: bytes
    decryption: bytes
    application: bytes

    def __repr__(self) -> str:  # keys never reach a log by accident
        return "SessionKeys(<redacted>)"


_LABELS_30 = (
    (b"SMB2AESCMAC\x00", b"SmbSign\x00"),
    (b"SMB2AESCCM\x00", b"ServerOut\x00"),
    (b"SMB2AESCCM\x00", b"ServerIn \x00"),
    (b"SMB2APP\x00", b"SmbRpc\x00"),
)
_LABELS_311 = (
    b"SMBSigningKey\x00",
    b"SMBS2CCipherKey\x00",
    b"SMBC2SCipherKey\x00",
    b"SMBAppKey\x00",
)


def derive_keys(
    session_key: bytes, dialect: int, preauth_hash: bytes | None, cipher: int
) -> SessionKeys:
    """Derive a session's keys from the authentication's session key.

    2.0.2/2.1: signing (HMAC-SHA256) and application keys are the session key itself.
    3.0/3.0.2: the fixed labels; the cipher is AES-128-CCM whatever ``cipher`` says.
    3.1.1: labels with the pre-authentication hash as context; AES-256 ciphers get 32-byte
    cipher keys derived from the full session key. ``cipher`` 0 (none) gives 16-byte keys.
    """
    key16 = session_key[:16].ljust(16, b"\x00")
    if dialect in (_SMB2_0_2, _SMB2_1):
        return SessionKeys(signing=key16, encryption=b"", decryption=b"", application=key16)
    if dialect in (_SMB3_0, _SMB3_0_2):
        (sl, sc), (el, ec), (dl, dc), (al, ac) = _LABELS_30
        return SessionKeys(
            signing=kdf(key16, sl, sc, 128),
            encryption=kdf(key16, el, ec, 128),
            decryption=kdf(key16, dl, dc, 128),
            application=kdf(key16, al, ac, 128),
        )
    if dialect == _SMB3_1_1:
        if preauth_hash is None or len(preauth_hash) != 64:
            raise ValueError("3.1.1 key derivation needs the 64-byte pre-auth hash")
        sl, el, dl, al = _LABELS_311
        if cipher in (AES_256_CCM, AES_256_GCM):
            cipher_ki, bits = session_key, 256
        else:
            cipher_ki, bits = key16, 128
        return SessionKeys(
            signing=kdf(key16, sl, preauth_hash, 128),
            encryption=kdf(cipher_ki, el, preauth_hash, bits),
            decryption=kdf(cipher_ki, dl, preauth_hash, bits),
            application=kdf(key16, al, preauth_hash, 128),
        )
    raise ValueError(f"unknown dialect 0x{dialect:04x}")


# --------------------------------------------------------------------------------------
# Signing


def _zeroed(parts: Sequence[bytes | bytearray | memoryview]) -> Iterator[bytes | memoryview]:
    """The message bytes with the Signature field (offsets 48..63) read as zeros."""
    pos = 0
    for part in parts:
        view = memoryview(part).cast("B")
        n = len(view)
        end = pos + n
        if end <= _SIG_OFFSET or pos >= _SIG_END:
            yield view
        else:
            lo = max(_SIG_OFFSET - pos, 0)
            hi = min(_SIG_END - pos, n)
            if lo:
                yield view[:lo]
            yield _ZERO_SIG[: hi - lo]
            if hi < n:
                yield view[hi:]
        pos = end


def _header_bytes(parts: Sequence[bytes | bytearray | memoryview]) -> bytes:
    """The first 64 bytes of the message (parts may split the header)."""
    first = parts[0] if parts else b""
    if len(first) >= _HEADER_SIZE:
        return bytes(memoryview(first)[:_HEADER_SIZE])
    return b"".join(bytes(p) for p in parts)[:_HEADER_SIZE]


def _gmac_nonce(header: bytes | bytearray | memoryview) -> bytes:
    command, flags, message_id = _GMAC_FIELDS.unpack_from(header, 12)
    role = 1 if flags & _SERVER_TO_REDIR else 0
    cancel = 2 if command == _CANCEL else 0
    return struct.pack("<QI", message_id, role | cancel)


def sign_parts(
    algorithm: int,
    key: bytes,
    parts: Sequence[bytes | bytearray | memoryview],
    *,
    zeroed: bool = False,
) -> bytes:
    """The 16-byte signature of one SMB2 message given as parts, header first
    ([MS-SMB2] 3.1.4.1). The Signature field is taken as zero; no buffer is modified.
    ``zeroed``: the caller built the message with a zero Signature field (a response
    being signed), so the parts are signed as they are."""
    total = 0
    for p in parts:
        total += len(p)
    if total < _HEADER_SIZE:
        raise CryptoError("message shorter than an SMB2 header")
    if total <= _SIGN_JOIN_THRESHOLD:
        # Small messages: one contiguous copy, then one-shot primitives (2-4x cheaper
        # than feeding the pieces to incremental contexts).
        if zeroed:
            data = parts[0] if len(parts) == 1 else b"".join(parts)
        elif len(parts) == 1:
            m = parts[0]
            data = b"".join((m[:_SIG_OFFSET], _ZERO_SIG, m[_SIG_END:]))
        else:
            data = b"".join(_zeroed(parts))
        if algorithm == AES_GMAC:
            return _gmac(key).encrypt(_gmac_nonce(data), b"", data)
        if algorithm == HMAC_SHA256:
            return hmac.digest(key, data, "sha256")[:16]
        if algorithm == AES_CMAC:
            c = CMAC(algorithms.AES(key))
            c.update(data)  # type: ignore[arg-type]  # the stub says bytes; any buffer works
            return c.finalize()
    else:
        if algorithm == AES_GMAC and zeroed and len(parts) == 1:
            # one contiguous message (a response laid out in one buffer): one call
            return _gmac(key).encrypt(_gmac_nonce(parts[0]), b"", parts[0])
        chunks = parts if zeroed else _zeroed(parts)
        if algorithm == AES_GMAC:
            nonce = _gmac_nonce(_header_bytes(parts))
            enc = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
            for chunk in chunks:
                enc.authenticate_additional_data(chunk)
            enc.finalize()
            return enc.tag
        if algorithm == HMAC_SHA256:
            h = crypto_hmac.HMAC(key, hashes.SHA256())
            for chunk in chunks:
                h.update(chunk)
            return h.finalize()[:16]
        if algorithm == AES_CMAC:
            c = CMAC(algorithms.AES(key))
            for chunk in chunks:
                c.update(chunk)  # type: ignore[arg-type]  # the stub says bytes; any buffer works
            return c.finalize()
    raise ValueError(f"unknown signing algorithm {algorithm}")


_GMAC_CACHE: dict[bytes, AESGCM] = {}
_GMAC_CACHE_MAX = 256


def _gmac(key: bytes) -> AESGCM:
    """An AESGCM context for a signing key (its key schedule made once per key, not per
    message); a few hundred sessions' worth are kept, then the cache starts afresh."""
    ctx = _GMAC_CACHE.get(key)
    if ctx is None:
        if len(_GMAC_CACHE) >= _GMAC_CACHE_MAX:
            _GMAC_CACHE.clear()
        ctx = _GMAC_CACHE[key] = AESGCM(key)
    return ctx


def sign(algorithm: int, key: bytes, message: bytes | bytearray | memoryview) -> bytes:
    """The 16-byte signature of one whole SMB2 message (header + body)."""
    return sign_parts(algorithm, key, (message,))


def verify(algorithm: int, key: bytes, message: bytes | bytearray | memoryview) -> bool:
    """True if the message's Signature field is right. Constant-time comparison."""
    if len(message) < _HEADER_SIZE:
        return False
    view = memoryview(message).cast("B")
    got = bytes(view[_SIG_OFFSET:_SIG_END])
    if algorithm == AES_GMAC and len(view) > _SIGN_JOIN_THRESHOLD and not view.readonly:
        # A large message in a writable buffer (a WRITE's, received into a buffer of its
        # own): its Signature field is zeroed in place for one call over the whole
        # message, then put back; no copy and no incremental cipher context.
        nonce = _gmac_nonce(view[:_HEADER_SIZE])
        view[_SIG_OFFSET:_SIG_END] = _ZERO_SIG
        try:
            expected = _gmac(key).encrypt(nonce, b"", view)
        finally:
            view[_SIG_OFFSET:_SIG_END] = got
        return hmac.compare_digest(expected, got)
    expected = sign_parts(algorithm, key, (view,))
    return hmac.compare_digest(expected, got)


# --------------------------------------------------------------------------------------
# Encryption


class TransformHeader(NamedTuple):
    """[MS-SMB2] 2.2.41 SMB2 TRANSFORM_HEADER. ``nonce`` is the whole 16-byte field."""

    signature: bytes
    nonce: bytes
    original_size: int
    flags: int
    session_id: int


def parse_transform_header(message: memoryview | bytes) -> TransformHeader:
    """Parse the 52-byte transform header at the start of ``message``. Raises CryptoError."""
    if len(message) < TRANSFORM_HEADER_SIZE:
        raise CryptoError("short transform header")
    proto, signature, nonce, size, _reserved, flags, session_id = _TRANSFORM.unpack_from(message, 0)
    if proto != TRANSFORM_PROTOCOL_ID:
        raise CryptoError("not a transform header")
    return TransformHeader(signature, nonce, size, flags, session_id)


def _aead(cipher: int, key: bytes) -> AESCCM | AESGCM:
    size = _KEY_SIZE.get(cipher)
    if size is None:
        raise ValueError(f"unknown cipher {cipher}")
    if len(key) != size:
        raise ValueError(f"cipher {cipher} needs a {size}-byte key, got {len(key)}")
    return AESCCM(key, tag_length=_TAG_SIZE) if cipher in _CCM_CIPHERS else AESGCM(key)


class Encryptor:
    """Encrypts the messages of one session in one direction ([MS-SMB2] 3.1.4.3).

    Nonces never repeat under a key: the nonce is an 88-bit (CCM) or 96-bit (GCM) counter
    that starts at a random value from ``rng``, so two Encryptors that ever share a key
    (say, rebuilt after a re-authentication) walk disjoint ranges with overwhelming
    probability. After ``max_messages`` messages (2**64 by default) ``encrypt`` raises
    CryptoError: the caller must drop the session rather than reuse a nonce.
    """

    __slots__ = ("_aead", "_count", "_key", "_limit", "_mask", "_next", "_nonce_size", "cipher")

    def __init__(
        self,
        cipher: int,
        key: bytes,
        rng: Callable[[int], bytes],
        *,
        max_messages: int = 1 << 64,
    ) -> None:
        self._aead = _aead(cipher, key)
        self._key = key
        self.cipher = cipher
        self._nonce_size = _NONCE_SIZE[cipher]
        start = rng(self._nonce_size)
        if len(start) != self._nonce_size:
            raise ValueError("rng returned the wrong number of bytes")
        self._mask = (1 << (8 * self._nonce_size)) - 1
        self._next = int.from_bytes(start, "little")
        self._count = 0
        self._limit = max_messages

    def statistics(self) -> dict[str, int]:
        return {"messages": self._count, "remaining": self._limit - self._count}

    def _take_nonce(self) -> bytes:
        if self._count >= self._limit:
            raise CryptoError("encryption nonces exhausted for this session key")
        self._count += 1
        value = self._next
        self._next = (value + 1) & self._mask
        return value.to_bytes(self._nonce_size, "little")

    def encrypt(
        self,
        session_id: int,
        plaintext_parts: Sequence[bytes | bytearray | memoryview],
        out: memoryview | None = None,
    ) -> list[bytes | memoryview]:
        """Encrypt one message (or compound chain) given as parts. Returns
        ``[transform_header, ciphertext]``, 52 bytes then len(plaintext) bytes.

        ``out``: a writable buffer of at least len(plaintext) + 15 bytes; with an AES-GCM
        cipher and a large message the ciphertext is written there part by part (no
        joined copy of the plaintext) and returned as a view of it."""
        size = sum(len(p) for p in plaintext_parts)
        if size == 0 or size > 0xFFFFFFFF:
            raise ValueError("plaintext size out of range")
        nonce = self._take_nonce()
        aad = struct.pack("<16sIHHQ", nonce, size, 0, TRANSFORM_FLAG_ENCRYPTED, session_id)
        if size >= _GCM_STREAM_THRESHOLD and self.cipher in _GCM_CIPHERS:
            enc = Cipher(algorithms.AES(self._key), modes.GCM(nonce)).encryptor()
            enc.authenticate_additional_data(aad)
            if out is None or len(out) < size + 15:
                out = memoryview(bytearray(size + 15))
            pos = 0
            for part in plaintext_parts:
                if len(part):
                    # update_into wants room for a block beyond the data it is given
                    pos += enc.update_into(part, out[pos:])
            enc.finalize()
            return [TRANSFORM_PROTOCOL_ID + enc.tag + aad, out[:size]]
        if len(plaintext_parts) == 1:
            plaintext: bytes | bytearray | memoryview = plaintext_parts[0]
        else:
            plaintext = b"".join(plaintext_parts)
        sealed = self._aead.encrypt(nonce, plaintext, aad)
        return [TRANSFORM_PROTOCOL_ID + sealed[size:] + aad, sealed[:size]]


def decrypt(
    cipher: int, key: bytes, message: memoryview | bytes, out: memoryview | None = None
) -> tuple[int, bytes | memoryview]:
    """Decrypt one transformed message (starting at 0xFD 'SMB').

    Returns (SessionId, plaintext). Raises CryptoError for a short or malformed header,
    a size that disagrees with OriginalMessageSize, an unknown Flags value, or a bad tag.
    ``out``: a writable buffer of at least the plaintext size + 15 bytes; a large AES-GCM
    message is decrypted into it and the plaintext returned as a view of it.
    """
    aead = _aead(cipher, key)
    view = memoryview(message).cast("B")
    hdr = parse_transform_header(view)
    size = len(view) - TRANSFORM_HEADER_SIZE
    if hdr.original_size != size or size == 0:
        raise CryptoError(
            f"OriginalMessageSize {hdr.original_size} disagrees with {size} bytes received"
        )
    if hdr.flags != TRANSFORM_FLAG_ENCRYPTED:
        raise CryptoError(f"transform header flags 0x{hdr.flags:04x}")
    nonce = hdr.nonce[: _NONCE_SIZE[cipher]]
    aad = view[_TRANSFORM_AAD_OFFSET:TRANSFORM_HEADER_SIZE]
    try:
        if size >= _GCM_STREAM_THRESHOLD and cipher in _GCM_CIPHERS:
            dec = Cipher(algorithms.AES(key), modes.GCM(nonce, hdr.signature)).decryptor()
            dec.authenticate_additional_data(aad)
            plaintext: bytes | memoryview
            if out is not None and len(out) >= size + 15:
                n = dec.update_into(view[TRANSFORM_HEADER_SIZE:], out)
                plaintext = out[:n]
            else:
                plaintext = dec.update(view[TRANSFORM_HEADER_SIZE:])
            dec.finalize()
        else:
            sealed = b"".join((view[TRANSFORM_HEADER_SIZE:], hdr.signature))
            plaintext = aead.decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise CryptoError("encrypted message failed authentication") from None
    return hdr.session_id, plaintext
