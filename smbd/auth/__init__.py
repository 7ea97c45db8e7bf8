"""Authentication for SMB: SPNEGO with NTLMv2 (MS-NLMP) on the server side."""
