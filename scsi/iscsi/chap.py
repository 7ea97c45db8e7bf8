"""CHAP authentication for iSCSI login (RFC 7143 12.1.3, RFC 1994), target side.

One-way: the target challenges and checks ``CHAP_R = MD5(id || secret || challenge)``.
Mutual: the initiator also sends ``CHAP_I``/``CHAP_C`` and the target answers with its own
name and response. A reflected challenge (the initiator sending our own challenge back) is
refused, as RFC 7143 12.1.3 requires. Randomness comes from the injected ``rng``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from scsi.iscsi.errors import LoginError, LoginStatus

CHAP_MD5 = "5"
CHALLENGE_BYTES = 16
MIN_SECRET = 12  # 96 bits, RFC 7143 12.1.3 (SHOULD)


@dataclass(frozen=True)
class ChapSecrets:
    """Credentials for one target: the initiator's user and secret, and optionally the
    target's own (mutual CHAP)."""

    user: str
    secret: str
    target_user: str = ""
    target_secret: str = ""

    @property
    def mutual(self) -> bool:
        return bool(self.target_user and self.target_secret)


def decode_binary(value: str) -> bytes:
    """RFC 7143 6.1 binary-value: ``0x`` hex or ``0b`` base64."""
    try:
        if value[:2] in ("0x", "0X"):
            digits = value[2:]
            if len(digits) % 2:
                digits = "0" + digits
            return binascii.unhexlify(digits)
        if value[:2] in ("0b", "0B"):
            return base64.b64decode(value[2:], validate=True)
    except (binascii.Error, ValueError):
        pass
    raise LoginError(LoginStatus.INITIATOR_ERROR, "bad CHAP binary value")


def encode_hex(data: bytes) -> str:
    return "0x" + data.hex()


def response(ident: int, secret: str, challenge: bytes) -> bytes:
    return hashlib.md5(bytes([ident]) + secret.encode() + challenge).digest()


class ChapAuthenticator:
    """The target side of one CHAP exchange."""

    def __init__(self, secrets: ChapSecrets, rng: Callable[[int], bytes]) -> None:
        self.secrets = secrets
        self.rng = rng
        self.ident = rng(1)[0]
        self.challenge = rng(CHALLENGE_BYTES)
        self.done = False

    def offer(self, algorithms: str) -> list[tuple[str, str]]:
        """Answer CHAP_A: pick MD5 and send CHAP_I and CHAP_C."""
        if CHAP_MD5 not in [a.strip() for a in algorithms.split(",")]:
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, "initiator offers no CHAP_A=5")
        return [
            ("CHAP_A", CHAP_MD5),
            ("CHAP_I", str(self.ident)),
            ("CHAP_C", encode_hex(self.challenge)),
        ]

    def verify(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        """Check CHAP_N/CHAP_R; for mutual CHAP answer CHAP_I/CHAP_C. Raises LoginError."""
        name, resp = keys.get("CHAP_N"), keys.get("CHAP_R")
        if name is None or resp is None:
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, "CHAP_N or CHAP_R missing")
        expected = response(self.ident, self.secrets.secret, self.challenge)
        name_ok = hmac.compare_digest(name.encode(), self.secrets.user.encode())
        if not (hmac.compare_digest(decode_binary(resp), expected) and name_ok):
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, f"CHAP response of {name!r} wrong")
        out: list[tuple[str, str]] = []
        if "CHAP_I" in keys or "CHAP_C" in keys:
            if not self.secrets.mutual:
                raise LoginError(
                    LoginStatus.AUTHENTICATION_FAILURE, "mutual CHAP asked but not configured"
                )
            try:
                ident = int(keys["CHAP_I"])
            except (KeyError, ValueError):
                raise LoginError(LoginStatus.INITIATOR_ERROR, "bad CHAP_I") from None
            challenge = decode_binary(keys.get("CHAP_C", ""))
            if not 0 <= ident <= 255 or not challenge:
                raise LoginError(LoginStatus.INITIATOR_ERROR, "bad mutual CHAP challenge")
            if challenge == self.challenge:
                raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, "reflected CHAP challenge")
            out = [
                ("CHAP_N", self.secrets.target_user),
                ("CHAP_R", encode_hex(response(ident, self.secrets.target_secret, challenge))),
            ]
        self.done = True
        return out
