"""The SMB2/3 wire layer: bytes <-> typed records. Pure, stateless and bounds-checked.

Every parser raises only :class:`ParseError`, which carries the NTSTATUS to answer with.
"""

from smbd.wire.errors import ParseError

__all__ = ["ParseError"]
