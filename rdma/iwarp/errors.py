"""The iWARP error family: every parser and check raises :class:`IwarpError`, which carries
the Terminate message fields (RFC 5040 7.1 / 7.2) that the endpoint sends before it tears the
stream down."""

from __future__ import annotations

import enum


class Layer(enum.IntEnum):
    """Term Layer (RFC 5040 7.1)."""

    RDMAP = 0
    DDP = 1
    LLP = 2  # MPA / TCP


class RdmapEType(enum.IntEnum):
    LOCAL_CATASTROPHIC = 0
    REMOTE_PROTECTION = 1
    REMOTE_OPERATION = 2


class RdmapCode(enum.IntEnum):
    """RFC 5040 7.2, Term Error Code when Term Layer is RDMAP."""

    INVALID_STAG = 0x00
    BASE_BOUNDS = 0x01
    ACCESS_RIGHTS = 0x02
    STAG_NOT_ASSOCIATED = 0x03
    TO_WRAP = 0x04
    INVALID_VERSION = 0x05
    UNEXPECTED_OPCODE = 0x06
    CATASTROPHIC_STREAM = 0x07
    CATASTROPHIC_GLOBAL = 0x08
    STAG_NOT_INVALIDATABLE = 0x09
    UNSPECIFIED = 0xFF


class DdpEType(enum.IntEnum):
    LOCAL_CATASTROPHIC = 0
    TAGGED_BUFFER = 1
    UNTAGGED_BUFFER = 2


class DdpTaggedCode(enum.IntEnum):
    """RFC 5040 7.2 (from RFC 5041 7.2), DDP tagged buffer errors."""

    INVALID_STAG = 0x00
    BASE_BOUNDS = 0x01
    STAG_NOT_ASSOCIATED = 0x02
    TO_WRAP = 0x03
    INVALID_VERSION = 0x04


class DdpUntaggedCode(enum.IntEnum):
    """RFC 5040 7.2 (from RFC 5041 7.2), DDP untagged buffer errors."""

    INVALID_QN = 0x01
    NO_BUFFER = 0x02  # Invalid MSN - no buffer available
    MSN_RANGE = 0x03  # Invalid MSN - MSN range is not valid
    INVALID_MO = 0x04
    TOO_LONG = 0x05  # DDP message too long for available buffer
    INVALID_VERSION = 0x06


class LlpCode(enum.IntEnum):
    """RFC 5044 8 and RFC 6581 (Term Layer LLP, Term EType 0 = MPA)."""

    TCP_LOST = 0x01
    CRC_ERROR = 0x02
    MARKER_ERROR = 0x03
    INVALID_REQ_REP = 0x04
    LOCAL_CATASTROPHIC = 0x05
    INSUFFICIENT_IRD = 0x06
    NO_MATCHING_RTR = 0x07


class IwarpError(Exception):
    """A protocol violation; ``layer``/``etype``/``code`` are the Terminate to send."""

    layer: Layer = Layer.RDMAP
    etype: int = 0
    code: int = 0

    def __init__(self, message: str, etype: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        if etype is not None:
            self.etype = etype
        if code is not None:
            self.code = code


class MPAError(IwarpError):
    layer = Layer.LLP
    etype = 0
    code = LlpCode.INVALID_REQ_REP


class DDPError(IwarpError):
    layer = Layer.DDP


class RDMAPError(IwarpError):
    layer = Layer.RDMAP
