"""``stockade rules check``: validation summary and the dry run over recorded events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RULES = """\
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: shop}
spec:
  rules:
    - name: card-leak
      mode: active
      cooldown: 10m
      match: {categories: [dlp], sensors: [dlp.payment_card], namespaces: [shop]}
      actions: [quarantine, notify]
      notify: [soc]
    - name: quiet-lab
      mode: active
      match: {namespaces: [lab]}
      actions: [suppress]
    - name: weak-tls
      match: {events: ["tls.*"], level: medium}
      actions: [notify]
      notify: [soc]
    - name: retired
      enabled: false
      match: {level: low}
      actions: [quarantine]
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return subprocess.run([sys.executable, "-m", "stockade", "rules", "check", *args],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip


def ev(kind: str, at: str, name: str = "web", ns: str = "shop", **data: object) -> str:
    return json.dumps({"kind": kind, "message": "m", "severity": "high", "at": at,
                       "resource": {"kind": "pod", "name": name, "namespace": ns}, "data": data})  # fmt: skip


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            [
                ev(
                    "dlp.sensitive_in_clear", "2026-01-01T00:00:00+00:00", sensor="dlp.payment_card"
                ),
                ev(
                    "dlp.sensitive_in_clear", "2026-01-01T00:05:00+00:00", sensor="dlp.payment_card"
                ),
                ev(
                    "dlp.sensitive_in_clear", "2026-01-01T00:10:00+00:00", sensor="dlp.payment_card"
                ),
                ev("tls.weak_version", "2026-01-01T00:11:00+00:00", ns="lab"),
                ev("firewall.violation", "2026-01-01T00:12:00+00:00", ns="pay"),
            ]
        )
        + "\n"
    )
    return rules, events


def test_check_summarises_a_valid_file(files: tuple[Path, Path]) -> None:
    out = run(str(files[0]))
    assert out.returncode == 0, out.stderr
    assert "rules 'shop' valid: 3 enabled (2 active, 1 monitor), 1 disabled" in out.stdout


def test_dry_run_shows_modes_cooldown_and_suppression(files: tuple[Path, Path]) -> None:
    out = run(str(files[0]), "--events", str(files[1]))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1:] == [
        "line 1: dlp.sensitive_in_clear -> rule card-leak [active] quarantine shop/web: "
        "would be carried out",
        "line 1: dlp.sensitive_in_clear -> rule card-leak [active] notify soc: would be carried out",
        "line 2: dlp.sensitive_in_clear -> rule card-leak [active] quarantine shop/web: "
        "held back (cooldown)",
        "line 2: dlp.sensitive_in_clear -> rule card-leak [active] notify soc: held back (cooldown)",
        "line 3: dlp.sensitive_in_clear -> rule card-leak [active] quarantine shop/web: "
        "would be carried out",
        "line 3: dlp.sensitive_in_clear -> rule card-leak [active] notify soc: would be carried out",
        "line 4: tls.weak_version -> rule quiet-lab [active] suppress: would be carried out",
        "line 4: tls.weak_version -> rule weak-tls [monitor] notify soc: suppressed "
        "(suppressed by rule quiet-lab)",
        "5 events: 5 would be carried out, 2 held back (cooldown), 1 suppressed",
    ]


def test_dry_run_as_json(files: tuple[Path, Path]) -> None:
    out = run(str(files[0]), "--events", str(files[1]), "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["line"], r["rule"], r["action"], r["status"]) for r in rows][:3] == [
        (1, "card-leak", "quarantine", "acted"),
        (1, "card-leak", "notify", "acted"),
        (2, "card-leak", "quarantine", "cooldown"),
    ]
    assert all(r["dry_run"] for r in rows) and "valid" in out.stderr


def test_help_is_listed() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    out = subprocess.run([sys.executable, "-m", "stockade", "--help"], capture_output=True,
                         text=True, timeout=60, env=env)  # fmt: skip
    assert "rules" in out.stdout


def rules_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    env.pop("STOCKADE_DB", None)
    return subprocess.run([sys.executable, "-m", "stockade", "rules", *args],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip


def test_apply_export_diff_against_the_store(tmp_path: Path) -> None:
    from stockade.api import response_store
    from stockade.store import open_store
    from stockade.store.records import list_events
    from stockade.store.versions import config_version

    db = f"sqlite:///{tmp_path / 's.db'}"
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    assert rules_cmd("export", "--db", db).returncode == 2  # nothing stored yet
    assert rules_cmd("diff", str(rules), "--db", db).returncode == 1
    applied = rules_cmd("apply", str(rules), "--db", db)
    assert applied.returncode == 0, applied.stderr
    assert "applied response rules 'shop' version" in applied.stdout
    unchanged = rules_cmd("diff", str(rules), "--db", db)
    assert unchanged.returncode == 0 and "no changes" in unchanged.stdout
    exported = rules_cmd("export", "--db", db)
    assert exported.returncode == 0 and "name: card-leak" in exported.stdout
    changed = tmp_path / "changed.yaml"
    changed.write_text(exported.stdout.replace("cooldown: 10m", "cooldown: 1h"))
    shown = rules_cmd("diff", str(changed), "--db", db)
    assert shown.returncode == 1 and "+    cooldown: 1h" in shown.stdout, shown.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES.replace("mode: active", "mode: loud", 1))
    refused = rules_cmd("apply", str(bad), "--db", db)
    assert refused.returncode == 2 and refused.stderr.startswith(f"stockade: error: {bad}:")
    store = open_store(db)
    try:
        stored = response_store.load(store, response_store.RULES)
        assert stored is not None and stored.version == config_version(store, "response_rules")
        [audit] = list_events(store, kind="audit.response_rules_replaced")
        assert audit.data["before"] is None and audit.data["after"]["rules"][0] == "card-leak"
    finally:
        store.close()
