"""Builders for the scan tests: findings and inventories made by hand, as the matcher would."""

from __future__ import annotations

from datetime import UTC, datetime

from stockade.model import Finding, Pillar, ResourceRef, Severity
from stockade.scanning.gate import GateResult, Policy, Target, apply_policy
from stockade.scanning.interface import Distro, ImageInfo, Inventory, Package, VulnerabilityDetails
from stockade.scanning.results import DatabaseInfo, ScanReport

DIGEST = "sha256:" + "ab" * 32
IMAGE = "127.0.0.1:5000/library/app"


def package(
    name: str, version: str, *, type_: str = "deb", path: str = "/var/lib/dpkg/status"
) -> Package:
    purl = {
        "deb": f"pkg:deb/debian/{name}@{version}?distro=debian-12",
        "python": f"pkg:pypi/{name}@{version}",
        "npm": f"pkg:npm/{name}@{version}",
    }[type_]
    return Package(
        type=type_,
        name=name,
        version=version,
        purl=purl,
        locations=(path,),
        layer="sha256:" + "01" * 32,
    )


def finding(
    vid: str,
    pkg: Package,
    severity: Severity,
    *,
    fixed: str | None = None,
    fix_state: str | None = None,
    aliases: tuple[str, ...] = (),
    cvss: float | None = None,
    vector: str | None = None,
) -> Finding:
    return Finding(
        id=vid,
        pillar=Pillar.SCANNING,
        title=f"{vid} in {pkg.name}",
        severity=severity,
        resource=ResourceRef(kind="package", name=pkg.name, digest=DIGEST),
        details=VulnerabilityDetails(
            package=pkg.name,
            package_type=pkg.type,
            installed_version=pkg.version,
            fixed_version=fixed,
            fix_state=fix_state or ("fixed" if fixed else "not-fixed"),
            aliases=aliases,
            cvss_score=cvss,
            cvss_vector=vector,
            purl=pkg.purl,
            locations=pkg.locations,
            layer=pkg.layer,
            data_source="osv:Debian",
            urls=(f"https://osv.dev/vulnerability/{vid}",),
        ),
    )


OPENSSL = package("openssl", "3.0.11-1~deb12u1")
LIBC = package("libc6", "2.36-9+deb12u3")
REQUESTS = package(
    "requests",
    "2.25.0",
    type_="python",
    path="/usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA",
)
LODASH = package("lodash", "4.17.20", type_="npm", path="/app/node_modules/lodash/package.json")


def sample_findings() -> list[Finding]:
    return [
        finding(
            "CVE-2024-0001",
            OPENSSL,
            Severity.CRITICAL,
            fixed="3.0.13-1~deb12u1",
            cvss=9.8,
            vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            aliases=("DSA-5000-1",),
        ),
        finding("CVE-2024-0002", LIBC, Severity.HIGH, fix_state="not-fixed"),
        finding(
            "GHSA-j8r2-6x86-q33q",
            REQUESTS,
            Severity.MEDIUM,
            fixed="2.31.0",
            aliases=("CVE-2023-32681", "PYSEC-2023-74"),
            cvss=6.1,
        ),
        finding(
            "GHSA-35jh-r3h4-6jhm",
            LODASH,
            Severity.HIGH,
            fixed="4.17.21",
            aliases=("CVE-2021-23337",),
        ),
        finding("CVE-2024-0003", LIBC, Severity.LOW, fix_state="wont-fix"),
    ]


def sample_inventory() -> Inventory:
    return Inventory(
        source=f"{IMAGE}:1.0",
        image=ImageInfo(
            reference=f"{IMAGE}:1.0",
            name=IMAGE,
            tag="1.0",
            manifest_digest=DIGEST,
            platform="linux/amd64",
        ),
        distro=Distro(id="debian", version_id="12", pretty_name="Debian GNU/Linux 12 (bookworm)"),
        packages=(OPENSSL, LIBC, REQUESTS, LODASH, package("zlib1g", "1:1.2.13.dfsg-1")),
    )


TARGET = Target(reference=f"{IMAGE}:1.0", name=IMAGE, tag="1.0", digest=DIGEST)


def gate(policy: Policy | None = None, findings: list[Finding] | None = None) -> GateResult:
    return apply_policy(
        sample_findings() if findings is None else findings, policy or Policy(), TARGET
    )


def report(policy: Policy | None = None) -> ScanReport:
    return ScanReport(
        inventory=sample_inventory(),
        gate=gate(policy),
        scanned_at=datetime(2026, 11, 27, 3, 0, tzinfo=UTC),
        database=DatabaseInfo(built=datetime(2026, 11, 26, tzinfo=UTC), sources=("osv-samples",)),
        tool_version="0.1.0",
    )
