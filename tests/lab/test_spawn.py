"""The lab's one way to start a long-lived service: its own session, output appended to a
private log, no terminal input."""

from __future__ import annotations

import os
import time
from pathlib import Path

from stockade.lab.databases import spawn_service


def test_a_service_runs_in_its_own_session_logging_to_a_private_file(tmp_path: Path) -> None:
    log = tmp_path / "services.log"
    log.write_text("earlier\n")
    log.chmod(0o600)
    script = "echo out; echo err >&2; read -r line || echo no-input; kill -STOP $$"
    pid = spawn_service(["sh", "-c", script], log)
    try:
        deadline = time.monotonic() + 10
        while "no-input" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.getsid(pid) == pid  # a session of its own: a terminal's signals do not reach it
        assert log.read_text() == "earlier\nout\nerr\nno-input\n"
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    fresh = tmp_path / "new.log"
    pid = spawn_service(["true"], fresh)
    os.waitpid(pid, 0)
    assert fresh.stat().st_mode & 0o777 == 0o600
