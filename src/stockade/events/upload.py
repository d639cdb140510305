"""Full results uploaded to the controller in one request: an image's scan (``POST
/api/v1/scans``) or a CIS run's check results (``POST /api/v1/cis/runs``).

The summary events of ``scan`` and ``bench`` travel through the reporter and its spool; the
results themselves are one document each, masked here before they leave the process, posted with a
few retries (the run id makes a retry harmless: the controller stores a run once). A controller
that stays unreachable, or refuses the document, is said in one line; the results stay in the local
store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from stockade.events.ingest import MAX_BODY_BYTES
from stockade.events.reporter import ControllerLink
from stockade.model.redact import redact
from stockade.store.rows import OWN_IDS

ATTEMPTS = 4
BACKOFF_FIRST = 0.5
_KEEP = OWN_IDS | {"run"}


def upload(
    link: ControllerLink,
    path: str,
    payload: dict[str, Any],
    *,
    what: str,
    notice: Callable[[str], None],
    attempts: int = ATTEMPTS,
) -> bool:
    """Post ``payload`` (masked) to ``path``; True once the controller has it."""
    body = json.dumps(redact(payload, keep=_KEEP), separators=(",", ":"), default=str).encode()
    if len(body) > MAX_BODY_BYTES:
        notice(
            f"controller: the {what} results ({len(body)} bytes) exceed the controller's "
            f"{MAX_BODY_BYTES} bytes and were not uploaded; they stay in the local store"
        )
        return False
    problem = ""
    with link.client({"Content-Type": "application/json"}) as client:
        for attempt in range(attempts):
            if attempt:
                time.sleep(BACKOFF_FIRST * 2 ** (attempt - 1))
            try:
                answer = client.post(link.url.rstrip("/") + path, content=body)
            except httpx.HTTPError as exc:
                problem = str(exc) or type(exc).__name__
                continue
            if answer.status_code in (200, 201):
                return True
            problem = f"{answer.status_code} {_detail(answer)}"
            if answer.status_code < 500:  # refused: sending it again changes nothing
                break
    notice(
        f"controller: the {what} results were not uploaded ({problem}); "
        "they stay in the local store"
    )
    return False


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = detail if isinstance(detail, str) else answer.text
    return " ".join(text.split())[:200]
