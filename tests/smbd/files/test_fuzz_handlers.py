"""Whatever a client puts in a CREATE, SET_INFO or QUERY_DIRECTORY, the handler answers
with an NTSTATUS (SMBError / ParseError) or succeeds -- and nothing outside the share
changes."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smbd.server.request import SMBError
from smbd.wire import create as wc
from smbd.wire import info as wi
from smbd.wire.constants import Command
from smbd.wire.errors import ParseError

from .harness import Client, make_state

names = st.one_of(
    st.text(alphabet='ab.\\/:*?<>"| \0\u00e9', max_size=12),
    st.sampled_from(["..", "..\\x", "a\\..\\..\\x", "\\x", "esc\\secret", "esc", "d\\", "::$DATA"]),
)


def _setup() -> tuple[Path, Path]:
    base = Path(tempfile.mkdtemp(prefix="files-fuzz."))
    atexit.register(shutil.rmtree, base, True)
    (base / "share").mkdir()
    (base / "outside").mkdir()
    (base / "outside" / "secret").write_bytes(b"s")
    (base / "share" / "esc").symlink_to(base / "outside")
    (base / "share" / "d").mkdir()
    return base / "share", base / "outside"


ROOT, OUTSIDE = _setup()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=names,
    access=st.integers(0, 0xFFFFFFFF),
    attributes=st.integers(0, 0xFFFF),
    share=st.integers(0, 8),
    disposition=st.integers(0, 7),
    options=st.integers(0, 0x01FFFFFF),
    info_class=st.integers(0, 70),
    payload=st.binary(max_size=64),
)
def test_create_then_set_info(
    name: str,
    access: int,
    attributes: int,
    share: int,
    disposition: int,
    options: int,
    info_class: int,
    payload: bytes,
) -> None:
    async def run() -> None:
        files, cfg = make_state(ROOT)
        c = Client(files, cfg)
        body = wc.pack_create_request(
            wc.CreateRequest(0, 0, 2, 0, access, attributes, share, disposition, options, name, ())
        )
        try:
            resp = await c.call(Command.CREATE, body)
        except (SMBError, ParseError):
            return
        r = wc.parse_create_response(b"".join(bytes(p) for p in resp.body))
        for info_type in (1, 2, 3):
            with contextlib.suppress(SMBError, ParseError):
                await c.call(
                    Command.SET_INFO,
                    wi.pack_set_info_request(
                        wi.SetInfoRequest(info_type, info_class, memoryview(payload), 7, r.file_id)
                    ),
                )
        files.close_all()

    trio.run(run)
    assert sorted(os.listdir(OUTSIDE)) == ["secret"]
    assert (OUTSIDE / "secret").read_bytes() == b"s"
