"""CVSS v4.0 scores from vectors, per the FIRST CVSS v4.0 specification (section 8).

A v4 score is not a formula of the metrics: the vector falls into one of 270 MacroVectors (six
equivalence classes, EQ1-EQ6), each scored by FIRST's experts; the vector's score is its
MacroVector's, lowered by how far the vector sits below the class's highest-severity vectors,
in proportion to the gap to the next lower MacroVector. The tables below are the
specification's data (its lookup table, highest-severity vectors and depths of each class).

:func:`score_v4` scores every metric the vector carries, as FIRST's calculator does (with ``E:P``
it is the CVSS-BT score); :func:`base_score_v4`, the score advisories are kept and rated by, only
the base metrics (CVSS-B, the ``baseScore`` of CVE and NVD records). Supplemental metrics (S, AU,
R, V, RE, U) never change a score.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

# MacroVector (EQ1..EQ6 digits) -> score.
_LOOKUP_TEXT = """
000000:10.0 000001:9.9 000010:9.8 000011:9.5 000020:9.5 000021:9.2 000100:10.0 000101:9.6 000110:9.3
000111:8.7 000120:9.1 000121:8.1 000200:9.3 000201:9.0 000210:8.9 000211:8.0 000220:8.1 000221:6.8
001000:9.8 001001:9.5 001010:9.5 001011:9.2 001020:9.0 001021:8.4 001100:9.3 001101:9.2 001110:8.9
001111:8.1 001120:8.1 001121:6.5 001200:8.8 001201:8.0 001210:7.8 001211:7.0 001220:6.9 001221:4.8
002001:9.2 002011:8.2 002021:7.2 002101:7.9 002111:6.9 002121:5.0 002201:6.9 002211:5.5 002221:2.7
010000:9.9 010001:9.7 010010:9.5 010011:9.2 010020:9.2 010021:8.5 010100:9.5 010101:9.1 010110:9.0
010111:8.3 010120:8.4 010121:7.1 010200:9.2 010201:8.1 010210:8.2 010211:7.1 010220:7.2 010221:5.3
011000:9.5 011001:9.3 011010:9.2 011011:8.5 011020:8.5 011021:7.3 011100:9.2 011101:8.2 011110:8.0
011111:7.2 011120:7.0 011121:5.9 011200:8.4 011201:7.0 011210:7.1 011211:5.2 011220:5.0 011221:3.0
012001:8.6 012011:7.5 012021:5.2 012101:7.1 012111:5.2 012121:2.9 012201:6.3 012211:2.9 012221:1.7
100000:9.8 100001:9.5 100010:9.4 100011:8.7 100020:9.1 100021:8.1 100100:9.4 100101:8.9 100110:8.6
100111:7.4 100120:7.7 100121:6.4 100200:8.7 100201:7.5 100210:7.4 100211:6.3 100220:6.3 100221:4.9
101000:9.4 101001:8.9 101010:8.8 101011:7.7 101020:7.6 101021:6.7 101100:8.6 101101:7.6 101110:7.4
101111:5.8 101120:5.9 101121:5.0 101200:7.2 101201:5.7 101210:5.7 101211:5.2 101220:5.2 101221:2.5
102001:8.3 102011:7.0 102021:5.4 102101:6.5 102111:5.8 102121:2.6 102201:5.3 102211:2.1 102221:1.3
110000:9.5 110001:9.0 110010:8.8 110011:7.6 110020:7.6 110021:7.0 110100:9.0 110101:7.7 110110:7.5
110111:6.2 110120:6.1 110121:5.3 110200:7.7 110201:6.6 110210:6.8 110211:5.9 110220:5.2 110221:3.0
111000:8.9 111001:7.8 111010:7.6 111011:6.7 111020:6.2 111021:5.8 111100:7.4 111101:5.9 111110:5.7
111111:5.7 111120:4.7 111121:2.3 111200:6.1 111201:5.2 111210:5.7 111211:2.9 111220:2.4 111221:1.6
112001:7.1 112011:5.9 112021:3.0 112101:5.8 112111:2.6 112121:1.5 112201:2.3 112211:1.3 112221:0.6
200000:9.3 200001:8.7 200010:8.6 200011:7.2 200020:7.5 200021:5.8 200100:8.6 200101:7.4 200110:7.4
200111:6.1 200120:5.6 200121:3.4 200200:7.0 200201:5.4 200210:5.2 200211:4.0 200220:4.0 200221:2.2
201000:8.5 201001:7.5 201010:7.4 201011:5.5 201020:6.2 201021:5.1 201100:7.2 201101:5.7 201110:5.5
201111:4.1 201120:4.6 201121:1.9 201200:5.3 201201:3.6 201210:3.4 201211:1.9 201220:1.9 201221:0.8
202001:6.4 202011:5.1 202021:2.0 202101:4.7 202111:2.1 202121:1.1 202201:2.4 202211:0.9 202221:0.4
210000:8.8 210001:7.5 210010:7.3 210011:5.3 210020:6.0 210021:5.0 210100:7.3 210101:5.5 210110:5.9
210111:4.0 210120:4.1 210121:2.0 210200:5.4 210201:4.3 210210:4.5 210211:2.2 210220:2.0 210221:1.1
211000:7.5 211001:5.5 211010:5.8 211011:4.5 211020:4.0 211021:2.1 211100:6.1 211101:5.1 211110:4.8
211111:1.8 211120:2.0 211121:0.9 211200:4.6 211201:1.8 211210:1.7 211211:0.7 211220:0.8 211221:0.2
212001:5.3 212011:2.4 212021:1.4 212101:2.4 212111:1.2 212121:0.5 212201:1.0 212211:0.3 212221:0.1
"""
_LOOKUP = {k: float(v) for k, v in (p.split(":") for p in _LOOKUP_TEXT.split())}

# Allowed values; X (not defined) where a metric is optional.
_BASE = {
    "AV": "NALP",
    "AC": "LH",
    "AT": "NP",
    "PR": "NLH",
    "UI": "NPA",
    "VC": "HLN",
    "VI": "HLN",
    "VA": "HLN",
    "SC": "HLN",
    "SI": "HLN",
    "SA": "HLN",
}
_OPTIONAL = {
    "E": "XAPU",
    "CR": "XHML",
    "IR": "XHML",
    "AR": "XHML",
    **{f"M{k}": "X" + v for k, v in _BASE.items()},
    "MSI": "XSHLN",  # S: safety, for the subsequent system only
    "MSA": "XSHLN",
    # Supplemental: carried, never scored.
    "S": "XNP",
    "AU": "XNY",
    "R": "XAUI",
    "V": "XDC",
    "RE": "XLMH",
}
_URGENCY = ("X", "Clear", "Green", "Amber", "Red")

# Highest-severity vectors of each class level, in the specification's order.
_MAX_EQ1 = {
    0: ["AV:N/PR:N/UI:N"],
    1: ["AV:A/PR:N/UI:N", "AV:N/PR:L/UI:N", "AV:N/PR:N/UI:P"],
    2: ["AV:P/PR:N/UI:N", "AV:A/PR:L/UI:P"],
}
_MAX_EQ2 = {0: ["AC:L/AT:N"], 1: ["AC:H/AT:N", "AC:L/AT:P"]}
_MAX_EQ3_EQ6 = {
    (0, 0): ["VC:H/VI:H/VA:H/CR:H/IR:H/AR:H"],
    (0, 1): ["VC:H/VI:H/VA:L/CR:M/IR:M/AR:H", "VC:H/VI:H/VA:H/CR:M/IR:M/AR:M"],
    (1, 0): ["VC:L/VI:H/VA:H/CR:H/IR:H/AR:H", "VC:H/VI:L/VA:H/CR:H/IR:H/AR:H"],
    (1, 1): [
        "VC:L/VI:H/VA:L/CR:H/IR:M/AR:H",
        "VC:L/VI:H/VA:H/CR:H/IR:M/AR:M",
        "VC:H/VI:L/VA:H/CR:M/IR:H/AR:M",
        "VC:H/VI:L/VA:L/CR:M/IR:H/AR:H",
        "VC:L/VI:L/VA:H/CR:H/IR:H/AR:M",
    ],
    (2, 1): ["VC:L/VI:L/VA:L/CR:H/IR:H/AR:H"],
}
_MAX_EQ4 = {0: ["SC:H/SI:S/SA:S"], 1: ["SC:H/SI:H/SA:H"], 2: ["SC:L/SI:L/SA:L"]}
# Depth of each class level (its largest severity distance, plus one step).
_DEPTH_EQ1 = {0: 1, 1: 4, 2: 5}
_DEPTH_EQ2 = {0: 1, 1: 2}
_DEPTH_EQ3_EQ6 = {(0, 0): 7, (0, 1): 6, (1, 0): 8, (1, 1): 8, (2, 1): 10}
_DEPTH_EQ4 = {0: 6, 1: 5, 2: 4}

# Severity level of each value, in steps of 0.1 from the most severe.
_LEVELS = {
    "AV": {"N": 0.0, "A": 0.1, "L": 0.2, "P": 0.3},
    "PR": {"N": 0.0, "L": 0.1, "H": 0.2},
    "UI": {"N": 0.0, "P": 0.1, "A": 0.2},
    "AC": {"L": 0.0, "H": 0.1},
    "AT": {"N": 0.0, "P": 0.1},
    "VC": {"H": 0.0, "L": 0.1, "N": 0.2},
    "VI": {"H": 0.0, "L": 0.1, "N": 0.2},
    "VA": {"H": 0.0, "L": 0.1, "N": 0.2},
    "SC": {"H": 0.1, "L": 0.2, "N": 0.3},
    "SI": {"S": 0.0, "H": 0.1, "L": 0.2, "N": 0.3},
    "SA": {"S": 0.0, "H": 0.1, "L": 0.2, "N": 0.3},
    "CR": {"H": 0.0, "M": 0.1, "L": 0.2},
    "IR": {"H": 0.0, "M": 0.1, "L": 0.2},
    "AR": {"H": 0.0, "M": 0.1, "L": 0.2},
}


class Cvss4Error(ValueError):
    """A vector that is not a valid CVSS v4.0 vector."""


def parse_metrics(vector: str) -> dict[str, str]:
    """The metrics of a ``CVSS:4.0/...`` vector; every base metric must be there, once."""
    parts = vector.strip().split("/")
    if parts[0] != "CVSS:4.0":
        raise Cvss4Error("not a CVSS v4.0 vector")
    out: dict[str, str] = {}
    for p in parts[1:]:
        k, sep, v = p.partition(":")
        allowed = _URGENCY if k == "U" else _BASE.get(k) or _OPTIONAL.get(k)
        ok = allowed is not None and v in allowed and (k == "U" or len(v) == 1)
        if not sep or k in out or not ok:
            raise Cvss4Error(f"bad metric {p!r}")
        out[k] = v
    missing = [k for k in _BASE if k not in out]
    if missing:
        raise Cvss4Error(f"missing base metric {missing[0]!r}")
    return out


def _effective(m: dict[str, str]) -> dict[str, str]:
    """The values scored: a modified metric replaces its base one; E defaults to A (attacked,
    the worst case) and the security requirements to H."""
    out = {}
    for k in _BASE:
        modified = m.get(f"M{k}", "X")
        out[k] = m[k] if modified == "X" else modified
    out["E"] = m.get("E", "X").replace("X", "A")
    for k in ("CR", "IR", "AR"):
        out[k] = m.get(k, "X").replace("X", "H")
    return out


def _classes(e: dict[str, str]) -> tuple[int, int, int, int, int, int]:
    av, pr, ui = e["AV"], e["PR"], e["UI"]
    if av == "N" and pr == "N" and ui == "N":
        eq1 = 0
    elif (av == "N" or pr == "N" or ui == "N") and av != "P":
        eq1 = 1
    else:
        eq1 = 2
    eq2 = 0 if e["AC"] == "L" and e["AT"] == "N" else 1
    vc, vi, va = e["VC"], e["VI"], e["VA"]
    eq3 = 0 if vc == "H" and vi == "H" else 1 if "H" in (vc, vi, va) else 2
    eq4 = 0 if "S" in (e["SI"], e["SA"]) else 1 if "H" in (e["SC"], e["SI"], e["SA"]) else 2
    eq5 = "APU".index(e["E"])
    high_req = (
        (e["CR"] == "H" and vc == "H")
        or (e["IR"] == "H" and vi == "H")
        or (e["AR"] == "H" and va == "H")
    )
    eq6 = 0 if high_req else 1
    return eq1, eq2, eq3, eq4, eq5, eq6


def _score_of(eqs: tuple[int, ...]) -> float | None:
    return _LOOKUP.get("".join(map(str, eqs)))


def _distances(e: dict[str, str], eqs: tuple[int, ...]) -> dict[str, float]:
    """How far below the first highest-severity vector of its MacroVector that it does not
    exceed in any metric the vector sits, metric by metric."""
    eq1, eq2, eq3, eq4, _, eq6 = eqs
    for parts in itertools.product(
        _MAX_EQ1[eq1], _MAX_EQ2[eq2], _MAX_EQ3_EQ6[(eq3, eq6)], _MAX_EQ4[eq4]
    ):
        top = dict(p.split(":") for p in "/".join(parts).split("/"))
        dist = {k: lv[e[k]] - lv[top[k]] for k, lv in _LEVELS.items()}
        if all(d >= 0 for d in dist.values()):
            return dist
    raise AssertionError(f"no highest-severity vector above {eqs}")  # the tables cover all


@lru_cache(maxsize=4096)  # an advisory set repeats a few hundred vectors
def base_score_v4(vector: str) -> float:
    """The base score (CVSS-B) of ``vector``: its threat and environmental metrics left out, as
    the ``baseScore`` of CVE and NVD records is (a vendor's ``E:U`` lowers the threat score, not
    the base one). Raises :class:`Cvss4Error` when malformed."""
    m = parse_metrics(vector)
    return _score({k: v for k, v in m.items() if k in _BASE})


def score_v4(vector: str) -> float:
    """The score of every metric ``vector`` carries (CVSS-BT, -BE or -BTE when it has threat or
    environmental metrics), as FIRST's calculator gives it."""
    return _score(parse_metrics(vector))


def _score(metrics: dict[str, str]) -> float:
    e = _effective(metrics)
    if all(e[k] == "N" for k in ("VC", "VI", "VA", "SC", "SI", "SA")):
        return 0.0
    eqs = _classes(e)
    eq1, eq2, eq3, eq4, eq5, eq6 = eqs
    value = _LOOKUP["".join(map(str, eqs))]
    lower1 = _score_of((eq1 + 1, eq2, eq3, eq4, eq5, eq6))
    lower2 = _score_of((eq1, eq2 + 1, eq3, eq4, eq5, eq6))
    if eq3 == 0 and eq6 == 0:  # two classes just below: the higher scored one
        left = _score_of((eq1, eq2, eq3, eq4, eq5, eq6 + 1))
        right = _score_of((eq1, eq2, eq3 + 1, eq4, eq5, eq6))
        lower36 = max((s for s in (left, right) if s is not None), default=None)
    elif eq3 == 1 and eq6 == 0:
        lower36 = _score_of((eq1, eq2, eq3, eq4, eq5, eq6 + 1))
    else:  # (0, 1), (1, 1); (2, 1) has none below
        lower36 = _score_of((eq1, eq2, eq3 + 1, eq4, eq5, eq6))
    lower4 = _score_of((eq1, eq2, eq3, eq4 + 1, eq5, eq6))
    lower5 = _score_of((eq1, eq2, eq3, eq4, eq5 + 1, eq6))
    d = _distances(e, eqs)
    step = 0.1
    current = (
        (lower1, d["AV"] + d["PR"] + d["UI"], _DEPTH_EQ1[eq1] * step),
        (lower2, d["AC"] + d["AT"], _DEPTH_EQ2[eq2] * step),
        (
            lower36,
            d["VC"] + d["VI"] + d["VA"] + d["CR"] + d["IR"] + d["AR"],
            _DEPTH_EQ3_EQ6[(eq3, eq6)] * step,
        ),
        (lower4, d["SC"] + d["SI"] + d["SA"], _DEPTH_EQ4[eq4] * step),
        (lower5, 0.0, 1.0),  # E has one value a level: no distance within it
    )
    total, n = 0.0, 0
    for lower, distance, depth in current:
        if lower is None:
            continue
        n += 1
        total += (value - lower) * (distance / depth)
    mean = total / n if n else 0.0
    return round_half_up(max(0.0, min(10.0, value - mean)))


def round_half_up(x: float) -> float:
    """One decimal, halves up, as the specification's calculator rounds (a difference such as
    8.6 - 7.15 lands just below 1.45 in binary floating point and must still give 1.5)."""
    return float(int((x + 1e-6) * 10 + 0.5)) / 10
