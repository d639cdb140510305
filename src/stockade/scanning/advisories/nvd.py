"""NVD CVE records (API 2.0 and the 2.0 JSON feeds) to normalized advisories, for their scores.

Shape: ``{"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [{"cve": {"id", "vulnStatus",
"descriptions", "metrics": {"cvssMetricV40" | "cvssMetricV31" | "cvssMetricV30" | "cvssMetricV2":
[{"source", "type": "Primary" | "Secondary", "cvssData": {"vectorString", ...}}]}, "references",
"configurations"}}]}``.

An NVD record names products by CPE, not by a package of an ecosystem: it is stored without
affected packages and matches nothing by itself. What it brings is the CVE's CVSS: a finding of a
distribution advisory that has no score of its own (Alpine's secdb has none, Debian's tracker
only an urgency, often "not yet assigned") takes the score and rating of the NVD record of its
CVE (see ``match_findings.with_scores_of_ids``). Per CVSS version the ``Primary`` metric (NVD's
own analysis) is kept, else the first. ``Rejected`` records are skipped.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from stockade.scanning.advisories.cvss import CvssError, parse_vector
from stockade.scanning.advisories.model import Advisory, Cvss, Problem

_METRICS = ("cvssMetricV40", "cvssMetricV31", "cvssMetricV30", "cvssMetricV2")


def is_nvd(doc: object) -> TypeGuard[dict[str, Any]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
        return False
    if doc.get("format") == "NVD_CVE":
        return True
    first = doc["vulnerabilities"][0] if doc["vulnerabilities"] else None
    return isinstance(first, dict) and isinstance(first.get("cve"), dict)


def convert(doc: dict[str, Any], where: str) -> tuple[list[Advisory], list[Problem]]:
    out: list[Advisory] = []
    problems: list[Problem] = []
    for i, item in enumerate(doc["vulnerabilities"]):
        cve = item.get("cve") if isinstance(item, dict) else None
        if not isinstance(cve, dict) or not isinstance(cve.get("id"), str):
            problems.append(Problem(where=f"{where}#[{i}]", message="entry without cve.id"))
            continue
        here = f"{where}#{cve['id']}"
        if str(cve.get("vulnStatus", "")).lower() == "rejected":
            continue
        try:
            out.append(_advisory(cve, problems, here))
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            problems.append(Problem(where=here, message=f"malformed record: {exc!r}"[:300]))
    return out, problems


def _advisory(cve: dict[str, Any], problems: list[Problem], here: str) -> Advisory:
    found = cve.get("metrics")
    metrics: dict[str, Any] = found if isinstance(found, dict) else {}
    cvss: list[Cvss] = []
    for key in _METRICS:
        entries = [m for m in metrics.get(key) or [] if isinstance(m, dict)]
        chosen = next((m for m in entries if m.get("type") == "Primary"), None)
        chosen = chosen or (entries[0] if entries else None)
        data = chosen.get("cvssData") if chosen else None
        vector = data.get("vectorString") if isinstance(data, dict) else None
        if not isinstance(vector, str):
            continue
        try:
            cvss.append(parse_vector(vector))
        except CvssError as exc:
            problems.append(Problem(where=here, message=f"bad CVSS vector {vector!r}: {exc}"))
    summary = next(
        (
            d["value"]
            for d in cve.get("descriptions") or []
            if isinstance(d, dict) and d.get("lang") == "en" and isinstance(d.get("value"), str)
        ),
        "",
    )
    refs = [
        r["url"]
        for r in cve.get("references") or []
        if isinstance(r, dict) and isinstance(r.get("url"), str)
    ]
    return Advisory(
        id=cve["id"],
        source="nvd",
        summary=summary[:500],
        published=str(cve.get("published") or "")[:40] or None,
        modified=str(cve.get("lastModified") or "")[:40] or None,
        cvss=tuple(cvss),
        references=tuple(dict.fromkeys(refs))[:20],
    )
