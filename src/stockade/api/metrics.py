"""``/metrics`` in the Prometheus text exposition format (version 0.0.4), written by hand: a few
gauges read from the store at scrape time need no client library.

Events by category and level, agents up and known, quarantined workloads, running workloads with a
vulnerability of each severity (from the images' newest scans), CIS results of each node's newest
run by status, events agents dropped (their spool full), notifications kept as dead letters, and
the controller's own gauges (``stockade_controller_leader``)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

from stockade.api import catalog
from stockade.api.agents import agents_up
from stockade.events.notify.deadletters import DeadLetters
from stockade.firewall.policy.store import quarantined
from stockade.model import Severity
from stockade.store import Store
from stockade.store.records import event_counts
from stockade.store.tables import events

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _level_name(level: int) -> str:
    try:
        return str(Severity(level))
    except ValueError:
        return str(level)


GAUGE_HELP = {
    "stockade_controller_leader": "1 when this controller replica holds the leader lock.",
}


def exposition(
    store: Store,
    *,
    extra: dict[str, float] | None = None,
    gauges: dict[str, float] | None = None,
    workload_images: Mapping[str, str] | None = None,
) -> str:
    lines = [
        "# HELP stockade_events Events in the store by category and level.",
        "# TYPE stockade_events gauge",
    ]
    for category, level, n in sorted(event_counts(store)):
        name = _level_name(level)
        lines.append(f'stockade_events{{category="{_label(category)}",level="{_label(name)}"}} {n}')
    up, known = agents_up(store)
    lines += [
        "# HELP stockade_agents_up Agents that reported within the last 90 seconds.",
        "# TYPE stockade_agents_up gauge",
        f"stockade_agents_up {up}",
        "# HELP stockade_agents_known Agents that ever reported.",
        "# TYPE stockade_agents_known gauge",
        f"stockade_agents_known {known}",
    ]
    lines += _platform(store, workload_images or {})
    for name, value in sorted((gauges or {}).items()):
        if name in GAUGE_HELP:
            lines.append(f"# HELP {name} {GAUGE_HELP[name]}")
        lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
    for name, value in sorted((extra or {}).items()):
        lines += [f"# TYPE {name} counter", f"{name} {value:g}"]
    return "\n".join(lines) + "\n"


def _platform(store: Store, workload_images: Mapping[str, str]) -> list[str]:
    lines = [
        "# HELP stockade_quarantined_workloads Workloads in quarantine.",
        "# TYPE stockade_quarantined_workloads gauge",
        f"stockade_quarantined_workloads {len(quarantined(store))}",
    ]
    by_severity: dict[str, set[str]] = {}
    for image in catalog.images(store):
        running = image.runs(workload_images)
        for severity, n in (image.run["summary"].get("counts") or {}).items():
            if isinstance(n, int) and n > 0:
                by_severity.setdefault(str(severity), set()).update(running)
    lines += [
        "# HELP stockade_vulnerable_workloads Running workloads whose image has a vulnerability "
        "of the severity (newest scan of each image).",
        "# TYPE stockade_vulnerable_workloads gauge",
    ]
    for severity in ("critical", "high", "medium", "low"):
        n = len(by_severity.get(severity, ()))
        lines.append(f'stockade_vulnerable_workloads{{severity="{severity}"}} {n}')
    newest: dict[tuple[str, str], dict[str, int]] = {}
    runs, _ = catalog.cis_runs(store, offset=0, limit=1000)
    for run in runs:  # newest first: the first of a node and benchmark is its newest
        newest.setdefault((str(run["node"]), str(run.get("benchmark"))), run.get("counts") or {})
    totals: dict[str, int] = {}
    for counts in newest.values():
        for status, n in counts.items():
            if isinstance(n, int):
                totals[str(status)] = totals.get(str(status), 0) + n
    lines += [
        "# HELP stockade_cis_results CIS check results of each node's newest run, by status.",
        "# TYPE stockade_cis_results gauge",
    ]
    for status, n in sorted(totals.items()):
        lines.append(f'stockade_cis_results{{status="{_label(status)}"}} {n}')
    with store.connect() as conn:
        dropped = sum(
            int(d.get("dropped", 0))
            for (d,) in conn.execute(select(events.c.data).where(events.c.kind == "agent.dropped"))
            if isinstance(d, dict) and isinstance(d.get("dropped", 0), int)
        )
    lines += [
        "# HELP stockade_agent_events_dropped_total Events agents dropped (spool full), as reported.",
        "# TYPE stockade_agent_events_dropped_total counter",
        f"stockade_agent_events_dropped_total {dropped}",
        "# HELP stockade_notification_dead_letters Notifications that failed and wait in the "
        "dead-letter list.",
        "# TYPE stockade_notification_dead_letters gauge",
        f"stockade_notification_dead_letters {DeadLetters(store).count()}",
    ]
    return lines
