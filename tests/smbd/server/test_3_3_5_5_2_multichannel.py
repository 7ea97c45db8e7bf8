"""[MS-SMB2] 3.3.5.5.2 binding a connection to a session (multichannel), 3.3.5.5.3
re-authentication, and 3.3.5.15.11 FSCTL_QUERY_NETWORK_INTERFACE_INFO."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import pytest
import spnego

from smbd import crypto
from smbd.wire.constants import Command, HeaderFlags
from smbd.wire.ioctl import pack_ioctl_request, parse_ioctl_response
from smbd.wire.misc import SIMPLE_BODY
from smbd.wire.session import pack_session_setup_request
from smbd.wire.status import NTStatus
from tests.smbd.server.conftest import PASSWORD, USER, Running
from tests.smbd.server.rawclient import RawClient, Reply


@pytest.mark.parametrize("dialect", [0x0300, 0x0302, 0x0311])
async def test_bind_second_channel(smb: Running, dialect: int) -> None:
    c1 = await smb.session((dialect,))
    tid = (await c1.tree_connect(r"\\x\share")).header.tree_id
    c2 = await smb.client()
    c2.client_guid = c1.client_guid
    await c2.negotiate((dialect,))
    r = await c2.session_setup(USER, PASSWORD, bind_to=c1)
    assert r.status == 0
    assert c2.signing_key != c1.signing_key or dialect != 0x0311
    (s,) = smb.server.status()["sessions"]
    assert s["channels"] == 2
    assert len(smb.server.status()["channels"]) == 2
    # the tree of the session works on the new channel, signed with the channel key
    r = await c2.call(Command.TREE_DISCONNECT, SIMPLE_BODY, tree_id=tid)
    assert r.status == 0
    # losing one channel keeps the session
    await c1.aclose()
    smb.clients.remove(c1)
    r = await c2.tree_connect(r"\\x\share")
    assert r.status == 0
    assert smb.server.status()["sessions"][0]["channels"] == 1


async def test_bind_refused_without_signature(smb: Running) -> None:
    c1 = await smb.session((0x0311,))
    c2 = await smb.client()
    c2.client_guid = c1.client_guid
    await c2.negotiate((0x0311,))
    fake = type("Fake", (), {"session_id": c1.session_id, "signing_key": b""})()
    r = await c2.session_setup(USER, PASSWORD, bind_to=fake)
    assert r.status == NTStatus.INVALID_PARAMETER


async def test_bind_refused_for_other_dialect(smb: Running) -> None:
    c1 = await smb.session((0x0311,), signing=(crypto.AES_CMAC,))
    c2 = await smb.client()
    c2.client_guid = c1.client_guid
    await c2.negotiate((0x0302,))
    r = await c2.session_setup(USER, PASSWORD, bind_to=c1)
    assert r.status == NTStatus.INVALID_PARAMETER


@pytest.mark.parametrize(
    ("first", "second", "status"),
    [
        (crypto.AES_GMAC, crypto.AES_CMAC, NTStatus.REQUEST_OUT_OF_SEQUENCE),
        (crypto.AES_CMAC, crypto.AES_GMAC, NTStatus.NOT_SUPPORTED),
        (crypto.AES_CMAC, crypto.HMAC_SHA256, NTStatus.SUCCESS),
    ],
)
async def test_bind_with_another_signing_algorithm(
    smb: Running, first: int, second: int, status: int
) -> None:
    c1 = await smb.session((0x0311,), signing=(first,))
    c2 = await smb.client()
    await c2.negotiate((0x0311,), signing=(second,))
    r = await c2.session_setup(USER, PASSWORD, bind_to=c1)
    assert r.status == status


async def test_bind_refused_for_other_user(smb: Running) -> None:
    c1 = await smb.session((0x0311,))
    c2 = await smb.client()
    c2.client_guid = c1.client_guid
    await c2.negotiate((0x0311,))
    r = await c2.session_setup("bob", "bobpass", bind_to=c1)
    assert r.status == NTStatus.ACCESS_DENIED
    assert smb.server.status()["sessions"][0]["channels"] == 1


async def test_bind_refused_on_2_1(smb: Running) -> None:
    c1 = await smb.session((0x0210,))
    c2 = await smb.client()
    await c2.negotiate((0x0210,))
    r = await c2.session_setup(USER, PASSWORD, bind_to=c1)
    assert r.status == NTStatus.REQUEST_NOT_ACCEPTED
    # signed with the session's key, or a client that requires signing drops it
    assert crypto.verify(c1.signing_algorithm, c1.signing_key, r.raw)


async def test_bind_refused_when_multichannel_is_off(start_server: Any) -> None:
    run = await start_server(multichannel=False)
    c1 = await run.session((0x0311,))
    c2 = await run.client()
    c2.client_guid = c1.client_guid
    await c2.negotiate((0x0311,))
    r = await c2.session_setup(USER, PASSWORD, bind_to=c1)
    assert r.status == NTStatus.REQUEST_NOT_ACCEPTED


async def test_3_3_5_5_3_reauthentication(smb: Running) -> None:
    c = await smb.session((0x0311,))
    key = c.signing_key
    tid = (await c.tree_connect(r"\\x\share")).header.tree_id
    r = await c.session_setup(USER, PASSWORD, reauth=True)
    assert r.status == 0
    assert c.signing_key == key  # the keys stay
    r = await c.call(Command.TREE_DISCONNECT, SIMPLE_BODY, tree_id=tid)
    assert r.status == 0


async def test_failed_reauthentication_ends_the_session(smb: Running) -> None:
    c = await smb.session((0x0302,))
    r = await c.session_setup(USER, "wrong", reauth=True)
    assert r.status == NTStatus.LOGON_FAILURE
    r = await c.tree_connect(r"\\x\share")
    assert r.status == NTStatus.USER_SESSION_DELETED


async def test_3_3_5_15_11_network_interface_info(smb: Running) -> None:
    c = await smb.session((0x0311,))
    tid = (await c.tree_connect(r"\\x\IPC$")).header.tree_id
    body = pack_ioctl_request(0x001401FC, (0xFFFFFFFFFFFFFFFF,) * 2, max_output_response=65536)
    r = await c.call(Command.IOCTL, body, tree_id=tid)
    assert r.status == 0
    out = bytes(parse_ioctl_response(r.body).output)
    assert len(out) % 152 == 0 and out
    nxt, if_index, capability, _r, speed = struct.unpack_from("<IIIIQ", out)
    assert nxt == 0
    assert if_index != 0
    assert capability == 0x1  # RSS_CAPABLE
    assert speed > 0
    family, _port, addr = struct.unpack_from("<HH4s", out, 24)
    assert family == 2
    assert ipaddress.IPv4Address(addr) == ipaddress.IPv4Address("127.0.0.1")


async def test_3_3_5_15_11_network_interface_info_needs_the_all_ones_file_id(
    smb: Running,
) -> None:
    c = await smb.session((0x0311,))
    tid = (await c.tree_connect(r"\\x\IPC$")).header.tree_id
    fid = (0xFFFFFFFFFFFF7FFF, 0x7FFFFFFFFFFFFFFF)
    body = pack_ioctl_request(0x001401FC, fid, max_output_response=65536)
    r = await c.call(Command.IOCTL, body, tree_id=tid)
    assert r.status == NTStatus.INVALID_PARAMETER


async def test_3_3_5_15_12_validate_negotiate_info(smb: Running) -> None:
    c = await smb.client()
    await c.negotiate((0x0300, 0x0302), security_mode=1, capabilities=0x7F)
    await c.session_setup(USER, PASSWORD)
    tid = (await c.tree_connect(r"\\x\IPC$")).header.tree_id
    vni = struct.pack("<I16sHH", 0x7F, c.client_guid, 1, 2) + struct.pack("<HH", 0x0300, 0x0302)
    body = pack_ioctl_request(0x00140204, (0xFFFFFFFFFFFFFFFF,) * 2, vni, max_output_response=24)
    r = await c.call(Command.IOCTL, body, tree_id=tid)
    assert r.status == 0
    out = bytes(parse_ioctl_response(r.body).output)
    caps, guid, mode, dialect = struct.unpack("<I16sHH", out)
    assert caps == 0x4E  # LEASING | LARGE_MTU | MULTI_CHANNEL | ENCRYPTION
    assert guid == smb.server.config.server_guid
    assert dialect == 0x0302
    assert mode == 3
    # a tampered negotiation drops the connection
    vni = struct.pack("<I16sHH", 0x7F, c.client_guid, 1, 1) + struct.pack("<H", 0x0300)
    body = pack_ioctl_request(0x00140204, (0xFFFFFFFFFFFFFFFF,) * 2, vni, max_output_response=24)
    await c.send(c.build(c.header(Command.IOCTL, tree_id=tid), body))
    await c.expect_disconnect()


async def _first_leg(
    c: RawClient, session_id: int, *, key: bytes, algorithm: int, flags: int = 0
) -> Reply:
    """The first SESSION_SETUP of an exchange for ``session_id``, signed with ``key``
    (unsigned when empty)."""
    token = spnego.client(USER, PASSWORD, hostname="vmstor", protocol="ntlm").step()
    assert token is not None
    msg = c.build(
        c.header(Command.SESSION_SETUP, session_id=session_id),
        pack_session_setup_request(token, flags=flags),
        sign=False,
    )
    if key:
        h = bytearray(msg)
        struct.pack_into("<I", h, 16, struct.unpack_from("<I", h, 16)[0] | HeaderFlags.SIGNED)
        h[48:64] = crypto.sign(algorithm, key, h)
        msg = bytes(h)
    await c.send(msg)
    return await c.recv_one()


@pytest.mark.parametrize(
    ("first", "second"),
    [(crypto.AES_CMAC, crypto.HMAC_SHA256), (crypto.HMAC_SHA256, crypto.AES_CMAC)],
)
async def test_3_3_5_2_4_setup_on_a_bound_channel_is_checked_with_its_key(
    smb: Running, first: int, second: int
) -> None:
    """smb2.session.bind_negative_smb3sign{CtoH,HtoC}: once a connection is a channel of
    a session, a SESSION_SETUP for that session is verified with the channel's key. One
    signed with the session's own key (a client binding again, or re-authenticating with
    a fresh channel object) is ACCESS_DENIED under that key, the one its client checks
    the answer with; an unsigned re-authentication of a session that requires signing is
    ACCESS_DENIED too. None of them touches the session."""
    c1 = await smb.session((0x0311,), signing=(first,))
    tid = (await c1.tree_connect(r"\\x\share")).header.tree_id
    c2 = await smb.client()
    await c2.negotiate((0x0311,), signing=(second,))
    assert (await c2.session_setup(USER, PASSWORD, bind_to=c1)).status == 0
    sid, key = c1.session_id, c1.signing_key

    for flags in (0, 0x01):  # re-authentication, binding again
        r = await _first_leg(c2, sid, key=key, algorithm=first, flags=flags)
        assert r.status == NTStatus.ACCESS_DENIED
        assert r.header.flags & HeaderFlags.SIGNED
        assert crypto.verify(first, key, r.raw)
    r = await _first_leg(c2, sid, key=b"", algorithm=0)
    assert r.status == NTStatus.ACCESS_DENIED
    # signed with the channel's own key, binding again is REQUEST_NOT_ACCEPTED
    r = await _first_leg(c2, sid, key=c2.signing_key, algorithm=second, flags=0x01)
    assert r.status == NTStatus.REQUEST_NOT_ACCEPTED
    assert crypto.verify(second, c2.signing_key, r.raw)

    (s,) = smb.server.status()["sessions"]
    assert s["channels"] == 2
    for c in (c1, c2):
        assert (await c.call(Command.TREE_DISCONNECT, SIMPLE_BODY, tree_id=tid)).status in (
            NTStatus.SUCCESS,
            NTStatus.NETWORK_NAME_DELETED,
        )
    assert (await c1.tree_connect(r"\\x\share")).status == 0


async def test_3_3_5_2_4_unsigned_reauthentication_is_refused(smb: Running) -> None:
    c = await smb.session((0x0311,))
    r = await _first_leg(c, c.session_id, key=b"", algorithm=0)
    assert r.status == NTStatus.ACCESS_DENIED
    assert crypto.verify(c.signing_algorithm, c.signing_key, r.raw)  # signed all the same
    assert (await c.tree_connect(r"\\x\share")).status == 0  # the session lives on
    assert (await c.session_setup(USER, PASSWORD, reauth=True)).status == 0


async def test_3_3_5_2_4_unsigned_reauthentication_without_required_signing(
    start_server: Any,
) -> None:
    run = await start_server(require_signing=False)
    c = await run.session((0x0311,))
    r = await _first_leg(c, c.session_id, key=b"", algorithm=0)
    assert r.status == NTStatus.MORE_PROCESSING_REQUIRED
