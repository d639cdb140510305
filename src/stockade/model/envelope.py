"""Validation of an event envelope received from outside (``Event.from_dict``).

Everything an agent sends is checked against bounds before it becomes an :class:`Event`: ids are
32 lowercase hex digits, kinds dotted slugs, times carry a zone (kept in UTC), strings and
``data`` have size and nesting limits. Any problem is one :class:`InputError` naming the field.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NoReturn

from stockade.model.errors import InputError, UsageError
from stockade.model.jsonvalue import orjson, plain_json
from stockade.model.resource import ResourceRef
from stockade.model.severity import Severity

ID_RE = re.compile(r"[0-9a-f]{32}\Z")
KIND_RE = re.compile(r"[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)*\Z")
MODES = frozenset({"discover", "monitor", "protect"})

MAX_KIND = 80
MAX_SOURCE = 80
MAX_MESSAGE = 8192
MAX_NAME = 253  # a DNS name, a Kubernetes object name
MAX_DIGEST = 200
MAX_LABELS = 64
MAX_LABEL = 1024
MAX_DATA_BYTES = 64 * 1024
MAX_DATA_DEPTH = 16
MAX_COUNT = 1_000_000_000

_FIELDS = frozenset(
    {
        "id",
        "kind",
        "category",
        "at",
        "severity",
        "source",
        "message",
        "resource",
        "peer",
        "data",
        "action",
        "mode",
        "node",
        "rule",
        "count",
    }
)


def _fail(field: str, problem: str) -> InputError:
    return InputError(f"event {field}: {problem}" if field else f"event: {problem}")


def _text(value: Any, field: str, limit: int, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        _raise(field, "expected a string")
    if len(value) > limit:
        _raise(field, f"longer than {limit} characters")
    return value


def _raise(field: str, problem: str) -> NoReturn:
    raise _fail(field, problem)


def _slug(value: Any, field: str, limit: int, *, optional: bool = False) -> str | None:
    text = _text(value, field, limit, optional=optional)
    if text is not None and not KIND_RE.match(text):
        _raise(field, "expected a dotted slug of a-z, 0-9, '_' and '-'")
    return text


def _time(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        _raise("at", "expected an ISO 8601 time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        _raise("at", "expected an ISO 8601 time")
    if at.tzinfo is None:
        _raise("at", "the time has no zone (add Z or +00:00)")
    return at.astimezone(UTC)


_RESOURCE_KEYS = frozenset({"kind", "name", "namespace", "digest", "labels"})
# Resources that passed, by their content (an agent's batches name the same workloads again and
# again; a ResourceRef is immutable, so one is shared). Bounded: emptied when full.
_RESOURCES: dict[tuple[Any, ...], ResourceRef] = {}
_RESOURCES_MAX = 8192


# The same, keyed by the object's items when they are hashable (no labels, or none given): one
# call builds the key. Only objects that passed are kept, so an unknown key misses.
_RESOURCE_ITEMS: dict[tuple[Any, ...], ResourceRef] = {}


def _resource(value: Any, field: str) -> ResourceRef | None:
    if value is None:
        return None
    if type(value) is dict:
        try:
            items = tuple(value.items())
            known = _RESOURCE_ITEMS.get(items)
        except TypeError:  # labels (an object), or a list where a string belongs
            items = None
        else:
            if known is not None:
                return known
        if items is not None:
            ref = _resource_by_content(value, field)
            if len(_RESOURCE_ITEMS) >= _RESOURCES_MAX:
                _RESOURCE_ITEMS.clear()
            _RESOURCE_ITEMS[items] = ref  # it passed (a refusal has raised)
            return ref
    return _resource_by_content(value, field)


def _resource_by_content(value: Any, field: str) -> ResourceRef:
    if not isinstance(value, dict):
        _raise(field, "expected an object")
    labels = value.get("labels")
    key: tuple[Any, ...] | None = None
    if value.keys() <= _RESOURCE_KEYS and (not labels or type(labels) is dict):
        key = (
            value.get("kind"),
            value.get("name"),
            value.get("namespace"),
            value.get("digest"),
            tuple(labels.items()) if labels else (),
        )
        try:
            known = _RESOURCES.get(key)
        except TypeError:  # a list or an object where a string belongs: refused below
            key = None
        else:
            if known is not None:
                return known
    ref = _checked_resource(value, field)
    if key is not None:
        if len(_RESOURCES) >= _RESOURCES_MAX:
            _RESOURCES.clear()
        _RESOURCES[key] = ref
    return ref


def _checked_resource(value: dict[str, Any], field: str) -> ResourceRef:
    unknown = set(value) - _RESOURCE_KEYS
    if unknown:
        _raise(field, f"unknown field {sorted(unknown)[0]!r}")
    labels = value.get("labels") or {}
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        _raise(f"{field}.labels", f"expected an object of at most {MAX_LABELS} labels")
    for k, v in labels.items():
        _text(k, f"{field}.labels", MAX_NAME)
        _text(v, f"{field}.labels", MAX_LABEL)
    return ResourceRef(
        kind=str(_slug(value.get("kind"), f"{field}.kind", 40)),
        name=str(_text(value.get("name"), f"{field}.name", MAX_LABEL)),
        namespace=_text(value.get("namespace"), f"{field}.namespace", MAX_NAME, optional=True),
        digest=_text(value.get("digest"), f"{field}.digest", MAX_DIGEST, optional=True),
        labels=tuple(sorted(labels.items())),
    )


def deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep in ``value`` (decoded JSON); one
    pass a level, no recursion."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below = []
        for container in level:
            for item in container.values() if isinstance(container, dict) else container:
                if isinstance(item, dict | list):
                    below.append(item)
        level = below
    return False


def _data(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _raise("data", "expected an object")
    if orjson is not None and _data_fits(value):
        return value
    try:
        text: str | None = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = None
    # nesting deeper than N needs more than N opening brackets in the text (those inside strings
    # only add to the count): most data is walked no further
    maybe_deep = text is None or text.count("{") + text.count("[") > MAX_DATA_DEPTH
    if maybe_deep and deeper_than(value, MAX_DATA_DEPTH):
        _raise("data", f"nested deeper than {MAX_DATA_DEPTH} levels")
    if text is None:
        _raise("data", "not plain JSON")
    if len(text) > MAX_DATA_BYTES:
        _raise("data", f"larger than {MAX_DATA_BYTES} bytes")
    return value


def _data_fits(value: dict[str, Any]) -> bool:
    """Whether ``value`` is plain JSON that :func:`_data`'s checks pass, measured with orjson (ten
    times faster than :func:`json.dumps`); False decides nothing (the checks decide). orjson's
    compact UTF-8 text holds the same brackets, and json.dumps's text is at most six times as
    long (a DEL or control character becomes a six-character escape; separators gain a space,
    other characters their escape), so a sixth of the limit is safe. A depth refusal is said
    here as the checks would say it."""
    try:
        if not plain_json(value):
            return False
        fast = orjson.dumps(value)
    except (TypeError, RecursionError):  # beyond 64-bit integers, lone surrogates, deep nesting
        return False
    if 6 * len(fast) > MAX_DATA_BYTES:
        return False
    if fast.count(b"{") + fast.count(b"[") > MAX_DATA_DEPTH and deeper_than(value, MAX_DATA_DEPTH):
        _raise("data", f"nested deeper than {MAX_DATA_DEPTH} levels")
    return True


_SEVERITY_NAMES = {str(s): s for s in Severity}  # as Event.to_dict writes them: one lookup


def _severity(value: Any) -> Severity:
    if type(value) is str:
        known = _SEVERITY_NAMES.get(value)
        if known is not None:
            return known
    if not isinstance(value, str) or len(value) > 32:
        _raise("severity", "expected a severity name")
    try:
        return Severity.parse(value)
    except UsageError as exc:
        _raise("severity", str(exc))


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        _raise("count", f"expected an integer from 1 to {MAX_COUNT}")
    return value


def event_fields(value: Any) -> dict[str, Any]:
    """The keyword arguments of an :class:`Event` read from ``value`` (a decoded JSON object)."""
    if not isinstance(value, dict):
        _raise("", "expected an object")
    if not value.keys() <= _FIELDS:
        _raise(repr(sorted(set(value) - _FIELDS)[0]), "unknown field")
    ident = value.get("id")
    if not isinstance(ident, str) or not ID_RE.match(ident):
        _raise("id", "expected 32 lowercase hex digits")
    kind = str(_slug(value.get("kind"), "kind", MAX_KIND))
    category = value.get("category")
    if category is not None and category != kind.partition(".")[0]:
        _raise("category", f"does not match kind {kind!r}")
    mode = value.get("mode")
    if mode is not None and (type(mode) is not str or mode not in MODES):
        _raise("mode", f"expected one of {', '.join(sorted(MODES))}")
    # In the order of the fields' checks (the first field refused is the one named). A plain
    # string within its limit, or a count in range, is taken here; anything else goes to the
    # field's check, which takes it or says why not.
    at = _time(value.get("at"))
    severity = _severity(value.get("severity", "unknown"))
    source = value.get("source", "stockade")
    if type(source) is not str or len(source) > MAX_SOURCE:
        source = _text(source, "source", MAX_SOURCE)
    message = value.get("message")
    if type(message) is not str or len(message) > MAX_MESSAGE:
        message = _text(message, "message", MAX_MESSAGE)
    resource = _resource(value.get("resource"), "resource")
    peer = _resource(value.get("peer"), "peer")
    data = _data(value.get("data"))
    action = _slug(value.get("action"), "action", 40, optional=True)
    node = value.get("node")
    if node is not None and (type(node) is not str or len(node) > MAX_NAME):
        node = _text(node, "node", MAX_NAME, optional=True)
    rule = value.get("rule")
    if rule is not None and (type(rule) is not str or len(rule) > MAX_NAME):
        rule = _text(rule, "rule", MAX_NAME, optional=True)
    count = value.get("count", 1)
    if type(count) is not int or not 1 <= count <= MAX_COUNT:
        count = _count(count)
    return {
        "id": ident,
        "kind": kind,
        "at": at,
        "severity": severity,
        "source": source,
        "message": message,
        "resource": resource,
        "peer": peer,
        "data": data,
        "action": action,
        "mode": mode,
        "node": node,
        "rule": rule,
        "count": count,
    }


# ---------------------------------------------------------------- the common shape, at once

# Every field, in the order Event.to_dict writes them (what an agent sends): read in one call.
_ALL = itemgetter(
    "id", "kind", "category", "at", "severity", "source", "message", "resource", "peer", "data",
    "action", "mode", "node", "rule", "count",
)  # fmt: skip
_HEX = "0123456789abcdef"
# Slugs that passed KIND_RE, with their first part (bounded: emptied when full). Only slugs: a
# string is kept after the check has taken it, so nothing else is.
_SLUGS: dict[str, str] = {}
_SLUGS_MAX = 4096


def _known_slug(value: Any, limit: int) -> str | None:
    """The first part of ``value`` when it is a plain string of at most ``limit`` characters that
    KIND_RE takes, else None."""
    if type(value) is not str or len(value) > limit:
        return None
    first = _SLUGS.get(value)
    if first is None:
        if not KIND_RE.match(value):
            return None
        if len(_SLUGS) >= _SLUGS_MAX:
            _SLUGS.clear()
        first = _SLUGS[value] = value.partition(".")[0]
    return first


def event_values(value: Any) -> tuple[Any, ...] | None:
    """The values of an :class:`Event`'s fields, in their declared order, read from ``value`` when
    it is an envelope as :meth:`Event.to_dict` writes it (every field, each a plain value the
    field's check takes), with the values :func:`event_fields` gives; None for anything else,
    valid or not (:func:`event_fields` then builds it or says why not). The checks are those of
    :func:`event_fields` with what repeats from event to event (kinds, actions, resources)
    looked up instead of checked again; tests/model/test_envelope.py holds the two to the same
    events."""
    if type(value) is not dict or len(value) != 15 or not value.keys() <= _FIELDS:
        return None
    (ident, kind, category, at, severity, source, message, resource, peer, data, action, mode,
     node, rule, count) = _ALL(value)  # fmt: skip
    if type(ident) is not str or len(ident) != 32 or ident.strip(_HEX):
        return None
    first = _known_slug(kind, MAX_KIND)
    if first is None or (category is not None and category != first):
        return None
    if mode is not None and (type(mode) is not str or mode not in MODES):
        return None
    if type(at) is not str or len(at) > 64:
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    zone = when.tzinfo
    if zone is None:
        return None
    if zone is not UTC:
        when = when.astimezone(UTC)
    level = _SEVERITY_NAMES.get(severity) if type(severity) is str else None
    if (
        level is None
        or type(source) is not str
        or len(source) > MAX_SOURCE
        or type(message) is not str
        or len(message) > MAX_MESSAGE
        or (action is not None and _known_slug(action, 40) is None)
        or (node is not None and (type(node) is not str or len(node) > MAX_NAME))
        or (rule is not None and (type(rule) is not str or len(rule) > MAX_NAME))
        or type(count) is not int
        or not 1 <= count <= MAX_COUNT
    ):
        return None
    try:  # every field before these is valid: a refusal here is event_fields' own
        ref = _resource(resource, "resource")
        other = _resource(peer, "peer")
        data = _data(data)
    except InputError:
        return None
    return (kind, message, level, source, ref, other, data, when, ident, action, mode, node,
            rule, count)  # fmt: skip
