"""SPC-4 5.9: property test of the persistent reservation state machine."""

from __future__ import annotations

import contextlib
import struct

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from scsi.pr import (
    PersistentReservations,
    PrOut,
    PrOutParams,
    ReservationConflictError,
)
from scsi.sense import SenseError

NEXUSES = [("i1,i,0x1", 1), ("i1,i,0x1", 2), ("i2,i,0x2", 1), ("i3,i,0x3", 2)]
KEYS = [0, 1, 2, 3]
TYPES = [1, 3, 5, 6, 7, 8, 2]  # 2 is not a valid type

nexus = st.sampled_from(NEXUSES)
key = st.sampled_from(KEYS)


class PrMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pr = PersistentReservations()
        self.generation = 0

    def apply(self, n: tuple[str, int], sa: int, type_: int, p: PrOutParams) -> None:
        with contextlib.suppress(ReservationConflictError, SenseError):
            self.pr.out(n, sa, 0, type_, p, target_ports=[1, 2])

    @rule(n=nexus, k=key, sak=key, ignore=st.booleans(), all_tg_pt=st.booleans())
    def register(self, n: tuple[str, int], k: int, sak: int, ignore: bool, all_tg_pt: bool) -> None:
        sa = PrOut.REGISTER_AND_IGNORE if ignore else PrOut.REGISTER
        self.apply(n, sa, 0, PrOutParams(k, sak, False, all_tg_pt, False))

    @rule(n=nexus, k=key, t=st.sampled_from(TYPES))
    def reserve(self, n: tuple[str, int], k: int, t: int) -> None:
        self.apply(n, PrOut.RESERVE, t, PrOutParams(k, 0, False, False, False))

    @rule(n=nexus, k=key, t=st.sampled_from(TYPES))
    def release(self, n: tuple[str, int], k: int, t: int) -> None:
        self.apply(n, PrOut.RELEASE, t, PrOutParams(k, 0, False, False, False))

    @rule(n=nexus, k=key)
    def clear(self, n: tuple[str, int], k: int) -> None:
        self.apply(n, PrOut.CLEAR, 0, PrOutParams(k, 0, False, False, False))

    @rule(n=nexus, k=key, victim=key, t=st.sampled_from(TYPES))
    def preempt(self, n: tuple[str, int], k: int, victim: int, t: int) -> None:
        self.apply(n, PrOut.PREEMPT, t, PrOutParams(k, victim, False, False, False))

    @invariant()
    def holder_is_registered(self) -> None:
        pr = self.pr
        if pr.type is None:
            assert pr.holder is None
        elif pr.type.all_registrants:
            assert pr.holder is None and pr.registrations
        else:
            assert pr.holder in pr.registrations
            assert not pr.conflicts(pr.holder, write=True, read=True)

    @invariant()
    def keys_are_nonzero_and_generation_grows(self) -> None:
        assert all(r.key != 0 for r in self.pr.registrations.values())
        assert self.pr.generation >= self.generation
        self.generation = self.pr.generation

    @invariant()
    def read_keys_lists_every_registration(self) -> None:
        d = self.pr.read(0)
        gen, length = struct.unpack(">II", d[:8])
        assert gen == self.pr.generation
        assert length == 8 * len(self.pr.registrations) == len(d) - 8

    @invariant()
    def state_round_trips(self) -> None:
        again = PersistentReservations.from_dict(self.pr.to_dict())
        assert again.to_dict() == self.pr.to_dict()


TestPersistentReservations = PrMachine.TestCase
