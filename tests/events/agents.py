"""Helpers for the agent tests: the real ``stockade`` CLI as a subprocess, a capture with a card
number in clear, and a port nothing listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.api.controller import SRC, Controller
from tests.network.frames import conversation, ether, pcap

CARD = "4111 1111 1111 1111"


def stockade(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        **(env or {}),
    }
    for name in ("STOCKADE_CONTROLLER", "STOCKADE_CONTROLLER_TOKEN", "STOCKADE_DB"):
        if name not in (env or {}):
            full.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
    )


def capture(path: Path, body: bytes) -> Path:
    """An HTTP POST carrying ``body`` in clear, 10.1.0.5 -> 10.1.0.9:80."""
    request = b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    packets = conversation("10.1.0.5", "10.1.0.9", 40000, 80, request, b"HTTP/1.1 200 OK\r\n\r\n")
    now = time.time()
    path.write_bytes(pcap([(now + i / 1000, ether(p)) for i, p in enumerate(packets)]))
    return path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent_env(tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "STOCKADE_SPOOL_DIR": str(tmp / "spool"),
        "STOCKADE_DB": f"sqlite:///{tmp / 'local.db'}",
        "STOCKADE_AGENT_NAME": "node-1-sensor",
        **extra,
    }


def controller_args(c: Controller, *, url: str | None = None) -> list[str]:
    return [
        "--controller",
        url or c.base,
        "--token",
        c.tokens["agent"],
        "--controller-ca",
        str(c.ca),
    ]


def controller_events(c: Controller, **params: Any) -> list[dict[str, Any]]:
    """Every event the controller holds (all pages)."""
    out: list[dict[str, Any]] = []
    cursor = None
    with c.as_role("reader") as http:
        while True:
            query = {"limit": 1000, **params, **({"cursor": cursor} if cursor else {})}
            page = http.get("/api/v1/events", params=query)
            assert page.status_code == 200, page.text
            body = page.json()
            out += body["events"]
            cursor = body.get("next")
            if not cursor or not body["events"]:
                return out


def spooled(spool: Path) -> list[Path]:
    return sorted(spool.rglob("*.jsonl"))
