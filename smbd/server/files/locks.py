"""SMB2 LOCK ([MS-SMB2] 3.3.5.14, [MS-FSA] 2.1.5.7 / 2.1.4.10): Windows byte-range locks.

Locks belong to an Open and live on the file (:class:`FileLocks` in ``FileState.lock_state``),
so opens of one file on any session or connection see each other's locks.

* An exclusive lock conflicts with every overlapping lock, the requesting open's own
  included (locks do not nest); a shared lock conflicts with overlapping exclusive locks of
  other opens only.
* Ranges are ``[offset, offset + length)``; a zero-length lock at ``x`` overlaps only a lock
  that strictly contains ``x`` and never conflicts with another zero-length lock.
* Elements of one request are granted all or none, in order; unlocks are applied in order
  and the first one naming no held lock stops with RANGE_NOT_LOCKED.
* A single lock without FAIL_IMMEDIATELY that conflicts goes async (STATUS_PENDING) and is
  retried each time the file's locks change; CANCEL answers it with CANCELLED, closing its
  open with RANGE_NOT_LOCKED.
* READ/WRITE ask :meth:`LockManager.check_io`: a read conflicts with another open's
  exclusive lock, a write with any other open's lock and with the open's own shared locks.
* Lock sequence replay detection (3.3.5.14) for durable opens and multichannel connections.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import trio

from smbd.server.files.common import FILE_READ_DATA, FILE_WRITE_DATA, lookup, session_tree
from smbd.server.request import Handler, Request, Response, SMBError
from smbd.wire import lock as wl
from smbd.wire.constants import Command
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.files.opens import FileState, Open
    from smbd.server.files.state import FileServerState

__all__ = ["HANDLERS", "ByteRangeLock", "FileLocks", "LockManager", "handle_lock", "install"]

log = logging.getLogger("smbd.files.locks")

MAX_LOCKS_PER_FILE: Final = 65536
"""Bounds the memory one file's lock list can take; beyond it, INSUFFICIENT_RESOURCES."""

_U64_END: Final = 1 << 64
_LOCK_SEQUENCE_SLOTS: Final = 64
_SEQ_INVALID: Final = 0xFF
_F = wl.LockFlags
_VALID_LOCK_FLAGS: Final = frozenset(
    {
        _F.SHARED_LOCK,
        _F.EXCLUSIVE_LOCK,
        _F.SHARED_LOCK | _F.FAIL_IMMEDIATELY,
        _F.EXCLUSIVE_LOCK | _F.FAIL_IMMEDIATELY,
    }
)


class ByteRangeLock:
    """One granted lock ([MS-FSA] 2.1.1.3 ByteRangeLock)."""

    __slots__ = ("exclusive", "length", "offset", "owner")

    def __init__(self, owner: Open, offset: int, length: int, exclusive: bool) -> None:
        self.owner = owner
        self.offset = offset
        self.length = length
        self.exclusive = exclusive

    def __repr__(self) -> str:
        kind = "X" if self.exclusive else "S"
        return f"<{kind} {self.offset}+{self.length} open={self.owner.volatile_id:#x}>"


def overlaps(a_off: int, a_len: int, b_off: int, b_len: int) -> bool:
    """Whether two ranges overlap (zero-length ranges as described in the module doc)."""
    return not (a_off >= b_off + b_len or b_off >= a_off + a_len)


class FileLocks:
    """The locks of one file and the event blocked requests wait on."""

    __slots__ = ("changed", "locks")

    def __init__(self) -> None:
        self.locks: list[ByteRangeLock] = []
        self.changed = trio.Event()

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def conflicts(self, owner: Open, offset: int, length: int, exclusive: bool) -> bool:
        for held in self.locks:
            if not held.exclusive and not exclusive:
                continue
            if not exclusive and held.owner is owner:
                continue  # a shared lock stacks on the open's own exclusive lock
            if overlaps(held.offset, held.length, offset, length):
                return True
        return False


class LockManager:
    """Byte-range locks for every file of a :class:`FileServerState` (installed as its
    ``locks`` hook)."""

    def __init__(self, files: FileServerState) -> None:
        self.files = files
        self._granted = 0
        self._denied = 0
        self._waits = 0

    # -- state ----------------------------------------------------------------------------

    @staticmethod
    def _state(file: FileState) -> FileLocks:
        st = file.lock_state
        if st is None:
            st = file.lock_state = FileLocks()
        assert isinstance(st, FileLocks)
        return st

    def locks_of(self, file: FileState) -> list[ByteRangeLock]:
        st = file.lock_state
        return list(st.locks) if isinstance(st, FileLocks) else []

    # -- operations (pure state, no waiting) ----------------------------------------------

    def try_lock(self, o: Open, elements: tuple[wl.LockElement, ...]) -> int:
        """Grant all ``elements`` or none. Returns SUCCESS, LOCK_NOT_GRANTED,
        INVALID_LOCK_RANGE or INSUFFICIENT_RESOURCES."""
        st = self._state(o.file)
        added: list[ByteRangeLock] = []
        status = NTStatus.SUCCESS
        for e in elements:
            if e.length and e.offset + e.length > _U64_END:
                status = NTStatus.INVALID_LOCK_RANGE
                break
            exclusive = bool(e.flags & _F.EXCLUSIVE_LOCK)
            if st.conflicts(o, e.offset, e.length, exclusive):
                status = NTStatus.LOCK_NOT_GRANTED
                break
            if len(st.locks) >= MAX_LOCKS_PER_FILE:
                status = NTStatus.INSUFFICIENT_RESOURCES
                break
            lk = ByteRangeLock(o, e.offset, e.length, exclusive)
            st.locks.append(lk)
            added.append(lk)
        if status != NTStatus.SUCCESS:
            for lk in added:
                st.locks.remove(lk)
            self._denied += 1
        else:
            self._granted += len(added)
        return status

    def unlock(self, o: Open, elements: tuple[wl.LockElement, ...]) -> int:
        """Remove the locks ``elements`` name (same open, offset and length), in order.
        An element that is not a pure UNLOCK is INVALID_PARAMETER; one that names no lock
        is RANGE_NOT_LOCKED; the unlocks before it stay done."""
        st = self._state(o.file)
        status = NTStatus.SUCCESS
        removed = False
        for e in elements:
            if e.flags != _F.UNLOCK:
                status = NTStatus.INVALID_PARAMETER
                break
            for i, held in enumerate(st.locks):
                if held.owner is o and held.offset == e.offset and held.length == e.length:
                    del st.locks[i]
                    removed = True
                    break
            else:
                status = NTStatus.RANGE_NOT_LOCKED
                break
        if removed:
            st.wake()
        return status

    # -- hooks FileServerState and READ/WRITE call ----------------------------------------

    def check_io(self, o: Open, offset: int, length: int, write: bool) -> bool:
        st = o.file.lock_state
        if not isinstance(st, FileLocks) or not st.locks:
            return False
        for held in st.locks:
            if held.owner is o and (not write or held.exclusive):
                continue  # own locks never block reads; own exclusive locks not writes
            if not write and not held.exclusive:
                continue
            if overlaps(held.offset, held.length, offset, length):
                return True
        return False

    def on_close(self, o: Open) -> None:
        st = o.file.lock_state
        if not isinstance(st, FileLocks):
            return
        before = len(st.locks)
        st.locks = [lk for lk in st.locks if lk.owner is not o]
        # Wake waiters even when nothing was held: a blocked request of this open must
        # notice the close and answer RANGE_NOT_LOCKED.
        st.wake()
        if before != len(st.locks):
            log.debug("close released %d locks", before - len(st.locks))

    def statistics(self) -> dict[str, Any]:
        return {
            "granted": self._granted,
            "denied": self._denied,
            "waits": self._waits,
            "held": sum(
                len(f.lock_state.locks)
                for f in self.files.files.values()
                if isinstance(f.lock_state, FileLocks)
            ),
        }

    # -- blocking ---------------------------------------------------------------------------

    async def wait_and_lock(
        self, req: Request, o: Open, elements: tuple[wl.LockElement, ...]
    ) -> None:
        """Go async and retry each time the file's locks change, until granted, the open
        closes (RANGE_NOT_LOCKED) or the request is cancelled (trio.Cancelled, answered
        with CANCELLED by the core)."""
        await req.go_async()
        self._waits += 1
        while True:
            changed = self._state(o.file).changed  # taken before trying: no lost wakeup
            if o.closed:
                raise SMBError(NTStatus.RANGE_NOT_LOCKED, "open closed while waiting")
            status = self.try_lock(o, elements)
            if status == NTStatus.SUCCESS:
                return
            if status != NTStatus.LOCK_NOT_GRANTED:
                raise SMBError(status)
            await changed.wait()


# -- lock sequence ([MS-SMB2] 3.3.5.14) -------------------------------------------------------


def _sequence_slot(req: Request, o: Open, r: wl.LockRequest) -> tuple[bytearray, int] | None:
    check = o.is_durable or o.is_persistent or o.extra.get("resilient", False)
    if not check and req.connection.dialect >= 0x0300 and req.connection.supports_multichannel:
        check = True
    if not check or not 1 <= r.lock_sequence_index <= _LOCK_SEQUENCE_SLOTS:
        return None
    arr = o.extra.get("lock_sequence")
    if not isinstance(arr, bytearray):
        arr = o.extra["lock_sequence"] = bytearray([_SEQ_INVALID]) * _LOCK_SEQUENCE_SLOTS
    return arr, r.lock_sequence_index - 1


# -- the handler -------------------------------------------------------------------------------


def manager_of(req: Request) -> LockManager:
    files: FileServerState = req.server.files
    if not isinstance(files.locks, LockManager):
        install(files)
    assert isinstance(files.locks, LockManager)
    return files.locks


async def handle_lock(req: Request) -> Response:
    session_tree(req)
    r = wl.parse_lock_request(req.body)
    o = lookup(req, r.file_id)
    mgr = manager_of(req)
    first = r.locks[0].flags
    unlocking = first == _F.UNLOCK
    if not unlocking:
        if first not in _VALID_LOCK_FLAGS:
            raise SMBError(NTStatus.INVALID_PARAMETER, f"lock flags {first:#x}")
        if len(r.locks) > 1 and any(
            e.flags not in _VALID_LOCK_FLAGS or not e.flags & _F.FAIL_IMMEDIATELY for e in r.locks
        ):
            # 3.3.5.14.2: several locks must all be FAIL_IMMEDIATELY
            raise SMBError(NTStatus.INVALID_PARAMETER, "blocking lock among several")
    if not o.granted_access & (FILE_READ_DATA | FILE_WRITE_DATA):
        raise SMBError(NTStatus.ACCESS_DENIED, "LOCK needs read or write access")

    slot = _sequence_slot(req, o, r)
    if slot is not None:
        arr, idx = slot
        if arr[idx] == r.lock_sequence_number:
            log.info(
                "replayed LOCK (sequence %d/%d)", r.lock_sequence_index, r.lock_sequence_number
            )
            return Response([wl.LOCK_RESPONSE])
        arr[idx] = _SEQ_INVALID

    o.file.runtime.ops += 1
    if unlocking:
        status = mgr.unlock(o, r.locks)
    else:
        status = mgr.try_lock(o, r.locks)
        if status == NTStatus.LOCK_NOT_GRANTED and not first & _F.FAIL_IMMEDIATELY:
            await mgr.wait_and_lock(req, o, r.locks)
            status = NTStatus.SUCCESS
    if status != NTStatus.SUCCESS:
        raise SMBError(status)
    files: FileServerState = req.server.files
    if not unlocking and files.oplocks is not None:
        await files.oplocks.break_read_caching(req, o)
    if slot is not None:
        arr, idx = slot
        arr[idx] = r.lock_sequence_number
    return Response([wl.LOCK_RESPONSE])


def install(files: FileServerState) -> LockManager:
    """Install the lock manager as ``files.locks`` (idempotent)."""
    if not isinstance(files.locks, LockManager):
        files.locks = LockManager(files)
    return files.locks


HANDLERS: dict[Command, Handler] = {Command.LOCK: handle_lock}
