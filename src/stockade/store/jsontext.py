"""The JSON text of a stored JSON column (the events' ``resource``, ``peer`` and ``data``, the
graph's facts...): orjson's when it is installed and the value is plain JSON, :func:`json.dumps`'s
otherwise.

orjson writes the same document ten times faster (no spaces after separators, UTF-8 instead of
``\\u`` escapes: the same values read back). It is given only values made of exactly str, int,
finite float, bool, None, dict with str keys, list and tuple, which both write alike; anything
else (a NaN, an Enum, a UUID, a subclass, an object json refuses) goes to :func:`json.dumps`, so
it is written or refused exactly as before. orjson's own refusals (integers beyond 64 bits, lone
surrogates, nesting beyond 255) go there too.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the server extra installs it
    orjson = None  # type: ignore[assignment]


def json_text(value: Any) -> str:
    """``value`` as JSON text (see the module's description)."""
    if orjson is not None:
        try:
            if _plain(value):
                return orjson.dumps(value).decode()
        except (TypeError, RecursionError):  # orjson.JSONEncodeError is a TypeError
            pass
    return json.dumps(value)


_SCALARS = frozenset({str, int, bool, type(None)})  # exactly these types, not subclasses


def _plain(value: Any) -> bool:
    """Whether ``value`` is plain JSON of exactly the built-in types (see the module)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is float:
        return bool(value - value == 0.0)  # NaN and infinities give NaN
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str or (type(v) not in _SCALARS and not _plain(v)):
                return False
        return True
    if kind is list or kind is tuple:
        return all(type(v) in _SCALARS or _plain(v) for v in value)
    return False
