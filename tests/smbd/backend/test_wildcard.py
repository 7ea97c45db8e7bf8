"""[MS-FSA] 2.1.4.4 FsRtlIsNameInExpression: *, ?, and the DOS wildcards < > "."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as stt

from smbd.backend.wildcard import match


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "anything.txt", True),
        ("*", "", True),
        ("*.txt", "a.TXT", True),
        ("*.txt", "a.txt.bak", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("FOO.TXT", "foo.txt", True),
        ("foo", "foobar", False),
        # DOS_STAR: up to the last period
        ("<.txt", "a.b.txt", True),
        ("<", "noext", True),
        ("<.", "noext", False),
        ('<"*', "a.b", True),
        # DOS_QM: one char, or nothing at a period / the end
        (">>>", "ab", True),
        (">>>.txt", "ab.txt", True),
        (">>>.txt", "abcd.txt", False),
        ("a>", "a", True),
        # DOS_DOT: a period or nothing at the end (the rewrite of "*.")
        ('<"*', "noext", True),
        ('a"', "a", True),
        ('a"', "a.", True),
        ('a"b', "ab", False),
        ("*.*", "noext", False),
        ("*.*", "a.b", True),
    ],
)
def test_match(pattern: str, name: str, expected: bool) -> None:
    assert match(pattern, name) is expected


@given(
    stt.text(alphabet="ab.*?", max_size=8),
    stt.text(alphabet="abAB.", max_size=10),
)
def test_star_and_qm_agree_with_regex(pattern: str, name: str) -> None:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    assert match(pattern, name) == bool(re.fullmatch(rx, name, re.IGNORECASE | re.DOTALL))


@given(stt.text(alphabet='a.*?<>"', max_size=30), stt.text(alphabet="a.", max_size=60))
def test_never_blows_up(pattern: str, name: str) -> None:
    assert match(pattern, name) in (True, False)
