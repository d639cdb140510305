"""The lab for the controller's end-to-end tests: a running lab, a controller and an enforcer
started with ``--controller``; curl from a pod's namespace."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.api.controller import Controller


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


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
