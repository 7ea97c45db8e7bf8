"""SPNEGO tokens for the acceptor ([RFC 4178], [MS-SPNG]), with a small strict DER codec.

Only what an SMB server offering NTLM needs: read the initiator's NegTokenInit (inside the
GSS-API InitialContextToken) and NegTokenResp, and write NegTokenInit2 (the NEGOTIATE
response hint) and NegTokenResp. Every length is checked against its enclosing element;
malformed input raises SpnegoError, nothing else.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

_STATUS_INVALID_PARAMETER = 0xC000000D

# OIDs as DER content octets
OID_SPNEGO = bytes.fromhex("2b0601050502")  # 1.3.6.1.5.5.2
OID_NTLMSSP = bytes.fromhex("2b06010401823702020a")  # 1.3.6.1.4.1.311.2.2.10

# [MS-SPNG] 3.2.5.2: the negHints name Windows and Samba send
HINT_NAME = b"not_defined_in_RFC4178@please_ignore"

_MAX_LENGTH_OCTETS = 4

# DER tags
_SEQUENCE = 0x30
_OID = 0x06
_OCTET_STRING = 0x04
_ENUMERATED = 0x0A
_BIT_STRING = 0x03
_GENERAL_STRING = 0x1B
_APPLICATION_0 = 0x60
_CTX = [0xA0 + n for n in range(5)]


class SpnegoError(Exception):
    def __init__(self, message: str, status: int = _STATUS_INVALID_PARAMETER) -> None:
        super().__init__(message)
        self.status = status


class NegState(enum.IntEnum):
    ACCEPT_COMPLETED = 0
    ACCEPT_INCOMPLETE = 1
    REJECT = 2
    REQUEST_MIC = 3


class NegTokenInit(NamedTuple):
    """RFC 4178 4.2.1. ``mech_types_der`` is the exact DER of MechTypeList, which the
    mechListMIC covers."""

    mech_types: tuple[bytes, ...]
    mech_types_der: bytes
    mech_token: bytes | None
    mech_list_mic: bytes | None


class NegTokenResp(NamedTuple):
    """RFC 4178 4.2.2."""

    neg_state: int | None
    supported_mech: bytes | None
    response_token: bytes | None
    mech_list_mic: bytes | None


# --------------------------------------------------------------------------------------
# DER


class _Tlv(NamedTuple):
    tag: int
    start: int  # first content octet
    stop: int  # one past the last content octet
    header_start: int


def _read(buf: bytes, pos: int, end: int) -> _Tlv:
    if pos + 2 > end:
        raise SpnegoError("truncated DER element")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise SpnegoError("multi-byte DER tags are not used by SPNEGO")
    first = buf[pos + 1]
    p = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > _MAX_LENGTH_OCTETS:
            raise SpnegoError("indefinite or oversized DER length")
        if p + count > end:
            raise SpnegoError("truncated DER length")
        length = int.from_bytes(buf[p : p + count], "big")
        p += count
    if p + length > end:
        raise SpnegoError("DER element runs past its container")
    return _Tlv(tag, p, p + length, pos)


def _children(buf: bytes, tlv: _Tlv) -> list[_Tlv]:
    out = []
    pos = tlv.start
    while pos < tlv.stop:
        child = _read(buf, pos, tlv.stop)
        out.append(child)
        pos = child.stop
    return out


def _expect(buf: bytes, tlv: _Tlv, tag: int) -> _Tlv:
    """The single element of type ``tag`` inside the explicit tag ``tlv``."""
    inner = _read(buf, tlv.start, tlv.stop)
    if inner.tag != tag or inner.stop != tlv.stop:
        raise SpnegoError(f"expected DER tag 0x{tag:02x}")
    return inner


def _tagged_fields(buf: bytes, seq: _Tlv, allowed: int) -> dict[int, _Tlv]:
    """The context-tagged fields [0]..[allowed-1] of a SEQUENCE, each at most once, in order."""
    if seq.tag != _SEQUENCE:
        raise SpnegoError("expected a SEQUENCE")
    fields: dict[int, _Tlv] = {}
    last = -1
    for child in _children(buf, seq):
        number = child.tag - 0xA0
        if not 0 <= number < allowed or number <= last:
            raise SpnegoError(f"unexpected field tag 0x{child.tag:02x}")
        fields[number] = child
        last = number
    return fields


def _octets(buf: bytes, field: _Tlv | None) -> bytes | None:
    if field is None:
        return None
    inner = _expect(buf, field, _OCTET_STRING)
    return bytes(buf[inner.start : inner.stop])


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


# --------------------------------------------------------------------------------------
# Tokens


def parse_token(token: bytes) -> NegTokenInit | NegTokenResp:
    """Parse an initiator's SPNEGO token: an InitialContextToken carrying NegTokenInit,
    or a bare NegTokenResp ([1])."""
    end = len(token)
    top = _read(token, 0, end)
    if top.stop != end:
        raise SpnegoError("trailing bytes after the SPNEGO token")
    if top.tag == _APPLICATION_0:
        oid = _read(token, top.start, top.stop)
        if oid.tag != _OID or token[oid.start : oid.stop] != OID_SPNEGO:
            raise SpnegoError("InitialContextToken is not SPNEGO")
        choice = _read(token, oid.stop, top.stop)
        if choice.tag != _CTX[0] or choice.stop != top.stop:
            raise SpnegoError("expected NegTokenInit")
        return _parse_init(token, _expect(token, choice, _SEQUENCE))
    if top.tag == 0xA1:
        return _parse_resp(token, _expect(token, top, _SEQUENCE))
    raise SpnegoError(f"not a SPNEGO token (tag 0x{top.tag:02x})")


def _parse_init(buf: bytes, seq: _Tlv) -> NegTokenInit:
    # NegTokenInit: mechTypes [0], reqFlags [1], mechToken [2], mechListMIC [3]
    fields = _tagged_fields(buf, seq, 4)
    if 0 not in fields:
        raise SpnegoError("NegTokenInit without mechTypes")
    mech_list = _expect(buf, fields[0], _SEQUENCE)
    mechs = []
    for child in _children(buf, mech_list):
        if child.tag != _OID:
            raise SpnegoError("mechTypes holds a non-OID")
        mechs.append(bytes(buf[child.start : child.stop]))
    if not mechs:
        raise SpnegoError("empty mechTypes")
    if 1 in fields:
        _expect(buf, fields[1], _BIT_STRING)
    return NegTokenInit(
        mech_types=tuple(mechs),
        mech_types_der=bytes(buf[mech_list.header_start : mech_list.stop]),
        mech_token=_octets(buf, fields.get(2)),
        mech_list_mic=_octets(buf, fields.get(3)),
    )


def _parse_resp(buf: bytes, seq: _Tlv) -> NegTokenResp:
    # NegTokenResp: negState [0], supportedMech [1], responseToken [2], mechListMIC [3]
    fields = _tagged_fields(buf, seq, 4)
    state = None
    if 0 in fields:
        enum_tlv = _expect(buf, fields[0], _ENUMERATED)
        if enum_tlv.stop - enum_tlv.start != 1:
            raise SpnegoError("bad negState")
        state = buf[enum_tlv.start]
    mech = None
    if 1 in fields:
        oid = _expect(buf, fields[1], _OID)
        mech = bytes(buf[oid.start : oid.stop])
    return NegTokenResp(
        neg_state=state,
        supported_mech=mech,
        response_token=_octets(buf, fields.get(2)),
        mech_list_mic=_octets(buf, fields.get(3)),
    )


def build_neg_token_init2(mechs: tuple[bytes, ...] = (OID_NTLMSSP,)) -> bytes:
    """[MS-SPNG] 2.2.1 NegTokenInit2 in an InitialContextToken: mechTypes and the negHints
    name, as the server's NEGOTIATE response carries it."""
    mech_list = der(_SEQUENCE, b"".join(der(_OID, m) for m in mechs))
    hints = der(_SEQUENCE, der(_CTX[0], der(_GENERAL_STRING, HINT_NAME)))
    body = der(_SEQUENCE, der(_CTX[0], mech_list) + der(_CTX[3], hints))
    return der(_APPLICATION_0, der(_OID, OID_SPNEGO) + der(_CTX[0], body))


def build_neg_token_resp(
    neg_state: NegState,
    supported_mech: bytes | None = None,
    response_token: bytes | None = None,
    mech_list_mic: bytes | None = None,
) -> bytes:
    fields = der(_CTX[0], der(_ENUMERATED, bytes((neg_state,))))
    if supported_mech is not None:
        fields += der(_CTX[1], der(_OID, supported_mech))
    if response_token is not None:
        fields += der(_CTX[2], der(_OCTET_STRING, response_token))
    if mech_list_mic is not None:
        fields += der(_CTX[3], der(_OCTET_STRING, mech_list_mic))
    return der(0xA1, der(_SEQUENCE, fields))
