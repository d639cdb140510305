"""Maven versions, ordered as Maven's ComparableVersion does (checked against Maven 3.8.7's).

The text is lower-cased and split into tokens at ``.``, ``-`` and digit/letter transitions (a
transition counts as ``-``); empty tokens are 0. ``-`` opens a nested list, and so does a
qualifier after a dot when it ends the version or runs into a number (``1.0.RC1`` = ``1.0-RC1``,
``2.0.a`` = ``2-a``), as the version order specification says (``.qualifier`` = ``-qualifier``);
a list compared with nothing is decided by its first item that differs from nothing. Trailing
"null" tokens (0, "", "final", "ga", "release") are trimmed from each list. Qualifiers order
``alpha < beta < milestone < rc = cr < snapshot < "" = ga = final = release < sp`` and unknown
qualifiers after ``sp``, alphabetically; ``a1``/``b1``/``m1`` mean alpha/beta/milestone. Numbers
sort after qualifiers and after nested lists. The key is an immutable tree compared pairwise
with null padding, which a flat tuple cannot express.
"""

from __future__ import annotations

import re
from typing import Final, Literal, TypeAlias

from stockade.scanning.versions.interface import Scheme, VersionError

_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_RELEASE_INDEX = _QUALIFIERS.index("")
_INT: Final = 0
_STR: Final = 1
_LIST: Final = 2

# One token of the key, tagged by kind: a number, a qualifier's rank, or a nested list.
_IntItem: TypeAlias = tuple[Literal[0], int]
_StrItem: TypeAlias = tuple[Literal[1], tuple[int, str]]
_ListItem: TypeAlias = tuple[Literal[2], "_Items"]
_Item: TypeAlias = _IntItem | _StrItem | _ListItem
_Items: TypeAlias = tuple[_Item, ...]


def _qualifier_rank(q: str) -> tuple[int, str]:
    q = _ALIASES.get(q, q)
    if q in _QUALIFIERS:
        return (_QUALIFIERS.index(q), "")
    return (len(_QUALIFIERS), q)


def _is_null(item: _Item) -> bool:
    if item[0] == _INT:
        return item[1] == 0
    if item[0] == _STR:
        return item[1] == (_RELEASE_INDEX, "")
    return len(item[1]) == 0


def _cmp_null(item: _Item) -> int:
    """Compare one item against a missing one (padding)."""
    if item[0] == _INT:
        return 1 if item[1] > 0 else 0
    if item[0] == _STR:
        val, rel = item[1], (_RELEASE_INDEX, "")
        return (val > rel) - (val < rel)
    # A list against nothing: its first item that differs from nothing decides
    # ("1-final.beta" < "1": the release qualifier ties, "beta" does not).
    return next((r for r in map(_cmp_null, item[1]) if r), 0)


def _cmp(a: _Item | None, b: _Item | None) -> int:
    if a is None:
        return -_cmp_null(b) if b is not None else 0
    if b is None:
        return _cmp_null(a)
    if a[0] == _LIST and b[0] == _LIST:
        return _cmp_lists(a[1], b[1])
    if a[0] == _INT and b[0] == _INT:
        return (a[1] > b[1]) - (a[1] < b[1])
    if a[0] == _STR and b[0] == _STR:
        return (a[1] > b[1]) - (a[1] < b[1])
    # int > list > string (Maven: IntItem beats everything; ListItem beats StringItem).
    order = {_INT: 2, _LIST: 1, _STR: 0}
    return 1 if order[a[0]] > order[b[0]] else -1


def _cmp_lists(a: _Items, b: _Items) -> int:
    for i in range(max(len(a), len(b))):
        r = _cmp(a[i] if i < len(a) else None, b[i] if i < len(b) else None)
        if r:
            return r
    return 0


class MavenKey:
    """A parsed version; every comparison is one walk of the two trees (the matcher compares
    a package's key with each range event of each row)."""

    __slots__ = ("items",)

    def __init__(self, items: _Items) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MavenKey) and _cmp_lists(self.items, other.items) == 0

    def __lt__(self, other: MavenKey) -> bool:
        return _cmp_lists(self.items, other.items) < 0

    def __le__(self, other: MavenKey) -> bool:
        return _cmp_lists(self.items, other.items) <= 0

    def __gt__(self, other: MavenKey) -> bool:
        return _cmp_lists(self.items, other.items) > 0

    def __ge__(self, other: MavenKey) -> bool:
        return _cmp_lists(self.items, other.items) >= 0

    def __hash__(self) -> int:
        return hash(_canonical(self.items))

    def __repr__(self) -> str:
        return f"MavenKey({self.items!r})"


def _canonical(items: _Items) -> _Items:
    return tuple((_LIST, _canonical(it[1])) if it[0] == _LIST else it for it in items)


def _trim(items: list[_Item]) -> list[_Item]:
    """Drop null items from the end, looking past nested lists as Maven's normalize() does."""
    i = len(items) - 1
    while i >= 0:
        if _is_null(items[i]):
            del items[i]
        elif items[i][0] != _LIST:
            break
        i -= 1
    return items


def _token(tok: str, followed_by_digit: bool) -> _Item:
    if tok.isdigit():
        return (_INT, int(tok))
    if followed_by_digit and len(tok) == 1 and tok in "abm":
        tok = {"a": "alpha", "b": "beta", "m": "milestone"}[tok]
    return (_STR, _qualifier_rank(tok))


# Dotted numbers, optionally ending in a release qualifier after a dot (".Final"), which trims
# away like a trailing zero.
_DOTTED_NUMBERS = re.compile(r"([0-9]+(?:\.[0-9]+)*)(?:\.(?:final|ga|release))?\Z")


def parse(text: str) -> MavenKey:
    v = text.strip().lower()
    m = _DOTTED_NUMBERS.match(v)
    if m:  # "2.15.2", "5.6.15.final": most versions; numbers only, no nesting
        return MavenKey(tuple(_trim([(_INT, int(n)) for n in m[1].split(".")])))
    return _parse_tokens(text, v)


def _parse_tokens(text: str, v: str) -> MavenKey:
    """The general form (``parse``'s reference for dotted numbers)."""
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
    stack: list[list[_Item]] = [[]]
    last = len(pairs) - 1
    for idx, (sep, tok) in enumerate(pairs):
        nxt_digit = idx < last and pairs[idx + 1][0] == "t"
        item: _Item = _token(tok, nxt_digit) if tok else (_INT, 0)
        # A qualifier after a dot that ends the version or runs into a number (".RC1",
        # ".Final", ".a") nests as after "-": "5.3.0.RC1" = "5.3.0-RC1" < "5.3.0-RC2".
        dotted_qualifier = (
            sep == "." and item[0] == _STR and (idx == last or nxt_digit) and bool(stack[-1])
        )
        if idx > 0 and (sep in "-t" or dotted_qualifier):
            sub: list[_Item] = []
            stack.append(sub)
        stack[-1].append(item)
    # Fold the nested lists from the innermost out, trimming nulls at each level.
    while len(stack) > 1:
        inner = _trim(stack.pop())
        stack[-1].append((_LIST, tuple(inner)))
    return MavenKey(tuple(_trim(stack[0])))


SCHEME = Scheme("maven", parse)
