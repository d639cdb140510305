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

from stockade.model.jsonvalue import orjson, plain_json


def json_text(value: Any) -> str:
    """``value`` as JSON text (see the module's description)."""
    if orjson is not None:
        try:
            if plain_json(value):
                return orjson.dumps(value).decode()
        except (TypeError, RecursionError):  # orjson.JSONEncodeError is a TypeError
            pass
    return json.dumps(value)
