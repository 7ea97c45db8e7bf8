"""SMB2 transports. Each one delivers whole SMB2 messages (one buffer per PDU) and sends a
message given as iovec parts; the SMB2 layer never sees the framing."""

from smbd.transport.base import FramingError, Transport, TransportClosed

__all__ = ["FramingError", "Transport", "TransportClosed"]
