"""Samba's smbtorture SMB2 suites against the server, one subprocess per suite.

interop/smbtorture_passing.txt lists the subtests known to pass against vmstor; a suite's
test fails when one of its listed subtests does not pass. Subtests that pass and are not
listed yet are printed in the session summary, so the list can grow
(``python3 -m interop.torture_report --server vmstor --update-passing``).

All suites share one time budget (``INTEROP_TORTURE_BUDGET`` seconds, default 1500; Samba
needs about 420): a server that hangs costs CI that much, not every suite's timeout.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from interop import conftest
from interop.peers import Endpoint
from interop.peers.tools import run_suite
from interop.peers.vmstor import VmstorServer
from interop.torture_report import SUITES, read_passing, suite_of
from interop.torture_report import server as torture_peer

BUDGET = float(os.environ.get("INTEROP_TORTURE_BUDGET", "1500"))
_deadline: list[float] = []


def _remaining() -> float:
    if not _deadline:
        _deadline.append(time.monotonic() + BUDGET)
    return _deadline[0] - time.monotonic()


@pytest.fixture(scope="module")
def server() -> Iterator[Endpoint]:
    """The server under test (``INTEROP_SERVER``, as in conftest) set up as
    interop.torture_report runs it: smbtorture's test-only FSCTLs on, the noperm share."""
    kind = os.environ.get("INTEROP_SERVER", "vmstor")
    if kind not in ("vmstor", "samba"):
        raise pytest.UsageError(f"INTEROP_SERVER must be vmstor or samba, not {kind!r}")
    with torture_peer(kind) as ep:
        yield ep


@pytest.mark.slow
@pytest.mark.parametrize("suite", list(SUITES))
def test_suite(server: Endpoint, suite: str) -> None:
    expected = {t for t in read_passing() if suite_of(t) == suite}
    left = _remaining()
    assert left >= 10, f"the smbtorture budget of {BUDGET:.0f} s is spent; {suite} not run"
    timeout = min(SUITES[suite], left)
    # when smbtorture crashes or times out part way, run the subtests it never reached one
    # by one, within half the suite's time: an early crash must not hide later regressions
    run = run_suite(
        server,
        suite,
        timeout=timeout,
        resume_timeout=30,
        resume_budget=min(timeout / 2, max(_remaining(), 0)),
    )
    passed = run.passed
    newly = sorted(passed - expected)
    if newly:
        conftest.SUMMARY.append(
            f"{suite}: {len(newly)} subtests pass against {server.kind} and are not listed yet:"
        )
        conftest.SUMMARY.extend(f"  {t}" for t in newly)
    lost = sorted(expected - passed)
    detail = "\n".join(
        f"  {t}: {run.results.get(t, 'not reported')} {run.reasons.get(t, '')}" for t in lost
    )
    notes = "\n".join(run.notes)
    assert not lost, f"{len(lost)} listed subtests of {suite} no longer pass:\n{detail}\n{notes}"
    # smbtorture reached the server and reported something (a wrong port or share name
    # must not pass an empty list quietly)
    assert run.results, run.output[-2000:]


# vmstor requires signing by default; Samba's reference configuration signs when the client
# asks ("server signing = auto", interop/peers/samba.py). Samba 4.17 passes as many of these
# suites either way (measured with "server signing = mandatory" too), so the suites above
# hold vmstor's secure default to Samba's figures, and the suites whose answers depend on
# signing run once more against vmstor configured as Samba is, held to the same list.
SIGNING_SUITES = ("smb2.session", "smb2.compound", "smb2.credits", "smb2.connect")


@pytest.fixture(scope="module")
def vmstor_signing_auto() -> Iterator[Endpoint]:
    with VmstorServer(encrypted_share="secure", server_options={"require_signing": False}) as ep:
        yield ep


@pytest.mark.slow
@pytest.mark.parametrize("suite", SIGNING_SUITES)
def test_suite_without_required_signing(vmstor_signing_auto: Endpoint, suite: str) -> None:
    expected = {t for t in read_passing() if suite_of(t) == suite}
    left = _remaining()
    assert left >= 10, f"the smbtorture budget of {BUDGET:.0f} s is spent; {suite} not run"
    timeout = min(SUITES[suite], left)
    run = run_suite(
        vmstor_signing_auto,
        suite,
        timeout=timeout,
        resume_timeout=30,
        resume_budget=min(timeout / 2, max(_remaining(), 0)),
    )
    lost = sorted(expected - run.passed)
    detail = "\n".join(
        f"  {t}: {run.results.get(t, 'not reported')} {run.reasons.get(t, '')}" for t in lost
    )
    assert not lost, (
        f"{len(lost)} listed subtests of {suite} fail with require_signing = false:\n{detail}"
    )
    assert run.results, run.output[-2000:]
