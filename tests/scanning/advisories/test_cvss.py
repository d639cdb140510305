"""CVSS base scores against values published by FIRST's calculators and NVD."""

from __future__ import annotations

import pytest

from stockade.scanning.advisories.cvss import CvssError, parse_vector, roundup


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


def test_v4_vector_is_kept_without_a_score() -> None:
    v = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    c = parse_vector(v)
    assert (c.version, c.vector, c.score) == ("4.0", v, None)


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
