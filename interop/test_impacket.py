"""impacket's SMBConnection against the server, with signing required.

impacket is the other widely used Python SMB client (and the one security tooling uses);
its defaults differ from smbprotocol's: an SMB1 multi-protocol NEGOTIATE first (answered
with the SMB2 wildcard dialect 0x02FF, MS-SMB2 3.3.5.3.1) unless a dialect is named,
1 MiB reads and writes, NTLM without SPNEGO mechListMIC games.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest
from impacket import smb3structs
from impacket.smbconnection import SessionError, SMBConnection

from interop.peers import Endpoint

DIALECTS = [
    pytest.param(None, id="multi-protocol"),
    pytest.param(smb3structs.SMB2_DIALECT_002, id="2.0.2"),
    pytest.param(smb3structs.SMB2_DIALECT_21, id="2.1"),
    pytest.param(smb3structs.SMB2_DIALECT_30, id="3.0"),
    pytest.param(smb3structs.SMB2_DIALECT_311, id="3.1.1"),
]


@pytest.fixture(params=DIALECTS)
def conn(request: pytest.FixtureRequest, server: Endpoint) -> Iterator[SMBConnection]:
    c = SMBConnection(
        server.host, server.host, sess_port=server.port, timeout=30, preferredDialect=request.param
    )
    # require signing from our side too, whatever the server's NEGOTIATE said
    c._SMBConnection._Connection["RequireSigning"] = True
    c.login(server.user, server.password)
    try:
        yield c
    finally:
        c.logoff()
        c.close()


def test_signed_session(conn: SMBConnection, request: pytest.FixtureRequest) -> None:
    wanted = request.node.callspec.params["conn"]
    assert conn.getDialect() == (wanted or conn.getDialect())
    assert conn.getDialect() in (
        smb3structs.SMB2_DIALECT_002,
        smb3structs.SMB2_DIALECT_21,
        smb3structs.SMB2_DIALECT_30,
        smb3structs.SMB2_DIALECT_311,
    )
    assert conn.isSigningRequired()
    assert conn._SMBConnection._Session["SigningActivated"]


def test_file_operations(
    conn: SMBConnection, server: Endpoint, request: pytest.FixtureRequest
) -> None:
    share = server.share
    d = "imp-" + request.node.callspec.id
    conn.createDirectory(share, d)
    assert (server.share_path / d).is_dir()

    data = os.urandom(3 * 1024 * 1024 + 333)
    conn.putFile(share, f"{d}/a.bin", io.BytesIO(data).read)
    assert (server.share_path / d / "a.bin").read_bytes() == data

    names = {f.get_longname(): f for f in conn.listPath(share, f"{d}/*")}
    assert {".", "..", "a.bin"} <= set(names)
    assert names["a.bin"].get_filesize() == len(data)
    assert not names["a.bin"].is_directory()

    out = io.BytesIO()
    conn.getFile(share, f"{d}/a.bin", out.write)
    assert out.getvalue() == data

    conn.deleteFile(share, f"{d}/a.bin")
    assert not (server.share_path / d / "a.bin").exists()
    with pytest.raises(SessionError) as e:
        conn.getFile(share, f"{d}/a.bin", io.BytesIO().write)
    assert "STATUS_OBJECT_NAME_NOT_FOUND" in str(e.value)
    conn.deleteDirectory(share, d)
    assert not (server.share_path / d).exists()


def test_wrong_password(server: Endpoint) -> None:
    c = SMBConnection(server.host, server.host, sess_port=server.port, timeout=30)
    try:
        with pytest.raises(SessionError) as e:
            c.login(server.user, "not-" + server.password)
        assert "STATUS_LOGON_FAILURE" in str(e.value)
    finally:
        c.close()
