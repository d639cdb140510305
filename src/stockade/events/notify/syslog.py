"""Syslog, RFC 5424 messages over UDP (RFC 5426), TCP with octet counting (RFC 6587) or TLS
(RFC 5425, octet counting too).

``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`` where MSGID is the event kind and the
payload is either ``kv``: the event's fields as structured-data parameters of the element
``stockade@32473`` and the message as MSG, or ``json``: no structured data and the event as JSON.
(32473 is the private enterprise number RFC 5612 sets aside for examples; ``sd_id`` changes it.)
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from stockade.events.notify import render
from stockade.events.notify.interface import Attempt, NotifyError, Target
from stockade.events.notify.settings import Settings
from stockade.events.notify.tls import client_context
from stockade.model.redact import redact_text

FACILITIES = {
    name: code
    for code, name in enumerate(
        [
            "kern",
            "user",
            "mail",
            "daemon",
            "auth",
            "syslog",
            "lpr",
            "news",
            "uucp",
            "cron",
            "authpriv",
            "ftp",
            "ntp",
            "audit",
            "alert",
            "clock",
        ]
        + [f"local{i}" for i in range(8)]
    )
}
# Stockade severity -> syslog severity (2 crit, 3 err, 4 warning, 5 notice, 6 info)
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "negligible": 6, "unknown": 6}
DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}
MAX_PARAMS = 40
MAX_PARAM_VALUE = 1024
_NOT_PRINTABLE = re.compile(r"[^\x21-\x7e]")
_SD_NAME_BAD = re.compile(r'[^\x21-\x7e]|[= \]"]')


class SyslogSettings(Settings):
    host: str = Field(min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "udp"
    format: Literal["kv", "json"] = "kv"
    facility: str = "local0"
    app_name: str = Field(default="stockade", min_length=1, max_length=48)
    hostname: str | None = Field(default=None, max_length=255)
    sd_id: str = Field(default="stockade@32473", min_length=1, max_length=32)
    max_message: int = Field(default=8192, ge=480, le=65000)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    @field_validator("facility")
    @classmethod
    def _facility(cls, value: str) -> str:
        if value not in FACILITIES:
            raise ValueError(
                f"unknown facility {value!r} (expected one of: {', '.join(FACILITIES)})"
            )
        return value

    @field_validator("app_name", "hostname", "sd_id")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and _SD_NAME_BAD.search(value):
            raise ValueError("only printable ASCII without spaces, '=', ']' or '\"'")
        return value

    @model_validator(mode="after")
    def _tls_only(self) -> SyslogSettings:
        if self.transport != "tls" and (self.ca_file or self.cert_file or self.server_name):
            raise ValueError("ca_file, cert_file and server_name need transport: tls")
        return self


def _header_field(text: str, limit: int) -> str:
    """A header field: printable ASCII without spaces, ``-`` when empty (RFC 5424 NILVALUE)."""
    return _NOT_PRINTABLE.sub("_", text)[:limit] or "-"


def _timestamp(text: Any) -> str:
    try:
        at = datetime.fromisoformat(str(text))
    except ValueError:
        at = datetime.now(UTC)
    at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    text = render.clip(text, MAX_PARAM_VALUE)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _param_name(text: str) -> str:
    return _SD_NAME_BAD.sub("_", text)[:32] or "_"


def structured_data(event: Mapping[str, Any], sd_id: str) -> str:
    """``[stockade@32473 id="..." kind="..." ...]``: the envelope, then ``data`` flattened one
    level (nested values as JSON), at most MAX_PARAMS parameters."""
    params: list[tuple[str, Any]] = [
        ("id", event.get("id")),
        ("kind", event.get("kind")),
        ("category", render.category(event)),
        ("severity", event.get("severity")),
        ("source", event.get("source")),
        ("resource", render.ref_text(event.get("resource"))),
        ("peer", render.ref_text(event.get("peer"))),
    ]
    data = event.get("data") or {}
    params += [(f"data.{k}", data[k]) for k in sorted(data)]
    parts = [
        f'{_param_name(name)}="{_param_value(value)}"'
        for name, value in params[:MAX_PARAMS]
        if value is not None
    ]
    return f"[{sd_id} {' '.join(parts)}]"


def format_message(event: Mapping[str, Any], settings: SyslogSettings, *, hostname: str) -> bytes:
    """One RFC 5424 message, masked, cut to ``max_message`` bytes (at a character boundary)."""
    pri = FACILITIES[settings.facility] * 8 + SYSLOG_SEVERITY.get(str(event.get("severity")), 6)
    header = " ".join(
        (
            f"<{pri}>1",
            _timestamp(event.get("at")),
            _header_field(hostname, 255),
            _header_field(settings.app_name, 48),
            _header_field(str(os.getpid()), 128),
            _header_field(str(event.get("kind", "")), 32),
        )
    )
    if settings.format == "kv":
        line = f"{header} {structured_data(event, settings.sd_id)} {event.get('message', '')}"
    else:
        line = f"{header} - {json.dumps(dict(event), separators=(',', ':'))}"
    line = " ".join(redact_text(line).splitlines())  # one message, one line
    raw = line.encode("utf-8")
    if len(raw) > settings.max_message:
        raw = raw[: settings.max_message].decode("utf-8", "ignore").encode("utf-8")
    return raw


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 octet-counting framing: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode() + b" " + message


class SyslogNotifier:
    def __init__(self, target: Target) -> None:
        self.settings = SyslogSettings.model_validate(dict(target.settings))
        self.timeout = target.timeout
        self.port = self.settings.port or DEFAULT_PORTS[self.settings.transport]
        self.hostname = self.settings.hostname or socket.gethostname()

    def send(self, event: Mapping[str, Any], attempt: Attempt) -> None:
        message = format_message(event, self.settings, hostname=self.hostname)
        where = f"syslog {self.settings.transport}://{self.settings.host}:{self.port}"
        try:
            if self.settings.transport == "udp":
                self._send_udp(message)
            else:
                self._send_stream(octet_counted(message))
        except ssl.SSLCertVerificationError as exc:
            raise NotifyError(f"{where}: {exc.verify_message}", retryable=False) from None
        except TimeoutError:
            raise NotifyError(f"{where}: no answer within {self.timeout:g}s") from None
        except OSError as exc:
            reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())
            raise NotifyError(f"{where}: {reason}") from None

    def _send_udp(self, message: bytes) -> None:
        info = socket.getaddrinfo(self.settings.host, self.port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(info[0], socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.timeout)
            sock.sendto(message, info[4])

    def _send_stream(self, framed: bytes) -> None:
        with socket.create_connection((self.settings.host, self.port), timeout=self.timeout) as raw:
            if self.settings.transport == "tls":
                s = self.settings
                context = client_context(s.ca_file, s.cert_file, s.key_file)
                with context.wrap_socket(raw, server_hostname=s.server_name or s.host) as tls:
                    tls.sendall(framed)
            else:
                raw.sendall(framed)
