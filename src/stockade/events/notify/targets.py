"""Notification targets as data: a YAML file, validated whole before anything is sent.

targets:
  - name: soc-webhook            # unique; [a-z0-9][a-z0-9._-]*
    kind: webhook                # webhook, slack, teams, syslog, email, alertmanager
    categories: [dlp, firewall]  # event kind up to the first dot; all when absent
    min_severity: high           # default: everything
    timeout: 5                   # seconds per attempt
    retry: {attempts: 4, backoff: 1, max_backoff: 30}
    settings: {url: "https://soc.example/hook", secret_env: SOC_HOOK_SECRET}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stockade.config import parse_yaml, read_text, validate
from stockade.events.notify.dispatch import NOTIFIERS, build
from stockade.events.notify.interface import (
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    MAX_TIMEOUT,
    NotifyError,
    RetryPolicy,
    Target,
)
from stockade.model import ConfigError, Severity, StockadeError

MAX_TARGETS = 200
NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class _Retry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attempts: int = Field(default=4, ge=1, le=MAX_ATTEMPTS)
    backoff: float = Field(default=1.0, ge=0, le=MAX_BACKOFF)
    max_backoff: float = Field(default=30.0, ge=0, le=MAX_BACKOFF)


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)
    kind: str
    categories: list[str] = Field(default_factory=list, max_length=50)
    min_severity: str = "unknown"
    timeout: float = Field(default=5.0, gt=0, le=MAX_TIMEOUT)
    retry: _Retry = Field(default_factory=_Retry)
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in NOTIFIERS:
            raise ValueError(f"unknown kind {value!r} (expected one of: {', '.join(NOTIFIERS)})")
        return value

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        for c in value:
            if not c or "." in c or len(c) > 40:
                raise ValueError(
                    f"a category is the part of an event kind before the first dot, not {c!r}"
                )
        return value

    @field_validator("min_severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        try:
            Severity.parse(value)
        except StockadeError as exc:
            raise ValueError(exc.message) from None
        return value


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: list[_Target] = Field(max_length=MAX_TARGETS)


def _node_at(node: yaml.Node | None, *loc: int | str) -> yaml.Node | None:
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            node = node.value[key] if key < len(node.value) else None
        else:
            return None
    return node


def to_target(spec: _Target) -> Target:
    r = spec.retry
    try:
        retry = RetryPolicy(attempts=r.attempts, backoff=r.backoff, max_backoff=r.max_backoff)
    except ValueError as exc:
        raise ConfigError(f"target {spec.name!r}: retry: {exc}") from None
    return Target(
        name=spec.name,
        kind=spec.kind,
        settings=spec.settings,
        categories=frozenset(spec.categories),
        min_severity=Severity.parse(spec.min_severity),
        timeout=spec.timeout,
        retry=retry,
    )


def parse_targets(text: str, *, name: str) -> list[Target]:
    """Targets from YAML text; any problem is one ConfigError naming ``name`` and the line."""
    value, node = parse_yaml(text, name=name)
    spec = validate(_File, value, node, name=name)
    out: list[Target] = []
    seen: set[str] = set()
    for i, t in enumerate(spec.targets):
        at = _node_at(node, "targets", i)
        line = at.start_mark.line + 1 if at is not None else None
        if t.name in seen:
            raise ConfigError(f"duplicate target name {t.name!r}", subject=name, line=line)
        seen.add(t.name)
        target = to_target(t)
        try:
            build(target)  # the kind's own settings model checks the settings now, not at 3 a.m.
        except NotifyError as exc:
            settings = _node_at(node, "targets", i, "settings")
            line = settings.start_mark.line + 1 if settings is not None else line
            raise ConfigError(
                f"target {t.name!r}: {exc.message}", subject=name, line=line
            ) from None
        out.append(target)
    return out


def load_targets(path: Path) -> list[Target]:
    return parse_targets(read_text(path), name=str(path))


def find_target(targets: list[Target], name: str) -> Target:
    for t in targets:
        if t.name == name:
            return t
    known = ", ".join(t.name for t in targets) or "none"
    raise ConfigError(f"no target named {name!r} (defined: {known})")
