"""A child process the agent keeps running (the firewall enforcer, which owns its main thread's
signals): its output goes to the agent's; started, restarted after an exit with a backoff (1 s doubling to 30 s, reset after a
minute of running), and stopped with SIGTERM (SIGKILL after ``grace`` seconds)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

BACKOFF_FIRST, BACKOFF_MAX, STEADY = 1.0, 30.0, 60.0


class Supervised:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        notice: Callable[[str], None] = lambda line: None,
        grace: float = 20.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.notice = notice
        self.grace = grace
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"agent-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # its output is the agent's (one log per node in a DaemonSet)
        return subprocess.Popen(self.argv, env=self.env, close_fds=True)

    def _run(self) -> None:
        delay = BACKOFF_FIRST
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.proc = self._spawn()
            except OSError as exc:
                self.notice(f"agent: cannot start the {self.name}: {exc}")
                code: int | None = None
            else:
                self.starts += 1
                code = self.proc.wait()
            if self._stop.is_set():
                return
            if time.monotonic() - started >= STEADY:
                delay = BACKOFF_FIRST
            self.notice(f"agent: the {self.name} exited ({code}); starting it again in {delay:g}s")
            self._stop.wait(delay)
            delay = min(BACKOFF_MAX, delay * 2)

    def stop(self) -> int | None:
        """SIGTERM (the child removes its rules), SIGKILL after the grace time; its exit code."""
        self._stop.set()
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._thread.join(5)
        return proc.returncode
