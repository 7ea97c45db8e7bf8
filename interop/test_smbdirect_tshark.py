"""Wireshark (tshark) as an independent wire validator for the iWARP provider and SMB Direct.

The test serves SMB Direct on an ephemeral loopback port, captures the session with
``tshark -i lo -f "tcp port P"`` (root), runs SMB2 messages through it (ECHO, a WRITE
fragmented by SMB Direct, a READ with SMB2_CHANNEL_RDMA_V1_INVALIDATE answered by an RDMA
Write and Send with Invalidate, a WRITE with SMB2_CHANNEL_RDMA_V1 served by an RDMA Read),
and then asks tshark to decode TCP -> MPA -> DDP/RDMAP -> SMB Direct -> SMB2: every layer
must be recognised, with no malformed frame, no expert error and no bad CRC.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
from pathlib import Path

import pytest
import trio

from rdma.iwarp.provider import IwarpDevice
from rdma.smbdirect import SmbDirectChannel, SmbDirectServer, connect, decode_descriptors
from rdma.smbdirect import wire as smbd_wire

pytestmark = pytest.mark.interop

SMB2_WRITE = 0x0009
SMB2_READ = 0x0008
SMB2_ECHO = 0x000D
FLAGS_SERVER_TO_REDIR = 0x00000001
CHANNEL_RDMA_V1 = 0x00000001
CHANNEL_RDMA_V1_INVALIDATE = 0x00000002
HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")  # [MS-SMB2] 2.2.1.2 SYNC header, 64 bytes


def smb2_header(command: int, message_id: int, response: bool = False) -> bytes:
    flags = FLAGS_SERVER_TO_REDIR if response else 0
    return HEADER.pack(
        b"\xfeSMB", 64, 1, 0, command, 1, flags, 0, message_id, 0xFEFF, 1, 0x11, bytes(16)
    )


def smb2_echo(message_id: int, response: bool = False) -> bytes:
    return smb2_header(SMB2_ECHO, message_id, response) + struct.pack("<HH", 4, 0)


def smb2_write(message_id: int, data: bytes, channel: int = 0, info: bytes = b"") -> bytes:
    """[MS-SMB2] 2.2.21 WRITE request: inline data, or channel info with no data."""
    body_len = 48
    if channel:
        info_off = 64 + body_len
        body = struct.pack(
            "<HHIQ16sIIHHI", 49, 0, 0, 0, bytes(16), channel, len(data), info_off, len(info), 0
        )
        return smb2_header(SMB2_WRITE, message_id) + body + info
    body = struct.pack("<HHIQ16sIIHHI", 49, 64 + body_len, len(data), 0, bytes(16), 0, 0, 0, 0, 0)
    return smb2_header(SMB2_WRITE, message_id) + body + data


def smb2_read(message_id: int, length: int, channel: int, info: bytes) -> bytes:
    """[MS-SMB2] 2.2.19 READ request with the buffer descriptors in ReadChannelInfo."""
    info_off = 64 + 48
    body = struct.pack(
        "<HBBIQ16sIIIHH", 49, 0, 0, length, 0, bytes(16), 1, channel, 0, info_off, len(info)
    )
    return smb2_header(SMB2_READ, message_id) + body + info


def smb2_simple_response(command: int, message_id: int, body: bytes) -> bytes:
    return smb2_header(command, message_id, response=True) + body


async def serve_smb2(ch: SmbDirectChannel) -> None:
    """Just enough of an SMB2 server to put each message kind on the wire."""
    while True:
        msg = await ch.receive_message()
        (command,) = struct.unpack_from("<H", msg, 12)
        (message_id,) = struct.unpack_from("<Q", msg, 24)
        if command == SMB2_ECHO:
            await ch.send_message([smb2_echo(message_id, response=True)])
        elif command == SMB2_WRITE:
            _, _, length, _, _, channel, remaining, info_off, info_len, _ = struct.unpack_from(
                "<HHIQ16sIIHHI", msg, 64
            )
            if channel:
                descs = decode_descriptors(msg[info_off : info_off + info_len])
                buf = bytearray(remaining)
                length = await ch.rdma_read(descs, buf)
            body = struct.pack("<HHIII", 17, 0, length, 0, 0)  # 2.2.22 WRITE response
            await ch.send_message([smb2_simple_response(SMB2_WRITE, message_id, body)])
        elif command == SMB2_READ:
            (_, _, _, length, _, _, _, channel, _, info_off, info_len) = struct.unpack_from(
                "<HBBIQ16sIIIHH", msg, 64
            )
            descs = decode_descriptors(msg[info_off : info_off + info_len])
            await ch.rdma_write(descs, bytes(range(256)) * (length // 256))
            body = struct.pack("<HBBIII", 17, 0x50, 0, 0, 0, 0) + b"\0"  # 2.2.20, data by RDMA
            token = descs[0].token if channel == CHANNEL_RDMA_V1_INVALIDATE else None
            await ch.send_message(
                [smb2_simple_response(SMB2_READ, message_id, body)], invalidate_token=token
            )


def tshark_count(pcap: Path, display_filter: str) -> int:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), *DECODE, "-Y", display_filter],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return len(out.splitlines())


DECODE = ["--disable-protocol", "artemis", "-o", "tcp.try_heuristic_first:TRUE"]


def mpa_crc_counts(pcap: Path, timeout: float) -> dict[str, int]:
    """Good and bad MPA CRC32C verdicts of tshark's full decode of the capture."""
    verbose = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), *DECODE, "-V"],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    ).stdout
    return {"good crc": verbose.count("Good CRC32"), "bad crc": verbose.count("Bad CRC32")}


async def test_tshark_decodes_iwarp_and_smb_direct(tmp_path: Path) -> None:
    assert shutil.which("tshark"), "tshark is not installed (scripts/install-test-deps.sh)"
    assert os.geteuid() == 0, "capturing on lo needs root"
    pcap = Path(os.environ.get("SMBD_PCAP", tmp_path / "smbdirect.pcapng"))
    errlog = tmp_path / "tshark.err"
    async with (
        IwarpDevice.open() as server_dev,
        IwarpDevice.open() as client_dev,
        trio.open_nursery() as nursery,
    ):
        server = SmbDirectServer(server_dev)
        host, port = await nursery.start(server.serve, "127.0.0.1", 0, serve_smb2)
        outlog = tmp_path / "tshark.out"
        with errlog.open("w") as err, outlog.open("w") as out:
            capture = subprocess.Popen(
                ["tshark", "-i", "lo", "-f", f"port {port}", "-w", str(pcap), "-P", "-l"],
                stdout=out,
                stderr=err,
            )
        try:
            # "Capturing on" comes before the filter is live: probe with UDP datagrams
            # to the port (nothing listens on UDP) until tshark shows one.
            probe = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
            with probe, trio.fail_after(30):
                while not outlog.read_text().strip():
                    assert capture.poll() is None, errlog.read_text()
                    await probe.sendto(b"probe", (host, port))
                    await trio.sleep(0.1)
            async with connect(client_dev, host, port) as ch:
                await ch.send_message([smb2_echo(1)])
                assert bytes(await ch.receive_message())[12:14] == b"\x0d\x00"
                await ch.send_message([smb2_write(2, bytes(100_000))])  # ~75 fragments
                await ch.receive_message()
                sink = bytearray(65536)
                reg = ch.register_buffer(sink, remote_write=True)
                info = smbd_wire.encode_descriptors(reg.descriptors)
                await ch.send_message([smb2_read(3, 65536, CHANNEL_RDMA_V1_INVALIDATE, info)])
                await ch.receive_message()
                assert reg.invalidated and sink[:4] == b"\x00\x01\x02\x03"
                source = bytearray(b"w" * 65536)
                reg2 = ch.register_buffer(source, remote_write=False)
                info = smbd_wire.encode_descriptors(reg2.descriptors)
                await ch.send_message([smb2_write(4, bytes(65536), CHANNEL_RDMA_V1, info)])
                await ch.receive_message()
            await trio.sleep(0.5)  # let the capture see the FINs
        finally:
            capture.send_signal(signal.SIGINT)
            await trio.to_thread.run_sync(capture.wait, 30)
            nursery.cancel_scope.cancel()

    counts = {
        name: await trio.to_thread.run_sync(tshark_count, pcap, flt)
        for name, flt in {
            "mpa request": "iwarp_mpa.req",
            "mpa reply": "iwarp_mpa.rep",
            "smbd negotiate": "smb_direct.negotiate_request || smb_direct.negotiate_response",
            "smbd data": "smb_direct.data_message",
            "smb2": "smb2",
            "smb2 echo": "smb2.cmd == 13",
            "smb2 write": "smb2.cmd == 9",
            "smb2 read": "smb2.cmd == 8",
            "rdma write": "iwarp_rdma.opcode == 0",
            "rdma read request": "iwarp_rdma.opcode == 1",
            "rdma read response": "iwarp_rdma.opcode == 2",
            "send with invalidate": "iwarp_rdma.opcode == 4",
            "send not smb direct": "(iwarp_rdma.opcode >= 3 && iwarp_rdma.opcode <= 6)"
            " && !smb_direct",
            "mpa violations": "iwarp_mpa.res.not_set0 || iwarp_mpa.rev.not_set1"
            " || iwarp_mpa.bad_length",
            "malformed": "_ws.malformed",
            "expert errors": "_ws.expert.severity == error",
        }.items()
    }
    counts |= mpa_crc_counts(pcap, timeout=120)
    print("tshark counts:", counts)
    assert counts["mpa request"] == 1 and counts["mpa reply"] == 1, counts
    assert counts["smbd negotiate"] == 2, counts
    for seen in ("smbd data", "smb2 echo", "smb2 write", "smb2 read", "rdma write",
                 "rdma read request", "rdma read response", "send with invalidate",
                 "good crc"):  # fmt: skip
        assert counts[seen] > 0, (seen, counts)
    for problem in ("send not smb direct", "mpa violations", "malformed", "expert errors",
                    "bad crc"):  # fmt: skip
        assert counts[problem] == 0, (problem, counts)
