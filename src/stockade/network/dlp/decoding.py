"""DLP on HTTP bodies as the application sees them, next to the raw bytes.

:class:`DecodingStream` stands where a :class:`~stockade.network.dlp.engine.DlpStream` stood (same
``feed`` / ``decide_now`` / ``close`` / ``discard``). Every byte still goes to the raw stream, so
nothing found before is lost. Beside it, the HTTP framing in :mod:`.http_framing` follows each
message of the direction and, only for a message that needs it, sends what the application would
read to a second stream of the same engine, one per message (so bodies never join):

* chunked transfer coding removed (a card cut by a chunk header inside its digits);
* ``Content-Encoding: gzip`` / ``deflate`` inflated, ``br`` (brotli) and ``zstd`` decompressed,
  a list of codings undone in turn, each bounded (below);
* ``%XX`` and ``+`` decoded in the request target's query and in
  ``application/x-www-form-urlencoded`` bodies;
* multipart parts split, and a part's ``base64`` or ``quoted-printable`` coding removed;
* HTTP/2 DATA per stream, with the query of ``:path`` and ``content-encoding`` from HEADERS.

**Offsets.** A match in decoded content is reported in raw stream coordinates: bytes copied one to
one (de-chunked data, literal characters of a form) keep their exact offsets; a span that covers
an escape or a chunk header runs from the first to the last raw byte that produced it; bytes that
came out of a decompressor or a base64 part get the span of the encoded input being decoded when they
came out. The masked evidence is masked decoded text. A decoded match whose bytes were contiguous
and unchanged in the raw stream is left to the raw stream (reported once).

**Bounds.** Decoded bytes count against ``budget`` per direction (the stream depth by default);
inflation stops at that budget or when output passes :data:`RATIO_CAP` times its input, so a
compression bomb costs at most ``budget`` bytes of output, and is reported in :attr:`limits`. A
truncated compressed stream yields what inflated up to the cut.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import quopri
import re
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from stockade.network.interface import DlpMatch

if TYPE_CHECKING:
    from .http_framing import Framing

DEFAULT_BUDGET = 64 * 1024  # decoded bytes per direction: the sensor's default stream depth
RATIO_CAP = 100  # inflated bytes per compressed byte before a body counts as a bomb
RATIO_FLOOR = 16 * 1024  # output below this never trips the ratio cap (tiny inputs)
MAX_PARTS_BYTES = DEFAULT_BUDGET  # a multipart body is split once it ends, up to this much
HELD_TOTAL = 32 << 20  # bytes all streams of one engine hold until a trigger; past it they frame


class Stage(Protocol):
    def push(self, data: bytes, rs: int, re_: int, linear: bool) -> None: ...
    def end(self) -> None: ...


class DecodingStream:
    """One flow direction: the raw DLP stream plus decoded HTTP message content.

    With the ``hs-stream`` backend the framing starts only when the raw stream's Hyperscan scan
    sees a decoding trigger (:mod:`.triggers`); until then the direction's bytes are held (up to
    ``replay`` bytes, by reference) and the framing later reads them from the start. A direction
    that passes ``replay`` bytes without a trigger, or would take the bytes held by all streams
    of the engine past :data:`HELD_TOTAL`, is framed from then on as it arrives; ``replay=0``
    frames everything as it arrives."""

    __slots__ = ("_coalesce", "_engine", "_found", "_framing", "_held", "_held_size", "_offset",
                 "_raw", "_sent", "_sent_size", "budget", "decoded", "framed", "limits",
                 "replay")  # fmt: skip

    def __init__(
        self,
        engine: Any,
        *,
        budget: int = DEFAULT_BUDGET,
        replay: int = DEFAULT_BUDGET,
        coalesce: int = 0,
    ) -> None:
        self._engine = engine
        # coalesce: the raw stream may scan segments together (see DlpEngine.stream); while the
        # bytes are held anyway, they go to it only once that many wait (one call, not one a
        # segment): _sent held segments (_sent_size bytes) were given to it so far.
        self._coalesce = coalesce
        self._sent = self._sent_size = 0
        self._raw = engine.stream(coalesce=coalesce) if coalesce else engine.stream()
        self._offset = 0
        self._found: list[DlpMatch] = []
        self.budget = budget
        self.replay = replay
        self.decoded = 0  # bytes sent to decoded streams so far
        self.framed = 0  # bytes the HTTP framing has read (0: it never ran)
        self.limits: list[str] = []  # why decoding stopped short, once each (no data in them)
        self._framing: Framing | None = None
        # Bytes held while no trigger has been seen; None once the framing runs (or stopped).
        self._held: list[bytes] | None = None
        self._held_size = 0
        if replay > 0 and getattr(engine, "triggers", False):
            self._held = []
        else:
            self._framing = _framing(self)

    # the DlpStream interface -------------------------------------------------------------

    def feed(self, data: bytes) -> list[DlpMatch]:
        held = self._held
        if held is not None and self._coalesce:  # a passive caller, nothing to decode so far
            if not data:
                return []
            held.append(data)
            size = self._held_size = self._held_size + len(data)
            engine = self._engine
            engine.held += len(data)
            self._offset += len(data)
            if (
                size - self._sent_size < self._coalesce
                and size <= self.replay
                and engine.held <= HELD_TOTAL
            ):
                return []
            sent = self._send_held()
            if self._raw.triggered or size > self.replay or engine.held > HELD_TOTAL:
                self._start_framing()
            return sent + self._take() if self._found else sent
        found: list[DlpMatch] = self._raw.feed(data)
        if held is not None:  # nothing needed decoding so far: the usual case, kept cheap
            if data:
                held.append(data)
                self._held_size += len(data)
                engine = self._engine
                engine.held += len(data)
                if self._raw.triggered or self._held_size > self.replay or engine.held > HELD_TOTAL:
                    self._start_framing()
        elif self._framing is not None and data:
            self.framed += len(data)
            self._framing.feed(data, self._offset)
        if self._found:
            found = found + self._take()
        self._offset += len(data)
        return found

    def _send_held(self) -> list[DlpMatch]:
        """Give the raw stream the held segments it has not seen (coalescing callers)."""
        held, first = self._held, self._sent
        if held is None or first == len(held) or not self._coalesce:
            return []  # (without coalescing every segment went to the raw stream as it came)
        self._sent, self._sent_size = len(held), self._held_size
        data = held[first] if first == len(held) - 1 else b"".join(held[first:])
        found: list[DlpMatch] = self._raw.feed(data)
        return found

    def _late_trigger(self) -> None:
        # A coalescing raw stream scans held segments only now: a trigger among them still
        # starts the framing over everything held.
        if self._held is not None and self._raw.triggered:
            self._start_framing()

    def _start_framing(self) -> None:
        """A trigger (or the replay limit): frame the held bytes, then follow as they arrive.

        The held segments go to the framing one by one, as they arrived: an inflater's output
        takes the span of the input being decoded, so the offsets stay those of a framing that
        ran from the start, however late the trigger was seen (a coalescing raw stream sees it
        when it scans)."""
        assert self._held is not None
        held = self._held
        self._drop_held()
        framing = self._framing = _framing(self)
        at = 0
        for piece in held:
            if self._framing is not framing:
                break  # the framing gave up (stop_decoding)
            self.framed += len(piece)
            framing.feed(piece, at)
            at += len(piece)

    def _drop_held(self) -> None:
        if self._held_size:
            self._engine.held -= self._held_size
        self._held, self._held_size = None, 0
        self._sent = self._sent_size = 0

    def decide_now(self) -> list[DlpMatch]:
        found: list[DlpMatch] = self._send_held()
        found += self._raw.decide_now()
        self._late_trigger()
        if self._framing is not None:
            self._framing.decide_now()
        return found + self._take() if self._found else found

    def close(self) -> list[DlpMatch]:
        found: list[DlpMatch] = self._send_held()
        found += self._raw.close()
        self._late_trigger()
        self._drop_held()
        if self._framing is not None:
            self._framing.close()
            self._framing = None
        return found + self._take() if self._found else found

    def discard(self) -> None:
        self._raw.discard()
        self._drop_held()
        if self._framing is not None:
            self._framing.discard()
            self._framing = None

    # for the framing and the stages ------------------------------------------------------

    def stop_decoding(self) -> None:
        """Nothing more will be decoded in this direction (framing lost, or budget spent)."""
        self._drop_held()
        if self._framing is not None:
            self._framing.close()
            self._framing = None

    def room(self) -> int:
        return self.budget - self.decoded

    def limit(self, why: str) -> None:
        if why not in self.limits and len(self.limits) < 8:
            self.limits.append(why)

    def sink(self) -> Sink:
        return Sink(self)

    def found(self, matches: list[DlpMatch]) -> None:
        self._found.extend(matches)

    def _take(self) -> list[DlpMatch]:
        out, self._found = self._found, []
        out.sort(key=lambda m: (m.start, m.sensor))
        return out


def _framing(owner: DecodingStream) -> Framing:
    from .http_framing import Framing

    return Framing(owner)


class Sink:
    """Decoded content of one message into its own DLP stream, with the map back to raw offsets.

    Segments are ``[decoded start, raw start, raw end, linear]``; a linear segment's bytes are
    the raw bytes at the same distance from its raw start."""

    __slots__ = ("_at", "_keep", "_owner", "_segs", "_starts", "_stream")

    def __init__(self, owner: DecodingStream) -> None:
        self._owner = owner
        self._stream: Any = None
        self._segs: list[list[Any]] = []
        self._starts: list[int] = []
        self._at = 0  # decoded bytes fed
        self._keep = getattr(owner._engine, "keep", 256)

    def push(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        owner = self._owner
        room = owner.budget - owner.decoded
        if room <= 0 or not data:
            if data:
                owner.limit(f"decoded budget of {owner.budget} bytes reached")
            return
        if len(data) > room:
            data = data[:room]
            if linear:
                re_ = rs + room
            owner.limit(f"decoded budget of {owner.budget} bytes reached")
        owner.decoded += len(data)
        if self._stream is None:
            self._stream = owner._engine.stream()
        segs, at = self._segs, self._at
        last = segs[-1] if segs else None
        if (
            linear
            and last is not None
            and last[3]
            and last[2] == rs
            and at == last[0] + (last[2] - last[1])
        ):
            last[2] = re_  # contiguous in both: one segment
        else:
            segs.append([at, rs, re_, linear])
            self._starts.append(at)
            if len(segs) > 64:
                self._prune(at - self._keep)
        self._at = at + len(data)
        found = self._stream.feed(data)
        if found:
            owner.found(self._map(found))

    def end(self) -> None:
        if self._stream is not None:
            found = self._stream.close()
            self._stream = None
            if found:
                self._owner.found(self._map(found))
        self._segs, self._starts = [], []

    def decide_now(self) -> None:
        if self._stream is not None:
            found = self._stream.decide_now()
            if found:
                self._owner.found(self._map(found))

    def discard(self) -> None:
        if self._stream is not None:
            self._stream.discard()
            self._stream = None

    def _prune(self, before: int) -> None:
        # The engine cannot report a match that starts this far back; keep one segment more.
        cut = max(bisect.bisect_right(self._starts, before) - 1, 0)
        if cut:
            del self._segs[:cut]
            del self._starts[:cut]

    def _map(self, found: list[DlpMatch]) -> list[DlpMatch]:
        out = []
        for m in found:
            first = self._seg(m.start)
            last = self._seg(m.end - 1)
            if first is last and first[3]:
                continue  # the same bytes, contiguous, in the raw stream: it reports them
            start = first[1] + (m.start - first[0]) if first[3] else first[1]
            end = last[1] + (m.end - last[0]) if last[3] else last[2]
            out.append(replace(m, start=start, end=max(end, start + 1)))
        return out

    def _seg(self, at: int) -> list[Any]:
        i = max(bisect.bisect_right(self._starts, at) - 1, 0)
        return self._segs[i]


_GZIP_MAGIC = b"\x1f\x8b"


AS_IS_HELD = 256  # a body's first input bytes (and the piece holding them) kept to read as is


class _Undo:
    """What :class:`Inflate` and :class:`Unpack` share: a body that does not open as its coding
    says (the decompressor fails within its first :data:`AS_IS_HELD` input bytes, or the piece
    that holds them: raw deflate reads some text as fixed-Huffman blocks for a while) is read
    as it is too. A sender that names a coding it did not apply hides nothing from DLP that
    way; the application that reads such a body reads no more than its bytes."""

    __slots__ = ("_d", "_held", "_in", "_kind", "_next", "_out", "_owner", "_piece", "_plain",
                 "_span")  # fmt: skip

    def __init__(self, owner: DecodingStream, kind: str, nxt: Stage) -> None:
        self._owner, self._next, self._kind = owner, nxt, kind
        self._d: Any = None
        self._in = self._out = 0
        self._span = (0, 0)
        self._piece = b""  # the input being decoded, when its bytes are the raw bytes at _span
        self._held: list[tuple[bytes, int, int, bool]] | None = []
        self._plain = False

    def _take(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        """``data`` is the input being decoded now."""
        self._span = (rs, re_)
        self._piece = data if linear else b""

    def _pass_on(self, out: bytes) -> None:
        """Decoded bytes to the next stage. Bytes the coding stored as they are (a zstd raw
        block, a deflate stored block) keep their raw offsets, linear: the raw stream sees
        them as they are and reports what they hold, so the decoded stream must not report
        it again (it did, at the span of the whole input piece)."""
        rs, re_ = self._span
        runs = _copied(out, self._piece) if self._piece else None
        if runs is None:
            self._next.push(out, rs, re_, False)
            return
        for lo, hi, at in runs:
            self._next.push(out[lo:hi], rs + at, rs + at + hi - lo, True)

    def _hold(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        if self._held is not None:
            if self._in - len(data) >= AS_IS_HELD:
                self._held = None
            else:
                self._held.append((data, rs, re_, linear))

    def _corrupt(self) -> None:
        held, kind = self._held, self._kind
        if held is not None:
            self._owner.limit(f"{kind}: not {kind}-coded, read as it is")
            self._kind, self._d, self._plain, self._held = "", None, True, None
            for piece in held:
                self._next.push(*piece)
            return
        self._stop(f"{kind}: corrupt compressed body")

    def _stop(self, why: str) -> None:
        self._owner.limit(why)
        self._kind, self._d = "", None


class Inflate(_Undo):
    """gzip or deflate (zlib-wrapped or raw), bounded by the direction's budget and a ratio.
    A gzip body may hold several members (RFC 1952 section 2.2): each is inflated in turn, as
    gzip readers (zcat, Python's gzip, urllib3) hand the application their concatenation."""

    __slots__ = ("_members",)

    def __init__(self, owner: DecodingStream, kind: str, nxt: Stage) -> None:
        super().__init__(owner, kind, nxt)
        self._members = 0  # gzip members inflated to their end

    def _start(self, data: bytes) -> bool:
        """A decompressor for what begins with ``data``; False when nothing more is content."""
        if self._kind == "gzip":
            if self._members and not _GZIP_MAGIC.startswith(data[:2]):
                self._kind = ""  # trailing bytes after the last member are not content
                return False
            wbits = 31
        else:  # "deflate" is zlib-wrapped by the RFC, raw by some servers
            zlib_header = len(data) < 2 or (
                data[0] & 0x0F == 8 and int.from_bytes(data[:2]) % 31 == 0
            )
            wbits = 15 if zlib_header else -15
        self._d = zlib.decompressobj(wbits)
        return True

    def push(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        if self._plain:
            return self._next.push(data, rs, re_, linear)
        if self._kind == "" or not data:
            return None
        self._in += len(data)
        self._hold(data, rs, re_, linear)
        self._take(data, rs, re_, linear)
        while data:
            if self._d is None and not self._start(data):
                return
            room = self._owner.room()
            if room <= 0:
                return self._stop(f"{self._kind}: output cap of {self._owner.budget} bytes reached")
            try:
                out = self._d.decompress(data, room)
            except zlib.error:
                return self._corrupt()
            self._out += len(out)
            if out:
                self._pass_on(out)
            if self._out > RATIO_FLOOR and self._out > RATIO_CAP * self._in:
                return self._stop(
                    f"{self._kind}: inflation ratio over {RATIO_CAP}:1 "
                    f"({self._in} bytes gave {self._out})"
                )
            if self._d.eof:
                if self._kind != "gzip":
                    self._kind = ""  # trailing bytes after the stream's end are not content
                    return
                self._members += 1  # another member may follow, in this piece or the next
                data, self._d = self._d.unused_data, None
                continue
            data = self._d.unconsumed_tail
        return None

    def end(self) -> None:
        if self._d is not None and self._kind:
            try:
                tail = self._d.flush(max(self._owner.room(), 1))
            except zlib.error:
                tail = b""
            self._d = None
            if tail:
                self._next.push(tail, *self._span, False)
        self._next.end()


COPIED_RUN = 8  # shortest run of decoded bytes taken as copied from the input


def _copied(out: bytes, data: bytes) -> list[tuple[int, int, int]] | None:
    """``out`` as consecutive runs copied in order from ``data`` (stored blocks, with their
    headers skipped between them): (out start, out end, data start) per run, or None when it
    is not (compressed output). A run is taken as long as it goes (a binary search over the
    prefix length, each step one ``bytes.find``), so this costs a few finds per stored
    block and fails on the first find for compressed output."""
    runs: list[tuple[int, int, int]] = []
    i = j = 0
    n = len(out)
    while i < n:
        at = data.find(out[i : i + COPIED_RUN] if n - i > COPIED_RUN else out[i:], j)
        if at < 0:
            return None
        lo, hi = min(COPIED_RUN, n - i), n - i  # out[i:i+lo] is found at `at`
        if data.startswith(out[i : i + hi], at):
            lo = hi
        while lo < hi:  # the longest prefix of out[i:] found, at its first place from j
            mid = (lo + hi + 1) // 2
            k = data.find(out[i : i + mid], j)
            if k >= 0:
                lo, at = mid, k
            else:
                hi = mid - 1
        runs.append((i, i + lo, at))
        i += lo
        j = at + lo
    return runs


UNPACK_CHUNK = 16 * 1024  # bytes of output a brotli or zstd decompressor hands on at a time


class _Spent(Exception):
    """Raised from :meth:`Unpack.write` to stop the zstd writer that called it."""


class Unpack(_Undo):
    """brotli (RFC 7932) or zstd (RFC 8878), bounded as :class:`Inflate` is: output stops at
    the direction's budget or when it passes :data:`RATIO_CAP` times the input, never more than
    :data:`UNPACK_CHUNK` bytes held at once (a bomb is not expanded first and cut after)."""

    __slots__ = ()

    def __init__(self, owner: DecodingStream, kind: str, nxt: Stage) -> None:
        super().__init__(owner, kind, nxt)
        if kind == "br":
            import brotli

            self._d = brotli.Decompressor()
        else:
            import zstandard

            # (any object with write(bytes) serves as the writer's sink: this one bounds it)
            self._d = zstandard.ZstdDecompressor().stream_writer(
                self,  # type: ignore[arg-type]
                write_size=UNPACK_CHUNK,
                write_return_read=True,
            )

    def push(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        if self._plain:
            self._next.push(data, rs, re_, linear)
            return
        if self._kind == "" or not data:
            return
        self._in += len(data)
        self._hold(data, rs, re_, linear)
        self._take(data, rs, re_, linear)
        if self._kind == "br":
            self._brotli(data)
            return
        import zstandard

        try:
            self._d.write(data)
        except _Spent:
            return  # decoding stopped at a bound (_hand_on noted which)
        except zstandard.ZstdError:
            self._corrupt()

    def _brotli(self, data: bytes) -> None:
        import brotli

        d = self._d
        while True:
            room = self._owner.room()
            if room <= 0:
                return self._stop(f"br: output cap of {self._owner.budget} bytes reached")
            try:
                out = d.process(data, output_buffer_limit=min(room, UNPACK_CHUNK))
            except brotli.error:
                return self._corrupt()
            data = b""
            if out and not self._hand_on(out):
                return None
            if d.is_finished():
                self._kind = ""  # trailing bytes after the stream's end are not content
                return None
            if d.can_accept_more_data():
                return None

    def write(self, out: bytes) -> int:
        """The zstd writer's output, :data:`UNPACK_CHUNK` bytes at most at a time."""
        if not self._hand_on(out):
            raise _Spent
        return len(out)

    def _hand_on(self, out: bytes) -> bool:
        """Pass decompressed bytes on within the bounds; False once decoding stopped."""
        room = self._owner.room()
        if room <= 0:
            self._stop(f"{self._kind}: output cap of {self._owner.budget} bytes reached")
            return False
        self._out += min(len(out), room)
        self._pass_on(out[:room])
        if len(out) > room:
            self._stop(f"{self._kind}: output cap of {self._owner.budget} bytes reached")
            return False
        if self._out > RATIO_FLOOR and self._out > RATIO_CAP * self._in:
            self._stop(
                f"{self._kind}: inflation ratio over {RATIO_CAP}:1 "
                f"({self._in} bytes gave {self._out})"
            )
            return False
        return True

    def end(self) -> None:
        self._d = None
        self._next.end()


_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}|\+")
_HEX = frozenset(b"0123456789abcdefABCDEF")


class FormDecode:
    """``%XX`` and ``+`` of a query or form body; literal runs stay linear."""

    __slots__ = ("_next", "_pend", "_pend_rs")

    def __init__(self, nxt: Stage) -> None:
        self._next = nxt
        self._pend = b""  # an escape cut by a piece boundary
        self._pend_rs = 0

    def push(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        if self._pend:  # an escape cut by the previous piece: finish it first
            need = 3 - len(self._pend)
            if len(data) < need and all(c in _HEX for c in data):
                self._pend += data
                return
            pend, self._pend = self._pend, b""
            if _ESCAPE.fullmatch(pend + data[:need]):
                end = rs + need if linear else re_
                self._next.push(bytes([int(pend[1:] + data[:need], 16)]), self._pend_rs, end, False)
                data = data[need:]
                if linear:
                    rs += need
            else:  # not an escape after all: the application reads it as it is
                self._next.push(pend, self._pend_rs, self._pend_rs + len(pend), False)
        if data:
            self._decode(data, rs, re_, linear)

    def _decode(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        nxt = self._next
        tail = data.rfind(b"%", max(len(data) - 2, 0))
        if tail >= 0 and _ESCAPE.match(data, tail) is None:
            self._pend, self._pend_rs = data[tail:], rs + tail if linear else rs
            data = data[:tail]
            if linear:
                re_ = rs + tail
        if not linear:
            nxt.push(_unquote(data), rs, re_, False)
            return
        pos = 0
        for m in _ESCAPE.finditer(data):
            s, e = m.span()
            if s > pos:
                nxt.push(data[pos:s], rs + pos, rs + s, True)
            nxt.push(
                b" " if e - s == 1 else bytes([int(data[s + 1 : e], 16)]), rs + s, rs + e, False
            )
            pos = e
        if pos < len(data):
            nxt.push(data[pos:] if pos else data, rs + pos, re_, True)

    def flush(self) -> None:
        """The content ends here (a query): a cut escape is read as it is."""
        if self._pend:
            self._next.push(self._pend, self._pend_rs, self._pend_rs + len(self._pend), False)
            self._pend = b""

    def end(self) -> None:
        self.flush()
        self._next.end()


# JSON's escapes of what a card or an SSN is written with (triggers.JSON_ESCAPE is their trigger):
# the digits \u0030-\u0039 and the separators space, hyphen, point and no-break space; and an
# escaped backslash, so "\\\\u0034" stays a backslash and "u0034" as JSON readers read it.
_JSON_ESCAPE = re.compile(rb"\\(?:\\|u00(?:3[0-9]|2[0dDeE]|[aA]0))")
# A piece's last bytes that may begin one of them (held for the next piece).
_JSON_OPEN = re.compile(rb"\\(?:u(?:0(?:0(?:[23aA])?)?)?)?\Z")
JSON_BEFORE = 96  # literal bytes kept before an escape: a card's other characters, its key
JSON_AFTER = 64  # and passed on after one: the rest of a card and the context after it


class JsonUnescape:
    """JSON ``\\uXXXX`` escapes of digits and card separators, undone (``\\u0034`` -> ``4``,
    ``\\u00a0`` -> a UTF-8 no-break space), as the application that parses the JSON reads
    them; everything else goes on as it came. ``window``, for content that is on the wire as it
    is (a plain body): only the neighbourhood of an escape goes on (:data:`JSON_BEFORE` bytes
    before, :data:`JSON_AFTER` after, a newline where bytes were left out), since a value with
    no escape in it is there for the raw stream to report. Holds at most ``JSON_BEFORE``
    bytes and a cut escape; linear in its input."""

    __slots__ = ("_after", "_before", "_cut", "_cut_rs", "_dropped", "_next", "_sent", "_window")

    def __init__(self, nxt: Stage, *, window: bool = False) -> None:
        self._next = nxt
        self._window = window
        self._before: list[tuple[bytes, int, int, bool]] = []  # literal bytes not passed on
        self._after = 0  # literal bytes still to pass on after the last escape
        self._dropped = -1  # raw offset where bytes were left out since the last push, or -1
        self._sent = False  # anything passed on yet
        self._cut = b""  # the start of an escape cut by the piece's end
        self._cut_rs = 0

    def push(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        if self._cut:
            cut, self._cut = self._cut, b""
            data = cut + data
            rs = self._cut_rs if linear else rs
        if b"\\" not in data:
            self._literal(data, rs, re_, linear)
            return
        pos = 0
        for m in _JSON_ESCAPE.finditer(data):
            s, e = m.span()
            if s > pos:
                self._literal(data[pos:s], rs + pos if linear else rs, rs + s if linear else re_,
                              linear)  # fmt: skip
            if e - s == 2:  # an escaped backslash: a literal character
                self._literal(b"\\", rs + s if linear else rs, rs + e if linear else re_, False)
            else:
                char = chr(int(data[s + 2 : e], 16)).encode()
                self._escape(char, rs + s if linear else rs, rs + e if linear else re_)
            pos = e
        tail = data[pos:]
        k = tail.rfind(b"\\", max(len(tail) - 5, 0))
        if k >= 0 and _JSON_OPEN.match(tail, k):
            self._cut, self._cut_rs = tail[k:], rs + pos + k if linear else rs
            tail = tail[:k]
        if tail:
            self._literal(tail, rs + pos if linear else rs, re_ if not linear else rs + pos + len(tail),
                          linear)  # fmt: skip

    def _literal(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        if not self._window:
            self._next.push(data, rs, re_, linear)
            return
        if self._after:
            n = min(self._after, len(data))
            self._after -= n
            self._next.push(data[:n], rs, rs + n if linear else re_, linear)
            data = data[n:]
            if not data:
                return
            if linear:
                rs += n
        before = self._before
        if len(data) >= JSON_BEFORE:  # the usual piece of a body: it alone is what is kept
            if before or len(data) > JSON_BEFORE:
                if self._dropped < 0:
                    self._dropped = before[0][1] if before else rs
                cut = len(data) - JSON_BEFORE
                data, rs = data[cut:], rs + cut if linear else rs
            self._before = [(data, rs, re_, linear)]
            return
        before.append((data, rs, re_, linear))
        size = sum(len(p[0]) for p in before)
        while size > JSON_BEFORE:  # leave out what is too far from any escape
            piece, prs, pre, plin = before[0]
            over = size - JSON_BEFORE
            if over >= len(piece):
                before.pop(0)
                size -= len(piece)
                if self._dropped < 0:
                    self._dropped = prs
            else:
                before[0] = (piece[over:], prs + over if plin else prs, pre, plin)
                size -= over
                if self._dropped < 0:
                    self._dropped = prs

    def _escape(self, char: bytes, rs: int, re_: int) -> None:
        nxt = self._next
        if self._dropped >= 0 and self._sent:  # what was left out must not join the two
            nxt.push(b"\n", self._dropped, self._dropped + 1, False)
        self._dropped = -1
        for piece in self._before:
            nxt.push(*piece)
        self._before = []
        nxt.push(char, rs, re_, False)
        self._sent = True
        self._after = JSON_AFTER

    def end(self) -> None:
        if self._cut:  # not an escape after all
            self._literal(self._cut, self._cut_rs, self._cut_rs + len(self._cut), False)
            self._cut = b""
        self._next.end()


class Multipart:
    """multipart/* bodies: each part's content, without its headers, base64 and quoted-printable
    undone. Parts are split once the body ends (bounded by :data:`MAX_PARTS_BYTES`)."""

    __slots__ = ("_delim", "_next", "_owner", "_pieces", "_size")

    def __init__(self, owner: DecodingStream, boundary: bytes, nxt: Stage) -> None:
        self._owner, self._next = owner, nxt
        self._delim = b"--" + boundary
        self._pieces: list[tuple[int, bytes, int, int, bool]] = []  # decoded start, data, span
        self._size = 0

    def push(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
        room = MAX_PARTS_BYTES - self._size
        if len(data) > room:
            self._owner.limit(f"multipart body over {MAX_PARTS_BYTES} bytes: the rest not split")
            data = data[: max(room, 0)]
            re_ = rs + len(data) if linear else re_
        if data:
            self._pieces.append((self._size, data, rs, re_, linear))
            self._size += len(data)

    def end(self) -> None:
        body = b"".join(p[1] for p in self._pieces)
        delim, nxt = self._delim, self._next
        pos = body.find(delim)
        while pos >= 0:
            pos += len(delim)
            if body[pos : pos + 2] == b"--":
                break
            head_end = body.find(b"\r\n\r\n", pos)
            if head_end < 0:
                break
            start = head_end + 4
            after = body.find(b"\r\n" + delim, start)
            end = after if after >= 0 else len(body)
            coding = _part_coding(body[pos:head_end])
            spans = self._slice(start, end)
            if coding in ("base64", "quoted-printable") and spans:
                decoded = _undo(coding, body[start:end])
                nxt.push(decoded, spans[0][1], spans[-1][2], False)
            else:
                for piece in spans:
                    nxt.push(*piece)
            if spans:  # parts never join
                nxt.push(b"\n", spans[-1][2], spans[-1][2] + 1, False)
            pos = after + 2 if after >= 0 else -1
        self._pieces = []
        nxt.end()

    def _slice(self, a: int, b: int) -> list[tuple[bytes, int, int, bool]]:
        out = []
        for at, data, rs, re_, linear in self._pieces:
            lo, hi = max(a, at), min(b, at + len(data))
            if lo >= hi:
                continue
            part = data[lo - at : hi - at]
            if linear:
                out.append((part, rs + lo - at, rs + hi - at, True))
            else:
                out.append((part, rs, re_, False))
        return out


def _part_coding(headers: bytes) -> str:
    for line in headers.split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-transfer-encoding":
            return value.strip().lower().decode("latin-1")
    return ""


def _undo(coding: str, data: bytes) -> bytes:
    if coding == "quoted-printable":
        return quopri.decodestring(data)
    squeezed = re.sub(rb"[^A-Za-z0-9+/=]", b"", data)
    try:
        return base64.b64decode(squeezed[: len(squeezed) // 4 * 4])
    except (binascii.Error, ValueError):
        return b""


def _unquote(data: bytes) -> bytes:
    return _ESCAPE.sub(
        lambda m: b" " if m.group() == b"+" else bytes([int(m.group()[1:], 16)]), data
    )
