"""SMB Direct ([MS-SMBD]): wire codecs (:mod:`.wire`), the sans-IO connection
(:mod:`.connection`) and the trio transport (:mod:`.transport`).

Public interface for the SMB layer: :class:`SmbDirectServer`, :func:`connect`,
:class:`SmbDirectChannel`, :class:`BufferDescriptorV1` (see :mod:`.transport`).  The
transport names load lazily, so importing the wire or core modules pulls in no trio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .connection import SmbDirectConfig
from .wire import BufferDescriptorV1, decode_descriptors, encode_descriptors

if TYPE_CHECKING:
    from .transport import (
        ChannelClosed,
        RegisteredBuffer,
        SmbDirectChannel,
        SmbDirectError,
        SmbDirectServer,
        TransportConfig,
        connect,
    )

_TRANSPORT = {
    "ChannelClosed",
    "RegisteredBuffer",
    "SmbDirectChannel",
    "SmbDirectError",
    "SmbDirectServer",
    "TransportConfig",
    "connect",
}

__all__ = [
    "BufferDescriptorV1",
    "ChannelClosed",
    "RegisteredBuffer",
    "SmbDirectChannel",
    "SmbDirectConfig",
    "SmbDirectError",
    "SmbDirectServer",
    "TransportConfig",
    "connect",
    "decode_descriptors",
    "encode_descriptors",
]


def __getattr__(name: str) -> Any:
    if name in _TRANSPORT:
        return getattr(importlib.import_module(".transport", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
