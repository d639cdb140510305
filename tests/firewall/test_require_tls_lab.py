"""Require-TLS in Protect on a real PostgreSQL in the lab (issue 13): the enforcer judges the
SSLRequest by what follows, so ``sslmode=require`` passes and ``sslmode=disable`` is reset; the
alert-only form passes both and reports the clear one once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from stockade.lab import databases, inventory
from stockade.store import open_store
from stockade.store.records import list_events
from tests.support import require, require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]

POLICY = """
apiVersion: stockade.dev/v1
kind: FirewallPolicy
spec:
  groups:
    - name: payments
      selector: {{namespace: shop, labels: {{app: payments}}}}
      mode: protect
    - name: db
      selector: {{namespace: data, labels: {{app: postgres}}}}
      mode: protect
      requireTLS: {require}
      dlp: [{{sensor: dlp.payment_card, action: block}}]
  rules:
    - {{name: payments-db, from: [payments], to: [db], ports: [tcp/5432]}}
"""


@pytest.fixture(scope="module")
def postgres(lab) -> Iterator[str]:
    """A real PostgreSQL with ssl=on in the lab's db pod (the firewall lab starts none)."""
    require_root("psql", "openssl")
    require(databases.postgres_available(), "needs PostgreSQL")
    db = inventory.load(lab.state).pod("db")
    cert, key = lab.tmp / "db.crt", lab.tmp / "db.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=db.data.svc",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    pid = databases.start_postgres(db.netns, lab.prefix, db.ipv4, db.ipv6, cert, key)
    try:
        yield db.ipv4
    finally:
        os.killpg(pid, signal.SIGTERM)  # started with setsid: the group is ours
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # the group's leader is this process's child: unreaped, it would keep the group
            # answering (a zombie takes signals) until the deadline
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        databases.remove_data(lab.prefix)


def psql(lab, host: str, sslmode: str) -> subprocess.CompletedProcess[str]:
    conninfo = (
        f"host={host} port=5432 user=postgres dbname=postgres sslmode={sslmode} connect_timeout=5"
    )
    return subprocess.run(
        ["ip", "netns", "exec", lab.ns("payments"), "psql", conninfo, "-Atc", "select 1"],
        capture_output=True,
        text=True,
        timeout=20,
    )


def tls_events(lab) -> list:
    return list_events(open_store(lab.db), kind="tls.required")


def _apply(lab, require_tls: str) -> None:
    path = lab.tmp / "require-tls.yaml"
    path.write_text(POLICY.format(require=require_tls))
    lab.apply(path)


def _new_events(lab, since: datetime, want: int) -> list:
    """The events made since ``since`` once ``want`` of them are stored (5 s at most), read again
    after the event writer's next batch (it stores a moment after the verdict), so a late one is
    seen here, not in the next test."""
    deadline = time.monotonic() + 5
    while True:
        found = [e for e in tls_events(lab) if e.at >= since]
        if len(found) >= want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    time.sleep(0.5)
    return [e for e in tls_events(lab) if e.at >= since]


def test_require_tls_passes_sslmode_require_and_blocks_disable(lab, enforcer, postgres) -> None:
    _apply(lab, "inbound")
    enforcer()
    since = datetime.now(UTC)
    ok = psql(lab, postgres, "require")
    assert (ok.returncode, ok.stdout.strip()) == (0, "1"), ok.stderr
    assert _new_events(lab, since, 0) == []  # TLS after the SSLRequest: no alert, no reset
    clear = psql(lab, postgres, "disable")
    assert clear.returncode != 0
    (event,) = _new_events(lab, since, 1)
    assert event.data["action"] == "block" and event.data["app"] == "proto.postgres"


def test_alert_only_passes_both_and_alerts_once(lab, enforcer, postgres) -> None:
    _apply(lab, "{direction: inbound, action: alert}")
    enforcer()
    since = datetime.now(UTC)
    for mode in ("require", "disable"):
        got = psql(lab, postgres, mode)
        assert (got.returncode, got.stdout.strip()) == (0, "1"), (mode, got.stderr)
    (event,) = _new_events(lab, since, 1)
    assert event.data["action"] == "alert" and "only alerts" in event.message
