"""`scan rootfs` and `scan pid` on a small root filesystem made from this Debian machine's own dpkg
database and os-release, plus one Python package."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from tests.conftest import require
from tests.scanning.scan_cli_support import make_db, run


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    status = Path("/var/lib/dpkg/status")
    require(
        status.is_file() and "bookworm" in Path("/etc/os-release").read_text(),
        "needs a Debian 12 host (its dpkg database is the test input)",
    )
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(status, root / "var/lib/dpkg/status")
    shutil.copy("/etc/os-release", root / "etc/os-release")
    meta = root / "usr/lib/python3/dist-packages/urllib3-2.0.7.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: urllib3\nVersion: 2.0.7\n")
    return root


def findings(out) -> set[tuple[str, str]]:
    assert out.returncode in (0, 1), out.stderr
    return {(f["id"], f["package"]) for f in json.loads(out.stdout)["findings"]}


def test_scan_rootfs(rootfs: Path, tmp_path: Path) -> None:
    db = make_db(tmp_path / "r.db")
    out = run("scan", "rootfs", str(rootfs), "--db", db, "--format", "json", "--fail-on", "medium")
    assert out.returncode == 1
    found = findings(out)
    # coreutils and tar are in every Debian 12 dpkg database; both advisories are unfixed there.
    assert {
        ("CVE-2016-2781", "coreutils"),
        ("CVE-2005-2541", "tar"),
        ("CVE-2024-37891", "urllib3"),
    } <= found
    assert json.loads(out.stdout)["target"]["source"] == f"dir:{rootfs}"
    out = run("scan", "rootfs", str(rootfs), "--db", db, "--format", "json", "--ignore-unfixed")
    assert out.returncode == 0
    active = {f["id"] for f in json.loads(out.stdout)["findings"] if f["suppressed"] is None}
    assert "CVE-2016-2781" not in active and "CVE-2024-37891" in active


@pytest.mark.root
def test_scan_pid_sees_the_process_root(rootfs: Path, tmp_path: Path) -> None:
    require(os.geteuid() == 0, "chroot needs root")
    db = make_db(tmp_path / "p.db")
    pid = os.fork()
    if pid == 0:  # the child: a process whose root filesystem is the test rootfs
        try:
            os.chroot(rootfs)
            os.chdir("/")
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        out = run("scan", "pid", str(pid), "--db", db, "--format", "json")
        found = findings(out)
        assert ("CVE-2024-37891", "urllib3") in found and ("CVE-2005-2541", "tar") in found
        assert json.loads(out.stdout)["target"]["source"] == f"pid:{pid}"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
