"""One HTTP POST for the HTTP notifiers (webhook, Slack, Teams, Alertmanager), with the error
classification the retry loop needs. The URL is never quoted whole in an error: Slack and Teams
webhook URLs carry their secret in the path."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from stockade.events.notify.interface import NotifyError
from stockade.events.notify.tls import client_context
from stockade.model.redact import redact_text

MAX_ERROR_BODY = 200
RETRY_STATUSES = frozenset({408, 425, 429})


def origin(url: str) -> str:
    """``https://host:port`` of ``url``: safe to show."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def post(
    url: str,
    body: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    ca_file: str | None = None,
) -> int:
    """POST ``body`` (already masked JSON) and return the 2xx status; raise NotifyError otherwise.
    Redirects are not followed: a webhook that moved is a configuration problem."""
    import httpx  # here: the controller and `rules check` load the notifiers but may never send

    where = origin(url)
    verify = client_context(ca_file) if ca_file else True
    all_headers = {"Content-Type": "application/json", "User-Agent": "stockade-notify"}
    all_headers.update(headers or {})
    try:
        with (
            httpx.Client(timeout=timeout, verify=verify, follow_redirects=False) as client,
            client.stream("POST", url, content=body.encode(), headers=all_headers) as response,
        ):
            status = response.status_code
            if 200 <= status < 300:
                return status
            head = b""
            for chunk in response.iter_bytes():
                head += chunk
                if len(head) >= MAX_ERROR_BODY:
                    break
    except httpx.TimeoutException:
        raise NotifyError(f"{where}: no answer within {timeout:g}s") from None
    except httpx.HTTPError as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise NotifyError(f"{where}: {redact_text(detail)}") from None
    text = " ".join(head[:MAX_ERROR_BODY].decode("utf-8", "replace").split())
    retryable = status >= 500 or status in RETRY_STATUSES
    raise NotifyError(
        f"{where}: HTTP {status}{': ' + redact_text(text) if text else ''}", retryable=retryable
    )
