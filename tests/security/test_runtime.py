"""Hostile inputs to runtime protection: profile files (refused whole with one line, nothing
applied), lab state naming odd cgroups or roots, and command lines holding card numbers (masked
in what ``runtime watch`` prints)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stockade.lab.inventory import load
from stockade.model import Event
from stockade.model.errors import ConfigError

SHA = "a" * 64


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "text",
    [
        "spec: {profiles: [{name: x, selector: {}, processes: [{path: /a, sha256: " + SHA
        + ", evil: 1}]}]}\n",
        "spec: {profiles: [{name: x, selector: {}, processes: [{path: ../../etc/passwd, sha256: "
        + SHA + "}]}]}\n",
        "spec: {profiles: [{name: x, selector: {}, mode: off}]}\n",
        "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "spec: {profiles: [{name: x, selector: {}, processes: [{path: /a, sha256: '"
        + "A" * 64 + "'}]}]}\n",
        "\x00\x01binary",
    ],
    ids=["unknown-field", "relative-path", "bad-mode", "deep-nesting", "upper-hex", "binary"],
)  # fmt: skip
def test_hostile_profiles_are_one_line_and_nothing_is_applied(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    state = tmp_path / "state" / "profiles.yaml"
    proc = run("runtime", "profile", "apply", str(bad), "--profiles", str(state))
    assert proc.returncode in (2, 3), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stockade: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not state.exists()


def test_a_profile_list_too_long_is_refused(tmp_path: Path) -> None:
    procs = ", ".join(f"{{path: /p{i}, sha256: {SHA}}}" for i in range(10_001))
    bad = tmp_path / "big.yaml"
    bad.write_text(f"spec: {{profiles: [{{name: x, selector: {{}}, processes: [{procs}]}}]}}\n")
    proc = run("runtime", "profile", "diff", str(bad), "--profiles", str(tmp_path / "p.yaml"))
    assert proc.returncode == 2 and "at most 10000" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cgroup", "/stockade.slice/../../sys"),
        ("cgroup", "/system.slice/sshd.service"),
        ("root", "relative/root"),
        ("root", "/var/lib/../../etc"),
        ("image_root", "/x/../y"),
    ],
)
def test_lab_state_naming_odd_cgroups_or_roots_is_refused(
    tmp_path: Path, field: str, value: str
) -> None:
    pod = {
        "name": "orders",
        "namespace": "shop",
        "netns": "sk-orders",
        "host_if": "vh-orders",
        "ipv4": "10.77.0.11",
        "ipv6": "fd77::b",
        field: value,
    }
    state = tmp_path / "lab.json"
    state.write_text(
        json.dumps({"prefix": "sk-", "node_netns": "sk-node", "pods": [pod], "state_dir": "/x"})
    )
    with pytest.raises(ConfigError, match="bad"):
        load(state)


def test_a_card_number_in_a_command_line_is_masked_in_watch_output() -> None:
    from stockade.cli.runtime import event_line

    event = Event(
        kind="process.violation",
        message="/usr/bin/curl in shop/orders: not in the profile",
        data={"cmdline": "curl -d card=4111111111111111 https://x", "sha256": SHA},
    )
    line = event_line(event)
    assert "4111111111111111" not in line and SHA in line
