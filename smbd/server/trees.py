"""TREE_CONNECT ([MS-SMB2] 3.3.5.7), TREE_DISCONNECT (3.3.5.8), ECHO (3.3.5.17), and the
IOCTLs the core answers itself: FSCTL_VALIDATE_NEGOTIATE_INFO (3.3.5.15.12) and
FSCTL_QUERY_NETWORK_INTERFACE_INFO (3.3.5.15.11)."""

from __future__ import annotations

import struct

from smbd.config import SMB3_0
from smbd.server.model import TreeConnect
from smbd.server.negotiate import (
    FSCTL_VALIDATE_NEGOTIATE_INFO,
    ValidateNegotiateMismatch,
    validate_negotiate,
)
from smbd.server.request import Handler, Request, Response, SMBError
from smbd.wire.constants import ShareCapabilities, ShareFlags, ShareType
from smbd.wire.errors import ParseError
from smbd.wire.ioctl import SMB2_0_IOCTL_IS_FSCTL, pack_ioctl_response, parse_ioctl_request
from smbd.wire.misc import SIMPLE_BODY, parse_simple
from smbd.wire.status import NTStatus
from smbd.wire.tree import (
    TreeConnectResponse,
    pack_tree_connect_response,
    parse_tree_connect_request,
    share_name_from_path,
)

# [MS-SMB2] 2.2.13.1 access masks
FILE_ALL_ACCESS = 0x001F01FF
FILE_GENERIC_READ_EXECUTE = 0x001200A9  # GENERIC_READ | GENERIC_EXECUTE as file rights

FSCTL_QUERY_NETWORK_INTERFACE_INFO = 0x001401FC
RSS_CAPABLE = 0x1
RDMA_CAPABLE = 0x2


async def handle_tree_connect(req: Request) -> Response:
    server = req.server
    session = req.session
    assert session is not None
    conn = req.connection
    r = parse_tree_connect_request(req.body, conn.dialect)
    _server_part, name = share_name_from_path(r.path)
    is_ipc = name.upper() == "IPC$"
    share = None if is_ipc else server.find_share(name)
    if share is None and not is_ipc:
        raise SMBError(NTStatus.BAD_NETWORK_NAME, f"no share {name!r}")
    if share is not None and not share.admits(session.user):
        # [MS-SMB2] 3.3.5.7: a user the share's access rules refuse gets ACCESS_DENIED
        raise SMBError(NTStatus.ACCESS_DENIED, f"{session.user!r} may not use share {name!r}")
    if len(session.trees) >= server.limits.trees_per_session:
        raise SMBError(NTStatus.INSUFFICIENT_RESOURCES, "too many tree connects")
    encrypt = (
        share is not None and (share.encrypt or server.config.encrypt) and conn.dialect >= SMB3_0
    )
    if (
        share is not None
        and (share.encrypt or server.config.encrypt)
        and (not conn.supports_encryption or session.encryptor is None)
    ):
        # [MS-SMB2] 3.3.5.7: RejectUnencryptedAccess
        raise SMBError(NTStatus.ACCESS_DENIED, f"share {name!r} requires encryption")
    if share is None:
        access = FILE_ALL_ACCESS
        share_type = ShareType.PIPE
        flags = int(ShareFlags.NO_CACHING)
        caps = 0
    else:
        access = FILE_GENERIC_READ_EXECUTE if share.read_only else FILE_ALL_ACCESS
        share_type = ShareType.DISK
        flags = int(ShareFlags.MANUAL_CACHING)
        caps = 0
        if share.continuous_availability and conn.dialect >= SMB3_0:
            caps |= ShareCapabilities.CONTINUOUS_AVAILABILITY
    if encrypt:
        flags |= ShareFlags.ENCRYPT_DATA
    tree = TreeConnect(
        session.new_tree_id(),
        session,
        name,
        share,
        maximal_access=access,
        encrypt_data=encrypt,
    )
    session.trees[tree.tree_id] = tree
    req.tree = tree
    server.log.info(
        "tree connect %s",
        name,
        extra={"conn": conn.conn_id, "session": session.session_id, "tree": tree.tree_id},
    )
    return Response(
        [pack_tree_connect_response(TreeConnectResponse(share_type, flags, caps, access))]
    )


async def handle_tree_disconnect(req: Request) -> Response:
    parse_simple(req.body, "TREE_DISCONNECT")
    assert req.tree is not None
    await req.server.tree_disconnect(req.tree)
    return Response([SIMPLE_BODY])


async def handle_echo(req: Request) -> Response:
    parse_simple(req.body, "ECHO")
    return Response([SIMPLE_BODY])


def make_ioctl_handler(files_ioctl: Handler | None) -> Handler:
    """IOCTL: the core answers the FSCTLs about the connection; the rest go to the file
    handlers."""

    async def handle_ioctl(req: Request) -> Response:
        if len(req.body) >= 8:
            (code,) = struct.unpack_from("<I", req.body, 4)
            if code in (FSCTL_VALIDATE_NEGOTIATE_INFO, FSCTL_QUERY_NETWORK_INTERFACE_INFO):
                return await _core_fsctl(req, code)
        if files_ioctl is None:
            raise SMBError(NTStatus.NOT_SUPPORTED, "IOCTL not supported")
        return await files_ioctl(req)

    return handle_ioctl


async def _core_fsctl(req: Request, code: int) -> Response:
    r = parse_ioctl_request(req.body)
    if not r.flags & SMB2_0_IOCTL_IS_FSCTL:
        raise SMBError(NTStatus.NOT_SUPPORTED, "IOCTL without SMB2_0_IOCTL_IS_FSCTL")
    conn = req.connection
    if code == FSCTL_VALIDATE_NEGOTIATE_INFO:
        try:
            out = validate_negotiate(req.server, conn, r.input)
        except ValidateNegotiateMismatch as e:
            raise ParseError(str(e), NTStatus.ACCESS_DENIED, disconnect=True) from None
        if r.max_output_response < len(out):
            raise SMBError(NTStatus.INVALID_PARAMETER, "MaxOutputResponse too small")
        req.sign_response = True  # 3.3.5.15.12: the response is signed
        return Response(pack_ioctl_response(code, r.file_id, out))
    # FSCTL_QUERY_NETWORK_INTERFACE_INFO
    if r.file_id != (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        # the request is about the connection, not an open (Windows and Samba agree)
        raise SMBError(NTStatus.INVALID_PARAMETER, "FileId must be all ones")
    if conn.dialect < SMB3_0 or not conn.supports_multichannel:
        raise SMBError(NTStatus.NOT_SUPPORTED, "multichannel is not negotiated")
    out = req.server.network_interface_info(conn)
    if r.max_output_response < len(out):
        raise SMBError(NTStatus.BUFFER_TOO_SMALL, "MaxOutputResponse too small")
    return Response(pack_ioctl_response(code, r.file_id, out))


_NIC = struct.Struct("<IIIIQ")
_NIC_SIZE = 152


def pack_network_interfaces(entries: list[tuple[int, int, int, int, bytes]]) -> bytes:
    """[MS-SMB2] 2.2.32.5 NETWORK_INTERFACE_INFO chain. Each entry is (if_index,
    capability, link_speed_bps, family, address bytes)."""
    out = bytearray()
    for i, (if_index, capability, speed, family, addr) in enumerate(entries):
        nxt = _NIC_SIZE if i + 1 < len(entries) else 0
        rec = bytearray(_NIC_SIZE)
        _NIC.pack_into(rec, 0, nxt, if_index, capability, 0, speed)
        if family == 2:  # AF_INET: family, port 0, address, 8 reserved
            struct.pack_into("<HH4s", rec, 24, 0x0002, 0, addr)
        else:  # AF_INET6: family, port 0, flowinfo 0, address, scope 0
            struct.pack_into("<HHI16sI", rec, 24, 0x0017, 0, 0, addr, 0)
        out += rec
    return bytes(out)


__all__ = [
    "FSCTL_QUERY_NETWORK_INTERFACE_INFO",
    "handle_echo",
    "handle_tree_connect",
    "handle_tree_disconnect",
    "make_ioctl_handler",
    "pack_network_interfaces",
]
