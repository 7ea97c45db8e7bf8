"""Run the smbtorture SMB2 suites against vmstor or Samba and print a per-suite table.

    python3 -m interop.torture_report --server vmstor            # the table
    python3 -m interop.torture_report --server samba             # Samba's figures
    python3 -m interop.torture_report --server vmstor --update-passing
    python3 -m interop.torture_report --server vmstor --suite smb2.read --suite smb2.lock -v

``--update-passing`` adds the subtests that pass against vmstor to
interop/smbtorture_passing.txt (the list test_smbtorture.py holds vmstor to) and names the
listed ones that did not pass; with ``--prune`` it also drops those, for the suites run
(one run is one sample: review the diff). ``--subtests FILE`` writes every subtest's
outcome and first reason line as TSV.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from interop.peers import Endpoint
from interop.peers.tools import (
    ERROR,
    FAIL,
    NOTRUN,
    PASS,
    SKIP,
    TIMEOUT,
    XFAIL,
    TortureRun,
    run_suite,
)

PASSING_FILE = Path(__file__).with_name("smbtorture_passing.txt")
# another list to hold the server to (e.g. Samba's, to check the harness): a file path
PASSING_ENV = "INTEROP_TORTURE_PASSING"

# suite -> timeout in seconds for the whole suite: about 2.5x Samba 4.17's runtime on the
# 2-core CI machine (bench/README.md), at least 60 s. lease, oplock and notify wait out
# break and notify timeouts by design.
SUITES: dict[str, int] = {
    "smb2.connect": 60,
    "smb2.read": 60,
    "smb2.rw": 60,
    "smb2.create": 90,
    "smb2.dir": 90,
    "smb2.getinfo": 60,
    "smb2.setinfo": 60,
    "smb2.lock": 90,
    "smb2.compound": 90,
    "smb2.credits": 60,
    "smb2.session": 120,
    "smb2.ioctl": 90,
    "smb2.lease": 450,
    "smb2.oplock": 300,
    "smb2.notify": 240,
}

HEADERS = ("suite", "pass", "fail", "skip", "error", "seconds", "note")


def read_passing(path: Path | None = None) -> set[str]:
    """The subtests known to pass against vmstor (one per line, # comments);
    ``$INTEROP_TORTURE_PASSING`` names another file."""
    if path is None:
        path = Path(os.environ.get(PASSING_ENV, PASSING_FILE))
    if not path.exists():
        return set()
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line)
    return names


def write_passing(names: Iterable[str], path: Path = PASSING_FILE) -> None:
    header = (
        "# smbtorture subtests that pass against vmstor; test_smbtorture.py fails when one\n"
        "# of them stops passing. Regenerate: python3 -m interop.torture_report\n"
        "#   --server vmstor --update-passing   (then review the diff)\n"
    )
    path.write_text(header + "".join(f"{n}\n" for n in sorted(set(names))))


def suite_of(subtest: str) -> str:
    """``smb2.lock.valid-request`` -> ``smb2.lock`` (the suite it belongs to)."""
    for suite in SUITES:
        if subtest == suite or subtest.startswith(suite + "."):
            return suite
    return ".".join(subtest.split(".")[:2])


def counts(run: TortureRun) -> tuple[int, int, int, int]:
    """(pass, fail, skip, error); xfail counts as a failure, timeout/notrun as errors."""
    return (
        run.count(PASS),
        run.count(FAIL, XFAIL),
        run.count(SKIP),
        run.count(ERROR, TIMEOUT, NOTRUN),
    )


def table(runs: Sequence[TortureRun]) -> str:
    rows: list[list[str]] = []
    total = [0, 0, 0, 0]
    secs = 0.0
    for run in runs:
        c = counts(run)
        total = [a + b for a, b in zip(total, c, strict=True)]
        secs += run.seconds
        note = (
            "timeout"
            if run.returncode is None
            else (f"exit {run.returncode}" if run.returncode > 1 else "")
        )
        rows.append([run.test, *map(str, c), f"{run.seconds:.0f}", note])
    rows.append(["TOTAL", *map(str, total), f"{secs:.0f}", ""])
    widths = [max(len(r[i]) for r in [list(HEADERS), *rows]) for i in range(len(HEADERS))]
    fmt = "  ".join(f"{{:<{w}}}" if i in (0, 6) else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*HEADERS), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


# smbtorture's default share for --option=torture:noperm_share: smb2.ioctl.bug14788.* tree
# connect to it and expect FSCTL_VALIDATE_NEGOTIATE_INFO and QUERY_NETWORK_INTERFACE_INFO
# to work there (they skip when it does not exist). As in Samba's selftest it is a share
# whose folder has mode 000: the tree connect succeeds (a share refused at TREE_CONNECT,
# e.g. Samba's "valid users", fails both subtests on Samba too), the files are out of
# reach for a server that runs as the user. Both servers get it, so their counts compare.
NOPERM_SHARE = "noperm"


@contextmanager
def server(kind: str) -> Iterator[Endpoint]:
    """The server smbtorture runs against: its test-only FSCTLs on (Samba's
    ``smbd:FSCTL_SMBTORTURE``, vmstor's ``smbtorture_hooks``) and the ``noperm`` share."""
    peer: AbstractContextManager[Endpoint]
    if kind == "samba":
        from interop.peers.samba import SambaServer

        peer = SambaServer(extra_shares=(NOPERM_SHARE,), torture_hooks=True)
    else:
        from interop.peers.vmstor import VmstorServer

        peer = VmstorServer(extra_shares=(NOPERM_SHARE,), torture_hooks=True)
    with peer as ep:
        noperm = ep.shares[NOPERM_SHARE]
        noperm.chmod(0)
        try:
            yield ep
        finally:
            noperm.chmod(0o755)  # so that the peer can remove its folder


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m interop.torture_report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--server", choices=("vmstor", "samba"), required=True)
    p.add_argument(
        "--suite",
        action="append",
        choices=sorted(SUITES),
        help="run only this suite (repeatable; default: all)",
    )
    p.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every suite timeout")
    p.add_argument(
        "--update-passing",
        action="store_true",
        help=f"add what passes to {PASSING_FILE.name} (vmstor only)",
    )
    p.add_argument(
        "--prune",
        action="store_true",
        help="with --update-passing: also drop listed subtests of the suites run that failed",
    )
    p.add_argument("--subtests", type=Path, help="write per-subtest results (TSV) to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="print every subtest's outcome")
    args = p.parse_args(argv)
    if args.prune and not args.update_passing:
        p.error("--prune goes with --update-passing")
    if args.update_passing and args.server != "vmstor":
        p.error("--update-passing records what passes against vmstor; use --server vmstor")
    suites = args.suite or list(SUITES)
    runs: list[TortureRun] = []
    t0 = time.monotonic()
    with server(args.server) as ep:
        print(f"# smbtorture against {ep.kind} {ep.unc()} port {ep.port}", flush=True)
        for suite in suites:
            timeout = SUITES[suite] * args.timeout_scale
            run = run_suite(ep, suite, timeout=timeout, resume_budget=timeout)
            runs.append(run)
            c = counts(run)
            print(
                f"# {suite}: {c[0]} pass, {c[1]} fail, {c[2]} skip, {c[3]} error "
                f"({run.seconds:.0f} s)",
                flush=True,
            )
            for note in run.notes:
                print(f"#   {note}", flush=True)
            if args.verbose:
                for name, outcome in run.results.items():
                    why = run.reasons.get(name, "")
                    print(f"#   {outcome:<7} {name}  {why}", flush=True)
    print(table(runs))
    print(f"# {time.monotonic() - t0:.0f} s in all")
    if args.subtests:
        with args.subtests.open("w") as f:
            f.write("suite\tsubtest\toutcome\treason\n")
            for run in runs:
                for name, outcome in run.results.items():
                    f.write(f"{run.test}\t{name}\t{outcome}\t{run.reasons.get(name, '')}\n")
    if args.update_passing:
        listed = read_passing()
        now = set().union(*(r.passed for r in runs))
        lost = {t for t in listed - now if suite_of(t) in suites}
        for t in sorted(lost):
            print(f"# listed but did not pass: {t}")
        names = (listed - lost if args.prune else listed) | now
        write_passing(names)
        print(
            f"# {PASSING_FILE}: {len(names)} subtests ({len(now - listed)} added, "
            f"{len(lost) if args.prune else 0} dropped)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
