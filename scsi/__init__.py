"""SCSI block target (SPC-4 / SBC-3), transport independent.

Transports (iSCSI in ``scsi.iscsi``, the virtual Fibre Channel fabric in
``scsi.fabric``) build a :class:`Target`, add :class:`LogicalUnit` objects over
a :class:`FileBackend`, and call :meth:`Target.execute` for every command with
the command's :class:`Nexus`.
"""

from .alua import AluaState, TargetPortGroup
from .backend import Backend, FileBackend
from .cdb import decode_lun, encode_lun
from .lun import LogicalUnit, LuIdentity
from .nexus import Nexus, ScsiResult
from .sense import Asc, SenseError, SenseKey, Status, build_fixed_sense
from .target import Masking, Target

__all__ = [
    "AluaState",
    "Asc",
    "Backend",
    "FileBackend",
    "LogicalUnit",
    "LuIdentity",
    "Masking",
    "Nexus",
    "ScsiResult",
    "SenseError",
    "SenseKey",
    "Status",
    "Target",
    "TargetPortGroup",
    "build_fixed_sense",
    "decode_lun",
    "encode_lun",
]
