from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from admission_reviews import EXAMPLES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Webhook:
    url: str
    ca: Path
    db: str
    proc: subprocess.Popen[bytes]

    def client(self) -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(base_url=self.url, verify=ctx, timeout=10)


def start_webhook(tmp: Path, *extra: str) -> Webhook:
    port = free_port()
    db = f"sqlite:///{tmp / 'stockade.db'}"
    cert_dir = tmp / "certs"
    cmd = [
        sys.executable,
        "-m",
        "stockade",
        "admission",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--cert-dir",
        str(cert_dir),
        "--db",
        db,
        *extra,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy()
    )
    hook = Webhook(url=f"https://127.0.0.1:{port}", ca=cert_dir / "ca.crt", db=db, proc=proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"webhook exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        if hook.ca.exists():
            try:
                with hook.client() as c:
                    if c.get("/healthz").status_code == 200:
                        return hook
            except (httpx.TransportError, ssl.SSLError):
                pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("webhook did not start in 30 s")


def stop_webhook(hook: Webhook) -> str:
    hook.proc.terminate()
    try:
        _, err = hook.proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        hook.proc.kill()
        _, err = hook.proc.communicate()
    return err.decode()


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    tmp = tmp_path_factory.mktemp("webhook")
    hook = start_webhook(
        tmp, "--policy", str(EXAMPLES / "policy.yaml"), "--vulns", str(EXAMPLES / "vulns.yaml")
    )
    try:
        yield hook
    finally:
        stop_webhook(hook)
