"""Records crossing the boundary between a SCSI transport and the target.

A transport (iSCSI, the virtual Fibre Channel fabric) identifies the I_T nexus
of each command with a :class:`Nexus` and gets a :class:`ScsiResult` back.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Nexus", "ScsiResult"]


@dataclass(frozen=True)
class Nexus:
    """One I_T nexus (SAM-5 4.7.2).

    ``initiator``: the initiator device name, e.g. ``iqn.1994-05.com.redhat:host``
    or ``naa.c003ff0000000001`` (no ISID).
    ``initiator_port``: the initiator port name in SPC-4 TransportID style,
    ``<initiator>,i,0x<ISID 12 hex digits>`` for iSCSI (RFC 7143 13.7).
    ``target_port``: the RELATIVE TARGET PORT IDENTIFIER (1-based, SPC-4 7.8.6.5).
    ``tpg``: the TARGET PORT GROUP of that port (SPC-4 5.15.2).
    """

    initiator: str
    initiator_port: str
    target_port: int = 1
    tpg: int = 1

    @property
    def key(self) -> tuple[str, int]:
        """The I_T nexus identity used for registrations and unit attentions."""
        return (self.initiator_port, self.target_port)


@dataclass(slots=True)
class ScsiResult:
    """The outcome of one command.

    ``status``: SAM-5 status (:class:`scsi.sense.Status`).
    ``data``: data-in, as one buffer or a list of buffers to send in order (the
    transport splits them into Data-In PDUs).  Its total length may be shorter
    than the initiator's expected length (underflow) but the target never
    returns more than the CDB's allocation/transfer length; residual counts are
    left to the transport.
    ``sense``: fixed-format sense data (18 bytes) with CHECK CONDITION, else empty.
    """

    status: int
    data: bytes | bytearray | memoryview | list[bytes | bytearray | memoryview] = b""
    sense: bytes = b""

    @property
    def data_length(self) -> int:
        d = self.data
        if isinstance(d, list):
            return sum(len(b) for b in d)
        return len(d)
