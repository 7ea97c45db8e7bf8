"""vmstor's iSCSI target against real initiators: libiscsi (iscsi-test-cu, iscsi-ls,
iscsi-inq), QEMU's iSCSI driver (qemu-io) and Wireshark's dissector (tshark).

The daemon runs as ``vmstor serve`` on two loopback portals with free ports, a thin and a
thick LUN, and a virtual fabric set up with the CLI: vm1 sees the thin LUN, vm2 the thick
one, vm3 a read-only (write protected) LUN. libiscsi's conformance suite runs family by
family (one process per family) with the VM's set A WWPN as initiator and set B as the second
initiator (both zoned and masked alike); MultipathIO gets the second portal as a second path.
The families that need a write-protected medium run against the read-only LUN as well. Every
test named in ``iscsi_passing.txt`` must pass. A missing peer fails these tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent
PASSING = HERE / "iscsi_passing.txt"
IQN = "iqn.2026-11.org.vmstor:interop"
FAMILY_TIMEOUT = 240
# Families whose tests need a write-protected medium (they skip on a writable one).
READ_ONLY_FAMILIES = ("SCSI.ReadOnly",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vmstor(config: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "vmstor.cli", *args, "--config", str(config)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


class San:
    def __init__(self, root: Path, ports: list[int]) -> None:
        self.root = root
        self.ports = ports
        self.config = root / "vmstor.toml"
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, lun: int, port: int | None = None) -> str:
        return f"iscsi://127.0.0.1:{port or self.ports[0]}/{IQN}/{lun}"


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vmstor serve exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("vmstor serve did not open its portal")


@pytest.fixture(scope="module")
def san(tmp_path_factory: pytest.TempPathFactory) -> Iterator[San]:
    root = tmp_path_factory.mktemp("san")
    ports = [free_port(), free_port()]
    s = San(root, ports)
    s.config.write_text(
        "[server]\n"
        f'listen = ["127.0.0.1:{free_port()}"]\n'
        'state_dir = "state"\n'
        "[iscsi]\n"
        f'portals = ["127.0.0.1:{ports[0]}", "127.0.0.1:{ports[1]}"]\n'
        f'target_name = "{IQN}"\n'
    )
    vmstor(s.config, "lun", "create", "thin", "--size", "256M", "--thin")
    vmstor(s.config, "lun", "create", "thick", "--size", "128M", "--thick")
    vmstor(s.config, "lun", "create", "ro", "--size", "64M", "--thin", "--read-only")
    vmstor(s.config, "vsan", "create", "fabA")
    vmstor(s.config, "vhba", "add", "vm1", "--vsan", "fabA")
    vmstor(s.config, "vhba", "add", "vm2", "--vsan", "fabA")
    vmstor(s.config, "vhba", "add", "vm3", "--vsan", "fabA")
    vmstor(s.config, "lun", "map", "thin", "--vm", "vm1")
    vmstor(s.config, "lun", "map", "thick", "--vm", "vm2")
    vmstor(s.config, "lun", "map", "ro", "--vm", "vm3")
    log = root / "serve.log"
    with open(log, "wb") as out:
        s.proc = subprocess.Popen(
            [sys.executable, "-m", "vmstor.cli", "serve", "--config", str(s.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_port(ports[0], s.proc, log)
        yield s
    finally:
        s.proc.send_signal(signal.SIGTERM)
        try:
            s.proc.wait(10)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()
        assert "Traceback" not in log.read_text(), log.read_text()


def initiators(san: San, vm: str) -> tuple[str, str]:
    view = json.loads(vmstor(san.config, "fabric", "show", "--json"))
    hba = next(v for v in view["vms"] if v["vm"] == vm)["vhbas"][0]
    a = "naa." + hba["wwpn_a"].replace(":", "")
    b = "naa." + hba["wwpn_b"].replace(":", "")
    return a, b


def run(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_iscsi_ls_shows_masked_lun_sets(san: San) -> None:
    vm1, vm1_b = initiators(san, "vm1")
    vm2, _ = initiators(san, "vm2")
    seen = {}
    for name in (vm1, vm1_b, vm2):
        out = run("iscsi-ls", "-s", "-i", name, f"iscsi://127.0.0.1:{san.ports[0]}")
        assert out.returncode == 0, out.stderr
        seen[name] = set(re.findall(r"Lun:(\d+)", out.stdout))
        # Both portals are listed (one TargetAddress per portal).
        assert len(set(re.findall(r"Portal:(\S+)", out.stdout))) == 2
    assert seen[vm1] == seen[vm1_b] == {"0"}
    assert seen[vm2] == {"1"}


def test_cli_changes_reach_the_running_daemon(san: San) -> None:
    vm2, _ = initiators(san, "vm2")
    url = f"iscsi://127.0.0.1:{san.ports[0]}"
    vmstor(san.config, "lun", "map", "thin", "--vm", "vm2")
    try:
        out = run("iscsi-ls", "-s", "-i", vm2, url)
        assert set(re.findall(r"Lun:(\d+)", out.stdout)) == {"0", "1"}, out.stdout
    finally:
        vmstor(san.config, "lun", "unmap", "thin", "--vm", "vm2")
    out = run("iscsi-ls", "-s", "-i", vm2, url)
    assert set(re.findall(r"Lun:(\d+)", out.stdout)) == {"1"}, out.stdout
    status = vmstor(san.config, "status")
    assert "iSCSI sessions" in status and "LUNs" in status


def test_unzoned_initiator_gets_authorization_failure(san: San) -> None:
    out = run("iscsi-inq", "-i", "naa.c003ff00000000ff", san.url(0))
    assert out.returncode != 0
    assert "Authorization failure" in out.stdout + out.stderr


def test_iscsi_inq_unmapped_lun_is_not_connected(san: San) -> None:
    vm2, _ = initiators(san, "vm2")
    out = run("iscsi-inq", "-i", vm2, san.url(0))
    assert "NOT_CONNECTED" in out.stdout or out.returncode != 0, out.stdout


def test_qemu_io_writes_and_reads_back_a_pattern(san: San) -> None:
    vm2, _ = initiators(san, "vm2")
    out = run(
        "qemu-io",
        "--image-opts",
        f"driver=iscsi,transport=tcp,portal=127.0.0.1:{san.ports[1]},target={IQN},lun=1,"
        f"initiator-name={vm2}",
        "-c",
        "write -P 0x5a 1M 3M",
        "-c",
        "read -P 0x5a 1M 3M",
        "-c",
        "read -P 0 0 1M",
    )
    assert out.returncode == 0, out.stderr
    assert "Pattern verification failed" not in out.stdout + out.stderr
    assert out.stdout.count("read 3145728/3145728") == 1, out.stdout


def test_qemu_io_with_crc32c_header_digests(san: San) -> None:
    vm1, _ = initiators(san, "vm1")
    out = run(
        "qemu-io",
        "--image-opts",
        f"driver=iscsi,transport=tcp,portal=127.0.0.1:{san.ports[0]},target={IQN},lun=0,"
        f"initiator-name={vm1},header-digest=crc32c",
        "-c",
        "write -P 0xc3 8M 2M",
        "-c",
        "read -P 0xc3 8M 2M",
    )
    assert out.returncode == 0, out.stderr
    assert "Pattern verification failed" not in out.stdout + out.stderr
    assert "read 2097152/2097152" in out.stdout
    log = (san.root / "serve.log").read_text()
    assert "digests True/False" in log


def test_qemu_img_copy_offload_uses_extended_copy(san: San) -> None:
    """``qemu-img convert -C`` (copy offloading) between two LUNs of the target: QEMU's
    iSCSI driver sends EXTENDED COPY with identification CSCD descriptors built from each
    unit's VPD page 83h; the copy happens inside the target."""
    _, vm3 = initiators(san, "vm3")
    vmstor(san.config, "lun", "create", "xsrc", "--size", "8M", "--thin", "--id", "10")
    vmstor(san.config, "lun", "create", "xdst", "--size", "8M", "--thin", "--id", "11")
    try:
        vmstor(san.config, "lun", "map", "xsrc", "--vm", "vm3")
        vmstor(san.config, "lun", "map", "xdst", "--vm", "vm3")

        def opts(lun: int) -> str:
            return (
                f"driver=iscsi,transport=tcp,portal=127.0.0.1:{san.ports[0]},target={IQN},"
                f"lun={lun},initiator-name={vm3}"
            )

        def copy_stats() -> dict[str, int]:
            status = json.loads(vmstor(san.config, "status", "--json"))
            stats: dict[str, int] = status["san"]["statistics"]["target"]["copy_manager"]
            return stats

        out = run("qemu-io", "--image-opts", opts(10), "-c", "write -P 0x3c 0 8M")
        assert out.returncode == 0, out.stderr
        before = copy_stats()
        out = run(
            "qemu-img",
            "convert",
            "-C",
            "-n",
            "--image-opts",
            opts(10),
            "--target-image-opts",
            opts(11),
        )
        assert out.returncode == 0, out.stdout + out.stderr
        after = copy_stats()
        assert after["copies"] > before["copies"], after
        assert after["copy_bytes"] - before["copy_bytes"] == 8 << 20, after
        out = run("qemu-io", "--image-opts", opts(11), "-c", "read -P 0x3c 0 8M")
        assert out.returncode == 0, out.stderr
        assert "Pattern verification failed" not in out.stdout + out.stderr
        assert "read 8388608/8388608" in out.stdout
    finally:
        vmstor(san.config, "lun", "delete", "xsrc")
        vmstor(san.config, "lun", "delete", "xdst")


def test_tshark_sees_no_malformed_pdu(san: San, tmp_path: Path) -> None:
    pcap = tmp_path / "iscsi.pcapng"
    port = san.ports[0]
    cap = subprocess.Popen(
        ["tshark", "-q", "-i", "lo", "-f", f"tcp port {port}", "-w", str(pcap)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not pcap.exists():
            time.sleep(0.1)
        time.sleep(0.5)
        vm1, _ = initiators(san, "vm1")
        run(
            "qemu-io",
            "--image-opts",
            f"driver=iscsi,transport=tcp,portal=127.0.0.1:{port},target={IQN},lun=0,"
            f"initiator-name={vm1}",
            "-c",
            "write -P 0x11 0 2M",
            "-c",
            "read -P 0x11 0 2M",
        )
        time.sleep(1)
    finally:
        cap.send_signal(signal.SIGINT)
        cap.wait(10)
    opts = ["-d", f"tcp.port=={port},iscsi", "-o", "iscsi.bogus_pdu_max_data_len:16777215"]
    n = run("tshark", "-n", "-r", str(pcap), *opts, "-Y", "iscsi")
    assert len(n.stdout.splitlines()) > 20, n.stdout
    # tshark 4.0 flags a standard INQUIRY response cut short by the initiator's ALLOCATION
    # LENGTH (QEMU asks for 64 bytes first) as malformed SCSI; that is the SCSI rule, not an
    # iSCSI framing problem, so those frames (and only those) are left out.
    quirk = "(scsi_sbc.opcode == 0x12 && iscsi.opcode == 0x25)"
    problems = f"(_ws.malformed || _ws.expert.severity == error) && !{quirk}"
    bad = run("tshark", "-n", "-r", str(pcap), *opts, "-Y", problems)
    assert bad.stdout.strip() == "", bad.stdout
    digests = run("tshark", "-n", "-r", str(pcap), *opts, "-V")
    assert "incorrect" not in digests.stdout.lower()


def _families() -> list[str]:
    out = run("iscsi-test-cu", "-l")
    fams = []
    for line in out.stdout.split():
        parts = line.split(".")
        if len(parts) == 2 and parts[0] in ("SCSI", "iSCSI") and parts[1] != "Sanitize":
            fams.append(line)
    return fams


_VERDICT = re.compile(r"(?:^|\.\.\.|\s)(passed|FAILED)(?=\s|$)")


def parse_cunit(text: str, family: str) -> dict[str, str]:
    """Per-test status from one iscsi-test-cu run: PASS, FAIL or SKIP.

    CUnit prints ``Test: NAME ...`` then the test's log lines and its verdict (``passed`` or
    ``FAILED``, possibly on a later line); ``[FAILED]`` in brackets is a log line of the
    test tool (an expected failure, or its own teardown), not the verdict.
    """
    result: dict[str, str] = {}
    current = None
    decided = False
    for line in text.splitlines():
        m = re.search(r"Test: (\S+) \.\.\.", line)
        if m:
            current, decided = f"{family}.{m.group(1)}", False
            result[current] = "FAIL"
            line = line[m.end() - 3 :]
        if current is None:
            continue
        if "[SKIPPED]" in line and not decided:
            result[current] = "SKIP"
        v = _VERDICT.search(line)
        if v and not decided:
            decided = True
            if v.group(1) == "FAILED":
                result[current] = "FAIL"
            elif result[current] != "SKIP":
                result[current] = "PASS"
    return result


def test_iscsi_test_cu_keeps_passing(san: San, tmp_path: Path) -> None:
    vm1, vm1_b = initiators(san, "vm1")
    vm2, vm2_b = initiators(san, "vm2")
    vm3, vm3_b = initiators(san, "vm3")
    results: dict[str, str] = {}
    logs = []
    fams = _families()
    runs = (
        (0, "thin", (vm1, vm1_b), fams),
        (1, "thick", (vm2, vm2_b), fams),
        (2, "ro", (vm3, vm3_b), [f for f in fams if f in READ_ONLY_FAMILIES]),
    )
    for lun, label, (ini, ini2), families in runs:
        for fam in families:
            try:
                # MultipathIO gets the second portal as a second path to the same LU.
                paths = [san.url(lun)]
                if fam.endswith("MultipathIO"):
                    paths.append(san.url(lun, san.ports[1]))
                out = run(
                    "iscsi-test-cu",
                    "-d",
                    "-i",
                    ini,
                    "-I",
                    ini2,
                    "-t",
                    fam,
                    *paths,
                    timeout=FAMILY_TIMEOUT,
                )
                text = out.stdout + out.stderr
            except subprocess.TimeoutExpired as e:
                text = str(e.stdout or "")
            logs.append(text)
            for name, status in parse_cunit(text, fam).items():
                key = f"{name}@{label}"
                results[key] = status
    (tmp_path / "results.txt").write_text(
        "\n".join(f"{v} {k}" for k, v in sorted(results.items())) + "\n"
    )
    counts = {s: sum(1 for v in results.values() if v == s) for s in ("PASS", "FAIL", "SKIP")}
    print(f"iscsi-test-cu: {counts}")
    if os.environ.get("VMSTOR_WRITE_PASSING"):
        header = [x for x in PASSING.read_text().splitlines() if x.startswith("#")]
        PASSING.write_text(
            "\n".join([*header, *(k for k, v in sorted(results.items()) if v == "PASS")]) + "\n"
        )
    lines = [x.strip() for x in PASSING.read_text().splitlines()]
    expected = [x for x in lines if x and not x.startswith("#")]
    regressed = [t for t in expected if results.get(t) != "PASS"]
    assert not regressed, f"stopped passing: {regressed}"
