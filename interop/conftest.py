"""Fixtures for the interop tests: real servers, started once per test session.

- ``vmstor_server``: ``vmstor serve`` (interop.peers.vmstor), share ``share`` plus the
  encrypted share ``secure``; stopped with SIGTERM at the end, which must exit cleanly.
- ``samba_server``: a private Samba smbd with the same two shares (interop.peers.samba).
- ``server``: the server under test, ``vmstor_server``; ``INTEROP_SERVER=samba`` points
  every test at Samba instead, to tell a wrong test from a wrong server.

When a test that used a server fails, the server's log tail is attached to the report.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from interop.peers import Endpoint
from interop.peers.samba import SambaServer
from interop.peers.vmstor import VmstorServer

# a test module's lines for the end-of-session summary (test_smbtorture's newly passing)
SUMMARY: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here + os.sep):
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session")
def vmstor_server() -> Iterator[Endpoint]:
    with VmstorServer(encrypted_share="secure") as ep:
        yield ep


@pytest.fixture(scope="session")
def samba_server() -> Iterator[Endpoint]:
    with SambaServer(encrypted_share="secure") as ep:
        yield ep


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest) -> Endpoint:
    """The SMB server the interop tests hold to their assertions."""
    target = os.environ.get("INTEROP_SERVER", "vmstor")
    if target not in ("vmstor", "samba"):
        raise pytest.UsageError(f"INTEROP_SERVER must be vmstor or samba, not {target!r}")
    ep: Endpoint = request.getfixturevalue(f"{target}_server")
    return ep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, Endpoint):
                report.sections.append((f"{value.kind} server log", value.log_text()))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.section("interop")
        for line in SUMMARY:
            terminalreporter.write_line(line)
