"""``stockade report``: reports built from the project store (compliance frameworks)."""

from __future__ import annotations

import io
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stockade.cli.common import DbOption, OutputOption, console, emit, open_db

if TYPE_CHECKING:
    from stockade.compliance.frameworks import Report

report_app = typer.Typer(help="Reports from the stored results.", no_args_is_help=True)


class Framework(StrEnum):
    pci_dss = "pci-dss"
    hipaa = "hipaa"
    gdpr = "gdpr"
    nist_800_190 = "nist-800-190"


class Format(StrEnum):
    table = "table"
    json = "json"
    junit = "junit"
    html = "html"


@report_app.command("compliance")
def compliance(
    framework: Annotated[
        Framework, typer.Option("--framework", help="The framework to report on.")
    ],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.table,
    output: OutputOption = None,
    fail_on_fail: Annotated[
        bool, typer.Option("--fail", help="Exit 1 when a requirement has failing evidence.")
    ] = False,
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="Read events (DLP, TLS, firewall, admission, sensor runs) from this time on: a "
            "duration back from now (24h, 7d) or a date (2026-12-01).",
        ),
    ] = "24h",
    db: DbOption = None,
) -> None:
    """Each requirement of a framework with the evidence Stockade holds: the latest stored check
    results (CIS, workloads, vulnerabilities) and the events of the window (card data in clear,
    TLS facts, firewall violations and blocks, segmentation state, admission decisions). What
    passes, what fails, what was not assessed (and why) and what needs a manual review."""
    from datetime import UTC, datetime

    from stockade.compliance.frameworks import evaluate, load
    from stockade.compliance.frameworks.evaluate import FAIL
    from stockade.compliance.frameworks.evidence import Window, rows_from_events
    from stockade.compliance.frameworks.render import report_html, report_json, report_junit
    from stockade.compliance.frameworks.stored import current_findings, window_events
    from stockade.model.duration import parse_since

    window = Window(since=parse_since(since), until=datetime.now(UTC))
    fw = load(framework.value)
    store = open_db(db)
    evidence = rows_from_events(window_events(store, window.since), window)
    report = evaluate(fw, current_findings(store), evidence=evidence, window=window)
    if fmt is Format.json:
        emit(report_json(report), output)
    elif fmt is Format.junit:
        emit(report_junit(report), output)
    elif fmt is Format.html:
        emit(report_html(report), output)
    else:
        _table(report, output)
    if fail_on_fail and any(r.status == FAIL for r in report.results):
        raise typer.Exit(1)


def _table(report: Report, output: Path | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    colors = {
        "FAIL": "red",
        "ERROR": "magenta",
        "PASS": "green",
        "WARN": "dark_orange",
        "NOT_ASSESSED": "yellow",
        "MANUAL": "dim",
    }
    fw = report.framework
    table = Table(title=f"{fw.title} {fw.version}")
    for col in ("requirement", "title", "result", "checks", "pass", "fail"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        table.add_row(
            r.requirement.id,
            r.requirement.title,
            f"[{colors.get(r.status, '')}]{r.status}[/]",
            escape(", ".join(c.id for c in r.checks) or r.reason or "-"),
            str(sum(c.counts.get("PASS", 0) for c in r.checks)),
            str(sum(c.counts.get("FAIL", 0) for c in r.checks)),
        )
    s = report.summary()
    line = ", ".join(
        f"{s[k]} {k.lower().replace('_', ' ')}"
        for k in ("FAIL", "ERROR", "WARN", "PASS", "NOT_ASSESSED", "MANUAL")
    )
    footer = f"{s['requirements']} requirements: {line}"
    if report.window:
        footer += f"; events from {report.window.text()} ({report.events_considered} used)"
    if output is None:
        console.print(table)
        console.print(footer)
        return
    buf = io.StringIO()
    out = Console(file=buf, width=160, no_color=True)
    out.print(table)
    out.print(footer)
    emit(buf.getvalue(), output)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
