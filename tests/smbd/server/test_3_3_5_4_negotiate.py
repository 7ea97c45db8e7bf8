"""[MS-SMB2] 3.3.5.3 / 3.3.5.4: NEGOTIATE against the running server."""

from __future__ import annotations

import pytest

from smbd import crypto
from smbd.wire import negotiate as nego
from smbd.wire.constants import Capabilities, Command, SecurityMode
from smbd.wire.header import parse_header
from smbd.wire.status import NTStatus
from tests.smbd.server.conftest import Running
from tests.smbd.server.rawclient import ALL_DIALECTS


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
async def test_each_dialect(smb: Running, dialect: int) -> None:
    c = await smb.client()
    r = await c.negotiate((dialect,))
    assert r.status == NTStatus.SUCCESS
    resp = nego.parse_negotiate_response(r.body)
    assert resp.dialect == dialect
    assert resp.security_mode == SecurityMode.SIGNING_ENABLED | SecurityMode.SIGNING_REQUIRED
    assert resp.server_guid == smb.server.config.server_guid
    large = dialect >= 0x0210
    assert bool(resp.capabilities & Capabilities.LARGE_MTU) == large
    assert resp.max_read_size == (8 << 20 if large else 65536)
    assert resp.max_write_size == (8 << 20 if large else 65536)
    assert resp.max_transact_size == (8 << 20 if large else 65536)
    assert bool(resp.capabilities & Capabilities.MULTI_CHANNEL) == (dialect >= 0x0300)
    # ENCRYPTION is a capability only in 3.0/3.0.2 (3.1.1 says it with a context)
    assert bool(resp.capabilities & Capabilities.ENCRYPTION) == (dialect in (0x0300, 0x0302))
    assert resp.security_buffer[0] == 0x60  # GSS-API InitialContextToken (SPNEGO)
    assert r.header.credits >= 1
    assert bool(resp.contexts) == (dialect == 0x0311)


async def test_highest_common_dialect(smb: Running) -> None:
    c = await smb.client()
    r = await c.negotiate((0x0202, 0x0300, 0x0210))
    assert nego.parse_negotiate_response(r.body).dialect == 0x0300


async def test_configured_range(start_server: object) -> None:
    run = await start_server(min_dialect=0x0300, max_dialect=0x0302)  # type: ignore[operator]
    c = await run.client()
    r = await c.negotiate((0x0202, 0x0210, 0x0311))
    assert r.status == NTStatus.NOT_SUPPORTED
    c2 = await run.client()
    r = await c2.negotiate(tuple(ALL_DIALECTS))
    assert nego.parse_negotiate_response(r.body).dialect == 0x0302


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ((crypto.AES_256_GCM, crypto.AES_128_CCM, crypto.AES_128_GCM), crypto.AES_128_GCM),
        ((crypto.AES_256_CCM, crypto.AES_128_CCM), crypto.AES_128_CCM),
        ((crypto.AES_256_CCM, crypto.AES_256_GCM), crypto.AES_256_GCM),
        ((crypto.AES_256_CCM,), crypto.AES_256_CCM),
        ((7, 9), 0),
    ],
)
async def test_2_2_3_1_2_cipher_preference(
    smb: Running, offered: tuple[int, ...], chosen: int
) -> None:
    c = await smb.client()
    r = await c.negotiate((0x0311,), ciphers=offered)
    resp = nego.parse_negotiate_response(r.body)
    enc = [x for x in resp.contexts if x.type == nego.ENCRYPTION_CAPABILITIES]
    assert len(enc) == 1
    assert nego.parse_encryption_capabilities(enc[0].data) == (chosen,)


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ((crypto.HMAC_SHA256, crypto.AES_CMAC, crypto.AES_GMAC), crypto.AES_GMAC),
        ((crypto.HMAC_SHA256, crypto.AES_CMAC), crypto.AES_CMAC),
        ((crypto.HMAC_SHA256,), crypto.HMAC_SHA256),
    ],
)
async def test_2_2_3_1_7_signing_preference(
    smb: Running, offered: tuple[int, ...], chosen: int
) -> None:
    c = await smb.client()
    r = await c.negotiate((0x0311,), signing=offered)
    resp = nego.parse_negotiate_response(r.body)
    (sig,) = [x for x in resp.contexts if x.type == nego.SIGNING_CAPABILITIES]
    assert nego.parse_signing_capabilities(sig.data) == (chosen,)


async def test_no_contexts_echoed_that_were_not_sent(smb: Running) -> None:
    c = await smb.client()
    r = await c.negotiate((0x0311,), ciphers=(), signing=())
    resp = nego.parse_negotiate_response(r.body)
    assert [x.type for x in resp.contexts] == [nego.PREAUTH_INTEGRITY_CAPABILITIES]
    pre = nego.parse_preauth_capabilities(resp.contexts[0].data)
    assert pre.hash_algorithms == (nego.HASH_SHA512,)
    assert len(pre.salt) == 32


async def _raw_negotiate(smb: Running, body: bytes) -> tuple[int, object]:
    c = await smb.client()
    await c.send(c.build(c.header(Command.NEGOTIATE), body))
    r = await c.recv_one()
    return r.status, c


async def test_dialect_count_zero(smb: Running) -> None:
    body = bytearray(nego.pack_negotiate_request([0x0202]))
    body[2:4] = b"\0\0"
    status, _ = await _raw_negotiate(smb, bytes(body[:36]))
    assert status == NTStatus.INVALID_PARAMETER


async def test_3_1_1_without_preauth_context(smb: Running) -> None:
    status, _ = await _raw_negotiate(smb, nego.pack_negotiate_request([0x0311]))
    assert status == NTStatus.INVALID_PARAMETER


async def test_3_1_1_without_sha512(smb: Running) -> None:
    ctx = nego.NegotiateContext(nego.PREAUTH_INTEGRITY_CAPABILITIES, b"\x01\x00\x00\x00\x07\x00")
    status, _ = await _raw_negotiate(smb, nego.pack_negotiate_request([0x0311], contexts=[ctx]))
    assert status == NTStatus.SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP


async def test_duplicate_context(smb: Running) -> None:
    ctx = nego.NegotiateContext(
        nego.PREAUTH_INTEGRITY_CAPABILITIES, nego.pack_preauth_capabilities(1, b"")
    )
    status, _ = await _raw_negotiate(
        smb, nego.pack_negotiate_request([0x0311], contexts=[ctx, ctx])
    )
    assert status == NTStatus.INVALID_PARAMETER


async def test_unknown_contexts_are_ignored(smb: Running) -> None:
    ctxs = [
        nego.NegotiateContext(
            nego.PREAUTH_INTEGRITY_CAPABILITIES, nego.pack_preauth_capabilities(1, b"salt")
        ),
        nego.NegotiateContext(0x0003, b"\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00"),
        nego.NegotiateContext(0x0005, "server".encode("utf-16-le")),
        nego.NegotiateContext(0x7777, b"junk"),
    ]
    status, _ = await _raw_negotiate(smb, nego.pack_negotiate_request([0x0311], contexts=ctxs))
    assert status == NTStatus.SUCCESS


async def test_second_negotiate_disconnects(smb: Running) -> None:
    c = await smb.client()
    assert (await c.negotiate((0x0302,))).status == 0
    await c.send(c.build(c.header(Command.NEGOTIATE), nego.pack_negotiate_request([0x0302])))
    await c.expect_disconnect()


async def test_request_before_negotiate_disconnects(smb: Running) -> None:
    c = await smb.client()
    await c.send(c.build(c.header(Command.ECHO), b"\x04\x00\x00\x00"))
    await c.expect_disconnect()


async def test_3_3_5_3_1_smb1_wildcard(smb: Running) -> None:
    c = await smb.client()
    await c.send_frame(nego.pack_smb1_negotiate(["NT LM 0.12", "SMB 2.002", "SMB 2.???"]))
    (r,) = await c.recv()
    assert r.header.command == Command.NEGOTIATE
    assert nego.parse_negotiate_response(r.body).dialect == 0x02FF
    # then the SMB2 NEGOTIATE, MessageId 1
    c.next_mid = 1
    r2 = await c.negotiate((0x0202, 0x0311))
    assert nego.parse_negotiate_response(r2.body).dialect == 0x0311
    assert parse_header(r2.raw).message_id == 1


async def test_3_3_5_3_1_smb1_2002_only(smb: Running) -> None:
    c = await smb.client()
    await c.send_frame(nego.pack_smb1_negotiate(["NT LM 0.12", "SMB 2.002"]))
    (r,) = await c.recv()
    assert nego.parse_negotiate_response(r.body).dialect == 0x0202


async def test_smb1_without_smb2_dialects_disconnects(smb: Running) -> None:
    c = await smb.client()
    await c.send_frame(nego.pack_smb1_negotiate(["NT LM 0.12"]))
    await c.expect_disconnect()
