"""Root filesystems of the enterprise families from real package databases and os-release files
kept in tests/scanning/data/distros (provenance in its README.md), laid out as the images have
them: the os-release file in /usr/lib with /etc/os-release a symlink to it, the package
database at the family's own path."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "distros"


@dataclass(frozen=True)
class Family:
    key: str  # folder in DATA
    database: str  # the file kept in DATA (gzip-compressed when it ends in .gz)
    path: str  # where the image has it


FAMILIES = {
    f.key: f
    for f in (
        Family("al2023", "rpmdb.sqlite.gz", "var/lib/rpm/rpmdb.sqlite"),
        Family("sles15.3", "Packages.db.gz", "usr/lib/sysimage/rpm/Packages.db"),
        Family("rhel8", "Packages.gz", "var/lib/rpm/Packages"),
        Family("ubuntu18.04", "status", "var/lib/dpkg/status"),
    )
}


def build_root(key: str, root: Path) -> Path:
    """Write the family's root filesystem under ``root`` (which must not exist)."""
    family = FAMILIES[key]
    src = DATA / key
    (root / "usr/lib").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(src / "os-release", root / "usr/lib/os-release")
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    target = root / family.path
    target.parent.mkdir(parents=True, exist_ok=True)
    data = (src / family.database).read_bytes()
    target.write_bytes(gzip.decompress(data) if family.database.endswith(".gz") else data)
    return root


def rpm_qa(key: str) -> set[tuple[str, str]]:
    """(name, [epoch:]version-release) from the ``rpm -qa`` listing taken in the same image
    (kept as rpm-qa.txt: fields separated by a pilcrow, epoch first), gpg-pubkey left out."""
    out = set()
    for line in (DATA / key / "rpm-qa.txt").read_text().splitlines():
        if not line:
            continue
        epoch, name, version, release = line.split("\u00b6")[:4]
        if name != "gpg-pubkey":
            out.add((name, f"{epoch + ':' if epoch else ''}{version}-{release}"))
    return out
