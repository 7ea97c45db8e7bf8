"""iSCSI throughput of vmstor against tgt, measured in one run on this machine.

Starts tgt (interop/peers/tgt.py) and ``vmstor serve`` on loopback, each with one 1 GiB thin
LUN, and runs the same userspace initiators against both:

- iscsi-perf: 1 MiB sequential reads at queue depth 16, 4 KiB random reads at QD 32;
- qemu-img bench (QEMU's libiscsi driver): 1 MiB sequential writes and reads at QD 16.

Each test runs ``--rounds`` times, alternating the peers; the median is printed (MiB/s or
IOPS) with the vmstor/tgt ratio.

    python3 -m bench.iscsi_bench [--secs 5] [--rounds 3] [--only random]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from interop.peers.tgt import start_tgt

IQN = "iqn.2026-11.org.vmstor:bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm(config: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "vmstor.cli", *args, "--config", str(config)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def start_vmstor(root: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    config = root / "vmstor.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{free_port()}"]\nstate_dir = "state"\n'
        f'[iscsi]\nportals = ["127.0.0.1:{port}"]\ntarget_name = "{IQN}"\nnop_interval = 0\n'
    )
    vm(config, "lun", "create", "bench", "--size", "1G", "--thin")
    vm(config, "vsan", "create", "fab")
    vm(config, "vhba", "add", "benchvm", "--vsan", "fab")
    vm(config, "lun", "map", "bench", "--vm", "benchvm")
    view = json.loads(vm(config, "fabric", "show", "--json"))
    wwpn = view["vms"][0]["vhbas"][0]["wwpn_a"].replace(":", "")
    log = open(root / "serve.log", "wb")  # noqa: SIM115 - closed after the child exits
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmstor.cli", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "serve.log").read_text()) from None
            time.sleep(0.1)
    return proc, f"127.0.0.1:{port}", f"naa.{wwpn}"


def iscsi_perf(url: str, initiator: str, secs: int, *args: str) -> float:
    """IOPS reported by iscsi-perf."""
    out = subprocess.run(
        ["iscsi-perf", "-i", initiator, *args, "-t", str(secs), url],
        capture_output=True,
        text=True,
        timeout=secs + 60,
    )
    text = (out.stdout + out.stderr).replace("\r", "\n")
    found = re.findall(r"iops average (\d+)", text)
    return float(found[-1]) if found else 0.0


def qemu_bench(portal: str, iqn: str, lun: int, initiator: str, write: bool) -> float:
    """MiB/s of qemu-img bench, 1 MiB requests at QD 16."""
    opts = (
        f"driver=raw,file.driver=iscsi,file.transport=tcp,file.portal={portal},"
        f"file.target={iqn},file.lun={lun},file.initiator-name={initiator}"
    )
    count = 1024
    cmd = ["qemu-img", "bench", "--image-opts", "-t", "none", "-s", "1M", "-d", "16"]
    cmd += ["-c", str(count)] + (["-w"] if write else []) + [opts]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    m = re.search(r"Run completed in ([0-9.]+) seconds", out.stdout)
    if not m:
        raise RuntimeError(out.stdout + out.stderr)
    return count / float(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--secs", type=int, default=5, help="seconds per iscsi-perf run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs per test")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="run only the tests whose name contains TEXT (repeatable), e.g. --only random",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="iscsi-bench-") as tmp:
        root = Path(tmp)
        tgt = start_tgt(root / "tgt", portal=f"127.0.0.1:{free_port()}")
        proc, portal, ini = start_vmstor(root)
        try:
            peers: dict[str, tuple[str, str, int, str]] = {
                "tgt": (tgt.portal, tgt.iqn, 1, "iqn.2026-11.org.vmstor:bench-initiator"),
                "vmstor": (portal, IQN, 0, ini),
            }
            tests: list[tuple[str, str, Callable[[str, str, int, str], float]]] = [
                (
                    "qemu-img bench 1 MiB seq write QD16",
                    "MiB/s",
                    lambda p, q, lun, i: qemu_bench(p, q, lun, i, True),
                ),
                (
                    "qemu-img bench 1 MiB seq read QD16",
                    "MiB/s",
                    lambda p, q, lun, i: qemu_bench(p, q, lun, i, False),
                ),
                (
                    "iscsi-perf 1 MiB seq read QD16",
                    "MiB/s",
                    lambda p, q, lun, i: iscsi_perf(
                        f"iscsi://{p}/{q}/{lun}", i, args.secs, "-m", "16", "-b", "2048"
                    ),
                ),
                (
                    "iscsi-perf 4 KiB random read QD32",
                    "IOPS",
                    lambda p, q, lun, i: iscsi_perf(
                        f"iscsi://{p}/{q}/{lun}", i, args.secs, "-r", "-m", "32", "-b", "8"
                    ),
                ),
            ]
            if args.only:
                tests = [t for t in tests if any(w in t[0] for w in args.only)]
            print(f"{'test':40} {'unit':6} {'tgt':>10} {'vmstor':>10} {'ratio':>7}")
            for name, unit, fn in tests:
                # Interleaved rounds, median per peer: the machine is shared and noisy.
                runs: dict[str, list[float]] = {peer: [] for peer in peers}
                for _ in range(args.rounds):
                    for peer, spec in peers.items():
                        runs[peer].append(fn(*spec))
                res = {peer: statistics.median(v) for peer, v in runs.items()}
                ratio = res["vmstor"] / res["tgt"] if res["tgt"] else 0.0
                print(
                    f"{name:40} {unit:6} {res['tgt']:10.0f} {res['vmstor']:10.0f} {ratio:7.2f}",
                    flush=True,
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            tgt.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
