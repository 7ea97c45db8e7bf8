"""Start and stop tgt (the Linux userspace SCSI target) as an iSCSI baseline on loopback.

The project's own way of running the peer: ``tgtd -f`` in the foreground as our child, a
management socket of its own (``-C``), one target with one file-backed LUN, bound to every
initiator. Stopped by its PID only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class TgtError(Exception):
    pass


@dataclass
class Tgt:
    proc: subprocess.Popen[bytes]
    ctrl: int
    portal: str
    iqn: str
    workdir: Path

    def url(self, lun: int = 1) -> str:
        return f"iscsi://{self.portal}/{self.iqn}/{lun}"

    def stop(self) -> None:
        adm = shutil.which("tgtadm") or "tgtadm"
        if self.proc.poll() is None:
            for args in (
                ["--op", "update", "--mode", "sys", "--name", "State", "-v", "offline"],
                ["--op", "delete", "--mode", "system", "--force"],
            ):
                subprocess.run([adm, "-C", str(self.ctrl), *args], capture_output=True, check=False)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()


def start_tgt(
    workdir: Path,
    *,
    portal: str = "127.0.0.1:3260",
    iqn: str = "iqn.2026-11.org.vmstor:tgt-baseline",
    size: int = 1 << 30,
    thin: bool = True,
    ctrl: int | None = None,
) -> Tgt:
    tgtd, adm = shutil.which("tgtd"), shutil.which("tgtadm")
    if tgtd is None or adm is None:
        raise TgtError("tgtd/tgtadm not found (apt-get install tgt)")
    workdir.mkdir(parents=True, exist_ok=True)
    image = workdir / "lun1.img"
    with open(image, "wb") as f:
        f.truncate(size)
    ctrl = ctrl if ctrl is not None else 100 + os.getpid() % 800
    log = open(workdir / "tgtd.log", "wb")  # noqa: SIM115 - lives as long as tgtd
    proc = subprocess.Popen(
        [tgtd, "-f", "-C", str(ctrl), "--iscsi", f"portal={portal}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    tgt = Tgt(proc, ctrl, portal, iqn, workdir)
    a = [adm, "-C", str(ctrl), "--lld", "iscsi"]
    deadline = time.monotonic() + 10
    while True:
        r = subprocess.run([*a, "--op", "show", "--mode", "target"], capture_output=True)
        if r.returncode == 0:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            tgt.stop()
            raise TgtError(f"tgtd did not start: {(workdir / 'tgtd.log').read_text()}")
        time.sleep(0.1)
    steps = [
        ["--op", "new", "--mode", "target", "--tid", "1", "-T", iqn],
        ["--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", str(image)],
        ["--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL"],
    ]
    if thin:
        steps.insert(
            2,
            [
                "--op",
                "update",
                "--mode",
                "logicalunit",
                "--tid",
                "1",
                "--lun",
                "1",
                "--params",
                "thin_provisioning=1",
            ],
        )
    for step in steps:
        done = subprocess.run([*a, *step], capture_output=True, text=True)
        if done.returncode != 0:
            tgt.stop()
            raise TgtError(f"tgtadm {' '.join(step)}: {done.stderr.strip()}")
    return tgt
