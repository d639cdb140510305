"""The WAF engine: Hyperscan on the raw bytes of each client direction proposes, the sensors'
decoded patterns decide.

Per direction (one :class:`WafStream`), every segment goes through one Hyperscan stream scan with
the sensors' raw prefilters and a *trigger* for each decoding step a sensor uses (``%`` for URL
decoding, ``&#`` or ``&name;`` for HTML entities, ``${`` for lookups, ``/*`` for SQL comments,
``+`` for form spaces). Case folding and whitespace need no trigger: prefilters are caseless and
written with ``\\s``/``\\W`` classes. A request no expression touched cannot match a decoded
pattern, so it costs that one scan; only a request with a hit is parsed (:mod:`.request`),
decoded per sensor (:mod:`.normalize`) and confirmed with the Python patterns, where each sensor
looks (URL, header lines, body). A request whose body is still arriving is judged on what has
arrived at every segment (inline blocking cannot wait), and reported once per sensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stockade.model.errors import ConfigError
from stockade.model.redact import redact_text

from .normalize import STEPS, markers_in, markers_of, space_tolerant
from .request import Request, split
from .sensors import WafSensor, builtin_sensors

hyperscan: Any
try:
    import hyperscan
except ImportError:  # pragma: no cover - the DLP engine has the same fallback
    hyperscan = None

EVIDENCE = 64  # characters of decoded text shown around a match, masked
BUFFER = 64 * 1024  # bytes of one direction kept for parsing (the inspector's default depth)
# An escape of a byte that could change a match: not %20 (prefilters accept "+" and "%20" where
# a space may be, see normalize.space_tolerant) and not bytes from 0x80 up (no pattern of the
# pack needs one) except the whitespace and overlong-separator lead bytes
_URL_TRIGGER = rb"%(?:[01][0-9a-f]|2[1-9a-f]|[3-7][0-9a-f]|a0|85|c[01]|e0|u)"
_URL_TRIGGER_ALL = rb"%[0-9a-fu]"  # when some expression cannot be made space-tolerant
_STEP_TRIGGERS = {
    "url": (_URL_TRIGGER,),
    "html": (rb"&#", rb"&[a-z]{2,8};"),
    "lookups": (rb"\$\{",),
    # a whole comment without "/" or "," inside: "*/*" and "image/*, */*" in Accept headers are
    # no comment; a comment of punctuation only ("/*,*/") is \W, which prefilters allow
    "sql": (rb"/\*[^/,]{0,256}\*/",),
    "lower": (),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class WafMatch:
    sensor: str
    cves: tuple[str, ...]
    severity: str
    where: str  # "url", "header:User-Agent", "body"
    evidence: str  # decoded text around the match, through the masking gate, cut short
    request_start: int  # offset of the request in the direction


class WafEngine:
    """Compiled sensors; one :meth:`stream` per client direction, fed from one thread."""

    def __init__(self, sensors: Sequence[WafSensor] | None = None) -> None:
        self.sensors = tuple(builtin_sensors() if sensors is None else sensors)
        if not self.sensors:
            raise ConfigError("a WAF engine needs at least one sensor")
        if len({s.id for s in self.sensors}) != len(self.sensors):
            raise ConfigError("WAF sensor ids must be unique")
        self._db: Any = None
        # Hyperscan id -> (the sensors a hit of it makes candidates, whether it was their own
        # prefilter): a trigger names every sensor that uses its decoding step
        self.candidates: list[tuple[frozenset[int], bool]] = []
        # sensors without a usable prefilter: every segment's requests are candidates for them
        self.always: frozenset[int] = (
            frozenset(range(len(self.sensors))) if hyperscan is None else frozenset()
        )
        if hyperscan is not None:
            self._db = self._compile()

    def _compile(self) -> Any:
        exprs: list[bytes] = []
        flags: list[int] = []
        caseless = hyperscan.HS_FLAG_CASELESS
        steps = sorted({step for s in self.sensors for step in s.decode})
        rewritten = {
            text: space_tolerant(text) for s in self.sensors for text in s.prefilter or s.patterns
        }
        exact = all(ok for _, ok in rewritten.values()) and all(
            p.isascii() and "\\x" not in p for s in self.sensors for p in s.patterns
        )
        for step in steps:
            users = frozenset(i for i, s in enumerate(self.sensors) if step in s.decode)
            for expr in _STEP_TRIGGERS[step]:
                exprs.append(expr if exact or expr != _URL_TRIGGER else _URL_TRIGGER_ALL)
                flags.append(caseless)
                self.candidates.append((users, False))
        for i, s in enumerate(self.sensors):
            own = [rewritten[text][0].encode("latin-1") for text in s.prefilter or s.patterns]
            flag = caseless if s.prefilter else caseless | hyperscan.HS_FLAG_PREFILTER
            probe = hyperscan.Database(mode=hyperscan.HS_MODE_STREAM)
            try:
                probe.compile(
                    expressions=own, ids=list(range(len(own))), elements=len(own), flags=flag
                )
            except hyperscan.error as exc:
                if s.prefilter:
                    raise ConfigError(
                        f"WAF sensor {s.id}: prefilter rejected by Hyperscan: {exc}"
                    ) from None
                # a regex Hyperscan cannot approximate: every segment is a candidate for it
                self.always = self.always | {i}
                continue
            exprs += own
            flags += [flag] * len(own)
            self.candidates += [(frozenset((i,)), True)] * len(own)
        db = hyperscan.Database(mode=hyperscan.HS_MODE_STREAM)
        db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
        return db

    def stream(self) -> WafStream:
        return WafStream(self)

    def scan_request(self, data: bytes) -> list[WafMatch]:
        """One whole client direction (or one request): feed + close."""
        s = self.stream()
        found = s.feed(data)
        s.close()
        return found

    def judge(
        self,
        request: Request,
        only: frozenset[int] | None = None,
        decoding_only: frozenset[int] = frozenset(),
    ) -> list[WafMatch]:
        """The sensors (all, or the indexes in ``only``) on one request: the exact answer.

        A sensor in ``decoding_only`` is a candidate only because a decoding trigger fired (its
        own prefilter did not match the raw request), so only fields that need one of its
        decoding steps can match: the others are what the prefilter already cleared."""
        out: list[WafMatch] = []
        fields = _fields(request)
        decoded: dict[tuple[int, tuple[str, ...]], str] = {}  # one decoding per field and chain
        for i, sensor in enumerate(self.sensors):
            if only is not None and i not in only:
                continue
            hit = _first(sensor, fields, decoded, i in decoding_only)
            if hit is not None:
                where, text, at, until = hit
                out.append(
                    WafMatch(
                        sensor=sensor.id,
                        cves=sensor.cves,
                        severity=sensor.severity,
                        where=where,
                        evidence=_evidence(text, at, until),
                        request_start=request.start,
                    )
                )
        return out


_Field = tuple[int, str, str, frozenset[str]]  # (key, where, raw text, decoding markers in it)


def _fields(request: Request) -> dict[str, list[_Field]]:
    def field(key: int, where: str, raw: str) -> _Field:
        return key, where, raw, markers_in(raw)

    return {
        "url": [field(0, "url", request.target)],
        "headers": [
            field(k + 1, f"header:{n}", f"{n}: {v}") for k, (n, v) in enumerate(request.headers)
        ],
        "body": [field(-1, "body", request.body)] if request.body else [],
    }


def _first(
    sensor: WafSensor,
    fields: dict[str, list[_Field]],
    decoded: dict[tuple[int, tuple[str, ...]], str],
    decoding_only: bool,
) -> tuple[str, str, int, int] | None:
    chain = sensor.decode
    markers = markers_of(chain)
    for location in sensor.in_:
        for key, where, raw, present in fields[location]:
            if decoding_only and present.isdisjoint(markers):
                continue
            text = decoded.get((key, chain))
            if text is None:
                text = _decode(key, raw, chain, decoded)
            for pattern in sensor.compiled:
                m = pattern.search(text)
                if m is not None:
                    return where, text, m.start(), m.end()
    return None


def _decode(
    key: int, raw: str, chain: tuple[str, ...], decoded: dict[tuple[int, tuple[str, ...]], str]
) -> str:
    """``raw`` through ``chain``, reusing what sensors with the same first steps decoded."""
    text = raw
    for j in range(len(chain), 0, -1):
        done = decoded.get((key, chain[:j]))
        if done is not None:
            text = done
            break
    else:
        j = 0
    for k in range(j, len(chain)):
        text = decoded[(key, chain[: k + 1])] = STEPS[chain[k]](text)
    return text


def _evidence(text: str, start: int, end: int) -> str:
    lo = max(0, start - 16)
    snippet = text[lo : max(end, lo + 1)][:EVIDENCE]
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in snippet)
    return redact_text(cleaned)


class WafStream:
    """One client direction. ``feed`` returns the matches the bytes so far make certain."""

    __slots__ = ("_base", "_buf", "_engine", "_hits", "_hs", "_marked", "_on_match", "_reported",
                 "_seen", "_stopped")  # fmt: skip

    def __init__(self, engine: WafEngine) -> None:
        self._engine = engine
        self._buf = bytearray()  # bytes from the first request not yet complete
        self._base = 0  # direction offset of _buf[0]
        self._seen = 0  # bytes fed
        self._hits: list[tuple[int, int]] = []  # (end offset, hyperscan id) not yet placed
        # sensors the request at _base (still arriving) is a candidate for, or None
        self._marked: frozenset[int] | None = None
        self._reported: set[tuple[int, str]] = set()
        self._stopped = False  # not HTTP/1.x, or past the buffer: nothing more to judge
        self._on_match = self._record  # one long-lived callable: hyperscan keeps a pointer
        self._hs: Any = None
        if engine._db is not None:
            self._hs = engine._db.stream(match_event_handler=self._on_match)
            self._hs.__enter__()

    def _record(self, ident: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
        self._hits.append((to, ident))

    def feed(self, data: bytes) -> list[WafMatch]:
        if self._stopped or not data:
            return []
        self._seen += len(data)
        if self._hs is not None:
            self._hs.scan(data)
        if self._engine.always:
            self._hits.append((self._seen, -1))
        room = BUFFER - len(self._buf)
        self._buf += data[:room]
        found: list[WafMatch] = []
        if self._hits or self._marked is not None:  # usually not: nothing touched the bytes
            found = self._advance()
        if (
            len(data) > room and not self._stopped
        ):  # past what is kept: judged as far as it fits, then no more
            self._stop()
        return found

    def _advance(self) -> list[WafMatch]:
        requests, nxt = split(bytes(self._buf), self._base)
        found: list[WafMatch] = []
        engine = self._engine
        hits = self._hits
        for req in requests:
            marked = req.start == self._base and self._marked is not None
            own: set[int] = set(self._marked or ()) if marked else set()  # judged on every field
            decoding: set[int] = set()  # only on fields that need decoding
            for at, ident in hits:
                if req.start < at <= req.end:
                    if ident < 0:
                        own |= engine.always
                    else:
                        sensors, is_own = engine.candidates[ident]
                        (own if is_own else decoding).update(sensors)
            only = own | decoding
            if only:
                for m in engine.judge(req, frozenset(only), frozenset(decoding - own)):
                    key = (req.start, m.sensor)
                    if key not in self._reported:
                        self._reported.add(key)
                        found.append(m)
            if not req.complete:
                self._marked = frozenset(only) if only else None
                nxt = req.start
                break
            self._marked = None
        hits.clear()
        if nxt is None:
            self._stop()
            return found
        del self._buf[: nxt - self._base]
        self._base = nxt
        return found

    def _stop(self) -> None:
        self._stopped = True
        self._buf = bytearray()
        self._hits.clear()

    def close(self) -> None:
        self._stop()
        if self._hs is not None:
            self._hs.close()
            self._hs = None
