"""Hostile response rules files and event files through ``stockade rules check``: one
``stockade: error: FILE:LINE: ...`` line, exit 2 for a wrong value, 3 for an unreadable input,
never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAD = "apiVersion: stockade.dev/v1\nkind: ResponseRules\nspec:\n  rules:\n"
DEPTH = 100_000


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", "rules", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stockade: error: "), out.stderr[-2000:]
    return lines[0].removeprefix("stockade: error: ")


def laughs() -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return HEAD + "\n".join(lines) + "\n"


RULE = "    - name: r\n      match: {level: high}\n      actions: [quarantine]\n"

# (id, document, exit code, line, fragment of the message)
CASES = [
    ("flow-nesting", HEAD + "    - " + "[" * DEPTH + "]" * DEPTH + "\n", 3, 5,
     "nested deeper than 100 levels"),
    ("block-nesting", HEAD + "    - " + "- " * DEPTH + "1\n", 3, 5, "nested deeper than 100 levels"),
    ("billion-laughs", laughs(), 3, 6, "aliases expand the document"),
    ("impossible-date", HEAD + "    - name: 2024-02-30\n      match: {level: high}\n"
     "      actions: [quarantine]\n", 3, 5, "invalid date '2024-02-30'"),
    ("a-date-for-a-name", HEAD + "    - name: 2024-02-03\n      match: {level: high}\n"
     "      actions: [quarantine]\n", 2, 5, "spec.rules[0].name"),
    ("unknown-level", HEAD + "    - name: r\n      match: {level: severe}\n"
     "      actions: [quarantine]\n", 2, 6, "unknown severity 'severe'"),
    ("cooldown-without-unit", HEAD + RULE + "      cooldown: 5\n", 2, 8, "needs a unit"),
    ("cooldown-too-long", HEAD + RULE + "      cooldown: 400d\n", 2, 8, "longer than 30 days"),
    ("negative-count", HEAD + "    - name: r\n      match: {vulnerabilities: {critical: -1}}\n"
     "      actions: [quarantine]\n", 2, 6, "greater than or equal to 1"),
    ("huge-count", HEAD + "    - name: r\n      match: {vulnerabilities: {critical: "
     + "9" * 5000 + "}}\n      actions: [quarantine]\n", 3, 6, "invalid integer"),
    ("empty-match", HEAD + "    - name: r\n      match: {}\n      actions: [quarantine]\n", 2, 5,
     "needs at least one condition"),
    ("unknown-action", HEAD + "    - name: r\n      match: {level: high}\n      actions: [kill]\n",
     2, 7, "spec.rules[0].actions[0]"),
    ("notify-without-targets", HEAD + "    - name: r\n      match: {level: high}\n"
     "      actions: [notify]\n", 2, 5, "notify list of targets"),
    ("notify-and-suppress", HEAD + "    - name: r\n      match: {level: high}\n"
     "      actions: [notify, suppress]\n      notify: [soc]\n", 2, 5, "cannot both"),
    ("name-with-newline", HEAD + '    - name: "r\\n"\n      match: {level: high}\n'
     "      actions: [quarantine]\n", 2, 5, "must be a lowercase slug"),
    ("control-char-glob", HEAD + '    - name: r\n      match: {events: ["dlp.\\u0007"]}\n'
     "      actions: [quarantine]\n", 2, 6, "printable characters"),
    ("duplicate-names", HEAD + RULE + RULE, 2, 4, "rule names must be unique"),
    ("unknown-field", HEAD + RULE + "      when: always\n", 2, 8, "Extra inputs are not permitted"),
    ("wrong-kind", "apiVersion: stockade.dev/v1\nkind: FirewallPolicy\n", 2, 2, "kind"),
    ("too-many-values", HEAD + "    - name: r\n      match: {namespaces: ["
     + ", ".join(f"n{i}" for i in range(300)) + "]}\n      actions: [quarantine]\n", 2, 6,
     "at most 256 items"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "code", "line", "fragment"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_hostile_rules_files(
    tmp_path: Path, text: str, code: int, line: int, fragment: str
) -> None:
    doc = tmp_path / "rules.yaml"
    doc.write_text(text)
    out = run(str(doc))
    message = one_error_line(out)
    assert message.startswith(f"{doc}:{line}: ") and fragment in message, message
    assert out.returncode == code and out.stdout == ""


def test_a_huge_rules_file_is_refused_unread(tmp_path: Path) -> None:
    doc = tmp_path / "huge.yaml"
    doc.write_text(HEAD + "# " + "x" * (17 * 1024 * 1024) + "\n")
    out = run(str(doc))
    assert "larger than 16 MiB" in one_error_line(out) and out.returncode == 3


GOOD = HEAD + RULE


@pytest.mark.parametrize(
    ("lines", "line", "fragment"),
    [
        (['{"kind": "dlp.x", "message": "m"}', "{not json"], 2, "invalid JSON"),
        (['{"a": ' + "[" * 5000 + "]" * 5000 + "}"], 1, "nested deeper than 100 levels"),
        (['{"kind": "dlp.x", "message": "m", "severity": "severe"}'], 1, "unknown severity"),
        (
            ['{"kind": "dlp.x", "message": "m", "at": "2024-02-30T00:00:00"}'],
            1,
            "expected an ISO 8601 time",
        ),
        (
            ['{"kind": "dlp.x", "message": "m", "resource": "pod"}'],
            1,
            "resource: expected an object",
        ),
        (["[1, 2]"], 1, "event: expected an object"),
        (["", '{"message": "no kind"}'], 2, "kind: expected a string"),
        (['{"kind": "dlp.x", "message": "' + "a" * (2 * 1024 * 1024) + '"}'], 1, "1 MiB"),
    ],
    ids=["syntax", "deep", "severity", "date", "resource", "array", "no-kind", "long-line"],
)
def test_hostile_event_files(tmp_path: Path, lines: list[str], line: int, fragment: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD)
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    out = run(str(rules), "--events", str(events))
    message = one_error_line(out)
    assert message.startswith(f"{events}:{line}: ") and fragment in message, message
    assert out.returncode == 3


def test_masked_evidence_stays_masked_in_the_dry_run(tmp_path: Path) -> None:
    """A recorded event quoting a card in clear: the dry run's output passes the masking gate."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD)
    events = tmp_path / "events.jsonl"
    event = {"kind": "dlp.x", "message": "m", "severity": "high",
             "resource": {"kind": "pod", "name": "4111111111111111", "namespace": "shop"}}  # fmt: skip
    events.write_text(json.dumps(event) + "\n")
    out = run(str(rules), "--events", str(events))
    assert out.returncode == 0 and "4111111111111111" not in out.stdout + out.stderr
