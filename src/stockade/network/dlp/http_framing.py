"""Where HTTP messages and their bodies begin and end in one direction, for :mod:`.decoding`.

HTTP/1.x framing follows RFC 9112 section 6: ``Transfer-Encoding: chunked`` last wins, else a
single valid ``Content-Length``, else (responses only) the body runs to the end of the
connection; 1xx, 204 and 304 responses have none. HTTP/2 (prior knowledge, a server's SETTINGS,
or ``h2c`` after a 101) is read frame by frame: HEADERS through the connection's HPACK decoder,
DATA per stream. WebSocket (RFC 6455, after an ``Upgrade: websocket`` request, or a 101 to it)
is read frame by frame: the client's payloads unmasked, messages compressed by
permessage-deflate (RFC 7692) inflated, each message into its own sink. Anything this reader cannot follow (a direction that is not HTTP, an ambiguous
length, a header block it cannot decode) ends decoding for the direction: the raw stream still
sees every byte.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING, Any

from stockade.network.protocols.hpack import Decoder as HpackDecoder
from stockade.network.protocols.hpack import HpackError
from stockade.network.protocols.http2 import PREFACE

from .decoding import (
    RATIO_CAP,
    RATIO_FLOOR,
    FormDecode,
    Inflate,
    JsonUnescape,
    Multipart,
    Sink,
    Stage,
    Unpack,
)

if TYPE_CHECKING:
    from .decoding import DecodingStream

HEAD, BODY, CHUNK_LINE, CHUNK_DATA, CHUNK_END, TRAILER, H2, WS = range(8)
MAX_HEAD = 16 * 1024  # bytes of one message head
MAX_LINE = 1024  # bytes of a chunk-size or trailer line
MAX_H2_BLOCK = 64 * 1024  # bytes of one HTTP/2 header block
MAX_H2_STREAMS = 128  # HTTP/2 streams decoded at once per direction
TO_CLOSE = 1 << 62
MAX_CODINGS = 4  # content codings undone in turn on one body

_REQUEST = re.compile(rb"([A-Z]{3,10}) (\S{1,8192}) HTTP/1\.[01]\r?\n")
_STATUS = re.compile(rb"HTTP/1\.[01] ([1-5][0-9]{2})[ \r\n]")
_START = re.compile(rb"(?:[A-Z]{1,10}(?: |\Z)|H(?:T(?:T(?:P(?:/(?:1\.?)?)?)?)?)?\Z|HTTP/1\.)")
_FIELD = re.compile(
    rb"\n(transfer-encoding|content-length|content-encoding|content-type|upgrade)[ \t]*:[ \t]*"
    rb"([^\r\n]*)",
    re.I,
)
_LENGTH = re.compile(rb"\ncontent-length[ \t]*:[ \t]*([0-9]{1,18})[ \t]*\r?\n")
# header fields (lower case) that make a message more than a start line and a Content-Length
_SPECIAL = re.compile(
    rb"\n(?:transfer-encoding|content-encoding|upgrade|content-type[ \t]*:[ \t]*"
    rb"(?:application/x-www-form-urlencoded|multipart/))"
)
_CODINGS = (b"content-encoding", b"transfer-encoding")  # lists: each line adds to the list
_FOLD = re.compile(rb"\r?\n[ \t]+")  # an obs-fold: a header line continued on the next
_DECODED_TYPES = (b"application/x-www-form-urlencoded", b"multipart/")
_BOUNDARY = re.compile(rb'boundary=(?:"([^"]{1,70})"|([^";,\s]{1,70}))', re.I)
DATA, HEADERS, RST_STREAM, CONTINUATION = 0, 1, 3, 9
END_STREAM, END_HEADERS, PADDED, PRIORITY = 0x1, 0x4, 0x8, 0x20


def pipeline(owner: DecodingStream, sink: Sink, encoding: bytes, ctype: bytes) -> Stage | None:
    """The stages a body goes through to reach ``sink``; None when it cannot be decoded. JSON
    escapes are undone last, in whatever the other stages give (a JSON document in a form
    field, a compressed JSON body)."""
    tail: Stage = JsonUnescape(sink)
    kind = ctype[:40].lower()
    if kind.startswith(b"application/x-www-form-urlencoded"):
        tail = FormDecode(tail)
    elif kind.startswith(b"multipart/"):
        m = _BOUNDARY.search(ctype)
        if m:
            tail = Multipart(owner, m.group(1) or m.group(2), tail)
    # codings in the order they were applied (RFC 9110 8.4): the last listed is undone first
    codings = encoding.lower().split(b",")
    if len(codings) > MAX_CODINGS:
        owner.limit(f"content-encoding: more than {MAX_CODINGS} codings not decoded")
        return None
    for coding in codings:
        coding = coding.strip()
        if coding in (b"gzip", b"x-gzip"):
            tail = Inflate(owner, "gzip", tail)
        elif coding == b"deflate":
            tail = Inflate(owner, "deflate", tail)
        elif coding in (b"br", b"zstd"):
            tail = Unpack(owner, coding.decode(), tail)
        elif coding not in (b"", b"identity"):
            owner.limit(f"content-encoding {coding.decode('latin-1')[:32]} not decoded")
            return None
    return tail


def _query(
    owner: DecodingStream, sink: Sink, query: bytes, rs: int, re_: int, linear: bool
) -> None:
    stage = FormDecode(sink)
    stage.push(query, rs, re_, linear)
    stage.flush()
    sink.push(b"\n", re_, re_ + 1, False)  # the query never joins the body


class Framing:
    """One direction's HTTP messages; bodies that need decoding go down a pipeline to a sink."""

    __slots__ = ("_body", "_buf", "_buf_rs", "_h2", "_left", "_messages", "_owner", "_sink",
                 "_state", "_ws", "_ws_asked")  # fmt: skip

    def __init__(self, owner: DecodingStream) -> None:
        self._owner = owner
        self._state = HEAD
        self._buf = bytearray()
        self._buf_rs = 0
        self._left = 0
        self._body: Stage | None = None
        self._sink: Sink | None = None
        self._messages = 0
        self._h2: H2Framing | None = None
        self._ws: WsFraming | None = None
        self._ws_asked = False  # this (client) direction asked for a WebSocket upgrade

    def feed(self, data: bytes, base: int) -> None:
        pos, n = 0, len(data)
        while pos < n:
            st = self._state
            if st in (BODY, CHUNK_DATA):
                take = min(self._left, n - pos)
                if self._body is not None:
                    self._body.push(data[pos : pos + take], base + pos, base + pos + take, True)
                pos += take
                self._left -= take
                if not self._left:
                    if st == BODY:
                        self._end_message()
                    else:
                        self._state = CHUNK_END
            elif st == HEAD:
                pos = self._head(data, pos, base)
                if pos < 0:
                    return self._owner.stop_decoding()
            elif st == H2:
                assert self._h2 is not None
                if not self._h2.feed(data[pos:] if pos else data, base + pos):
                    return self._owner.stop_decoding()
                return None
            elif st == WS:
                assert self._ws is not None
                if not self._ws.feed(data[pos:] if pos else data, base + pos):
                    return self._owner.stop_decoding()
                return None
            else:
                line, pos = self._line(data, pos)
                if line is None:
                    if len(self._buf) > MAX_LINE:
                        return self._owner.stop_decoding()
                    continue
                if st == CHUNK_LINE:
                    size = line.split(b";", 1)[0].strip()
                    if not size or len(size) > 15 or size.strip(b"0123456789abcdefABCDEF"):
                        return self._owner.stop_decoding()
                    self._left = int(size, 16)
                    self._state = CHUNK_DATA if self._left else TRAILER
                elif st == CHUNK_END:
                    if line:
                        return self._owner.stop_decoding()
                    self._state = CHUNK_LINE
                elif not line:  # TRAILER: the empty line ends the message
                    self._end_message()
        return None

    def _line(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        i = data.find(b"\n", pos)
        if i < 0:
            self._buf += data[pos:]
            return None, len(data)
        if self._buf:
            line = bytes(self._buf) + data[pos:i]
            self._buf.clear()
        else:
            line = data[pos:i]
        return line.rstrip(b"\r"), i + 1

    def _head(self, data: bytes, pos: int, base: int) -> int:
        """Consume head bytes; returns the new position, or -1 when this is not HTTP we follow."""
        buf = self._buf
        if not buf:
            while pos < len(data) and data[pos] in b"\r\n":
                pos += 1  # empty lines between messages are allowed
            if pos == len(data):
                return pos
            self._buf_rs = base + pos
            if self._ws_asked and _WS_FIRST[data[pos]]:  # frames after the upgrade request
                self._state = WS
                self._ws = WsFraming(self._owner)
                return len(data) if self._ws.feed(data[pos:], base + pos) else -1
            if data[pos] in b"P\x00":  # a client preface (also after h2c), a server's SETTINGS
                h2 = self._h2_start(data[pos:])
                if h2 is not None:
                    return len(data) if h2 else -1
            end = _head_end(data, pos)
            if end >= 0:
                return self._begin(data[pos:end], end)
            buf += data[pos:]
            return len(data) if len(buf) <= MAX_HEAD and _START.match(buf[:12]) else -1
        old = len(buf)
        buf += data[pos:]
        if buf[:1] == b"P" or buf[:1] == b"\x00":
            h2 = self._h2_start(bytes(buf))
            if h2 is not None:
                return len(data) if h2 else -1
        end = _head_end(buf, max(old - 3, 0))
        if end < 0:
            return len(data) if len(buf) <= MAX_HEAD and _START.match(buf[:12]) else -1
        head = bytes(buf[:end])
        buf.clear()
        return self._begin(head, pos + end - old)

    def _h2_start(self, head: bytes) -> bool | None:
        """HTTP/2 from here (True, or False when its frames cannot be followed); None: not h2."""
        if head[:3] == b"PRI":
            if len(head) < len(PREFACE) and PREFACE.startswith(head):
                self._buf[:] = head
                return True  # wait for the rest of the preface
            if not head.startswith(PREFACE):
                return None
            skip = len(PREFACE)
        elif self._messages == 0 and head[:1] == b"\x00" and len(head) < 9:
            self._buf[:] = head
            return True  # wait for the rest of a frame header
        elif (
            self._messages == 0
            and len(head) >= 9
            and head[3] == 4
            and head[4] in (0, 1)
            and head[5:9] == bytes(4)
        ):
            skip = 0
        else:
            return None
        self._buf.clear()
        self._state = H2
        self._h2 = H2Framing(self._owner)
        return self._h2.feed(head[skip:], self._buf_rs + skip)

    def _begin(self, head: bytes, end: int) -> int:
        """A message head: set up its framing and, if it needs one, its decoding pipeline."""
        owner = self._owner
        if owner.decoded >= owner.budget:
            return -1  # nothing more will be decoded: leave it to the raw stream
        # Most messages are a start line and a Content-Length: a few substring tests (C speed)
        # find them; anything else takes the full reading below.
        low = head.lower()
        lengths = _LENGTH.findall(low)
        if _SPECIAL.search(low) is not None or len(lengths) > 1 or _FOLD.search(head):
            return self._begin_full(head, end)
        if head[:1] == b"H":
            sm = _STATUS.match(head)
            if sm is None:
                return -1
            status = int(sm.group(1))
            if status < 200 or status in (204, 304):
                return self._begin_full(head, end)
            size = TO_CLOSE
        else:
            m = _REQUEST.match(head)
            if m is None:
                return -1
            if b"%" in m.group(2) or b"+" in m.group(2):
                return self._begin_full(head, end)
            size = 0
        if lengths:
            size = int(lengths[0])
        elif b"content-length" in low:
            return -1  # a length that is not a number
        self._messages += 1
        self._body = self._sink = None
        if size:
            self._state, self._left = BODY, size
            self._plain_body()
        return end

    def _plain_body(self) -> None:
        """A body the application reads as it is on the wire but for JSON escapes: only an
        escape's neighbourhood goes to a sink (whose stream opens at the first one)."""
        self._sink = self._owner.sink()
        self._body = JsonUnescape(self._sink, window=True)

    def _begin_full(self, head: bytes, end: int) -> int:
        status = 0
        target = b""
        if head[:1] == b"H":
            sm = _STATUS.match(head)
            if sm is None:
                return -1
            status = int(sm.group(1))
        else:
            m = _REQUEST.match(head)
            if m is None:
                return -1
            target = m.group(2)
        fields: dict[bytes, bytes] = {}
        # An obs-fold is read as a space (RFC 9112 section 5.2), as servers that accept it do:
        # "Transfer-Encoding:\r\n chunked" is chunked to them.
        for name, value in _FIELD.findall(_FOLD.sub(b" ", head)):
            key = name.lower()
            value = value.rstrip()
            old = fields.get(key)
            if old is None:
                fields[key] = value
            elif key == b"content-length" and old != value:
                return -1  # two lengths: the peers may not agree on framing
            elif old != value or key in _CODINGS:  # a coding twice was applied twice
                fields[key] = old + b", " + value
        self._messages += 1
        if not status and b"websocket" in fields.get(b"upgrade", b"").lower():
            self._ws_asked = True
        te = fields.get(b"transfer-encoding")
        length = fields.get(b"content-length")
        if te is None and status >= 200 and status not in (204, 304):  # the usual response
            framing, size = BODY, TO_CLOSE
            if length is not None:
                if not length.isdigit():
                    return -1
                size = int(length)
        elif te is None and not status:  # the usual request
            framing, size = HEAD, 0
            if length is not None:
                if not length.isdigit():
                    return -1
                framing, size = BODY, int(length)
        else:
            framing, size = self._unusual(status, te, length, fields)
            if framing < 0:
                return -1
            if framing in (H2, WS):
                return end
        # Decode only what the application would read differently from the wire.
        encoding = fields.get(b"content-encoding")
        if te is not None:  # transfer codings before chunked were applied after the content's
            codings = te.lower().split(b",")
            if codings[-1].strip() == b"chunked":
                codings.pop()
            if codings:
                extra = b",".join(codings)
                encoding = extra if encoding is None else encoding + b"," + extra
        ctype = fields.get(b"content-type")
        q = target.find(b"?")
        if (
            framing == BODY
            and encoding is None
            and (ctype is None or not ctype[:40].lower().startswith(_DECODED_TYPES))
            and (q < 0 or (b"%" not in target and b"+" not in target))
        ) or (framing == HEAD and q < 0):
            self._body = self._sink = None  # the wire is what the application reads
            if framing == BODY and size:
                self._plain_body()
        else:
            self._decode(head, target, q, framing, encoding or b"", ctype or b"")
        self._state, self._left = framing, size
        if framing == HEAD or (framing == BODY and not size):
            self._end_message()
        return end

    def _unusual(
        self, status: int, te: bytes | None, length: bytes | None, fields: dict[bytes, bytes]
    ) -> tuple[int, int]:
        """Framing of interim, upgraded, bodiless and chunked messages: (state, size); -1 lost."""
        if status == 101:
            upgrade = fields.get(b"upgrade", b"").lower()
            if b"h2c" in upgrade:
                self._h2 = H2Framing(self._owner)
                self._state = H2
                return H2, 0
            if b"websocket" in upgrade:
                self._ws = WsFraming(self._owner)
                self._state = WS
                return WS, 0
            return -1, 0  # another protocol follows
        if status and (status < 200 or status in (204, 304)):
            return HEAD, 0
        chunked = te is not None and te.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
        if chunked:
            return CHUNK_LINE, 0
        if not status:
            return -1, 0  # a request body without a length the server can find
        if length is not None and length.isdigit():  # not reached with a transfer coding
            return BODY, int(length)
        return BODY, TO_CLOSE

    def _decode(
        self, head: bytes, target: bytes, q: int, framing: int, encoding: bytes, ctype: bytes
    ) -> None:
        owner = self._owner
        sink = self._sink = owner.sink()
        self._body = None
        query = target[q + 1 :] if q >= 0 else b""
        if b"%" in query or b"+" in query:
            qs = self._buf_rs + head.index(b" ") + 1 + q + 1
            _query(owner, sink, query, qs, qs + len(query), True)
        if framing != HEAD:
            self._body = pipeline(owner, sink, encoding, ctype)

    def _end_message(self) -> None:
        if self._body is not None:
            self._body.end()
        elif self._sink is not None:
            self._sink.end()
        self._body = self._sink = None
        self._state = HEAD

    def decide_now(self) -> None:
        if self._sink is not None:
            self._sink.decide_now()
        if self._h2 is not None:
            self._h2.decide_now()
        if self._ws is not None:
            self._ws.decide_now()

    def close(self) -> None:
        """The direction ended: what was decoded so far is judged (a truncated body too)."""
        if self._state not in (HEAD, H2, WS):
            self._end_message()
        elif self._sink is not None:
            self._sink.end()
        if self._h2 is not None:
            self._h2.close()
        if self._ws is not None:
            self._ws.close()
        self._state = HEAD
        self._body = self._sink = None

    def discard(self) -> None:
        if self._sink is not None:
            self._sink.discard()
        if self._h2 is not None:
            self._h2.discard()
        if self._ws is not None:
            self._ws.discard()
        self._body = self._sink = None


def _head_end(data: bytes | bytearray, start: int) -> int:
    i = data.find(b"\n\r\n", start)
    j = data.find(b"\n\n", start, i if i >= 0 else len(data))
    if j >= 0:
        return j + 2
    return i + 3 if i >= 0 else -1


class H2Framing:
    """HTTP/2 frames of one direction; each stream's DATA goes to its own sink."""

    __slots__ = ("_block", "_block_end", "_block_rs", "_data_left", "_frame", "_hdr", "_hpack",
                 "_left", "_owner", "_payload", "_streams")  # fmt: skip

    def __init__(self, owner: DecodingStream) -> None:
        self._owner = owner
        self._hdr = bytearray()
        self._frame: tuple[int, int, int, int] | None = None  # type, flags, stream, raw start
        self._left = 0  # payload bytes of the current frame still to come
        self._data_left = 0  # of those, DATA content (not padding)
        self._payload = bytearray()  # a HEADERS or CONTINUATION payload
        self._block = bytearray()
        self._block_end = False  # the HEADERS frame carried END_STREAM
        self._block_rs = 0
        self._hpack = HpackDecoder()
        self._streams: dict[int, tuple[Sink, Stage | None]] = {}

    def feed(self, data: bytes, base: int) -> bool:
        """False when the frames cannot be followed any more."""
        pos, n = 0, len(data)
        while pos < n:
            if self._frame is None:
                part = data[pos : pos + 9 - len(self._hdr)]
                self._hdr += part
                pos += len(part)
                if len(self._hdr) < 9:
                    return True
                hdr = self._hdr
                self._left = int.from_bytes(hdr[:3], "big")
                sid = int.from_bytes(hdr[5:9], "big") & 0x7FFFFFFF
                self._frame = (hdr[3], hdr[4], sid, base + pos)
                self._data_left = -1
                hdr.clear()
                if not self._left and not self._frame_done():
                    return False
                continue
            ftype, flags, sid = self._frame[:3]
            take = min(self._left, n - pos)
            chunk = data[pos : pos + take]
            if ftype == DATA:
                at = base + pos
                if self._data_left < 0:
                    pad = chunk[0] if flags & PADDED else 0
                    skip = 1 if flags & PADDED else 0
                    self._data_left = self._left - skip - pad
                    chunk, at = chunk[skip:], at + skip
                use = chunk[: max(self._data_left, 0)]
                self._data_left -= len(use)
                stream = self._streams.get(sid)
                if use and stream is not None and stream[1] is not None:
                    stream[1].push(use, at, at + len(use), True)
            elif ftype in (HEADERS, CONTINUATION):
                self._payload += chunk
                if len(self._payload) + len(self._block) > MAX_H2_BLOCK:
                    return False
            pos += take
            self._left -= take
            if not self._left and not self._frame_done():
                return False
        return True

    def _frame_done(self) -> bool:
        assert self._frame is not None
        ftype, flags, sid, frs = self._frame
        self._frame = None
        if ftype == HEADERS:
            p = bytes(self._payload)
            pad = p[0] if flags & PADDED and p else 0
            start = (1 if flags & PADDED else 0) + (5 if flags & PRIORITY else 0)
            self._block = bytearray(p[start : len(p) - pad])
            self._block_end = bool(flags & END_STREAM)
            self._block_rs = frs
        elif ftype == CONTINUATION:
            self._block += self._payload
        elif (ftype == DATA and flags & END_STREAM) or ftype == RST_STREAM:
            self._end(sid)
        self._payload.clear()
        if ftype in (HEADERS, CONTINUATION) and flags & END_HEADERS:
            block = bytes(self._block)
            try:
                fields = self._hpack.decode(block)
            except HpackError:
                return False
            self._fields(fields, block, self._block_rs)
            self._headers(sid, dict(fields), self._block_rs)
            self._block.clear()
        return True

    def _fields(self, fields: list[tuple[str, str]], block: bytes, rs: int) -> None:
        """The header fields as the application reads them, one ``name: value`` line each, into
        a sink of their own: Huffman coding (what clients use) and the dynamic table hide their
        text on the wire. A value spelled out in the block is left to the raw stream."""
        lines = []
        for name, value in fields:
            raw = value.encode("latin-1", "replace")
            if len(raw) > 8 and raw not in block:  # (shorter cannot hold a card or an SSN)
                lines.append(name.encode("latin-1", "replace") + b": " + raw)
        if lines:
            sink = self._owner.sink()
            sink.push(b"\n".join(lines), rs, rs + 1, False)
            sink.end()

    def _headers(self, sid: int, fields: dict[str, str], rs: int) -> None:
        owner = self._owner
        if sid not in self._streams and len(self._streams) < MAX_H2_STREAMS and owner.room() > 0:
            sink = owner.sink()
            path = fields.get(":path", "").encode("latin-1", "replace")
            q = path.find(b"?")
            query = path[q + 1 :] if q >= 0 else b""
            if b"%" in query or b"+" in query:  # HPACK hides where it was: point at the block
                _query(owner, sink, query, rs, rs + 1, False)
            stage = pipeline(
                owner,
                sink,
                fields.get("content-encoding", "").encode("latin-1", "replace"),
                fields.get("content-type", "").encode("latin-1", "replace"),
            )
            self._streams[sid] = (sink, stage)
        elif sid not in self._streams and len(self._streams) >= MAX_H2_STREAMS:
            owner.limit(f"more than {MAX_H2_STREAMS} HTTP/2 streams at once")
        if self._block_end:
            self._end(sid)

    def _end(self, sid: int) -> None:
        stream = self._streams.pop(sid, None)
        if stream is not None:
            sink, stage = stream
            (stage or sink).end()

    def decide_now(self) -> None:
        for sink, _ in self._streams.values():
            sink.decide_now()

    def close(self) -> None:
        for sid in list(self._streams):
            self._end(sid)

    def discard(self) -> None:
        for sink, _ in self._streams.values():
            sink.discard()
        self._streams.clear()


# A WebSocket frame's first byte: FIN, RSV1 (permessage-deflate) and a known opcode, RSV2 and
# RSV3 clear (no other extension is negotiated by the clients seen)
_WS_FIRST = [(b & 0x30) == 0 and (b & 0x0F) in (0, 1, 2, 8, 9, 10) for b in range(256)]
_WS_SYNC = b"\x00\x00\xff\xff"  # the end of a permessage-deflate message (RFC 7692 7.2.2)
MAX_WS_FRAME = 1 << 40  # a longer frame length is not followed


class WsFraming:
    """WebSocket frames of one direction (RFC 6455 section 5.2). A client's payloads are
    unmasked (its key is in each frame header); a message whose first frame has RSV1 set is
    inflated with the direction's permessage-deflate window (kept across messages, as without
    ``no_context_takeover``). The direction's messages go to one sink, a newline after each (so
    two never join, and a flood of tiny messages costs no stream each); control frames are
    skipped."""

    __slots__ = ("_at", "_flate", "_hdr", "_in_message", "_key", "_left", "_mask_at", "_op",
                 "_owner", "_sink", "_stage", "_wrote")  # fmt: skip

    def __init__(self, owner: DecodingStream) -> None:
        self._owner = owner
        self._hdr = bytearray()
        self._left = -1  # payload bytes of the current frame still to come; -1: in a header
        self._key = b""
        self._mask_at = 0
        self._op = 0  # the current frame's opcode
        self._sink: Sink | None = None  # the direction's
        self._stage: Stage | None = None  # the current message's way to the sink
        self._in_message = False
        self._wrote = False  # the current message reached the sink
        self._at = 0  # the raw offset after the last payload byte read
        self._flate: Any = None

    def feed(self, data: bytes, base: int) -> bool:
        """False when the frames cannot be followed any more."""
        pos, n = 0, len(data)
        while pos < n:
            if self._left < 0:
                took = self._header(data, pos)
                if took < 0:
                    return False
                pos = took
                continue
            take = min(self._left, n - pos)
            if take:
                self._payload(data[pos : pos + take], base + pos)
            pos += take
            self._left -= take
            if not self._left:
                self._frame_end()
        return True

    def _header(self, data: bytes, pos: int) -> int:
        hdr = self._hdr
        if not hdr and not _WS_FIRST[data[pos]]:
            return -1
        need = 2
        while True:
            if len(hdr) < need:
                part = data[pos : pos + need - len(hdr)]
                hdr += part
                pos += len(part)
                if len(hdr) < need:
                    return pos
            b1 = hdr[1] & 0x7F
            size_at = 2 + (2 if b1 == 126 else 8 if b1 == 127 else 0)
            full = size_at + (4 if hdr[1] & 0x80 else 0)
            if need == full:
                break
            need = full
        b0 = hdr[0]
        size = b1 if size_at == 2 else int.from_bytes(hdr[2:size_at], "big")
        if not _WS_FIRST[b0] or size > MAX_WS_FRAME:
            return -1
        self._key = bytes(hdr[size_at:full])
        self._mask_at = 0
        self._op = b0 & 0x0F
        hdr.clear()
        if self._op < 8:
            if self._op and self._in_message:  # a new message before the last ended
                self._message_end()
            if not self._in_message:
                if self._op == 0:
                    return -1  # a continuation without a message
                if self._sink is None:
                    self._sink = self._owner.sink()
                self._in_message, self._wrote = True, False
                self._stage = JsonUnescape(self._sink)
                if b0 & 0x40:  # compressed (permessage-deflate)
                    if self._flate is None:
                        self._flate = zlib.decompressobj(-15)
                    self._stage = _WsInflate(self._owner, self._flate, JsonUnescape(self._sink))
        self._op |= b0 & 0x80  # FIN kept with the opcode
        self._left = size
        if not size:
            self._frame_end()
        return pos

    def _payload(self, chunk: bytes, rs: int) -> None:
        if self._op & 0x0F >= 8 or self._stage is None:
            return  # control frames (close reasons, pings) carry no message content
        self._wrote = True
        self._at = rs + len(chunk)
        key = self._key
        if key:
            at = self._mask_at
            self._mask_at = (at + len(chunk)) & 3
            turn = key[at:] + key[:at]
            pad = (turn * (len(chunk) // 4 + 1))[: len(chunk)]
            chunk = (int.from_bytes(chunk, "big") ^ int.from_bytes(pad, "big")).to_bytes(
                len(chunk), "big"
            )
        linear = not key and not isinstance(self._stage, _WsInflate)
        self._stage.push(chunk, rs, rs + len(chunk), linear)

    def _frame_end(self) -> None:
        fin, op = self._op & 0x80, self._op & 0x0F
        self._left = -1
        if op < 8 and fin:
            self._message_end()

    def _message_end(self) -> None:
        stage, sink = self._stage, self._sink
        if isinstance(stage, _WsInflate):
            stage.finish()
        if self._wrote and sink is not None:
            sink.push(b"\n", self._at, self._at + 1, False)  # the next message never joins it
        self._stage, self._in_message, self._wrote = None, False, False

    def decide_now(self) -> None:
        if self._sink is not None:
            self._sink.decide_now()

    def close(self) -> None:
        self._message_end()
        if self._sink is not None:
            self._sink.end()
        self._sink = None

    def discard(self) -> None:
        if self._sink is not None:
            self._sink.discard()
        self._sink = self._stage = None


class _WsInflate:
    """One permessage-deflate message through the direction's inflater (its window carries on
    to the next message), bounded by the direction's budget and the inflation ratio."""

    __slots__ = ("_d", "_in", "_next", "_out", "_owner", "_span")

    def __init__(self, owner: DecodingStream, d: Any, nxt: Stage) -> None:
        self._owner, self._d, self._next = owner, d, nxt
        self._in = self._out = 0
        self._span = (0, 0)

    def push(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        if self._d is None:
            return
        self._in += len(data)
        self._span = (rs, re_)
        room = self._owner.room()
        if room <= 0:
            return self._stop(f"websocket: output cap of {self._owner.budget} bytes reached")
        try:
            out = self._d.decompress(data, room)
        except zlib.error:
            return self._stop("websocket: corrupt compressed message")
        self._out += len(out)
        if out:
            self._next.push(out, rs, re_, False)
        if self._out > RATIO_FLOOR and self._out > RATIO_CAP * self._in:
            return self._stop(f"websocket: inflation ratio over {RATIO_CAP}:1")
        return None

    def _stop(self, why: str) -> None:
        self._owner.limit(why)
        self._d = None

    def finish(self) -> None:
        """The message ended: what its last deflate block still holds (not the sink's end:
        the direction's messages share it)."""
        if self._d is not None:
            self.push(_WS_SYNC, *self._span, False)

    def end(self) -> None:
        self.finish()
