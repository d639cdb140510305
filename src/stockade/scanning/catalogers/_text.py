"""Small text helpers shared by the OS catalogers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def decode(data: bytes) -> str:
    """Bytes to text without ever failing: package databases are UTF-8 but not always clean."""
    return data.decode("utf-8", errors="replace")


def json_document(data: bytes) -> Any:
    """A JSON file found in an image (a leading BOM allowed, as Node and .NET allow it).

    Raises ValueError for anything unreadable, nesting too deep for the decoder included: the
    decoder stops that with RecursionError, which would otherwise end the whole scan."""
    try:
        return json.loads(decode(data).removeprefix("\ufeff"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def toml_document(text: str) -> dict[str, Any]:
    """A TOML file found in an image; ValueError (TOMLDecodeError is one) if unreadable."""
    import tomllib  # only images with a TOML file pay for the parser's import

    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """Deb822 paragraphs (dpkg status, status.d files): ``Key: value`` with folded continuation
    lines, paragraphs separated by blank lines. Keys are kept as written; the first value wins."""
    # Each value is kept as its list of lines and joined once: appending to a str held in a dict
    # copies it every time, quadratic in a Description of a million continuation lines.
    fields: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for raw in text.splitlines():
        if not raw.strip():
            if fields:
                yield _joined(fields)
            fields, lines = {}, None
            continue
        if raw[0] in " \t":
            if lines is not None:
                lines.append(raw.strip())
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        key = name.strip()
        if key in fields:
            lines = None  # a repeated key: ignore it and its continuations
            continue
        lines = fields[key] = [value.strip()]
    if fields:
        yield _joined(fields)


def _joined(fields: dict[str, list[str]]) -> dict[str, str]:
    return {key: "\n".join(lines) for key, lines in fields.items()}
