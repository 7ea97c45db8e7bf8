"""Samba's smbtorture SMB2 suites against the server, one subprocess per suite.

interop/smbtorture_passing.txt lists the subtests known to pass against vmstor; a suite's
test fails when one of its listed subtests does not pass. Subtests that pass and are not
listed yet are printed in the session summary, so the list can grow
(``python3 -m interop.torture_report --server vmstor --update-passing``).
"""

from __future__ import annotations

import pytest

from interop import conftest
from interop.peers import Endpoint
from interop.peers.tools import PASS, run_suite
from interop.torture_report import SUITES, read_passing, suite_of


@pytest.mark.slow
@pytest.mark.parametrize("suite", list(SUITES))
def test_suite(server: Endpoint, suite: str) -> None:
    expected = {t for t in read_passing() if suite_of(t) == suite}
    timeout = SUITES[suite]
    # resume within half the suite's budget: a crash early in a suite must not hide a
    # later regression, nor double the CI time
    run = run_suite(server, suite, timeout=timeout, resume_timeout=30, resume_budget=timeout / 2)
    passed = run.passed
    newly = sorted(passed - expected)
    if newly and server.kind == "vmstor":
        conftest.SUMMARY.append(f"{suite}: {len(newly)} subtests pass and are not listed yet:")
        conftest.SUMMARY.extend(f"  {t}" for t in newly)
    lost = sorted(expected - passed)
    detail = "\n".join(
        f"  {t}: {run.results.get(t, 'not reported')} {run.reasons.get(t, '')}" for t in lost
    )
    notes = "\n".join(run.notes)
    assert not lost, f"{len(lost)} listed subtests of {suite} no longer pass:\n{detail}\n{notes}"
    # the run must have reached the server at all (a wrong port or share name would
    # otherwise pass an empty list quietly)
    assert run.results, run.output[-2000:]
    assert any(r == PASS for r in run.results.values()) or not expected
