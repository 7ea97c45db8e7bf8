"""The credit window of one connection ([MS-SMB2] 3.3.1.1, 3.3.5.2.3, 3.3.1.2).

The client may use a MessageId only once and only inside the window the server granted.
The window is ``[low, high)``: ``low`` is the smallest id not yet used, ``high`` one past
the largest id granted; ids inside it that were used out of order sit in ``_used`` until
``low`` catches up. Memory is bounded by ``max_credits``.
"""

from __future__ import annotations


class CreditError(Exception):
    """A MessageId outside the window or used twice: the connection must be dropped."""


class CreditWindow:
    __slots__ = ("_used", "high", "low", "max_credits", "total_granted")

    def __init__(self, max_credits: int = 8192) -> None:
        if max_credits < 1:
            raise ValueError("max_credits must be at least 1")
        self.max_credits = max_credits
        self.low = 0
        self.high = 1  # MessageId 0 (NEGOTIATE) is granted implicitly
        self._used: set[int] = set()
        self.total_granted = 1

    @property
    def available(self) -> int:
        """Credits the client holds: granted ids not used yet."""
        return self.high - self.low - len(self._used)

    def consume(self, message_id: int, charge: int) -> None:
        """Take ``charge`` (>= 1) consecutive ids starting at ``message_id``."""
        if charge < 1:
            charge = 1
        end = message_id + charge
        if message_id < self.low or end > self.high:
            raise CreditError(
                f"MessageId {message_id} (charge {charge}) outside window [{self.low}, {self.high})"
            )
        used = self._used
        for mid in range(message_id, end):
            if mid in used:
                raise CreditError(f"MessageId {mid} used twice")
        if message_id == self.low:
            self.low = end
            while self.low in used:
                used.discard(self.low)
                self.low += 1
        else:
            used.update(range(message_id, end))

    def grant(self, requested: int, charge: int = 1) -> int:
        """Credits to grant in a response: the charge the request spent back, plus what
        the client asked for beyond it, within ``max_credits`` (Windows grants a client
        asking for 64K its whole window at once); never leaving the client at zero
        ([MS-SMB2] 3.3.1.2)."""
        want = max(charge, requested, 1)
        room = self.max_credits - (self.high - self.low)
        grant = min(want, max(room, 0))
        if grant == 0 and self.available == 0:
            grant = 1  # never leave the client without a credit
        self.high += grant
        self.total_granted += grant
        return grant

    def statistics(self) -> dict[str, int]:
        return {
            "low": self.low,
            "high": self.high,
            "available": self.available,
            "out_of_order": len(self._used),
            "granted": self.total_granted,
        }
