"""What every file handler shares: error mapping, open lookup, access bits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from smbd.backend import BackendError
from smbd.server.request import SMBError
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.files.opens import Open
    from smbd.server.files.state import FileServerState
    from smbd.server.model import Session, TreeConnect
    from smbd.server.request import Request

# [MS-SMB2] 2.2.13.1.1 access bits
FILE_READ_DATA = 0x00000001
FILE_WRITE_DATA = 0x00000002
FILE_APPEND_DATA = 0x00000004
FILE_READ_EA = 0x00000008
FILE_WRITE_EA = 0x00000010
FILE_EXECUTE = 0x00000020
FILE_DELETE_CHILD = 0x00000040
FILE_READ_ATTRIBUTES = 0x00000080
FILE_WRITE_ATTRIBUTES = 0x00000100
DELETE = 0x00010000
READ_CONTROL = 0x00020000
WRITE_DAC = 0x00040000
WRITE_OWNER = 0x00080000
SYNCHRONIZE = 0x00100000
ACCESS_SYSTEM_SECURITY = 0x01000000
MAXIMUM_ALLOWED = 0x02000000
FILE_ALL_ACCESS = 0x001F01FF

# What a read-only share or a READONLY file takes away.
WRITE_ACCESS = (
    FILE_WRITE_DATA
    | FILE_APPEND_DATA
    | FILE_WRITE_EA
    | FILE_WRITE_ATTRIBUTES
    | FILE_DELETE_CHILD
    | DELETE
    | WRITE_DAC
    | WRITE_OWNER
)


def files_of(req: Request) -> FileServerState:
    return cast("FileServerState", req.server.files)


def session_tree(req: Request) -> tuple[Session, TreeConnect]:
    if req.session is None:
        raise SMBError(NTStatus.USER_SESSION_DELETED)
    if req.tree is None:
        raise SMBError(NTStatus.NETWORK_NAME_DELETED)
    return req.session, req.tree


def lookup(req: Request, file_id: tuple[int, int]) -> Open:
    return files_of(req).lookup(req, file_id[0], file_id[1])


@contextmanager
def smb_errors() -> Iterator[None]:
    """A backend failure answers the request with its NTSTATUS."""
    try:
        yield
    except BackendError as exc:
        raise SMBError(exc.status, str(exc)) from exc


def require(o: Open, access: int, status: int = NTStatus.ACCESS_DENIED) -> None:
    """The open was granted at least one of the ``access`` bits."""
    if not o.granted_access & access:
        raise SMBError(status, f"access {o.granted_access:#x} lacks {access:#x}")
