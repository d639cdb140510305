from __future__ import annotations

import subprocess
import sys


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_version_and_help() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("stockade ")
    assert "Exit codes" in run("--help").stdout


def test_unknown_command_is_a_usage_error() -> None:
    assert run("no-such-command").returncode == 2


def test_db_migrate_and_unwritable_db(tmp_path) -> None:
    ok = run("db", "migrate", "--db", str(tmp_path / "s.db"))
    assert ok.returncode == 0, ok.stderr
    bad = run("db", "migrate", "--db", f"sqlite:///{tmp_path}/f/x.db")
    assert bad.returncode == 0  # the folder is created
    (tmp_path / "blk").write_text("")
    bad = run("db", "migrate", "--db", f"sqlite:///{tmp_path}/blk/x.db")
    assert bad.returncode == 3
    assert bad.stderr.startswith("stockade: error:") and "Traceback" not in bad.stderr
