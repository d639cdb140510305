"""The scan CLI's errors and exit codes that need no image: database state and policy inputs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stockade.scanning.interface import Distro, ImageInfo, Inventory, Package
from stockade.scanning.pipeline import ScanOptions, evaluate, real_backend
from stockade.scanning.scan_store import record_scan, save_inventory
from stockade.store import open_store
from tests.scanning.scan_cli_support import make_db, run


def assert_one_line_error(out, code: int, *needles: str) -> None:
    assert out.returncode == code, (out.stdout, out.stderr)
    assert out.stderr.startswith("stockade: error:"), out.stderr
    assert "Traceback" not in out.stderr
    for n in needles:
        assert n in out.stderr, out.stderr


def test_missing_advisory_database_is_exit_3(tmp_path: Path) -> None:
    out = run("scan", "image", "docker-archive:/nonexistent.tar", "--db", str(tmp_path / "e.db"))
    assert_one_line_error(out, 3, "advisory database is empty", "stockade db import")
    assert out.stdout == ""  # never a report that says "no vulnerabilities"


def test_stale_advisory_database_is_exit_3(tmp_path: Path) -> None:
    db = make_db(tmp_path / "s.db", built=datetime.now(UTC) - timedelta(days=10))
    out = run("scan", "rootfs", str(tmp_path), "--db", db)
    assert_one_line_error(out, 3, "built 10.0 days ago", "7.0 days")
    out = run("scan", "rootfs", str(tmp_path), "--db", db, "--max-db-age", "12h")
    assert_one_line_error(out, 3, "more than the allowed 12 hours")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--fail-on", "severe"), "unknown severity 'severe'"),
        (("--format", "xml"), "unknown format 'xml'"),
        (("--max-db-age", "soon"), "bad duration"),
    ],
)
def test_bad_options_are_exit_2(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    db = make_db(tmp_path / "a.db")
    out = run("scan", "rootfs", str(tmp_path), "--db", db, *args)
    assert_one_line_error(out, 2, needle)


def test_bad_ignore_file_and_vex_are_exit_2_with_line(tmp_path: Path) -> None:
    db = make_db(tmp_path / "a.db")
    ign = tmp_path / "ign.yaml"
    ign.write_text("ignore:\n  - id: CVE-2024-37891\n    expires: 2027-01-01\n")
    out = run("scan", "rootfs", str(tmp_path), "--db", db, "--ignore-file", str(ign))
    assert_one_line_error(out, 2, f"{ign}: line 2: ignore.0.reason: Field required")
    # The default .stockadeignore.yaml in the working folder is read too.
    (tmp_path / ".stockadeignore.yaml").write_text("ignore: {}\n")
    out = run("scan", "rootfs", str(tmp_path), "--db", db, cwd=tmp_path)
    assert_one_line_error(
        out, 2, ".stockadeignore.yaml: line 1: ignore: Input should be a valid list"
    )
    vex = tmp_path / "v.json"
    vex.write_text('{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{}]}')
    out = run(
        "scan", "rootfs", str(tmp_path / "x"), "--db", db, "--vex", str(vex), cwd=tmp_path.parent
    )
    assert_one_line_error(out, 2, "statements.0.vulnerability: Field required")


def test_unreadable_inputs_are_exit_3(tmp_path: Path) -> None:
    db = make_db(tmp_path / "a.db")
    out = run("scan", "rootfs", str(tmp_path / "missing"), "--db", db)
    assert_one_line_error(out, 3, "not a folder")
    out = run("scan", "pid", "999999999", "--db", db)
    assert_one_line_error(out, 3, "no such process")


def test_images_lists_counts_by_severity(tmp_path: Path) -> None:
    db = make_db(tmp_path / "a.db")
    digest = "sha256:" + "5e" * 32
    inv = Inventory(
        source="127.0.0.1:5000/team/app:1.0",
        image=ImageInfo(
            reference="127.0.0.1:5000/team/app:1.0",
            name="127.0.0.1:5000/team/app",
            tag="1.0",
            manifest_digest=digest,
        ),
        distro=Distro(id="debian", version_id="12", version_codename="bookworm"),
        packages=(
            Package(type="python", name="urllib3", version="2.0.7", purl="pkg:pypi/urllib3@2.0.7"),
            Package(type="python", name="idna", version="3.6", purl="pkg:pypi/idna@3.6"),
            Package(
                type="python",
                name="certifi",
                version="2023.11.17",
                purl="pkg:pypi/certifi@2023.11.17",
            ),
            Package(type="deb", name="tar", version="1.34+dfsg-1.2", source_name="tar"),
        ),
    )
    store = open_store(db)
    try:
        backend = real_backend()
        dbinfo = backend.check_db(store, timedelta(days=7), False)
        save_inventory(store, inv, catalogers="test")
        record_scan(store, evaluate(store, inv, ScanOptions(), backend, dbinfo))
    finally:
        store.close()
    out = run("images", "--db", db, "--format", "json")
    assert out.returncode == 0, out.stderr
    [img] = json.loads(out.stdout)
    assert img["reference"] == "127.0.0.1:5000/team/app:1.0" and img["manifest_digest"] == digest
    assert img["by_severity"] == {
        "critical": 0,
        "high": 0,
        "medium": 2,
        "low": 1,
        "negligible": 0,
        "unknown": 1,
    }
    table = run("images", "--db", db)
    assert table.returncode == 0 and "127.0.0.1:5000/team/app:1.0" in table.stdout
    assert run("images", "--db", db, "--format", "sarif").returncode == 2
