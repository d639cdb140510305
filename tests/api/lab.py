"""The lab for the controller's end-to-end tests: a running lab, a controller and an enforcer
started with ``--controller``; curl from a pod's namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.controller import SRC, Controller, running_controller
from tests.api.responding import wait_for
from tests.support import require_root


@dataclass
class Setup:
    controller: Controller
    prefix: str
    enforcer: subprocess.Popen[str]
    log: Path

    def curl(self, pod: str, url: str, timeout: float = 2) -> tuple[int, str]:
        return curl_in(f"{self.prefix}{pod}", url, timeout)


def curl_in(netns: str, url: str, timeout: float = 2) -> tuple[int, str]:
    """curl ``url`` from a pod's namespace: (curl's exit code, the HTTP status it got)."""
    proc = subprocess.run(
        [
            *("ip", "netns", "exec", netns),
            *("curl", "-s", "-m", str(timeout), "-o", "/dev/null", "-w", "%{http_code}", url),
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 5,
    )
    return proc.returncode, proc.stdout.strip()


def lab_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", "lab", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def enforced_lab(
    tmp_path_factory: pytest.TempPathFactory,
    prefix: str,
    *,
    rules: str | None = None,
    policy: str | None = None,
) -> Iterator[Setup]:
    """A lab (no databases), a controller on SQLite (seeded with the response ``rules`` when
    given) and an enforcer started with ``--controller`` and, when given, a local ``policy``
    (without one it waits for the controller's); torn down when the generator closes."""
    require_root("ip", "nft", "curl")
    tmp = tmp_path_factory.mktemp(f"{prefix}lab")
    state = tmp / "lab.json"
    with ExitStack() as stack:
        up = lab_command("up", "--prefix", prefix, "--state", str(state), "--no-databases")
        stack.callback(lab_command, "down", "--prefix", prefix, "--state", str(state))
        assert up.returncode == 0, up.stderr
        seed = () if rules is None else ("--rules", str(_write(tmp / "rules.yaml", rules)))
        controllers = running_controller("sqlite", tmp_path_factory, "unused", *seed)
        controller = next(controllers)
        local = () if policy is None else ("--policy", str(_write(tmp / "policy.yaml", policy)))
        stack.callback(lambda: next(controllers, None))
        log = tmp / "enforcer.log"
        env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "STOCKADE_CONTROLLER_TOKEN": controller.tokens["agent"],
            "STOCKADE_SPOOL_DIR": str(tmp / "spool"),
        }
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "stockade", "enforcer"),
                    *("--db", f"sqlite:///{tmp / 'node.db'}", "--lab-state", str(state)),
                    *local,
                    *("--duration", "180"),
                    *("--controller", controller.base, "--controller-ca", str(controller.ca)),
                    *("--agent-name", "node-enforcer"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        stack.callback(stop, proc)
        wait_for(lambda: "enforcing" in log.read_text() or proc.poll() is not None, what="start")
        assert proc.poll() is None, log.read_text()
        yield Setup(controller=controller, prefix=prefix, enforcer=proc, log=log)
