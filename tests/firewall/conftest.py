"""A lab (pods as network namespaces) and enforcer processes for firewall tests.

Everything a test starts is named by a per-run prefix and removed in ``finally`` blocks, and
every client call is bounded by a timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import require_root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "firewall"


@dataclass
class Lab:
    prefix: str
    state: Path
    db: str
    tmp: Path

    def ns(self, pod: str) -> str:
        return f"{self.prefix}{pod}"

    @property
    def node(self) -> str:
        return f"{self.prefix}node"

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stockade", *args, *self._common(args)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def apply(self, *files: Path) -> None:
        """Make ``files`` the running policy, as ``policy apply`` does, in this process: for the
        tests that start from a policy (the command itself is tested where it is the subject),
        without a second of interpreter start-up each time."""
        from stockade.firewall.policy.files import dump, load_files
        from stockade.firewall.policy.store import apply_policy
        from stockade.store import open_store

        policy = load_files(list(files))
        store = open_store(self.db)
        try:
            apply_policy(store, policy, dump(policy))
        finally:
            store.close()

    def _common(self, args: tuple[str, ...]) -> list[str]:
        out = ["--db", self.db]
        if (args and args[0] in ("enforcer", "quarantine")) or args[:2] == ("policy", "explain"):
            out += ["--lab-state", str(self.state)]
        return out

    def curl(self, pod: str, url: str, *extra: str, timeout: float = 3) -> tuple[int, str, float]:
        """(curl exit code, HTTP code, seconds) for one request from ``pod``."""
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.ns(pod),
                "curl",
                "-s",
                "-k",
                "-m",
                str(timeout),
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 5,
        )
        return proc.returncode, proc.stdout.strip(), time.monotonic() - t0


@pytest.fixture(scope="package")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_root("ip", "nft", "iptables", "curl")
    tmp = tmp_path_factory.mktemp("fwlab")
    prefix = f"fw{os.getpid() % 10000}-"
    state = tmp / "lab.json"
    lab = Lab(prefix=prefix, state=state, db=f"sqlite:///{tmp / 'stockade.db'}", tmp=tmp)
    up = subprocess.run(
        [
            sys.executable,
            "-m",
            "stockade",
            "lab",
            "up",
            "--prefix",
            prefix,
            "--state",
            str(state),
            "--no-databases",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert up.returncode == 0, up.stderr
        yield lab
    finally:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "stockade",
                "lab",
                "down",
                "--prefix",
                prefix,
                "--state",
                str(state),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )


@dataclass
class Running:
    proc: subprocess.Popen[str]
    log: Path

    def stop(self, sig: int = signal.SIGTERM) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.log.read_text()


@pytest.fixture
def enforcer(lab: Lab) -> Iterator:
    started: list[Running] = []

    def start(*args: str) -> Running:
        log = lab.tmp / f"enforcer-{len(started)}.log"
        with log.open("w") as f:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stockade",
                    "enforcer",
                    "--db",
                    lab.db,
                    "--lab-state",
                    str(lab.state),
                    "--duration",
                    "120",
                    *args,
                ],
                stdout=f,
                stderr=subprocess.STDOUT,
                text=True,
            )
        run = Running(proc=proc, log=log)
        started.append(run)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "enforcing" in log.read_text():
                return run
            if proc.poll() is not None:
                raise AssertionError(f"enforcer exited: {log.read_text()}")
            time.sleep(0.1)
        raise AssertionError("enforcer did not start")

    try:
        yield start
    finally:
        for run in started:
            run.stop(signal.SIGKILL if run.proc.poll() is None else signal.SIGTERM)
        # what `enforcer --remove` does (test_fail_open_or_closed_when_the_enforcer_dies runs the
        # command), without starting an interpreter after every test
        from stockade.firewall.enforce import nft

        nft.remove(lab.node)
