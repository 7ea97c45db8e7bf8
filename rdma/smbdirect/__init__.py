"""SMB Direct ([MS-SMBD]): wire codecs, the sans-IO connection, and the trio transport.

Public interface for the SMB layer (see :mod:`.transport`): :class:`SmbDirectServer`,
:func:`connect`, :class:`SmbDirectChannel`, :class:`BufferDescriptorV1`.
"""

from .connection import SmbDirectConfig
from .transport import (
    ChannelClosed,
    RegisteredBuffer,
    SmbDirectChannel,
    SmbDirectError,
    SmbDirectServer,
    TransportConfig,
    connect,
)
from .wire import BufferDescriptorV1, decode_descriptors, encode_descriptors

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
