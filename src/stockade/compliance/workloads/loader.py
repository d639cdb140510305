"""Reading manifests: files, folders (recursive), multi-document YAML, ``kubectl get -o json``
Lists, Helm-rendered output and stdin.

A file that cannot be read or parsed becomes an ERROR finding with the reason; the other files and
the other documents of the same file are still read. Only a path that does not exist at all is an
:class:`InputError` (the user mistyped it).
"""

from __future__ import annotations

import json
import re
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockade.compliance.interface import CheckDetails
from stockade.compliance.workloads.engine import Manifest
from stockade.config import files_below, parse_json, parse_yaml_all
from stockade.k8s.objects import expand_list
from stockade.model import Finding, InputError, Pillar, ResourceRef, Severity, Status, StockadeError

SUFFIXES = frozenset({".yaml", ".yml", ".json"})
MAX_BYTES = 64 * 1024 * 1024
INPUT_CHECK_ID = "workloads.input"

_SEPARATOR = re.compile(r"^---(?:[ \t].*)?\r?$", re.MULTILINE)  # CRLF files too
_SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)


@dataclass(slots=True)
class Loaded:
    """Everything read from the inputs: the objects, and one ERROR finding per unreadable input."""

    manifests: list[Manifest] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)


def input_error(location: str, reason: str) -> Finding:
    """The ERROR result for an input that could not be read."""
    return Finding(
        id=INPUT_CHECK_ID,
        pillar=Pillar.COMPLIANCE,
        title="Input could not be read",
        severity=Severity.UNKNOWN,
        resource=ResourceRef(kind="file", name=location),
        status=Status.ERROR,
        details=CheckDetails(
            benchmark="stockade-workloads", benchmark_id="input", reason=reason, location=location
        ),
    )


def load_paths(paths: Iterable[str]) -> Loaded:
    """Read every path (``-`` is stdin); folders are walked for .yaml, .yml and .json files."""
    out = Loaded()
    for raw in paths:
        if raw == "-":
            load_text(sys.stdin.read(), "<stdin>", out)
            continue
        path = Path(raw)
        if not path.exists():
            raise InputError("no such file or directory", subject=raw)
        for file in _files(path):
            _load_file(file, out)
    return out


def _files(path: Path) -> list[Path]:
    """A file itself; a folder's manifest files (:func:`~stockade.config.files_below`)."""
    if not path.is_dir():
        return [path]
    return files_below(path, lambda name: Path(name).suffix.lower() in SUFFIXES)


def _load_file(file: Path, out: Loaded) -> None:
    try:
        if not stat.S_ISREG(file.stat().st_mode):  # a FIFO or a device would block or never end
            out.errors.append(input_error(str(file), "not a regular file"))
            return
        if file.stat().st_size > MAX_BYTES:
            out.errors.append(
                input_error(str(file), f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
            )
            return
        text = file.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        out.errors.append(input_error(str(file), exc.strerror or str(exc)))
        return
    except UnicodeDecodeError as exc:
        out.errors.append(input_error(str(file), f"not UTF-8 text (byte {exc.start})"))
        return
    load_text(text, str(file), out)


def load_text(text: str, name: str, out: Loaded | None = None) -> Loaded:
    """Parse one file's text: JSON, or YAML split into documents on ``---`` lines."""
    out = out if out is not None else Loaded()
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            _add(parse_json(text, name=name, error=InputError, max_bytes=MAX_BYTES), name, out)
        except StockadeError as exc:
            if exc.message != "invalid JSON: Extra data":
                out.errors.append(input_error(name, _template_hint(text, _reason(exc))))
            else:  # parse_json measured the whole text's nesting before saying so
                _json_stream(text, name, out)
        return out
    for number, (line, doc) in enumerate(_documents(text), start=1):
        location = f"{name}#{number}"
        source = _SOURCE.search(doc)
        if source:
            location += f" ({source.group(1).strip()})"
        try:
            docs = parse_yaml_all(
                doc,
                name=location,
                error=InputError,
                first_line=line,
                max_bytes=MAX_BYTES,
                kubernetes=True,
            )
        except StockadeError as exc:
            out.errors.append(input_error(location, _template_hint(doc, _reason(exc))))
            continue
        for data, _node in docs:
            _add(data, location, out)
    return out


def _json_stream(text: str, name: str, out: Loaded) -> None:
    """Objects one after another (``kubectl get pods -o json | jq '.items[]'``): each is a
    document, numbered as YAML documents are; a broken one ends the stream with an ERROR."""
    decoder = json.JSONDecoder()
    at, number = 0, 0
    while True:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        if at == len(text):
            return
        number += 1
        location = f"{name}#{number}"
        try:
            doc, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            out.errors.append(input_error(location, f"invalid JSON: {exc.msg} (line {exc.lineno})"))
            return
        except ValueError as exc:  # an integer of more than 4300 digits
            out.errors.append(input_error(location, f"invalid JSON: {exc}"))
            return
        _add(doc, location, out)


def _documents(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each ``---``-separated document."""
    starts = [0] + [m.start() for m in _SEPARATOR.finditer(text)]
    line = 1
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        chunk = text[start:end]
        yield line, chunk[3:] if i > 0 else chunk  # drop the "---"; the rest of its line stays
        line += chunk.count("\n")


def _template_hint(text: str, reason: str) -> str:
    """A parse error's reason, said as what it is when the text is a Helm (Go) template."""
    if "{{" in text:
        return f"an unrendered template ({reason}); render it first (helm template)"
    return reason


def _reason(exc: StockadeError) -> str:
    """The loader's one-line problem without the location (the finding names it)."""
    return f"{exc.message} (line {exc.line})" if exc.line else exc.message


def _add(data: Any, location: str, out: Loaded) -> None:
    if data is None:
        return  # an empty document (comments only, or a Helm template that rendered nothing)
    if not isinstance(data, dict):
        out.errors.append(
            input_error(location, f"not a Kubernetes object (a {type(data).__name__})")
        )
        return
    for obj in expand_list(data):
        if obj.get("kind"):
            out.manifests.append(Manifest(obj=obj, location=location))
