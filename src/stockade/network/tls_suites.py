"""How strong a TLS cipher suite is, from the table in ``data/tls_cipher_suites.yaml`` (its header
names the sources: IANA, RFC 7465, RFC 9325, NIST SP 800-52r2, Mozilla's server-side TLS guidance).

The table is read once, on first use. A suite is judged by the tokens of its IANA name:
``weak`` (broken or unauthenticated), ``legacy`` (outside current guidance: CBC, no forward
secrecy), ``ok``, or ``unknown`` when the code has no name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True, slots=True)
class Strength:
    level: str  # "weak" | "legacy" | "ok" | "unknown"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class _Rule:
    level: str
    reason: str
    token: str = ""
    prefix: str = ""
    suffix: str = ""

    def matches(self, name: str) -> bool:
        return (
            (not self.token or self.token in name)
            and name.startswith(self.prefix)
            and name.endswith(self.suffix)
        )


@cache
def _table() -> tuple[tuple[_Rule, ...], dict[int, str]]:
    # YAML and importlib.resources (zipfile, tempfile, ~8 ms) only when a suite is judged
    from importlib import resources

    from stockade.config import parse_yaml

    text = resources.files(__package__).joinpath("data", "tls_cipher_suites.yaml")
    doc: Any = parse_yaml(text.read_text(encoding="utf-8"), name="tls_cipher_suites.yaml")[0]
    rules = tuple(
        _Rule(
            level=level,
            reason=str(r["reason"]),
            token=str(r.get("token", "")),
            prefix=str(r.get("prefix", "")),
            suffix=str(r.get("suffix", "")),
        )
        for level in ("weak", "legacy")
        for r in doc[level]
    )
    names = {int(code, 16): str(name) for code, name in doc["names"].items()}
    return rules, names


def extra_name(code: int) -> str | None:
    """The IANA name of a suite the parser's own table does not hold."""
    return _table()[1].get(code)


def strength(name: str | None) -> Strength:
    """The strength of the suite named ``name`` (an IANA name, or ``0xNNNN`` when unnamed)."""
    if not name or not name.startswith("TLS_"):
        return Strength("unknown")
    if name.startswith(("TLS_AES_", "TLS_CHACHA20_")):
        return Strength("ok")  # TLS 1.3 suites name no key exchange: all AEAD
    for rule in _table()[0]:
        if rule.matches(name):
            return Strength(rule.level, rule.reason)
    return Strength("ok")
