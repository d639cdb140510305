"""The controller applies its retention policy on its timer; a wrong policy stops it before it
listens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from stockade.model import Event
from stockade.store.records import list_events, record_events
from tests.api.controller import SRC, Controller

POLICY = """\
apiVersion: stockade.dev/v1
kind: Retention
spec:
  every: 1s
  default: {maxAge: 30d}
"""


def test_the_controller_prunes_on_its_timer_and_says_so(tmp_path: Path) -> None:
    policy = tmp_path / "retention.yaml"
    policy.write_text(POLICY)
    c = Controller(f"sqlite:///{tmp_path / 'stockade.db'}", tmp_path, "--retention", str(policy))
    old = Event(kind="dlp.hit", message="old", at=datetime(2001, 1, 1, tzinfo=UTC))
    record_events(c.store, [old, Event(kind="dlp.hit", message="new")])
    try:
        c.start()
        deadline = time.monotonic() + 20
        while not list_events(c.store, kind="store.pruned") and time.monotonic() < deadline:
            time.sleep(0.2)
        first = list_events(c.store, kind="store.pruned")[-1]
        assert first.data["categories"]["dlp"] == {"age": 1, "rows": 0, "bytes": 0, "total": 1}
        assert [e.message for e in list_events(c.store, kind="dlp.*")] == ["new"]
        assert "retention: default 30.0 days; applied every 0:00:01" in c.output()
    finally:
        c.stop()


def test_a_wrong_retention_file_stops_the_controller_before_it_listens(tmp_path: Path) -> None:
    policy = tmp_path / "retention.yaml"
    policy.write_text(POLICY.replace("maxAge: 30d", "maxAge: 30"))
    out = subprocess.run(
        [sys.executable, "-m", "stockade", "controller", "--port", "0", "--no-tls",
         "--db", str(tmp_path / "s.db"), "--retention", str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr == (
        f"stockade: error: {policy}:5: spec.default.maxAge: bad duration '30' "
        "(write a number and a unit: 30s, 5m, 12h, 7d, 2w)\n"
    )
