"""Running a node benchmark once or again and again (``bench k8s --every 1h``): the node is read
afresh for every run (configuration files and process command lines change), and each run's
findings are recorded when a store is given. The wait between runs is ``time.sleep`` unless the
caller gives its own (the node agent's wakes early when a watched configuration changes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from stockade.compliance.cis.engine import RunResult, run
from stockade.compliance.cis.model import Benchmark, Check
from stockade.compliance.cis.node import open_node
from stockade.store import Store
from stockade.store.records import record_findings


def repeated_runs(
    bench: Benchmark,
    *,
    root: Path | None,
    processes: Path | None,
    roles: Sequence[str] | None = None,
    extra: Sequence[Check] = (),
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    store: Store | None = None,
    every: float | None = None,
    max_runs: int | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> Iterator[tuple[RunResult, str | None]]:
    """Each run's result and its stored run id; one run unless ``every`` (seconds) is given, then
    until ``max_runs`` (or forever), waiting with ``sleep(every)`` between runs."""
    runs = 0
    while True:
        node = open_node(root, processes)
        result = run(bench, node, roles=roles, extra=extra, only=only, skip=skip)
        run_id = record_findings(store, result.findings) if store is not None else None
        yield result, run_id
        runs += 1
        if every is None or (max_runs is not None and runs >= max_runs):
            return
        sleep(every)
