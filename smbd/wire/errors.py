"""The one error family of the SMB wire layer."""

from __future__ import annotations

from smbd.wire.status import NTStatus


class ParseError(Exception):
    """A message could not be parsed. ``status`` is the NTSTATUS the server answers with;
    ``disconnect`` says the connection cannot continue (framing is lost)."""

    def __init__(
        self, message: str, status: int = NTStatus.INVALID_PARAMETER, *, disconnect: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.disconnect = disconnect
