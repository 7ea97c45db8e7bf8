"""Fixtures for the SCSI target tests: a target with a thin and a thick LUN in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scsi import FileBackend, LogicalUnit, Nexus, ScsiResult, Target, TargetPortGroup
from scsi.sense import Status, parse_fixed_sense

IQN = "iqn.2026-11.org.vmstor:unit"
INI_A = Nexus("iqn.1994-05.com.example:a", "iqn.1994-05.com.example:a,i,0x23d000000001", 1, 1)
INI_B = Nexus("iqn.1994-05.com.example:b", "iqn.1994-05.com.example:b,i,0x23d000000002", 1, 1)
INI_A2 = Nexus("iqn.1994-05.com.example:a", "iqn.1994-05.com.example:a,i,0x23d000000001", 2, 2)
BLOCKS = 2048


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    t = Target(IQN, port_groups=[TargetPortGroup(1, [1]), TargetPortGroup(2, [2])])
    thin = FileBackend.create(tmp_path / "thin.img", BLOCKS * 512, block_size=512, thin=True)
    thick = FileBackend.create(tmp_path / "thick.img", 256 * 4096, block_size=4096, thin=False)
    t.add_lun(0, LogicalUnit("thin", thin))
    t.add_lun(1, LogicalUnit("thick", thick))
    yield t
    thin.close()
    thick.close()


async def run(
    t: Target,
    cdb: bytes,
    data_out: bytes | None = None,
    *,
    nexus: Nexus = INI_A,
    lun: int = 0,
    expected_in: int = 1 << 20,
) -> ScsiResult:
    return await t.execute(
        nexus,
        lun,
        cdb,
        memoryview(data_out) if data_out is not None else None,
        expected_in=expected_in,
    )


async def ready(t: Target, nexus: Nexus = INI_A, lun: int = 0) -> None:
    """Consume the unit attentions pending for this I_T_L nexus."""
    for _ in range(16):
        r = await run(t, bytes(6), nexus=nexus, lun=lun)
        if r.status == Status.GOOD:
            return
    raise AssertionError("unit attentions never cleared")


def data(r: ScsiResult) -> bytes:
    assert r.status == Status.GOOD, (r.status, r.sense.hex())
    d = r.data
    if isinstance(d, list):
        return b"".join(bytes(x) for x in d)
    return bytes(d)


def sense(r: ScsiResult) -> tuple[int, int, int]:
    assert r.status == Status.CHECK_CONDITION, r.status
    return parse_fixed_sense(r.sense)
