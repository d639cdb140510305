"""Connection and packet marks shared by the kernel rules and the NFQUEUE verdict handler.

Only these bits are ever set or tested; every other bit of a mark (kube-proxy's 0x4000 and 0x8000,
Calico's upper half, ...) is left as it was."""

# connection (ct) marks
INSPECT = 0x1  # the connection waits for a verdict from the first bytes (NFQUEUE)
ALLOW = 0x2  # decided (also a packet mark from the handler): the rest stays in the kernel
BLOCK = 0x4  # decided (also a packet mark from the handler): reset (TCP) or drop every packet
HEADS = 0x8  # the enforcer also wants the SYN, FINs and RSTs (it records or learns the
# connection: deny and implicit rules); the others only send segments with data
SEEN = 0x40  # a packet of this connection has gone to the enforcer (set by the kernel)
RECHECK = 0x10  # classified again after a policy change (see GENERATION)
# The verdict is final but for DLP (the enforcer said so with SCAN): a segment the classifier
# marked CLEAN passes at once, a copy going to the enforcer (clean.py); with SCANNING_SHORT the
# DLP also has 9-digit sensors, and only CLEAN_SHORT segments pass so.
SCANNING = 0x20
SCANNING_SHORT = 0x80
ALL = INSPECT | ALLOW | BLOCK
# The policy generation an ALLOW or INSPECT decision was made under (1-63, cycling; bits kube-proxy
# and Calico leave alone): after a policy change, a connection decided under an earlier one is
# classified again by the new rules instead of keeping its old decision. BLOCK stays for good.
GENERATION = 0x3F00
GENERATIONS = GENERATION >> 8  # 63
# what a new classification clears: the decision, its generation, HEADS and SEEN
DECISION = ALL | HEADS | SEEN | RECHECK | SCANNING | SCANNING_SHORT | GENERATION


def generation(n: int) -> int:
    """The ct mark bits of policy generation ``n`` (1-63)."""
    if not 1 <= n <= GENERATIONS:
        raise ValueError(f"generation {n} is not in 1-{GENERATIONS}")
    return n << 8


# packet marks
NO_DATA = 0x10  # a segment with no payload that the verdict handler does not need
QUIET = 0x20  # with BLOCK: drop without a reset (the enforcer answered the client)
FIRST = 0x40  # the first packet of its connection the enforcer gets: the flow starts afresh
REPLY = 0x80  # the packet goes from the connection's responder to its initiator
# set by the tc classifier (clean.bpf.c) on a segment no covered sensor could report anything in
CLEAN = 0x100  # no run of clean.RUN_LONG digits, no trigger so far in its direction
CLEAN_SHORT = 0x200  # and no run of clean.RUN_SHORT
# set by the tc classifier on the first data segment of an IPv4 client that opens with an HTTP/1
# request line (clean.http_head): between ends the enforcer would answer alone, it passes at once
HEAD = 0x1000
# from the verdict handler: the connection's verdict is final but for DLP (ct SCANNING, and
# SCANNING_SHORT with SCAN_SHORT)
SCAN = 0x400
SCAN_SHORT = 0x800
