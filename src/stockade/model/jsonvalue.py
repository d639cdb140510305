"""Plain JSON values: exactly the built-in types the standard library and orjson write alike.

orjson (optional: the server extra installs it) writes and measures JSON ten times faster than
:mod:`json`; it is given only values for which :func:`plain_json` holds, so what it writes reads
back as :func:`json.dumps`'s text would (see stockade.store.jsontext and the events' ``data``
check in stockade.model.envelope).
"""

from __future__ import annotations

from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the server extra installs it
    orjson = None  # type: ignore[assignment]

__all__ = ["orjson", "plain_json"]

_SCALARS = frozenset({str, int, bool, type(None)})  # exactly these types, not subclasses


def plain_json(value: Any) -> bool:
    """Whether ``value`` is made of exactly str, int, finite float, bool, None, dict with str
    keys, list and tuple (not an Enum, a UUID, a subclass, a NaN...). Recursive: a caller with
    values nested deeper than the interpreter's limit catches RecursionError."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is float:
        return bool(value - value == 0.0)  # NaN and infinities give NaN
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str or (type(v) not in _SCALARS and not plain_json(v)):
                return False
        return True
    if kind is list or kind is tuple:
        return all(type(v) in _SCALARS or plain_json(v) for v in value)
    return False
