"""Compliance reports: JSON (schema-stable), JUnit XML (a testsuite per requirement) and a
self-contained HTML page for auditors (inline CSS, no scripts, no external assets)."""

from __future__ import annotations

import json
from dataclasses import replace
from html import escape
from typing import Any

from stockade.compliance.frameworks.evaluate import (
    ERROR,
    FAIL,
    MANUAL,
    NOT_ASSESSED,
    OUTCOMES,
    PASS,
    WARN,
    Report,
)
from stockade.compliance.junit import Case, junit_xml

REPORT_SCHEMA = "stockade.compliance.report/v1"


def report_dict(report: Report) -> dict[str, Any]:
    fw = report.framework
    return {
        "schema": REPORT_SCHEMA,
        "framework": {"id": fw.id, "title": fw.title, "version": fw.version, "source": fw.source},
        "generated_at": report.generated_at.isoformat(timespec="seconds"),
        "findings_considered": report.findings_considered,
        "runs": report.runs,
        "window": (
            {
                "since": report.window.since.isoformat(timespec="seconds"),
                "until": report.window.until.isoformat(timespec="seconds"),
            }
            if report.window
            else None
        ),
        "events_considered": report.events_considered,
        "summary": report.summary(),
        "requirements": [
            {
                "id": r.requirement.id,
                "title": r.requirement.title,
                "status": r.status,
                "reason": r.reason,
                "automated": r.requirement.automated,
                "selectors": list(r.requirement.selectors),
                "manual": r.requirement.manual,
                "checks": [
                    {
                        "id": c.id,
                        "title": c.title,
                        "severity": c.severity,
                        "counts": {
                            k: c.counts.get(k, 0)
                            for k in ("PASS", "FAIL", "ERROR", "WARN", "INFO", "NOT_APPLICABLE")
                        },
                        "failures": c.failures,
                    }
                    for c in r.checks
                ],
            }
            for r in report.results
        ],
    }


def report_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2)


def report_junit(report: Report) -> str:
    """A testsuite per requirement; a testcase per check; manual or unassessed ones are skipped."""
    cases: list[Case] = []
    suites = [f"{r.requirement.id} {r.requirement.title}" for r in report.results]
    for suite, r in zip(suites, report.results, strict=True):
        if not r.checks:
            why = r.reason if r.status == MANUAL else f"not assessed: {r.reason}"
            cases.append(
                Case(
                    suite=suite,
                    classname=r.requirement.id,
                    name="evidence",
                    outcome="skipped",
                    message=why,
                )
            )
        for c in r.checks:
            base = Case(suite=suite, classname=r.requirement.id, name=c.id)
            text = "\n".join(f"{f['resource']}: {f['evidence']}" for f in c.failures)
            if c.counts.get(FAIL):
                cases.append(
                    replace(
                        base,
                        outcome="failure",
                        message=f"{c.counts[FAIL]} failed: {c.title}",
                        type=c.severity,
                        text=text,
                    )
                )
            elif c.counts.get(ERROR):
                cases.append(
                    replace(
                        base,
                        outcome="error",
                        message=f"{c.counts[ERROR]} could not be checked",
                        text=text,
                    )
                )
            elif c.counts.get(WARN):
                # manual checks that did not pass: visible in CI without failing the build
                cases.append(
                    replace(
                        base,
                        outcome="skipped",
                        message=f"{c.counts[WARN]} need review: {c.title}",
                    )
                )
            else:
                cases.append(base)
    return junit_xml(f"{report.framework.id} compliance", cases, suites=suites)


_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:72rem;color:#1d2330;line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}
h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d6dae3}
.meta{color:#5b6475;font-size:.9rem}
.cards{display:flex;gap:.8rem;flex-wrap:wrap;margin:1rem 0}
.card{border-radius:6px;padding:.6rem 1rem;min-width:8rem;border:1px solid #d6dae3}
.card b{display:block;font-size:1.6rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid #d6dae3;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f3f7}
.badge{display:inline-block;border-radius:4px;padding:0 .45rem;font-weight:600;font-size:.8rem;
color:#fff}
.FAIL{background:#c62828}.ERROR{background:#8e24aa}.PASS{background:#2e7d32}
.NOT_ASSESSED{background:#f9a825;color:#222}.WARN{background:#ef6c00}.MANUAL{background:#607d8b}
.card.FAIL,.card.ERROR,.card.WARN,.card.PASS,.card.NOT_ASSESSED,.card.MANUAL{color:#fff}.card.NOT_ASSESSED{color:#222}
details{margin:.2rem 0}summary{cursor:pointer}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.82rem;word-break:break-all}
@media print{details{display:block}body{margin:0}}
"""

_LABEL = {
    FAIL: "Fail",
    ERROR: "Error",
    PASS: "Pass",
    NOT_ASSESSED: "Not assessed",
    WARN: "Needs review",
    MANUAL: "No automated evidence",
}


def _badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(_LABEL.get(status, status))}</span>'


def report_html(report: Report, *, max_rows: int = 50) -> str:
    fw = report.framework
    s = report.summary()
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(fw.title)} compliance report</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(fw.title)} {escape(fw.version)}: compliance evidence</h1>",
        f'<p class="meta">Generated by Stockade on {report.generated_at:%Y-%m-%d %H:%M} UTC '
        f"from {report.findings_considered} stored results of {len(report.runs)} runs"
        + (
            f" and {report.events_considered} pieces of evidence from events of "
            f"{escape(report.window.text())}. "
            if report.window
            else ". "
        )
        + f"Mapping source: {escape(fw.source)}</p>",
        '<div class="cards">',
    ]
    for status in OUTCOMES:
        out.append(f'<div class="card {status}"><b>{s[status]}</b>{escape(_LABEL[status])}</div>')
    out.append(f'<div class="card"><b>{s["requirements"]}</b>Requirements</div></div>')
    out.append(
        "<p>Automated results show what Stockade checked; a passing requirement means every mapped "
        "check passed on the resources scanned, not that the requirement is met in full. "
        "Requirements "
        "without automated evidence need a manual review.</p>"
    )
    out += [
        "<h2>Requirements</h2>",
        "<table><thead><tr><th>Requirement</th><th>Title</th><th>Result</th>",
        "<th>Checks</th><th>Pass</th><th>Fail</th></tr></thead><tbody>",
    ]
    for r in report.results:
        passed = sum(c.counts.get(PASS, 0) for c in r.checks)
        failed = sum(c.counts.get(FAIL, 0) for c in r.checks)
        out.append(
            f'<tr><td><a href="#req-{escape(r.requirement.id)}">{escape(r.requirement.id)}</a></td>'
            f"<td>{escape(r.requirement.title)}</td><td>{_badge(r.status)}</td>"
            f"<td>{len(r.checks)}</td><td>{passed}</td><td>{failed}</td></tr>"
        )
    out.append("</tbody></table><h2>Evidence</h2>")
    for r in report.results:
        rid, title = escape(r.requirement.id), escape(r.requirement.title)
        out.append(f'<h3 id="req-{rid}">{rid} {title} {_badge(r.status)}</h3>')
        if r.requirement.manual:
            out.append(f"<p><b>Manual review:</b> {escape(r.requirement.manual)}</p>")
        if r.status == NOT_ASSESSED:
            sel = ", ".join(f"<code>{escape(x)}</code>" for x in r.requirement.selectors)
            out.append(
                f"<p>Not assessed: {escape(r.reason)}. Mapped checks: {sel}. Run the scans or "
                "the sensor that produce them.</p>"
            )
        if not r.checks:
            continue
        out.append(
            "<table><thead><tr><th>Check</th><th>Severity</th><th>Pass</th><th>Fail</th><th>Error</th>"
            "<th>Review</th><th>Resources that did not pass</th></tr></thead><tbody>"
        )
        for c in r.checks:
            rows = "".join(
                f"<li>{_badge(f['status'])} {escape(f['resource'])}: "
                f"<code>{escape(f['evidence'])}</code></li>"
                for f in c.failures[:max_rows]
            )
            more = len(c.failures) - max_rows
            rows += f"<li>... {more} more</li>" if more > 0 else ""
            n = len(c.failures)
            label = f"{n} resource{'s' if n != 1 else ''}"
            opened = " open" if n <= 5 else ""  # short lists print expanded
            cell = f"<details{opened}><summary>{label}</summary><ul>{rows}</ul></details>"
            cell = cell if rows else ""
            nums = "".join(f"<td>{c.counts.get(k, 0)}</td>" for k in (PASS, FAIL, ERROR, WARN))
            out.append(
                f"<tr><td><code>{escape(c.id)}</code><br>{escape(c.title)}</td>"
                f"<td>{escape(c.severity)}</td>{nums}<td>{cell}</td></tr>"
            )
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)
