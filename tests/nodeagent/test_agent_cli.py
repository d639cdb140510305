"""``stockade agent run``: bad options and an API that refuses are one line and their exit code,
no traceback; the command is listed in ``stockade agent --help``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.api.controller import SRC
from tests.identity.kubeserver import FakeApiServer


def agent(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("NODE_NAME", None)
    return subprocess.run(
        [sys.executable, "-m", "stockade", "agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def one_line_error(out: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr
    assert any(text in line for line in lines), out.stderr


def test_listed_in_help() -> None:
    out = agent("--help")
    assert out.returncode == 0 and "run" in out.stdout


def test_the_node_is_required() -> None:
    out = agent("run", "--no-sensor", "--no-scan")
    assert out.returncode == 2 and "--node" in out.stderr


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    base = ("run", "--node", "n1", "--no-sensor", "--no-scan")
    one_line_error(agent(*base, "--identities", "pods.json"), 2, "follows the Kubernetes API")
    one_line_error(agent(*base, "--watch-every", "10m"), 2, "--watch-every must be between")
    one_line_error(agent(*base, "--bench-every", "soon"), 2, "bad duration")
    one_line_error(agent(*base, "--host-root", str(tmp_path / "nope")), 2, "not a folder")
    one_line_error(
        agent(*base, "--identities", f"kubernetes:{tmp_path / 'missing'}"), 2, "kubeconfig"
    )


def test_enforcement_needs_its_pieces() -> None:
    one_line_error(agent("run", "--node", "n1", "--enforce"), 2, "give --controller")
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-m", "stockade", "enforcer", "--identities", "kubernetes"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    one_line_error(out, 2, "--identities and --netns go together")


def test_the_quarantine_network_policy_needs_enforcement_and_a_controller() -> None:
    one_line_error(
        agent("run", "--node", "n1", "--no-sensor", "--no-scan", "--quarantine-network-policy"),
        2,
        "part of --enforce",
    )
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [
            *(sys.executable, "-m", "stockade", "enforcer", "--identities", "kubernetes"),
            *("--netns", "n", "--quarantine-network-policy"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    one_line_error(out, 2, "give --identities and --controller")


def test_an_api_that_refuses_the_token_is_exit_3(tmp_path: Path) -> None:
    with FakeApiServer(tmp_path, "the-right-token") as api:
        (tmp_path / "ca.crt").write_bytes(api.files.ca_cert.read_bytes())
        config = tmp_path / "kubeconfig"
        config.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            f"clusters: [{{name: k, cluster: {{server: '{api.url}', certificate-authority: ca.crt}}}}]\n"
            "users: [{name: u, user: {token: a-wrong-token}}]\n"
            "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        )
        out = agent(
            *("run", "--node", "n1", "--no-sensor", "--no-scan", "--no-bench"),
            *("--identities", f"kubernetes:{config}", "--db", f"sqlite:///{tmp_path / 'a.db'}"),
        )
    one_line_error(out, 3, "401")
