"""Real third-party clients against the running server on 127.0.0.1: smbprotocol's
low-level Connection/Session/TreeConnect for every dialect and cipher, signed and
encrypted, and impacket's SMBConnection with signing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio
from impacket.smbconnection import SMBConnection
from smbprotocol.connection import Ciphers, Connection, Dialects, SigningAlgorithms
from smbprotocol.exceptions import BadNetworkName, LogonFailure
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

from tests.smbd.server.conftest import PASSWORD, USER, Running

DIALECTS = [
    Dialects.SMB_2_0_2,
    Dialects.SMB_2_1_0,
    Dialects.SMB_3_0_0,
    Dialects.SMB_3_0_2,
    Dialects.SMB_3_1_1,
]


def _connect(port: int, dialect: int, *, encrypt: bool = False, **kw: Any) -> dict[str, Any]:
    conn = Connection(uuid.uuid4(), "127.0.0.1", port, require_signing=True)
    conn.connect(dialect=dialect, **kw)
    try:
        session = Session(conn, USER, PASSWORD, require_encryption=encrypt, auth_protocol="ntlm")
        session.connect()
        tree = TreeConnect(session, r"\\127.0.0.1\share")
        tree.connect()
        ipc = TreeConnect(session, r"\\127.0.0.1\IPC$")
        ipc.connect()
        # ECHO on the session (smbprotocol signs or encrypts it)
        conn.echo(sid=session.session_id, credit_request=4)
        out = {
            "dialect": conn.dialect,
            "cipher": getattr(conn, "cipher_id", None),
            "signing": getattr(conn, "signing_algorithm_id", None),
            "encrypted": session.encrypt_data,
        }
        ipc.disconnect()
        tree.disconnect()
        session.disconnect()
        return out
    finally:
        conn.disconnect()


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"0x{d:04x}")
async def test_smbprotocol_signed(smb: Running, dialect: int) -> None:
    got = await trio.to_thread.run_sync(_connect, smb.port, dialect)
    assert got["dialect"] == dialect
    assert smb.server.sessions == {}


@pytest.mark.parametrize(
    "cipher",
    [Ciphers.AES_128_GCM, Ciphers.AES_128_CCM, Ciphers.AES_256_GCM, Ciphers.AES_256_CCM],
    ids=lambda c: f"cipher{c}",
)
async def test_smbprotocol_3_1_1_encrypted(smb: Running, cipher: int) -> None:
    got = await trio.to_thread.run_sync(
        lambda: _connect(
            smb.port, Dialects.SMB_3_1_1, encrypt=True, preferred_encryption_algos=[cipher]
        )
    )
    assert got["cipher"] == cipher
    assert got["encrypted"]


@pytest.mark.parametrize("dialect", [Dialects.SMB_3_0_0, Dialects.SMB_3_0_2])
async def test_smbprotocol_3_0_encrypted(smb: Running, dialect: int) -> None:
    got = await trio.to_thread.run_sync(lambda: _connect(smb.port, dialect, encrypt=True))
    assert got["encrypted"]


@pytest.mark.parametrize(
    "algorithm",
    [SigningAlgorithms.HMAC_SHA256, SigningAlgorithms.AES_CMAC, SigningAlgorithms.AES_GMAC],
)
async def test_smbprotocol_signing_algorithms(smb: Running, algorithm: int) -> None:
    got = await trio.to_thread.run_sync(
        lambda: _connect(smb.port, Dialects.SMB_3_1_1, preferred_signing_algos=[algorithm])
    )
    assert got["signing"] == algorithm


def _encrypted_share(port: int) -> None:
    conn = Connection(uuid.uuid4(), "127.0.0.1", port, require_signing=True)
    conn.connect(dialect=Dialects.SMB_3_1_1)
    try:
        session = Session(conn, USER, PASSWORD, require_encryption=False, auth_protocol="ntlm")
        session.connect()
        tree = TreeConnect(session, r"\\127.0.0.1\enc")
        tree.connect()
        assert tree.encrypt_data
        tree.disconnect()  # sent encrypted, since the share asks for it
        with pytest.raises(BadNetworkName):
            TreeConnect(session, r"\\127.0.0.1\missing").connect()
    finally:
        conn.disconnect()


async def test_smbprotocol_encrypted_share(smb: Running) -> None:
    await trio.to_thread.run_sync(_encrypted_share, smb.port)


def _bad_password(port: int) -> None:
    conn = Connection(uuid.uuid4(), "127.0.0.1", port, require_signing=True)
    conn.connect(dialect=Dialects.SMB_3_1_1)
    try:
        with pytest.raises(LogonFailure):
            Session(conn, USER, "wrong", require_encryption=False, auth_protocol="ntlm").connect()
    finally:
        conn.disconnect()


async def test_smbprotocol_wrong_password(smb: Running) -> None:
    await trio.to_thread.run_sync(_bad_password, smb.port)


def _impacket(port: int, dialect: str | None) -> tuple[int, bool]:
    kw = {"preferredDialect": dialect} if dialect else {}
    c = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=port, **kw)
    try:
        c.login(USER, PASSWORD)
        signed = bool(c.isSigningRequired())
        tid = c.connectTree("share")
        c.disconnectTree(tid)
        tid = c.connectTree("IPC$")
        c.disconnectTree(tid)
        try:
            c.connectTree("nothere")
        except Exception as e:  # impacket's SessionError
            assert "BAD_NETWORK_NAME" in str(e)
        else:
            raise AssertionError("connectTree to a missing share succeeded")
        return int(c.getDialect()), signed
    finally:
        c.logoff()
        c.close()


@pytest.mark.parametrize(
    "dialect", ["SMB2_DIALECT_002", "SMB2_DIALECT_21", "SMB2_DIALECT_30", None]
)
async def test_impacket_signed(smb: Running, dialect: str | None) -> None:
    from impacket import smb3structs

    d = getattr(smb3structs, dialect) if dialect else None
    got, signed = await trio.to_thread.run_sync(_impacket, smb.port, d)
    assert signed
    if d is not None:
        assert got == d


def _impacket_wrong_password(port: int) -> None:
    c = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=port)
    try:
        c.login(USER, "wrong")
    except Exception as e:
        assert "LOGON_FAILURE" in str(e)
    else:
        raise AssertionError("login with a wrong password succeeded")
    finally:
        c.close()


async def test_impacket_wrong_password(smb: Running) -> None:
    await trio.to_thread.run_sync(_impacket_wrong_password, smb.port)
