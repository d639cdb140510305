"""``stockade db import|update|status`` end to end, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.support import require

ADVISORIES = next(
    (
        p
        for p in (SHARED / "data" / "advisories", Path("/work/shared/data/advisories"))
        if p.is_dir()
    ),
    SHARED / "data" / "advisories",
)


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    env.pop("STOCKADE_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    require(ADVISORIES.is_dir(), f"advisory samples missing at {ADVISORIES}")
    return str(tmp_path / "s.db")


def test_import_then_status(tmp_path: Path, db: str) -> None:
    out = run(
        "db",
        "import",
        str(ADVISORIES / "osv-samples"),
        str(ADVISORIES / "debian-tracker"),
        "--db",
        db,
        home=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    # 20: the RubyGems record counts since the gem cataloger exists (it was a problem before)
    assert "imported 20 records from" in out.stdout and "(osv)" in out.stdout
    assert "imported 2 records from" in out.stdout
    # Each skipped record is reported on stderr, one line each, without a traceback.
    assert "stockade: warning: ghsa-withdrawn.osv.json#GHSA-35c4-f3rq-f9g3: withdrawn" in out.stderr
    assert "Traceback" not in out.stderr
    st = run("db", "status", "--db", db, "--format", "json", home=tmp_path)
    assert st.returncode == 0, st.stderr
    doc = json.loads(st.stdout)
    assert doc["fresh"] is True and doc["records"] == 22
    assert doc["by_ecosystem"]["debian:12"] == 2 and doc["by_ecosystem"]["pypi"] >= 4
    assert [s["kind"] for s in doc["sources"]] == ["osv", "debian-tracker"]
    table = run("db", "status", "--db", db, home=tmp_path)
    assert "fresh" in table.stdout and "debian:12" in table.stdout
    assert run("db", "status", "--db", db, "--check", home=tmp_path).returncode == 0
    # A stale store fails the check with exit code 3 and says what to do.
    stale = run("db", "status", "--db", db, "--check", "--max-db-age", "0m", home=tmp_path)
    assert stale.returncode == 3 and "stockade db update" in stale.stderr


def test_status_of_an_empty_store(tmp_path: Path, db: str) -> None:
    out = run("db", "status", "--db", db, home=tmp_path)
    assert out.returncode == 0 and "empty" in out.stdout
    check = run("db", "status", "--db", db, "--check", home=tmp_path)
    assert (
        check.returncode == 3
        and check.stderr.startswith("stockade: error:")
        and "empty" in check.stderr
    )
    assert run("db", "status", "--db", db, "--format", "xml", home=tmp_path).returncode == 2
    assert run("db", "status", "--db", db, "--max-db-age", "soon", home=tmp_path).returncode == 2


def test_bad_imports_keep_the_previous_data(tmp_path: Path, db: str) -> None:
    assert (
        run("db", "import", str(ADVISORIES / "osv-samples"), "--db", db, home=tmp_path).returncode
        == 0
    )
    (tmp_path / "garbage.json").write_text("\x00\x01 not json")
    for bad in (str(tmp_path / "garbage.json"), str(tmp_path / "missing.json")):
        out = run(
            "db", "import", str(ADVISORIES / "debian-tracker"), bad, "--db", db, home=tmp_path
        )
        assert out.returncode == 3, out.stderr
        assert out.stderr.startswith("stockade: error:") and "Traceback" not in out.stderr
    doc = json.loads(run("db", "status", "--db", db, "-f", "json", home=tmp_path).stdout)
    assert doc["records"] == 20 and [s["kind"] for s in doc["sources"]] == ["osv"]


def test_update_from_the_default_config(tmp_path: Path, db: str) -> None:
    missing = run("db", "update", "--db", db, home=tmp_path)
    assert missing.returncode == 2 and "sources.yaml" in missing.stderr
    cfg = tmp_path / ".config" / "stockade" / "sources.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(
        "sources:\n"
        f"  - {(ADVISORIES / 'alpine-secfixes').as_uri()}\n"
        f"  - path: {ADVISORIES / 'debian-tracker'}\n"
    )
    out = run("db", "update", "--db", db, home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "imported 10 records" in out.stdout and "imported 2 records" in out.stdout
    again = run("db", "update", "--db", db, "--config", str(cfg), home=tmp_path)
    assert again.returncode == 0
    doc = json.loads(run("db", "status", "--db", db, "-f", "json", home=tmp_path).stdout)
    assert doc["records"] == 12 and len(doc["sources"]) == 2
