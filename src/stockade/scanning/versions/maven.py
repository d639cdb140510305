"""Maven versions, ordered as Maven's ComparableVersion does.

The text is lower-cased and split into tokens at ``.``, ``-`` and digit/letter transitions (a
transition counts as ``-``); empty tokens are 0. ``-`` opens a nested list. Trailing "null" tokens
(0, "", "final", "ga", "release") are trimmed from each list. Qualifiers order
``alpha < beta < milestone < rc = cr < snapshot < "" = ga = final = release < sp`` and unknown
qualifiers after ``sp``, alphabetically; ``a1``/``b1``/``m1`` mean alpha/beta/milestone. Numbers
sort after qualifiers and after nested lists. The key is an immutable tree compared pairwise
with null padding, which a flat tuple cannot express.
"""

from __future__ import annotations

from functools import total_ordering

from stockade.scanning.versions.interface import Scheme, VersionError

_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_RELEASE_INDEX = _QUALIFIERS.index("")
_INT, _STR, _LIST = 0, 1, 2


def _qualifier_rank(q: str) -> tuple[int, str]:
    q = _ALIASES.get(q, q)
    if q in _QUALIFIERS:
        return (_QUALIFIERS.index(q), "")
    return (len(_QUALIFIERS), q)


def _is_null(item: tuple) -> bool:
    kind, val = item
    if kind == _INT:
        return val == 0
    if kind == _STR:
        return val == (_RELEASE_INDEX, "")
    return len(val) == 0


def _cmp_null(item: tuple) -> int:
    """Compare one item against a missing one (padding)."""
    kind, val = item
    if kind == _INT:
        return 1 if val > 0 else 0
    if kind == _STR:
        rel = (_RELEASE_INDEX, "")
        return (val > rel) - (val < rel)
    return _cmp_null(val[0]) if val else 0


def _cmp(a: tuple | None, b: tuple | None) -> int:
    if a is None:
        return -_cmp_null(b) if b is not None else 0
    if b is None:
        return _cmp_null(a)
    ka, va = a
    kb, vb = b
    if ka == kb:
        if ka == _LIST:
            return _cmp_lists(va, vb)
        return (va > vb) - (va < vb)
    # int > list > string (Maven: IntItem beats everything; ListItem beats StringItem).
    order = {_INT: 2, _LIST: 1, _STR: 0}
    return 1 if order[ka] > order[kb] else -1


def _cmp_lists(a: tuple, b: tuple) -> int:
    for i in range(max(len(a), len(b))):
        r = _cmp(a[i] if i < len(a) else None, b[i] if i < len(b) else None)
        if r:
            return r
    return 0


@total_ordering
class MavenKey:
    __slots__ = ("items",)

    def __init__(self, items: tuple) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MavenKey) and _cmp_lists(self.items, other.items) == 0

    def __lt__(self, other: MavenKey) -> bool:
        return _cmp_lists(self.items, other.items) < 0

    def __hash__(self) -> int:
        return hash(_canonical(self.items))

    def __repr__(self) -> str:
        return f"MavenKey({self.items!r})"


def _canonical(items: tuple) -> tuple:
    return tuple((k, _canonical(v) if k == _LIST else v) for k, v in items)


def _trim(items: list) -> list:
    """Drop null items from the end, looking past nested lists as Maven's normalize() does."""
    i = len(items) - 1
    while i >= 0:
        if _is_null(items[i]):
            del items[i]
        elif items[i][0] != _LIST:
            break
        i -= 1
    return items


def _token(tok: str, followed_by_digit: bool) -> tuple:
    if tok.isdigit():
        return (_INT, int(tok))
    if followed_by_digit and len(tok) == 1 and tok in "abm":
        tok = {"a": "alpha", "b": "beta", "m": "milestone"}[tok]
    return (_STR, _qualifier_rank(tok))


def parse(text: str) -> MavenKey:
    v = text.strip().lower()
    if not v or any(c.isspace() for c in v):
        raise VersionError("maven", text, "empty or contains whitespace")
    # Tokenize into (separator, token) pairs; a digit/letter transition acts as "-".
    pairs: list[tuple[str, str]] = []
    sep, cur = ".", ""
    for c in v:
        if c in ".-":
            pairs.append((sep, cur))
            sep, cur = c, ""
        elif cur and (c.isdigit() != cur[-1].isdigit()):
            pairs.append((sep, cur))
            sep, cur = "t", c  # a transition: nests like "-", but "a1" means alpha-1
        else:
            cur += c
    pairs.append((sep, cur))
    stack: list[list] = [[]]
    for idx, (sep, tok) in enumerate(pairs):
        nxt_digit = idx + 1 < len(pairs) and pairs[idx + 1][0] == "t"
        item = _token(tok, nxt_digit) if tok else (_INT, 0)
        if sep in "-t" and idx > 0:
            sub: list = []
            stack.append(sub)
        stack[-1].append(item)
    # Fold the nested lists from the innermost out, trimming nulls at each level.
    while len(stack) > 1:
        inner = _trim(stack.pop())
        stack[-1].append((_LIST, tuple(inner)))
    return MavenKey(tuple(_trim(stack[0])))


SCHEME = Scheme("maven", parse)
