"""WAF sensors as data: where to look in a request, how to decode it, what to match, which CVEs.

A sensor file is YAML, validated strictly (unknown keys, bad regexes, unknown steps or locations
are one-line configuration errors with the file and line)::

    sensors:
      - id: waf.log4shell                 # dotted slug starting with "waf."
        title: Log4Shell JNDI lookup
        cves: [CVE-2021-44228, CVE-2021-45046]
        severity: critical                # low | medium | high | critical
        in: [url, headers, body]          # where to look: request target, header lines, body
        decode: [url, html, lookups, lower]   # steps of stockade.network.waf.normalize, in order
        patterns: ['\\$\\{jndi:']         # Python regexes on the decoded text (any one matches)
        prefilter: []                     # optional Hyperscan expressions on the raw bytes

``patterns`` are exact: a match is a detection. The engine finds candidates first with Hyperscan
on the raw request bytes, with ``prefilter`` (or the patterns themselves, compiled with
Hyperscan's prefilter flag, when none is given) plus a trigger for each decoding step the sensor
uses. A prefilter must match wherever the raw form of a decoded match can appear without any of
those triggers (patterns that use ``\\Z`` or field anchors need one).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stockade.model.errors import ConfigError

from .normalize import STEPS

Location = Literal["url", "headers", "body"]
_SLUG = re.compile(r"^waf(?:\.[a-z0-9_]+)+\Z")
_CVE = re.compile(r"^CVE-\d{4}-\d{4,7}\Z")


class WafSensor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str
    title: str
    cves: tuple[str, ...] = ()
    severity: Literal["low", "medium", "high", "critical"] = "high"
    in_: tuple[Location, ...] = Field(alias="in", min_length=1)
    decode: tuple[str, ...] = ("url", "html", "lower")
    patterns: tuple[str, ...] = Field(min_length=1)
    prefilter: tuple[str, ...] = ()

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(f"id {v!r} must be a dotted slug starting with 'waf.'")
        return v

    @field_validator("cves")
    @classmethod
    def _cves(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for c in v:
            if not _CVE.match(c):
                raise ValueError(f"not a CVE id: {c!r}")
        return v

    @field_validator("decode")
    @classmethod
    def _steps(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for s in v:
            if s not in STEPS:
                raise ValueError(f"unknown decoding step {s!r} (known: {', '.join(STEPS)})")
        return v

    @field_validator("patterns", "prefilter")
    @classmethod
    def _patterns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            try:
                re.compile(p)
                p.encode("latin-1")
            except re.error as exc:
                raise ValueError(f"bad regex {p!r}: {exc}") from None
            except UnicodeEncodeError:
                raise ValueError(
                    f"{p!r}: requests are matched as bytes; write non-ASCII bytes as \\xNN"
                ) from None
        return v

    @property
    def compiled(self) -> tuple[re.Pattern[str], ...]:
        return _compile(self.patterns)


@cache
def _compile(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


class SensorFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sensors: list[WafSensor] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SensorFile:
        from stockade.config import repeated

        dup = repeated(s.id for s in self.sensors)
        if dup:
            raise ValueError(f"sensor ids must be unique: {', '.join(dup)}")
        return self


def parse_sensors(text: str, *, name: str) -> tuple[WafSensor, ...]:
    """Sensors from the text of a sensor file; ConfigError with ``name:line`` when it is wrong."""
    from stockade.config import parse_yaml, validate

    value, node = parse_yaml(text, name=name)
    return tuple(validate(SensorFile, value, node, name=name).sensors)


def load_sensor_file(path: Path) -> tuple[WafSensor, ...]:
    from stockade.config import read_text

    return parse_sensors(read_text(path), name=str(path))


@cache
def builtin_sensors() -> tuple[WafSensor, ...]:
    """The built-in pack (``builtin.yaml`` next to this module)."""
    text = resources.files(__package__).joinpath("builtin.yaml").read_text(encoding="utf-8")
    return parse_sensors(text, name="stockade/network/waf/builtin.yaml")


def sensor_ids(sensors: tuple[WafSensor, ...]) -> tuple[str, ...]:
    return tuple(s.id for s in sensors)


__all__ = ["ConfigError", "WafSensor", "builtin_sensors", "load_sensor_file", "parse_sensors"]
