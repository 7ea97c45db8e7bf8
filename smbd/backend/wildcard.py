"""Directory search patterns as Windows matches them ([MS-FSA] 2.1.4.4 FsRtlIsNameInExpression).

Pure. Matching is case-insensitive. Besides ``*`` (any run) and ``?`` (any one character)
a pattern may hold the DOS wildcards clients rewrite ``*.*``-style patterns into:

* ``<`` DOS_STAR: any run that does not go past the name's last period;
* ``>`` DOS_QM: any one character, or nothing when at a period or the end of the name;
* ``"`` DOS_DOT: a period, or nothing at the end of the name.

Implemented as a set-of-positions NFA over the pattern: O(len(name) * len(pattern)), no
backtracking blow-up whatever the client sends.
"""

from __future__ import annotations

__all__ = ["WILDCARDS", "has_wildcards", "match"]

WILDCARDS = frozenset('*?<>"')


def has_wildcards(pattern: str) -> bool:
    return any(ch in WILDCARDS for ch in pattern)


def _closure(states: set[int], pattern: str, name: str, i: int) -> set[int]:
    """Add the pattern positions reachable without consuming ``name[i]``."""
    at_end = i == len(name)
    stack = list(states)
    while stack:
        p = stack.pop()
        if p == len(pattern):
            continue
        ch = pattern[p]
        if (
            ch in "*<" or (ch == ">" and (at_end or name[i] == ".")) or (ch == '"' and at_end)
        ) and p + 1 not in states:
            states.add(p + 1)
            stack.append(p + 1)
    return states


def match(pattern: str, name: str) -> bool:
    """True when ``name`` matches the search ``pattern``."""
    if pattern == "*":
        return True
    if not has_wildcards(pattern):
        return pattern.upper() == name.upper() or pattern.casefold() == name.casefold()
    pat = pattern
    last_dot = name.rfind(".")
    states = _closure({0}, pat, name, 0)
    for i, c in enumerate(name):
        cu = c.upper()
        nxt: set[int] = set()
        for p in states:
            if p == len(pat):
                continue
            ch = pat[p]
            if ch == "*":
                nxt.add(p)
            elif ch == "<":
                if last_dot < 0 or i < last_dot:
                    nxt.add(p)
            elif ch == "?":
                nxt.add(p + 1)
            elif ch == ">":
                if c != ".":
                    nxt.add(p + 1)
            elif ch == '"':
                if c == ".":
                    nxt.add(p + 1)
            elif ch.upper() == cu:
                nxt.add(p + 1)
        if not nxt:
            return False
        states = _closure(nxt, pat, name, i + 1)
    return len(pat) in states
