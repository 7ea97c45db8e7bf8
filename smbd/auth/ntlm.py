"""NTLM wire format and NTLMv2 cryptography for the server side ([MS-NLMP]).

Pure and bounds-checked: every field offset and length is checked against the message, and
malformed input raises NtlmError, nothing else. The acceptor's policy (which users, which
timestamps, anonymous and guest) lives in smbd.auth.server.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections.abc import Iterable
from typing import NamedTuple

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE_MESSAGE = 1
CHALLENGE_MESSAGE = 2
AUTHENTICATE_MESSAGE = 3

_STATUS_INVALID_PARAMETER = 0xC000000D


class NtlmError(Exception):
    """A malformed NTLM message. ``status`` is the NTSTATUS the exchange fails with."""

    def __init__(self, message: str, status: int = _STATUS_INVALID_PARAMETER) -> None:
        super().__init__(message)
        self.status = status


class Flag(enum.IntFlag):
    """[MS-NLMP] 2.2.2.5 NEGOTIATE flags."""

    UNICODE = 0x00000001
    OEM = 0x00000002
    REQUEST_TARGET = 0x00000004
    SIGN = 0x00000010
    SEAL = 0x00000020
    DATAGRAM = 0x00000040
    LM_KEY = 0x00000080
    NTLM = 0x00000200
    ANONYMOUS = 0x00000800
    OEM_DOMAIN_SUPPLIED = 0x00001000
    OEM_WORKSTATION_SUPPLIED = 0x00002000
    ALWAYS_SIGN = 0x00008000
    TARGET_TYPE_DOMAIN = 0x00010000
    TARGET_TYPE_SERVER = 0x00020000
    EXTENDED_SESSIONSECURITY = 0x00080000
    IDENTIFY = 0x00100000
    NON_NT_SESSION_KEY = 0x00400000
    TARGET_INFO = 0x00800000
    VERSION = 0x02000000
    KEY_128 = 0x20000000
    KEY_EXCH = 0x40000000
    KEY_56 = 0x80000000


class AvId(enum.IntEnum):
    """[MS-NLMP] 2.2.2.1 AV_PAIR ids."""

    EOL = 0
    NB_COMPUTER_NAME = 1
    NB_DOMAIN_NAME = 2
    DNS_COMPUTER_NAME = 3
    DNS_DOMAIN_NAME = 4
    DNS_TREE_NAME = 5
    FLAGS = 6
    TIMESTAMP = 7
    SINGLE_HOST = 8
    TARGET_NAME = 9
    CHANNEL_BINDINGS = 10


AV_FLAG_MIC_PRESENT = 0x00000002  # MsvAvFlags bit: the AUTHENTICATE message carries a MIC

_HEADER = struct.Struct("<8sI")
_FIELD = struct.Struct("<HHI")  # Len, MaxLen, BufferOffset
_AV_HEADER = struct.Struct("<HH")
_NEGOTIATE = struct.Struct("<8sII")  # Signature, MessageType, NegotiateFlags
_CHALLENGE = struct.Struct("<8sIHHII8s8xHHI8s")
_AUTHENTICATE_FIXED = 64
_MIC_OFFSET = 72  # after the 8-byte Version
_MIC_END = 88
_CLIENT_CHALLENGE = struct.Struct("<BB6xQ8s4x")  # [MS-NLMP] 2.2.2.7 NTLMv2_CLIENT_CHALLENGE

# A Windows-style version block ([MS-NLMP] 2.2.2.10): 10.0, build 0, NTLMSSP revision 15.
SERVER_VERSION = struct.pack("<BBH3xB", 10, 0, 0, 15)

# FILETIME (100 ns since 1601-01-01) <-> Unix seconds
_FILETIME_UNIX_EPOCH = 116444736000000000


def filetime_from_unix(seconds: float) -> int:
    return int(seconds * 10_000_000) + _FILETIME_UNIX_EPOCH


def unix_from_filetime(filetime: int) -> float:
    return (filetime - _FILETIME_UNIX_EPOCH) / 10_000_000


# --------------------------------------------------------------------------------------
# Messages


class NegotiateMessage(NamedTuple):
    """[MS-NLMP] 2.2.1.1 NEGOTIATE_MESSAGE (the supplied domain/workstation are ignored)."""

    flags: int
    raw: bytes


class AuthenticateMessage(NamedTuple):
    """[MS-NLMP] 2.2.1.3 AUTHENTICATE_MESSAGE. ``mic`` is None when there is no MIC slot."""

    flags: int
    lm_response: bytes
    nt_response: bytes
    domain: str
    user: str
    workstation: str
    encrypted_session_key: bytes
    mic: bytes | None
    raw: bytes


def message_type(buf: bytes) -> int:
    """The MessageType of an NTLMSSP message; NtlmError if it is not one."""
    if len(buf) < _HEADER.size:
        raise NtlmError("short NTLMSSP message")
    signature, kind = _HEADER.unpack_from(buf, 0)
    if signature != SIGNATURE:
        raise NtlmError("not an NTLMSSP message")
    return int(kind)


def parse_negotiate(buf: bytes) -> NegotiateMessage:
    if message_type(buf) != NEGOTIATE_MESSAGE:
        raise NtlmError("expected an NTLM NEGOTIATE_MESSAGE")
    if len(buf) < _NEGOTIATE.size:
        raise NtlmError("short NEGOTIATE_MESSAGE")
    _sig, _kind, flags = _NEGOTIATE.unpack_from(buf, 0)
    return NegotiateMessage(flags, bytes(buf))


def _field(buf: bytes, offset: int, fixed: int) -> tuple[int, int]:
    """A (Len, MaxLen, BufferOffset) field: returns (start, stop), checked against ``buf``."""
    length, _max, start = _FIELD.unpack_from(buf, offset)
    if length == 0:
        return 0, 0
    if start < fixed or start + length > len(buf):
        raise NtlmError(f"field at {offset} points outside the message")
    return start, start + length


def _text(raw: bytes, unicode: bool) -> str:
    try:
        return raw.decode("utf-16-le") if unicode else raw.decode("cp1252")
    except UnicodeDecodeError:
        raise NtlmError("undecodable name in AUTHENTICATE_MESSAGE") from None


def parse_authenticate(buf: bytes) -> AuthenticateMessage:
    if message_type(buf) != AUTHENTICATE_MESSAGE:
        raise NtlmError("expected an NTLM AUTHENTICATE_MESSAGE")
    if len(buf) < _AUTHENTICATE_FIXED:
        raise NtlmError("short AUTHENTICATE_MESSAGE")
    spans = [_field(buf, off, _AUTHENTICATE_FIXED) for off in (12, 20, 28, 36, 44, 52)]
    (flags,) = struct.unpack_from("<I", buf, 60)
    unicode = bool(flags & Flag.UNICODE)
    starts = [start for start, stop in spans if stop > start]
    payload_start = min(starts) if starts else len(buf)
    # The MIC sits after the Version block when the payload leaves room for both
    # ([MS-NLMP] 2.2.1.3); no client puts a MIC anywhere else.
    mic = bytes(buf[_MIC_OFFSET:_MIC_END]) if payload_start >= _MIC_END else None
    lm, nt, dom, usr, ws, key = (bytes(buf[a:b]) for a, b in spans)
    return AuthenticateMessage(
        flags=flags,
        lm_response=lm,
        nt_response=nt,
        domain=_text(dom, unicode),
        user=_text(usr, unicode),
        workstation=_text(ws, unicode),
        encrypted_session_key=key,
        mic=mic,
        raw=bytes(buf),
    )


def build_challenge(
    flags: int, server_challenge: bytes, target_name: str, target_info: bytes
) -> bytes:
    """[MS-NLMP] 2.2.1.2 CHALLENGE_MESSAGE with the Version block always present."""
    if len(server_challenge) != 8:
        raise ValueError("the server challenge is 8 bytes")
    name = target_name.encode("utf-16-le" if flags & Flag.UNICODE else "cp1252")
    name_offset = _CHALLENGE.size
    info_offset = name_offset + len(name)
    version = SERVER_VERSION if flags & Flag.VERSION else bytes(8)
    header = _CHALLENGE.pack(
        SIGNATURE,
        CHALLENGE_MESSAGE,
        len(name),
        len(name),
        name_offset,
        flags,
        server_challenge,
        len(target_info),
        len(target_info),
        info_offset,
        version,
    )
    return header + name + target_info


# --------------------------------------------------------------------------------------
# AV pairs ([MS-NLMP] 2.2.2.1)


def build_av_pairs(pairs: Iterable[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for av_id, value in pairs:
        out += _AV_HEADER.pack(av_id, len(value)) + value
    out += _AV_HEADER.pack(AvId.EOL, 0)
    return bytes(out)


def parse_av_pairs(buf: bytes) -> dict[int, bytes]:
    """AV pairs up to MsvAvEOL (bytes after it are ignored). First occurrence wins."""
    pairs: dict[int, bytes] = {}
    pos = 0
    while True:
        if pos + _AV_HEADER.size > len(buf):
            raise NtlmError("AV pair list without MsvAvEOL")
        av_id, length = _AV_HEADER.unpack_from(buf, pos)
        pos += _AV_HEADER.size
        if av_id == AvId.EOL:
            return pairs
        if pos + length > len(buf):
            raise NtlmError("AV pair runs past the end")
        pairs.setdefault(av_id, bytes(buf[pos : pos + length]))
        pos += length


class ClientChallenge(NamedTuple):
    """[MS-NLMP] 2.2.2.7 NTLMv2_CLIENT_CHALLENGE, the part of an NTLMv2 response after
    NTProofStr."""

    timestamp: int  # FILETIME
    challenge_from_client: bytes
    av_pairs: dict[int, bytes]


def parse_client_challenge(blob: bytes) -> ClientChallenge:
    if len(blob) < _CLIENT_CHALLENGE.size:
        raise NtlmError("short NTLMv2 client challenge")
    resp_type, hi_resp_type, timestamp, client_challenge = _CLIENT_CHALLENGE.unpack_from(blob, 0)
    if resp_type != 1 or hi_resp_type != 1:
        raise NtlmError("unknown NTLMv2 client challenge version")
    pairs = parse_av_pairs(blob[_CLIENT_CHALLENGE.size :])
    return ClientChallenge(timestamp, client_challenge, pairs)


# --------------------------------------------------------------------------------------
# NTLMv2 ([MS-NLMP] 3.3.2) and session security ([MS-NLMP] 3.4)


def hmac_md5(key: bytes, *parts: bytes) -> bytes:
    h = hmac.new(key, digestmod=hashlib.md5)
    for part in parts:
        h.update(part)
    return h.digest()


def ntowfv2(nt_hash: bytes, user: str, domain: str, *, windows_upcase: bool = False) -> bytes:
    """NTOWFv2 = HMAC_MD5(NT hash, UNICODE(Uppercase(User) || UserDom)).

    Python's ``str.upper`` may lengthen a name ("ß" -> "SS"); Windows' RtlUpcaseUnicodeString
    maps one UTF-16 unit to one. ``windows_upcase`` keeps characters whose upper case is
    not a single character, as Windows clients do.
    """
    if windows_upcase:
        upper = "".join(u if len(u := c.upper()) == 1 else c for c in user)
    else:
        upper = user.upper()
    return hmac_md5(nt_hash, (upper + domain).encode("utf-16-le"))


def nt_proof_str(response_key: bytes, server_challenge: bytes, blob: bytes) -> bytes:
    return hmac_md5(response_key, server_challenge, blob)


def session_base_key(response_key: bytes, proof: bytes) -> bytes:
    return hmac_md5(response_key, proof)


def arc4(key: bytes, data: bytes) -> bytes:
    """RC4 (ARC4). OpenSSL 3 keeps it in the legacy provider, so it is done here; it only
    ever touches 16-byte keys and 8-byte checksums."""
    return Arc4(key).update(data)


class Arc4:
    """An RC4 keystream that keeps its state across calls ([MS-NLMP] 3.4: the sealing
    "handle")."""

    __slots__ = ("_i", "_j", "_s")

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("RC4 key must not be empty")
        s = list(range(256))
        j = 0
        for i in range(256):
            j = (j + s[i] + key[i % len(key)]) & 0xFF
            s[i], s[j] = s[j], s[i]
        self._s = s
        self._i = 0
        self._j = 0

    def update(self, data: bytes) -> bytes:
        s, i, j = self._s, self._i, self._j
        out = bytearray(len(data))
        for n, byte in enumerate(data):
            i = (i + 1) & 0xFF
            j = (j + s[i]) & 0xFF
            s[i], s[j] = s[j], s[i]
            out[n] = byte ^ s[(s[i] + s[j]) & 0xFF]
        self._i, self._j = i, j
        return bytes(out)


_C2S_SIGN = b"session key to client-to-server signing key magic constant\x00"
_S2C_SIGN = b"session key to server-to-client signing key magic constant\x00"
_C2S_SEAL = b"session key to client-to-server sealing key magic constant\x00"
_S2C_SEAL = b"session key to server-to-client sealing key magic constant\x00"


def sign_key(exported_session_key: bytes, client_to_server: bool) -> bytes:
    """SIGNKEY with extended session security ([MS-NLMP] 3.4.5.2)."""
    return hashlib.md5(
        exported_session_key + (_C2S_SIGN if client_to_server else _S2C_SIGN)
    ).digest()


def seal_key(flags: int, exported_session_key: bytes, client_to_server: bool) -> bytes:
    """SEALKEY with extended session security ([MS-NLMP] 3.4.5.3)."""
    if flags & Flag.KEY_128:
        key = exported_session_key
    elif flags & Flag.KEY_56:
        key = exported_session_key[:7]
    else:
        key = exported_session_key[:5]
    return hashlib.md5(key + (_C2S_SEAL if client_to_server else _S2C_SEAL)).digest()


def mic_signature(
    flags: int, exported_session_key: bytes, client_to_server: bool, seq_num: int, message: bytes
) -> bytes:
    """GSS_GetMIC with extended session security ([MS-NLMP] 3.4.4.2), for a fresh sealing
    handle: the SPNEGO mechListMIC is the first thing signed in each direction."""
    seq = struct.pack("<I", seq_num)
    checksum = hmac_md5(sign_key(exported_session_key, client_to_server), seq, message)[:8]
    if flags & Flag.KEY_EXCH:
        checksum = arc4(seal_key(flags, exported_session_key, client_to_server), checksum)
    return struct.pack("<I", 1) + checksum + seq


def authenticate_mic(
    exported_session_key: bytes, negotiate: bytes, challenge: bytes, authenticate: bytes
) -> bytes:
    """The AUTHENTICATE_MESSAGE MIC ([MS-NLMP] 3.1.5.1.2): HMAC_MD5 over the three messages,
    the MIC field taken as zero."""
    zeroed = authenticate[:_MIC_OFFSET] + bytes(16) + authenticate[_MIC_END:]
    return hmac_md5(exported_session_key, negotiate, challenge, zeroed)
