"""``/metrics`` in the Prometheus text exposition format (version 0.0.4), written by hand: a few
gauges read from the store at scrape time need no client library."""

from __future__ import annotations

from stockade.api.agents import agents_up
from stockade.model import Severity
from stockade.store import Store
from stockade.store.records import event_counts

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
    for name, value in sorted((gauges or {}).items()):
        if name in GAUGE_HELP:
            lines.append(f"# HELP {name} {GAUGE_HELP[name]}")
        lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
    for name, value in sorted((extra or {}).items()):
        lines += [f"# TYPE {name} counter", f"{name} {value:g}"]
    return "\n".join(lines) + "\n"
