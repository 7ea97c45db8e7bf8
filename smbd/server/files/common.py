"""What every file handler shares: error mapping, open lookup, access bits."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Final, cast

from smbd.backend import BackendError
from smbd.server.request import SMBError
from smbd.wire.create import AccessMask
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.files.opens import Open
    from smbd.server.files.state import FileServerState
    from smbd.server.model import Session, TreeConnect
    from smbd.server.request import Request

# [MS-SMB2] 2.2.13.1.1 access bits, defined once in the wire layer; plain ints here
# because the handlers test them on every request.
FILE_READ_DATA: Final = AccessMask.FILE_READ_DATA.value
FILE_WRITE_DATA: Final = AccessMask.FILE_WRITE_DATA.value
FILE_APPEND_DATA: Final = AccessMask.FILE_APPEND_DATA.value
FILE_READ_EA: Final = AccessMask.FILE_READ_EA.value
FILE_WRITE_EA: Final = AccessMask.FILE_WRITE_EA.value
FILE_EXECUTE: Final = AccessMask.FILE_EXECUTE.value
FILE_DELETE_CHILD: Final = AccessMask.FILE_DELETE_CHILD.value
FILE_READ_ATTRIBUTES: Final = AccessMask.FILE_READ_ATTRIBUTES.value
FILE_WRITE_ATTRIBUTES: Final = AccessMask.FILE_WRITE_ATTRIBUTES.value
DELETE: Final = AccessMask.DELETE.value
READ_CONTROL: Final = AccessMask.READ_CONTROL.value
WRITE_DAC: Final = AccessMask.WRITE_DAC.value
WRITE_OWNER: Final = AccessMask.WRITE_OWNER.value
SYNCHRONIZE: Final = AccessMask.SYNCHRONIZE.value
ACCESS_SYSTEM_SECURITY: Final = AccessMask.ACCESS_SYSTEM_SECURITY.value
MAXIMUM_ALLOWED: Final = AccessMask.MAXIMUM_ALLOWED.value

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


class _SMBErrors:
    """What :func:`smb_errors` returns (stateless, so one instance serves every block):
    a plain context manager costs a fraction of a generator-based one."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, BackendError):
            raise SMBError(exc.status, str(exc)) from exc


_SMB_ERRORS = _SMBErrors()


def smb_errors() -> _SMBErrors:
    """A backend failure inside the ``with`` block answers the request with its NTSTATUS."""
    return _SMB_ERRORS


def require(o: Open, access: int, status: int = NTStatus.ACCESS_DENIED) -> None:
    """The open was granted at least one of the ``access`` bits."""
    if not o.granted_access & access:
        raise SMBError(status, f"access {o.granted_access:#x} lacks {access:#x}")
