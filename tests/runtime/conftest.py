"""A lab whose ``orders`` pod runs a container of the sample image, and a runner for
``stockade runtime watch`` as a real process, for the root tests of this folder. Everything is
torn down in ``finally`` (the lab's ``down`` also removes the container's cgroup and overlay)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stockade.lab.inventory import Inventory
from tests.support import require

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="session")
def container_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Inventory, Path]]:
    require(os.geteuid() == 0, "the lab needs root (namespaces, cgroups, the process connector)")
    for tool in ("ip", "unshare", "nsenter"):
        require(shutil.which(tool) is not None, f"needs {tool} on PATH")
    from stockade.lab import manager

    prefix = f"rt{os.getpid() % 100000}-"
    state = tmp_path_factory.mktemp("lab") / "lab.json"
    try:
        inv = manager.up(prefix, state, databases_on=False, containers={"orders": "sample"})
        yield inv, state
    finally:
        manager.down(prefix, state)


def run_in_pod(inv: Inventory, argv: list[str], timeout: float = 15) -> int:
    from stockade.lab import manager

    args = manager.container_exec_args(inv, "orders", argv)
    return subprocess.run(args, capture_output=True, timeout=timeout, check=False).returncode


@dataclass
class Watch:
    proc: subprocess.Popen[str]
    events: list[dict] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for t in self.readers:
            t.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.events]


def start_watch(
    state: Path,
    profiles: Path,
    *extra: str,
    duration: float = 60,
    env: dict[str, str] | None = None,
) -> Watch:
    """``stockade runtime watch`` in the background, once it said it is watching."""
    env = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stockade",
            "runtime",
            "watch",
            "--lab-state",
            str(state),
            "--profiles",
            str(profiles),
            "--duration",
            str(duration),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    w = Watch(proc)
    ready = threading.Event()

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            w.stderr.append(line)
            if line.startswith("watching"):
                ready.set()
        ready.set()

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            w.events.append(json.loads(line))

    w.readers = [
        threading.Thread(target=read_err, daemon=True),
        threading.Thread(target=read_out, daemon=True),
    ]
    for t in w.readers:
        t.start()
    if not ready.wait(30) or proc.poll() is not None:
        w.stop()
        pytest.fail(f"runtime watch did not start: {''.join(w.stderr)[-2000:]}")
    return w


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
