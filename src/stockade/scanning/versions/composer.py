"""Composer (Packagist) versions: normalized as ``composer/semver``'s ``VersionParser`` does,
then compared as PHP's ``version_compare`` does (which ``Comparator`` calls).

Normalizing: an optional ``v``, one to four numeric parts padded to four (``1.2`` is
``1.2.0.0``), or a date version (``2010-01-02``); then a stability flag with an optional number
(``stable`` dropped; ``a``/``alpha``, ``b``/``beta``, ``RC``, ``p``/``pl``/``patch``) and an
optional ``-dev`` suffix; build metadata (``+...``) is dropped. Comparing: the text is split into
digit and non-digit parts; numbers compare as numbers and the flags rank
``dev < alpha < beta < RC < (a number) < patch``; where one version runs out, the other's next
part decides against a number. Branch names (``dev-main``)
have no order and are refused.
"""

from __future__ import annotations

import re

from stockade.scanning.versions.interface import Scheme, VersionError

_MODIFIER = r"[._-]?(?:(?P<flag>stable|beta|b|RC|alpha|a|patch|pl|p)(?P<num>(?:[.-]?\d+)*))?(?P<dev>[.-]?dev)?"
_CLASSIC = re.compile(r"v?(?P<nums>\d{1,5}(?:\.\d+){0,3})" + _MODIFIER + r"\Z", re.IGNORECASE)
_DATE = re.compile(
    r"v?(?P<nums>\d{4}(?:[.:-]?\d{2}){1,6}(?:[.:]?\d{1,3})?)" + _MODIFIER + r"\Z", re.IGNORECASE
)
_FLAGS = {"a": "alpha", "alpha": "alpha", "b": "beta", "beta": "beta", "rc": "RC", "p": "patch", "pl": "patch", "patch": "patch"}  # fmt: skip
# PHP's special forms; anything else ranks below "dev", a number ranks as "#"
_RANK = {"dev": 0, "alpha": 1, "a": 1, "beta": 2, "b": 2, "rc": 3, "#": 4, "pl": 5, "p": 5}
_BUILD = re.compile(r"([^,\s+]+)\+\S+\Z")
_PARTS = re.compile(r"\d+|[^\d.]+")
_END = (4, -1)  # where a version runs out: a number beats it, a flag ranked below "#" loses


def normalize(text: str) -> str:
    """The version as Composer normalizes it (``v1.2-beta.2`` -> ``1.2.0.0-beta2``)."""
    raw = text.strip()
    build = _BUILD.match(raw)
    if build:  # build metadata ("1.0.0+20240101") is dropped, as Composer's parser does
        raw = build[1]
    if raw.lower().startswith("dev-") or not raw:
        raise VersionError("composer", text, "a branch, not a version")
    m = _CLASSIC.match(raw)
    if m:
        nums = m["nums"].split(".")
        base = ".".join(nums + ["0"] * (4 - len(nums)))
    else:
        m = _DATE.match(raw)
        if not m:
            raise VersionError("composer", text, "expected MAJOR[.MINOR[.PATCH[.BUILD]]][-FLAG[N]]")
        base = re.sub(r"\D", ".", m["nums"])
    out = base
    flag = (m["flag"] or "").lower()
    if flag and flag != "stable":
        out += "-" + _FLAGS[flag] + re.sub(r"^[.-]", "", m["num"] or "")
    if m["dev"]:
        out += "-dev"
    return out


def _part_key(part: str) -> tuple[int, int]:
    if part.isdigit():
        return (4, int(part))
    low = part.lower()
    rank = next((r for name, r in _RANK.items() if low.startswith(name) and name != "#"), -6)
    return (rank, 0)


def parse(text: str) -> tuple[tuple[int, int], ...]:
    # PHP canonicalizes "-", "_", "+" to "." and splits at every digit/non-digit boundary
    canonical = re.sub(r"[-_+]", ".", normalize(text))
    return (*(_part_key(p) for p in _PARTS.findall(canonical)), _END)


SCHEME = Scheme("composer", parse)
