"""iSCSI transport (RFC 7143): wire PDUs, sans-IO login and connection cores, trio server.

Layers: :mod:`.pdu` and :mod:`.framing` (bytes <-> records, digests), :mod:`.text`,
:mod:`.negotiation`, :mod:`.chap` and :mod:`.login` (login phase), :mod:`.connection` (full
feature phase of one session), :mod:`.server` (the trio driver: portals, sessions, I/O).
"""

from .chap import ChapSecrets
from .negotiation import Params, TargetLimits
from .server import Access, IscsiServer, OpenAccess, Portal, Settings

__all__ = [
    "Access",
    "ChapSecrets",
    "IscsiServer",
    "OpenAccess",
    "Params",
    "Portal",
    "Settings",
    "TargetLimits",
]
