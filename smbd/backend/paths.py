"""SMB path names -> share-relative components ([MS-FSCC] 2.1.5, [MS-SMB2] 3.3.5.9).

Pure: no I/O. A client sends a path relative to the share root, components separated by
backslashes, in the case it wants. What comes out is a tuple of components that are safe to
hand, one at a time, to ``openat``-style calls: no empty, ``.`` or ``..`` component, no slash,
no NUL, nothing NTFS would refuse, and at most 255 bytes of UTF-8 each.
"""

from __future__ import annotations

from smbd.backend.errors import BackendError
from smbd.wire.status import NTStatus

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_PATH_CHARS",
    "STREAMS_DIR",
    "Components",
    "join_components",
    "split_path",
    "split_stream_path",
    "validate_component",
]

Components = tuple[str, ...]

MAX_COMPONENT_BYTES = 255
MAX_PATH_CHARS = 32767

# [MS-FSCC] 2.1.5.2: characters a file name component may not contain. ':' is the stream
# separator; streams other than the unnamed data stream are not supported.
_INVALID_CHARS = frozenset('"*/:<>?\\|') | frozenset(chr(c) for c in range(0x20))

_DEFAULT_STREAM = "::$DATA"


def validate_component(name: str) -> str:
    """Check one component; returns it unchanged or raises OBJECT_NAME_INVALID."""
    if not name or name in (".", ".."):
        raise BackendError(NTStatus.OBJECT_NAME_INVALID, f"bad component {name!r}")
    if any(ch in _INVALID_CHARS for ch in name):
        raise BackendError(NTStatus.OBJECT_NAME_INVALID, f"invalid character in {name!r}")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogate from bad UTF-16
        raise BackendError(NTStatus.OBJECT_NAME_INVALID, "name is not valid UTF-16") from exc
    if len(encoded) > MAX_COMPONENT_BYTES:
        raise BackendError(NTStatus.OBJECT_NAME_INVALID, "component longer than 255 bytes")
    return name


def split_path(path: str) -> Components:
    """Split an SMB2 CREATE name into components.

    The empty name is the share root. A leading backslash is INVALID_PARAMETER (3.3.5.9:
    names are relative to the share); a single trailing backslash is tolerated (Windows
    clients send ``dir\\`` for directories); ``file::$DATA`` names the file itself; ``a\\..``
    is resolved to the folder holding ``a``, as long as it stays inside the share. Anything
    else that could leave the share or name a non-NTFS component is OBJECT_NAME_INVALID.
    """
    if not path:
        return ()
    if len(path) > MAX_PATH_CHARS:
        raise BackendError(NTStatus.OBJECT_NAME_INVALID, "path too long")
    if path[0] == "\\":
        raise BackendError(NTStatus.INVALID_PARAMETER, "path starts with a backslash")
    if path.endswith(_DEFAULT_STREAM):
        path = path[: -len(_DEFAULT_STREAM)]
    if path.endswith("\\"):
        path = path[:-1]
    if not path:
        return ()
    out: list[str] = []
    for c in path.split("\\"):
        if c == ".." and out:
            # ``zqy\..`` names the folder holding zqy, as Windows resolves it; the result
            # never leaves the share (a ``..`` at the top stays invalid)
            out.pop()
        else:
            out.append(validate_component(c))
    return tuple(out)


# The folder at the share root that holds named streams ([MS-FSCC] 2.1.5.1.1 ... the data
# of ``file:name``): ``STREAMS_DIR/<inode>/<name>``. Clients can neither see nor name it.
STREAMS_DIR = ".vmstor-streams"


def split_stream_path(path: str) -> tuple[Components, str | None]:
    """Split a CREATE name that may end in a stream: ``file:name`` and ``file:name:$DATA``
    give ``(components of file, "name")``; ``file::$DATA`` and plain names give ``None``
    as the stream. Any stream type other than ``$DATA`` is OBJECT_NAME_INVALID, as is a
    stream name that would not be a valid file name."""
    head, sep, last = path.rpartition("\\")
    if ":" not in last or last.endswith(_DEFAULT_STREAM):
        comps = split_path(path)
    else:
        base, _, rest = last.partition(":")
        name, _, stype = rest.partition(":")
        if stype and stype.upper() != "$DATA":
            raise BackendError(NTStatus.OBJECT_NAME_INVALID, f"stream type {stype!r}")
        if not base:
            raise BackendError(NTStatus.OBJECT_NAME_INVALID, "stream of the share root")
        comps = split_path(head + sep + base)
        if name:
            return comps, validate_component(name)
    if comps and comps[0].upper() == STREAMS_DIR.upper():
        raise BackendError(NTStatus.OBJECT_NAME_NOT_FOUND, "reserved name")
    return comps, None


def join_components(components: Components) -> str:
    """Back to the SMB form (backslashes), e.g. for logs and open lists."""
    return "\\".join(components)
