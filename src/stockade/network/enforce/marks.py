"""Connection and packet marks shared by the kernel rules and the NFQUEUE verdict handler.

Only these bits are ever set or tested; every other bit of a mark (kube-proxy's 0x4000 and 0x8000,
Calico's upper half, ...) is left as it was."""

INSPECT = 0x1  # ct mark: the connection waits for a verdict from the first bytes (NFQUEUE)
ALLOW = 0x2  # ct and packet mark: decided; the rest of the connection stays in the kernel
BLOCK = 0x4  # ct and packet mark: decided; reset (TCP) or drop every further packet
HEADS = 0x8  # ct mark: the enforcer also wants this connection's FINs and RSTs (it records or
# learns the connection: deny and implicit rules); others only send SYNs and segments with data
ALL = INSPECT | ALLOW | BLOCK
NO_DATA = 0x10  # packet mark only: a segment with no payload that the verdict handler does not need
QUIET = (
    0x20  # packet mark only, with BLOCK: drop without a reset (the enforcer answered the client)
)
