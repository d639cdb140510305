"""Small text helpers shared by the OS catalogers."""

from __future__ import annotations

from collections.abc import Iterator


def decode(data: bytes) -> str:
    """Bytes to text without ever failing: package databases are UTF-8 but not always clean."""
    return data.decode("utf-8", errors="replace")


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """Deb822 paragraphs (dpkg status, status.d files): ``Key: value`` with folded continuation
    lines, paragraphs separated by blank lines. Keys are kept as written; the first value wins."""
    fields: dict[str, str] = {}
    key: str | None = None
    for raw in text.splitlines():
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, None
            continue
        if raw[0] in " \t":
            if key is not None:
                fields[key] += "\n" + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        key = name.strip()
        if key in fields:
            key = None  # a repeated key: ignore it and its continuations
            continue
        fields[key] = value.strip()
    if fields:
        yield fields
