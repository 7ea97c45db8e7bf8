"""smbd: an SMB 2/3 file server (MS-SMB2) on trio."""
