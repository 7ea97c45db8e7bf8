"""[MS-FSA] 2.1.5.1.2 share-mode arbitration, as a pure function, property-tested."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smbd.server.files.state import DATA_ACCESS, sharing_conflict

R, W, A, X, D = 0x1, 0x2, 0x4, 0x20, 0x10000
ATTR = 0x80 | 0x100 | 0x20000  # read/write attributes, read control
access = st.sampled_from([0, R, W, A, X, D, R | W, R | D, W | A, ATTR, R | ATTR, R | W | D | A | X])
share = st.integers(0, 7)


def reference(a1: int, s1: int, a2: int, s2: int) -> bool:
    """The table spelled out: each side's data access must be shared by the other."""
    if not a1 & DATA_ACCESS or not a2 & DATA_ACCESS:
        return False

    def denied(a: int, s: int) -> bool:
        return bool(
            (a & (R | X) and not s & 1) or (a & (W | A) and not s & 2) or (a & D and not s & 4)
        )

    return denied(a1, s2) or denied(a2, s1)


@given(access, share, access, share)
def test_matches_reference(a1: int, s1: int, a2: int, s2: int) -> None:
    assert sharing_conflict([(a1, s1)], a2, s2) == reference(a1, s1, a2, s2)


@given(access, share, access, share)
def test_symmetric(a1: int, s1: int, a2: int, s2: int) -> None:
    assert sharing_conflict([(a1, s1)], a2, s2) == sharing_conflict([(a2, s2)], a1, s1)


@given(st.lists(st.tuples(access, share), max_size=6), access, share)
def test_any_of_the_existing_opens(existing: list[tuple[int, int]], a: int, s: int) -> None:
    assert sharing_conflict(existing, a, s) == any(sharing_conflict([e], a, s) for e in existing)


@given(st.lists(st.tuples(access, st.just(7)), max_size=6), access)
def test_full_sharing_never_conflicts(existing: list[tuple[int, int]], a: int) -> None:
    assert not sharing_conflict(existing, a, 7)


@given(st.lists(st.tuples(access, share), max_size=6), share, share)
def test_more_sharing_never_adds_conflicts(
    existing: list[tuple[int, int]], s: int, extra: int
) -> None:
    for a in (R, W, D, R | W | D):
        if not sharing_conflict(existing, a, s):
            assert not sharing_conflict(existing, a, s | extra)


@given(st.lists(st.tuples(access, share), max_size=6), share)
def test_attribute_only_opens_take_no_part(existing: list[tuple[int, int]], s: int) -> None:
    assert not sharing_conflict(existing, ATTR, s)
    assert sharing_conflict([*existing, (ATTR, 0)], R, s) == sharing_conflict(existing, R, s)


def test_classic_cases() -> None:
    assert sharing_conflict([(R, 1)], W, 7)  # reader did not share write
    assert not sharing_conflict([(R, 3)], W, 3)
    assert sharing_conflict([(R | W, 3)], D, 7)  # delete not shared
    assert sharing_conflict([(R, 7)], R, 0)  # newcomer shares nothing, existing reads
