"""Connection marks shared by the kernel rules and the NFQUEUE verdict handler."""

INSPECT = 0x1  # the connection waits for a verdict from the first bytes (NFQUEUE)
ALLOW = 0x2  # decided: let the rest of the connection through in the kernel
BLOCK = 0x4  # decided: reset (TCP) or drop every further packet
ALL = INSPECT | ALLOW | BLOCK
NO_DATA = 0x10  # packet mark only: a segment with no payload that the verdict handler does not need
