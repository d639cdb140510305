"""No silent answers (issue 11): a scan says what it could not check, in every report format, and
``--fail-on`` does not pass (exit 3) a scan that left part of the target unchecked unless
``--allow-unchecked`` says so.

Real pieces throughout: the sample image (real Debian, PyPI, npm, Go and Java packages), advisory
stores imported from real OSV records, a distroless-style image built here, the loopback registry
(.ci/setup.d/20-registry.sh) and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from stockade.model import StockadeError
from stockade.scanning.imagewrite import Layer, tar_from_entries, write_docker_archive
from tests.conftest import require
from tests.scanning.scan_cli_support import OWN_RECORDS, make_db, run

REGISTRY = "127.0.0.1:5000"
FORMATS = ("table", "json", "sarif", "cyclonedx")


@pytest.fixture(scope="module")
def sample():
    from stockade.lab.samples import build_sample

    try:
        return build_sample()
    except StockadeError as exc:
        require(False, f"cannot build the sample image: {exc}")


@pytest.fixture(scope="module")
def pypi_only_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with our real OSV PyPI records only: no Debian data at all."""
    folder = tmp_path_factory.mktemp("pypi-only")
    for record in OWN_RECORDS.glob("GHSA-*.json"):
        doc = json.loads(record.read_text())
        assert {a["package"]["ecosystem"] for a in doc["affected"]} == {"PyPI"}
        shutil.copy(record, folder / record.name)
    return make_db(folder.parent / "pypi-only.db", sources=(folder,))


@pytest.fixture(scope="module")
def full_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_db(tmp_path_factory.mktemp("full") / "stockade.db")


@pytest.fixture(scope="module")
def bare_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A distroless-style image: one binary and /etc/passwd, no package database of any kind."""
    binary = Path("/usr/bin/true").read_bytes()
    layer = Layer(
        tar=tar_from_entries(
            [
                ("d", "app", b""),
                ("f", "app/server", binary),
                ("d", "etc", b""),
                ("f", "etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\n"),
            ]
        ),
        compression="gzip",
    )
    path = tmp_path_factory.mktemp("bare") / "bare.tar"
    write_docker_archive(path, [layer], repo_tag="stockade/bare:1")
    return path


def scan(ref: str, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run("scan", "image", ref, "--db", db, *args)


def test_debian_without_advisory_data_is_named_in_every_format(sample, pypi_only_db: str) -> None:
    ref = f"docker-archive:{sample.docker_archive}"
    reports = {fmt: scan(ref, pypi_only_db, "--format", fmt) for fmt in FORMATS}
    for fmt, out in reports.items():
        assert out.returncode == 0, out.stderr  # no --fail-on: a report, not a verdict
        assert "debian:12" in out.stdout, fmt
        assert "no advisory data for debian:12" in out.stdout, fmt
    rep = json.loads(reports["json"].stdout)
    unchecked = {u["ecosystem"]: u for u in rep["coverage"]["unchecked"]}
    assert unchecked["debian:12"]["packages"] == 23  # every OS package of the sample
    assert {"npm", "go", "maven"} <= set(unchecked) and "pypi" not in unchecked
    assert rep["coverage"]["complete"] is False
    sarif = json.loads(reports["sarif"].stdout)
    notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert any("debian:12" in n["message"]["text"] for n in notes)
    cdx = json.loads(reports["cyclonedx"].stdout)
    props = {(p["name"], p["value"]) for p in cdx["metadata"]["properties"]}
    assert ("stockade:complete", "false") in props
    assert any(n == "stockade:unchecked" and "debian:12" in v for n, v in props)


def test_fail_on_exits_3_when_a_distribution_went_unchecked(sample, pypi_only_db: str) -> None:
    ref = f"docker-archive:{sample.docker_archive}"
    # Before: exit 1 on the three PyPI mediums, the 23 Debian packages never mentioned.
    out = scan(ref, pypi_only_db, "--fail-on", "medium")
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert out.stderr.startswith("stockade: error: incomplete scan") and "debian:12" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert "policy: FAIL" in out.stdout
    out = scan(ref, pypi_only_db, "--fail-on", "critical")
    assert out.returncode == 3, out.stderr  # no finding that high, still not a pass
    # Explicitly allowed: the exit code follows the findings again.
    out = scan(ref, pypi_only_db, "--fail-on", "medium", "--allow-unchecked")
    assert out.returncode == 1, out.stderr
    assert "debian:12" in out.stdout  # allowed, still said
    out = scan(ref, pypi_only_db, "--fail-on", "critical", "--allow-unchecked")
    assert out.returncode == 0, out.stderr
    assert "policy: PASS" in out.stdout and "allowed by --allow-unchecked" in out.stdout


def test_an_image_with_no_identified_package_says_so(bare_image: Path, full_db: str) -> None:
    ref = f"docker-archive:{bare_image}"
    reports = {fmt: scan(ref, full_db, "--format", fmt) for fmt in FORMATS}
    for fmt, out in reports.items():
        assert out.returncode == 0, out.stderr
        assert "no package identified" in out.stdout, fmt
    assert "NOT CHECKED: no package identified" in reports["table"].stdout
    rep = json.loads(reports["json"].stdout)
    assert rep["coverage"]["nothing_identified"] is True and rep["coverage"]["complete"] is False
    out = scan(ref, full_db, "--fail-on", "low")
    assert out.returncode == 3 and "no package identified" in out.stderr, out.stderr
    assert scan(ref, full_db, "--fail-on", "low", "--allow-unchecked").returncode == 0
    # `stockade images` does not read as clean either
    listing = json.loads(run("images", "--db", full_db, "--format", "json").stdout)
    bare = next(i for i in listing if i["reference"] == ref)
    assert bare["coverage"] == {"packages": 0, "complete": False, "unchecked": []}
    assert "NOTHING" in run("images", "--db", full_db).stdout


def test_scan_rootfs_of_a_tree_without_packages(tmp_path: Path, full_db: str) -> None:
    (tmp_path / "bin").mkdir()
    shutil.copy("/usr/bin/true", tmp_path / "bin" / "app")
    out = run("scan", "rootfs", str(tmp_path), "--db", full_db, "--fail-on", "high")
    assert out.returncode == 3 and "no package identified" in out.stdout + out.stderr
    out = run("scan", "rootfs", str(tmp_path), "--db", full_db, "--allow-unchecked", "-f", "json")
    assert out.returncode == 0 and json.loads(out.stdout)["coverage"]["nothing_identified"]


def test_a_fully_covered_image_is_unchanged(sample, full_db: str) -> None:
    ref = f"docker-archive:{sample.docker_archive}"
    out = scan(ref, full_db, "--format", "json", "--fail-on", "medium")
    assert out.returncode == 1, out.stderr
    rep = json.loads(out.stdout)
    assert rep["coverage"]["complete"] is True and rep["coverage"]["unchecked"] == []
    table = scan(ref, full_db).stdout
    assert "NOT CHECKED" not in table and "checked)" not in table
    assert scan(ref, full_db, "--fail-on", "critical").returncode == 0


def _registry_up() -> bool:
    try:
        return httpx.get(f"http://{REGISTRY}/v2/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.registry
def test_scan_registry_does_not_call_an_unidentified_image_clean(
    bare_image: Path, full_db: str
) -> None:
    require(_registry_up(), f"no registry on {REGISTRY} (.ci/setup.d/20-registry.sh starts it)")
    require(shutil.which("skopeo") is not None, "skopeo is not installed")
    prefix = f"silent-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        [
            "skopeo", "copy", "--quiet", "--dest-tls-verify=false",
            f"docker-archive:{bare_image}", f"docker://{REGISTRY}/{prefix}/bare:1",
        ],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    args = ("scan", "registry", REGISTRY, "--insecure", "--repo", f"{prefix}/*", "--db", full_db)
    for _ in range(2):  # the first walk reads the image, the second finds it unchanged
        out = run(*args)
        assert out.returncode == 0, out.stderr
        assert "no vulnerabilities" not in out.stdout
        assert "NOT CHECKED: no package identified" in out.stdout
    out = run(*args, "--fail-on", "high")
    assert out.returncode == 3 and "incomplete scan of 1 image" in out.stderr, out.stderr
    assert run(*args, "--fail-on", "high", "--allow-unchecked").returncode == 0
    items = json.loads(run(*args, "--format", "json").stdout)[0]["images"]
    assert [(i["action"], i["complete"]) for i in items] == [("unchanged", False)]


def test_admission_does_not_take_an_incomplete_scan_for_a_clean_image(sample, pypi_only_db) -> None:
    """The webhook reads the stored coverage: an image whose Debian packages went unchecked is
    not "scanned and clean" to the unscannedImages criterion."""
    from stockade.admission.engine import decide
    from stockade.admission.policy import parse_policy
    from stockade.admission.workload import workload_of
    from stockade.lab.samples import push_sample
    from stockade.scanning.admission_source import StoreVulnSource
    from stockade.store import open_store
    from tests.scanning.conftest import OPEN_REGISTRY, listening

    require(listening(OPEN_REGISTRY), f"no registry on {OPEN_REGISTRY}")
    push_sample(sample, OPEN_REGISTRY)
    ref = f"{OPEN_REGISTRY}/stockade/sample:{sample.tag}"
    out = run("scan", "image", ref, "--insecure", "--db", pypi_only_db, "--format", "json")
    assert out.returncode in (0, 1), out.stderr
    source = StoreVulnSource(open_store(pypi_only_db), scan_on_demand=False)
    summary = source.stored(ref)
    assert summary is not None and any("debian:12" in u for u in summary.unchecked)
    policy = parse_policy(
        "spec:\n  mode: protect\n  rules:\n    - {name: scanned-only, criteria: {unscannedImages: true}}\n",
        name="p",
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": ref}]},
    }
    d = decide(workload_of(pod), policy, source)
    assert not d.allowed and "scanned incompletely" in d.message and "debian:12" in d.message
