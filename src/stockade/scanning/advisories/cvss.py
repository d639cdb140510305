"""CVSS base scores computed from vectors (v3.0/v3.1 per the CVSS 3.1 specification, v2.0,
v4.0 per its own specification in :mod:`.cvss4`)."""

from __future__ import annotations

import math

from stockade.scanning.advisories.cvss4 import Cvss4Error, base_score_v4
from stockade.scanning.advisories.model import Cvss

_V3 = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}
_V2 = {
    "AV": {"L": 0.395, "A": 0.646, "N": 1.0},
    "AC": {"H": 0.35, "M": 0.61, "L": 0.71},
    "Au": {"M": 0.45, "S": 0.56, "N": 0.704},
    "C": {"N": 0.0, "P": 0.275, "C": 0.660},
    "I": {"N": 0.0, "P": 0.275, "C": 0.660},
    "A": {"N": 0.0, "P": 0.275, "C": 0.660},
}


class CvssError(ValueError):
    """A vector that is not a valid base vector."""


def _metrics(parts: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in parts:
        k, sep, v = p.partition(":")
        if not sep or k in out:
            raise CvssError(f"bad metric {p!r}")
        out[k] = v
    return out


def roundup(x: float) -> float:
    """CVSS 3.1 Roundup: the smallest one-decimal number >= x, robust to float noise."""
    i = round(x * 100_000)
    if i % 10_000 == 0:
        return i / 100_000
    return (math.floor(i / 10_000) + 1) / 10.0


def score_v3(vector: str) -> float:
    parts = vector.split("/")
    if not parts[0].startswith("CVSS:3."):
        raise CvssError("not a CVSS v3 vector")
    m = _metrics(parts[1:])
    try:
        scope = m["S"]
        if scope not in ("U", "C"):
            raise CvssError("bad scope")
        av, ac, ui = _V3["AV"][m["AV"]], _V3["AC"][m["AC"]], _V3["UI"][m["UI"]]
        pr = _PR[scope][m["PR"]]
        c, i, a = _V3["C"][m["C"]], _V3["I"][m["I"]], _V3["A"][m["A"]]
    except KeyError as exc:
        raise CvssError(f"missing or bad base metric {exc.args[0]!r}") from None
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    impact = 6.42 * iss if scope == "U" else 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploitability = 8.22 * av * ac * pr * ui
    if impact <= 0:
        return 0.0
    if scope == "U":
        return roundup(min(impact + exploitability, 10))
    return roundup(min(1.08 * (impact + exploitability), 10))


def score_v2(vector: str) -> float:
    text = vector[1:-1] if vector.startswith("(") and vector.endswith(")") else vector
    m = _metrics([p for p in text.split("/") if p and not p.startswith("CVSS:")])
    try:
        av, ac, au = _V2["AV"][m["AV"]], _V2["AC"][m["AC"]], _V2["Au"][m["Au"]]
        c, i, a = _V2["C"][m["C"]], _V2["I"][m["I"]], _V2["A"][m["A"]]
    except KeyError as exc:
        raise CvssError(f"missing or bad base metric {exc.args[0]!r}") from None
    impact = 10.41 * (1 - (1 - c) * (1 - i) * (1 - a))
    exploitability = 20 * av * ac * au
    f = 0.0 if impact == 0 else 1.176
    return round(((0.6 * impact) + (0.4 * exploitability) - 1.5) * f + 1e-9, 1)


def parse_vector(vector: str) -> Cvss:
    """A :class:`Cvss` for an OSV-style vector; raises :class:`CvssError` when malformed."""
    v = vector.strip()
    if v.startswith("CVSS:3."):
        return Cvss(version=v[5:8], vector=v, score=score_v3(v))
    if v.startswith("CVSS:4.0/"):
        try:
            return Cvss(version="4.0", vector=v, score=base_score_v4(v))
        except Cvss4Error as exc:
            raise CvssError(str(exc)) from None
    return Cvss(version="2.0", vector=v, score=score_v2(v))


def is_v2(vector: str | None) -> bool:
    """A v2 vector (``AV:N/AC:L/Au:N/...``, optionally ``CVSS:2.0/`` or in parentheses): its
    score is on v2's own scale, where NVD rates 7.0 to 10.0 high and nothing critical."""
    return vector is not None and not vector.startswith(("CVSS:3", "CVSS:4"))
