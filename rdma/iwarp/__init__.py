"""A userspace iWARP provider: MPA rev 2 (RFC 5044, RFC 6581), DDP (RFC 5041) and RDMAP
(RFC 5040) over TCP, on trio; wire choices follow Linux siw so that a siw peer can talk to it.

Layers: :mod:`.errors` (the ParseError family, carrying the Terminate to send), :mod:`.mpa`
and :mod:`.ddp` (pure codecs), :mod:`.stags` (the STag table), :mod:`.engine` (the sans-IO
endpoint state machine), :mod:`.provider` (the trio driver implementing :mod:`rdma.verbs`).
"""
