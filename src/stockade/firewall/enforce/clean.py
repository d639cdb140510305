"""Clean segments: what the kernel may let pass without the enforcer, and the reference of it.

With DLP on a group, every data segment of its connections within the inspected depth used to
wait for a trip to user space (about 70 µs each on a 2-core node), even after the connection's
verdict was final and only the sensors still read the bytes. A tc classifier on the node's
interfaces (``clean.bpf.c``, attached by :mod:`.tcfilter`) now looks at each TCP segment first and
marks it CLEAN when no built-in sensor the predicate covers could report anything in it; the
rules (nft.py) let a CLEAN segment of such a connection pass at once and copy it to the enforcer
(NFLOG), which reads it as it reads a queued one, so events, streams and the HTTP framing stay
whole. A segment that is not CLEAN waits for its verdict as before: a card is never let through
by this path, only its harmless parts.

The predicate, per direction of a connection, in sequence order (the C program follows it byte
for byte; :class:`Direction` is the reference the tests compare it with on real packets):

- a *run*: card characters (:data:`CARD_BYTES`: digits and the separators a card, an SSN or a
  telephone number is written with), followed across segments, and the digits in it counted. A
  segment in which a run reaches :data:`RUN_LONG` digits is not CLEAN; one in which it reaches
  :data:`RUN_SHORT` is not CLEAN_SHORT. A card has 12 digits at least, a NANP telephone number
  10, a US SSN 9. (Digits, not characters: an address such as ``Host: 10.77.0.11`` is no run
  of 9, while ``192.168.100.200`` is one of 12.)
- a *trigger*: a byte of :data:`TRIGGER_BYTES` ('%', '+', a backslash, '@', NUL) or one of
  :data:`TRIGGER_WORDS` (lowercased, followed across segments). After one, no segment of the
  direction is CLEAN again: the HTTP decoding (triggers.py) may turn what follows into text the
  sensors read, and e-mail addresses and E.164 numbers start there;
- order: a segment that does not start where the last one ended is not CLEAN; after a gap or an
  overlap the direction never is again (a plain retransmission changes nothing). A direction the
  classifier did not see open (its SYN) never is.

Which connections may use it is the verdict's to say (:func:`predicate_for`): those whose verdict
is final and whose remaining checks are DLP sensors the predicate covers.

The classifier also marks a connection's *head* (HEAD): the first data segment of an IPv4
client's direction (opened by a SYN without ACK), carrying ACK and no FIN or RST, that opens with
an HTTP/1 request line exactly as the compiled loop recognises one (:func:`http_head`, the same
test as fastpath_own.c's). Between two ends the enforcer has already said it would answer such a
connection alone (allowed for HTTP, nothing to record, DLP covered here or no DLP: see
``Inspector.fast_bits``), the rules let a head pass in the kernel at once (with a copy, when it is
also CLEAN and the sensors need it) instead of a trip to user space (nft.py's ``own`` sets).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from stockade.network.protocols.http1 import METHODS

SCAN_MAX = 2047  # a longer segment (a GSO super-packet) is never CLEAN (clean.bpf.c)
RUN_LONG = 12  # digits in a run of card characters: a card has 12 to 19
RUN_SHORT = 9  # a US SSN has 9 digits (a NANP telephone number 10)
DIGITS = b"0123456789"
# Separators inside a number as the sensors (and the masking gate) read them: space, dash, dot,
# the no-break space (U+00A0: the byte A0, and C2 A0 in UTF-8), a NANP area code's brackets.
CARD_BYTES = DIGITS + b" -.()\xa0\xc2"
TRIGGER_BYTES = b"%+\\@\x00"
# Lowercased, at most 8 bytes each (the classifier keeps an 8-byte window): each is a part of a
# trigger of triggers.TRIGGERS (content-encoding, transfer-encoding, x-www-form-urlencoded,
# multipart/, websocket, HTTP/2's preface and h2c), so a direction without any has none of those.
TRIGGER_WORDS = (
    b"ent-enco",
    b"fer-enco",
    b"urlencod",
    b"ultipart",
    b"websocke",
    b"pri * h",
    b"h2c",
)

# The built-in sensors the predicate covers, and the run length each needs (dlp/sensors.py).
COVERED = {
    "dlp.payment_card": RUN_LONG,
    "dlp.phone": RUN_SHORT,  # NANP: 10 digits; E.164 starts with '+', a trigger
    "dlp.email": RUN_LONG,  # '@' is a trigger: no run needed
    "dlp.us_ssn": RUN_SHORT,
}


# Trigger words are found through two bitmaps (a Bloom filter): a window's last 3, 7 and 8 bytes
# (the lengths of TRIGGER_WORDS) are hashed twice; both bits set, for one of the lengths, is a
# word. A few loads a byte in the classifier instead of one 8-byte comparison per word. Text
# whose bits are set by chance (about 3 in a million bytes) is taken for a word: its direction
# waits for user space, never the other way round, and the tests check common header text.
WORD_LENGTHS = (3, 7, 8)
BITMAP_LOG2 = 14
WORD_HASH_MULS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F)  # Fibonacci; a 64-bit prime (xxHash)


def _word_hashes(window: int, length: int) -> tuple[int, int]:
    """The two bitmap bits of the last ``length`` bytes of ``window`` (8 bytes, big-endian)."""
    part = window & ((1 << (8 * length)) - 1)
    return tuple(  # type: ignore[return-value]
        ((part * m) & 0xFFFFFFFFFFFFFFFF) >> (64 - BITMAP_LOG2) for m in WORD_HASH_MULS
    )


def _bitmaps() -> tuple[bytearray, bytearray]:
    maps = (bytearray(1 << (BITMAP_LOG2 - 3)), bytearray(1 << (BITMAP_LOG2 - 3)))
    for w in TRIGGER_WORDS:
        for bitmap, h in zip(maps, _word_hashes(int.from_bytes(w, "big"), len(w)), strict=True):
            bitmap[h >> 3] |= 1 << (h & 7)
    return maps


def _is_word(maps: tuple[bytearray, bytearray], window: int) -> bool:
    for n in WORD_LENGTHS:
        ha, hb = _word_hashes(window, n)
        if maps[0][ha >> 3] >> (ha & 7) & maps[1][hb >> 3] >> (hb & 7) & 1:
            return True
    return False


# The request methods a head may open with: http1.METHODS but CONNECT (a tunnel: the enforcer's
# to judge), as fastpath_own.c's FP_METHODS
HEAD_METHODS = tuple(m for m in METHODS if m != b"CONNECT")
HEAD_LIMIT = 512  # the request line ends (its line feed) within these first bytes


def http_head(payload: bytes) -> bool:
    """An HTTP/1 request line as fastpath_own.c's fp_http_request reads it: ``METHOD SP target SP
    HTTP/1.[01]``, carriage returns, then the line feed within the first HEAD_LIMIT bytes; the
    method one of HEAD_METHODS, the target a run of bytes that are not white space."""
    line, lf, _ = payload[:HEAD_LIMIT].partition(b"\n")
    if not lf:
        return False
    line = line.rstrip(b"\r")
    method, sp, rest = line.partition(b" ")
    if not sp or method not in HEAD_METHODS:
        return False
    cut = next((i for i, b in enumerate(rest) if b == 32 or 9 <= b <= 13), len(rest))
    return cut > 0 and rest[cut:] in (b" HTTP/1.0", b" HTTP/1.1")


def head_automaton() -> tuple[bytes, int]:
    """The request-line test of :func:`http_head` as a table-driven automaton, as the classifier
    runs it (a table lookup a byte, no branch: the BPF verifier walks it once): the transitions
    (state * 256 + byte -> state, one byte each) and the accepting state. State 0 is the start,
    1 the dead state; then the methods' prefixes, the target, the version, the line's end."""
    fail, accept = 1, 2
    prefixes = sorted({m[:k] for m in HEAD_METHODS for k in range(1, len(m) + 1)})
    node = {b"": 0, **{p: 3 + i for i, p in enumerate(prefixes)}}
    target_first, target = 3 + len(prefixes), 4 + len(prefixes)
    version = [target + 1 + k for k in range(8)]  # "HTTP/1." then 0 or 1
    crs = version[-1] + 1
    states = crs + 1
    assert states <= 128, "the classifier indexes states with 7 bits"
    table = bytearray([fail]) * (128 * 256)  # all 128: the classifier's index is 7 bits
    for state in (accept,):
        table[state * 256 : state * 256 + 256] = bytes([accept]) * 256
    white = set(range(9, 14)) | {32}
    for prefix, here in node.items():
        for b in range(256):
            nxt = node.get(prefix + bytes([b]))
            if nxt is not None:
                table[here * 256 + b] = nxt
            elif b == 32 and prefix in HEAD_METHODS:
                table[here * 256 + b] = target_first
    for b in range(256):
        if b not in white:
            table[target_first * 256 + b] = target
            table[target * 256 + b] = target
    table[target * 256 + 32] = version[0]
    for k, want in enumerate(b"HTTP/1."):
        table[version[k] * 256 + want] = version[k + 1]
    for digit in b"01":
        table[version[7] * 256 + digit] = crs
    table[crs * 256 + 13] = crs
    table[crs * 256 + 10] = accept
    return bytes(table), accept


def head_by_automaton(payload: bytes) -> bool:
    """:func:`http_head` as the classifier computes it (the tests hold the two equal)."""
    table, accept = _HEAD
    state = 0
    for b in payload[:HEAD_LIMIT]:
        state = table[state * 256 + b]
    return state == accept


def _lower(b: int) -> int:
    return b + 32 if 65 <= b <= 90 else b


@dataclass(slots=True)
class Direction:
    """The reference of the classifier for one direction of a connection, opened at its SYN."""

    next: int
    run: int = 0
    window: int = 0  # the last 8 bytes, lowercased, big-endian
    loud: bool = False
    head: bool = False  # a client's direction whose first data segment is still to come

    @classmethod
    def opened(cls, syn_seq: int, *, client: bool = False) -> Direction:
        """At the SYN; ``client``: a SYN without ACK (the connection's initiator)."""
        return cls(next=(syn_seq + 1) & 0xFFFFFFFF, head=client)

    def is_head(self, seq: int, payload: bytes, *, v4: bool, ack: bool, end: bool) -> bool:
        """HEAD for the next segment (before :meth:`segment` reads it): the first data segment
        of an IPv4 client's direction, in order, with ACK, no FIN or RST (``end``), that opens
        with an HTTP/1 request line."""
        return (
            self.head
            and not self.loud
            and seq == self.next
            and 0 < len(payload) <= SCAN_MAX
            and v4
            and ack
            and not end
            and http_head(payload)
        )

    def segment(self, seq: int, payload: bytes) -> tuple[bool, bool]:
        """(CLEAN, CLEAN_SHORT) for the next segment of this direction."""
        if not payload or self.loud:
            return False, False
        end = (seq + len(payload)) & 0xFFFFFFFF
        if seq != self.next:
            if (self.next - end) & 0x80000000:  # it reaches past what was seen: gap or overlap
                self.loud = True
            return False, False
        self.head = False  # the first data segment came
        if len(payload) > SCAN_MAX:  # a GSO super-packet: never CLEAN
            self.loud = True
            return False, False
        longest, trig, run, window = 0, False, self.run, self.window
        tables = _BITMAPS
        for b in payload:
            run = run + (b in DIGITS) if b in CARD_BYTES else 0
            longest = max(longest, run)
            window = ((window << 8) | _lower(b)) & 0xFFFFFFFFFFFFFFFF
            if b in TRIGGER_BYTES or _is_word(tables, window):
                trig = True
        self.next, self.run, self.window = end, run, window
        if trig:
            self.loud = True
            return False, False
        return longest < RUN_LONG, longest < RUN_SHORT


_BITMAPS = _bitmaps()
_HEAD = head_automaton()
assert {len(w) for w in TRIGGER_WORDS} <= set(WORD_LENGTHS)


def predicate_for(sensors: Iterable[str], globs: Iterable[str]) -> int | None:
    """The run length that must not appear for the sensors of ``sensors`` that ``globs`` (a
    connection's DLP block and alert globs) select: RUN_LONG or RUN_SHORT, or None when one of
    them is not covered (an IBAN, a user sensor) and every byte must wait for user space."""
    patterns = list(globs)
    chosen = [s for s in sensors if any(fnmatch.fnmatchcase(s, p) for p in patterns)]
    if any(s not in COVERED for s in chosen):
        return None
    return min((COVERED[s] for s in chosen), default=RUN_LONG)


def c_tables() -> str:
    """clean_tables.h: the byte classes and trigger words of the C program, from the above."""
    rows = []
    for b in range(256):
        k = _lower(b) | (0x100 if b in CARD_BYTES else 0) | (0x200 if b in TRIGGER_BYTES else 0)
        rows.append(k | (0x400 if b in DIGITS else 0))
    cells = [f"0x{k:03x}," for k in rows]
    lines = ["    " + " ".join(cells[i : i + 12]) for i in range(0, 256, 12)]
    words = []
    for i, bitmap in enumerate(_bitmaps()):
        cells = [f"0x{v:02x}," for v in bitmap]
        words += [f"static const volatile __u8 WORD_BITS{i}[{len(bitmap)}] = {{"]
        words += ["    " + " ".join(cells[j : j + 16]) for j in range(0, len(cells), 16)]
        words += ["};"]
    return "\n".join(
        [
            "/* Generated by python3 -m stockade.firewall.enforce.clean > clean_tables.h: do not",
            " * edit. Byte classes: the low 8 bits the byte lowercased, 0x100 a card character,",
            " * 0x200 a trigger byte, 0x400 a digit. WORD_BITS0/1: the trigger words' bits under",
            " * the two hashes of a window's last 3, 7 or 8 bytes (clean._word_hashes). */",
            "static const volatile __u16 CLASSES[256] = {",
            *lines,
            "};",
            *(f"#define WORD_HASH_MUL{i} 0x{m:x}ULL" for i, m in enumerate(WORD_HASH_MULS)),
            f"#define WORD_HASH_SHIFT {64 - BITMAP_LOG2}",
            "/* the request line's automaton (clean.head_automaton): state * 256 + byte */",
            f"#define HEAD_LIMIT {HEAD_LIMIT}",
            f"#define HEAD_ACCEPT {_HEAD[1]}",
            f"static const volatile __u8 HEAD_TRANS[{len(_HEAD[0])}] = {{",
            *(
                "    " + " ".join(f"{v}," for v in _HEAD[0][j : j + 32])
                for j in range(0, len(_HEAD[0]), 32)
            ),
            "};",
            *words,
            "",
        ]
    )


if __name__ == "__main__":
    print(c_tables(), end="")
