"""SMB2 over SMB Direct end to end against ``vmstor serve`` with ``[rdma]`` (userspace iWARP
provider), driven by the project's own client (``smbd.client``):

- a 1 GiB file written and read back on a signed session (READ/WRITE with
  SMB2_CHANNEL_RDMA_V1_INVALIDATE: the data moves by RDMA Write/Read), and again on a share
  that requires encryption (the data goes inline, encrypted); the checksums of what was
  written, what was read back and what landed on disk agree;
- tshark decodes such a session: MPA handshake, DDP/RDMAP, SMB Direct negotiate and data
  transfer, and the SMB2 inside (NEGOTIATE, SESSION_SETUP, TREE_CONNECT, CREATE, WRITE,
  READ, CLOSE), with no malformed frame and no bad CRC.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from interop.peers import Endpoint, free_port
from interop.peers.vmstor import VmstorServer
from interop.test_smbdirect_tshark import mpa_crc_counts, tshark_count
from rdma.iwarp.provider import IwarpDevice
from rdma.smbdirect import connect
from smbd.client import SMBClient

GiB = 1 << 30
BLOCK = 8 << 20


@pytest.fixture(scope="module")
def rdma_server() -> Iterator[tuple[Endpoint, int]]:
    rport = free_port("127.0.0.1")
    with VmstorServer(encrypted_share="secure", rdma_port=rport) as ep:
        yield ep, rport


def _pattern(seed: bytes) -> bytes:
    return hashlib.shake_256(seed).digest(BLOCK)


async def copy_through(client: SMBClient, share: str, name: str, size: int) -> tuple[str, str]:
    """Write ``size`` bytes to ``name`` and read them back; (sha256 written, read)."""
    tid = await client.tree_connect(rf"\\127.0.0.1\{share}")
    fid = await client.create(tid, name, create=True)
    block = bytearray(_pattern(name.encode()))
    wsize = client.io_size(tid, write=True)
    written = hashlib.sha256()
    offset = 0
    while offset < size:
        block[:8] = offset.to_bytes(8, "little")  # every block differs
        view = memoryview(block)[: min(wsize, size - offset)]
        assert await client.write(tid, fid, offset, view) == len(view)
        written.update(view)
        offset += len(view)
    buf = bytearray(client.io_size(tid, write=False))
    read = hashlib.sha256()
    offset = 0
    while offset < size:
        view = memoryview(buf)[: min(len(buf), size - offset)]
        n = await client.read(tid, fid, offset, view)
        assert n == len(view)
        read.update(view)
        offset += n
    await client.close(tid, fid)
    return written.hexdigest(), read.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(BLOCK):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("encrypted", [False, True], ids=["signed-rdma", "encrypted-inline"])
async def test_1gib_round_trip_over_smb_direct(
    rdma_server: tuple[Endpoint, int], encrypted: bool
) -> None:
    ep, rport = rdma_server
    share = ep.encrypted_share if encrypted else ep.share
    assert share is not None
    name = f"disk-{'enc' if encrypted else 'sig'}.img"
    async with IwarpDevice.open() as dev, connect(dev, ep.host, rport) as ch:
        client = SMBClient.over_smbdirect(ch)
        await client.negotiate()
        await client.session_setup(ep.user, ep.password)
        t0, c0 = time.perf_counter(), time.process_time()
        written, read = await copy_through(client, share, name, GiB)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        stats = ch.statistics()
    print(
        f"{name}: 1 GiB written and read back in {wall:.1f} s "
        f"({2 * 1024 / wall:.0f} MiB/s, client CPU {cpu:.1f} s); "
        f"RDMA reads {client.rdma_reads}, RDMA writes {client.rdma_writes}; {stats}"
    )
    assert written == read
    assert _file_sha256(ep.shares[share] / name) == written
    if encrypted:
        assert client.rdma_reads == client.rdma_writes == 0  # encrypted data goes inline
    else:
        # every READ/WRITE went by RDMA and the messages carried none of the data: each
        # SMB2 message fitted one SMB Direct send (MaxSendSize 1364 bytes)
        assert client.rdma_reads == client.rdma_writes == GiB // client.io_size(1, write=True)
        assert stats["fragments_in"] == stats["messages_in"], stats
        assert stats["fragments_out"] == stats["messages_out"], stats
    (ep.shares[share] / name).unlink()


async def test_tshark_decodes_smb2_over_smb_direct(
    rdma_server: tuple[Endpoint, int], tmp_path: Path
) -> None:
    assert shutil.which("tshark"), "tshark is not installed (scripts/install-test-deps.sh)"
    assert os.geteuid() == 0, "capturing on lo needs root"
    ep, rport = rdma_server
    pcap = Path(os.environ.get("SMBD_SMB2_PCAP", tmp_path / "smb2-over-smbdirect.pcapng"))
    errlog, outlog = tmp_path / "tshark.err", tmp_path / "tshark.out"
    with errlog.open("w") as err, outlog.open("w") as out:
        capture = subprocess.Popen(
            # a large kernel buffer: a dropped segment would desynchronise MPA framing
            ["tshark", "-i", "lo", "-B", "256", "-f", f"port {rport}", "-w", str(pcap), "-P", "-l"],
            stdout=out,
            stderr=err,
        )
    try:
        # "Capturing on" comes before the filter is live: probe with UDP datagrams to
        # the port (nothing listens on UDP there) until tshark shows one
        probe = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
        with probe, trio.fail_after(30):
            while not outlog.read_text().strip():
                assert capture.poll() is None, errlog.read_text()
                await probe.sendto(b"probe", (ep.host, rport))
                await trio.sleep(0.1)
        async with IwarpDevice.open() as dev, connect(dev, ep.host, rport) as ch:
            client = SMBClient.over_smbdirect(ch)
            await client.negotiate()
            await client.session_setup(ep.user, ep.password)
            written, read = await copy_through(client, ep.share, "capture.bin", 256 << 10)
            assert written == read and client.rdma_reads and client.rdma_writes
            tid = await client.tree_connect(rf"\\127.0.0.1\{ep.share}")
            fid = await client.create(tid, "small.bin", create=True)
            await client.write(tid, fid, 0, b"inline write, under the RDMA threshold")
            await client.close(tid, fid)
        await trio.sleep(0.5)  # let the capture see the FINs
    finally:
        capture.send_signal(signal.SIGINT)
        await trio.to_thread.run_sync(capture.wait, 30)

    filters = {
        "mpa request": "iwarp_mpa.req",
        "mpa reply": "iwarp_mpa.rep",
        "smbd negotiate": "smb_direct.negotiate_request || smb_direct.negotiate_response",
        "smbd data": "smb_direct.data_message",
        "rdma write": "iwarp_rdma.opcode == 0",
        "rdma read request": "iwarp_rdma.opcode == 1",
        "rdma read response": "iwarp_rdma.opcode == 2",
        "send with invalidate": "iwarp_rdma.opcode == 4",
        "smb2 negotiate": "smb2.cmd == 0",
        "smb2 session setup": "smb2.cmd == 1",
        "smb2 tree connect": "smb2.cmd == 3",
        "smb2 create": "smb2.cmd == 5",
        "smb2 close": "smb2.cmd == 6",
        "smb2 read": "smb2.cmd == 8",
        "smb2 write": "smb2.cmd == 9",
        "smb2 rdma channel": "smb2.channel == 2",
        # as interop.peers.tools.smb2_check: the NEGOTIATE response's SPNEGO negHints
        # (Samba and Windows send it too) is a BER error to Wireshark; anything else counts
        "malformed": "_ws.malformed && !(smb2.cmd == 0 && smb2.flags.response == 1"
        ' && _ws.expert.message contains "OctetString expected but class:UNIVERSAL(0)'
        ' Constructed")',
        "expert errors": "_ws.expert.severity == error",
        "mpa violations": "iwarp_mpa.res.not_set0 || iwarp_mpa.rev.not_set1"
        " || iwarp_mpa.bad_length",
    }
    counts = {
        name: await trio.to_thread.run_sync(tshark_count, pcap, flt)
        for name, flt in filters.items()
    }
    counts |= await trio.to_thread.run_sync(lambda: mpa_crc_counts(pcap, timeout=300))
    print("tshark counts:", counts)
    assert counts["mpa request"] == 1 and counts["mpa reply"] == 1, counts
    assert counts["smbd negotiate"] == 2, counts
    for problem in ("malformed", "expert errors", "mpa violations", "bad crc"):
        assert counts[problem] == 0, (problem, counts)
    for seen in filters.keys() - {"malformed", "expert errors", "mpa violations"}:
        assert counts[seen] > 0, (seen, counts)
    assert counts["good crc"] > 0, counts
