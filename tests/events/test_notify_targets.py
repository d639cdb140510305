"""Targets as data (YAML), and the ``stockade notify`` commands against real receivers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from stockade.admission.certs import ServingFiles
from stockade.events.notify.deadletters import DeadLetters
from stockade.events.notify.dispatch import deliver
from stockade.events.notify.targets import load_targets, parse_targets
from stockade.model import ConfigError, Event, Severity
from stockade.store import open_store
from tests.events.receivers import WEBHOOK_SECRET, HttpReceiver, SilentServer

Receiver = Callable[..., HttpReceiver]


def write_targets(
    path: Path, url: str, certs: ServingFiles, silent_port: int | None = None
) -> Path:
    text = f"""
    targets:
      - name: soc
        kind: webhook
        categories: [dlp, notify]
        min_severity: medium
        timeout: 2
        retry: {{attempts: 2, backoff: 0.05, max_backoff: 0.1}}
        settings:
          url: {url}/hook
          secret_env: STOCKADE_TEST_HOOK_SECRET
          ca_file: {certs.ca_cert}
    """
    if silent_port is not None:
        text += f"""
      - name: silent
        kind: webhook
        timeout: 0.3
        retry: {{attempts: 2, backoff: 0.05}}
        settings: {{url: "http://127.0.0.1:{silent_port}/", secret: {WEBHOOK_SECRET}}}
    """
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKADE_TEST_HOOK_SECRET", WEBHOOK_SECRET)


def test_a_targets_file_loads_with_filters_and_retry(tmp_path: Path, certs: ServingFiles) -> None:
    [t] = load_targets(write_targets(tmp_path / "t.yaml", "https://127.0.0.1:1", certs))
    assert (t.name, t.kind, t.categories, t.min_severity) == (
        "soc",
        "webhook",
        {"dlp", "notify"},
        Severity.MEDIUM,
    )
    assert t.retry.attempts == 2 and t.timeout == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "targets:\n  - name: a\n    kind: pager\n",
            "t.yaml:3: targets[0].kind: unknown kind 'pager'",
        ),
        (
            "targets:\n  - {name: a, kind: slack, settings: {}}\n",
            "t.yaml:2: target 'a': settings.url: Field required",
        ),
        (
            "targets:\n  - name: a\n    kind: syslog\n    settings:\n      host: h\n      facility: nope\n",
            "t.yaml:5: target 'a': settings.facility: unknown facility 'nope'",
        ),
        (
            "targets:\n  - {name: a, kind: webhook, settings: {url: 'https://x', secret_env: NOT_SET_ANYWHERE}}\n",
            "environment variable NOT_SET_ANYWHERE (secret_env) is not set",
        ),
        (
            "targets:\n  - {name: a, kind: webhook, settings: {url: 'https://x', secret: short}}\n",
            "at least 16 characters",
        ),
        (
            "targets:\n  - {name: a, kind: slack, min_severity: severe, settings: {url: 'https://x'}}\n",
            "unknown severity 'severe'",
        ),
        (
            "targets:\n  - {name: a, kind: slack, categories: [dlp.x], settings: {url: 'https://x'}}\n",
            "before the first dot",
        ),
        (
            "targets:\n  - {name: a, kind: slack, settings: {url: 'https://x'}}\n  - {name: a, kind: slack, settings: {url: 'https://y'}}\n",
            "t.yaml:3: duplicate target name 'a'",
        ),
        (
            "targets:\n  - {name: a, kind: slack, retry: {attempts: 50}, settings: {url: 'https://x'}}\n",
            "less than or equal to 10",
        ),
        (
            "targets:\n  - {name: a, kind: email, settings: {host: h, from: a@b.c, to: [x@y.z], subject: '{x.y}'}}\n",
            "unknown field {x.y}",
        ),
    ],
)
def test_bad_targets_files_are_one_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_targets(text, name="t.yaml")
    assert message in str(info.value)


def cli(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STOCKADE_DB": f"sqlite:///{db}", "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "stockade", "notify", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_notify_test_command(tmp_path: Path, http_receiver: Receiver, certs: ServingFiles) -> None:
    rx = http_receiver()
    targets = write_targets(tmp_path / "t.yaml", rx.url, certs)
    out = cli("test", "soc", "--targets", str(targets), db=tmp_path / "s.db")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("delivered to soc (webhook) in 1 attempt(s), delivery ")
    [req] = rx.requests
    assert req.signature_ok and req.json()["event"]["kind"] == "notify.test"

    missing = cli("test", "nope", "--targets", str(targets), db=tmp_path / "s.db")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "stockade: error: no target named 'nope' (defined: soc)"


def test_notify_test_of_a_dead_target_exits_3(
    tmp_path: Path, silent_server: SilentServer, certs: ServingFiles
) -> None:
    targets = write_targets(tmp_path / "t.yaml", "https://127.0.0.1:1", certs, silent_server.port)
    out = cli("test", "silent", "--targets", str(targets), db=tmp_path / "s.db")
    assert out.returncode == 3
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "test not delivered after 2 attempt(s): silent: http://127.0.0.1:" in out.stderr
    assert "no answer within 0.3s" in out.stderr


def test_dead_letters_list_and_redeliver(
    tmp_path: Path, http_receiver: Receiver, certs: ServingFiles
) -> None:
    rx = http_receiver([503, 503, 200])
    db = tmp_path / "s.db"
    targets_file = write_targets(tmp_path / "t.yaml", rx.url, certs)
    store = open_store(f"sqlite:///{db}")
    e = Event(kind="dlp.sensitive_in_clear", message="card in clear", severity=Severity.HIGH)
    [d] = deliver(load_targets(targets_file), e, dead_letters=DeadLetters(store))
    store.close()
    assert d.dead_letter and d.attempts == 2

    listed = cli("dead-letters", "--format", "json", db=db)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["delivery_id"] == d.delivery_id and row["event_id"] == e.id and row["attempts"] == 2
    assert "HTTP 503" in row["error"]
    table = cli("dead-letters", db=db)
    assert table.returncode == 0 and d.delivery_id in table.stdout

    assert cli("dead-letters", "--redeliver", db=db).returncode == 2  # needs --targets
    again = cli("dead-letters", "--redeliver", "--targets", str(targets_file), db=db)
    assert again.returncode == 0, again.stderr
    assert "1 of 1 redelivered" in again.stdout
    assert rx.requests[-1].headers["x-stockade-delivery"] == d.delivery_id
    assert cli("dead-letters", db=db).stdout.strip() == "no dead letters"
