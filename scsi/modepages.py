"""Mode parameter pages (SPC-4 7.5, SBC-3 6.4).  Filled in below."""

from __future__ import annotations


class ModePages:
    """Current and changeable values of the mode pages of one logical unit."""

    def reset(self) -> None:
        """Back to the saved values (after a LUN reset)."""
