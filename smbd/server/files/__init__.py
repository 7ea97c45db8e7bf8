"""File service: the open table and share-mode arbitration (:mod:`.state`), Open objects
(:mod:`.opens`) and the handlers for CREATE, CLOSE, FLUSH, READ, WRITE, QUERY_DIRECTORY,
QUERY_INFO and SET_INFO. The phase-2 managers (locks, leases, notify, ioctl) add their
handlers to :data:`HANDLERS` from their own modules when present.
"""

from __future__ import annotations

import importlib

from smbd.server.files.close import handle_close, handle_flush
from smbd.server.files.create import handle_create
from smbd.server.files.directory import handle_query_directory
from smbd.server.files.info import handle_query_info, handle_set_info
from smbd.server.files.readwrite import handle_read, handle_write, preread, write_now
from smbd.server.files.state import FileServerState
from smbd.server.request import Handler
from smbd.wire.constants import Command

__all__ = ["HANDLERS", "FileServerState", "preread", "write_now"]

HANDLERS: dict[Command, Handler] = {
    Command.CREATE: handle_create,
    Command.CLOSE: handle_close,
    Command.FLUSH: handle_flush,
    Command.READ: handle_read,
    Command.WRITE: handle_write,
    Command.QUERY_DIRECTORY: handle_query_directory,
    Command.QUERY_INFO: handle_query_info,
    Command.SET_INFO: handle_set_info,
}

# Phase-2 modules export HANDLERS of their own (LOCK, IOCTL, CHANGE_NOTIFY, OPLOCK_BREAK).
for _name in ("locks", "leases", "notify", "ioctl"):
    try:
        _mod = importlib.import_module(f"smbd.server.files.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"smbd.server.files.{_name}":
            raise
        continue
    HANDLERS.update(getattr(_mod, "HANDLERS", {}))
