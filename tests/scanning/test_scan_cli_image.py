"""End to end through the CLI: the sample image (real Debian, PyPI, npm, Go and Java packages),
real advisory samples and our OSV records, every report format and every gate rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from stockade.model import StockadeError
from tests.conftest import require
from tests.scanning.scan_cli_support import make_db, run

SARIF_SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())

# Every finding the sample image must get from the imported records, and nothing else
# (PYSEC-2023-74 affects requests < 2.31.0: the sample's 2.31.0 is its fixed version).
EXPECTED = {
    ("CVE-2024-35195", "requests", "medium"),
    ("CVE-2024-3651", "idna", "medium"),
    ("CVE-2024-37891", "urllib3", "medium"),
    ("CVE-2024-39689", "certifi", "low"),
    ("CVE-2005-2541", "tar", "unknown"),
    ("CVE-2016-2781", "coreutils", "unknown"),
    ("CVE-2024-24791", "stdlib", "unknown"),
}
MEDIUMS = ("GHSA-9wx4-h78v-vm56", "GHSA-jjg7-2v4v-x38h", "CVE-2024-37891")


@pytest.fixture(scope="module")
def sample():
    from stockade.lab.samples import build_sample

    try:
        return build_sample()
    except StockadeError as exc:
        require(False, f"cannot build the sample image: {exc}")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_db(tmp_path_factory.mktemp("scan") / "stockade.db")


def scan_json(ref: str, db: str, *args: str, cwd: Path | None = None) -> tuple[int, dict, str]:
    out = run("scan", "image", ref, "--db", db, "--format", "json", *args, cwd=cwd)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout), out.stderr


def triples(report: dict, *, active_only: bool = True) -> set[tuple[str, str, str]]:
    return {
        (f["id"], f["package"], f["severity"])
        for f in report["findings"]
        if not active_only or f["suppressed"] is None
    }


def test_expected_findings_and_nothing_else(sample, db: str) -> None:
    code, rep, _ = scan_json(f"docker-archive:{sample.docker_archive}", db)
    assert code == 0  # no --fail-on
    assert triples(rep) == EXPECTED
    # A legacy `docker save` has no manifest digest; the name, tag and image id are known.
    assert rep["target"]["name"] == "stockade/sample" and rep["target"]["tag"] == "1"
    assert rep["target"]["config_digest"].startswith("sha256:")
    assert rep["target"]["distro"]["id"] == "debian"
    assert rep["summary"]["by_severity"]["medium"] == 3
    urllib3 = next(f for f in rep["findings"] if f["package"] == "urllib3")
    assert urllib3["fixed_version"] == "2.2.2" and "GHSA-34jh-p97f-mpxf" in urllib3["aliases"]
    assert urllib3["locations"][0].endswith("METADATA") and urllib3["layer"].startswith("sha256:")


def test_every_image_format_gives_the_same_findings(sample, db: str) -> None:
    refs = [
        f"docker-archive:{sample.docker_archive_oci}",
        f"oci:{sample.oci_dir}:{sample.tag}",
        f"oci:{sample.oci_tar}:{sample.tag}",
    ]
    for ref in refs:
        _, rep, _ = scan_json(ref, db)
        assert triples(rep) == EXPECTED, ref


def test_fail_on_exit_codes(sample, db: str) -> None:
    ref = f"docker-archive:{sample.docker_archive}"
    assert run("scan", "image", ref, "--db", db, "--fail-on", "high").returncode == 0
    out = run("scan", "image", ref, "--db", db, "--fail-on", "medium")
    assert out.returncode == 1 and "policy: FAIL (3 at or above medium)" in out.stdout
    out = run("scan", "image", ref, "--db", db, "--fail-on", "unknown", "--ignore-unfixed")
    assert out.returncode == 1  # the Go stdlib finding has a fix
    _, rep, _ = scan_json(ref, db, "--fail-on", "unknown", "--ignore-unfixed")
    assert {f["id"] for f in rep["findings"] if f["suppressed"]} == {
        "CVE-2005-2541",
        "CVE-2016-2781",
    }
    assert all(
        f["suppressed"]["by"] == "ignore-unfixed" for f in rep["findings"] if f["suppressed"]
    )


def test_ignore_file_by_alias_and_expiry(sample, db: str, tmp_path: Path) -> None:
    ref = f"docker-archive:{sample.docker_archive}"
    today = datetime.now(UTC).date()
    entries = "".join(
        f"  - id: {vid}\n    reason: reviewed\n    expires: {today + timedelta(days=30)}\n"
        for vid in MEDIUMS
    )
    (tmp_path / ".stockadeignore.yaml").write_text("ignore:\n" + entries)
    code, rep, _ = scan_json(ref, db, "--fail-on", "medium", cwd=tmp_path)  # picked up by default
    assert code == 0
    assert {f["package"] for f in rep["findings"] if f["suppressed"]} == {
        "requests",
        "idna",
        "urllib3",
    }
    assert rep["summary"]["suppressed"] == 3 and len(rep["findings"]) == len(EXPECTED)

    expired = entries.replace(str(today + timedelta(days=30)), str(today - timedelta(days=1)), 1)
    (tmp_path / "old.yaml").write_text("ignore:\n" + expired)
    code, rep, err = scan_json(
        ref, db, "--fail-on", "medium", "--ignore-file", str(tmp_path / "old.yaml")
    )
    assert code == 1
    assert [e["id"] for e in rep["policy"]["expired_ignores"]] == [MEDIUMS[0]]
    assert f"ignore entry {MEDIUMS[0]}" in err and "expired" in err


def test_vex_statuses_through_the_cli(sample, db: str, tmp_path: Path) -> None:
    ref = f"docker-archive:{sample.docker_archive_oci}"
    _, first, _ = scan_json(ref, db)
    digest = first["target"]["manifest_digest"]
    vex = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/sample",
        "author": "tests",
        "timestamp": "2026-11-01T00:00:00Z",
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": "CVE-2024-35195"},
                "products": [{"@id": f"pkg:oci/sample@{digest.replace(':', '%3A')}"}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
            },
            {
                "vulnerability": {"name": "GHSA-jjg7-2v4v-x38h"},
                "products": [{"@id": "pkg:pypi/idna@3.6"}],
                "status": "fixed",
            },
            {
                "vulnerability": {"name": "CVE-2024-37891"},
                "products": [{"@id": f"stockade/sample@{digest}"}],
                "status": "under_investigation",
            },
        ],
    }
    path = tmp_path / "sample.vex.json"
    path.write_text(json.dumps(vex))
    code, rep, _ = scan_json(ref, db, "--fail-on", "medium", "--vex", str(path))
    assert code == 1  # urllib3 is only under investigation: it still counts
    by_pkg = {f["package"]: f for f in rep["findings"]}
    assert by_pkg["requests"]["suppressed"]["vex_status"] == "not_affected"
    assert by_pkg["idna"]["suppressed"]["vex_status"] == "fixed"
    assert by_pkg["urllib3"]["suppressed"] is None
    assert by_pkg["urllib3"]["vex_status"] == "under_investigation"


def test_sarif_and_cyclonedx_outputs_validate(sample, db: str, tmp_path: Path) -> None:
    ref = f"docker-archive:{sample.docker_archive}"
    sarif_path = tmp_path / "out.sarif"
    out = run("scan", "image", ref, "--db", db, "--format", "sarif", "-o", str(sarif_path))
    assert out.returncode == 0 and out.stdout == ""
    sarif = json.loads(sarif_path.read_text())
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(sarif)
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {e[0] for e in EXPECTED}
    req = next(r for r in results if r["ruleId"] == "CVE-2024-35195")
    uri = req["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.startswith("usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/")

    out = run("scan", "image", ref, "--db", db, "--format", "cyclonedx")
    assert out.returncode == 0
    errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(out.stdout)
    assert errors is None, errors
    bom = json.loads(out.stdout)
    refs = {c["bom-ref"] for c in bom["components"]}
    affects = [a["ref"] for v in bom["vulnerabilities"] for a in v["affects"]]
    assert len(affects) == len(EXPECTED) and set(affects) <= refs
    assert {v["id"] for v in bom["vulnerabilities"]} == {e[0] for e in EXPECTED}


def test_stale_db_allowed_and_results_kept(sample, tmp_path: Path) -> None:
    old = datetime.now(UTC) - timedelta(days=30)
    db = make_db(tmp_path / "old.db", built=old)
    ref = f"docker-archive:{sample.docker_archive}"
    assert run("scan", "image", ref, "--db", db).returncode == 3
    code, rep, _ = scan_json(ref, db, "--allow-stale-db")
    assert code == 0 and triples(rep) == EXPECTED
    assert rep["database"]["built"].startswith(old.date().isoformat())
    listing = json.loads(run("images", "--db", db, "--format", "json").stdout)
    assert [(i["reference"], i["by_severity"]["medium"]) for i in listing] == [(ref, 3)]


@pytest.mark.parametrize("fmt", ["cyclonedx", "spdx"])
def test_sbom_scan_matches_the_image_scan(sample, db: str, tmp_path: Path, fmt: str) -> None:
    from stockade.scanning.catalogers import default_catalogers
    from stockade.scanning.inventory import build_inventory
    from stockade.scanning.sbom import write

    inv = build_inventory(f"oci:{sample.oci_dir}:{sample.tag}", catalogers=default_catalogers())
    path = tmp_path / f"sample.{fmt}.json"
    path.write_text(write(inv, fmt))
    out = run("scan", "sbom", str(path), "--db", db, "--format", "json", "--fail-on", "medium")
    assert out.returncode == 1, out.stderr
    assert triples(json.loads(out.stdout)) == EXPECTED


def test_bad_sbom_inputs_are_exit_3(db: str, tmp_path: Path) -> None:
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    for name, needle in [
        ("missing.json", "no such file"),
        ("garbage.json", "not valid JSON"),
        ("other.json", "not a recognised SBOM"),
    ]:
        out = run("scan", "sbom", str(tmp_path / name), "--db", db)
        assert out.returncode == 3 and needle in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_rescan_uses_the_kept_inventory_without_layers(sample, tmp_path: Path) -> None:
    import shutil

    layout = tmp_path / "layout"
    shutil.copytree(sample.oci_dir, layout)
    db = make_db(tmp_path / "k.db")
    ref = f"oci:{layout}:{sample.tag}"
    _, first, _ = scan_json(ref, db)
    assert first["target"]["layers"]["read"] > 0
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_text())
    for layer in manifest["layers"]:  # from now on a layer read would fail
        (layout / "blobs" / "sha256" / layer["digest"].split(":")[1]).unlink()
    _, again, _ = scan_json(ref, db)
    assert again["target"]["layers"] == {"read": 0, "cached": len(manifest["layers"])}
    assert triples(again) == triples(first) == EXPECTED
    fresh = run("scan", "image", ref, "--db", make_db(tmp_path / "fresh.db"))
    assert fresh.returncode == 3, fresh.stderr  # proves the blobs are really gone


def test_empty_db_allowed_says_so(sample, tmp_path: Path) -> None:
    ref = f"oci:{sample.oci_dir}:{sample.tag}"
    db = str(tmp_path / "empty.db")
    assert run("scan", "image", ref, "--db", db).returncode == 3
    out = run("scan", "image", ref, "--db", db, "--allow-stale-db")
    assert out.returncode == 0, out.stderr
    assert "advisory database: EMPTY - no vulnerability data was used" in out.stdout
