"""The dpkg cataloger on this Debian machine's own package database (hundreds of real packages
and copyright files), compared with syft on the same files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.conftest import require
from tests.scanning.catalogers.catalog_inputs import catalog_tree, syft_json

DOC = Path("/usr/share/doc")


@pytest.fixture(scope="module")
def host_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(Path("/var/lib/dpkg/status").exists(), "not a Debian machine")
    root = tmp_path_factory.mktemp("host-dpkg")
    (root / "var/lib/dpkg").mkdir(parents=True)
    shutil.copy("/var/lib/dpkg/status", root / "var/lib/dpkg/status")
    (root / "etc").mkdir()
    shutil.copy("/etc/os-release", root / "etc/os-release")
    for d in DOC.iterdir():
        target = root / "usr/share/doc" / d.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if d.is_symlink():
            target.symlink_to(d.readlink())  # a doc dir shared with a same-source sibling
        elif (d / "copyright").is_file():
            target.mkdir()
            shutil.copy(d / "copyright", target / "copyright")
    return root


def _clean(value: str) -> str:
    return value.strip(".,;:()")


@pytest.mark.slow
def test_host_packages_purls_and_licenses_as_syft(host_root: Path) -> None:
    require(shutil.which("syft") is not None, "syft is not installed")
    ours = {(p.name, p.version): p for p in catalog_tree(host_root).packages if p.type == "deb"}
    theirs = {
        (a["name"], a["version"]): a
        for a in syft_json(f"dir:{host_root}")["artifacts"]
        if a["type"] == "deb"
    }
    assert len(ours) > 50
    # every stanza of this machine's status file is installed, so both list the same packages
    assert set(ours) == set(theirs)
    for key, art in theirs.items():
        mine = ours[key]
        base, _, q = art["purl"].partition("?")
        assert mine.purl.partition("?")[0] == base and set(
            mine.purl.partition("?")[2].split("&")
        ) == set(q.split("&"))
        # every license syft finds, we find (syft keeps trailing punctuation: "REGCOMP,");
        # we find more: DEP-5 lines indented with tabs or several spaces, every common-licenses
        # reference on a line, both sides of "A or B" (see docs/sbom.md)
        found = {_clean(lic["value"]) for lic in art["licenses"]} - {""}
        assert found <= set(mine.licenses), key
