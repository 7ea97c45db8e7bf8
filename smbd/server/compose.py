"""Building response messages: headers, compound chaining with 8-byte alignment, signing
([MS-SMB2] 3.3.4.1, 3.3.4.1.1, 3.3.4.1.3). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable

from smbd import crypto
from smbd.server.request import Buffer
from smbd.wire.constants import HeaderFlags
from smbd.wire.header import HEADER_SIZE, SIGNATURE_OFFSET, Header, pack_error_body, pack_header

_PAD = bytes(8)
# plain ints: IntFlag arithmetic builds an enum member per operation, on every response
_SERVER_TO_REDIR = int(HeaderFlags.SERVER_TO_REDIR)
_SIGNED = int(HeaderFlags.SIGNED)
_NO_SIGNATURE = bytes(16)


class OutMessage:
    """One response (or unsolicited message) of a chain, before signing."""

    __slots__ = (
        "after_send",
        "body",
        "echo_signature",
        "frame",
        "header",
        "sign_algorithm",
        "sign_key",
    )

    def __init__(
        self,
        header: Header,
        body: list[Buffer],
        *,
        sign_key: bytes = b"",
        sign_algorithm: int = crypto.HMAC_SHA256,
        after_send: Callable[[bytes], None] | None = None,
        frame: memoryview | None = None,
    ) -> None:
        self.header = header
        self.body = body
        self.frame = frame  # see smbd.server.request.Response.frame
        self.sign_key = sign_key
        self.sign_algorithm = sign_algorithm
        self.after_send = after_send
        # An error to a signed request that names no session the server holds a key for
        # carries the request's own SIGNED flag and signature back, as Samba's answers
        # do: a client that requires signing takes USER_SESSION_DELETED unverified, and
        # INVALID_PARAMETER, NETWORK_NAME_DELETED or FILE_CLOSED when the signature is
        # its own (smbXcli), where an unsigned answer would end its connection.
        self.echo_signature = b""

    @property
    def body_size(self) -> int:
        return sum(len(p) for p in self.body)


def error_body(error_data: bytes = b"") -> list[Buffer]:
    """[MS-SMB2] 2.2.2 SMB2 ERROR Response body."""
    return [pack_error_body(error_data)]


def build_chain(messages: list[OutMessage]) -> list[Buffer]:
    """Lay out a chain of responses as iovec parts: in a compound chain every response,
    the last one too, padded to 8 bytes ([MS-SMB2] 3.3.4.1.3: "the last response ...
    SHOULD be padded", as Windows does and smb2.compound.compound-padding checks), each
    but the last with NextCommand pointing at the next; a lone response is not padded.
    Each is signed over its own bytes, padding included, when it has a signing key.
    Calls ``after_send`` hooks with the exact bytes of their message (used for the 3.1.1
    pre-auth hash)."""
    parts: list[Buffer] = []
    last = len(messages) - 1
    for i, m in enumerate(messages):
        body = m.body
        size = HEADER_SIZE + m.body_size
        pad = (-size) % 8 if last else 0
        flags = int(m.header.flags) | _SERVER_TO_REDIR
        echo = m.echo_signature if not m.sign_key else b""
        if m.sign_key or echo:
            flags |= _SIGNED
        else:
            flags &= ~_SIGNED
        hdr = pack_header(m.header, flags, size + pad if i < last else 0, echo or _NO_SIGNATURE)
        frame = m.frame
        element: list[Buffer]
        head: bytearray | memoryview = hdr  # where the signature goes
        if frame is not None and not last and len(frame) == size:
            # a lone response laid out in one buffer in front of its data: one iovec, and
            # one pass of the signing primitive with no incremental context
            frame[:HEADER_SIZE] = hdr
            pos = HEADER_SIZE
            for p in body[:-1]:
                frame[pos : pos + len(p)] = p
                pos += len(p)
            head = frame
            element = [frame]
        else:
            element = [hdr, *body]
        if pad:
            element.append(_PAD[:pad])
        if m.sign_key:
            # the header was packed with a zero Signature: sign the parts as they are
            sig = crypto.sign_parts(m.sign_algorithm, m.sign_key, element, zeroed=True)
            head[SIGNATURE_OFFSET : SIGNATURE_OFFSET + 16] = sig
        if m.after_send is not None:
            m.after_send(b"".join(bytes(p) for p in element))
        parts.extend(element)
    return parts
