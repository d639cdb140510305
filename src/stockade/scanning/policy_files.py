"""Reading the gate's input files: the ignore file (``.stockadeignore.yaml``) and OpenVEX documents.

Both are trust boundaries, so they are validated with pydantic; a bad file raises ConfigError that
names the file, the line and the field.

Ignore file::

    ignore:
      - id: CVE-2023-4911            # any alias of the finding matches (CVE, GHSA, DSA, ...)
        package: libc6               # optional: package name or purl (without version: any)
        reason: not reachable in this image   # required
        expires: 2027-01-31          # optional; after that day the entry no longer ignores
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from stockade.model.errors import ConfigError
from stockade.scanning.interface import VulnerabilityDetails

if TYPE_CHECKING:
    import yaml
    from pydantic import ValidationError

MAX_POLICY_FILE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class IgnoreRule:
    id: str
    reason: str
    package: str | None = None
    expires: date | None = None
    source: str = ""
    line: int = 0

    def is_expired(self, today: date) -> bool:
        return self.expires is not None and self.expires < today

    def matches(self, ids: frozenset[str], details: VulnerabilityDetails | None) -> bool:
        if self.id.upper() not in ids:
            return False
        if self.package is None:
            return True
        if details is None:
            return False
        if self.package.startswith("pkg:"):
            if not details.purl:
                return False
            if "@" in self.package.split("?", 1)[0]:
                return _purl_strip(self.package) == _purl_strip(details.purl)
            return purl_base(self.package) == purl_base(details.purl)
        return self.package == details.package

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "package": self.package,
            "reason": self.reason,
            "expires": self.expires.isoformat() if self.expires else None,
            "source": self.source,
            "line": self.line,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class VexProduct:
    id: str
    subcomponents: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VexStatement:
    vulnerability_ids: frozenset[str]  # the name and aliases, upper-cased
    status: str
    products: tuple[VexProduct, ...]
    justification: str | None = None
    impact_statement: str | None = None
    action_statement: str | None = None
    timestamp: datetime | None = None
    source: str = ""

    @property
    def timestamp_key(self) -> float:
        return self.timestamp.timestamp() if self.timestamp else float("-inf")

    @property
    def note(self) -> str:
        detail = self.justification or self.impact_statement or self.action_statement
        return f"VEX {self.status}" + (f": {detail}" if detail else "")


def _purl_strip(purl: str) -> str:
    """A purl without qualifiers and subpath, with percent-escapes decoded."""
    return unquote(purl.split("#", 1)[0].split("?", 1)[0])


def purl_base(purl: str) -> str:
    """``pkg:type/namespace/name`` without version, qualifiers or subpath."""
    core = _purl_strip(purl)
    head, _, tail = core.rpartition("/")
    name = tail.split("@", 1)[0]
    return f"{head}/{name}" if head else name


# ---------------------------------------------------------------- ignore file


def load_ignore_file(path: Path) -> tuple[IgnoreRule, ...]:
    """Parse and validate an ignore file; ConfigError with the line and field when it is wrong."""
    from pydantic import ValidationError

    from stockade.config import parse_yaml
    from stockade.scanning.policy_schema import IgnoreFile

    text = _read(path)
    data, node = parse_yaml(text, name=str(path), max_bytes=MAX_POLICY_FILE)
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise ConfigError("line 1: expected a mapping with an 'ignore' list", subject=str(path))
    try:
        parsed = IgnoreFile.model_validate(data)
    except ValidationError as exc:
        raise _config_error(path, exc, node) from exc
    lines = _item_lines(node, "ignore")
    return tuple(
        IgnoreRule(
            id=e.id,
            package=e.package,
            reason=e.reason,
            expires=e.expires,
            source=str(path),
            line=lines[i] if i < len(lines) else 0,
        )
        for i, e in enumerate(parsed.ignore)
    )


def _item_lines(node: yaml.Node | None, key: str) -> list[int]:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return []
    for k, v in node.value:
        if k.value == key and isinstance(v, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in v.value]
    return []


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """Follow a pydantic error location through the YAML node tree as far as it goes."""
    import yaml

    current = node
    for part in loc:
        if isinstance(current, yaml.MappingNode) and isinstance(part, str):
            nxt = next((v for k, v in current.value if k.value == part), None)
            if nxt is None:
                return current
            current = nxt
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                return current
            current = current.value[part]
        else:
            return current
    return current


def _config_error(path: Path, exc: ValidationError, node: yaml.Node | None) -> ConfigError:

    err = exc.errors()[0]
    loc = tuple(err["loc"])
    field = ".".join(str(p) for p in loc) or "(top level)"
    where = _node_at(node, loc)
    line = f"line {where.start_mark.line + 1}: " if where is not None else ""
    return ConfigError(f"{line}{field}: {err['msg']}", subject=str(path))


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_POLICY_FILE:
            raise ConfigError(f"file is too large ({size} bytes)", subject=str(path))
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("no such file", subject=str(path)) from exc
    except IsADirectoryError as exc:
        raise ConfigError("is a directory, expected a file", subject=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", subject=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", subject=str(path)) from exc


# ---------------------------------------------------------------- OpenVEX


def load_vex(path: Path) -> tuple[VexStatement, ...]:
    """Parse and validate an OpenVEX JSON document into statements."""
    from pydantic import ValidationError

    from stockade.config import parse_json
    from stockade.scanning.policy_schema import VexDocument

    text = _read(path)
    data = parse_json(text, name=str(path), max_bytes=MAX_POLICY_FILE)
    try:
        doc = VexDocument.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        line = _json_line(text, err["loc"])
        where = f"line {line}: " if line else ""
        raise ConfigError(f"{where}{field}: {err['msg']}", subject=str(path)) from exc
    out = []
    for st in doc.statements:
        ids = {st.vulnerability.name.upper(), *(a.upper() for a in st.vulnerability.aliases)}
        out.append(
            VexStatement(
                vulnerability_ids=frozenset(ids),
                status=st.status,
                products=tuple(
                    VexProduct(id=p.id, subcomponents=tuple(s.id for s in p.subcomponents))
                    for p in st.products
                ),
                justification=st.justification,
                impact_statement=st.impact_statement,
                action_statement=st.action_statement,
                timestamp=_aware(st.timestamp or doc.timestamp),
                source=str(path),
            )
        )
    return tuple(out)


def _aware(ts: datetime | None) -> datetime | None:
    from datetime import UTC

    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


def _json_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best effort: the line of the n-th statement named in a validation error."""
    if len(loc) < 2 or loc[0] != "statements" or not isinstance(loc[1], int):
        return None
    decoder = json.JSONDecoder()
    start = text.find('"statements"')
    if start < 0:
        return None
    pos = text.find("[", start) + 1
    for index in range(loc[1] + 1):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if index == loc[1]:
            return text.count("\n", 0, pos) + 1
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return None
    return None
