"""User checks: YAML in the benchmark's own format, and scripts whose exit code decides."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from stockade.compliance.cis import loader
from stockade.compliance.cis.engine import run
from stockade.compliance.cis.node import Node, Process
from stockade.model import ConfigError

CHECKS = """
checks:
  - id: site.app.tls_min_version
    title: The app config requires TLS 1.2 or newer
    severity: high
    refs: [pci-dss:4.2.1]
    audit: {document: /etc/app/config.json}
    tests:
      all:
        - {key: tls.min_version, regex: '^1\\.[23]$'}
        - {key: tls.enabled, eq: true}
    remediation: Set tls.min_version to 1.2 in /etc/app/config.json.
  - id: site.apiserver.audit_webhook
    title: The API server ships audit events to the SIEM
    component: apiserver
    audit: {process: apiserver}
    tests: {flag: --audit-webhook-config-file}
  - id: site.ini.debug_off
    title: Debug is off in legacy.ini
    audit: {document: /etc/app/legacy.ini}
    tests: {key: main.debug, eq: false}
  - id: site.script.ok
    title: Script that passes
    audit: {script: ok.sh}
  - id: site.script.bad
    title: Script that fails
    audit: {script: bad.sh}
  - id: site.script.broken
    title: Script that errs
    audit: {script: broken.sh}
  - id: site.script.slow
    title: Script that hangs
    audit: {script: slow.sh, timeout: 0.5}
"""


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def checks_dir(tmp_path: Path) -> Path:
    d = tmp_path / "checks"
    d.mkdir()
    (d / "site.yaml").write_text(CHECKS)
    _script(d / "ok.sh", 'test -d "$STOCKADE_ROOT/etc/app" && echo "app dir present"\n')
    _script(d / "bad.sh", "echo 'found telnet'; exit 1\n")
    _script(d / "broken.sh", "exit 7\n")
    _script(d / "slow.sh", "exec sleep 30\n")
    return d


def test_custom_yaml_and_script_checks(tmp_path: Path, checks_dir: Path) -> None:
    root = tmp_path / "node"
    (root / "etc/app").mkdir(parents=True)
    (root / "etc/app/config.json").write_text('{"tls": {"enabled": true, "min_version": "1.0"}}')
    (root / "etc/app/legacy.ini").write_text("[main]\ndebug = false\n")
    node = Node(
        root=root,
        processes=(Process(pid=9, argv=("kube-apiserver", "--audit-webhook-config-file=/w")),),
        process_source="test",
    )
    base = loader.builtin("kubernetes")
    extra = loader.load_custom(checks_dir, base)
    result = run(base, node, extra=extra, only=[c.id for c in extra])
    got = {f.id: f for f in result.findings}
    tls = got["site.app.tls_min_version"]
    assert str(tls.status) == "FAIL" and "tls.min_version=1.0" in tls.details.evidence  # type: ignore[union-attr]
    assert tls.compliance == ("pci-dss:4.2.1",) and tls.details.benchmark == "custom"  # type: ignore[union-attr]
    assert str(got["site.apiserver.audit_webhook"].status) == "PASS"
    assert str(got["site.ini.debug_off"].status) == "PASS"
    assert (str(got["site.script.ok"].status), got["site.script.ok"].details.evidence) == (  # type: ignore[union-attr]
        "PASS",
        "exit 0: app dir present",
    )
    assert str(got["site.script.bad"].status) == "FAIL"
    assert str(got["site.script.broken"].status) == "ERROR"
    slow = got["site.script.slow"]
    assert str(slow.status) == "ERROR" and "0.5 s" in slow.details.reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checks:\n  - id: x\n    title: [unclosed\n", "c.yaml:4: invalid YAML"),
        (
            "checks:\n  - {id: x, title: t, audit: {files: [/a]}, tests: {key: mode, like: '1'}}\n",
            "like",
        ),
        (
            "checks:\n  - {id: x, title: t, audit: {files: [/a]}, tests: {key: m, regex: '('}}\n",
            "regular expression",
        ),
        (
            "checks:\n  - {id: x, title: t, audit: {command: 'rm -rf /'}, tests: {key: output}}\n",
            "argument list",
        ),
        (
            "checks:\n  - {id: x, title: t, audit: {files: [/a], text: [/b]}, tests: {key: m}}\n",
            "exactly one",
        ),
        (
            "checks:\n  - {id: x, title: t, audit: {process: nosuch}, tests: {flag: --a}}\n",
            "unknown component",
        ),
        ("checks:\n  - {id: x, title: t, audit: {files: [/a]}}\n", "needs 'tests'"),
        ("checks:\n  - {id: k8s.apiserver.profiling, title: t, type: manual}\n", "duplicate"),
        (
            "checks:\n  - {id: x, title: t, audit: {script: nothere.sh}}\n",
            "missing or not executable",
        ),
        ("- just a list\n", "expected a mapping"),
        (
            "checks:\n  - {id: x, title: t, audit: {process: kubelet},"
            " tests: {flag: --a, file_default: 0, eq: 0}}\n",
            "'file_default' needs 'path'",
        ),
        (
            "checks:\n  - {id: x, title: t, audit: {process: kubelet},"
            " tests: {flag: --a, default: 1}}\n",
            "a default needs an operator",
        ),
    ],
)
def test_bad_custom_checks_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        loader.load_custom(f, loader.builtin("kubernetes"))


def test_command_audit_runs_without_shell(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        textwrap.dedent("""
        checks:
          - id: site.cmd.uname
            title: The kernel is Linux
            audit: {command: [uname, -s], timeout: 5}
            tests: {key: output, regex: '^Linux'}
          - id: site.cmd.missing
            title: A command that is not installed
            audit: {command: [no-such-tool-xyz]}
            tests: {key: exit_code, eq: 0}
    """)
    )
    base = loader.builtin("docker")
    extra = loader.load_custom(f, base)
    node = Node(root=Path("/"), processes=(), process_source="test")
    got = {x.id: x for x in run(base, node, extra=extra, only=[c.id for c in extra]).findings}
    assert str(got["site.cmd.uname"].status) == "PASS"
    assert str(got["site.cmd.missing"].status) == "ERROR"
    assert "command not found" in got["site.cmd.missing"].details.reason  # type: ignore[union-attr]


def test_shipped_examples(tmp_path: Path) -> None:
    """examples/cis: the site checks load and run; the DaemonSet runs the documented command."""
    import yaml

    examples = Path(__file__).resolve().parents[3] / "examples" / "cis"
    base = loader.builtin("kubernetes")
    extra = loader.load_custom(examples / "checks", base)
    root = tmp_path / "node"
    (root / "usr/sbin").mkdir(parents=True)
    node = Node(root=root, processes=(), process_source="test")
    got = {
        f.id: str(f.status)
        for f in run(base, node, extra=extra, only=[c.id for c in extra]).findings
    }
    assert got == {
        "site.kubelet.protect_kernel_defaults": "NOT_APPLICABLE",
        "site.apiserver.audit_log_dir_mode": "NOT_APPLICABLE",
        "site.host.no_telnet": "PASS",
    }
    (root / "usr/sbin/in.telnetd").write_text("")
    got = {
        f.id: str(f.status)
        for f in run(base, node, extra=extra, only=["site.host.no_telnet"]).findings
    }
    assert got == {"site.host.no_telnet": "FAIL"}
    ds = yaml.safe_load((examples / "daemonset.yaml").read_text())
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert pod["containers"][0]["command"][:7] == [
        "stockade",
        "bench",
        "k8s",
        "--root",
        "/host",
        "--processes",
        "/proc",
    ]
