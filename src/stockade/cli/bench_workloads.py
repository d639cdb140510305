"""``stockade bench workloads``: Pod Security Standards and CIS section 5 checks on manifests or a
live cluster."""

from __future__ import annotations

import io
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stockade.cli.agent import (
    AgentNameOption,
    AgentOptions,
    ControllerCaOption,
    ControllerOption,
    TokenOption,
    send,
    upload_results,
    workload_results,
    workloads_event,
)
from stockade.cli.common import DbOption, OutputOption, StoreOption, console, emit, open_db

if TYPE_CHECKING:
    from stockade.model import Finding


class Format(StrEnum):
    table = "table"
    json = "json"
    junit = "junit"


class Profile(StrEnum):
    baseline = "baseline"
    restricted = "restricted"


def workloads(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Files or folders of manifests; - reads stdin.")
    ] = None,
    profile: Annotated[
        Profile, typer.Option(help="Pod Security Standards level.")
    ] = Profile.restricted,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="Read the live cluster of this kubeconfig's current context."),
    ] = None,
    context: Annotated[
        str | None, typer.Option(help="Kubeconfig context (default: current).")
    ] = None,
    in_cluster: Annotated[
        bool, typer.Option("--in-cluster", help="Read the cluster this pod runs in.")
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.table,
    output: OutputOption = None,
    fail_on: Annotated[
        str | None,
        typer.Option("--fail-on", help="Exit 1 when a failed check has this severity or higher."),
    ] = None,
    show_pass: Annotated[
        bool, typer.Option("--show-pass", help="List passed checks in the table.")
    ] = False,
    store: StoreOption = True,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Check workloads against the Pod Security Standards and CIS Kubernetes section 5.

    Exit codes: 0 clean; 1 a failed check at or above --fail-on; 2 usage error; 3 an input could not be read (the report still lists everything else).
    """
    from stockade.compliance.render import findings_json, findings_junit
    from stockade.compliance.workloads import check_objects
    from stockade.compliance.workloads.loader import load_paths
    from stockade.model import Severity, Status, UsageError

    threshold = Severity.parse(fail_on) if fail_on else None
    sources = sum(bool(x) for x in (paths, kubeconfig, in_cluster))
    if sources != 1:
        raise UsageError("give manifest PATHs, --kubeconfig FILE or --in-cluster (exactly one)")
    if paths:
        loaded = load_paths(paths)
        manifests, errors = loaded.manifests, loaded.errors
    else:
        from stockade.compliance.workloads import kubeapi  # httpx: only for a live cluster

        cluster = (
            kubeapi.from_kubeconfig(kubeconfig, context)
            if kubeconfig is not None
            else kubeapi.in_cluster()
        )
        manifests, errors = kubeapi.fetch(cluster), []
    findings = errors + check_objects(manifests, profile=profile.value)
    if store:
        from stockade.store.records import record_findings

        record_findings(open_db(db), findings)
    agent = AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name)
    where = ", ".join(paths) if paths else ("the cluster" if in_cluster else str(kubeconfig))
    send(agent, ("cis", "cis.workloads"), [workloads_event(findings, where)])
    upload_results(
        agent,
        "/api/v1/cis/runs",
        workload_results(findings, where, profile.value),
        "workload check",
    )

    if fmt is Format.json:
        emit(findings_json(findings, tool="bench workloads", profile=profile.value), output)
    elif fmt is Format.junit:
        emit(findings_junit(findings, name="stockade bench workloads"), output)
    else:
        _table(findings, show_pass, output)

    if errors:
        raise typer.Exit(3)
    if threshold is not None and any(
        f.status == Status.FAIL and f.severity >= threshold for f in findings
    ):
        raise typer.Exit(1)


def _table(findings: list[Finding], show_pass: bool, output: Path | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from stockade.compliance.render import summary
    from stockade.model import Status

    table = Table(title="Workload checks", show_lines=False)
    for col in ("status", "severity", "check", "resource", "evidence"):
        table.add_column(col, overflow="fold")
    style = {Status.FAIL: "red", Status.ERROR: "magenta", Status.PASS: "green"}
    for f in sorted(findings, key=lambda f: (f.status != Status.ERROR, -f.severity, f.id)):
        if f.status == Status.PASS and not show_pass:
            continue
        d = f.details
        evidence = (getattr(d, "evidence", "") or getattr(d, "reason", "")) if d else ""
        table.add_row(
            f"[{style.get(f.status, '')}]{f.status}[/]",
            str(f.severity),
            f.id,
            escape(f.resource.display()),  # names and values come from the manifests
            escape(evidence),
        )
    counts = summary(findings)
    line = ", ".join(f"{v} {k}" for k, v in counts.items() if v and k != "total")
    if output is None:
        console.print(table)
        console.print(f"{counts['total']} results: {line}")
        return
    buf = io.StringIO()
    out = Console(file=buf, width=160, no_color=True)
    out.print(table)
    out.print(f"{counts['total']} results: {line}")
    emit(buf.getvalue(), output)


def register(app: typer.Typer) -> None:
    from stockade.cli.bench import bench_app

    bench_app.command("workloads")(workloads)
