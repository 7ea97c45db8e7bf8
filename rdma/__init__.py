"""RDMA transport for vmstor: the verbs abstraction, its providers (userspace iWARP,
pyverbs) and SMB Direct."""
