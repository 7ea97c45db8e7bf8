"""Authentication for SMB: SPNEGO with NTLMv2 (MS-NLMP) on the server side.

Public interface: ServerAuthenticator (one per SESSION_SETUP exchange), AuthResult,
negotiate_token() for the NEGOTIATE response, and the NTSTATUS values a result carries.
"""

from smbd.auth.server import (
    STATUS_INVALID_PARAMETER,
    STATUS_LOGON_FAILURE,
    STATUS_MORE_PROCESSING_REQUIRED,
    STATUS_SUCCESS,
    AuthResult,
    ServerAuthenticator,
    negotiate_token,
)

__all__ = [
    "STATUS_INVALID_PARAMETER",
    "STATUS_LOGON_FAILURE",
    "STATUS_MORE_PROCESSING_REQUIRED",
    "STATUS_SUCCESS",
    "AuthResult",
    "ServerAuthenticator",
    "negotiate_token",
]
