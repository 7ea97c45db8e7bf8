"""SMB throughput of vmstor next to Samba, on this machine, in one run.

    python3 -m bench.smb_bench                   # both servers, prints the ratio table
    python3 -m bench.smb_bench --only samba      # Samba alone (vmstor column shows "-")
    python3 -m bench.smb_bench --reps 6 --size-mib 1024 --depth 8

Both servers run at the same time on loopback from temporary folders on the same file
system (see interop/peers) and take turns with the same client files, so both see the same
background load: even repetitions measure Samba first, odd ones vmstor first (neither
always runs right after the other), and dirty pages are flushed before each timed transfer.

- smbclient -m SMB3_11 ``put`` / ``get`` of one random file (1 GiB by default): plain
  (--client-protection=off), signed (signing required: AES-GMAC) and encrypted
  (AES-128-GCM); MB/s = 10^6 bytes per second of wall clock for the whole smbclient run
  (connect, authenticate, transfer, close). Every ``get`` is compared with the source.
- 4 KiB small files: smbclient ``mput`` of N files (create, write, close each) and ``mget``
  of them back, in files per second.
- A Python client (smbprotocol's low-level Open, SMB 3.1.1, signed or encrypted) doing
  1 MiB WRITEs then 1 MiB READs of a file with ``--depth`` requests in flight on one
  connection; READ data is checked. (Unsigned is not an option: a 3.1.1 server refuses an
  unsigned TREE_CONNECT, MS-SMB2 3.3.5.7, and smbprotocol signs all or nothing.)
  The same runs also give each server's CPU time (user + system, all its processes and
  threads, from /proc) per MiB moved: this client spends several times more CPU than
  either server, so on two shared cores its throughput says little about the server,
  while the server's CPU per MiB is what the server costs a VM host. For those rows lower
  is better.

  The client keeps its heap (``mallopt``: no trimming, no per-buffer mmap) unless
  ``--trim-client-heap``. With glibc's defaults the client's 1 MiB buffers are handed back
  to the kernel and faulted in again a page at a time (1,222 minor faults per MiB
  written), depending on how the heap happens to lie: the same run swings between ~300
  and ~1,100 MB/s for both servers, and at ~300 the client's page faults, not either
  server, set the pace. That mode can still be measured with the flag.

Each figure is the median of ``--reps`` runs after one untimed warm-up run; the ratio is
the median of the per-repetition ratios (each pair measured back to back), which a slow
spell of the machine moves less than a ratio of medians. vmstor runs with
``require_signing = false`` so that "plain" means the same on both servers (Samba's
default is ``server signing = auto``). Loopback on a shared 2-core VM is noisy: compare
the ratio within one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interop.peers import Endpoint, PeerError
from interop.peers.tools import smbclient

MODES = ("plain", "sign", "encrypt")
# --tests name -> the metric keys (prefixes) it produces
TESTS = {"bulk": ("put-", "get-"), "small": ("mput", "mget"), "python": ("py-", "cpu-")}
MiB = 1 << 20
T = TypeVar("T")


@dataclass
class Metric:
    key: str
    label: str
    unit: str
    values: dict[str, list[float]] = field(default_factory=dict)  # server kind -> samples

    def median(self, kind: str) -> float | None:
        v = self.values.get(kind)
        return statistics.median(v) if v else None

    def ratio(self, kind: str, base: str) -> float | None:
        """Median of the per-repetition ratios ``kind``/``base`` (samples pair by index)."""
        v, b = self.values.get(kind), self.values.get(base)
        if not v or not b or len(v) != len(b) or not all(b):
            return None
        return statistics.median(x / y for x, y in zip(v, b, strict=True))


@dataclass
class Options:
    size: int
    reps: int
    small_files: int
    small_size: int
    depth: int
    py_protection: str
    workdir: Path
    verbose: bool


def _log(opts: Options, text: str) -> None:
    if opts.verbose:
        print(f"# {text}", file=sys.stderr, flush=True)


def _cpu_seconds(needle: str) -> float:
    """User + system CPU seconds of every process whose command line holds ``needle`` (a
    server's private config path: smbd's forked children keep it too), all threads, with
    the children they have reaped (a per-connection smbd that has exited)."""
    key = os.fsencode(needle)
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if key not in f.read():
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        # utime, stime, cutime, cstime: proc(5) fields 14-17
        total += sum(int(x) for x in fields[11:15])
    return total / tick


def _keep_client_heap() -> bool:
    """Tell glibc's malloc in this process to keep freed memory: 1 MiB buffers below the
    mmap threshold and a trim threshold above what the benchmark ever frees at once.
    False where that cannot be done (not glibc)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 * MiB) and mallopt(m_trim_threshold, 512 * MiB))


def _sync() -> None:
    """Flush dirty pages so one transfer's writeback does not land in the next one's time."""
    os.sync()


def _turns(eps: Sequence[T], rep: int) -> Sequence[T]:
    """The servers in the order repetition ``rep`` measures them: reversed every other one."""
    return eps if rep % 2 == 0 else eps[::-1]


# -- smbclient bulk and small files ---------------------------------------------------------


def _protection(mode: str) -> str:
    return "off" if mode == "plain" else mode


def bench_smbclient_bulk(
    eps: Sequence[Endpoint], opts: Options, src: Path, digest: str, out: dict[str, Metric]
) -> None:
    back = opts.workdir / "back.bin"
    name = "bench-bulk.bin"
    for mode in MODES:
        prot = _protection(mode)
        for rep in range(opts.reps + 1):  # rep 0 is the untimed warm-up
            for ep in _turns(eps, rep):  # servers take turns: both see the same load
                _sync()
                r = smbclient(ep, f'put "{src}" {name}', protection=prot, timeout=1200)
                back.unlink(missing_ok=True)
                _sync()
                g = smbclient(ep, f'get {name} "{back}"', protection=prot, timeout=1200)
                if back.stat().st_size != opts.size or _sha256(back) != digest:
                    raise PeerError(f"{ep.kind}: {mode} get returned different bytes")
                back.unlink()
                if rep:
                    out[f"put-{mode}"].values.setdefault(ep.kind, []).append(
                        opts.size / r.seconds / 1e6
                    )
                    out[f"get-{mode}"].values.setdefault(ep.kind, []).append(
                        opts.size / g.seconds / 1e6
                    )
                _log(
                    opts,
                    f"{ep.kind} {mode} rep {rep}: put {opts.size / r.seconds / 1e6:.0f} MB/s, "
                    f"get {opts.size / g.seconds / 1e6:.0f} MB/s",
                )
        for ep in eps:
            smbclient(ep, f"rm {name}", protection=prot)


def bench_small_files(
    eps: Sequence[Endpoint], opts: Options, small: Path, out: dict[str, Metric]
) -> None:
    n = opts.small_files
    for rep in range(opts.reps + 1):
        for ep in _turns(eps, rep):
            d = f"bench-small-{rep}"
            back = opts.workdir / f"small-back-{ep.kind}-{rep}"
            back.mkdir()
            smbclient(ep, f"mkdir {d}", protection="off")
            _sync()
            put = smbclient(
                ep,
                f'prompt off; recurse off; lcd "{small}"; cd {d}; mput *',
                protection="off",
                timeout=600,
            )
            got = os.listdir(ep.share_path / d)
            if len(got) != n:
                raise PeerError(f"{ep.kind}: mput stored {len(got)} of {n} files")
            _sync()
            get = smbclient(
                ep,
                f'prompt off; recurse off; lcd "{back}"; cd {d}; mget *',
                protection="off",
                timeout=600,
            )
            for name in os.listdir(small):
                if (back / name).read_bytes() != (small / name).read_bytes():
                    raise PeerError(f"{ep.kind}: mget returned different bytes for {name}")
            smbclient(
                ep, f"prompt off; cd {d}; del *; cd ..; rmdir {d}", protection="off", timeout=600
            )
            shutil.rmtree(back)
            if rep:
                out["mput"].values.setdefault(ep.kind, []).append(n / put.seconds)
                out["mget"].values.setdefault(ep.kind, []).append(n / get.seconds)
            _log(
                opts,
                f"{ep.kind} small rep {rep}: mput {n / put.seconds:.0f} files/s, "
                f"mget {n / get.seconds:.0f} files/s",
            )


# -- Python client, several 1 MiB requests in flight ----------------------------------------


@contextmanager
def _smbprotocol_file(ep: Endpoint, name: str, protection: str) -> Iterator[Any]:
    from smbprotocol.connection import Connection
    from smbprotocol.open import (
        CreateDisposition,
        CreateOptions,
        FileAttributes,
        FilePipePrinterAccessMask,
        ImpersonationLevel,
        Open,
        ShareAccess,
    )
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    conn = Connection(uuid.uuid4(), ep.host, ep.port, require_signing=True)
    conn.connect(timeout=30)
    try:
        session = Session(
            conn,
            ep.user,
            ep.password,
            require_encryption=protection == "encrypt",
            auth_protocol="ntlm",
        )
        session.connect()
        tree = TreeConnect(session, ep.winpath())
        tree.connect()
        fh = Open(tree, name)
        fh.create(
            ImpersonationLevel.Impersonation,
            FilePipePrinterAccessMask.GENERIC_READ
            | FilePipePrinterAccessMask.GENERIC_WRITE
            | FilePipePrinterAccessMask.DELETE,
            FileAttributes.FILE_ATTRIBUTE_NORMAL,
            ShareAccess.FILE_SHARE_READ,
            CreateDisposition.FILE_OVERWRITE_IF,
            CreateOptions.FILE_NON_DIRECTORY_FILE | CreateOptions.FILE_DELETE_ON_CLOSE,
        )
        try:
            yield fh
        finally:
            fh.close()
            tree.disconnect()
            session.disconnect()
    finally:
        conn.disconnect()


def _grow_credits(fh: Any, need: int) -> int:
    """Ask for credits with ECHO until ``need`` are available; returns what we have."""
    conn = fh.connection
    sid = fh.tree_connect.session.session_id
    for _ in range(16):
        have = int(conn.sequence_window["high"] - conn.sequence_window["low"])
        if have >= need:
            return have
        conn.echo(sid=sid, credit_request=min(512, need - have + 1))
    return int(conn.sequence_window["high"] - conn.sequence_window["low"])


def _pipelined(
    fh: Any,
    size: int,
    depth: int,
    make: Callable[[int], tuple[Any, Callable[..., Any]]],
    check: Callable[[int, Any], None],
) -> float:
    conn = fh.connection
    sid = fh.tree_connect.session.session_id
    tid = fh.tree_connect.tree_connect_id
    pending: deque[tuple[int, Any, Callable[..., Any]]] = deque()
    offset = 0
    t0 = time.perf_counter()
    while offset < size or pending:
        while offset < size and len(pending) < depth:
            msg, receive = make(offset)
            pending.append((offset, conn.send(msg, sid=sid, tid=tid), receive))
            offset += MiB
        off, request, receive = pending.popleft()
        check(off, receive(request))
    return time.perf_counter() - t0


def bench_python_client(
    eps: Sequence[Endpoint],
    opts: Options,
    pool: bytes,
    out: dict[str, Metric],
    needles: dict[str, str],
) -> None:
    size = opts.size
    depth = opts.depth

    def chunk(off: int) -> bytes:
        start = off % len(pool)
        return pool[start : start + MiB]

    with ExitStack() as stack:
        handles = []
        for ep in eps:
            fh = stack.enter_context(_smbprotocol_file(ep, "bench-py.bin", opts.py_protection))
            if fh.connection.max_write_size < MiB or fh.connection.max_read_size < MiB:
                raise PeerError(f"{ep.kind}: server does not allow 1 MiB reads and writes")
            have = _grow_credits(fh, depth * 16 + 8)
            if have < depth * 16:
                raise PeerError(
                    f"{ep.kind}: granted only {have} credits; {depth} x 1 MiB need {depth * 16}"
                )
            handles.append((ep, fh))
        for rep in range(opts.reps + 1):
            for ep, fh in _turns(handles, rep):

                def wrote(off: int, count: Any, kind: str = ep.kind) -> None:
                    if count != MiB:
                        raise PeerError(f"{kind}: WRITE at {off} wrote {count} bytes")

                def read_ok(off: int, data: Any, kind: str = ep.kind) -> None:
                    if data != chunk(off):
                        raise PeerError(f"{kind}: READ at {off} returned different bytes")

                def send_write(off: int, fh: Any = fh) -> tuple[Any, Callable[..., Any]]:
                    return fh.write(chunk(off), off, send=False)  # type: ignore[no-any-return]

                def send_read(off: int, fh: Any = fh) -> tuple[Any, Callable[..., Any]]:
                    return fh.read(off, MiB, send=False)  # type: ignore[no-any-return]

                needle = needles[ep.kind]
                _sync()
                c0 = _cpu_seconds(needle)
                w = _pipelined(fh, size, depth, send_write, wrote)
                c1 = _cpu_seconds(needle)
                _sync()
                c2 = _cpu_seconds(needle)
                r = _pipelined(fh, size, depth, send_read, read_ok)
                c3 = _cpu_seconds(needle)
                if rep:
                    got = {
                        "py-write": size / w / 1e6,
                        "py-read": size / r / 1e6,
                        "cpu-write": (c1 - c0) * 1000 / (size / MiB),
                        "cpu-read": (c3 - c2) * 1000 / (size / MiB),
                    }
                    for key, value in got.items():
                        out[key].values.setdefault(ep.kind, []).append(value)
                _log(
                    opts,
                    f"{ep.kind} python rep {rep}: write {size / w / 1e6:.0f} MB/s, "
                    f"read {size / r / 1e6:.0f} MB/s (depth {depth}); server CPU "
                    f"{(c1 - c0) * 1000 / (size / MiB):.2f} / {(c3 - c2) * 1000 / (size / MiB):.2f}"
                    " ms per MiB",
                )


# -- driver ---------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while b := f.read(4 * MiB):
            h.update(b)
    return h.hexdigest()


def _scratch_dir(need: int) -> str | None:
    try:
        st = os.statvfs("/dev/shm")
        return "/dev/shm" if st.f_bavail * st.f_frsize > need else None
    except OSError:
        return None


def metrics(opts: Options) -> dict[str, Metric]:
    size = f"{opts.size // MiB} MiB" if opts.size % (1 << 30) else f"{opts.size >> 30} GiB"
    m: list[Metric] = []
    for mode in MODES:
        m.append(Metric(f"put-{mode}", f"smbclient put {size}, {mode}", "MB/s"))
        m.append(Metric(f"get-{mode}", f"smbclient get {size}, {mode}", "MB/s"))
    kib = opts.small_size // 1024
    m.append(Metric("mput", f"{opts.small_files} x {kib} KiB put (create-write-close)", "files/s"))
    m.append(Metric("mget", f"{opts.small_files} x {kib} KiB get", "files/s"))
    m.append(
        Metric(
            "py-write", f"python 1 MiB writes, {opts.depth} in flight, {opts.py_protection}", "MB/s"
        )
    )
    m.append(
        Metric(
            "py-read", f"python 1 MiB reads, {opts.depth} in flight, {opts.py_protection}", "MB/s"
        )
    )
    m.append(Metric("cpu-write", "server CPU per MiB, python writes (lower is better)", "ms"))
    m.append(Metric("cpu-read", "server CPU per MiB, python reads (lower is better)", "ms"))
    return {x.key: x for x in m}


def render(results: dict[str, Metric], kinds: Sequence[str]) -> str:
    headers = ["", "unit", "samba", "vmstor", "vmstor/samba"]
    rows = []
    for m in results.values():
        s, v, q = m.median("samba"), m.median("vmstor"), m.ratio("vmstor", "samba")
        ratio = f"{q:.2f}" if q is not None else "-"
        digits = 2 if m.unit == "ms" else 0
        rows.append(
            [
                m.label,
                m.unit,
                f"{s:.{digits}f}" if s is not None else "-",
                f"{v:.{digits}f}" if v is not None else "-",
                ratio,
            ]
        )
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(
        [
            fmt.format(*headers),
            fmt.format(*("-" * w for w in widths)),
            *(fmt.format(*r) for r in rows),
        ]
    )


@contextmanager
def server(kind: str, base_dir: str | None) -> Iterator[tuple[Endpoint, str]]:
    """A running server and a string only its processes' command lines hold."""
    if kind == "samba":
        from interop.peers.samba import SambaServer

        samba = SambaServer(encrypted_share=None, base_dir=base_dir)
        with samba as ep:
            assert samba.tmp is not None
            yield ep, str(samba.tmp / "smb.conf")
        return
    from interop.peers.vmstor import VmstorServer

    vmstor = VmstorServer(
        encrypted_share=None, server_options={"require_signing": False}, base_dir=base_dir
    )
    with vmstor as ep:
        yield ep, str(vmstor.config_path)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m bench.smb_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--only", choices=("samba", "vmstor"), help="measure one server only")
    p.add_argument(
        "--tests",
        default=",".join(TESTS),
        help=f"comma-separated subset of {', '.join(TESTS)} (default: all)",
    )
    p.add_argument(
        "--reps",
        type=int,
        default=4,
        help="timed runs per figure (default 4: each server first in half of them)",
    )
    p.add_argument("--size-mib", type=int, default=1024, help="bulk file size (default 1024)")
    p.add_argument("--small-files", type=int, default=1000, help="small-file count (default 1000)")
    p.add_argument("--small-kib", type=int, default=4, help="small-file size (default 4)")
    p.add_argument(
        "--depth", type=int, default=8, help="Python client requests in flight (default 8)"
    )
    p.add_argument(
        "--py-protection",
        choices=("sign", "encrypt"),
        default="sign",
        help="Python client: sign or encrypt (default sign; SMB 3.1.1 signs TREE_CONNECT anyway)",
    )
    p.add_argument(
        "--server-dir", help="parent folder for the servers' shares (default: system temp)"
    )
    p.add_argument(
        "--trim-client-heap",
        action="store_true",
        help="leave the client's malloc at glibc's defaults (see above)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print every run's figures")
    args = p.parse_args(argv)
    if args.reps < 1 or args.size_mib < 1 or args.depth < 1 or args.small_files < 1:
        p.error("--reps, --size-mib, --depth and --small-files must be at least 1")
    tests = [t for t in args.tests.split(",") if t]
    if not tests or any(t not in TESTS for t in tests):
        p.error(f"--tests takes a comma-separated subset of {', '.join(TESTS)}")
    kinds = [args.only] if args.only else ["samba", "vmstor"]
    heap = "client heap at glibc defaults"
    if not args.trim_client_heap and _keep_client_heap():
        heap = "client heap kept"
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="vmstor-bench.", dir=_scratch_dir(3 * size + 64 * MiB)))
    opts = Options(
        size,
        args.reps,
        args.small_files,
        args.small_kib * 1024,
        args.depth,
        args.py_protection,
        work,
        args.verbose,
    )
    results = {
        k: m
        for k, m in metrics(opts).items()
        if any(k.startswith(p) for t in tests for p in TESTS[t])
    }
    try:
        src = work / "src.bin"
        h = hashlib.sha256()
        with src.open("wb") as f:
            left = size if "bulk" in tests else 0
            while left:
                b = os.urandom(min(4 * MiB, left))
                h.update(b)
                f.write(b)
                left -= len(b)
        digest = h.hexdigest()
        small = work / "small"
        small.mkdir()
        for i in range(opts.small_files if "small" in tests else 0):
            (small / f"f{i:05d}.dat").write_bytes(os.urandom(opts.small_size))
        pool = os.urandom(64 * MiB) if "python" in tests else b""
        with ExitStack() as stack:
            started = [stack.enter_context(server(kind, args.server_dir)) for kind in kinds]
            eps = [ep for ep, _needle in started]
            needles = {ep.kind: needle for ep, needle in started}
            for ep in eps:
                _log(opts, f"{ep.kind} on {ep.host}:{ep.port}")
            if "bulk" in tests:
                bench_smbclient_bulk(eps, opts, src, digest, results)
            if "small" in tests:
                bench_small_files(eps, opts, small, results)
            if "python" in tests:
                bench_python_client(eps, opts, pool, results, needles)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    smbclient_version = subprocess.run(
        ["smbclient", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"# {', '.join(kinds)}; median of {opts.reps} after a warm-up; {smbclient_version}; "
        f"{os.cpu_count()} CPUs; {heap}"
    )
    print(render(results, kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
