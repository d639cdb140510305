"""Byte patterns that announce HTTP content the application reads differently from the wire.

The engine compiles them into its Hyperscan stream database next to the sensors' prefilters, so
one scan per segment answers both "is there a candidate?" and "does this direction need the HTTP
framing of :mod:`.http_framing`?". A :class:`~.decoding.DecodingStream` whose direction has shown
no trigger holds its bytes and runs no Python framing; on the first trigger it runs the framing
over the held bytes from the start and follows the direction from there.

Each pattern is a *superset* of what makes the framing decode something (read ``_begin_full``,
``_unusual``, ``_decode`` and ``H2Framing`` there): the framing only acts on the literal text
below, so a direction without any of it would give no decoded match. Hyperscan stream mode
matches across segment boundaries, the header words are matched in any case and without their
``:`` (so spaces, tabs or an obs-fold before or after the colon change nothing), and a value is
matched anywhere in the stream, not only at the start of a line.
"""

from __future__ import annotations

# (expression, caseless)
TRIGGERS: tuple[tuple[bytes, bool], ...] = (
    # chunked (or any) transfer coding: the framing reads chunks only under this header
    (rb"transfer-encoding", True),
    # gzip / deflate (or an unsupported coding the framing notes): only under this header
    (rb"content-encoding", True),
    # form and multipart bodies: the framing tests the Content-Type value's start for these
    (rb"x-www-form-urlencoded", True),
    (rb"multipart/", True),
    # the query of a request target (`METHOD SP target`, target a run of non-space bytes) with
    # an escape or a plus; any `%`, not only a valid escape, so a cut one cannot dodge it
    (rb"[A-Z] \S*\?\S*[%+]", False),
    # HTTP/2: HPACK hides header text, so the connection itself is the trigger. The client
    # preface (at any message start), a 101 to h2c, and a server's SETTINGS frame as the first
    # bytes of the direction (after optional empty lines, as the framing accepts it)
    (rb"PRI \* HTTP/2\.0", False),
    (rb"h2c", True),
    (rb"^[\r\n]*\x00[\x00-\xff]{2}\x04[\x00\x01]\x00{4}", False),
    # WebSocket: a client's frames are masked, so the upgrade (the request's Upgrade value, a
    # 101's) is the trigger
    (rb"websocket", True),
    # JSON escapes of digits and card separators (space, hyphen, point, no-break space), which
    # the application reads as those characters: "\u0034\u0031..." (decoding.JsonUnescape)
    (rb"\\u00(?:3[0-9]|2[0de]|a0)", True),
)
