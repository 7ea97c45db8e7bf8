"""Persistent reservations (SPC-4 5.9).  Filled in below."""

from __future__ import annotations


class PersistentReservations:
    """Registrations and the persistent reservation of one logical unit."""

    def to_dict(self) -> dict[str, object]:
        return {}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> PersistentReservations:
        return cls()

    registrations: dict[tuple[str, int], int] = {}
