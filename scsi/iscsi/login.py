"""The login phase of one connection, target side (RFC 7143 6.3, 11.12, 11.13).

Sans-IO: :meth:`Login.receive` takes one Login Request (record + data segment) and returns
the Login Response (record + data segment). When the response carries T=1 NSG=FullFeature
and status 0, :attr:`Login.result` holds what the full feature phase needs. A response with
a non-zero status ends the connection (the driver closes it after sending).

Stages follow the table :data:`TRANSITIONS`: a (current stage, next stage) pair that is not
in it is an initiator error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from scsi.iscsi import pdu, text
from scsi.iscsi.chap import ChapAuthenticator, ChapSecrets
from scsi.iscsi.errors import LoginError, LoginStatus, TextError
from scsi.iscsi.negotiation import Negotiator, Params, TargetLimits
from scsi.iscsi.pdu import Stage

SECURITY_KEYS = frozenset({"AuthMethod", "CHAP_A", "CHAP_I", "CHAP_C", "CHAP_N", "CHAP_R"})
DECLARATIVE_KEYS = frozenset(
    {
        "InitiatorName",
        "InitiatorAlias",
        "TargetName",
        "TargetAlias",
        "SessionType",
        "TargetAddress",
        "TargetPortalGroupTag",
    }
)

# Allowed (CSG, NSG) when T=1 (RFC 7143 6.3: stages only move forward).
TRANSITIONS: dict[tuple[int, int], int] = {
    (Stage.SECURITY, Stage.OPERATIONAL): Stage.OPERATIONAL,
    (Stage.SECURITY, Stage.FULL_FEATURE): Stage.FULL_FEATURE,
    (Stage.OPERATIONAL, Stage.FULL_FEATURE): Stage.FULL_FEATURE,
}


class LoginPolicy(Protocol):
    """What the login needs to know about targets, zoning and secrets."""

    def has_target(self, target_name: str) -> bool: ...

    def authorize(self, initiator_name: str, target_name: str, portal_group_tag: int) -> bool: ...

    def chap_secrets(self, target_name: str | None) -> ChapSecrets | None:
        """CHAP credentials required for a target (None = discovery); None = no CHAP."""
        ...

    def tsih_exists(self, tsih: int) -> bool: ...


@dataclass(frozen=True)
class LoginResult:
    initiator_name: str
    target_name: str | None  # None for a Discovery session
    isid: bytes
    tsih: int
    cid: int
    params: Params
    exp_cmdsn: int
    next_statsn: int
    alias: str = ""

    @property
    def discovery(self) -> bool:
        return self.target_name is None


class Reply(NamedTuple):
    record: pdu.LoginResponse
    data: bytes


class Login:
    """One connection's login exchange."""

    def __init__(
        self,
        policy: LoginPolicy,
        limits: TargetLimits,
        *,
        portal_group_tag: int,
        new_tsih: Callable[[], int],
        rng: Callable[[int], bytes],
        statsn: int = 0,
    ) -> None:
        self.policy = policy
        self.limits = limits
        self.portal_group_tag = portal_group_tag
        self.new_tsih = new_tsih
        self.rng = rng
        self.statsn = statsn
        self.stage = Stage.SECURITY
        self.first: pdu.LoginRequest | None = None
        self.pending = bytearray()  # text of a request split with C=1
        self.initiator_name = ""
        self.alias = ""
        self.target_name: str | None = None
        self.negotiator: Negotiator | None = None
        self.chap: ChapAuthenticator | None = None
        self.auth_required = False
        self.authenticated = False
        self.auth_method: str | None = None
        self.tpgt_sent = False
        self.result: LoginResult | None = None
        self.failed = False
        self.error = ""

    # ------------------------------------------------------------------------- driver API

    def receive(self, req: pdu.LoginRequest, data: bytes | memoryview) -> Reply:
        try:
            return self._receive(req, data)
        except LoginError as e:
            self.failed = True
            self.error = str(e)
            return self._reply(req, [], status=e.status, transit=False)
        except TextError as e:
            self.failed = True
            self.error = f"bad login text: {e}"
            return self._reply(req, [], status=LoginStatus.INITIATOR_ERROR, transit=False)

    def fail(self, req: pdu.LoginRequest, status: LoginStatus) -> Reply:
        self.failed = True
        return self._reply(req, [], status=status, transit=False)

    # ---------------------------------------------------------------------------- internals

    def _reply(
        self,
        req: pdu.LoginRequest,
        pairs: list[tuple[str, str]],
        *,
        status: int = LoginStatus.SUCCESS,
        transit: bool,
        nsg: int = 0,
        tsih: int = 0,
        cont: bool = False,
    ) -> Reply:
        data = text.encode_pairs(pairs)
        exp = req.cmdsn
        rec = pdu.LoginResponse(
            isid=req.isid,
            tsih=tsih,
            itt=req.itt,
            statsn=self.statsn,
            exp_cmdsn=exp,
            max_cmdsn=exp if status else (exp + 0) & 0xFFFFFFFF,
            status_class=status >> 8,
            status_detail=status & 0xFF,
            csg=req.csg if not status else self.stage,
            nsg=nsg,
            transit=transit,
            cont=cont,
            version_max=0,
            version_active=0,
            data_length=len(data),
        )
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        return Reply(rec, data)

    def _receive(self, req: pdu.LoginRequest, data: bytes | memoryview) -> Reply:
        if self.result is not None or self.failed:
            raise LoginError(LoginStatus.INVALID_DURING_LOGIN, "login already finished")
        if self.first is None:
            if req.version_min > 0:
                raise LoginError(LoginStatus.UNSUPPORTED_VERSION, "only version 0 is spoken")
            self.first = req
            if req.csg == Stage.OPERATIONAL:  # the security stage may be skipped (6.3)
                self.stage = Stage.OPERATIONAL
        elif (
            req.isid != self.first.isid or req.tsih != self.first.tsih or req.cid != self.first.cid
        ):
            raise LoginError(LoginStatus.INITIATOR_ERROR, "ISID, TSIH or CID changed during login")
        if req.csg != self.stage or req.csg == 2:
            raise LoginError(LoginStatus.INITIATOR_ERROR, f"unexpected CSG {req.csg}")
        if req.transit and req.cont:
            raise LoginError(LoginStatus.INITIATOR_ERROR, "T and C both set")
        self.pending += data
        if len(self.pending) > text.MAX_TEXT:
            raise LoginError(LoginStatus.OUT_OF_RESOURCES, "login text too long")
        if req.cont:
            return self._reply(req, [], transit=False, nsg=0)
        pairs = text.decode_pairs(self.pending)
        self.pending.clear()
        keys = dict(pairs)
        answers: list[tuple[str, str]] = []

        neg = self.negotiator
        if neg is None:
            neg = self.negotiator = self._leading(req, keys)
            if not neg.discovery and not self.tpgt_sent:
                answers.append(("TargetPortalGroupTag", str(self.portal_group_tag)))
                self.tpgt_sent = True

        if self.stage == Stage.SECURITY:
            answers += self._security(keys)
        elif any(k in SECURITY_KEYS for k in keys):
            raise LoginError(LoginStatus.INITIATOR_ERROR, "security key in operational stage")

        op_pairs = [
            (k, v) for k, v in pairs if k not in SECURITY_KEYS and k not in DECLARATIVE_KEYS
        ]
        if self.stage == Stage.OPERATIONAL or op_pairs:
            answers += neg.respond(op_pairs)
            answers += neg.declarations()

        if not req.transit:
            return self._reply(req, answers, transit=False, nsg=0)
        nxt = TRANSITIONS.get((req.csg, req.nsg))
        if nxt is None:
            raise LoginError(LoginStatus.INITIATOR_ERROR, f"bad stage change {req.csg}->{req.nsg}")
        if self.stage == Stage.SECURITY and self.auth_required and not self.authenticated:
            # Still in the CHAP exchange: stay in the security stage.
            return self._reply(req, answers, transit=False, nsg=0)
        if nxt == Stage.FULL_FEATURE:
            if self.stage == Stage.SECURITY:
                answers += neg.declarations()
            tsih = req.tsih or self.new_tsih()
            self.result = LoginResult(
                initiator_name=self.initiator_name,
                target_name=self.target_name,
                isid=req.isid,
                tsih=tsih,
                cid=req.cid,
                params=neg.result(),
                exp_cmdsn=req.cmdsn,
                next_statsn=(self.statsn + 1) & 0xFFFFFFFF,
                alias=self.alias,
            )
            reply = self._reply(req, answers, transit=True, nsg=nxt, tsih=tsih)
            return reply
        self.stage = Stage(nxt)
        return self._reply(req, answers, transit=True, nsg=nxt)

    def _leading(self, req: pdu.LoginRequest, keys: dict[str, str]) -> Negotiator:
        """The first request: who is logging in to what, and may they."""
        name = keys.get("InitiatorName")
        if not name:
            raise LoginError(LoginStatus.MISSING_PARAMETER, "InitiatorName missing")
        self.initiator_name = name
        self.alias = keys.get("InitiatorAlias", "")
        session_type = keys.get("SessionType", "Normal")
        if session_type not in ("Normal", "Discovery"):
            raise LoginError(LoginStatus.SESSION_TYPE_NOT_SUPPORTED, f"SessionType {session_type}")
        if req.tsih:
            if not self.policy.tsih_exists(req.tsih):
                raise LoginError(LoginStatus.SESSION_DOES_NOT_EXIST, f"no session {req.tsih}")
            raise LoginError(LoginStatus.TOO_MANY_CONNECTIONS, "one connection per session")
        discovery = session_type == "Discovery"
        if not discovery:
            target = keys.get("TargetName")
            if not target:
                raise LoginError(LoginStatus.MISSING_PARAMETER, "TargetName missing")
            if not self.policy.has_target(target):
                raise LoginError(LoginStatus.NOT_FOUND, f"no target {target}")
            if not self.policy.authorize(name, target, self.portal_group_tag):
                raise LoginError(
                    LoginStatus.AUTHORIZATION_FAILURE,
                    f"{name} is not zoned to {target} tpgt {self.portal_group_tag}",
                )
            self.target_name = target
        secrets = self.policy.chap_secrets(self.target_name)
        self.auth_required = secrets is not None
        if secrets is not None:
            self.chap = ChapAuthenticator(secrets, self.rng)
        if self.auth_required and req.csg != Stage.SECURITY:
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, "authentication required")
        return Negotiator(self.limits, discovery=discovery)

    def _security(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if "AuthMethod" in keys:
            offered = [m.strip() for m in keys["AuthMethod"].split(",")]
            if self.auth_required:
                if "CHAP" not in offered:
                    raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, "CHAP required")
                self.auth_method = "CHAP"
            elif "None" in offered:
                self.auth_method = "None"
            else:
                out.append(("AuthMethod", "Reject"))
                return out
            out.append(("AuthMethod", self.auth_method))
        if self.auth_method == "CHAP" and self.chap is not None:
            if "CHAP_A" in keys:
                out += self.chap.offer(keys["CHAP_A"])
            elif "CHAP_R" in keys or "CHAP_N" in keys:
                out += self.chap.verify(keys)
                self.authenticated = True
        elif self.auth_required:
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, "authentication required")
        return out
