"""PDUs of a real exchange: ``smbclient -L`` (Samba 4.17 client) against Samba 4.17 smbd on
loopback, captured with tshark (FSCTL_PIPE_TRANSCEIVE input and output data), laid out one
field per line."""

from __future__ import annotations

# [C706] 12.6.4.3 bind: srvsvc v3.0 over NDR v2, one context
SMBCLIENT_BIND = bytes.fromhex(
    "05"  # rpc_vers
    "00"  # rpc_vers_minor
    "0b"  # PTYPE bind
    "03"  # pfc_flags FIRST_FRAG | LAST_FRAG
    "10000000"  # packed_drep: little-endian, ASCII, IEEE
    "4800"  # frag_length 72
    "0000"  # auth_length
    "01000000"  # call_id 1
    "b810"  # max_xmit_frag 4280
    "b810"  # max_recv_frag 4280
    "00000000"  # assoc_group_id
    "01"  # n_context_elem
    "000000"  # reserved
    "0000"  # p_cont_id 0
    "01"  # n_transfer_syn
    "00"  # reserved
    "c84f324b7016d30112785a47bf6ee188"  # abstract syntax 4b324fc8-1670-01d3-1278-5a47bf6ee188
    "0300"  # if_version major 3
    "0000"  # minor 0
    "045d888aeb1cc9119fe808002b104860"  # transfer syntax 8a885d04-1ceb-11c9-9fe8-08002b104860
    "02000000"  # version 2
)

# [C706] 12.6.4.4 bind_ack as Samba sends it (assoc_group 0xb60d, "\pipe\srvsvc")
SAMBA_BIND_ACK = bytes.fromhex(
    "05000c03100000004400000001000000"  # header: bind_ack, frag_length 68, call_id 1
    "b810"  # max_xmit_frag 4280
    "b810"  # max_recv_frag 4280
    "0db60000"  # assoc_group_id
    "0d00"  # sec_addr length 13 (with the NUL)
    "5c706970655c73727673766300"  # "\pipe\srvsvc\0"
    "00"  # pad to 4
    "01000000"  # n_results 1, reserved
    "0000"  # result acceptance
    "0000"  # reason
    "045d888aeb1cc9119fe808002b10486002000000"  # NDR v2
)

# [C706] 12.6.4.9 request: NetrShareEnum (opnum 15), level 1
SMBCLIENT_SHARE_ENUM = bytes.fromhex(
    "0500000310000000"  # header: request, FIRST|LAST
    "5c00"  # frag_length 92
    "0000"  # auth_length
    "02000000"  # call_id 2
    "44000000"  # alloc_hint 68
    "0000"  # p_cont_id 0
    "0f00"  # opnum 15
    # stub
    "00000200"  # ServerName: referent id
    "0a000000"
    "00000000"
    "0a000000"  # max_count 10, offset 0, actual_count 10
    "3100320037002e0030002e0030002e0031000000"  # "127.0.0.1\0"
    "01000000"  # InfoStruct.Level 1
    "01000000"  # union arm 1
    "04000200"  # Level1 container: referent id
    "00000000"  # EntriesRead 0
    "00000000"  # Buffer NULL
    "ffffffff"  # PreferedMaximumLength
    "08000200"  # ResumeHandle: referent id
    "00000000"  # *ResumeHandle 0
)

# [C706] 12.6.4.10 response from Samba: shares "share", "secure" (no comments) and IPC$
SAMBA_SHARE_ENUM_RESPONSE = bytes.fromhex(
    "0500020310000000"  # header: response, FIRST|LAST
    "1401"  # frag_length 276
    "0000"  # auth_length
    "02000000"  # call_id 2
    "fc000000"  # alloc_hint 252
    "0000"  # p_cont_id
    "00"  # cancel_count
    "00"  # reserved
    # stub
    "01000000"  # Level 1
    "01000000"  # union arm 1
    "0c000200"  # container referent
    "03000000"  # EntriesRead 3
    "10000200"  # Buffer referent
    "03000000"  # max_count 3
    "14000200"
    "00000000"
    "18000200"  # share: netname*, STYPE_DISKTREE, remark*
    "1c000200"
    "00000000"
    "20000200"  # secure
    "24000200"
    "03000080"
    "28000200"  # IPC$: STYPE_IPC | STYPE_SPECIAL
    "06000000"
    "00000000"
    "06000000"
    "730068006100720065000000"  # "share"
    "01000000"
    "00000000"
    "01000000"
    "00000000"  # ""
    "07000000"
    "00000000"
    "07000000"
    "7300650063007500720065000000"
    "0000"  # "secure", pad
    "01000000"
    "00000000"
    "01000000"
    "00000000"  # ""
    "05000000"
    "00000000"
    "05000000"
    "49005000430024000000"
    "0000"  # "IPC$", pad
    "1c000000"
    "00000000"
    "1c000000"  # "IPC Service (interop samba)"
    "490050004300200053006500720076006900630065002000280069006e007400650072006f007000"
    "2000730061006d006200610029000000"
    "03000000"  # TotalEntries 3
    "2c000200"  # ResumeHandle referent
    "00000000"  # *ResumeHandle 0
    "00000000"  # WERR_OK
)
