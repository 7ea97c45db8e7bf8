"""Context managers that run background tasks yield inside a nursery, so an exception from
the caller's ``async with`` body comes back wrapped in an ExceptionGroup (trio's strict
groups).  :func:`unwrap_single` gives the caller its own exception back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def unwrap_single() -> Iterator[None]:
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], BaseExceptionGroup):
            raise group.exceptions[0] from None
        raise
