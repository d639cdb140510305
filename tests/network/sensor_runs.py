"""``stockade sensor --pcap`` run as a user runs it, on one of its capture paths, for tests that
compare the paths' whole output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
# a connection id's random part (UUID-shaped: only the last group, the connection's number, stays)
_RUN_ID = re.compile(r'"id": "[0-9a-f-]+-')


def sensor_pcap(path: Path, fastpath: str) -> tuple[int, str, str]:
    """Exit code, stdout (JSON lines, run ids left out) and stderr of ``sensor --pcap PATH
    --format json --no-store --fail-on high`` with ``STOCKADE_SENSOR_FASTPATH=fastpath``."""
    env = dict(os.environ, STOCKADE_SENSOR_FASTPATH=fastpath, PYTHONPATH=SRC)
    p = subprocess.run(
        [sys.executable, "-m", "stockade", "sensor", "--pcap", str(path), "--format", "json",
         "--no-store", "--fail-on", "high"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return p.returncode, _RUN_ID.sub('"id": "', p.stdout), p.stderr
