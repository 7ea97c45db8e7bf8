"""End to end on loopback: the SAN service of the daemon (config + state + CLI) and the
iSCSI server, driven by the test initiator in ``initiator.py``."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from scsi import commands
from scsi.fabric.model import initiator_name
from scsi.iscsi import pdu
from tests.scsi.iscsi.initiator import Initiator, LoginFailed
from vmstor import san_cli
from vmstor.cli import build_parser
from vmstor.config import load
from vmstor.san import SanService

IQN = "iqn.2026-11.org.vmstor:unit"
INQUIRY = bytes.fromhex("120000006000")
REPORT_LUNS = bytes.fromhex("a0000000000000000100000000")
TUR = bytes(6)


def cli(config: Path, *args: str) -> None:
    parser = san_cli_parser()
    ns = parser.parse_args([*args, "--config", str(config)])
    assert ns.func(ns) == 0


def san_cli_parser() -> argparse.ArgumentParser:
    return build_parser()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "vmstor.toml"
    cfg.write_text(
        '[server]\nlisten = ["127.0.0.1:0"]\nstate_dir = "state"\n'
        '[iscsi]\nportals = ["127.0.0.1:0", "127.0.0.1:0"]\n'
        f'target_name = "{IQN}"\nport_groups = [[1], [2]]\nnop_interval = 0\n'
    )
    cli(cfg, "lun", "create", "disk0", "--size", "4M")
    cli(cfg, "lun", "create", "disk1", "--size", "2M", "--thick", "--block-size", "4096")
    cli(cfg, "vsan", "create", "fab")
    cli(cfg, "vhba", "add", "vm1", "--vsan", "fab")
    cli(cfg, "vhba", "add", "vm2", "--vsan", "fab")
    cli(cfg, "lun", "map", "disk0", "--vm", "vm1")
    cli(cfg, "lun", "map", "disk1", "--vm", "vm2")
    return cfg


def names(service: SanService, vm: str) -> tuple[str, str]:
    h = service.state.fabric.vhbas[vm][0]
    return initiator_name(h.wwpn_a), initiator_name(h.wwpn_b)


@dataclass
class Site:
    """A running SAN service and the initiators a test connected to it."""

    service: SanService
    ports: list[int]
    initiators: list[Initiator] = field(default_factory=list)

    async def connect(self, portal: int, name: str) -> Initiator:
        """An initiator named ``name`` connected to the portal at index ``portal``."""
        ini = await Initiator.connect(self.ports[portal], name)
        self.initiators.append(ini)
        return ini


@asynccontextmanager
async def serving(config: Path) -> AsyncIterator[Site]:
    """The SAN service of ``config`` on its portals; on exit the initiators' connections
    close and the service stops."""
    async with trio.open_nursery() as nursery:
        service = SanService(load(config))
        bound = await nursery.start(service.run)
        site = Site(service, [port for _, port in bound])
        yield site
        for ini in site.initiators:
            await ini.stream.aclose()
        nursery.cancel_scope.cancel()


def luns_of(data: bytes) -> list[int]:
    n = int.from_bytes(data[:4], "big") // 8
    return [int.from_bytes(data[8 + 8 * i : 10 + 8 * i], "big") for i in range(n)]


async def test_rfc7143_full_session_write_read_with_r2t_and_digests(config: Path) -> None:
    async with serving(config) as site:
        vm1, _ = names(site.service, "vm1")
        ini = await site.connect(1, vm1)
        answers = await ini.login(
            IQN,
            keys=[
                ("HeaderDigest", "CRC32C"),
                ("DataDigest", "CRC32C"),
                ("MaxRecvDataSegmentLength", "4096"),
                ("ImmediateData", "No"),
                ("InitialR2T", "Yes"),
                ("MaxBurstLength", "8192"),
            ],
        )
        assert answers["TargetPortalGroupTag"] == "2"
        assert answers["HeaderDigest"] == "CRC32C"
        r = await ini.command(0, TUR)
        assert r.status == 2  # unit attention: power on, reset
        r = await ini.command(0, REPORT_LUNS, read=256)
        assert r.status == 0 and luns_of(r.data) == [0]
        pattern = bytes(range(256)) * 128  # 32 KiB: four R2T bursts of 8 KiB
        w = await ini.command(0, bytes.fromhex("2a00000000100000400000"), data_out=pattern)
        assert w.status == 0
        rd = await ini.command(0, bytes.fromhex("28000000001000004000"), read=len(pattern))
        assert rd.status == 0 and rd.data == pattern
        r = await ini.command(1, INQUIRY, read=96)
        assert r.status == 0 and r.data[0] == 0x7F  # LUN 1 is not mapped to vm1
        r = await ini.command(1, TUR)
        assert r.status == 2 and r.sense[12:14] == b"\x25\x00"  # LU NOT SUPPORTED
        assert (await ini.logout()).response == 0


async def test_rfc7143_large_write_with_immediate_unsolicited_and_solicited_data(
    config: Path,
) -> None:
    async with serving(config) as site:
        vm1, _ = names(site.service, "vm1")
        ini = await site.connect(0, vm1)
        answers = await ini.login(
            IQN,
            keys=[
                ("ImmediateData", "Yes"),
                ("InitialR2T", "No"),
                ("FirstBurstLength", "262144"),
                ("MaxBurstLength", "262144"),
                ("MaxRecvDataSegmentLength", "262144"),
                ("DataDigest", "CRC32C"),
            ],
        )
        assert answers["InitialR2T"] == "No"
        ini.max_send = 65536  # several unsolicited Data-Out PDUs after the immediate data
        await ini.command(0, TUR)
        pattern = bytes(range(251)) * 4178  # just under 1 MiB, not a multiple of anything
        blocks = len(pattern) // 512
        pattern = pattern[: blocks * 512]
        cdb = bytes.fromhex("2a00") + (0).to_bytes(4, "big") + b"\0" + blocks.to_bytes(2, "big")
        w = await ini.command(0, cdb + b"\0", data_out=pattern)
        assert w.status == 0 and not w.overflow and not w.underflow
        rcdb = bytes.fromhex("2800") + (0).to_bytes(4, "big") + b"\0" + blocks.to_bytes(2, "big")
        rd = await ini.command(0, rcdb + b"\0", read=len(pattern))
        assert rd.status == 0 and rd.data == pattern


async def test_sbc3_5_3_compare_and_write_checks_the_expected_data_transfer_length(
    config: Path,
) -> None:
    """The transport hands the write's EDTL to the SCSI layer as the expected data-out
    length: a COMPARE AND WRITE whose 8-bit NUMBER OF LOGICAL BLOCKS wrapped to 0 while
    the initiator sends 2 x 256 blocks is INVALID FIELD IN CDB, not a no-op GOOD."""
    async with serving(config) as site:
        vm1, _ = names(site.service, "vm1")
        ini = await site.connect(0, vm1)
        await ini.login(IQN, keys=[("ImmediateData", "Yes"), ("InitialR2T", "No")])
        await ini.command(0, TUR)  # unit attention
        caw = bytes.fromhex("89") + bytes(12)
        r = await ini.command(0, caw + b"\0\0\0", data_out=b"A" * (2 * 256 * 512))
        assert r.status == 2 and r.sense[2] == 0x05 and r.sense[12:14] == b"\x24\x00"
        assert r.sense[15:18] == b"\xc0\x00\x0d"  # SKSV, C/D: byte 13
        w = await ini.command(0, bytes.fromhex("2a0000000000000001") + b"\0", data_out=b"A" * 512)
        assert w.status == 0
        r = await ini.command(0, caw + b"\x01\0\0", data_out=b"A" * 512 + b"B" * 512)
        assert r.status == 0
        rd = await ini.command(0, bytes.fromhex("28000000000000000100"), read=512)
        assert rd.data == b"B" * 512


async def test_unzoned_initiator_gets_authorization_failure(config: Path) -> None:
    async with serving(config) as site:
        ini = await site.connect(0, "naa.c003ff00000000ff")
        with pytest.raises(LoginFailed) as e:
            await ini.login(IQN)
        assert e.value.status == 0x0202


async def test_discovery_lists_one_target_address_per_zoned_portal(config: Path) -> None:
    async with serving(config) as site:
        ini = await site.connect(0, names(site.service, "vm2")[1])
        await ini.login(None)
        pairs = await ini.text_request([("SendTargets", "All")])
        assert pairs[0] == ("TargetName", IQN)
        assert [v for k, v in pairs if k == "TargetAddress"] == [
            f"127.0.0.1:{site.ports[0]},1",
            f"127.0.0.1:{site.ports[1]},2",
        ]
        nobody = await site.connect(0, "iqn.nobody")
        await nobody.login(None)
        assert await nobody.text_request([("SendTargets", "All")]) == []


async def test_cli_changes_take_effect_at_once_with_unit_attention(config: Path) -> None:
    async with serving(config) as site:
        vm1, vm1_b = names(site.service, "vm1")
        ini = await site.connect(0, vm1)
        await ini.login(IQN)
        await ini.command(0, TUR)  # consume the power-on unit attention
        assert (await ini.command(0, TUR)).status == 0
        cli(config, "lun", "map", "disk1", "--vm", "vm1")
        site.service.reload()  # what the daemon's reloader does on notify
        rx = await ini.recv()  # RFC 7143 11.9: Async Message, SCSI event, sense 3F/0E
        assert isinstance(rx.record, pdu.AsyncMessage) and rx.record.event == 0
        assert bytes(rx.data[2 + 12 : 2 + 14]) == b"\x3f\x0e"
        r = await ini.command(0, TUR)
        assert r.status == 2 and r.sense[12:14] == b"\x3f\x0e"
        r = await ini.command(0, REPORT_LUNS, read=256)
        assert luns_of(r.data) == [0, 1]
        # Set B (the live-migration destination) sees the same LUNs.
        other = await site.connect(1, vm1_b)
        await other.login(IQN)
        r = await other.command(0, REPORT_LUNS, read=256)
        assert luns_of(r.data) == [0, 1]


async def test_bad_pdus_get_rejects_and_the_server_survives(config: Path) -> None:
    async with serving(config) as site:
        vm1, _ = names(site.service, "vm1")
        ini = await site.connect(0, vm1)
        await ini.login(IQN)
        # A target opcode sent by an initiator: Reject "command not supported".
        await ini.send(pdu.NopIn(1, 2, 3, 4, 5).encode())
        rx = await ini.recv()
        assert isinstance(rx.record, pdu.Reject) and rx.record.reason == 0x05
        assert bytes(rx.data[:48]) == pdu.NopIn(1, 2, 3, 4, 5).encode()
        # A data segment beyond MaxRecvDataSegmentLength ends the connection.
        await ini.send_raw(bytes([0x00, 0x80, 0, 0, 0, 0xFF, 0xFF, 0xFF]) + bytes(40))
        with pytest.raises(EOFError):
            while True:
                await ini.recv()
        again = await site.connect(0, vm1)
        await again.login(IQN)
        assert (await again.command(0, TUR)).status in (0, 2)
        assert site.service.server.statistics()["logins"] >= 2


async def test_chap_wrong_secret_is_authentication_failure(config: Path) -> None:
    args = ["chap", "set", "--user", "host1", "--secret", "a-secret-long-enough"]
    cli(config, *args)
    async with serving(config) as site:
        vm1, _ = names(site.service, "vm1")
        bad = await site.connect(0, vm1)
        with pytest.raises(LoginFailed) as e:
            await bad.login(IQN, chap=("host1", "wrong-secret-here"))
        assert e.value.status == 0x0201
        good = await site.connect(0, vm1)
        await good.login(IQN, chap=("host1", "a-secret-long-enough"))
        assert (await good.command(0, TUR)).status in (0, 2)
    assert (config.parent / "state" / "san" / "chap.json").stat().st_mode & 0o777 == 0o600


def test_san_cli_register_adds_the_commands() -> None:
    parser = san_cli_parser()
    for cmd in (
        ["lun", "list"],
        ["fabric", "show", "--json"],
        ["vm", "attach", "x"],
        ["zone", "list"],
    ):
        assert parser.parse_args(cmd).func.__module__ == san_cli.__name__


async def test_live_migration_switch_keeps_luns_and_persistent_reservations(config: Path) -> None:
    async with serving(config) as site:
        set_a, set_b = names(site.service, "vm1")
        a = await site.connect(0, set_a)
        await a.login(IQN)
        await a.command(0, TUR)
        key = (0x1122334455667788).to_bytes(8, "big")
        register = bytes.fromhex("5f000000000000001800")  # PR OUT REGISTER, 24 bytes
        r = await a.command(0, register, data_out=bytes(8) + key + bytes(8))
        assert r.status == 0
        cli(config, "vhba", "switch", "vm1", "--set", "B")
        site.service.reload()
        assert site.service.state.fabric.vhbas["vm1"][0].active == "B"
        b = await site.connect(1, set_b)
        await b.login(IQN)
        await b.command(0, TUR)
        r = await b.command(0, REPORT_LUNS, read=256)
        assert luns_of(r.data) == [0]
        r = await b.command(0, bytes.fromhex("5e00000000000000ff00"), read=255)  # READ KEYS
        assert r.status == 0 and key in r.data[8:]


async def test_lun_alua_command_changes_a_port_group_at_run_time(config: Path) -> None:
    async with serving(config) as site:
        vm1, _ = names(site.service, "vm1")
        ini = await site.connect(1, vm1)  # portal 2 = target port group 2
        await ini.login(IQN)
        await ini.command(0, TUR)
        cli(config, "lun", "alua", "disk0", "--group", "2", "--state", "standby")
        site.service.reload()
        r = await ini.command(0, TUR)
        assert r.status == 2 and r.sense[12:14] == b"\x2a\x06"  # state changed
        r = await ini.command(0, bytes.fromhex("28000000000000000100"), read=512)
        assert r.status == 2 and r.sense[2] & 0x0F == 2 and r.sense[12:14] == b"\x04\x0b"
        rtpg = bytes.fromhex("a30a00000000000004000000")
        r = await ini.command(0, rtpg, read=1024)
        assert r.status == 0


async def test_config_open_initiators_see_every_lun(config: Path) -> None:
    config.write_text(config.read_text() + 'open_initiators = ["iqn.2026-11.host:h1"]\n')
    async with serving(config) as site:
        ini = await site.connect(0, "iqn.2026-11.host:h1")
        await ini.login(IQN)
        r = await ini.command(0, REPORT_LUNS, read=256)
        assert luns_of(r.data) == [0, 1]
    cli(config, "vsan", "create", "other")  # saving the fabric keeps config names out
    assert "iqn.2026-11.host:h1" not in (config.parent / "state/san/fabric.json").read_text()


async def test_rfc7143_6_3_5_session_reinstatement_closes_the_old_session(config: Path) -> None:
    async with serving(config) as site:
        vm1, _ = names(site.service, "vm1")
        old = await site.connect(0, vm1)
        await old.login(IQN)
        new = await site.connect(0, vm1)
        new.isid = old.isid  # same initiator port: the old session is reinstated
        await new.login(IQN)
        with trio.fail_after(5), pytest.raises(EOFError):
            await old.recv()
        assert len(site.service.server.sessions) == 1


async def test_rfc7143_11_19_unanswered_nop_in_pings_end_the_connection(config: Path) -> None:
    async with serving(config) as site:
        site.service.server.settings.nop_interval = 0.05
        vm1, _ = names(site.service, "vm1")
        ini = await site.connect(0, vm1)
        await ini.login(IQN)
        with trio.fail_after(5):
            rx = await ini.recv()
            assert isinstance(rx.record, pdu.NopIn) and rx.record.itt == 0xFFFFFFFF
            with pytest.raises(EOFError):  # not answered: the target drops the connection
                while True:
                    await ini.recv()


async def test_rfc7143_11_7_pipelined_reads_take_the_fast_path_with_digests(config: Path) -> None:
    """A burst of READs sent in one segment is answered through the READ fast path (one
    Data-In with status each, digests checked by the initiator), mixed with commands that
    take the full path (TEST UNIT READY, a READ out of range): every command answered,
    StatSN consecutive in the order the replies arrive."""
    async with serving(config) as site:
        vm1, _ = names(site.service, "vm1")
        ini = await site.connect(0, vm1)
        await ini.login(IQN, keys=[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")])
        assert (await ini.command(0, TUR)).status == 2  # power on, reset
        pattern = bytes(range(256)) * 256  # 64 KiB at LBA 0x100
        w = await ini.command(0, bytes.fromhex("2a000000010000008000"), data_out=pattern)
        assert w.status == 0
        expect: dict[int, tuple[int, bytes]] = {}
        burst = b""
        for i in range(40):
            itt = ini.next_itt()
            lba = 0x100 + (i * 8) % 128
            cdb, edtl, want = bytes(16), 4096, (0, pattern[(lba - 0x100) * 512 :][:4096])
            if i % 2:
                cdb = b"\x88\x00" + lba.to_bytes(8, "big") + (8).to_bytes(4, "big") + b"\0\0"
            else:
                cdb = b"\x28\x00" + lba.to_bytes(4, "big") + b"\x00\x00\x08\x00" + bytes(6)
            if i == 13:
                cdb, edtl, want = TUR.ljust(16, b"\0"), 0, (0, b"")
            if i == 27:
                cdb = bytes.fromhex("28000000200000000800") + bytes(6)  # LBA 0x2000: beyond
                want = (2, b"")
            rec = pdu.ScsiCommand(
                itt, 0, edtl, ini.cmdsn, ini.exp_statsn, cdb, read=bool(edtl), write=False
            )
            ini.cmdsn += 1
            burst += b"".join(bytes(b) for b in ini.framer.frame(rec.encode()))
            expect[itt] = want
        await ini.send_raw(burst)
        statsns = []
        while expect:
            rx = await ini.recv()
            r = rx.record
            assert isinstance(r, pdu.DataIn | pdu.ScsiResponse), r
            if isinstance(r, pdu.DataIn):
                assert r.status == 0 and r.final and not r.residual
            status, data = expect.pop(r.itt)
            assert r.status == status
            if status == 0:
                assert bytes(rx.data) == data
            statsns.append(r.statsn)
        assert statsns == list(range(statsns[0], statsns[0] + 40))
        (info,) = site.service.server.session_info()
        assert 0 < info["fast_reads"] <= 38  # the TUR and the read out of range are not
        assert (await ini.logout()).response == 0


async def test_rfc7143_11_7_large_reads_are_sent_from_the_lun_file_without_data_digest(
    config: Path,
) -> None:
    """1 MiB READs the page cache holds go out from the LUN's file (sendfile), in Data-In
    PDUs of MaxRecvDataSegmentLength, pipelined with small reads of the fast path and
    commands of the full path: the bytes written, StatSN in order.  With a data digest
    they take the full path (the CRC needs the data in memory) and read the same."""
    pattern = (bytes(range(251)) * 4178)[: 1 << 20]  # at LBA 0x800
    for keys, from_file, max_pdu in (
        ([("MaxRecvDataSegmentLength", "65536")], True, 65536),
        ([("HeaderDigest", "CRC32C"), ("MaxRecvDataSegmentLength", "262144")], True, 262144),
        ([("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")], False, 8192),
    ):
        async with serving(config) as site:
            vm1, _ = names(site.service, "vm1")
            ini = await site.connect(0, vm1)
            await ini.login(IQN, keys=keys)
            assert (await ini.command(0, TUR)).status == 2  # power on, reset
            w = await ini.command(0, bytes.fromhex("2a000000080000080000"), data_out=pattern)
            assert w.status == 0
            expect: dict[int, tuple[int, bytes]] = {}
            burst = b""
            for i in range(12):
                itt = ini.next_itt()
                if i % 3 == 0:  # 4 KiB: the READ fast path
                    cdb, edtl = bytes.fromhex("28000000080800000800"), 4096
                    want = pattern[4096:8192]
                elif i == 7:  # a TEST UNIT READY between them
                    cdb, edtl, want = TUR, 0, b""
                else:
                    cdb, edtl, want = bytes.fromhex("28000000080000080000"), 1 << 20, pattern
                rec = pdu.ScsiCommand(
                    itt, 0, edtl, ini.cmdsn, ini.exp_statsn, cdb.ljust(16, b"\0"), read=bool(edtl)
                )
                ini.cmdsn += 1
                burst += b"".join(bytes(b) for b in ini.framer.frame(rec.encode()))
                expect[itt] = (edtl, want)
            await ini.send_raw(burst)
            statsns = []
            data: dict[int, bytearray] = {}
            while expect:
                rx = await ini.recv()
                r = rx.record
                assert isinstance(r, pdu.DataIn | pdu.ScsiResponse), r
                buf = data.setdefault(r.itt, bytearray())
                if isinstance(r, pdu.DataIn):
                    assert r.offset == len(buf) and len(rx.data) <= max_pdu
                    buf += rx.data
                if r.status is None:
                    continue
                edtl, want = expect.pop(r.itt)
                assert r.status == 0 and not r.residual and bytes(buf) == want
                statsns.append(r.statsn)
            assert statsns == list(range(statsns[0], statsns[0] + 12))
            (info,) = site.service.server.session_info()
            assert info["file_reads"] == (7 if from_file else 0), info
            assert info["fast_reads"] == 4
            # Every read sent from the file has left the WRITE ATOMIC gate again.
            assert commands.io_gate(site.service.target.luns[0]).inflight == 0
            assert (await ini.logout()).response == 0


class _LunFile:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


async def test_sends_from_the_file_survive_partial_sends_in_pdu_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_SocketIO.send with FileSpans between buffers, through a small socket send buffer
    and a slow reader: every sendfile and sendmsg ends partway many times, and the bytes
    arrive complete and in queue order.  A span of a closed file ends the connection
    (OSError) rather than sending a short PDU."""
    from scsi.iscsi.framing import FileSpan
    from scsi.iscsi.server import _SocketIO

    blob = bytes(range(256)) * 8192  # 2 MiB
    path = tmp_path / "lun.img"
    path.write_bytes(blob)
    fd = os.open(path, os.O_RDONLY)
    a, b = trio.socket.socketpair()
    try:
        a.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, 16384)
        src = _LunFile(fd)
        pdus: list[list[Any]] = []
        want = b""
        for i in range(12):
            head = bytes([i]) * 48
            span = FileSpan(src, (i * 300_017) % (1 << 20), 65536 + i * 4099)
            pdus.append([head, span] if i % 4 else [memoryview(head), b"x" * 70000])
            body = blob[span.offset : span.offset + span.length] if i % 4 else b"x" * 70000
            want += head + body
        io = _SocketIO(a)
        got = bytearray()
        calls: list[tuple[int, int]] = []  # (asked, sent or -1 for EAGAIN)
        sendfile = os.sendfile

        def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
            try:
                n = sendfile(out_fd, in_fd, offset, count)
            except BlockingIOError:
                calls.append((count, -1))
                raise
            calls.append((count, n))
            return n

        monkeypatch.setattr(os, "sendfile", counting)

        async def slow_reader() -> None:
            while len(got) < len(want):
                got.extend(await b.recv(7001))
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow_reader)
            await io.send(pdus)
        assert bytes(got) == want
        assert sum(0 <= n < asked for asked, n in calls) > 3  # partial sendfiles
        assert any(n < 0 for _, n in calls)  # and waits for room
        with pytest.raises(OSError):
            await io.send([[b"h" * 48, FileSpan(_LunFile(-1), 0, 4096)]])
    finally:
        os.close(fd)
        a.close()
        b.close()
