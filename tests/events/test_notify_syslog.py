"""Syslog RFC 5424 over UDP, TCP (octet counting) and TLS, read back from Debian's rsyslog, which
parses each message itself: its fields are what it understood, not what we meant."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from stockade.events.notify.dispatch import deliver
from stockade.events.notify.interface import RetryPolicy, Target
from stockade.events.notify.syslog import SyslogSettings, format_message, octet_counted
from stockade.model import Event, ResourceRef, Severity
from tests.events.receivers import Rsyslog

RFC5424_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def event() -> Event:
    return Event(
        kind="firewall.violation",
        message='blocked "shop/web" -> db:5432 ] not allowed',
        severity=Severity.CRITICAL,
        source="enforcer",
        resource=ResourceRef(kind="pod", name="web", namespace="shop"),
        peer=ResourceRef(kind="pod", name="db", namespace="shop"),
        data={"port": 5432, "rule": "deny-db", "ports": [5432, 5433]},
    )


def target(rs: Rsyslog, transport: str, fmt: str, **extra: Any) -> Target:
    port = {"udp": rs.udp_port, "tcp": rs.tcp_port, "tls": rs.tls_port}[transport]
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "transport": transport,
        "format": fmt,
        "facility": "authpriv",
        "app_name": "stockade-test",
        "hostname": "node-1",
    }
    if transport == "tls":
        settings["ca_file"] = str(rs.ca_file)
    settings.update(extra)
    return Target(
        name=f"syslog-{transport}",
        kind="syslog",
        settings=settings,
        timeout=2,
        retry=RetryPolicy(attempts=2, backoff=0.05),
    )


@pytest.mark.parametrize(
    ("transport", "fmt", "input_name"),
    [
        ("udp", "kv", "imudp"),
        ("tcp", "kv", "tcp"),
        ("tcp", "json", "tcp"),
        ("tls", "kv", "tls"),
        ("tls", "json", "tls"),
    ],
)
def test_rsyslog_parses_what_we_send(
    rsyslog: Rsyslog, transport: str, fmt: str, input_name: str
) -> None:
    e = event()
    [d] = deliver([target(rsyslog, transport, fmt)], e)
    assert d.ok, d.error
    [line] = rsyslog.wait_for(1)
    assert line["input"] == input_name
    assert line["pri"] == str(10 * 8 + 2)  # authpriv.crit
    assert line["ver"] == "1"
    assert (line["host"], line["app"], line["msgid"]) == (
        "node-1",
        "stockade-test",
        "firewall.violation",
    )
    assert line["procid"].isdigit()
    assert RFC5424_TIME.fullmatch(line["raw"].split(" ")[1])
    if fmt == "kv":
        sd = line["sd"]
        assert sd.startswith("[stockade@32473 ") and sd.endswith("]")
        assert f'id="{e.id}"' in sd and 'category="firewall"' in sd and 'severity="critical"' in sd
        assert 'resource="pod:shop/web"' in sd and 'peer="pod:shop/db"' in sd
        assert 'data.port="5432"' in sd and 'data.ports="[5432,5433\\]"' in sd
        assert line["msg"] == e.message
    else:
        assert line["sd"] == "-"
        assert json.loads(line["msg"]) == e.to_dict()


def test_several_messages_on_one_tcp_stream_stay_apart(rsyslog: Rsyslog) -> None:
    t = target(rsyslog, "tcp", "kv")
    events = [event() for _ in range(5)]
    for e in events:
        [d] = deliver([t], e)
        assert d.ok
    lines = rsyslog.wait_for(5)
    assert sorted(re.search(r'id="(\w+)"', x["sd"])[1] for x in lines) == sorted(
        e.id for e in events
    )


def test_tls_with_an_untrusted_server_is_not_retried(rsyslog: Rsyslog, tmp_path: Any) -> None:
    from tests.events.receivers import make_certs

    other_ca = make_certs(tmp_path / "other").ca_cert
    [d] = deliver([target(rsyslog, "tls", "kv", ca_file=str(other_ca))], event())
    assert not d.ok and d.attempts == 1 and "certificate" in (d.error or "")
    assert rsyslog.wait_for(1, timeout=0.5) == []


def test_unreachable_tcp_receiver_is_retried_then_fails() -> None:
    from tests.events.receivers import free_port

    t = Target(
        name="down",
        kind="syslog",
        settings={"host": "127.0.0.1", "port": free_port(), "transport": "tcp"},
        timeout=1,
        retry=RetryPolicy(attempts=2, backoff=0.01),
    )
    [d] = deliver([t], event())
    assert not d.ok and d.attempts == 2 and "refused" in (d.error or "").lower()


def test_octet_counting_and_bounded_size() -> None:
    assert octet_counted(b"<14>1 - - - - - - hi") == b"20 <14>1 - - - - - - hi"
    settings = SyslogSettings(host="h", max_message=480)
    long = Event(kind="scan.completed", message="\u00e9" * 5000 + "\nsecond line")
    raw = format_message(long.to_dict(), settings, hostname="h")
    assert len(raw) <= 480 and b"\n" not in raw
    raw.decode("utf-8")  # not cut inside a character


def test_settings_are_checked() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown facility"):
        SyslogSettings(host="h", facility="local9")
    with pytest.raises(ValidationError, match="need transport: tls"):
        SyslogSettings(host="h", transport="tcp", ca_file="/x")
    with pytest.raises(ValidationError):
        SyslogSettings(host="h", app_name="two words")
