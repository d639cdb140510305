"""CVSS scores against values published by FIRST (specification examples, the calculators'
test data), NVD and vendors' CVE records."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.scanning.advisories.cvss import CvssError, parse_vector, roundup
from stockade.scanning.advisories.cvss4 import base_score_v4, score_v4

DATA = Path(__file__).parents[1] / "data" / "cvss4"


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),  # Log4Shell
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
        ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),  # typical XSS
        ("CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:H/I:N/A:N", 4.7),  # CVE-2018-5407
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N", 0.0),
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
        ("AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3),
        ("AV:L/AC:L/Au:N/C:C/I:C/A:C", 7.2),
    ],
)
def test_base_scores(vector: str, score: float) -> None:
    assert parse_vector(vector).score == score


def _golden(name: str) -> list[tuple[str, float]]:
    """``vector - (score,)`` lines of the FIRST calculator's test data (see the README)."""
    rows = []
    for line in (DATA / name).read_text().splitlines():
        vector, _, score = line.partition(" - ")
        rows.append((vector.strip(), float(score.strip(" (),"))))
    return rows


@pytest.mark.parametrize(
    ("vector", "score"),
    _golden("vectors_simple4") + _golden("vectors_security4") + _golden("vectors_threat4"),
)
def test_v4_scores_of_the_calculators_test_data(vector: str, score: float) -> None:
    """Every metric the vector carries is scored (threat and requirements included), as FIRST's
    calculator does."""
    assert score_v4(vector) == score


@pytest.mark.parametrize(
    ("vector", "score"),
    [  # FIRST's CVSS v4.0 examples page
        ("CVSS:4.0/AV:L/AC:L/AT:P/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 7.3),  # CVE-2022-41741
        ("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:L/VA:L/SC:N/SI:N/SA:N", 8.3),  # CVE-2023-3089
        ("CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N", 4.6),  # CVE-2021-44714
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N", 6.9),  # CVE-2022-22186
        ("CVSS:4.0/AV:A/AC:L/AT:N/PR:N/UI:N/VC:N/VI:L/VA:N/SC:H/SI:N/SA:H", 6.4),  # CVE-2013-6014
        ("CVSS:4.0/AV:N/AC:H/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:P", 8.2),  # regreSSHion
        ("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U", 5.2),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/MSI:S", 10.0),
    ],
)
def test_v4_scores_of_firsts_examples(vector: str, score: float) -> None:
    assert score_v4(vector) == score


# Palo Alto Networks' CVE records (CVE-2026-0310, CVE-2026-0308): each publishes the base score
# and, for the same vector with E:U, the threat score.
PUBLISHED = [
    ("AV:N/AC:H/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:L/SI:L/SA:N", "U:Red", 9.2, 7.2),
    ("AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N", "U:Amber", 8.7, 6.6),
    ("AV:A/AC:H/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:L/SI:L/SA:N", "U:Amber", 7.5, 4.8),
    ("AV:A/AC:H/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:L/SI:L/SA:N", "U:Amber", 7.7, 5.2),
    ("AV:N/AC:L/AT:N/PR:H/UI:P/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N", "U:Amber", 4.8, 1.1),
    ("AV:A/AC:L/AT:N/PR:H/UI:P/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N", "U:Amber", 2.4, 0.4),
]


@pytest.mark.parametrize(("base", "urgency", "base_score", "threat_score"), PUBLISHED)
def test_a_v4_record_is_scored_by_its_base_metrics(
    base: str, urgency: str, base_score: float, threat_score: float
) -> None:
    """The score kept for a record (and so its severity) is the published base score: a
    vendor's E:U is the threat score's business, as CVE and NVD records keep them apart."""
    vector = f"CVSS:4.0/{base}/E:U/AU:N/R:U/V:D/RE:M/{urgency}"
    c = parse_vector(vector)
    assert (c.version, c.vector, c.score) == ("4.0", vector, base_score)
    assert base_score_v4(vector) == base_score and score_v4(vector) == threat_score


def test_a_v4_vector_with_every_metric_not_defined_scores_as_its_base() -> None:
    base = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N"
    full = base + (
        "/E:X/CR:X/IR:X/AR:X/MAV:X/MAC:X/MAT:X/MPR:X/MUI:X/MVC:X/MVI:X/MVA:X/MSC:X/MSI:X/MSA:X"
        "/S:X/AU:X/R:X/V:X/RE:X/U:X"
    )  # as PYSEC and NVD records spell it
    assert parse_vector(full).score == score_v4(full) == score_v4(base) == 8.7


@pytest.mark.parametrize(
    "vector",
    [
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N",  # SA missing
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:S",  # S is MSA's only
        "CVSS:4.0/AV:N/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:Q",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/XX:N",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/",
    ],
)
def test_bad_v4_vectors_raise(vector: str) -> None:
    with pytest.raises(CvssError):
        parse_vector(vector)


def test_roundup_is_robust_to_float_noise() -> None:
    assert roundup(4.000000001) == 4.0
    assert roundup(4.02) == 4.1


@pytest.mark.parametrize(
    "vector",
    ["CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N", "garbage", "CVSS:3.1/AV"],
)
def test_bad_vectors_raise(vector: str) -> None:
    with pytest.raises(CvssError):
        parse_vector(vector)
