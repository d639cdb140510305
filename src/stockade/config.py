"""Reading YAML and JSON configuration documents safely, with errors that name the file and line.

Every YAML or JSON document a user hands Stockade (policies, ignore files, VEX, manifests, sensor
files, kubeconfigs) is parsed here, within limits:

- at most ``max_bytes`` of text (:data:`MAX_BYTES` unless the reader says otherwise);
- at most :data:`MAX_DEPTH` levels of nesting, refused before anything recurses. libyaml's event
  parser keeps its state on the heap, but PyYAML's C composer recurses once per level and kills the
  process (SIGSEGV) on ``[[[[...``; so the events are walked first, counting the depth, and only a
  document within bounds is composed (this costs about a third more than libyaml's loader alone).
  JSON is pre-scanned for its bracket depth before :mod:`json` sees it;
- aliases may add at most :data:`MAX_ALIAS_NODES` nodes to a document (no billion laughs), and may
  not refer to the node that contains them.

Every problem becomes one error whose text is ``file:line: message``. Bad syntax raises the reader's
error class (ConfigError, exit 2, for configuration files); a value no reader could take (an
impossible date such as ``2024-02-30``) is an :class:`InputError` and a document over a limit a
:class:`DocumentTooComplex` (both exit 3).

Pillars describe their files with pydantic models; :func:`load_yaml_model` parses, validates and
turns any problem into one ``ConfigError`` such as
``policy.yaml:14: spec.rules[2].criteria.vulnerabilities.severity: unknown severity 'severe'``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from stockade.model.envelope import deeper_than
from stockade.model.errors import ConfigError, DocumentTooComplex, InputError, StockadeError
from stockade.model.jsonvalue import orjson

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 100
MAX_ALIAS_NODES = 100_000

ErrorClass = type[StockadeError]


def read_text(path: Path, *, max_bytes: int = MAX_BYTES) -> str:
    """A file's UTF-8 text; no more than ``max_bytes`` is read (a FIFO or a huge file is refused)."""
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > max_bytes:
        raise DocumentTooComplex(f"larger than {_size(max_bytes)}", subject=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text") from exc


def files_below(folder: Path, wanted: Callable[[str], bool]) -> list[Path]:
    """The files below ``folder`` whose names ``wanted`` takes, in path order. Symbolic links to
    folders are followed (a kustomize tree links its base in), each folder once (a link back up
    the tree ends there). Hidden entries are skipped: ``.git``, and the ``..data`` link and
    ``..2024_01_01_...`` copy of a mounted ConfigMap, whose files are also linked at its top
    (read through those links, each file counts once)."""
    seen: set[tuple[int, int]] = set()
    found: list[Path] = []
    for top, dirs, names in os.walk(folder, followlinks=True):
        try:
            st = os.stat(top)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        here = Path(top)
        found += [
            here / n for n in names if not n.startswith(".") and wanted(n) and (here / n).is_file()
        ]
    return sorted(found)


def yaml_sources(paths: Sequence[Path], what: str) -> list[tuple[str, str]]:
    """``(name, text)`` of the YAML documents ``paths`` name: files as given, and every
    ``*.yaml``/``*.yml`` below a folder (:func:`files_below`), in path order. No path at all
    is a ConfigError."""
    if not paths:
        raise ConfigError(f"no {what} files given")
    sources: list[tuple[str, str]] = []
    for p in paths:
        files = files_below(p, _is_yaml_name) if p.is_dir() else [p]
        sources += [(str(f), read_text(f)) for f in files]
    return sources


def repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, each once, sorted (for "names must be unique")."""
    return sorted(n for n, count in Counter(names).items() if count > 1)


def _is_yaml_name(name: str) -> bool:
    return name.endswith((".yaml", ".yml"))


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n} bytes"


# ---------------------------------------------------------------- YAML


class _LimitExceeded(yaml.MarkedYAMLError):
    """A document over a limit; mapped to DocumentTooComplex."""


_OPENS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSES = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _prescan(text: str) -> Any:
    """Walk the stream's events (libyaml keeps its parser state on the heap, so any depth is safe
    here) and refuse nesting deeper than MAX_DEPTH before the composer recurses into it. Returns
    the mark of the first alias, if any."""
    first_alias = None
    depth = 0
    loader = _Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, _OPENS):
                depth += 1
                if depth > MAX_DEPTH:
                    mark: Any = event.start_mark
                    message = f"nested deeper than {MAX_DEPTH} levels"
                    raise _LimitExceeded(None, None, message, mark)
            elif isinstance(event, _CLOSES):
                depth -= 1
            elif first_alias is None and isinstance(event, yaml.AliasEvent):
                first_alias = event.start_mark
    finally:
        loader.dispose()
    return first_alias


_KINDS = {
    "tag:yaml.org,2002:timestamp": "date",
    "tag:yaml.org,2002:int": "integer",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:bool": "boolean",
}


class _BadValue(ConstructorError):
    """A scalar that resolves to a type but is not a valid value of it."""


_MERGE = "tag:yaml.org,2002:merge"


class _CheckedConstructor(SafeConstructor):
    """SafeConstructor whose value errors (``2024-02-30``, a 5000-digit integer) carry the line."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise _bad_value(node, f": {exc}") from None
        except (LookupError, AttributeError):
            # PyYAML's scalar constructors fail this way on text their tag cannot take
            # (``!!bool x``: a KeyError, ``!!int ''``: an IndexError, ``!!timestamp x``: None.groupdict)
            if not isinstance(node, yaml.ScalarNode):
                raise
            raise _bad_value(node, "") from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.refuse_repeated_keys(node)
        return super().construct_mapping(node, deep)

    def key_of(self, key_node: yaml.ScalarNode) -> Any:
        """A key as the mapping holds it (compared to find a key written twice)."""
        return self.construct_object(key_node)

    def refuse_repeated_keys(self, node: yaml.Node) -> None:
        """A key written twice in one mapping is an error: PyYAML keeps the last value without a
        word, so a second ``rules:`` in a policy silently dropped every rule of the first.
        Keys brought in by a merge (``<<: *base``) may be overridden, as YAML means them to be."""
        if not isinstance(node, yaml.MappingNode):
            return  # construct_mapping says what is wrong with it
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                continue
            key = self.key_of(key_node)
            if not isinstance(key, Hashable):
                continue  # construct_mapping says what is wrong with it
            before = len(seen)
            first = seen.setdefault(key, key_node.start_mark.line)
            if len(seen) == before:  # it was there already
                shown = repr(key_node.value if len(key_node.value) <= 40 else key_node.value[:40])
                raise ConstructorError(
                    None,
                    None,
                    f"key {shown} repeated (first at line {first + 1})",
                    key_node.start_mark,
                )


def _bad_value(node: yaml.Node, detail: str) -> _BadValue:
    value = node.value if isinstance(node.value, str) else ""
    shown = repr(value if len(value) <= 40 else value[:40] + "...")
    kind = _KINDS.get(node.tag, "value")
    return _BadValue(None, None, f"invalid {kind} {shown}{detail}", node.start_mark)


# ---------------------------------------------------------------- the Kubernetes dialect

# Kubernetes reads YAML with sigs.k8s.io/yaml, which resolves plain scalars by go-yaml v2's rules
# (its resolve.go), not PyYAML's YAML 1.1 regexes: ``y``/``n`` are booleans, an integer is what
# Go's ``strconv.ParseInt(s, 0, 64)`` takes once every ``_`` is removed (``0o0``, ``0X1F``,
# ``0B1``), ``0e0`` and ``09`` are floats, and ``1:30``, ``=`` and dates stay strings (a timestamp
# decoded into an untyped value is its text). The object then crosses the API as JSON, so a float
# with an integral value is that integer and a mapping key is a string. A manifest read any other
# way could hide ``runAsUser: 0o0`` or ``hostNetwork: y`` from a check the API server would not.
_STR = "tag:yaml.org,2002:str"
_GO_WORDS: dict[str, tuple[str, Any]] = {
    **{
        w: ("tag:yaml.org,2002:bool", True)
        for w in ["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"]
    },
    **{
        w: ("tag:yaml.org,2002:bool", False)
        for w in ["n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"]
    },
    **{w: ("tag:yaml.org,2002:null", None) for w in ("", "~", "null", "Null", "NULL")},
    **{w: ("tag:yaml.org,2002:float", float("nan")) for w in (".nan", ".NaN", ".NAN")},
    **{
        s + w: ("tag:yaml.org,2002:float", float(s + "inf"))
        for s in ("", "+", "-")
        for w in (".inf", ".Inf", ".INF")
    },
}
_GO_INT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)\Z")
_GO_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_GO_INT_MIN, _GO_INT_END = -(2**63), 2**64  # ParseInt's int64, then ParseUint's uint64


def _go_int(plain: str) -> int | None:
    """``plain`` (underscores removed) as Go's ``strconv.ParseInt(plain, 0, 64)`` (falling back
    to ParseUint) reads it, or None."""
    if not _GO_INT.match(plain):
        return None
    digits = plain.lstrip("+-")
    octal = digits[:1] == "0" and digits[1:2].isdigit()  # Go's leading-zero octal
    value = int(plain, 8 if octal else 0)
    return value if _GO_INT_MIN <= value < _GO_INT_END else None


def _go_float(text: str) -> float | None:
    value = float(text)
    return None if value in (float("inf"), float("-inf")) else value  # ParseFloat's ErrRange


def go_scalar(value: str) -> tuple[str, Any]:
    """The tag and value go-yaml v2 gives a plain scalar (the string itself when it is one)."""
    if value in _GO_WORDS:
        return _GO_WORDS[value]
    if value == "<<":
        return "tag:yaml.org,2002:merge", value
    first = value[0]
    if first == "." and _GO_FLOAT.match(value):
        number = _go_float(value)
        if number is not None:
            return "tag:yaml.org,2002:float", number
    elif first in "+-0123456789":
        plain = value.replace("_", "")
        integer = _go_int(plain)
        if integer is not None:
            return "tag:yaml.org,2002:int", integer
        if _GO_FLOAT.match(plain):
            number = _go_float(plain)
            if number is not None:
                return "tag:yaml.org,2002:float", number
    return _STR, value


def _json_number(value: float) -> float | int:
    """A float as the JSON between kubectl and the API server carries it: ``0.0`` is ``0``."""
    if value.is_integer() and -(2.0**63) <= value < 2.0**63:
        return int(value)
    return value


def _json_key(key: Any) -> Any:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        return str(_json_number(key) if isinstance(key, float) else key)
    return key


class _KubeResolver(Resolver):
    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return go_scalar(value)[0]
        return str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]


class _KubeConstructor(_CheckedConstructor):
    def construct_go_scalar(self, node: yaml.ScalarNode) -> Any:
        tag, value = go_scalar(self.construct_scalar(node))
        if node.tag.endswith(":float") and tag.endswith(":int"):
            return value  # ``!!float 1``: go-yaml makes it 1.0, which JSON carries as 1
        if tag != node.tag:  # an explicit tag the text does not fit (``!!int abc``)
            raise ValueError("Kubernetes does not read it as one")
        return _json_number(value) if isinstance(value, float) else value

    def key_of(self, key_node: yaml.ScalarNode) -> Any:
        return _json_key(self.construct_object(key_node))

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # keys become strings before they meet in a dict, where True and 1 would be one key
        if not isinstance(node, yaml.MappingNode):  # ``!!map [1]``, ``!!set x``
            raise ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark
            )
        self.refuse_repeated_keys(node)
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _json_key(self.construct_object(key_node, deep=deep))
            if not isinstance(key, Hashable):
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found unhashable key",
                    key_node.start_mark,
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


_KubeConstructor.yaml_constructors = {
    **SafeConstructor.yaml_constructors,
    **{
        f"tag:yaml.org,2002:{kind}": _KubeConstructor.construct_go_scalar
        for kind in ("bool", "int", "float")
    },
}


# The parser half of a loader: libyaml's when PyYAML was built with it, else the pure-Python
# stages. Either way the same constructor and resolver follow, so a document means one thing.
_PURE_PARSER: tuple[type, ...] = (Reader, Scanner, Parser, Composer)
try:
    from yaml._yaml import CParser

    _PARSER: tuple[type, ...] = (CParser,)
except ImportError:  # pragma: no cover - PyYAML built without libyaml (tests run this in a child)
    _PARSER = _PURE_PARSER


def _loader_class(name: str, parser: tuple[type, ...], constructor: type, resolver: type) -> type:
    """A loader: ``parser``'s stages (the first one takes the text), then ``constructor`` and
    ``resolver``."""
    stages: tuple[Any, ...] = (*parser, constructor, resolver)

    def __init__(self: Any, text: str) -> None:
        stages[0].__init__(self, text)
        for stage in stages[1:]:
            stage.__init__(self)

    return type(name, stages, {"__init__": __init__})


_Loader = _loader_class("_Loader", _PARSER, _CheckedConstructor, Resolver)
_KubeLoader = _loader_class("_KubeLoader", _PARSER, _KubeConstructor, _KubeResolver)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_aliases(root: yaml.Node, first_alias: Any) -> None:
    """Refuse a node graph whose aliases add more than MAX_ALIAS_NODES nodes or form a cycle."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _LimitExceeded(
                None, None, "an alias refers to a node that contains it", node.start_mark
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    if sizes[id(root)] - len(sizes) > MAX_ALIAS_NODES:
        raise _LimitExceeded(
            None,
            None,
            f"aliases expand the document by more than {MAX_ALIAS_NODES} nodes",
            first_alias,
        )


def _yaml_error(exc: yaml.YAMLError, name: str, error: ErrorClass, first_line: int) -> Exception:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = first_line + mark.line if mark is not None else None
    problem = (
        getattr(exc, "problem", None)
        or getattr(exc, "context", None)
        or (str(exc).splitlines() or [type(exc).__name__])[0]
    )
    if isinstance(exc, _LimitExceeded):
        return DocumentTooComplex(problem, subject=name, line=line)
    if isinstance(exc, _BadValue):
        # a value no reader could take (2024-02-30): the input is unreadable, not misconfigured
        return InputError(problem, subject=name, line=line)
    return error(f"invalid YAML: {problem}", subject=name, line=line)


def _check_length(text: str, name: str, max_bytes: int) -> None:
    if len(text) > max_bytes:
        raise DocumentTooComplex(f"larger than {_size(max_bytes)}", subject=name)


def parse_yaml_all(
    text: str,
    *,
    name: str,
    error: ErrorClass = ConfigError,
    first_line: int = 1,
    max_bytes: int = MAX_BYTES,
    kubernetes: bool = False,
) -> list[tuple[Any, yaml.Node]]:
    """Every document of a YAML stream as (value, node tree for line numbers); empty documents
    included as (None, node). ``first_line`` is the line the text starts at in its file.
    ``kubernetes``: scalars and keys as the API server gets them from kubectl (see
    :func:`go_scalar`), for manifests and the components' own config files."""
    _check_length(text, name, max_bytes)
    out = []
    loader = (_KubeLoader if kubernetes else _Loader)(text)
    try:
        first_alias = _prescan(text)
        while loader.check_node():
            node = loader.get_node()
            assert node is not None  # check_node said there is one
            if first_alias is not None:
                _check_aliases(node, first_alias)
            out.append((loader.construct_document(node), node))
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, name, error, first_line) from None
    finally:
        loader.dispose()
    return out


def parse_yaml(
    text: str,
    *,
    name: str,
    error: ErrorClass = ConfigError,
    max_bytes: int = MAX_BYTES,
    kubernetes: bool = False,
) -> tuple[Any, yaml.Node | None]:
    """The document's value and its node tree (for line numbers); one document only."""
    docs = parse_yaml_all(text, name=name, error=error, max_bytes=max_bytes, kubernetes=kubernetes)
    if len(docs) > 1:
        line = docs[1][1].start_mark.line + 1
        raise error("expected a single document, found another", subject=name, line=line)
    return docs[0] if docs else (None, None)


# ---------------------------------------------------------------- JSON

_JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET = re.compile(r"[\[\]{}]")
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


def _json_too_deep(text: str) -> int | None:
    """The line where bracket nesting (outside strings) passes MAX_DEPTH, or None."""
    skeleton = _JSON_STRING.sub("", text)  # strings hold no newline, so lines stay where they are
    brackets = _NOT_BRACKET.sub("", skeleton)
    if max(accumulate(map(_DELTA.__getitem__, brackets)), default=0) <= MAX_DEPTH:
        return None
    depth = 0
    for match in _BRACKET.finditer(skeleton):
        depth += _DELTA[match.group()]
        if depth > MAX_DEPTH:
            return skeleton.count("\n", 0, match.start()) + 1
    return None  # pragma: no cover - the first pass saw it


def parse_json(
    text: str,
    *,
    name: str,
    error: ErrorClass = ConfigError,
    max_bytes: int = MAX_BYTES,
    spared: frozenset[str] = frozenset(),
) -> Any:
    """A JSON document, nested no deeper than MAX_DEPTH.

    Decoded first (the decoder stops deep nesting with RecursionError, and a document of
    ``max_bytes`` is small enough to hold), then measured by a walk over its containers: cheaper
    than scanning the text, which is done only to name the line of a document refused. The
    members named in ``spared`` of a top-level object are not walked: for a caller that bounds
    their nesting itself (an agent's batch validates every event and its ``data``'s depth)."""
    _check_length(text, name, max_bytes)
    doc = _decoded_exactly(text)
    if doc is _NOT_DECODED:
        doc = _json_loads(text, name, error)
    walked = (
        {k: v for k, v in doc.items() if k not in spared} if spared and type(doc) is dict else doc
    )
    if deeper_than(walked, MAX_DEPTH):
        _refuse_deep(text, name)
        raise DocumentTooComplex(f"nested deeper than {MAX_DEPTH} levels", subject=name)
    return doc


def _json_loads(text: str, name: str, error: ErrorClass) -> Any:
    """The reference decoding (:mod:`json`), its failures said as :func:`parse_json` says them."""
    try:
        return json.loads(text)
    except RecursionError:
        _refuse_deep(text, name)
        raise error("invalid JSON: nested too deep", subject=name) from None
    except json.JSONDecodeError as exc:
        _refuse_deep(text, name)  # too deep is said first, as of a valid document
        raise error(f"invalid JSON: {exc.msg}", subject=name, line=exc.lineno) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        _refuse_deep(text, name)
        raise error(f"invalid JSON: {exc}", subject=name) from None


_NOT_DECODED = object()
# An integer token of 19 digits or more (the reference's alone: orjson reads it as a float) is a
# digit run after a bracket, a comma, a colon, white space or a minus sign, or at the start. With
# every digit a "0", those a space and every other byte an "x", that is one bytes.find; a digit
# run inside a hex id or after a decimal point is not one.
_NUMBER_SHAPES = bytes(
    48 if 48 <= c <= 57 else 32 if c in b" \t\n\r[,:-" else 120 for c in range(256)
)
_LONG_INTEGER = b" " + b"0" * 19


def _decoded_exactly(text: str) -> Any:
    """``text`` decoded by orjson (a batch of events in half the time of :mod:`json`) when that
    gives exactly what :func:`json.loads` gives, else ``_NOT_DECODED`` (the reference then
    decides, and says any error as before). orjson refuses what :mod:`json` takes beyond the
    standard (NaN, Infinity, numbers beyond a double's range, lone surrogates, nesting over 1024)
    and reads an integer beyond 64 bits as a float: a document that may hold an integer of 19
    digits or more (one of 18 is below 2**63) goes to the reference. Its floats are
    correctly rounded as Python's (tests/security/test_config_inputs.py compares the two)."""
    if orjson is None:
        return _NOT_DECODED
    try:
        raw = text.encode()
    except UnicodeEncodeError:  # a lone surrogate in the text
        return _NOT_DECODED
    if _LONG_INTEGER in b" " + raw.translate(_NUMBER_SHAPES):
        return _NOT_DECODED
    try:
        return orjson.loads(raw)
    except ValueError:  # orjson.JSONDecodeError
        return _NOT_DECODED


def _refuse_deep(text: str, name: str) -> None:
    line = _json_too_deep(text)
    if line is not None:
        raise DocumentTooComplex(f"nested deeper than {MAX_DEPTH} levels", subject=name, line=line)


# ---------------------------------------------------------------- validation


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
    from pydantic import ValidationError  # imported when a model is validated, not by every reader

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
