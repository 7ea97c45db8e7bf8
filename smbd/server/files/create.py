"""SMB2 CREATE ([MS-SMB2] 3.3.5.9): validate -> resolve -> share-mode arbitration -> open.

Order matters for what a client can observe: an OVERWRITE that loses the sharing check
must not have truncated the file, so the backend opens without truncating, the open is
arbitrated and registered, and only then is the file overwritten.
"""

from __future__ import annotations

import contextlib
import logging

from smbd.backend import (
    BackendError,
    Components,
    CreateAction,
    Disposition,
    FileHandle,
    FileStat,
    OpenResult,
    PosixShare,
)
from smbd.backend.attrs import FileAttributes
from smbd.backend.paths import STREAMS_DIR, split_stream_path
from smbd.backend.posix import INLINE_TRUNCATE_MAX
from smbd.server.files import eas, pipes, security
from smbd.server.files.common import (
    ACCESS_SYSTEM_SECURITY,
    DELETE,
    FILE_APPEND_DATA,
    FILE_WRITE_DATA,
    MAXIMUM_ALLOWED,
    WRITE_ACCESS,
    files_of,
    session_tree,
    smb_errors,
)
from smbd.server.files.opens import DurableRequest, Open
from smbd.server.files.state import DEFAULT_DURABLE_TIMEOUT_MS, FileServerState, ShareRuntime
from smbd.server.request import Buffer, Request, Response, SMBError
from smbd.wire import create as wc
from smbd.wire import fscc
from smbd.wire.create import FILE_ALL_ACCESS
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus

__all__ = ["handle_create", "maximal_access"]

log = logging.getLogger("smbd.files")

# [MS-SMB2] 2.2.13 CreateOptions the server refuses outright.
# RESERVE_OPFILTER, OPEN_BY_FILE_ID, CREATE_TREE_CONNECTION
_OPTIONS_NOT_SUPPORTED = 0x00100000 | 0x00002000 | 0x00000080
_OPTIONS_INVALID = 0xFF000000
_VALID_ATTRIBUTES = 0x00007FB7
_OPLOCK_LEVELS = frozenset(int(x) for x in wc.OplockLevel)
_HANDLE_CACHING = 0x2
_FILE_ACTION_ADDED = 1
_NOTIFY_FILE_NAME = 0x1
_NOTIFY_DIR_NAME = 0x2
_MAX_DURABLE_TIMEOUT_MS = 300_000


def maximal_access(tree_access: int, read_only_share: bool, st: FileStat | None) -> int:
    """What this user may do with this file: the tree's maximal access, less the write
    rights a read-only share takes away, less writing data to a READONLY file (which can
    still be opened for DELETE or FILE_WRITE_ATTRIBUTES: deleting it is refused later with
    CANNOT_DELETE, and the attribute can be cleared)."""
    access = tree_access or FILE_ALL_ACCESS
    if read_only_share:
        access &= ~WRITE_ACCESS
    elif st is not None and st.attributes & FileAttributes.READONLY and not st.is_dir:
        access &= ~(FILE_WRITE_DATA | FILE_APPEND_DATA)
    return access


# the dispositions that create a missing file (and so the file a new stream belongs to)
_CREATING = frozenset(
    (Disposition.SUPERSEDE, Disposition.CREATE, Disposition.OPEN_IF, Disposition.OVERWRITE_IF)
)


def _open_and_stat(
    backend: PosixShare,
    comps: Components,
    disposition: Disposition,
    options: int,
    want_write: bool,
    attributes: int,
    now_ns: int,
) -> tuple[OpenResult, FileStat, bytes | None]:
    r = backend.open_sync(
        comps,
        disposition,
        options,
        want_write=want_write,
        attributes=attributes,
        now_ns=now_ns,
        defer_truncate=True,
    )
    try:
        st = backend.stat_sync(r.handle)
        sd = backend.get_sd_sync(r.handle) if r.action != CreateAction.CREATED else None
        return r, st, sd
    except BaseException:
        backend.close_sync(r.handle)
        raise


def _overwrite_and_stat(backend: PosixShare, handle: FileHandle, attributes: int) -> FileStat:
    backend.overwrite_sync(handle, attributes)
    return backend.stat_sync(handle)


def _validate(cr: wc.CreateRequest) -> None:
    """[MS-SMB2] 3.3.5.9 request checks that come before any file system work, in the
    order Windows applies them (smbtorture smb2.create.gentest pins the order down)."""
    if cr.impersonation_level > wc.ImpersonationLevel.DELEGATE:
        raise SMBError(NTStatus.BAD_IMPERSONATION_LEVEL)
    if cr.create_options & _OPTIONS_INVALID:
        raise SMBError(NTStatus.INVALID_PARAMETER, "reserved create options")
    if cr.create_options & _OPTIONS_NOT_SUPPORTED:
        raise SMBError(NTStatus.NOT_SUPPORTED, "create option not supported")
    if cr.create_disposition > Disposition.OVERWRITE_IF:
        raise SMBError(NTStatus.INVALID_PARAMETER, "create disposition")
    access = cr.desired_access
    if access & ~wc.VALID_ACCESS_MASK or not access:
        raise SMBError(NTStatus.ACCESS_DENIED, f"desired access {access:#x}")
    if access & ACCESS_SYSTEM_SECURITY:
        raise SMBError(NTStatus.PRIVILEGE_NOT_HELD, "SACL access")
    if cr.file_attributes & ~_VALID_ATTRIBUTES:
        raise SMBError(NTStatus.INVALID_PARAMETER, "file attributes")
    if (
        cr.file_attributes & FileAttributes.TEMPORARY
        and cr.create_options & wc.CreateOptions.DIRECTORY_FILE
    ):
        raise SMBError(NTStatus.INVALID_PARAMETER, "TEMPORARY directory")
    if cr.file_attributes & FileAttributes.ENCRYPTED:
        raise SMBError(NTStatus.ACCESS_DENIED, "encrypted files are not supported")
    if cr.share_access & ~0x7:
        raise SMBError(NTStatus.INVALID_PARAMETER, "share access")
    if cr.requested_oplock_level not in _OPLOCK_LEVELS:
        raise SMBError(NTStatus.INVALID_PARAMETER, "oplock level")
    if (
        cr.create_options & wc.CreateOptions.DIRECTORY_FILE
        and cr.create_options & wc.CreateOptions.NON_DIRECTORY_FILE
    ):
        raise SMBError(NTStatus.INVALID_PARAMETER, "directory and non-directory")
    if cr.context(wc.CTX_TIMEWARP_TOKEN) is not None:
        raise SMBError(NTStatus.OBJECT_NAME_NOT_FOUND, "no previous versions")


def _durable_request(req: Request, cr: wc.CreateRequest) -> DurableRequest | None:
    """DHnQ / DH2Q ([MS-SMB2] 3.3.5.9.6, 3.3.5.9.10). Reconnects are :func:`_reconnect`'s."""
    dhnq = cr.context(wc.CTX_DURABLE_HANDLE_REQUEST)
    dh2q = cr.context(wc.CTX_DURABLE_HANDLE_REQUEST_V2)
    dhnc = cr.context(wc.CTX_DURABLE_HANDLE_RECONNECT)
    dh2c = cr.context(wc.CTX_DURABLE_HANDLE_RECONNECT_V2)
    if dh2q is not None and (dhnq is not None or dhnc is not None or dh2c is not None):
        raise SMBError(NTStatus.INVALID_PARAMETER, "DH2Q with another durable context")
    if dh2c is not None and (dhnq is not None or dhnc is not None):
        raise SMBError(NTStatus.INVALID_PARAMETER, "DH2C with another durable context")
    if dhnc is not None or dh2c is not None:
        return None  # a reconnect; a DHnQ beside DHnC is ignored (3.3.5.9.7)
    if dh2q is not None and req.connection.dialect >= 0x0300:
        d2 = wc.parse_durable_v2_request(dh2q.data)
        timeout = min(d2.timeout or DEFAULT_DURABLE_TIMEOUT_MS, _MAX_DURABLE_TIMEOUT_MS)
        return DurableRequest(
            2, timeout, bool(d2.flags & wc.DurableV2Flags.PERSISTENT), d2.create_guid
        )
    if dhnq is not None:
        wc.parse_durable_request(dhnq.data)
        return DurableRequest(1, DEFAULT_DURABLE_TIMEOUT_MS)
    return None


async def handle_create(req: Request) -> Response:
    session, tree = session_tree(req)
    cr = wc.parse_create_request(req.body)
    if tree.share is None:  # IPC$: named pipes (srvsvc, wkssvc)
        _validate(cr)
        return await pipes.handle_create(req, cr)
    wc.check_no_duplicates(cr.contexts)
    files = files_of(req)
    rt = files.runtime(tree.share)
    durable = _durable_request(req, cr)
    files.scavenge()
    dhnc = cr.context(wc.CTX_DURABLE_HANDLE_RECONNECT)
    dh2c = cr.context(wc.CTX_DURABLE_HANDLE_RECONNECT_V2)
    if (dhnc is not None or dh2c is not None) and durable is None:
        # a reconnect ignores the other fields ([MS-SMB2] 3.3.5.9.7: clients send zeros)
        return await _reconnect(req, cr, rt, dhnc, dh2c)
    _validate(cr)
    try:
        comps, stream = split_stream_path(cr.name)
    except BackendError as exc:
        raise SMBError(exc.status, str(exc)) from exc
    if stream is not None:
        if cr.create_options & wc.CreateOptions.DIRECTORY_FILE:
            raise SMBError(NTStatus.NOT_A_DIRECTORY, "a stream is not a directory")
        creates = cr.create_disposition in _CREATING
        with smb_errors():
            comps = await rt.backend.run(rt.backend.stream_components_sync, comps, stream, creates)
    lease = None
    if cr.requested_oplock_level == wc.OplockLevel.LEASE and req.connection.dialect >= 0x0210:
        rqls = cr.context(wc.CTX_REQUEST_LEASE)
        if rqls is not None:
            lease = wc.parse_lease(rqls.data)
    alloc_ctx = cr.context(wc.CTX_ALLOCATION_SIZE)
    allocation = wc.parse_allocation_size(alloc_ctx.data) if alloc_ctx is not None else None
    exta = cr.context(wc.CTX_EA_BUFFER)
    ea_entries = fscc.parse_full_ea_info(exta.data) if exta is not None else []
    eas.validate(ea_entries)
    mxac = cr.context(wc.CTX_QUERY_MAXIMAL_ACCESS)
    if mxac is not None:
        wc.parse_mxac_request(mxac.data)

    desired = wc.map_generic_access(cr.desired_access)
    tree_access = tree.maximal_access or FILE_ALL_ACCESS
    if rt.read_only:
        tree_access &= ~WRITE_ACCESS
    if desired & ~MAXIMUM_ALLOWED & ~tree_access:
        raise SMBError(NTStatus.ACCESS_DENIED, f"access {desired:#x} beyond the tree's")
    if cr.create_options & wc.CreateOptions.DELETE_ON_CLOSE and not (
        desired & (DELETE | MAXIMUM_ALLOWED)
    ):
        raise SMBError(NTStatus.ACCESS_DENIED, "delete-on-close without DELETE access")
    want_write = bool(desired & (FILE_WRITE_DATA | FILE_APPEND_DATA)) or (
        bool(desired & MAXIMUM_ALLOWED) and not rt.read_only
    )
    now_ns = int(req.server.wall_clock() * 1e9) if hasattr(req.server, "wall_clock") else 0

    # [MS-SMB2] 3.3.5.9.13: an open with this AppInstanceId from another client (a VM
    # failing over to another cluster node) is closed, without a break, to make room.
    app_ctx = cr.context(wc.CTX_APP_INSTANCE_ID)
    app_instance = wc.parse_app_instance_id(app_ctx.data) if app_ctx is not None else None
    if app_instance is not None and app_instance != bytes(16):
        for old in [
            x
            for x in files.opens.values()
            if x.extra.get("app_instance") == app_instance
            and x.file.runtime is rt
            and x.file.components == comps
            and x.client_guid != req.connection.client_guid
        ]:
            await files.close(old)
    # A disconnected durable open cannot take the break a new open of its file needs:
    # Windows closes it (a delete-on-close one takes the file with it). Persistent opens
    # stay: their client will be back.
    for stale in [
        x
        for x in files.disconnected
        if x.file.runtime is rt and x.file.components == comps and not x.is_persistent
    ]:
        await files.close(stale)
    with smb_errors():
        try:
            result, st, sd_blob = await rt.backend.run_meta(
                _open_and_stat,
                rt.backend,
                comps,
                Disposition(cr.create_disposition),
                cr.create_options,
                want_write,
                cr.file_attributes,
                now_ns,
            )
        except BackendError as exc:
            if exc.status == NTStatus.ACCESS_DENIED and want_write and desired & MAXIMUM_ALLOWED:
                # MAXIMUM_ALLOWED on a file the server cannot write: settle for reading
                want_write = False
                result, st, sd_blob = await rt.backend.run_meta(
                    _open_and_stat,
                    rt.backend,
                    comps,
                    Disposition(cr.create_disposition),
                    cr.create_options,
                    False,
                    cr.file_attributes,
                    now_ns,
                )
            else:
                raise
    handle = result.handle
    o: Open | None = None
    try:
        # the READONLY attribute of a file this request creates binds later opens only
        file_max = maximal_access(
            tree_access, rt.read_only, st if result.action != CreateAction.CREATED else None
        )
        if sd_blob is not None:
            file_max &= security.access_allowed(_stored_sd(sd_blob))
        granted = desired & ~MAXIMUM_ALLOWED
        if desired & MAXIMUM_ALLOWED:
            granted |= file_max
            if not handle.writable:
                granted &= ~(FILE_WRITE_DATA | FILE_APPEND_DATA)
        if granted & ~file_max:
            raise SMBError(NTStatus.ACCESS_DENIED, "access beyond what the file allows")

        if (
            cr.create_options & wc.CreateOptions.DELETE_ON_CLOSE
            and st.attributes & FileAttributes.READONLY
            and not st.is_dir
            and result.action != CreateAction.CREATED
        ):
            raise SMBError(NTStatus.CANNOT_DELETE, "delete-on-close of a read-only file")
        file = files.file_for(rt, handle)
        if file.opens and files.oplocks is not None:
            await files.oplocks.check_open(
                req, file, granted, cr.share_access, cr.create_disposition
            )
        # Overwriting needs write access and superseding delete access, whatever the
        # client asked for ([MS-FSA] 2.1.5.1.2.1): they count for the sharing check.
        check_access = granted
        if result.pending_truncate:
            check_access |= (
                DELETE if cr.create_disposition == Disposition.SUPERSEDE else FILE_WRITE_DATA
            )
        files.check_sharing(file, check_access, cr.share_access)
        o = files.add_open(
            file=file,
            handle=handle,
            session=session,
            tree=tree,
            connection=req.connection,
            granted_access=granted,
            share_access=cr.share_access,
            create_options=cr.create_options,
            create_disposition=cr.create_disposition,
        )
    except BaseException:
        if o is None:
            await _discard(files, rt, handle, result.action)
        raise
    try:
        if result.pending_truncate:
            with smb_errors():
                # truncating a large file frees its extents: a thread's work
                run = (
                    rt.backend.run if st.end_of_file > INLINE_TRUNCATE_MAX else rt.backend.run_meta
                )
                st = await run(_overwrite_and_stat, rt.backend, handle, cr.file_attributes)
        if allocation is not None and result.action != CreateAction.OPENED and not handle.is_dir:
            with smb_errors():
                await rt.backend.run(rt.backend.set_allocation_sync, handle, allocation)
                st = await rt.backend.stat(handle)
    except BaseException:
        await files.close(o)
        raise

    if ea_entries and result.action != CreateAction.OPENED:
        try:
            with smb_errors():
                await rt.backend.run(eas.apply_eas_sync, rt.backend, handle, ea_entries)
        except BaseException:
            await files.close(o)
            raise
    secd = cr.context(wc.CTX_SD_BUFFER)
    if secd is not None and result.action == CreateAction.CREATED:
        blob = security.pack(security.for_new_file(security.parse(secd.data)))
        try:
            with smb_errors():
                await rt.backend.run(rt.backend.set_sd_sync, handle, blob)
        except BaseException:
            await files.close(o)
            raise
    o.durable_request = durable
    if app_instance is not None:
        o.extra["app_instance"] = app_instance
    o.create_guid = durable.create_guid if durable is not None else b""
    oplock_level = wc.OplockLevel.NONE
    lease_blob: bytes | None = None
    if files.oplocks is not None and (
        cr.requested_oplock_level != wc.OplockLevel.NONE or lease is not None
    ):
        try:
            level, lease_blob = files.oplocks.grant(req, o, cr.requested_oplock_level, lease)
        except BaseException:
            # e.g. a lease key already used for another file: the CREATE fails as a whole
            if result.action == CreateAction.CREATED:
                o.delete_on_close = True
            await files.close(o)
            raise
        oplock_level = wc.OplockLevel(level)
        o.oplock_level = level

    contexts: list[tuple[bytes, bytes]] = []
    if mxac is not None:
        contexts.append((wc.CTX_QUERY_MAXIMAL_ACCESS, wc.pack_mxac_response(0, file_max)))
    if lease_blob is not None:
        contexts.append((wc.CTX_REQUEST_LEASE, lease_blob))
    if durable is not None:
        grant_durable = oplock_level == wc.OplockLevel.BATCH or (
            o.lease_key is not None and o.lease_state & _HANDLE_CACHING
        )
        if durable.persistent and tree.share.continuous_availability:
            grant_durable = True
        if grant_durable:
            o.is_durable = True
            o.durable_timeout_ms = durable.timeout_ms
            if durable.version == 1:
                contexts.append((wc.CTX_DURABLE_HANDLE_REQUEST, wc.DURABLE_RESPONSE))
            else:
                o.is_persistent = durable.persistent and tree.share.continuous_availability
                contexts.append(
                    (
                        wc.CTX_DURABLE_HANDLE_REQUEST_V2,
                        wc.pack_durable_v2_response(
                            durable.timeout_ms,
                            wc.DurableV2Flags.PERSISTENT if o.is_persistent else 0,
                        ),
                    )
                )
    if cr.context(wc.CTX_QUERY_ON_DISK_ID) is not None:
        contexts.append((wc.CTX_QUERY_ON_DISK_ID, wc.pack_qfid_response(st.file_id, st.dev)))

    rt.ops += 1
    req.set_related_file_id(o.file_id)
    if (
        result.action == CreateAction.CREATED
        and files.notify is not None
        and comps[0] != STREAMS_DIR
    ):
        files.notify.changed(
            rt.name,
            comps,
            _FILE_ACTION_ADDED,
            _NOTIFY_DIR_NAME if handle.is_dir else _NOTIFY_FILE_NAME,
        )
    log.debug(
        "create %s\\%s -> %s",
        rt.name,
        cr.name,
        result.action.name,
        extra={"session": session.session_id, "tree": tree.tree_id, "open": o.volatile_id},
    )
    body: list[Buffer] = []
    body += wc.pack_create_response(
        wc.CreateResponse(
            oplock_level=oplock_level,
            flags=0,
            create_action=result.action,
            creation_time=st.creation_time,
            last_access_time=st.last_access_time,
            last_write_time=st.last_write_time,
            change_time=st.change_time,
            allocation_size=st.allocation_size,
            end_of_file=st.end_of_file,
            file_attributes=st.attributes,
            file_id=o.file_id,
            contexts=tuple(contexts),
        )
    )
    return Response(body)


def _stored_sd(blob: bytes) -> security.SecurityDescriptor:
    """A stored descriptor; one that no longer parses is logged and replaced by the
    default rather than locking everyone out."""
    try:
        return security.parse(blob)
    except ParseError:
        log.warning("unreadable stored security descriptor; using the default")
        return security.default_descriptor()


def _v1_leased(o: Open) -> bool:
    """A DHnQ open with a lease: a DH2C may reclaim it, the lease key standing in for the
    CreateGuid it never had (Windows does; smbtorture durable-open.reopen2-lease)."""
    return not o.create_guid and o.lease_key is not None


async def _reconnect(
    req: Request,
    cr: wc.CreateRequest,
    rt: ShareRuntime,
    dhnc: wc.CreateContext | None,
    dh2c: wc.CreateContext | None,
) -> Response:
    """Reclaim a disconnected durable open ([MS-SMB2] 3.3.5.9.7 DHnC, 3.3.5.9.12 DH2C).
    Every mismatch is OBJECT_NAME_NOT_FOUND, as the spec says, so that a client cannot
    probe other clients' opens."""
    session, tree = session_tree(req)
    files = files_of(req)
    if dh2c is not None:
        r2 = wc.parse_durable_v2_reconnect(dh2c.data)
        persistent, create_guid = r2.file_id[0], r2.create_guid
    else:
        assert dhnc is not None
        persistent, create_guid = wc.parse_durable_reconnect(dhnc.data)[0], None
    o = files.by_persistent.get(persistent)
    rqls = cr.context(wc.CTX_REQUEST_LEASE)
    lease = wc.parse_lease(rqls.data) if rqls is not None else None
    if (
        o is None
        or not o.is_durable
        or o.file.runtime is not rt
        or (create_guid is not None and o.create_guid != create_guid and not _v1_leased(o))
        or (o.lease_key is not None and (lease is None or lease.key != o.lease_key))
        or (o.lease_key is not None and o.client_guid != req.connection.client_guid)
    ):
        raise SMBError(NTStatus.OBJECT_NAME_NOT_FOUND, "no durable open to reconnect")
    if o.disconnected_at is None:
        raise SMBError(NTStatus.OBJECT_NAME_NOT_FOUND, "the open is still connected")
    if o.lease_key is not None and cr.name != o.file.path:
        # Windows checks the name of leased opens only (smbtorture durable-open.reopen2-lease)
        raise SMBError(NTStatus.INVALID_PARAMETER, "reconnect names another file")
    if o.user != session.user:
        raise SMBError(NTStatus.ACCESS_DENIED, "durable open of another user")
    files.reattach(o, session=session, tree=tree, connection=req.connection)
    with smb_errors():
        st = await rt.backend.stat(o.handle)
    contexts: list[tuple[bytes, bytes]] = []
    if lease is not None and o.lease_key is not None:
        contexts.append(
            (
                wc.CTX_REQUEST_LEASE,
                wc.pack_lease(
                    wc.Lease(lease.key, o.lease_state, 0, 0, lease.parent_key, 0, lease.version)
                ),
            )
        )
    req.set_related_file_id(o.file_id)
    rt.ops += 1
    log.info(
        "durable reconnect of %s\\%s",
        rt.name,
        o.file.path,
        extra={"session": session.session_id, "tree": tree.tree_id, "open": o.volatile_id},
    )
    body: list[Buffer] = []
    body += wc.pack_create_response(
        wc.CreateResponse(
            oplock_level=o.oplock_level,
            flags=0,
            create_action=CreateAction.OPENED,
            creation_time=st.creation_time,
            last_access_time=st.last_access_time,
            last_write_time=st.last_write_time,
            change_time=st.change_time,
            allocation_size=st.allocation_size,
            end_of_file=st.end_of_file,
            file_attributes=st.attributes,
            file_id=o.file_id,
            contexts=tuple(contexts),
        )
    )
    return Response(body)


async def _discard(
    files: FileServerState, rt: ShareRuntime, handle: FileHandle, action: CreateAction
) -> None:
    """Undo a backend open whose CREATE failed afterwards (a file it created goes too)."""

    def body() -> None:
        if action == CreateAction.CREATED and handle.key not in files.files:
            with contextlib.suppress(BackendError):
                rt.backend.unlink_sync(handle)
        rt.backend.close_sync(handle)

    try:
        await rt.backend.run(body)
    except (BackendError, OSError) as exc:
        log.warning("discarding a failed open: %s", exc)
