"""The agent side of the controller on every command that makes events (``--controller URL
--token TOKEN``), and ``stockade agent flush|spool`` for what waits in the spool."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stockade.cli.common import console, err_console
from stockade.model.errors import UsageError

if TYPE_CHECKING:
    from stockade.events.ingest import AgentInfo
    from stockade.events.reporter import Reporter
    from stockade.model import Event, Severity

ControllerOption = Annotated[
    str | None,
    typer.Option(
        "--controller",
        envvar="STOCKADE_CONTROLLER",
        help="Report events to this controller (https://HOST:PORT); spooled on disk while it is "
        "unreachable. scan and bench also upload their full results (vulnerabilities, check "
        "results). Without it everything stays in the local store.",
        rich_help_panel="Controller",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="STOCKADE_CONTROLLER_TOKEN",
        help="Agent token (`stockade controller token create --role agent`); prefer the "
        "environment variable, a command line is visible to other users.",
        rich_help_panel="Controller",
    ),
]
ControllerCaOption = Annotated[
    Path | None,
    typer.Option(
        "--controller-ca",
        envvar="STOCKADE_CONTROLLER_CA",
        help="Trust this CA for the controller (its generated ca.crt).",
        rich_help_panel="Controller",
    ),
]
AgentNameOption = Annotated[
    str | None,
    typer.Option(
        "--agent-name",
        envvar="STOCKADE_AGENT_NAME",
        help="This agent's name at the controller (default: the host name).",
        rich_help_panel="Controller",
    ),
]

_SIZE_RE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB)?\Z")
_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOptions:
    controller: str | None
    token: str | None
    ca: Path | None
    name: str | None


def spool_root() -> Path:
    """``$STOCKADE_SPOOL_DIR``, else ``spool`` in Stockade's data folder."""
    env = os.environ.get("STOCKADE_SPOOL_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "stockade" / "spool"


def spool_max_bytes() -> int:
    from stockade.events.spool import DEFAULT_MAX_BYTES

    text = os.environ.get("STOCKADE_SPOOL_MAX")
    if not text:
        return DEFAULT_MAX_BYTES
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise UsageError(f"STOCKADE_SPOOL_MAX: expected a size like 64MiB, not {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2)]


def agent_info(
    name: str | None, capabilities: tuple[str, ...], node: str | None = None
) -> AgentInfo:
    """What an agent reports itself as: ``name`` (default the host name) on ``node`` (default
    ``$NODE_NAME``, else the host name)."""
    from stockade import __version__
    from stockade.events.ingest import parse_agent
    from stockade.model.errors import InputError

    host = socket.gethostname()
    node = node or os.environ.get("NODE_NAME") or host
    try:
        return parse_agent(
            {
                "name": name or host,
                "node": node,
                "version": __version__,
                "capabilities": list(capabilities),
            }
        )
    except InputError as exc:
        raise UsageError(f"--agent-name: {exc}") from None


def spool_for(agent_name: str) -> Path:
    """The agent's own folder in the spool root (its name made a single safe path component)."""
    return spool_root() / re.sub(r"[^A-Za-z0-9_.@:-]", "_", agent_name)


@contextmanager
def reporting(
    options: AgentOptions,
    capabilities: tuple[str, ...],
    *,
    node: str | None = None,
    heartbeat: float | None = None,
) -> Iterator[Reporter | None]:
    """A started reporter when ``--controller`` is given (closed, and flushed, on exit), else None;
    ``node`` is the node reported (default ``$NODE_NAME``, else the host name), ``heartbeat`` the
    longest quiet time before an empty batch says the agent is up."""
    if not options.controller:
        if options.token or options.ca:
            raise UsageError("--token and --controller-ca need --controller")
        yield None
        return
    from stockade.events.reporter import ControllerLink, Reporter
    from stockade.events.spool import Spool

    if not options.token:
        raise UsageError("--controller needs --token (or STOCKADE_CONTROLLER_TOKEN)")
    link = ControllerLink(url=options.controller, token=options.token, ca=options.ca)
    agent = agent_info(options.name, capabilities, node)
    spool = Spool(spool_for(agent.name), max_bytes=spool_max_bytes())
    reporter = Reporter(link, agent, spool, heartbeat=heartbeat)
    with reporter:
        yield reporter
    stats = reporter.stats
    err_console.print(
        f"controller: {stats.accepted} events stored, {stats.duplicates} duplicates, "
        f"{stats.pending} spooled, {stats.dropped} dropped"
        + (f", {stats.connections} connections stored" if stats.connections else ""),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


agent_app = typer.Typer(
    help="The node agent (`agent run`, one per node) and the spool of events for the controller."
)


@agent_app.command("flush")
def flush(
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Give up after this many seconds.")
    ] = 60.0,
) -> None:
    """Send the events waiting in the spool to the controller (exit 3 if some remain)."""
    if not controller:
        raise UsageError("--controller is required")
    with reporting(
        AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name), ()
    ) as reporter:
        assert reporter is not None
        reporter.close(timeout)
    if reporter.stats.pending:
        raise typer.Exit(3)


@agent_app.command("spool")
def spool_status(agent_name: AgentNameOption = None) -> None:
    """Show what waits in the spool: batches, events, bytes and drops not yet reported."""
    from stockade.events.spool import Spool

    name = agent_name or socket.gethostname()
    spool = Spool(spool_for(name), max_bytes=spool_max_bytes())
    console.print(
        f"{spool.root}: {len(spool.batches())} batches, {spool.pending_events()} events, "
        f"{spool.size()} bytes of {spool.max_bytes}; {spool.dropped()} dropped events not yet reported",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(agent_app, name="agent")


def send(options: AgentOptions, capabilities: tuple[str, ...], events: list[Event]) -> None:
    """Report ``events`` to the controller when ``--controller`` is given (one short-lived reporter)."""
    with reporting(options, capabilities) as reporter:
        if reporter is not None:
            reporter.add_all(events)


def _worst(counts: dict[str, int]) -> Severity:
    from stockade.model import Severity

    present = [Severity.parse(name) for name, n in counts.items() if n]
    return max(present, default=Severity.UNKNOWN)


def scan_event(report: Any) -> Event:
    """A ``scan.completed`` event summing up a scan report (see
    :func:`stockade.scanning.report_event.scan_completed_event`)."""
    from stockade.scanning.report_event import scan_completed_event

    return scan_completed_event(report)


def walk_event(walk: Any) -> Event:
    """A ``scan.registry`` event for one poll of a registry."""
    from stockade.model import Event, ResourceRef

    counts: dict[str, int] = {}
    for item in walk.items:
        for s, n in item.counts.items():
            counts[s] = counts.get(s, 0) + n
    return Event(
        kind="scan.registry",
        severity=_worst(counts),
        source="scan",
        message=walk.line(),
        resource=ResourceRef(kind="registry", name=walk.host),
        data={
            "poll": walk.poll,
            "tags": walk.tally(),
            "counts": counts,
            "errors": walk.errors,
            "failed": walk.failed,
        },
    )


def cis_event(result: Any, run_id: str | None) -> Event:
    """A ``cis.run`` event with the run's counts by status (the findings stay in the local store)."""
    from stockade.model import Event, ResourceRef, Severity, Status

    counts = result.counts()
    fails = [f.severity for f in result.findings if f.status is Status.FAIL]
    bench = result.benchmark
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return Event(
        kind="cis.run",
        severity=max(fails, default=Severity.UNKNOWN),
        source="bench",
        message=f"{bench.title} on {result.node_name}: {summary}",
        resource=ResourceRef(kind="node", name=result.node_name[:1024]),
        data={
            "benchmark": bench.id,
            "version": bench.version,
            "roles": list(result.roles),
            "counts": counts,
            "run": run_id,
        },
    )


def workloads_event(findings: list[Any], source: str) -> Event:
    """A ``cis.run`` event for a workload benchmark: findings by status."""
    from stockade.model import Event, Severity, Status

    counts: dict[str, int] = {}
    for f in findings:
        counts[str(f.status)] = counts.get(str(f.status), 0) + 1
    fails = [f.severity for f in findings if f.status is Status.FAIL]
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return Event(
        kind="cis.run",
        severity=max(fails, default=Severity.UNKNOWN),
        source="bench",
        message=f"workload checks of {source}: {summary or 'nothing checked'}",
        data={"benchmark": "workloads", "counts": counts},
    )


def workload_results(findings: list[Any], source: str, profile: str) -> dict[str, Any]:
    """The body of ``POST /api/v1/cis/runs`` for ``bench workloads``: every check result of one
    run over manifests or a cluster (``node`` names what was checked), so the console's
    Compliance page and the framework reports have them next to the node benchmarks."""
    import uuid
    from datetime import UTC, datetime

    return {
        "run": uuid.uuid4().hex,
        "finished_at": datetime.now(UTC).isoformat(),
        "node": source[:1024] or "workloads",
        "benchmark": {
            "id": f"workloads-{profile}",
            "title": "Workload checks (Pod Security Standards, CIS Kubernetes section 5)",
            "version": profile,
        },
        "roles": [],
        "findings": [f.to_dict() for f in findings],
    }


def upload_results(options: AgentOptions, path: str, payload: dict[str, Any], what: str) -> None:
    """Upload full results (``scan_results``, ``cis_results``) when ``--controller`` is given."""
    if not options.controller or not options.token:
        return  # without a controller `reporting` has already said what is missing
    from stockade.events.reporter import ControllerLink
    from stockade.events.upload import upload

    link = ControllerLink(url=options.controller, token=options.token, ca=options.ca)

    def say(line: str) -> None:
        err_console.print(line, markup=False, highlight=False)

    if upload(link, path, payload, what=what, notice=say):
        say(f"controller: {what} results uploaded ({len(payload['findings'])} findings)")


def scan_results(report: Any) -> dict[str, Any]:
    """The body of ``POST /api/v1/scans``: the image, its packages summary, what could not be
    checked and every vulnerability the gate kept (the local store keeps the same)."""
    import uuid
    from collections import Counter

    inv = report.inventory
    image = inv.image
    return {
        "run": uuid.uuid4().hex,
        "finished_at": report.scanned_at.isoformat(),
        "image": {
            "reference": inv.source[:1024],
            "name": image.name if image else None,
            "tag": image.tag if image else None,
            "digest": image.manifest_digest if image else None,
        },
        "packages": {
            "total": len(inv.packages),
            "by_type": dict(Counter(p.type for p in inv.packages).most_common(64)),
        },
        "unchecked": [u.to_dict() for u in report.unchecked[:1000]],
        "failed": report.gate.failed,
        "suppressed": len(report.gate.suppressed),
        "findings": [g.finding.to_dict() for g in report.ordered(active_only=True)],
    }


def cis_results(result: Any, run_id: str | None) -> dict[str, Any]:
    """The body of ``POST /api/v1/cis/runs``: every check result of one benchmark run."""
    import uuid
    from datetime import UTC, datetime

    bench = result.benchmark
    return {
        "run": run_id or uuid.uuid4().hex,
        "finished_at": datetime.now(UTC).isoformat(),
        "node": result.node_name[:1024],
        "benchmark": {"id": bench.id, "title": bench.title, "version": bench.version},
        "roles": list(result.roles),
        "findings": [f.to_dict() for f in result.findings],
    }
