"""The virtual Fibre Channel fabric model (Hyper-V vFC semantics; san.md 1.1, 1.5)."""

from __future__ import annotations

import pytest

from scsi.fabric.model import (
    Fabric,
    FabricError,
    format_wwn,
    initiator_name,
    parse_wwn,
    wwpn_of,
)


def fabric() -> Fabric:
    f = Fabric()
    f.create_vsan("fabA")
    f.create_vsan("fabB", [2])
    return f


def test_wwns_come_from_the_c003ff_pool_in_naa_form() -> None:
    f = fabric()
    h = f.add_vhba("vm1", "fabA")
    assert [format_wwn(w) for w in (h.wwnn_a, h.wwpn_a, h.wwnn_b, h.wwpn_b)] == [
        "c0:03:ff:00:00:00:00:01",
        "c0:03:ff:00:00:00:00:02",
        "c0:03:ff:00:00:00:00:03",
        "c0:03:ff:00:00:00:00:04",
    ]
    assert initiator_name(h.wwpn_a) == "naa.c003ff0000000002"
    assert wwpn_of("naa.c003ff0000000002") == h.wwpn_a
    assert wwpn_of("iqn.2007-10.x:y") is None
    assert parse_wwn("C0:03:FF:00:00:00:00:02") == h.wwpn_a


def test_at_most_four_vhbas_per_vm() -> None:
    f = fabric()
    for _ in range(4):
        f.add_vhba("vm1", "fabA")
    with pytest.raises(FabricError):
        f.add_vhba("vm1", "fabA")


def test_map_masks_and_zones_both_sets_alike() -> None:
    f = fabric()
    h = f.add_vhba("vm1", "fabA")
    f.add_vhba("vm2", "fabA")
    assert not f.authorize(initiator_name(h.wwpn_a), 1)
    f.map_lun(3, "vm1")
    for w in h.wwpns:
        assert f.authorize(initiator_name(w), 1)
        assert f.visible_luns(initiator_name(w)) == {3}
    other = f.vhbas["vm2"][0]
    assert not f.authorize(initiator_name(other.wwpn_a), 1)
    assert f.visible_luns(initiator_name(other.wwpn_a)) == set()
    assert f.visible_luns("iqn.unknown") == set()


def test_vsan_limits_the_target_ports() -> None:
    f = fabric()
    h = f.add_vhba("vm1", "fabB")
    f.map_lun(0, "vm1")
    assert f.authorize(initiator_name(h.wwpn_b), 2)
    assert not f.authorize(initiator_name(h.wwpn_b), 1)


def test_switching_the_active_set_keeps_the_luns() -> None:
    f = fabric()
    h = f.add_vhba("vm1", "fabA")
    f.map_lun(0, "vm1")
    f.switch_active("vm1")
    assert h.active == "B" and h.active_wwpn == h.wwpn_b
    assert f.visible_luns(initiator_name(h.active_wwpn)) == {0}


def test_unmap_and_zone_commands() -> None:
    f = fabric()
    h = f.add_vhba("vm1", "fabA")
    f.map_lun(0, "vm1")
    f.unmap_lun(0, "vm1")
    assert f.visible_luns(initiator_name(h.wwpn_a)) == set()
    with pytest.raises(FabricError):
        f.unmap_lun(0, "vm1")
    f.add_zone("z", "fabA", [h.wwpn_a], [1])
    assert f.authorize(initiator_name(h.wwpn_a), 1)
    f.del_zone("vm1-fabA")
    f.del_zone("z", [h.wwpn_a])
    assert not f.authorize(initiator_name(h.wwpn_a), 1)


def test_persistence_round_trip() -> None:
    f = fabric()
    f.add_vhba("vm1", "fabA")
    f.map_lun(5, "vm1")
    f.open_initiators.add("iqn.host")
    g = Fabric.from_dict(f.to_dict())
    assert g.to_dict() == f.to_dict()
    assert g.visible_luns("iqn.host") is None


def test_bad_names_and_unknown_vsan() -> None:
    f = fabric()
    with pytest.raises(FabricError):
        f.add_vhba("bad name", "fabA")
    with pytest.raises(FabricError):
        f.add_vhba("vm", "nope")
    f.add_vhba("vm", "fabA")
    with pytest.raises(FabricError):
        f.delete_vsan("fabA")
