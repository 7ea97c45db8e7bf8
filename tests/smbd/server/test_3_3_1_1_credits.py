"""[MS-SMB2] 3.3.1.1 / 3.3.5.2.3 the credit window: property tests against a model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbd.server.credits import CreditError, CreditWindow


def test_starts_with_message_id_zero() -> None:
    w = CreditWindow(10)
    with pytest.raises(CreditError):
        w.consume(1, 1)
    w.consume(0, 1)
    assert w.available == 0
    with pytest.raises(CreditError):
        w.consume(0, 1)  # used twice
    assert w.grant(5) == 5
    w.consume(3, 2)  # out of order, multi-credit
    w.consume(1, 2)
    assert w.low == 5
    assert w.available == 1


def test_never_leaves_the_client_without_credits() -> None:
    w = CreditWindow(1)
    w.consume(0, 1)
    assert w.grant(0) == 1
    assert w.available == 1


def test_window_is_bounded() -> None:
    w = CreditWindow(8)
    w.consume(0, 1)
    assert w.grant(100) == 8
    assert w.grant(100) == 0
    w.consume(3, 1)
    assert w.grant(100) == 0  # id 1 and 2 still outstanding: the window cannot slide
    w.consume(1, 2)
    assert w.grant(100) == 3  # ids 4..8 are still held: 5 + 3 = 8


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 64),
    st.lists(
        st.tuples(st.sampled_from(["use", "grant"]), st.integers(0, 80), st.integers(0, 5)),
        max_size=80,
    ),
)
def test_model(max_credits: int, ops: list[tuple[str, int, int]]) -> None:
    w = CreditWindow(max_credits)
    granted = {0}
    used: set[int] = set()
    for op, a, b in ops:
        if op == "grant":
            n = w.grant(b)
            top = max(granted) + 1 if granted else 0
            granted.update(range(top, top + n))
        else:
            charge = max(b, 1)
            ids = set(range(a, a + charge))
            ok = ids <= granted and not ids & used
            try:
                w.consume(a, b)
            except CreditError:
                assert not ok
            else:
                assert ok
                used |= ids
        outstanding = granted - used
        assert w.available == len(outstanding)
        assert w.high - w.low <= max(max_credits, 1) + 1
        assert w.statistics()["out_of_order"] <= max_credits + 1
