"""Package URLs (https://github.com/package-url/purl-spec): one builder, used by every cataloger."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

# The purl spec lets ':' stay literal in every component; everything else outside the unreserved
# set is percent-encoded, so "+" in Debian versions becomes %2B (as packageurl libraries write it).
_SAFE = ":"


def _enc(text: str) -> str:
    return quote(text, safe=_SAFE)


def build(
    type_: str,
    name: str,
    version: str = "",
    *,
    namespace: str = "",
    qualifiers: Iterable[tuple[str, str | None]] = (),
    subpath: str = "",
) -> str:
    """A canonical purl string; qualifiers with empty values are dropped and keys sorted."""
    out = ["pkg:", type_.lower(), "/"]
    if namespace:
        out.append("/".join(_enc(seg) for seg in namespace.split("/") if seg))
        out.append("/")
    out.append(_enc(name))
    if version:
        out.append("@")
        out.append(_enc(version))
    quals = sorted((k.lower(), v) for k, v in qualifiers if v)
    if quals:
        out.append("?")
        out.append("&".join(f"{k}={_enc(v)}" for k, v in quals))
    if subpath:
        out.append("#")
        out.append("/".join(_enc(seg) for seg in subpath.split("/") if seg not in ("", ".", "..")))
    return "".join(out)


def with_qualifier(purl: str, key: str, value: str) -> str:
    """``purl`` with qualifier ``key`` set to ``value`` (replacing any previous value)."""
    if not purl or not value:
        return purl
    head, _, sub = purl.partition("#")
    base, _, query = head.partition("?")
    pairs = [p for p in query.split("&") if p and not p.startswith(key + "=")]
    pairs.append(f"{key}={_enc(value)}")
    pairs.sort()
    result = base + "?" + "&".join(pairs)
    return result + ("#" + sub if sub else "")


def parse(text: str) -> tuple[str, str, str, str, dict[str, str], str] | None:
    """(type, namespace, name, version, qualifiers, subpath) of a purl, or None if malformed."""
    from urllib.parse import unquote

    if not text.startswith("pkg:"):
        return None
    rest, _, subpath = text[4:].partition("#")
    rest, _, query = rest.partition("?")
    rest = rest.strip("/")
    type_, _, path = rest.partition("/")
    if not type_ or not path:
        return None
    version = ""
    if "@" in path:
        path, _, version = path.rpartition("@")
    namespace, _, name = path.rpartition("/")
    qualifiers = {}
    for pair in query.split("&"):
        key, sep, value = pair.partition("=")
        if sep and key:
            qualifiers[key.lower()] = unquote(value)
    return (
        type_.lower(),
        "/".join(unquote(s) for s in namespace.split("/") if s),
        unquote(name),
        unquote(version),
        qualifiers,
        unquote(subpath),
    )
