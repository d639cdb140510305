"""Which Ubuntu FIPS stream an image follows, read from its apt sources (real file formats in
tests/scanning/data/apt-sources), and what the matcher makes of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stockade.scanning.advisories.update import import_sources
from stockade.scanning.catalogers import default_catalogers, finalize
from stockade.scanning.catalogers.apt_sources import AptSourcesCataloger, streams_of
from stockade.scanning.imagewrite import write_docker_archive
from stockade.scanning.interface import Distro, FileEntry, Inventory, Package
from stockade.scanning.inventory import build_inventory
from stockade.scanning.inventory_codec import inventory_from_dict, inventory_to_dict
from stockade.scanning.matcher import Matcher
from stockade.store import Store
from tests.scanning.conftest import layer_of

DATA = Path(__file__).parents[1] / "data"
SOURCES = DATA / "apt-sources"
RECORD = DATA / "advisories" / "ubuntu-fips" / "UBUNTU-CVE-2022-4450.json"
PARTS = "etc/apt/sources.list.d"


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("focal-ubuntu-fips.list", ("fips",)),
        ("focal-ubuntu-fips-updates.list", ("fips-updates",)),
        ("jammy-ubuntu-fips-preview.list", ("fips-preview",)),
        ("bionic-ubuntu-fips-updates-commented.list", ()),  # the deb line commented out
        ("noble-ubuntu-fips-updates.sources", ("fips-updates",)),
        ("noble-ubuntu-esm-infra.sources", ()),
        ("noble-ubuntu.sources", ()),
        ("mirror-fips-updates.list", ("fips-updates",)),
        ("disabled.sources", ()),  # Enabled: no; deb-src
    ],
)
def test_streams_of_real_source_files(name: str, want: tuple[str, ...]) -> None:
    assert streams_of(f"/{PARTS}/{name}", (SOURCES / name).read_bytes()) == want


def test_sources_list_itself_and_files_apt_ignores() -> None:
    line = b"deb\thttps://esm.ubuntu.com/fips/ubuntu  focal main\n"
    cataloger = AptSourcesCataloger()
    assert cataloger.wants("/etc/apt/sources.list", 0o100644, len(line))
    assert cataloger.wants(f"/{PARTS}/ubuntu-fips.list", 0o100644, 10)
    # apt reads only .list and .sources files of sources.list.d
    assert not cataloger.wants(f"/{PARTS}/ubuntu-fips.list.save", 0o100644, 10)
    assert not cataloger.wants(f"/{PARTS}/ubuntu-fips.list.distUpgrade", 0o100644, 10)
    entry = FileEntry(path="/etc/apt/sources.list", mode=0o100644, size=len(line), data=line)
    (pkg,) = cataloger.catalog([entry])
    assert pkg.metadata == (("fips-stream", "fips"),)


def _image(tmp_path: Path, *upper: tuple[str, str, bytes | str]) -> Inventory:
    """A focal image with the certified FIPS openssl and the Pro client's FIPS source; upper
    entries in a second layer."""
    status = (
        "Package: openssl\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 1.1.1f-1ubuntu2.fips.7.1\n"
    )
    base = layer_of(
        ("f", "etc/os-release", 'ID=ubuntu\nVERSION_ID="20.04"\nVERSION_CODENAME=focal\n'),
        ("f", "var/lib/dpkg/status", status),
        ("f", f"{PARTS}/ubuntu-fips.list", (SOURCES / "focal-ubuntu-fips.list").read_bytes()),
    )
    layers = [base, layer_of(*upper)] if upper else [base]
    path = write_docker_archive(tmp_path / "fips.tar", layers, repo_tag="t/fips:1")
    return finalize(build_inventory(f"docker-archive:{path}", catalogers=default_catalogers()))


def test_the_stream_the_apt_sources_follow_decides_the_fix(
    tmp_path: Path, sqlite_store: Store
) -> None:
    """UBUNTU-CVE-2022-4450 (real record): the certified stream (fips) lists 1.1.1f-1ubuntu2
    .fips.7.1 and has no fix; FIPS-updates fixes it in .fips.17. An image that follows the
    certified stream gets no fix from apt: it was reported fixed in .fips.17 (the FIPS-updates
    range reached it). One that follows FIPS-updates, or whose FIPS source is gone (pro detach),
    is reported with that fix."""
    (batch,) = import_sources(sqlite_store, [str(RECORD)])
    assert batch.problems == []
    certified = _image(tmp_path)
    assert certified.distro is not None and certified.distro.fips_streams == ("fips",)
    (f,) = Matcher(sqlite_store).run(certified).findings
    assert (f.id, f.details.fix_state, f.details.fixed_version) == (
        "CVE-2022-4450",
        "not-fixed",
        None,
    )
    updates = _image(
        tmp_path,
        ("f", f"{PARTS}/.wh.ubuntu-fips.list", b""),
        (
            "f",
            f"{PARTS}/ubuntu-fips-updates.list",
            (SOURCES / "focal-ubuntu-fips-updates.list").read_bytes(),
        ),
    )
    assert updates.distro is not None and updates.distro.fips_streams == ("fips-updates",)
    detached = _image(tmp_path, ("f", f"{PARTS}/.wh.ubuntu-fips.list", b""))
    assert detached.distro is not None and detached.distro.fips_streams == ()
    for inv in (updates, detached):
        (f,) = Matcher(sqlite_store).run(inv).findings
        assert (f.details.fix_state, f.details.fixed_version) == (
            "fixed",
            "1.1.1f-1ubuntu2.fips.17",
        )
    # preview has no focal entry in the record: a preview image's build is not matched there
    preview = dataclasses.replace(
        certified, distro=dataclasses.replace(certified.distro, fips_streams=("fips-preview",))
    )
    assert Matcher(sqlite_store).run(preview).findings == ()
    # an unknown stream (an SBOM's distro says what it likes) counts as none named
    odd = dataclasses.replace(
        certified, distro=dataclasses.replace(certified.distro, fips_streams=("bogus",))
    )
    (f,) = Matcher(sqlite_store).run(odd).findings
    assert f.details.fixed_version == "1.1.1f-1ubuntu2.fips.17"


def test_fips_streams_survive_the_inventory_codec() -> None:
    inv = Inventory(
        source="x",
        distro=Distro(id="ubuntu", version_id="20.04", fips_streams=("fips-updates",)),
        packages=(Package(type="deb", name="openssl", version="1"),),
    )
    assert inventory_from_dict(inventory_to_dict(inv)) == inv
