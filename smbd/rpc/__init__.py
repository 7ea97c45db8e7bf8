"""DCE/RPC over SMB2 named pipes: the connection-oriented PDU codec (:mod:`.pdu`), NDR
(:mod:`.ndr`), the association and pipe state (:mod:`.pipe`), and the interfaces served on
IPC$: srvsvc (:mod:`.srvsvc`) and wkssvc (:mod:`.wkssvc`). Sans-IO throughout; the SMB2
handlers that drive it are in :mod:`smbd.server.files.pipes`."""

from __future__ import annotations

from smbd.rpc import srvsvc, wkssvc
from smbd.rpc.pipe import Interface

__all__ = ["ENDPOINTS"]

# pipe name (lower case, without \PIPE\) -> the interfaces reachable through it
ENDPOINTS: dict[str, tuple[Interface, ...]] = {
    "srvsvc": (srvsvc.INTERFACE,),
    "wkssvc": (wkssvc.INTERFACE,),
}
