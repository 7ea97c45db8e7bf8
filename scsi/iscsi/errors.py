"""The error families of the iSCSI layer; each carries the reply the RFC prescribes."""

from __future__ import annotations

from enum import IntEnum


class RejectReason(IntEnum):
    """RFC 7143 11.17.1 Reason."""

    DATA_DIGEST_ERROR = 0x02
    SNACK_REJECT = 0x03
    PROTOCOL_ERROR = 0x04
    COMMAND_NOT_SUPPORTED = 0x05
    IMMEDIATE_COMMAND_REJECT = 0x06
    TASK_IN_PROGRESS = 0x07
    INVALID_DATA_ACK = 0x08
    INVALID_PDU_FIELD = 0x09
    LONG_OPERATION_REJECT = 0x0A
    NEGOTIATION_RESET = 0x0B
    WAITING_FOR_LOGOUT = 0x0C


class LoginStatus(IntEnum):
    """RFC 7143 11.13.5 Status-Class and Status-Detail, as (class << 8) | detail."""

    SUCCESS = 0x0000
    TARGET_MOVED_TEMPORARILY = 0x0101
    TARGET_MOVED_PERMANENTLY = 0x0102
    INITIATOR_ERROR = 0x0200
    AUTHENTICATION_FAILURE = 0x0201
    AUTHORIZATION_FAILURE = 0x0202
    NOT_FOUND = 0x0203
    TARGET_REMOVED = 0x0204
    UNSUPPORTED_VERSION = 0x0205
    TOO_MANY_CONNECTIONS = 0x0206
    MISSING_PARAMETER = 0x0207
    CANT_INCLUDE_IN_SESSION = 0x0208
    SESSION_TYPE_NOT_SUPPORTED = 0x0209
    SESSION_DOES_NOT_EXIST = 0x020A
    INVALID_DURING_LOGIN = 0x020B
    TARGET_ERROR = 0x0300
    SERVICE_UNAVAILABLE = 0x0301
    OUT_OF_RESOURCES = 0x0302


class PduError(Exception):
    """A PDU the target must answer with a Reject carrying ``reason``.

    ``fatal`` means the connection cannot continue (framing lost, or ERL 0 recovery).
    """

    def __init__(self, reason: RejectReason, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.fatal = fatal


class DigestError(PduError):
    """A header digest (fatal: the length cannot be trusted) or data digest mismatch."""


class TextError(Exception):
    """Malformed key=value text (RFC 7143 6.1); login answers INITIATOR_ERROR."""


class LoginError(Exception):
    """A login that ends with the Login Response status ``status``."""

    def __init__(self, status: LoginStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
