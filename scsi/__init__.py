"""SCSI block target (SPC-4 / SBC-3), transport independent.

Transports (iSCSI in ``scsi.iscsi``, the virtual Fibre Channel fabric in
``scsi.fabric``) build a :class:`Target`, add :class:`LogicalUnit` objects over
a :class:`FileBackend`, and call :meth:`Target.execute` for every command with
the command's :class:`Nexus`.

The contract with a transport:

- ``Target.data_out_length(cdb, lun)``: bytes of data-out the CDB transfers
  (what to solicit with R2T); raises :class:`SenseError` for a bad CDB.
- ``await Target.execute(nexus, lun, cdb, data_out, expected_in=,
  expected_out=)`` -> :class:`ScsiResult` (status, data-in buffers, 18-byte
  fixed sense).  Never raises for a bad command.  ``expected_out`` is the
  initiator's expected data-out length (COMPARE AND WRITE and WRITE SAME check
  it; pass the EDTL of every write); a data-out shorter than the CDB asks for is
  processed as far as it goes (overflow).
- ``Target.execute_now(nexus, lun, cdb, expected_in=)`` -> :class:`ScsiResult` or
  None: the same command done at once when it needs no waiting (a READ served from
  the page cache); None changes nothing and means "await ``execute``".
- ``Target.max_transfer_bytes``: the largest transfer of one command (VPD B0h).
- Task management: ``abort_task_set(nexus, lun)``, ``lun_reset(lun, nexus)``,
  ``target_reset(nexus)``, ``i_t_nexus_loss(nexus)``.
- LUN masking: ``Target(masking=fn)`` or ``set_masking(fn)`` with
  ``fn(nexus) -> set of LUN ids | None``; after the set changes call
  ``luns_changed(affected)`` to raise REPORTED LUNS DATA HAS CHANGED.
  ``add_lun``/``remove_lun`` do so themselves.
- ALUA: ``set_alua_state(group, state, lun=None)``.
- ``ua_listener(nexus_key, lun, (asc, ascq))`` hears each unit attention queued
  (for iSCSI Async Messages); ``on_state_change(lun)`` hears persistent
  reservation changes (store ``LogicalUnit.to_dict()``).
- LUN field coding: :func:`encode_lun` / :func:`decode_lun` (SAM-5 4.7).
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
