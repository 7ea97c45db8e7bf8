"""The daemon's control socket: one JSON request line in, one JSON reply line out.

It lives in the state directory (mode 0600, so only the owner of the state may use it). The
CLI uses it for ``vmstor status`` and to tell a running daemon that persisted state changed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger("vmstor.control")

Handler = Callable[[dict[str, Any]], Any]
MAX_REQUEST = 64 * 1024
SOCKET_NAME = "control.sock"


class ControlError(Exception):
    pass


async def serve(
    path: Path,
    handlers: Mapping[str, Handler],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(16)
    listener = trio.SocketListener(sock)

    async def one(stream: trio.abc.Stream) -> None:
        async with stream:
            buf = bytearray()
            with trio.move_on_after(10):
                while b"\n" not in buf and len(buf) < MAX_REQUEST:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        return
                    buf += chunk
            try:
                req = json.loads(bytes(buf).split(b"\n", 1)[0])
                handler = handlers[req["cmd"]]
                reply: dict[str, Any] = {"ok": True, "result": handler(req)}
            except Exception as e:  # reported to the CLI, never fatal to the daemon
                log.warning("control request failed: %r", e)
                reply = {"ok": False, "error": str(e) or type(e).__name__}
            await stream.send_all((json.dumps(reply) + "\n").encode())

    try:
        task_status.started()
        await trio.serve_listeners(one, [listener])
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def request(state_dir: Path, cmd: str, timeout: float = 10.0, **args: Any) -> Any:
    """Blocking client for the CLI. Raises ControlError when no daemon answers."""
    path = state_dir / SOCKET_NAME
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except OSError as e:
        s.close()
        raise ControlError(f"no daemon is running for this state directory ({path}): {e}") from None
    with s:
        s.sendall((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        data = bytearray()
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(bytes(data))
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "request failed"))
    return reply.get("result")


def notify(state_dir: Path, what: str) -> bool:
    """Tell a running daemon (if any) that ``what`` changed on disk. True if one answered."""
    try:
        request(state_dir, "reload", what=what)
    except ControlError:
        return False
    return True
