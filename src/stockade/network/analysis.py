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
        """The shipped detectors and DLP engine."""
        try:
            from stockade.network import dlp, protocols, tls
        except ImportError as exc:
            raise ConfigError(f"the protocol detectors or DLP engine are missing: {exc}") from exc
        return cls(detect=protocols.detect, tls=tls.inspect, dlp=dlp.DlpEngine())


class DlpFeed:
    """One direction's DLP stream, with match offsets kept relative to the whole direction even
    when a capture gap forces a fresh stream (bytes on both sides of a hole must never join).

    The stream also reads HTTP bodies as the application does (``dlp.decoding``); why decoding
    stopped short (a compression bomb, the decoded budget) collects in :attr:`limits`."""

    __slots__ = ("_base", "_engine", "_stream", "limits", "matches", "offset")

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._stream = _decoding_stream(engine)
        self._base = 0
        self.offset = 0
        self.matches: list[DlpMatch] = []
        self.limits: list[str] = []

    def feed(self, data: bytes) -> None:
        self._take(self._stream.feed(data))
        self.offset += len(data)

    def gap(self, missing: int) -> None:
        self._take(self._stream.close())
        self._note_limits()
        self._stream = _decoding_stream(self._engine)
        self.offset += missing
        self._base = self.offset

    def close(self) -> list[DlpMatch]:
        if self._stream is not None:
            self._take(self._stream.close())
            self._note_limits()
            self._stream = None
        return self.matches

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


def _decoding_stream(engine: Any) -> Any:
    from stockade.network.dlp.decoding import DecodingStream
    from stockade.network.dlp.engine import PASSIVE_COALESCE

    # The sensor needs no verdict per segment: let the engine scan segments together.
    return DecodingStream(engine, coalesce=PASSIVE_COALESCE)
