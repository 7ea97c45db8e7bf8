"""The SMB2/3 server: connections, sessions, tree connects, message processing and dispatch.

Public interface:

``SMBServer(config, shares, credentials, *, clock, wall_clock, rng, logger, limits, files,
handlers)``
    ``await nursery.start(server.serve_tcp, [(host, port), ...])`` listens (port 0: any
    free port) and returns the bound addresses; ``serve_transport(transport)`` runs the
    protocol over any :class:`smbd.transport.Transport` (SMB Direct plugs in here);
    ``update_shares(shares)``; ``status()`` (sessions, channels, opens, shares, as
    ``vmstor status`` shows them); ``statistics()``;
    ``await send_unsolicited(connection, command, body_parts, session)`` for oplock and
    lease breaks; ``network_interface_info(connection)``; ``limits``
    (:class:`smbd.server.server.ServerLimits`: handshake/frame/send timeouts, in-flight
    bytes, credits, async operations, sessions, trees and channels per client).

Handlers code against :mod:`smbd.server.request` (``Request``, ``Response``,
``SMBError``, ``Handler``); the data model (``Connection``, ``Session`` with its
``Channel`` list, ``TreeConnect``) is :mod:`smbd.server.model`.
"""

from smbd.server.request import Handler, Request, Response, SMBError
from smbd.server.server import ServerLimits, SMBServer

__all__ = ["Handler", "Request", "Response", "SMBError", "SMBServer", "ServerLimits"]
