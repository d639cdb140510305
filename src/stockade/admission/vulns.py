"""Vulnerability sources for admission: a facts file (offline tests, air-gapped clusters) and a
cache in front of any slower source."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

from stockade.admission.interface import (
    ImageVulns,
    LookupBudget,
    LookupUnavailable,
    SignatureRequirement,
    SignatureSource,
    SignatureVerdict,
    VulnSource,
    reference_spellings,
)
from stockade.config import load_yaml_model
from stockade.model import Severity
from stockade.model.errors import StockadeError


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    critical: int = Field(default=0, ge=0)
    high: int = Field(default=0, ge=0)
    medium: int = Field(default=0, ge=0)
    low: int = Field(default=0, ge=0)
    fixable: dict[str, int] = Field(default_factory=dict)  # severity name -> count with a fix
    ids: list[str] = Field(default_factory=list)
    maxCvss: float | None = Field(default=None, ge=0.0, le=10.0)


class _FactsFile(RootModel[dict[str, _Facts]]):
    pass


def _summary(image: str, f: _Facts) -> ImageVulns:
    counts = {
        Severity.CRITICAL: f.critical,
        Severity.HIGH: f.high,
        Severity.MEDIUM: f.medium,
        Severity.LOW: f.low,
    }
    fixable = {Severity.parse(k): v for k, v in f.fixable.items()}
    return ImageVulns(
        image=image, counts=counts, fixable_counts=fixable, ids=frozenset(f.ids), max_cvss=f.maxCvss
    )


class FileVulnSource:
    """Image facts from a YAML/JSON file: ``{image: {critical: 1, high: 2, ids: [...], ...}}``."""

    def __init__(self, path: Path) -> None:
        data = load_yaml_model(_FactsFile, path).root
        self._by_image = {image: _summary(image, f) for image, f in data.items()}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FileVulnSource:
        self = cls.__new__(cls)
        parsed = _FactsFile.model_validate(dict(data)).root
        self._by_image = {image: _summary(image, f) for image, f in parsed.items()}
        return self

    def summary(self, image: str, *, budget: LookupBudget) -> ImageVulns | None:
        """The facts given for ``image`` under any spelling of it (``nginx:1.27`` is
        ``docker.io/library/nginx:1.27``), its own first."""
        for spelling in reference_spellings(image):
            if spelling in self._by_image:
                return self._by_image[spelling]
        return None

    def known_images(self, limit: int) -> list[str]:
        return list(self._by_image)[:limit]

    def is_ready(self, image: str) -> bool:
        return True  # answers from memory

    def saturation(self) -> str | None:
        return None


class CachedVulnSource:
    """Remembers answers for ``ttl`` seconds so repeated reviews of an image cost a dict lookup."""

    def __init__(self, inner: VulnSource, *, ttl: float = 300.0) -> None:
        self._inner = inner
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, ImageVulns | None]] = {}

    def is_ready(self, image: str) -> bool:
        """Whether ``summary(image)`` answers from memory (no I/O, no scan): cached here, or the
        inner source answers from memory itself (a facts file, for images it does not list too,
        whose None is never cached here)."""
        hit = self._cache.get(image)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return True
        return self._inner.is_ready(image)

    def saturation(self) -> str | None:
        return self._inner.saturation()

    def warm(self, *, limit: int = 1000, seconds: float = 10.0) -> int:
        """Look up the images the inner source already knows (``known_images``: the latest
        scanned first), at most ``limit`` within ``seconds``, so that the first reviews of them
        answer from memory; returns how many are cached. Each worker process warms its own."""
        known = getattr(self._inner, "known_images", None)
        if known is None:
            return 0
        budget = LookupBudget(seconds)
        for image in known(limit):
            if budget.remaining() <= 0:
                break
            try:
                self.summary(image, budget=budget)
            except StockadeError:  # a reference admission never looks up (dir:, archive:)
                continue
        return len(self._cache)

    def summary(self, image: str, *, budget: LookupBudget) -> ImageVulns | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(image)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        value = self._inner.summary(image, budget=budget)
        if value is not None and value.scanned:
            with self._lock:
                self._cache[image] = (now, value)
        return value

    def signatures(
        self, image: str, requirement: SignatureRequirement, *, budget: LookupBudget
    ) -> SignatureVerdict:
        """Passed through to the inner source (it keeps its own, shorter-lived, verdicts)."""
        if not isinstance(self._inner, SignatureSource):
            raise LookupUnavailable("signatures cannot be verified from a facts file")
        return self._inner.signatures(image, requirement, budget=budget)
