"""Operational text keys and their negotiation, target side (RFC 7143 6.2, 13).

Each key has a row in :data:`KEYS`: its kind (how the result is computed), the RFC default,
and whether it matters in a Discovery session. A key that is not in the table is answered
``NotUnderstood``; a value out of range is answered ``Reject`` and leaves the default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

NOT_UNDERSTOOD = "NotUnderstood"
IRRELEVANT = "Irrelevant"
REJECT = "Reject"


class Kind(Enum):
    LIST = "list"  # first value of the offer that we support (digests)
    AND = "and"  # boolean, result = offer AND ours
    OR = "or"  # boolean, result = offer OR ours
    MIN = "min"  # numeric, result = min(offer, ours)
    MAX = "max"  # numeric, result = max(offer, ours)
    DECLARATIVE = "declarative"  # each side declares its own (MaxRecvDataSegmentLength)
    OBSOLETE = "obsolete"  # RFC 3720 markers: answered, never used


@dataclass(frozen=True)
class Key:
    kind: Kind
    low: int = 0
    high: int = 0
    session_data: bool = False  # Irrelevant in a Discovery session


KEYS: dict[str, Key] = {
    "HeaderDigest": Key(Kind.LIST),
    "DataDigest": Key(Kind.LIST),
    "MaxConnections": Key(Kind.MIN, 1, 65535, True),
    "InitialR2T": Key(Kind.OR, session_data=True),
    "ImmediateData": Key(Kind.AND, session_data=True),
    "MaxRecvDataSegmentLength": Key(Kind.DECLARATIVE, 512, 2**24 - 1),
    "MaxBurstLength": Key(Kind.MIN, 512, 2**24 - 1, True),
    "FirstBurstLength": Key(Kind.MIN, 512, 2**24 - 1, True),
    "DefaultTime2Wait": Key(Kind.MAX, 0, 3600),
    "DefaultTime2Retain": Key(Kind.MIN, 0, 3600),
    "MaxOutstandingR2T": Key(Kind.MIN, 1, 65535, True),
    "DataPDUInOrder": Key(Kind.OR, session_data=True),
    "DataSequenceInOrder": Key(Kind.OR, session_data=True),
    "ErrorRecoveryLevel": Key(Kind.MIN, 0, 2),
    "iSCSIProtocolLevel": Key(Kind.MIN, 0, 31),
    "IFMarker": Key(Kind.OBSOLETE),
    "OFMarker": Key(Kind.OBSOLETE),
    "IFMarkInt": Key(Kind.OBSOLETE),
    "OFMarkInt": Key(Kind.OBSOLETE),
}

DIGESTS = ("CRC32C", "None")


@dataclass(frozen=True)
class Params:
    """Negotiated (or default) operational parameters of a session and its connection.

    ``max_recv_data`` is what the target accepts per PDU (it declares it); ``max_send_data``
    is what the initiator declared, the limit on the target's Data-In and text PDUs.
    """

    header_digest: bool = False
    data_digest: bool = False
    max_connections: int = 1
    initial_r2t: bool = True
    immediate_data: bool = True
    max_recv_data: int = 8192
    max_send_data: int = 8192
    max_burst: int = 262144
    first_burst: int = 65536
    time2wait: int = 2
    time2retain: int = 20
    max_outstanding_r2t: int = 1
    data_pdu_in_order: bool = True
    data_sequence_in_order: bool = True
    erl: int = 0
    protocol_level: int = 1


@dataclass(frozen=True)
class TargetLimits:
    """What this target offers; the negotiation can only lower (or for OR keys, raise) them."""

    digests: tuple[str, ...] = DIGESTS
    max_recv_data: int = 262144
    max_burst: int = 1048576
    first_burst: int = 262144
    immediate_data: bool = True
    initial_r2t: bool = False
    max_outstanding_r2t: int = 1
    time2wait: int = 2
    time2retain: int = 0
    erl: int = 0


def _bool(v: str) -> bool | None:
    return {"Yes": True, "No": False}.get(v)


def _int(v: str) -> int | None:
    try:
        return int(v, 0) if v.startswith(("0x", "0X")) else int(v)
    except ValueError:
        return None


class Negotiator:
    """Answers one side's offers and accumulates the result in :attr:`params`."""

    def __init__(self, limits: TargetLimits, *, discovery: bool = False) -> None:
        self.limits = limits
        self.discovery = discovery
        self.params = Params(max_recv_data=limits.max_recv_data, erl=0)
        self.declared_mrdsl = False
        self.answered: set[str] = set()

    def answer(self, key: str, value: str) -> str:
        """The response value for one offered key; updates :attr:`params`."""
        self.answered.add(key)
        spec = KEYS.get(key)
        if spec is None:
            return NOT_UNDERSTOOD
        if self.discovery and spec.session_data:
            return IRRELEVANT
        p = self.params
        lim = self.limits
        if spec.kind is Kind.LIST:
            offered = [v.strip() for v in value.split(",")]
            choice = next((v for v in offered if v in lim.digests), None)
            if choice is None:
                return REJECT
            on = choice == "CRC32C"
            self.params = (
                replace(p, header_digest=on)
                if key == "HeaderDigest"
                else replace(p, data_digest=on)
            )
            return choice
        if spec.kind is Kind.OBSOLETE:
            return "No" if key.endswith("Marker") else IRRELEVANT
        if spec.kind in (Kind.AND, Kind.OR):
            b = _bool(value)
            if b is None:
                return REJECT
            ours = {
                "InitialR2T": lim.initial_r2t,
                "ImmediateData": lim.immediate_data,
                "DataPDUInOrder": True,
                "DataSequenceInOrder": True,
            }[key]
            result = (b and ours) if spec.kind is Kind.AND else (b or ours)
            field = {
                "InitialR2T": "initial_r2t",
                "ImmediateData": "immediate_data",
                "DataPDUInOrder": "data_pdu_in_order",
                "DataSequenceInOrder": "data_sequence_in_order",
            }[key]
            self.params = replace(p, **{field: result})
            return "Yes" if result else "No"
        n = _int(value)
        if n is None or not spec.low <= n <= spec.high:
            return REJECT
        if spec.kind is Kind.DECLARATIVE:  # MaxRecvDataSegmentLength
            self.params = replace(p, max_send_data=n)
            return str(p.max_recv_data)  # unreachable path for answering, see declarations()
        ours_n = {
            "MaxConnections": 1,
            "MaxBurstLength": lim.max_burst,
            "FirstBurstLength": lim.first_burst,
            "DefaultTime2Wait": lim.time2wait,
            "DefaultTime2Retain": lim.time2retain,
            "MaxOutstandingR2T": lim.max_outstanding_r2t,
            "ErrorRecoveryLevel": lim.erl,
            "iSCSIProtocolLevel": 1,
        }[key]
        result_n = min(n, ours_n) if spec.kind is Kind.MIN else max(n, ours_n)
        field = {
            "MaxConnections": "max_connections",
            "MaxBurstLength": "max_burst",
            "FirstBurstLength": "first_burst",
            "DefaultTime2Wait": "time2wait",
            "DefaultTime2Retain": "time2retain",
            "MaxOutstandingR2T": "max_outstanding_r2t",
            "ErrorRecoveryLevel": "erl",
            "iSCSIProtocolLevel": "protocol_level",
        }[key]
        self.params = replace(p, **{field: result_n})  # type: ignore[arg-type]
        return str(result_n)

    def respond(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Answers for the operational keys among ``pairs`` (others are left to the caller).

        MaxRecvDataSegmentLength is declarative: the initiator's value is recorded and the
        target declares its own once per login.
        """
        out: list[tuple[str, str]] = []
        for k, v in pairs:
            if k == "MaxRecvDataSegmentLength":
                if self.answer(k, v) == REJECT:
                    out.append((k, REJECT))
                continue
            out.append((k, self.answer(k, v)))
        return out

    def declarations(self) -> list[tuple[str, str]]:
        """Keys the target states on its own (once): its MaxRecvDataSegmentLength."""
        if self.declared_mrdsl:
            return []
        self.declared_mrdsl = True
        return [("MaxRecvDataSegmentLength", str(self.params.max_recv_data))]

    def result(self) -> Params:
        p = self.params
        if p.first_burst > p.max_burst:
            p = replace(p, first_burst=p.max_burst)
        return p
