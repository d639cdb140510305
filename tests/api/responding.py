"""Shared pieces of the responding tests: a rules file, a targets file with a webhook receiver, and
waiting for what the response worker does after the request returned."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from stockade.admission.certs import ServingFiles
from tests.events.receivers import WEBHOOK_SECRET, HttpReceiver

T = TypeVar("T")

RULES = """\
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: test}
spec:
  rules:
    - name: card-into-cde
      mode: active
      match:
        events: [dlp.sensitive_in_clear]
        sensors: [dlp.payment_card]
        namespaces: [marketing]
      actions: [quarantine, notify]
      notify: [soc]
    - name: tell-quiet
      mode: active
      match: {namespaces: [quiet]}
      actions: [notify]
      notify: [soc]
    - name: quiet-lab
      mode: active
      match: {namespaces: [quiet]}
      actions: [suppress]
    - name: critical-images
      mode: active
      match:
        vulnerabilities: {critical: 1}
      actions: [quarantine]
    - name: watch-burst
      match: {namespaces: [burst]}
      actions: [quarantine]
"""


def targets_yaml(receiver: HttpReceiver, certs: ServingFiles, *extra: str) -> str:
    return (
        "targets:\n"
        "  - name: soc\n"
        "    kind: webhook\n"
        "    timeout: 5\n"
        "    retry: {attempts: 2, backoff: 0.1}\n"
        f"    settings: {{url: '{receiver.url}/hook', secret: '{WEBHOOK_SECRET}', "
        f"ca_file: '{certs.ca_cert}'}}\n" + "".join(extra)
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def wait_for(probe: Callable[[], T], *, timeout: float = 15.0, what: str = "it") -> T:
    """``probe()`` once it is truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def deliveries_of(receiver: HttpReceiver, event_id: str) -> list[Any]:
    return [r for r in list(receiver.requests) if r.json()["event"]["id"] == event_id]
