"""[MS-SMB2] 3.3.5.5 SESSION_SETUP, 3.3.5.6 LOGOFF, 3.3.5.7 TREE_CONNECT, 3.3.5.8
TREE_DISCONNECT, with the in-project raw client."""

from __future__ import annotations

import pytest

from smbd.wire.constants import Command, SessionFlags, ShareFlags, ShareType
from smbd.wire.misc import SIMPLE_BODY
from smbd.wire.session import parse_session_setup_response
from smbd.wire.status import NTStatus
from smbd.wire.tree import parse_tree_connect_response
from tests.smbd.server.conftest import PASSWORD, USER, Running
from tests.smbd.server.rawclient import ALL_DIALECTS


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
async def test_session_and_trees(smb: Running, dialect: int) -> None:
    c = await smb.session((dialect,))
    assert c.session_id
    status = smb.server.status()
    (s,) = status["sessions"]
    assert s["user"].endswith(USER)
    assert s["signed"] is True
    assert s["channels"] == 1
    r = await c.tree_connect(r"\\127.0.0.1\share")
    assert r.status == 0
    assert r.header.flags & 0x8  # signed: signing is required
    t = parse_tree_connect_response(r.body)
    assert t.share_type == ShareType.DISK
    assert t.maximal_access == 0x001F01FF
    tid = r.header.tree_id
    r = await c.tree_connect(r"\\127.0.0.1\IPC$")
    assert parse_tree_connect_response(r.body).share_type == ShareType.PIPE
    r = await c.tree_connect(r"\\127.0.0.1\RO")
    assert parse_tree_connect_response(r.body).maximal_access == 0x001200A9
    r = await c.call(Command.TREE_DISCONNECT, SIMPLE_BODY, tree_id=tid)
    assert r.status == 0
    r = await c.call(Command.TREE_DISCONNECT, SIMPLE_BODY, tree_id=tid)
    assert r.status == NTStatus.NETWORK_NAME_DELETED
    r = await c.call(Command.LOGOFF, SIMPLE_BODY)
    assert r.status == 0
    assert smb.server.status()["sessions"] == []
    r = await c.call(Command.ECHO, SIMPLE_BODY)
    assert r.status == 0
    r = await c.call(Command.TREE_CONNECT, b"\x09\x00" + bytes(7))
    assert r.status == NTStatus.USER_SESSION_DELETED


async def test_wrong_password(smb: Running) -> None:
    c = await smb.client()
    await c.negotiate((0x0311,))
    r = await c.session_setup(USER, "not-" + PASSWORD)
    assert r.status == NTStatus.LOGON_FAILURE
    assert smb.server.sessions == {}
    # the connection stays usable
    r = await c.session_setup(USER, PASSWORD)
    assert r.status == 0


async def test_unknown_user(smb: Running) -> None:
    c = await smb.client()
    await c.negotiate((0x0302,))
    r = await c.session_setup("mallory", "x")
    assert r.status == NTStatus.LOGON_FAILURE


async def test_unknown_session_id(smb: Running) -> None:
    c = await smb.session()
    r = await c.call(Command.TREE_CONNECT, b"\x09\x00" + bytes(7), session_id=0x1234)
    assert r.status == NTStatus.USER_SESSION_DELETED


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (r"\\127.0.0.1\nope", NTStatus.BAD_NETWORK_NAME),
        (r"share", NTStatus.BAD_NETWORK_NAME),
        (r"\\127.0.0.1\share\sub", NTStatus.BAD_NETWORK_NAME),
        (r"\\\share", NTStatus.BAD_NETWORK_NAME),
    ],
)
async def test_bad_network_name(smb: Running, path: str, status: int) -> None:
    c = await smb.session()
    r = await c.tree_connect(path)
    assert r.status == status


async def test_encrypted_share(smb: Running) -> None:
    c = await smb.session((0x0311,))
    r = await c.tree_connect(r"\\127.0.0.1\enc")
    assert r.status == 0
    assert not r.raw.startswith(b"\xfd")
    t = parse_tree_connect_response(r.body)
    assert t.share_flags & ShareFlags.ENCRYPT_DATA
    tid = r.header.tree_id
    # unencrypted requests on the tree are refused
    r = await c.call(Command.TREE_DISCONNECT, SIMPLE_BODY, tree_id=tid)
    assert r.status == NTStatus.ACCESS_DENIED
    # encrypted ones work, and the answer is encrypted
    h = c.header(Command.TREE_DISCONNECT, tree_id=tid)
    await c.send(c.build(h, SIMPLE_BODY, sign=False), encrypt=True)
    frame = await c.recv_frame()
    assert frame[:4] == b"\xfdSMB"


async def test_encrypted_share_refused_without_encryption(smb: Running) -> None:
    c = await smb.session((0x0210,))
    r = await c.tree_connect(r"\\127.0.0.1\enc")
    assert r.status == NTStatus.ACCESS_DENIED


async def test_server_wide_encryption(start_server: object) -> None:
    run = await start_server(encrypt=True)  # type: ignore[operator]
    c = await run.session((0x0311,))
    # unencrypted requests on the session are refused, even ECHO
    r = await c.call(Command.ECHO, SIMPLE_BODY)
    assert r.status == NTStatus.ACCESS_DENIED
    r = await c.call(Command.ECHO, SIMPLE_BODY, session_id=0)
    assert r.status == 0  # ECHO needs no session
    r = await c.tree_connect(r"\\127.0.0.1\share")
    assert r.status == NTStatus.ACCESS_DENIED
    r = await c.tree_connect(r"\\127.0.0.1\share", encrypt=True)
    assert r.status == 0


async def test_server_wide_encryption_refuses_2_1(start_server: object) -> None:
    run = await start_server(encrypt=True)  # type: ignore[operator]
    c = await run.client()
    await c.negotiate((0x0210,))
    r = await c.session_setup(USER, PASSWORD)
    assert r.status == NTStatus.ACCESS_DENIED


async def test_session_flags(start_server: object) -> None:
    run = await start_server(encrypt=True)  # type: ignore[operator]
    c = await run.client()
    await c.negotiate((0x0300,))
    r = await c.session_setup(USER, PASSWORD)
    assert parse_session_setup_response(r.body).session_flags == SessionFlags.ENCRYPT_DATA
