"""smbprotocol (pure-Python client) against the server, per dialect and cipher.

smbprotocol's high-level ``smbclient`` API always negotiates the newest dialect with all
ciphers, so each case builds the :class:`Connection` itself (a chosen dialect, only the
chosen cipher offered) and hands it to the API through a private connection cache.
SMB 3.0 and 3.0.2 have one cipher, AES-128-CCM; 3.1.1 negotiates the cipher with an
SMB2_ENCRYPTION_CAPABILITIES context (MS-SMB2 2.2.3.1.2).
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import smbclient
from smbprotocol.connection import Ciphers, Connection, Dialects

from interop.peers import Endpoint


@dataclass(frozen=True)
class Case:
    dialect: int
    cipher: int | None  # None: signing only, no encryption


CASES = [
    pytest.param(Case(Dialects.SMB_3_0_0, Ciphers.AES_128_CCM), id="3.0-AES-128-CCM"),
    pytest.param(Case(Dialects.SMB_3_0_2, Ciphers.AES_128_CCM), id="3.0.2-AES-128-CCM"),
    pytest.param(Case(Dialects.SMB_3_1_1, Ciphers.AES_128_CCM), id="3.1.1-AES-128-CCM"),
    pytest.param(Case(Dialects.SMB_3_1_1, Ciphers.AES_128_GCM), id="3.1.1-AES-128-GCM"),
    pytest.param(Case(Dialects.SMB_3_1_1, Ciphers.AES_256_CCM), id="3.1.1-AES-256-CCM"),
    pytest.param(Case(Dialects.SMB_3_1_1, Ciphers.AES_256_GCM), id="3.1.1-AES-256-GCM"),
    pytest.param(Case(Dialects.SMB_3_0_0, None), id="3.0-signed"),
    pytest.param(Case(Dialects.SMB_3_1_1, None), id="3.1.1-signed"),
]


@dataclass
class Client:
    cache: dict[str, Any]
    connection: Any  # smbprotocol.connection.Connection
    session: Any  # smbprotocol.session.Session
    kw: dict[str, Any]


@pytest.fixture(params=CASES)
def client(request: pytest.FixtureRequest, server: Endpoint) -> Iterator[Client]:
    case: Case = request.param
    conn = Connection(uuid.uuid4(), server.host, server.port, require_signing=True)
    conn.connect(
        dialect=case.dialect,
        timeout=30,
        preferred_encryption_algos=[case.cipher or Ciphers.AES_128_GCM],
    )
    cache: dict[str, Any] = {f"{server.host.lower()}:{server.port}": conn}
    try:
        session = smbclient.register_session(
            server.host, username=server.user, password=server.password, port=server.port,
            encrypt=case.cipher is not None, connection_cache=cache, auth_protocol="ntlm",
        )  # fmt: skip
        yield Client(cache, conn, session, {"port": server.port, "connection_cache": cache})
    finally:
        smbclient.reset_connection_cache(connection_cache=cache)


def test_negotiated_what_was_asked(client: Client, request: pytest.FixtureRequest) -> None:
    case: Case = request.node.callspec.params["client"]
    assert client.connection.dialect == case.dialect
    assert client.session.signing_required or client.connection.require_signing
    if case.cipher is None:
        assert not client.session.encrypt_data
    else:
        assert client.session.encrypt_data
        if case.dialect == Dialects.SMB_3_1_1:
            assert client.connection.cipher_id == case.cipher


def test_write_read_listdir_rename_remove(
    client: Client, server: Endpoint, request: pytest.FixtureRequest
) -> None:
    kw = client.kw
    d = "sp-" + request.node.callspec.id
    top = server.winpath(d)
    smbclient.makedirs(top, exist_ok=True, **kw)
    assert (server.share_path / d).is_dir()

    # several MiB, so READ and WRITE need more than one request and multi-credit charges
    data = os.urandom(5 * 1024 * 1024 + 12345)
    with smbclient.open_file(server.winpath(d, "a.bin"), mode="wb", **kw) as f:
        f.write(data)
    assert (server.share_path / d / "a.bin").read_bytes() == data
    with smbclient.open_file(server.winpath(d, "a.bin"), mode="rb", **kw) as f:
        assert f.read() == data
    with smbclient.open_file(server.winpath(d, "a.bin"), mode="rb", **kw) as f:
        f.seek(4 * 1024 * 1024 + 7)
        assert f.read(1000) == data[4 * 1024 * 1024 + 7 : 4 * 1024 * 1024 + 1007]

    with smbclient.open_file(server.winpath(d, "note.txt"), mode="w", **kw) as f:
        f.write("hello\n")
    assert sorted(smbclient.listdir(top, **kw)) == ["a.bin", "note.txt"]
    assert smbclient.stat(server.winpath(d, "a.bin"), **kw).st_size == len(data)

    smbclient.rename(server.winpath(d, "a.bin"), server.winpath(d, "b.bin"), **kw)
    assert sorted(smbclient.listdir(top, **kw)) == ["b.bin", "note.txt"]
    assert not (server.share_path / d / "a.bin").exists()
    assert (server.share_path / d / "b.bin").read_bytes() == data

    with pytest.raises(OSError) as gone:
        smbclient.stat(server.winpath(d, "a.bin"), **kw)
    assert gone.value.errno == errno.ENOENT  # STATUS_OBJECT_NAME_NOT_FOUND

    smbclient.remove(server.winpath(d, "b.bin"), **kw)
    smbclient.remove(server.winpath(d, "note.txt"), **kw)
    assert smbclient.listdir(top, **kw) == []
    smbclient.rmdir(top, **kw)
    assert not (server.share_path / d).exists()
