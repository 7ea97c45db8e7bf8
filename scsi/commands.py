"""Command handlers (SPC-4, SBC-3): filled in next."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cdb import Op
from .nexus import ScsiResult
from .sense import Asc, SenseError, Status

if TYPE_CHECKING:
    from .target import Target

WRITE_OPS = {Op.WRITE_6, Op.WRITE_10, Op.WRITE_12, Op.WRITE_16, Op.WRITE_SAME_10,
             Op.WRITE_SAME_16, Op.COMPARE_AND_WRITE, Op.WRITE_AND_VERIFY_10,
             Op.WRITE_AND_VERIFY_12, Op.WRITE_AND_VERIFY_16, Op.ORWRITE_16,
             Op.VERIFY_10, Op.VERIFY_12, Op.VERIFY_16}
VERIFY_OPS = {Op.VERIFY_10, Op.VERIFY_12, Op.VERIFY_16}


class ReservationConflict(Exception):
    pass


class Context:
    def __init__(self, *args: Any) -> None:
        self.args = args


async def run_no_lu(target: Target, *args: Any) -> ScsiResult:
    raise SenseError.illegal(Asc.LOGICAL_UNIT_NOT_SUPPORTED)


async def dispatch(ctx: Context) -> ScsiResult:
    return ScsiResult(Status.GOOD)
