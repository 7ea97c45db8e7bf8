"""Name queries on a named-stream open ([MS-FSCC] 2.4.28 FileNameInformation, 2.4.30
FileNormalizedNameInformation, 2.4.2 FileAllInformation): the client's ``file:stream``,
never the share-internal ``.vmstor-streams`` path the stream is kept under."""

from __future__ import annotations

import struct
from pathlib import Path

from smbd.wire import create as wc
from smbd.wire.info import InfoType

from .harness import Client, body_bytes, make_state

FILE_NAME_INFORMATION = 9
FILE_ALL_INFORMATION = 18
FILE_NORMALIZED_NAME_INFORMATION = 48
DIRECTORY = wc.CreateOptions.DIRECTORY_FILE


def _name(info: bytes, at: int = 0) -> str:
    (length,) = struct.unpack_from("<I", info, at)
    return info[at + 4 : at + 4 + length].decode("utf-16-le")


async def _query(c: Client, fid: tuple[int, int], cls: int) -> bytes:
    return body_bytes(await c.query_info(fid, InfoType.FILE, cls))[8:]


async def test_stream_names_are_the_clients(tmp_path: Path) -> None:
    root = tmp_path / "share"
    root.mkdir()
    files, share = make_state(root)
    c = Client(files, share)
    d = await c.create("Dir", options=DIRECTORY)
    f = await c.create("Dir\\File")
    s = await c.create("dir\\file:StrEam")  # the file's case as stored, the stream's as created
    ds = await c.create("dir:DirStream")  # a stream of a directory
    assert _name(await _query(c, s.file_id, FILE_NAME_INFORMATION)) == "\\Dir\\File:StrEam"
    assert _name(await _query(c, s.file_id, FILE_NORMALIZED_NAME_INFORMATION)) == (
        "Dir\\File:StrEam"
    )
    assert _name(await _query(c, s.file_id, FILE_ALL_INFORMATION), 96) == "\\Dir\\File:StrEam"
    assert _name(await _query(c, ds.file_id, FILE_NORMALIZED_NAME_INFORMATION)) == ("Dir:DirStream")
    assert _name(await _query(c, f.file_id, FILE_NORMALIZED_NAME_INFORMATION)) == "Dir\\File"
    assert _name(await _query(c, d.file_id, FILE_NAME_INFORMATION)) == "\\Dir"


async def test_stream_name_when_its_file_has_no_open(tmp_path: Path) -> None:
    """The file of a stream opened on its own is found in the share by its inode."""
    root = tmp_path / "share"
    (root / "A" / "B").mkdir(parents=True)
    (root / "A" / "B" / "Base.txt").write_bytes(b"")
    (root / "A" / "other").write_bytes(b"")
    files, share = make_state(root)
    c = Client(files, share)
    s = await c.create("a\\b\\base.txt:Meta")
    assert _name(await _query(c, s.file_id, FILE_NAME_INFORMATION)) == "\\A\\B\\Base.txt:Meta"
    assert _name(await _query(c, s.file_id, FILE_NORMALIZED_NAME_INFORMATION)) == (
        "A\\B\\Base.txt:Meta"
    )
