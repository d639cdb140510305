"""A lab (network namespaces with real services) shared by the root tests of this folder, torn
down in ``finally`` even when tests fail."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stockade.lab.inventory import Inventory
from tests.conftest import require


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Inventory, Path]]:
    require(os.geteuid() == 0, "the lab needs root (network namespaces)")
    require(shutil.which("ip") is not None, "iproute2 is not installed")
    from stockade.lab import manager

    prefix = f"sk{os.getpid() % 100000}-"
    state = tmp_path_factory.mktemp("lab") / "lab.json"
    try:
        inv = manager.up(prefix, state)
        yield inv, state
    finally:
        manager.down(prefix, state)


@pytest.fixture(scope="session")
def inspectors():
    from stockade.network.analysis import Inspectors

    return Inspectors.default()


def live_capture(inv: Inventory, inspectors, drive: Callable[[], object], **kw):
    """Capture on the lab's host-side veths while ``drive()`` runs in this thread."""
    from stockade.network.sensor import run_live

    ready, done = threading.Event(), threading.Event()
    box: dict[str, object] = {}

    def capture() -> None:
        try:
            box["run"] = run_live(
                inv.host_interfaces(),
                namespace=inv.node_netns,
                inspectors=inspectors,
                identities=inv.directory(),
                ready=ready.set,
                stop=done.is_set,
                duration=120,
                **kw,
            )
        except BaseException as exc:  # handed to the test thread below
            box["error"] = exc
            ready.set()

    t = threading.Thread(target=capture)
    t.start()
    try:
        assert ready.wait(10)
        result = drive()
    finally:
        done.set()
        t.join(30)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["run"], result


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Print the DLP corpus counts (false-positive corpus, true-positive table) when they ran."""
    from tests.network.dlp_report import DLP_SUMMARY

    lines = config.stash.get(DLP_SUMMARY, [])
    if lines:
        terminalreporter.write_sep("-", "DLP corpus")
        for line in lines:
            terminalreporter.write_line(line)
