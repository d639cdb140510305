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

from .normalize import normalize
from .request import Request, split
from .sensors import WafSensor, builtin_sensors

hyperscan: Any
try:
    import hyperscan
except ImportError:  # pragma: no cover - the DLP engine has the same fallback
    hyperscan = None

EVIDENCE = 64  # characters of decoded text shown around a match, masked
BUFFER = 64 * 1024  # bytes of one direction kept for parsing (the inspector's default depth)
_STEP_TRIGGERS = {
    "url": (rb"%[0-9a-fu]", rb"\+"),
    "html": (rb"&#", rb"&[a-z]{2,8};"),
    "lookups": (rb"\$\{",),
    "sql": (rb"/\*",),
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
        self.always = hyperscan is None  # no usable prefilter: judge every segment's requests
        if hyperscan is not None:
            self._db = self._compile()

    def _compile(self) -> Any:
        exprs: list[bytes] = []
        flags: list[int] = []
        caseless = hyperscan.HS_FLAG_CASELESS
        steps = {step for s in self.sensors for step in s.decode}
        for step in sorted(steps):
            for expr in _STEP_TRIGGERS[step]:
                exprs.append(expr)
                flags.append(caseless)
        for s in self.sensors:
            own = [text.encode("latin-1") for text in s.prefilter or s.patterns]
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
                # a regex Hyperscan cannot approximate: every segment is a candidate
                self.always = True
                continue
            exprs += own
            flags += [flag] * len(own)
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

    def judge(self, request: Request) -> list[WafMatch]:
        """Every sensor on one request (no prefilter): the exact answer."""
        out: list[WafMatch] = []
        fields = _fields(request)
        for sensor in self.sensors:
            hit = _first(sensor, fields)
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


def _fields(request: Request) -> dict[str, list[tuple[str, str]]]:
    return {
        "url": [("url", request.target)],
        "headers": [(f"header:{n}", f"{n}: {v}") for n, v in request.headers],
        "body": [("body", request.body)] if request.body else [],
    }


def _first(
    sensor: WafSensor, fields: dict[str, list[tuple[str, str]]]
) -> tuple[str, str, int, int] | None:
    for location in sensor.in_:
        for where, raw in fields[location]:
            text = normalize(raw, sensor.decode)
            for pattern in sensor.compiled:
                m = pattern.search(text)
                if m is not None:
                    return where, text, m.start(), m.end()
    return None


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
        self._hits: list[int] = []  # end offsets of prefilter/trigger hits not yet placed
        self._marked = False  # the request at _base has a hit
        self._reported: set[tuple[int, str]] = set()
        self._stopped = False  # not HTTP/1.x, or past the buffer: nothing more to judge
        self._on_match = self._record  # one long-lived callable: hyperscan keeps a pointer
        self._hs: Any = None
        if engine._db is not None:
            self._hs = engine._db.stream(match_event_handler=self._on_match)
            self._hs.__enter__()

    def _record(self, _ident: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
        self._hits.append(to)

    def feed(self, data: bytes) -> list[WafMatch]:
        if self._stopped or not data:
            return []
        start = self._seen
        self._seen += len(data)
        if self._hs is not None:
            self._hs.scan(data)
        if self._engine.always:  # a sensor without a prefilter: every segment is a candidate
            self._hits.append(self._seen)
        if len(self._buf) + len(data) > BUFFER:
            self._stop()
            return []
        self._buf += data
        if not self._hits and not self._marked:
            # Nothing to judge: only drop the complete requests from the buffer
            return (
                self._advance(judge=False) if start == self._base or len(self._buf) > 4096 else []
            )
        return self._advance(judge=True)

    def _advance(self, *, judge: bool) -> list[WafMatch]:
        requests, nxt = split(bytes(self._buf), self._base)
        found: list[WafMatch] = []
        hits = sorted(self._hits)
        self._hits.clear()
        for req in requests:
            marked = (req.start == self._base and self._marked) or any(
                req.start < h <= req.end for h in hits
            )
            if judge and marked:
                for m in self._engine.judge(req):
                    key = (req.start, m.sensor)
                    if key not in self._reported:
                        self._reported.add(key)
                        found.append(m)
            if not req.complete:
                self._marked = marked
                nxt = req.start
                break
            self._marked = False
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
