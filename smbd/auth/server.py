"""The SESSION_SETUP authenticator: SPNEGO carrying NTLMv2, acceptor side.

One ServerAuthenticator per SESSION_SETUP exchange. ``step(token)`` takes the client's
security buffer and returns an AuthResult: MORE_PROCESSING_REQUIRED with the token to send,
SUCCESS with the user and the exported session key, or a failure status. Malformed input and
bad credentials end as a failure result; nothing else escapes ``step``.

Sources: [MS-NLMP] 3.2.5 (server), [MS-SPNG] and RFC 4178 (negotiation, mechListMIC),
[MS-SMB2] 3.3.5.5.3 (what SMB does with the result).
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import itertools
import logging
import struct
from collections.abc import Callable
from typing import Any

from smbd.auth import ntlm, spnego
from smbd.auth.ntlm import AvId, Flag, NtlmError
from smbd.auth.spnego import NegState, NegTokenInit, NegTokenResp, SpnegoError
from smbd.config import CredentialStore

STATUS_SUCCESS = 0x00000000
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_LOGON_FAILURE = 0xC000006D

MAX_TOKEN_SIZE = 65536  # NTLM messages are a few hundred bytes; SPNEGO adds little
DEFAULT_MAX_CLOCK_SKEW = 300.0  # seconds between the NTLMv2 timestamp and our clock

# Flags the server echoes when the client asks for them ([MS-NLMP] 3.2.5.1.1)
_ECHOED = (
    Flag.SIGN
    | Flag.SEAL
    | Flag.ALWAYS_SIGN
    | Flag.EXTENDED_SESSIONSECURITY
    | Flag.IDENTIFY
    | Flag.VERSION
    | Flag.KEY_128
    | Flag.KEY_56
    | Flag.KEY_EXCH
)


@dataclasses.dataclass(frozen=True)
class AuthResult:
    """The outcome of one step. ``token`` goes into the SESSION_SETUP response's security
    buffer (empty on failure). ``session_key`` is the 16-byte exported session key of an
    authenticated user; None for guest and anonymous sessions, which cannot sign."""

    status: int
    token: bytes = b""
    user: str | None = None
    domain: str | None = None
    session_key: bytes | None = None
    is_guest: bool = False
    is_anonymous: bool = False

    def __repr__(self) -> str:
        return (
            f"AuthResult(status=0x{self.status:08x}, user={self.user!r}, "
            f"domain={self.domain!r}, guest={self.is_guest}, anonymous={self.is_anonymous})"
        )


def negotiate_token() -> bytes:
    """The SPNEGO NegTokenInit2 for the NEGOTIATE response's security buffer."""
    return _NEGOTIATE_TOKEN


_NEGOTIATE_TOKEN = spnego.build_neg_token_init2()


class _State(enum.Enum):
    START = "start"
    SPNEGO_WAIT_NEGOTIATE = "spnego-wait-negotiate"  # NTLM chosen, its first token not seen
    SPNEGO_WAIT_AUTHENTICATE = "spnego-wait-authenticate"
    RAW_WAIT_AUTHENTICATE = "raw-wait-authenticate"
    DONE = "done"


class _Kind(enum.Enum):
    EMPTY = "empty"
    RAW = "raw-ntlmssp"
    SPNEGO_INIT = "spnego-init"
    SPNEGO_RESP = "spnego-resp"


class _Failure(Exception):
    """Internal: ends the exchange with ``status``; ``reason`` goes to the log."""

    def __init__(self, reason: str, status: int = STATUS_LOGON_FAILURE) -> None:
        super().__init__(reason)
        self.status = status


class ServerAuthenticator:
    """Accepts one NTLMv2 authentication, raw or inside SPNEGO, answering in kind."""

    def __init__(
        self,
        credentials: CredentialStore,
        *,
        server_name: str,
        domain: str,
        allow_guest: bool,
        rng: Callable[[int], bytes],
        now: Callable[[], float],
        logger: logging.Logger | None = None,
        max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW,
    ) -> None:
        self._credentials = credentials
        self._server_name = server_name
        self._domain = domain
        self._allow_guest = allow_guest
        self._rng = rng
        self._now = now
        self._log = logger or logging.getLogger("smbd.auth")
        self._max_skew = max_clock_skew
        self._state = _State.START
        self._negotiate_raw = b""
        self._challenge_raw = b""
        self._server_challenge = b""
        self._challenge_flags = 0
        self._mech_types_der = b""
        self._mic_required = False

    # ---------------------------------------------------------------------------------

    def step(self, token: bytes) -> AuthResult:
        """Feed the client's next security token."""
        state = self._state
        self._state = _State.DONE  # a handler that returns normally sets the next state
        try:
            if len(token) > MAX_TOKEN_SIZE:
                raise _Failure("oversized security token", STATUS_INVALID_PARAMETER)
            kind, parsed = self._classify(bytes(token))
            handler = _TRANSITIONS.get((state, kind))
            if handler is None:
                raise _Failure(
                    f"{kind.value} token in state {state.value}", STATUS_INVALID_PARAMETER
                )
            return handler(self, parsed)
        except (NtlmError, SpnegoError) as exc:
            return self._fail(str(exc), exc.status)
        except _Failure as exc:
            return self._fail(str(exc), exc.status)

    @staticmethod
    def _classify(token: bytes) -> tuple[_Kind, Any]:
        if not token:
            return _Kind.EMPTY, None
        if token.startswith(ntlm.SIGNATURE):
            return _Kind.RAW, token
        parsed = spnego.parse_token(token)
        if isinstance(parsed, NegTokenInit):
            return _Kind.SPNEGO_INIT, parsed
        return _Kind.SPNEGO_RESP, parsed

    def _fail(self, reason: str, status: int) -> AuthResult:
        self._state = _State.DONE
        self._log.warning(
            "authentication failed: %s",
            reason,
            extra={"auth_status": f"0x{status:08x}", "reason": reason},
        )
        return AuthResult(status=status)

    # ---------------------------------------------------------------------------------
    # First leg

    def _on_empty(self, _parsed: None) -> AuthResult:
        # [MS-SMB2] 3.3.5.5.3: an empty buffer asks the server to start the exchange.
        self._state = _State.START
        return AuthResult(STATUS_MORE_PROCESSING_REQUIRED, negotiate_token())

    def _on_raw_negotiate(self, token: bytes) -> AuthResult:
        challenge = self._challenge(token)
        self._state = _State.RAW_WAIT_AUTHENTICATE
        return AuthResult(STATUS_MORE_PROCESSING_REQUIRED, challenge)

    def _on_spnego_init(self, init: NegTokenInit) -> AuthResult:
        if spnego.OID_NTLMSSP not in init.mech_types:
            raise _Failure("the client offers no mechanism we support")
        self._mech_types_der = init.mech_types_der
        # RFC 4178 5: when the initiator's preferred mechanism is not the one selected,
        # the exchange must end with mechListMICs both ways.
        preferred = init.mech_types[0] == spnego.OID_NTLMSSP
        self._mic_required = not preferred
        if preferred and init.mech_token is not None:
            challenge = self._challenge(init.mech_token)
            self._state = _State.SPNEGO_WAIT_AUTHENTICATE
            token = spnego.build_neg_token_resp(
                NegState.ACCEPT_INCOMPLETE, spnego.OID_NTLMSSP, challenge
            )
        else:
            # The optimistic token (if any) belongs to another mechanism: select NTLM and
            # wait for its first token.
            self._state = _State.SPNEGO_WAIT_NEGOTIATE
            state = NegState.REQUEST_MIC if self._mic_required else NegState.ACCEPT_INCOMPLETE
            token = spnego.build_neg_token_resp(state, spnego.OID_NTLMSSP)
        return AuthResult(STATUS_MORE_PROCESSING_REQUIRED, token)

    def _on_spnego_negotiate(self, resp: NegTokenResp) -> AuthResult:
        if resp.response_token is None:
            raise _Failure("NegTokenResp without the NTLM NEGOTIATE", STATUS_INVALID_PARAMETER)
        challenge = self._challenge(resp.response_token)
        self._state = _State.SPNEGO_WAIT_AUTHENTICATE
        return AuthResult(
            STATUS_MORE_PROCESSING_REQUIRED,
            spnego.build_neg_token_resp(NegState.ACCEPT_INCOMPLETE, None, challenge),
        )

    def _challenge(self, negotiate_token: bytes) -> bytes:
        """[MS-NLMP] 3.2.5.1.1: answer a NEGOTIATE_MESSAGE with a CHALLENGE_MESSAGE."""
        negotiate = ntlm.parse_negotiate(negotiate_token)
        requested = negotiate.flags
        flags = Flag.NTLM | Flag.TARGET_INFO | Flag.REQUEST_TARGET | (requested & _ECHOED)
        if requested & Flag.UNICODE or not requested & Flag.OEM:
            flags |= Flag.UNICODE
        else:
            flags |= Flag.OEM
        if self._domain.upper() == self._server_name.upper():
            flags |= Flag.TARGET_TYPE_SERVER
            target_name = self._server_name.upper()
        else:
            flags |= Flag.TARGET_TYPE_DOMAIN
            target_name = self._domain.upper()
        server_challenge = self._rng(8)
        if len(server_challenge) != 8:
            raise ValueError("rng returned the wrong number of bytes")
        timestamp = ntlm.filetime_from_unix(self._now())
        info = ntlm.build_av_pairs(
            [
                (AvId.NB_DOMAIN_NAME, self._domain.upper().encode("utf-16-le")),
                (AvId.NB_COMPUTER_NAME, self._server_name.upper().encode("utf-16-le")),
                (AvId.DNS_DOMAIN_NAME, self._domain.lower().encode("utf-16-le")),
                (AvId.DNS_COMPUTER_NAME, self._server_name.lower().encode("utf-16-le")),
                (AvId.TIMESTAMP, struct.pack("<Q", timestamp)),
            ]
        )
        challenge = ntlm.build_challenge(int(flags), server_challenge, target_name, info)
        self._negotiate_raw = negotiate.raw
        self._challenge_raw = challenge
        self._server_challenge = server_challenge
        self._challenge_flags = int(flags)
        return challenge

    # ---------------------------------------------------------------------------------
    # Second leg

    def _on_raw_authenticate(self, token: bytes) -> AuthResult:
        result, _key, _flags = self._authenticate(token)
        return result

    def _on_spnego_authenticate(self, resp: NegTokenResp) -> AuthResult:
        if resp.response_token is None:
            raise _Failure("NegTokenResp without the NTLM AUTHENTICATE", STATUS_INVALID_PARAMETER)
        client_mic = resp.mech_list_mic
        if client_mic is not None and client_mic == resp.response_token:
            client_mic = None  # an old initiator bug: mechListMIC repeats the token
        result, exported, flags = self._authenticate(resp.response_token)
        if result.status != STATUS_SUCCESS:
            return result
        if exported is None:  # guest or anonymous: no key, no mechListMIC
            token = spnego.build_neg_token_resp(NegState.ACCEPT_COMPLETED)
            return _with_token(result, token)
        server_mic = None
        if client_mic is not None or self._mic_required:
            server_mic = self._check_mech_list_mic(client_mic, exported, flags)
        token = spnego.build_neg_token_resp(NegState.ACCEPT_COMPLETED, None, None, server_mic)
        return _with_token(result, token)

    def _check_mech_list_mic(self, client_mic: bytes | None, exported: bytes, flags: int) -> bytes:
        """RFC 4178 5 / [MS-SPNG] 3.2.5.1: verify the initiator's mechListMIC over the
        MechTypeList it sent, and return ours."""
        if client_mic is None:
            raise _Failure("mechListMIC required but not sent")
        if not flags & Flag.EXTENDED_SESSIONSECURITY:
            raise _Failure("mechListMIC without NTLM extended session security")
        expected = ntlm.mic_signature(flags, exported, True, 0, self._mech_types_der)
        if not hmac.compare_digest(expected, client_mic):
            raise _Failure("bad SPNEGO mechListMIC")
        return ntlm.mic_signature(flags, exported, False, 0, self._mech_types_der)

    def _authenticate(self, token: bytes) -> tuple[AuthResult, bytes | None, int]:
        """[MS-NLMP] 3.2.5.1.2: check an AUTHENTICATE_MESSAGE. Returns the result, the
        exported session key (None for guest/anonymous) and the negotiated flags."""
        msg = ntlm.parse_authenticate(token)
        who = {"user": msg.user, "domain": msg.domain, "workstation": msg.workstation}
        self._state = _State.DONE

        if not msg.user and not msg.nt_response and msg.lm_response in (b"", b"\x00"):
            if not self._allow_guest:
                raise _Failure("anonymous logon refused")
            self._log.info("anonymous logon", extra=who)
            return AuthResult(STATUS_SUCCESS, is_anonymous=True), None, msg.flags

        if len(msg.nt_response) <= 24:
            raise _Failure(f"NTLMv1 or LM response refused from {msg.user!r}")
        if len(msg.nt_response) < 16 + 28:
            raise _Failure("short NTLMv2 response")
        proof, blob = msg.nt_response[:16], msg.nt_response[16:]
        # The structure first (a malformed NTLMv2_CLIENT_CHALLENGE is INVALID_PARAMETER, as
        # Samba answers since its bug 14932), then who the client claims to be.
        client = ntlm.parse_client_challenge(blob)

        found = self._credentials.lookup(msg.user)
        if found is None:
            if not self._allow_guest:
                raise _Failure(f"unknown user {msg.user!r}")
            self._log.info("unknown user mapped to guest", extra=who)
            return AuthResult(STATUS_SUCCESS, is_guest=True), None, msg.flags
        canonical, nt_hash = found

        response_key = None
        # The client keys NTOWFv2 with the domain it typed; accept the common spellings
        # Samba accepts too (as sent, upper-cased, empty), and both ways of upper-casing a
        # name whose Python upper case differs from Windows' (only for non-ASCII names).
        upcasings = (False, True) if not msg.user.isascii() else (False,)
        for dom, windows in itertools.product(
            dict.fromkeys((msg.domain, msg.domain.upper(), "")), upcasings
        ):
            key = ntlm.ntowfv2(nt_hash, msg.user, dom, windows_upcase=windows)
            if hmac.compare_digest(ntlm.nt_proof_str(key, self._server_challenge, blob), proof):
                response_key = key
                break
        if response_key is None:
            raise _Failure(f"wrong password for {msg.user!r}")

        skew = ntlm.unix_from_filetime(client.timestamp) - self._now()
        if abs(skew) > self._max_skew:
            raise _Failure(f"NTLMv2 timestamp {skew:+.0f}s off our clock for {msg.user!r}")

        key_exchange_key = ntlm.session_base_key(response_key, proof)
        # The AUTHENTICATE flags are the ones the client keyed its side with.
        negotiated = msg.flags
        if negotiated & Flag.KEY_EXCH:
            if len(msg.encrypted_session_key) != 16:
                raise _Failure("KEY_EXCH without a 16-byte EncryptedRandomSessionKey")
            exported = ntlm.arc4(key_exchange_key, msg.encrypted_session_key)
        else:
            exported = key_exchange_key

        av_flags = client.av_pairs.get(AvId.FLAGS, b"\0\0\0\0")
        if len(av_flags) != 4:
            raise _Failure("bad MsvAvFlags")
        if struct.unpack("<I", av_flags)[0] & ntlm.AV_FLAG_MIC_PRESENT:
            if msg.mic is None:
                raise _Failure("MsvAvFlags promise a MIC the message does not carry")
            expected = ntlm.authenticate_mic(
                exported, self._negotiate_raw, self._challenge_raw, msg.raw
            )
            if not hmac.compare_digest(expected, msg.mic):
                raise _Failure(f"bad AUTHENTICATE MIC for {msg.user!r}")

        self._log.info("user authenticated", extra={**who, "canonical_user": canonical})
        result = AuthResult(STATUS_SUCCESS, user=canonical, domain=msg.domain, session_key=exported)
        return result, exported, negotiated


# (state, kind of token) -> handler; a missing entry ends the exchange.
_TRANSITIONS: dict[tuple[_State, _Kind], Callable[[ServerAuthenticator, Any], AuthResult]] = {
    (_State.START, _Kind.EMPTY): ServerAuthenticator._on_empty,
    (_State.START, _Kind.RAW): ServerAuthenticator._on_raw_negotiate,
    (_State.START, _Kind.SPNEGO_INIT): ServerAuthenticator._on_spnego_init,
    (_State.SPNEGO_WAIT_NEGOTIATE, _Kind.SPNEGO_RESP): ServerAuthenticator._on_spnego_negotiate,
    (_State.SPNEGO_WAIT_AUTHENTICATE, _Kind.SPNEGO_RESP): (
        ServerAuthenticator._on_spnego_authenticate
    ),
    (_State.RAW_WAIT_AUTHENTICATE, _Kind.RAW): ServerAuthenticator._on_raw_authenticate,
}


def _with_token(result: AuthResult, token: bytes) -> AuthResult:
    return dataclasses.replace(result, token=token)
