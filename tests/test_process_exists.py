"""stockade.workers.process_exists on this machine's real processes."""

from __future__ import annotations

import os
import subprocess
import sys

from stockade.workers import process_exists


def test_process_exists_until_the_process_is_reaped() -> None:
    assert process_exists(os.getpid())
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    assert process_exists(child.pid)
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=30)  # reaped: the pid is free
    assert not process_exists(child.pid)


def test_another_users_process_exists() -> None:
    """pid 1 is root's: to an unprivileged caller kill 0 answers EPERM, yet the process is
    there (a forked child drops to nobody when the tests run as root)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 2
        try:
            if os.geteuid() == 0:
                os.setuid(65534)
            try:
                os.kill(1, 0)
                code = 3  # not refused: the branch under test would not run
            except PermissionError:
                code = 0 if process_exists(1) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
