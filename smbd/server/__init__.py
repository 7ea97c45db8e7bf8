"""The SMB2/3 server: connections, sessions, tree connects, message processing and dispatch.

``SMBServer`` is the object the application builds; handlers code against
:mod:`smbd.server.request`.
"""

from smbd.server.request import Handler, Request, Response, SMBError
from smbd.server.server import SMBServer

__all__ = ["Handler", "Request", "Response", "SMBError", "SMBServer"]
