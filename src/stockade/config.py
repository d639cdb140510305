"""Loading YAML configuration and policy files with errors that name the file and line.

Pillars describe their files with pydantic models; :func:`load_yaml_model` parses, validates and
turns any problem into one ``ConfigError`` such as
``policy.yaml:14: spec.rules[2].criteria.vulnerabilities.severity: unknown severity 'severe'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from stockade.model.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text") from exc


def parse_yaml(text: str, *, name: str) -> tuple[Any, yaml.Node | None]:
    """The document's value and its node tree (for line numbers); one document only."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        value = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{name}{line}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {exc}") from exc
    return value, node


def line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """1-based line of the node at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def format_loc(loc: Sequence[int | str]) -> str:
    out = ""
    for key in loc:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def validate(model: type[M], value: Any, node: yaml.Node | None, *, name: str) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [p for p in err["loc"] if isinstance(p, (int, str))]
        line = line_of(node, loc)
        where = f"{name}:{line}" if line else name
        field = format_loc(loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{where}: {field + ': ' if field else ''}{msg}{more}") from None


def load_yaml_model(model: type[M], path: Path) -> M:
    """Read, parse and validate one YAML file as ``model``; a bad file is rejected whole."""
    value, node = parse_yaml(read_text(path), name=str(path))
    return validate(model, value, node, name=str(path))
