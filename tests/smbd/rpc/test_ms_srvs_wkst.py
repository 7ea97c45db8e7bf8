"""[MS-SRVS] 3.1.4.8 NetrShareEnum, 3.1.4.10 NetrShareGetInfo, 3.1.4.17 NetrServerGetInfo
and [MS-WKST] 3.2.4.1 NetrWkstaGetInfo. Requests are built with impacket's independent NDR
implementation and answers decoded with it; a few answers are checked byte for byte."""

from __future__ import annotations

from typing import Any

import pytest
from impacket.dcerpc.v5 import srvs, wkst
from impacket.dcerpc.v5.ndr import NULL

from smbd.rpc import srvsvc, wkssvc
from smbd.rpc.ndr import NdrError, NdrReader
from smbd.rpc.pipe import ServerEnv, ShareEntry

ENV = ServerEnv(
    "VMSTOR",
    (
        ShareEntry("vms", srvsvc.STYPE_DISKTREE, "VM disks", "C:\\srv\\vms", 0),
        ShareEntry("secure", srvsvc.STYPE_DISKTREE, "", "C:\\srv\\secure", 0x8000),
        ShareEntry("IPC$", srvsvc.STYPE_IPC | srvsvc.STYPE_SPECIAL, "Remote IPC", "", 0x30),
    ),
    comment="vmstor",
)


def call(op: Any, request: Any, response_cls: Any) -> Any:
    out = op(NdrReader(request.getData()), ENV)
    return response_cls(out)


def share_enum(level: int) -> Any:
    req = srvs.NetrShareEnum()
    req["ServerName"] = "\\\\VMSTOR\x00"
    req["InfoStruct"]["Level"] = level
    req["InfoStruct"]["ShareInfo"]["tag"] = level
    req["InfoStruct"]["ShareInfo"][f"Level{level}"]["Buffer"] = NULL
    req["PreferedMaximumLength"] = 0xFFFFFFFF
    req["ResumeHandle"] = 0
    return call(srvsvc.net_share_enum, req, srvs.NetrShareEnumResponse)


@pytest.mark.parametrize("level", [0, 1, 2, 501, 502])
def test_3_1_4_8_net_share_enum(level: int) -> None:
    r = share_enum(level)
    assert r["ErrorCode"] == 0
    assert r["TotalEntries"] == 3
    entries = r["InfoStruct"]["ShareInfo"][f"Level{level}"]["Buffer"]
    p = f"shi{level}_"
    assert [e[p + "netname"] for e in entries] == ["vms\x00", "secure\x00", "IPC$\x00"]
    if level >= 1:
        assert [e[p + "type"] for e in entries] == [0, 0, 0x80000003]
        assert [e[p + "remark"] for e in entries] == ["VM disks\x00", "\x00", "Remote IPC\x00"]
    if level == 502:
        assert entries[0]["shi502_path"] == "C:\\srv\\vms\x00"
        assert not entries[0]["shi502_security_descriptor"]
    if level == 2:
        assert [e["shi2_path"] for e in entries] == [
            "C:\\srv\\vms\x00",
            "C:\\srv\\secure\x00",
            "\x00",
        ]
        assert entries[0]["shi2_max_uses"] == 0xFFFFFFFF
        assert not entries[0]["shi2_passwd"]  # a NULL pointer
    if level == 501:
        assert [e["shi501_flags"] for e in entries] == [0, 0x8000, 0x30]


def test_3_1_4_8_net_share_enum_unknown_level() -> None:
    req = srvs.NetrShareEnum()
    req["ServerName"] = NULL
    req["InfoStruct"]["Level"] = 503
    req["InfoStruct"]["ShareInfo"]["tag"] = 503
    req["InfoStruct"]["ShareInfo"]["Level503"]["Buffer"] = NULL
    req["PreferedMaximumLength"] = 0xFFFFFFFF
    req["ResumeHandle"] = NULL
    out = srvsvc.net_share_enum(NdrReader(req.getData()), ENV)
    assert out == bytes.fromhex(
        "f7010000"  # Level 503
        "f7010000"  # union arm 503
        "00000000"  # no container
        "00000000"  # TotalEntries
        "00000000"  # ResumeHandle NULL (the client sent none)
        "7c000000"  # ERROR_INVALID_LEVEL
    )


def test_3_1_4_8_net_share_enum_mismatched_union_arm() -> None:
    stub = bytes.fromhex("00000000010000000200000000000000ffffffff00000000")
    with pytest.raises(NdrError, match="union arm"):
        srvsvc.net_share_enum(NdrReader(stub), ENV)


def share_get_info(name: str, level: int) -> bytes:
    req = srvs.NetrShareGetInfo()
    req["ServerName"] = NULL
    req["NetName"] = name + "\x00"
    req["Level"] = level
    return srvsvc.net_share_get_info(NdrReader(req.getData()), ENV)


def test_3_1_4_10_net_share_get_info_level_1_bytes() -> None:
    assert share_get_info("VMS", 1) == bytes.fromhex(
        "01000000"  # union arm 1
        "00000200"  # SHARE_INFO_1*
        "04000200"  # shi1_netname*
        "00000000"  # shi1_type STYPE_DISKTREE
        "08000200"  # shi1_remark*
        "04000000"
        "00000000"
        "04000000"
        "76006d0073000000"  # "vms"
        "09000000"
        "00000000"
        "09000000"  # "VM disks"
        "56004d0020006400690073006b0073000000"
        "0000"
        "00000000"  # ERROR_SUCCESS
    )


def test_3_1_4_10_net_share_get_info_level_1005_bytes() -> None:
    assert share_get_info("secure", 1005) == bytes.fromhex(
        "ed030000"  # union arm 1005
        "00000200"  # SHARE_INFO_1005*
        "00800000"  # shi1005_flags SHI1005_FLAGS_ENCRYPT_DATA
        "00000000"
    )


@pytest.mark.parametrize("level", [0, 1, 2, 501, 502, 1005])
def test_3_1_4_10_net_share_get_info_levels(level: int) -> None:
    r = srvs.NetrShareGetInfoResponse(share_get_info("IPC$", level))
    assert r["ErrorCode"] == 0
    info = r["InfoStruct"][f"ShareInfo{level}"]
    if level == 1005:
        assert info["shi1005_flags"] == 0x30
    else:
        assert info[f"shi{level}_netname"] == "IPC$\x00"


def test_3_1_4_10_net_share_get_info_errors() -> None:
    assert share_get_info("nope", 1)[-4:] == (2310).to_bytes(4, "little")
    assert share_get_info("nope", 1)[4:8] == bytes(4)  # no SHARE_INFO
    assert share_get_info("vms", 3)[-4:] == (124).to_bytes(4, "little")


@pytest.mark.parametrize("level", [100, 101, 102])
def test_3_1_4_17_net_server_get_info(level: int) -> None:
    req = srvs.NetrServerGetInfo()
    req["ServerName"] = "\\\\VMSTOR\x00"
    req["Level"] = level
    r = call(srvsvc.net_server_get_info, req, srvs.NetrServerGetInfoResponse)
    assert r["ErrorCode"] == 0
    info = r["InfoStruct"][f"ServerInfo{level}"]
    assert info[f"sv{level}_platform_id"] == 500
    assert info[f"sv{level}_name"] == "VMSTOR\x00"
    if level >= 101:
        assert info[f"sv{level}_type"] == 0x9003
        assert info[f"sv{level}_comment"] == "vmstor\x00"
        assert (info[f"sv{level}_version_major"], info[f"sv{level}_version_minor"]) == (10, 0)


def test_3_1_4_17_net_server_get_info_level_100_bytes() -> None:
    stub = bytes.fromhex("0000000064000000")  # ServerName NULL, Level 100
    assert srvsvc.net_server_get_info(NdrReader(stub), ENV) == bytes.fromhex(
        "64000000"  # union arm 100
        "00000200"  # SERVER_INFO_100*
        "f4010000"  # sv100_platform_id 500
        "04000200"  # sv100_name*
        "07000000"
        "00000000"
        "07000000"
        "56004d00530054004f0052000000"
        "0000"  # "VMSTOR"
        "00000000"
    )


def test_ms_wkst_3_2_4_1_net_wksta_get_info_100() -> None:
    req = wkst.NetrWkstaGetInfo()
    req["ServerName"] = "\\\\VMSTOR\x00"
    req["Level"] = 100
    out = wkssvc.net_wksta_get_info(NdrReader(req.getData()), ENV)
    r = wkst.NetrWkstaGetInfoResponse(out)
    info = r["WkstaInfo"]["WkstaInfo100"]
    assert info["wki100_platform_id"] == 500
    assert info["wki100_computername"] == "VMSTOR\x00"
    assert info["wki100_langroup"] == "WORKGROUP\x00"
    assert r["ErrorCode"] == 0
    stub = bytes.fromhex("00000000f6010000")  # level 502: not served
    assert wkssvc.net_wksta_get_info(NdrReader(stub), ENV) == bytes.fromhex(
        "f6010000000000007c000000"
    )


@pytest.mark.parametrize("level", [101, 102])
def test_ms_wkst_3_2_4_1_net_wksta_get_info_101_102(level: int) -> None:
    req = wkst.NetrWkstaGetInfo()
    req["ServerName"] = NULL
    req["Level"] = level
    r = wkst.NetrWkstaGetInfoResponse(wkssvc.net_wksta_get_info(NdrReader(req.getData()), ENV))
    info = r["WkstaInfo"][f"WkstaInfo{level}"]
    assert info[f"wki{level}_computername"] == "VMSTOR\x00"
    assert info[f"wki{level}_lanroot"] == "C:\\\x00"
    assert r["ErrorCode"] == 0


def test_3_1_4_9_net_share_enum_sticky_leaves_out_special_shares() -> None:
    req = srvs.NetrShareEnum()  # NetrShareEnumSticky takes the same parameters
    req["ServerName"] = NULL
    req["InfoStruct"]["Level"] = 1
    req["InfoStruct"]["ShareInfo"]["tag"] = 1
    req["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"] = NULL
    req["PreferedMaximumLength"] = 0xFFFFFFFF
    req["ResumeHandle"] = 0
    out = srvsvc.OPERATIONS[36](NdrReader(req.getData()), ENV)
    r = srvs.NetrShareEnumResponse(out)
    names = [e["shi1_netname"] for e in r["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"]]
    assert names == ["vms\x00", "secure\x00"]
    assert r["TotalEntries"] == 2


def test_3_1_4_16_net_share_check() -> None:
    for device, expected in (
        ("C:\\srv\\vms", (0, 0)),
        ("c:\\SRV\\VMS\\", (0, 0)),
        ("D:\\", (0, 2311)),
    ):
        req = srvs.NetrShareCheck()
        req["ServerName"] = NULL
        req["Device"] = device + "\x00"
        r = srvs.NetrShareCheckResponse(srvsvc.net_share_check(NdrReader(req.getData()), ENV))
        assert (r["Type"], r["ErrorCode"]) == expected


def test_operation_tables() -> None:
    assert set(srvsvc.INTERFACE.operations) == {15, 16, 20, 21, 36}
    assert set(wkssvc.INTERFACE.operations) == {0}
    assert str(srvsvc.SYNTAX) == "4b324fc8-1670-01d3-1278-5a47bf6ee188 v3.0"
    assert str(wkssvc.SYNTAX) == "6bffd098-a112-3610-9833-46c3f87e345a v1.0"
