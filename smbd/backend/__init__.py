"""Share backends: where the SMB server's files live.

:class:`~smbd.backend.posix.PosixShare` confines every path to a local directory, runs the
blocking calls in worker threads and keeps sparse files sparse.
"""

from smbd.backend.attrs import FileAttributes
from smbd.backend.errors import BackendError
from smbd.backend.paths import Components, join_components, split_path
from smbd.backend.posix import (
    CreateAction,
    CreateOptions,
    Disposition,
    FileHandle,
    FileStat,
    FsInfo,
    OpenResult,
    PosixShare,
)

__all__ = [
    "BackendError",
    "Components",
    "CreateAction",
    "CreateOptions",
    "Disposition",
    "FileAttributes",
    "FileHandle",
    "FileStat",
    "FsInfo",
    "OpenResult",
    "PosixShare",
    "join_components",
    "split_path",
]
