"""Checks every WIRE parser gets: fuzzing, truncation and trailing data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from smbd.wire.errors import ParseError


def parses_or_parse_error(parse: Callable[[bytes], Any], data: bytes) -> None:
    """The fuzz invariant: a parser returns, or raises ParseError, nothing else."""
    try:
        parse(data)
    except ParseError as e:
        assert isinstance(e.status, int) and e.status & 0xC0000000


def check_truncation_and_trailing(
    parse: Callable[[bytes], Any], valid: bytes, *, fixed: int, trailing_ok: bool = True
) -> None:
    """Every prefix shorter than ``fixed`` raises ParseError; every prefix parses or raises
    ParseError; ``valid`` with trailing bytes (compound padding) parses the same."""
    for n in range(len(valid)):
        if n < fixed:
            try:
                parse(valid[:n])
            except ParseError:
                continue
            raise AssertionError(f"prefix of {n} bytes parsed")
        parses_or_parse_error(parse, valid[:n])
    if trailing_ok:
        assert parse(valid + b"\xaa" * 13) == parse(valid)


def fuzz(parse: Callable[[bytes], Any], seed: bytes) -> Callable[[], None]:
    """A hypothesis test: random bytes, and the seed vector with random bytes spliced in."""

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=512),
            st.tuples(st.integers(0, len(seed)), st.binary(min_size=1, max_size=8)).map(
                lambda t: seed[: t[0]] + t[1] + seed[t[0] + len(t[1]) :]
            ),
        )
    )
    def run(data: bytes) -> None:
        parses_or_parse_error(parse, data)

    return run
