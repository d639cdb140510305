"""``stockade sensor --pcap`` run as a user runs it, on one of its capture paths, for tests that
compare the paths' whole output; and its JSON lines and tallies in process (:func:`json_lines`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from stockade.identity import Directory
from stockade.model.errors import PacketError
from stockade.network.connection import ConnectionRecord
from stockade.network.flows import FlowConfig
from stockade.network.recorder import Recorder
from stockade.network.sensor import run_pcap

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


def json_lines(
    path: Path, inspectors: Any, *, identities: Directory | None = None,
    config: FlowConfig | None = None, lines: bool = True,
) -> tuple[list[str], Any, tuple[Any, ...], list[str]]:  # fmt: skip
    """What ``sensor --pcap FILE --format json --no-store`` writes and tallies, in this process,
    on the path ``STOCKADE_SENSOR_FASTPATH`` selects: its JSON lines in order (run ids left out),
    the run's statistics (or the error), the recorder's tallies, and the lines the C code wrote
    (``run_pcap``'s ``on_lines``, with ``lines``)."""
    recorder = Recorder(None, capture=str(path))
    out: list[str] = []
    written: list[str] = []

    def record(rec: ConnectionRecord) -> None:
        recorder.add(rec)
        out.append(rec.json_line() + "\n")

    def in_c(text: str, count: int, protocol: str, first: float, last: float, hits: Any) -> None:
        recorder.add_plain(count, protocol, first, last, hits)
        got = text.splitlines(keepends=True)
        assert len(got) == count and text.endswith("\n")
        out.extend(got)
        written.extend(got)

    try:
        run = run_pcap(path, inspectors=inspectors, identities=identities or Directory(),
                       config=config, on_record=record, keep=False,
                       on_lines=in_c if lines else None)  # fmt: skip
        end: Any = run.stats
    except PacketError as exc:
        end = ("error", str(exc))
    o = recorder.observed
    tallies = (recorder.connections, recorder.kinds, recorder.worst, o.connections, o.encrypted,
               o.tls, o.certificates, o.dlp_hits, dict(o.protocols), o.first, o.last)  # fmt: skip

    def same(lines: list[str]) -> list[str]:
        return [_RUN_ID.sub('"id": "', line) for line in lines]

    return same(out), end, tallies, same(written)
