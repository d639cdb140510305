"""``stockade bench k8s|docker|processes``: CIS benchmarks for Kubernetes nodes and Docker hosts.

Exit codes: 0 clean, 1 a FAIL at or above --fail-on (or any FAIL with --fail-on-fail),
2 usage or configuration error (bad option, malformed custom check), 3 input error (unreadable
--root or process list), or any ERROR result with --strict.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stockade.cli.agent import (
    AgentNameOption,
    ControllerCaOption,
    ControllerOption,
    TokenOption,
)
from stockade.cli.common import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
    DbOption,
    OutputOption,
    StoreOption,
    console,
    emit,
    err_console,
    open_db,
)
from stockade.compliance.interface import CheckDetails
from stockade.model import Severity, UsageError
from stockade.model.duration import parse_duration

if TYPE_CHECKING:
    from rich.console import Console

    from stockade.compliance.cis.engine import RunResult


class Format(StrEnum):
    table = "table"
    json = "json"
    junit = "junit"


RootOption = Annotated[
    Path | None,
    typer.Option("--root", help="Audit a node filesystem mounted at DIR instead of this host."),
]
ProcessesOption = Annotated[
    Path | None,
    typer.Option(
        "--processes",
        help="Process list: a capture (JSON, see 'stockade bench processes') or a procfs "
        "directory (/proc in a hostPID pod). Default: /proc; with --root, "
        "DIR/.stockade/processes.json.",
    ),
]
BenchmarkOption = Annotated[
    str | None,
    typer.Option("--benchmark", help="Benchmark version, e.g. cis-1.12 (default: newest)."),
]
ChecksOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--checks", help="Custom checks: a YAML file or a directory of them (repeatable)."
    ),
]
CheckOption = Annotated[
    list[str] | None,
    typer.Option(
        "--check", help="Run only these checks (slug, CIS number or section; repeatable)."
    ),
]
SkipOption = Annotated[
    list[str] | None,
    typer.Option("--skip", help="Skip these checks (reported as INFO; repeatable)."),
]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Report format.")]
FailOnOption = Annotated[
    str | None,
    typer.Option(
        "--fail-on",
        help="Exit 1 if a FAIL has this severity or higher (low, medium, high, critical).",
    ),
]
FailOnFailOption = Annotated[bool, typer.Option("--fail-on-fail", help="Exit 1 on any FAIL.")]
StrictOption = Annotated[bool, typer.Option("--strict", help="Exit 3 if any check is ERROR.")]
EveryOption = Annotated[
    str | None,
    typer.Option("--every", help="Run again every DURATION (30s, 5m, 1h); each run is stored."),
]
MaxRunsOption = Annotated[
    int | None, typer.Option("--max-runs", min=1, help="With --every: stop after N runs.")
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchOptions:
    """The options shared by ``bench k8s`` and ``bench docker``."""

    root: Path | None
    processes: Path | None
    role: list[str] | None
    benchmark: str | None
    checks: list[Path] | None
    check: list[str] | None
    skip: list[str] | None
    fmt: Format
    output: Path | None
    fail_on: str | None
    fail_on_fail: bool
    strict: bool
    every: str | None
    max_runs: int | None
    store: bool
    db: str | None
    controller: str | None
    token: str | None
    controller_ca: Path | None
    agent_name: str | None


def bench_k8s(
    root: RootOption = None,
    processes: ProcessesOption = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="Node role instead of detection: control-plane, etcd, worker (repeatable).",
        ),
    ] = None,
    benchmark: BenchmarkOption = None,
    checks: ChecksOption = None,
    check: CheckOption = None,
    skip: SkipOption = None,
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
    fail_on: FailOnOption = None,
    fail_on_fail: FailOnFailOption = False,
    strict: StrictOption = False,
    every: EveryOption = None,
    max_runs: MaxRunsOption = None,
    store: StoreOption = True,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Audit a Kubernetes node against the CIS Kubernetes Benchmark (sections 1-4).

    Exit codes: 0 clean, 1 a FAIL at or above --fail-on (any FAIL with --fail-on-fail), 2 usage or
    configuration error, 3 input error (or an ERROR result with --strict).
    """
    _bench("kubernetes", BenchOptions(**locals()))


def bench_docker(
    root: RootOption = None,
    processes: ProcessesOption = None,
    benchmark: BenchmarkOption = None,
    checks: ChecksOption = None,
    check: CheckOption = None,
    skip: SkipOption = None,
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
    fail_on: FailOnOption = None,
    fail_on_fail: FailOnFailOption = False,
    strict: StrictOption = False,
    every: EveryOption = None,
    max_runs: MaxRunsOption = None,
    store: StoreOption = True,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Audit a Docker host against the CIS Docker Benchmark.

    Exit codes: 0 clean, 1 a FAIL at or above --fail-on (any FAIL with --fail-on-fail), 2 usage or
    configuration error, 3 input error (or an ERROR result with --strict).
    """
    _bench("docker", BenchOptions(**locals(), role=None))


class EnvMode(StrEnum):
    audit = "audit"
    all = "all"
    none = "none"


def capture_processes(
    output: OutputOption = None,
    env: Annotated[
        EnvMode,
        typer.Option(
            "--env",
            help="Environments to keep: 'audit' (ETCD_*, KUBE*, DOCKER_*, CONTAINERD_*, K3S_*, "
            "RKE2_* only, less tokens, secrets and passwords: the rest may hold secrets), 'all' "
            "or 'none'.",
        ),
    ] = EnvMode.audit,
) -> None:
    """Capture this host's process list for a later 'bench --root DIR --processes FILE'."""
    import json

    from stockade.compliance.cis.node import capture

    emit(json.dumps(capture(env=str(env)), indent=1), output)


def _bench(platform: str, opts: BenchOptions) -> None:
    from stockade.compliance.cis import loader
    from stockade.compliance.cis.model import Check
    from stockade.compliance.cis.node import open_node

    fail_on = Severity.parse(opts.fail_on) if opts.fail_on else None
    interval = parse_duration(opts.every, allow_zero=False).total_seconds() if opts.every else None
    if opts.max_runs is not None and interval is None:
        raise UsageError("--max-runs needs --every")
    if opts.benchmark:
        version, selected = opts.benchmark, "chosen with --benchmark"
    else:
        from stockade.compliance.cis.versions import choose

        version, selected = choose(platform, open_node(opts.root, opts.processes))
    bench = loader.builtin(platform, version)
    extra: list[Check] = []
    for path in opts.checks or []:
        extra.extend(loader.load_custom(path, bench))
    roles = _roles(opts.role) if opts.role else None
    from stockade.cli.agent import AgentOptions, reporting

    agent = AgentOptions(
        controller=opts.controller, token=opts.token, ca=opts.controller_ca, name=opts.agent_name
    )
    store = open_db(opts.db) if opts.store else None
    worst = EXIT_OK
    with reporting(agent, ("cis",)) as reporter:
        worst = _runs(
            bench, opts, roles, extra, store, interval, selected, fail_on, reporter, agent
        )
    raise typer.Exit(worst)


def _runs(
    bench: Any,
    opts: BenchOptions,
    roles: list[str] | None,
    extra: list[Any],
    store: Any,
    interval: float | None,
    selected: str,
    fail_on: Severity | None,
    reporter: Any,
    agent: Any,
) -> int:
    from stockade.cli.agent import cis_event, cis_results, upload_results
    from stockade.compliance.cis.schedule import repeated_runs

    worst = EXIT_OK
    for result, run_id in repeated_runs(
        bench,
        root=opts.root,
        processes=opts.processes,
        roles=roles,
        extra=extra,
        only=opts.check or (),
        skip=opts.skip or (),
        store=store,
        every=interval,
        max_runs=opts.max_runs,
    ):
        _report(result, opts.fmt, opts.output, run_id, selected)
        if reporter is not None:
            reporter.add(cis_event(result, run_id))
            upload_results(agent, "/api/v1/cis/runs", cis_results(result, run_id), "CIS run")
        worst = max(worst, _exit_code(result, fail_on, opts.fail_on_fail, opts.strict))
    return worst


def _roles(values: list[str]) -> list[str]:
    aliases = {
        "control-plane": "control-plane",
        "master": "control-plane",
        "etcd": "etcd",
        "worker": "worker",
        "node": "worker",
    }
    out = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if part not in aliases:
                raise UsageError(f"unknown role {part!r} (expected control-plane, etcd or worker)")
            out.append(aliases[part])
    return out


def _exit_code(
    result: RunResult, fail_on: Severity | None, fail_on_fail: bool, strict: bool
) -> int:
    from stockade.model import Status

    if strict and any(f.status is Status.ERROR for f in result.findings):
        return EXIT_ERROR
    fails = [f for f in result.findings if f.status is Status.FAIL]
    if fail_on_fail and fails:
        return EXIT_FINDINGS
    if fail_on is not None and any(f.severity >= fail_on for f in fails):
        return EXIT_FINDINGS
    return EXIT_OK


def _report(
    result: RunResult, fmt: Format, output: Path | None, run_id: str | None, selected: str
) -> None:
    from stockade.compliance.cis import report

    if fmt is Format.json:
        emit(report.to_json(result, run_id, selected=selected), output)
    elif fmt is Format.junit:
        emit(report.to_junit(result), output)
    elif output is not None:
        buf = io.StringIO()
        from rich.console import Console

        _table(result, Console(file=buf, width=160, no_color=True), run_id, selected)
        emit(buf.getvalue(), output)
    else:
        _table(result, console, run_id, selected)


_STYLE = {
    "PASS": "green",
    "FAIL": "bold red",
    "WARN": "yellow",
    "INFO": "cyan",
    "ERROR": "magenta",
    "NOT_APPLICABLE": "dim",
}


def _table(result: RunResult, out: Console, run_id: str | None, selected: str) -> None:
    from rich.table import Table

    b = result.benchmark
    how = "detected" if result.roles_detected else "given"
    table = Table(
        title=f"{b.title} {b.version} on {result.node_name} "
        f"(roles {how}: {', '.join(result.roles) or 'none'})",
        expand=False,
    )
    for col in ("Status", "CIS", "Check", "Title", "Evidence / reason"):
        table.add_column(col, overflow="fold")
    for f in result.findings:
        d = (
            f.details
            if isinstance(f.details, CheckDetails)
            else CheckDetails(benchmark="", benchmark_id="")
        )
        note = d.evidence or d.reason
        if f.status in ("FAIL", "WARN") and d.expected:
            note = f"{note} (expected: {d.expected})" if note else f"expected: {d.expected}"
        status = str(f.status)
        table.add_row(f"[{_STYLE[status]}]{status}[/]", d.benchmark_id, f.id, f.title, note)
    out.print(table)
    counts = ", ".join(f"{k} {v}" for k, v in result.counts().items() if v)
    tail = f" · stored as run {run_id}" if run_id else ""
    out.print(f"{len(result.findings)} checks in {result.seconds:.2f} s: {counts}{tail}")
    out.print(f"benchmark {result.benchmark.id}: {selected}", markup=False, highlight=False)
    if result.process_source == "none":
        err_console.print(
            "note: no process list (use --processes or ROOT/.stockade/processes.json); "
            "flags were read from static pod manifests and systemd units only"
        )


def register(app: typer.Typer) -> None:
    """Add the node benchmark commands to the ``bench`` group (registered by ``cli.bench``)."""
    from stockade.cli.bench import bench_app

    bench_app.command("k8s")(bench_k8s)
    bench_app.command("docker")(bench_docker)
    bench_app.command("processes")(capture_processes)
