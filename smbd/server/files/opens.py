"""Open objects ([MS-SMB2] 3.3.1.10 Open) and the per-file state they share.

Plain state, no I/O. An :class:`Open` is what a FileId names; a :class:`FileState` is one
file (keyed by device and inode) with every Open on it, its delete-pending flag and the
slots the lock, lease and notify managers keep their per-file state in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smbd.backend import Components, FileHandle, join_components

if TYPE_CHECKING:
    from smbd.server.files.state import ShareRuntime

__all__ = ["DirCursor", "DurableRequest", "FileState", "Open"]


@dataclass(slots=True)
class DirCursor:
    """Where a QUERY_DIRECTORY enumeration is ([MS-SMB2] 3.3.1.10 Open.EnumerationLocation,
    Open.EnumerationSearchPattern). ``names`` is the directory snapshot taken by the first
    (or a restarting) query, ``.`` and ``..`` first as Windows lists them."""

    pattern: str
    names: list[str]
    index: int = 0
    started: bool = False  # a query has run since the snapshot (NO_SUCH_FILE vs NO_MORE_FILES)


@dataclass(frozen=True, slots=True)
class DurableRequest:
    """A DHnQ / DH2Q the client sent ([MS-SMB2] 2.2.13.2.3, 2.2.13.2.11)."""

    version: int  # 1 = DHnQ, 2 = DH2Q
    timeout_ms: int = 0
    persistent: bool = False
    create_guid: bytes = b""


class FileState:
    """One file or directory that has Opens ([MS-FSA] 2.1.1.5 File / Stream)."""

    __slots__ = (
        "components",
        "delete_pending",
        "is_dir",
        "key",
        "lease_state",
        "lock_state",
        "opens",
        "runtime",
    )

    def __init__(
        self, key: tuple[int, int], runtime: ShareRuntime, components: Components, is_dir: bool
    ) -> None:
        self.key = key
        self.runtime = runtime
        self.components = components
        self.is_dir = is_dir
        self.opens: list[Open] = []
        self.delete_pending = False
        self.lock_state: Any = None  # owned by smbd.server.files.locks
        self.lease_state: Any = None  # owned by smbd.server.files.leases

    @property
    def path(self) -> str:
        return join_components(self.components)

    def __repr__(self) -> str:
        return f"<FileState {self.runtime.name}\\{self.path} opens={len(self.opens)}>"


@dataclass(eq=False, slots=True)
class Open:
    """One open of a file ([MS-SMB2] 3.3.1.10). ``granted_access`` is after generic
    mapping; ``share_access`` is the ShareAccess the client asked for."""

    persistent_id: int
    volatile_id: int
    session_id: int
    tree_id: int
    connection_id: int
    file: FileState
    handle: FileHandle
    granted_access: int
    share_access: int
    create_options: int
    create_disposition: int
    user: str = ""
    delete_on_close: bool = False
    oplock_level: int = 0
    lease_key: bytes | None = None
    lease_state: int = 0
    durable_request: DurableRequest | None = None
    is_durable: bool = False
    is_persistent: bool = False
    durable_timeout_ms: int = 0
    disconnected_at: float | None = None
    create_guid: bytes = b""
    client_guid: bytes = b""
    position: int = 0
    mode: int = 0
    cursor: DirCursor | None = None
    closed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # for the phase-2 managers

    @property
    def file_id(self) -> tuple[int, int]:
        return (self.persistent_id, self.volatile_id)

    @property
    def is_dir(self) -> bool:
        return self.handle.is_dir

    @property
    def components(self) -> Components:
        return self.handle.components

    @property
    def write_through(self) -> bool:
        return bool(self.create_options & 0x2)
