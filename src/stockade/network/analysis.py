"""The seam to the protocol detectors, TLS inspection and DLP engine (see ``interface.py``).

The flow engine only ever calls these three through an ``Inspectors`` value, so it can be built
without them and so the implementations stay swappable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from stockade.model.errors import ConfigError
from stockade.network.interface import Detection, DlpMatch, TlsInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class Inspectors:
    detect: Callable[[bytes, bytes], Detection]
    tls: Callable[[bytes, bytes], TlsInfo | None]
    dlp: Any | None  # a DlpEngine: ``.stream()`` -> object with ``feed(bytes)`` and ``close()``

    @classmethod
    def default(cls) -> Inspectors:
        """The shipped detectors (imported by the first detection: :func:`detect`) and DLP
        engine."""
        try:
            from stockade.network import dlp, tls
        except ImportError as exc:
            raise ConfigError(f"the TLS inspection or DLP engine is missing: {exc}") from exc
        return cls(detect=detect, tls=tls.inspect, dlp=dlp.DlpEngine())


def detect(client: bytes, server: bytes) -> Detection:
    """``protocols.detect``, the detectors imported by the first connection that needs them
    (``sensor --pcap`` on a capture whose every connection pcapfast.c decides needs none: about
    15 ms of start-up)."""
    from stockade.network import protocols

    return protocols.detect(client, server)


class DlpFeed:
    """One direction's DLP stream, with match offsets kept relative to the whole direction even
    when a capture gap forces a fresh stream (bytes on both sides of a hole must never join).

    The stream also reads HTTP bodies as the application does (``dlp.decoding``); why decoding
    stopped short (a compression bomb, the decoded budget) collects in :attr:`limits`.

    Most directions hold nothing a sensor or the decoding looks at, and the sensor is passive:
    the bytes of a stretch (from the start or a gap to the next gap or the end) are only kept,
    and checked once when it ends (:meth:`DlpEngine.stretch`, one scan). A quiet stretch needs no
    stream; one without a decoding trigger gets its findings from that same scan (those of a
    stream fed it all); any other gets a stream, fed the same pieces in the same order as it
    would have been from the start, so its findings are the same. Past :data:`UNCHECKED_STRETCH` bytes, or
    :data:`UNCHECKED_TOTAL` across an engine's feeds, a stretch gets its stream at once."""

    __slots__ = ("_base", "_engine", "_parts", "_size", "_stream", "_wait", "limits", "matches",
                 "offset")  # fmt: skip

    def __init__(self, engine: Any, *, wait: bool = True) -> None:
        """``wait=False``: a stream from the first byte of every stretch (the reference the
        tests hold the waiting feed to)."""
        self._engine = engine
        self._wait = wait and _lazy(engine)
        self._stream: Any = None
        self._parts: list[bytes] | None = [] if self._wait else None
        self._size = 0
        if self._parts is None:
            self._stream = _decoding_stream(engine)
        self._base = 0
        self.offset = 0
        self.matches: list[DlpMatch] = []
        self.limits: list[str] = []

    def feed(self, data: bytes) -> None:
        parts = self._parts
        if parts is not None:
            parts.append(data)
            self._size += len(data)
            engine = self._engine
            engine.unchecked += len(data)
            if self._size > UNCHECKED_STRETCH or engine.unchecked > UNCHECKED_TOTAL:
                self._open()
        else:
            self._take(self._stream.feed(data))
        self.offset += len(data)

    def gap(self, missing: int) -> None:
        self._end_stretch()
        if self._wait:
            self._parts = []
        else:
            self._stream = _decoding_stream(self._engine)
        self.offset += missing
        self._base = self.offset

    def close(self) -> list[DlpMatch]:
        self._end_stretch()
        return self.matches

    def _open(self) -> None:
        """The stretch needs a stream after all: give it the kept pieces, as they came."""
        parts = self._release()
        self._stream = stream = _decoding_stream(self._engine)
        for data in parts:
            self._take(stream.feed(data))

    def _release(self) -> list[bytes]:
        parts = self._parts or []
        self._engine.unchecked -= self._size
        self._parts, self._size = None, 0
        return parts

    def _end_stretch(self) -> None:
        if self._parts is not None:
            parts = self._parts
            if not parts:
                self._release()
                return
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            # One scan answers both "quiet?" and, without a decoding trigger, what the stream
            # would find (DlpEngine.stretch); a trigger (None) needs the stream after all.
            found = self._engine.stretch(data)
            if found is not None:
                self._release()
                self._take(found)
                return
            self._open()
        if self._stream is not None:
            self._take(self._stream.close())
            self._note_limits()
            self._stream = None

    def _note_limits(self) -> None:
        for why in getattr(self._stream, "limits", ()):
            if why not in self.limits:
                self.limits.append(why)

    def _take(self, found: object) -> None:
        if not found:
            return
        for m in found:  # type: ignore[attr-defined]
            if self._base:
                m = replace(m, start=m.start + self._base, end=m.end + self._base)
            self.matches.append(m)


# A stretch's bytes kept unchecked: at most what a decoding stream replays (past it, it frames
# without a trigger: DlpEngine.quiet does not speak for that), and a bound for all feeds of one
# engine, as for the bytes its decoding streams hold.
UNCHECKED_STRETCH = 64 * 1024
UNCHECKED_TOTAL = 32 << 20


def _lazy(engine: Any) -> bool:
    """Can this engine's directions wait for one check (see DlpFeed)?"""
    return bool(getattr(engine, "triggers", False)) and not getattr(engine, "always_scan", ())


def _decoding_stream(engine: Any) -> Any:
    from stockade.network.dlp.decoding import DecodingStream
    from stockade.network.dlp.engine import PASSIVE_COALESCE

    # The sensor needs no verdict per segment: let the engine scan segments together.
    return DecodingStream(engine, coalesce=PASSIVE_COALESCE)
