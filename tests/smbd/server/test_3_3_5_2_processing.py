"""[MS-SMB2] 3.3.5.2 Receiving any message: signing, message ids and credits, compound
chains, async operations and CANCEL, and what bad input gets."""

from __future__ import annotations

import struct
from typing import Any

import trio

from smbd import crypto
from smbd.server.request import Request, Response, SMBError
from smbd.server.server import ServerLimits
from smbd.wire.constants import Command, HeaderFlags
from smbd.wire.misc import SIMPLE_BODY
from smbd.wire.status import NTStatus
from smbd.wire.tree import pack_tree_connect_request
from tests.smbd.server.conftest import Running

ECHO = SIMPLE_BODY


# ------------------------------------------------------------------ 3.3.5.2.4 signing


async def test_unsigned_request_on_signed_session_is_refused(smb: Running) -> None:
    c = await smb.session()
    h = c.header(Command.TREE_CONNECT)
    await c.send(c.build(h, pack_tree_connect_request(r"\\x\share"), sign=False))
    r = await c.recv_one()
    assert r.status == NTStatus.ACCESS_DENIED


async def test_bad_signature_is_refused(smb: Running) -> None:
    c = await smb.session()
    msg = bytearray(
        c.build(c.header(Command.TREE_CONNECT), pack_tree_connect_request(r"\\x\share"))
    )
    msg[50] ^= 1
    await c.send(bytes(msg))
    r = await c.recv_one()
    assert r.status == NTStatus.ACCESS_DENIED


async def test_responses_are_signed_with_the_negotiated_algorithm(smb: Running) -> None:
    for dialect, signing in ((0x0202, None), (0x0300, None), (0x0311, (crypto.AES_GMAC,))):
        kw: dict[str, Any] = {} if signing is None else {"signing": signing}
        c = await smb.session((dialect,), **kw)
        r = await c.tree_connect(r"\\x\share")
        assert r.header.flags & HeaderFlags.SIGNED
        assert crypto.verify(c.signing_algorithm, c.signing_key, r.raw)


async def test_unsigned_session_when_signing_is_not_required(start_server: Any) -> None:
    run = await start_server(require_signing=False)
    c = await run.session((0x0302,))
    r = await c.call(Command.TREE_CONNECT, pack_tree_connect_request(r"\\x\share"))
    assert r.status == 0  # signed by the client; answered signed
    assert r.header.flags & HeaderFlags.SIGNED
    c.signing_key = b""  # now unsigned
    r = await c.call(Command.TREE_CONNECT, pack_tree_connect_request(r"\\x\share"))
    assert r.status == 0
    assert not r.header.flags & HeaderFlags.SIGNED


# ------------------------------------------------------------------ 3.3.5.2.3 credits


async def test_duplicate_message_id_disconnects(smb: Running) -> None:
    c = await smb.session()
    mid = c.next_mid
    assert (await c.call(Command.ECHO, ECHO, message_id=mid)).status == 0
    await c.send(c.build(c.header(Command.ECHO, message_id=mid), ECHO))
    await c.expect_disconnect()


async def test_message_id_beyond_the_window_disconnects(smb: Running) -> None:
    c = await smb.session()
    await c.send(c.build(c.header(Command.ECHO, message_id=c.next_mid + 100_000), ECHO))
    await c.expect_disconnect()


async def test_credits_are_granted_and_bounded(start_server: Any) -> None:
    run = await start_server(limits=ServerLimits(max_credits=100))
    c = await run.session()
    r = await c.call(Command.ECHO, ECHO, credits=1000)
    granted = r.header.credits
    assert 1 <= granted <= 100
    window = run.server.processors[max(run.server.processors)].conn.credits
    assert window.high - window.low <= 100
    # asking for none still leaves the client a credit
    r = await c.call(Command.ECHO, ECHO, credits=0)
    assert window.available >= 1


async def test_out_of_order_message_ids(smb: Running) -> None:
    c = await smb.session()
    await c.call(Command.ECHO, ECHO, credits=10)
    base = c.next_mid
    for mid in (base + 2, base, base + 1):
        assert (await c.call(Command.ECHO, ECHO, message_id=mid)).status == 0


async def test_credit_charge_must_cover_the_payload(smb: Running) -> None:
    c = await smb.session()
    r = await c.tree_connect(r"\\x\share", credits=256)
    tid = r.header.tree_id
    # a 1 MiB READ needs a charge of 16
    read = struct.pack("<HBBIQQQIIIHH", 49, 0, 0, 1 << 20, 0, 1, 2, 0, 0, 0, 0, 0) + b"\0"
    r = await c.call(Command.READ, read, tree_id=tid, credit_charge=1)
    assert r.status == NTStatus.INVALID_PARAMETER


async def test_3_3_5_2_5_bad_credit_charge_is_answered_signed(smb: Running) -> None:
    """The CreditCharge check runs once the request's session is known, so its error is
    signed like any answer of the session, in a related chain too."""
    c = await smb.session()
    r = await c.tree_connect(r"\\x\share", credits=256)
    tid = r.header.tree_id
    read = struct.pack("<HBBIQQQIIIHH", 49, 0, 0, 1 << 20, 0, 1, 2, 0, 0, 0, 0, 0) + b"\0"
    r = await c.call(Command.READ, read, tree_id=tid, credit_charge=1)
    assert r.status == NTStatus.INVALID_PARAMETER
    assert crypto.verify(c.signing_algorithm, c.signing_key, r.raw)
    rel = HeaderFlags.RELATED_OPERATIONS
    msgs = [
        (c.header(Command.TREE_CONNECT), pack_tree_connect_request(r"\\x\share")),
        (
            c.header(
                Command.READ,
                flags=rel,
                tree_id=0xFFFFFFFF,
                session_id=0xFFFFFFFFFFFFFFFF,
                credit_charge=1,
            ),
            read,
        ),
    ]
    await c.send(c.compound(msgs))
    replies = await c.recv()
    assert [r.status for r in replies] == [0, NTStatus.INVALID_PARAMETER]
    for r in replies:
        assert crypto.verify(c.signing_algorithm, c.signing_key, r.raw)


async def test_3_3_5_2_9_unknown_session_error_echoes_the_signature(smb: Running) -> None:
    """smb2.compound.invalid2 with signing required: a signed request for a session the
    server does not know gets USER_SESSION_DELETED, and the related request after it
    INVALID_PARAMETER; with no key to sign with, both carry the request's SIGNED flag and
    signature back (as Samba), which a client that requires signing accepts for these
    errors where it drops an unsigned answer."""
    c = await smb.session()
    rel = HeaderFlags.RELATED_OPERATIONS
    none = 0xFFFFFFFFFFFFFFFF
    msgs = [
        (c.header(Command.TREE_CONNECT, session_id=none), pack_tree_connect_request("x")),
        (c.header(Command.TREE_DISCONNECT, flags=rel, session_id=none), SIMPLE_BODY),
        (c.header(Command.ECHO, session_id=none), ECHO),
    ]
    chain = c.compound(msgs)
    second = struct.unpack_from("<I", chain, 20)[0]
    third = second + struct.unpack_from("<I", chain, second + 20)[0]
    await c.send(chain)
    replies = await c.recv()
    assert [r.status for r in replies] == [
        NTStatus.USER_SESSION_DELETED,
        NTStatus.INVALID_PARAMETER,
        NTStatus.SUCCESS,
    ]
    for r, off in zip(replies[:2], (0, second), strict=True):
        assert r.header.flags & HeaderFlags.SIGNED
        assert r.header.signature == chain[off + 48 : off + 64]
    # a successful answer is never dressed up as signed
    assert not replies[2].header.flags & HeaderFlags.SIGNED
    assert chain[third + 48 : third + 64] != bytes(16)
    # unsigned requests get unsigned errors
    h = c.header(Command.TREE_CONNECT, session_id=none)
    await c.send(c.build(h, pack_tree_connect_request("x"), sign=False))
    r = await c.recv_one()
    assert r.status == NTStatus.USER_SESSION_DELETED
    assert not r.header.flags & HeaderFlags.SIGNED


# ------------------------------------------------------------------ compound (3.3.5.2.7)


async def test_unrelated_compound(smb: Running) -> None:
    c = await smb.session()
    msgs = [
        (c.header(Command.ECHO), ECHO),
        (c.header(Command.TREE_CONNECT), pack_tree_connect_request(r"\\x\share")),
        (c.header(Command.TREE_CONNECT), pack_tree_connect_request(r"\\x\nope")),
    ]
    await c.send(c.compound(msgs))
    replies = await c.recv()
    assert [r.header.command for r in replies] == [
        Command.ECHO,
        Command.TREE_CONNECT,
        Command.TREE_CONNECT,
    ]
    assert [r.status for r in replies] == [0, 0, NTStatus.BAD_NETWORK_NAME]
    for r in replies[:-1]:
        assert r.header.next_command % 8 == 0
    for r in replies:
        assert crypto.verify(c.signing_algorithm, c.signing_key, r.raw)


async def test_compound_pads_the_last_response_too(smb: Running) -> None:
    """[MS-SMB2] 3.3.4.1.3: the last response of a compound is padded to 8 bytes (the
    signature covers the padding); a response on its own is not."""
    c = await smb.session()
    await c.send(c.compound([(c.header(Command.ECHO), ECHO), (c.header(Command.ECHO), ECHO)]))
    replies = await c.recv()
    assert [len(r.raw) for r in replies] == [72, 72]  # 64 + 4, padded
    assert replies[1].raw[68:] == bytes(4)
    for r in replies:
        assert crypto.verify(c.signing_algorithm, c.signing_key, r.raw)
    await c.send(c.compound([(c.header(Command.ECHO), ECHO)]))
    (alone,) = await c.recv()
    assert len(alone.raw) == 68


async def test_related_compound_uses_the_previous_tree(smb: Running) -> None:
    c = await smb.session()
    related = HeaderFlags.RELATED_OPERATIONS
    msgs = [
        (c.header(Command.TREE_CONNECT), pack_tree_connect_request(r"\\x\share")),
        (
            c.header(Command.TREE_DISCONNECT, flags=related, tree_id=0xFFFFFFFF),
            SIMPLE_BODY,
        ),
    ]
    await c.send(c.compound(msgs))
    replies = await c.recv()
    assert [r.status for r in replies] == [0, 0]
    assert replies[1].header.flags & related
    assert replies[0].header.tree_id == replies[1].header.tree_id
    (s,) = smb.server.sessions.values()
    assert s.trees == {}


def _file_handlers(log: list[Any]) -> dict[int, Any]:
    async def create(req: Request) -> Response:
        name = bytes(req.body[8:]).rstrip(b"\0").decode()
        if name == "missing":
            raise SMBError(NTStatus.OBJECT_NAME_NOT_FOUND, "no such file")
        req.set_related_file_id((7, 8))
        return Response([b"created"])

    async def close(req: Request) -> Response:
        p, v = struct.unpack_from("<QQ", req.body, 8)
        log.append(req.file_id(p, v))
        return Response([b"closed"])

    return {Command.CREATE: create, Command.CLOSE: close}


async def test_related_file_id_and_error_cascade(start_server: Any) -> None:
    log: list[Any] = []
    run = await start_server(handlers=_file_handlers(log))
    c = await run.session()
    tid = (await c.tree_connect(r"\\x\share")).header.tree_id
    rel = HeaderFlags.RELATED_OPERATIONS
    wild = b"\x18\x00\x00\x00\x00\x00\x00\x00" + b"\xff" * 16
    msgs = [
        (c.header(Command.CREATE, tree_id=tid), b"\x39\x00" + bytes(6) + b"file"),
        (c.header(Command.CLOSE, flags=rel), wild),
    ]
    await c.send(c.compound(msgs))
    replies = await c.recv()
    assert [r.status for r in replies] == [0, 0]
    assert log == [(7, 8)]
    # a failed CREATE fails the related requests after it with its status
    msgs = [
        (c.header(Command.CREATE, tree_id=tid), b"\x39\x00" + bytes(6) + b"missing"),
        (c.header(Command.CLOSE, flags=rel), wild),
        (c.header(Command.CLOSE, flags=rel), wild),
    ]
    await c.send(c.compound(msgs))
    replies = await c.recv()
    assert [r.status for r in replies] == [NTStatus.OBJECT_NAME_NOT_FOUND] * 3
    # signed with the chain's session, whatever SessionId the related requests carry
    none = 0xFFFFFFFFFFFFFFFF
    msgs = [
        (c.header(Command.CREATE, tree_id=tid), b"\x39\x00" + bytes(6) + b"missing"),
        (c.header(Command.CLOSE, flags=rel, session_id=none, tree_id=0xFFFFFFFF), wild),
    ]
    await c.send(c.compound(msgs))
    replies = await c.recv()
    assert [r.status for r in replies] == [NTStatus.OBJECT_NAME_NOT_FOUND] * 2
    for r in replies:
        assert crypto.verify(c.signing_algorithm, c.signing_key, r.raw)
    # the all-ones FileId outside a related chain names nothing
    r = await c.call(Command.CLOSE, wild, tree_id=tid)
    assert r.status == NTStatus.FILE_CLOSED


async def test_bad_next_command_disconnects(smb: Running) -> None:
    c = await smb.session()
    msg = bytearray(c.build(c.header(Command.ECHO), ECHO + bytes(4)))
    msg[20:24] = struct.pack("<I", 12)  # NextCommand not 8-aligned, inside the header
    await c.send(bytes(msg))
    await c.expect_disconnect()


# ------------------------------------------------------------------ async and CANCEL


def _notify_handler(events: list[str]) -> dict[int, Any]:
    async def notify(req: Request) -> Response:
        await trio.sleep(0.05)
        await req.go_async()
        events.append("async")
        try:
            await trio.sleep_forever()
        finally:
            events.append("cancelled")
        raise AssertionError("unreachable")

    return {Command.CHANGE_NOTIFY: notify}


async def test_3_3_5_16_cancel_async_request(start_server: Any) -> None:
    events: list[str] = []
    run = await start_server(handlers=_notify_handler(events))
    c = await run.session()
    tid = (await c.tree_connect(r"\\x\share")).header.tree_id
    h = c.header(Command.CHANGE_NOTIFY, tree_id=tid)
    await c.send(c.build(h, b"\x20\x00" + bytes(30)))
    (interim,) = await c.recv()
    assert interim.status == NTStatus.PENDING
    assert interim.header.flags & HeaderFlags.ASYNC_COMMAND
    assert interim.header.async_id
    assert interim.header.credits >= 1
    assert crypto.verify(c.signing_algorithm, c.signing_key, interim.raw)
    cancel = c.header(
        Command.CANCEL,
        message_id=0,
        flags=HeaderFlags.ASYNC_COMMAND,
        async_id=interim.header.async_id,
    )
    await c.send(c.build(cancel, SIMPLE_BODY))
    (final,) = await c.recv()
    assert final.status == NTStatus.CANCELLED
    assert final.header.async_id == interim.header.async_id
    assert final.header.message_id == h.message_id
    assert final.header.credits == 0
    assert events == ["async", "cancelled"]


async def test_3_3_5_16_cancel_by_message_id_before_async(start_server: Any) -> None:
    events: list[str] = []
    run = await start_server(handlers=_notify_handler(events))
    c = await run.session()
    tid = (await c.tree_connect(r"\\x\share")).header.tree_id
    h = c.header(Command.CHANGE_NOTIFY, tree_id=tid)
    await c.send(c.build(h, b"\x20\x00" + bytes(30)))
    await c.send(c.build(c.header(Command.CANCEL, message_id=h.message_id), SIMPLE_BODY))
    statuses = [(await c.recv())[0].status, (await c.recv())[0].status]
    assert statuses == [NTStatus.PENDING, NTStatus.CANCELLED]


async def test_async_limit(start_server: Any) -> None:
    events: list[str] = []
    run = await start_server(
        handlers=_notify_handler(events), limits=ServerLimits(async_per_connection=2)
    )
    c = await run.session()
    tid = (await c.tree_connect(r"\\x\share", credits=64)).header.tree_id
    for _ in range(3):
        await c.send(c.build(c.header(Command.CHANGE_NOTIFY, tree_id=tid), b"\x20\x00" + bytes(30)))
    got = sorted([(await c.recv())[0].status for _ in range(3)])
    assert got == sorted([NTStatus.PENDING, NTStatus.PENDING, NTStatus.INSUFFICIENT_RESOURCES])


# ------------------------------------------------------------------ bad input


async def test_unknown_command(smb: Running) -> None:
    c = await smb.session()
    r = await c.call(0x0099, ECHO)
    assert r.status == NTStatus.INVALID_PARAMETER


async def test_truncated_header_disconnects(smb: Running) -> None:
    c = await smb.client()
    await c.send_frame(b"\xfeSMB" + bytes(20))
    await c.expect_disconnect()


async def test_unknown_protocol_disconnects(smb: Running) -> None:
    c = await smb.client()
    await c.send_frame(b"GET / HTTP/1.1\r\n\r\n")
    await c.expect_disconnect()


async def test_oversized_frame_disconnects(smb: Running) -> None:
    c = await smb.client()
    await c.stream.send_all(struct.pack(">I", 16 << 20))
    await c.expect_disconnect()


async def test_non_zero_first_byte_disconnects(smb: Running) -> None:
    c = await smb.client()
    await c.stream.send_all(b"\x81\x00\x00\x44")
    await c.expect_disconnect()


async def test_frame_cut_short(smb: Running) -> None:
    c = await smb.client()
    await c.stream.send_all(struct.pack(">I", 200) + b"\xfeSMB")
    await c.aclose()
    other = await smb.session()
    assert (await other.call(Command.ECHO, ECHO)).status == 0


async def test_garbage_body_gets_an_error_not_a_crash(smb: Running) -> None:
    c = await smb.session()
    for cmd in (Command.TREE_CONNECT, Command.SESSION_SETUP, Command.LOGOFF, Command.ECHO):
        r = await c.call(cmd, b"\x01")
        assert r.status == NTStatus.INVALID_PARAMETER
    assert (await c.call(Command.ECHO, ECHO)).status == 0


async def test_silent_client_is_dropped(start_server: Any) -> None:
    run = await start_server(limits=ServerLimits(handshake_timeout=0.3))
    c = await run.client()
    await c.expect_disconnect(timeout=5)
    c2 = await run.client()
    await c2.negotiate()
    await c2.expect_disconnect(timeout=5)  # negotiated, but no session followed


async def test_client_that_never_reads_is_dropped(start_server: Any) -> None:
    async def big(req: Request) -> Response:
        return Response([bytes(1 << 20)])

    run = await start_server(
        handlers={Command.READ: big},
        limits=ServerLimits(send_timeout=0.5),
    )
    c = await run.session()
    tid = (await c.tree_connect(r"\\x\share", credits=512)).header.tree_id
    read = struct.pack("<HBBIQQQIIIHH", 49, 0, 0, 1 << 20, 0, 1, 2, 0, 0, 0, 0, 0) + b"\0"
    for _ in range(32):
        await c.send(c.build(c.header(Command.READ, tree_id=tid, credit_charge=16), read))
    with trio.fail_after(10):
        while run.server.connections:
            await trio.sleep(0.05)
    other = await run.session()
    assert (await other.call(Command.ECHO, ECHO)).status == 0


# ------------------------------------------------------------------ unsolicited (3.3.4.6)


def _breaking_handler() -> dict[int, Any]:
    async def notify(req: Request) -> Response:
        await req.server.send_unsolicited(
            req.connection, Command.OPLOCK_BREAK, [b"\x2c\x00" + bytes(42)], req.session
        )
        return Response([b"\x09\x00\x00\x00\x00\x00\x00\x00\x00"])

    return {Command.CHANGE_NOTIFY: notify}


async def test_3_3_4_6_unsolicited_break(start_server: Any) -> None:
    run = await start_server(handlers=_breaking_handler())
    c = await run.session()
    tid = (await c.tree_connect(r"\\x\share")).header.tree_id
    await c.send(c.build(c.header(Command.CHANGE_NOTIFY, tree_id=tid), b"\x20\x00" + bytes(30)))
    (brk,) = await c.recv()
    assert brk.header.command == Command.OPLOCK_BREAK
    assert brk.header.message_id == 0xFFFF_FFFF_FFFF_FFFF
    assert brk.header.flags & HeaderFlags.SERVER_TO_REDIR
    assert brk.header.credits == 0
    assert brk.body[:2] == b"\x2c\x00"
    (resp,) = await c.recv()
    assert resp.header.command == Command.CHANGE_NOTIFY


async def test_3_3_4_6_unsolicited_break_is_encrypted(start_server: Any) -> None:
    run = await start_server(handlers=_breaking_handler(), encrypt=True)
    c = await run.session()
    r = await c.tree_connect(r"\\x\share", encrypt=True)
    tid = r.header.tree_id
    h = c.header(Command.CHANGE_NOTIFY, tree_id=tid)
    await c.send(c.build(h, b"\x20\x00" + bytes(30), sign=False), encrypt=True)
    frame = await c.recv_frame()
    assert frame[:4] == b"\xfdSMB"
    _sid, plain = crypto.decrypt(c.cipher, c.keys.encryption, frame)
    assert plain[12] == Command.OPLOCK_BREAK


async def test_3_3_5_2_7_2_related_rules(start_server: Any) -> None:
    """smbtorture smb2.compound invalid1/invalid3: a chain that starts related has no
    session (INVALID_PARAMETER, and so do related requests after it); an unrelated
    request forgets the chain's file."""
    log: list[Any] = []
    run = await start_server(handlers=_file_handlers(log))
    c = await run.session()
    tid = (await c.tree_connect(r"\\x\share")).header.tree_id
    rel = HeaderFlags.RELATED_OPERATIONS
    wild = b"\x18\x00\x00\x00\x00\x00\x00\x00" + b"\xff" * 16
    create = b"\x39\x00" + bytes(6) + b"file"
    msgs = [
        (c.header(Command.CREATE, tree_id=tid, flags=rel), create),
        (c.header(Command.CLOSE, flags=rel), wild),
        (c.header(Command.CLOSE, tree_id=tid), wild),
    ]
    await c.send(c.compound(msgs))
    replies = await c.recv()
    assert [r.status for r in replies] == [
        NTStatus.INVALID_PARAMETER,
        NTStatus.INVALID_PARAMETER,
        NTStatus.FILE_CLOSED,
    ]
    # signed all the same: a client that requires signing drops unsigned answers
    for r in replies:
        assert crypto.verify(c.signing_algorithm, c.signing_key, r.raw)
    msgs = [
        (c.header(Command.CREATE, tree_id=tid), create),
        (c.header(Command.CLOSE, tree_id=tid), wild),
        (c.header(Command.CLOSE, flags=rel), wild),
    ]
    await c.send(c.compound(msgs))
    statuses = [r.status for r in await c.recv()]
    assert statuses == [0, NTStatus.FILE_CLOSED, NTStatus.FILE_CLOSED]


async def test_3_3_5_2_7_no_async_inside_a_chain(start_server: Any) -> None:
    """Only a CREATE or the last request of a chain may go async (smb2.compound interim2)."""
    events: list[str] = []
    run = await start_server(handlers=_notify_handler(events))
    c = await run.session()
    tid = (await c.tree_connect(r"\\x\share")).header.tree_id
    msgs = [
        (c.header(Command.CHANGE_NOTIFY, tree_id=tid), b"\x20\x00" + bytes(30)),
        (c.header(Command.ECHO), SIMPLE_BODY),
    ]
    await c.send(c.compound(msgs))
    replies = await c.recv()
    assert [r.status for r in replies] == [NTStatus.INTERNAL_ERROR, 0]
    assert events == []
