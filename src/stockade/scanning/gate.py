"""The policy gate: which findings count, which are suppressed and why, and whether the scan fails.

Order of rules, first match wins for the recorded reason: VEX statements (``not_affected`` and
``fixed`` suppress; ``affected`` and ``under_investigation`` only annotate), then the ignore file
(expired entries never suppress and are reported), then ``--ignore-unfixed``. Suppressed findings
are kept with their reason so reports can show them; only active findings decide the exit code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import parse_qsl, unquote

from stockade.model import Finding, Severity
from stockade.scanning.interface import VulnerabilityDetails
from stockade.scanning.policy_files import IgnoreRule, VexStatement, purl_base


@dataclass(frozen=True, slots=True, kw_only=True)
class Suppression:
    """Why a finding does not count towards the gate."""

    by: str  # "vex", "ignore-file", "ignore-unfixed"
    reason: str
    source: str = ""  # the file the rule came from
    expires: date | None = None
    vex_status: str | None = None
    justification: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GatedFinding:
    finding: Finding
    suppression: Suppression | None = None
    vex_status: str | None = None  # the VEX status that applied, suppressing or not
    vex_note: str | None = None

    @property
    def active(self) -> bool:
        return self.suppression is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    fail_on: Severity | None = None
    ignore_unfixed: bool = False
    ignore_rules: tuple[IgnoreRule, ...] = ()
    vex: tuple[VexStatement, ...] = ()
    today: date = field(default_factory=date.today)


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What the VEX products and ignore rules are matched against."""

    reference: str = ""
    name: str | None = None
    tag: str | None = None
    digest: str | None = None
    config_digest: str | None = None  # the image ID, for archives that have no manifest digest


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResult:
    findings: tuple[GatedFinding, ...]
    fail_on: Severity | None
    ignore_unfixed: bool
    expired_rules: tuple[IgnoreRule, ...] = ()

    @property
    def active(self) -> tuple[GatedFinding, ...]:
        return tuple(g for g in self.findings if g.active)

    @property
    def suppressed(self) -> tuple[GatedFinding, ...]:
        return tuple(g for g in self.findings if not g.active)

    @property
    def failing(self) -> tuple[GatedFinding, ...]:
        if self.fail_on is None:
            return ()
        return tuple(g for g in self.active if g.finding.severity >= self.fail_on)

    @property
    def failed(self) -> bool:
        return bool(self.failing)

    def counts(self, *, active_only: bool = True) -> dict[str, int]:
        """Findings per severity name, every severity present (zeros included)."""
        out = {str(s): 0 for s in sorted(Severity, reverse=True)}
        for g in self.active if active_only else self.findings:
            out[str(g.finding.severity)] += 1
        return out


def finding_ids(finding: Finding) -> frozenset[str]:
    """The finding's id and every alias, upper-cased for comparison."""
    ids = {finding.id.upper()}
    details = finding.details
    if isinstance(details, VulnerabilityDetails):
        ids.update(a.upper() for a in details.aliases)
    return frozenset(ids)


def apply_policy(findings: Iterable[Finding], policy: Policy, target: Target) -> GateResult:
    """Run every finding through the policy and decide the outcome."""
    gated = []
    expired = [r for r in policy.ignore_rules if r.is_expired(policy.today)]
    live = [r for r in policy.ignore_rules if not r.is_expired(policy.today)]
    vex = sorted(policy.vex, key=lambda s: s.timestamp_key)
    for finding in findings:
        gated.append(_gate_one(finding, policy, live, vex, target))
    return GateResult(
        findings=tuple(gated),
        fail_on=policy.fail_on,
        ignore_unfixed=policy.ignore_unfixed,
        expired_rules=tuple(expired),
    )


def _gate_one(
    finding: Finding,
    policy: Policy,
    rules: Sequence[IgnoreRule],
    vex: Sequence[VexStatement],
    target: Target,
) -> GatedFinding:
    ids = finding_ids(finding)
    details = finding.details if isinstance(finding.details, VulnerabilityDetails) else None
    statement = _latest_vex(vex, ids, details, target)
    vex_status = statement.status if statement else None
    vex_note = statement.note if statement else None
    if statement is not None and statement.status in ("not_affected", "fixed"):
        sup = Suppression(
            by="vex",
            reason=statement.note,
            source=statement.source,
            vex_status=statement.status,
            justification=statement.justification,
        )
        return GatedFinding(
            finding=finding, suppression=sup, vex_status=vex_status, vex_note=vex_note
        )
    for rule in rules:
        if rule.matches(ids, details):
            sup = Suppression(
                by="ignore-file", reason=rule.reason, source=rule.source, expires=rule.expires
            )
            return GatedFinding(
                finding=finding, suppression=sup, vex_status=vex_status, vex_note=vex_note
            )
    if policy.ignore_unfixed and details is not None and details.fix_state != "fixed":
        sup = Suppression(by="ignore-unfixed", reason=f"no fixed version ({details.fix_state})")
        return GatedFinding(
            finding=finding, suppression=sup, vex_status=vex_status, vex_note=vex_note
        )
    return GatedFinding(finding=finding, vex_status=vex_status, vex_note=vex_note)


def _latest_vex(
    statements: Sequence[VexStatement],
    ids: frozenset[str],
    details: VulnerabilityDetails | None,
    target: Target,
) -> VexStatement | None:
    """The newest statement about this vulnerability and this product (statements are sorted)."""
    found = None
    for st in statements:
        if ids.isdisjoint(st.vulnerability_ids):
            continue
        if _applies(st, details, target):
            found = st
    return found


def _applies(st: VexStatement, details: VulnerabilityDetails | None, target: Target) -> bool:
    pkg_purl = purl_base(details.purl) if details and details.purl else ""
    for product in st.products:
        if product.subcomponents:
            if not _matches_image(product.id, target):
                continue
            if pkg_purl and any(purl_base(s) == pkg_purl for s in product.subcomponents):
                return True
            continue
        if _matches_image(product.id, target):
            return True
        if pkg_purl and product.id.startswith("pkg:") and purl_base(product.id) == pkg_purl:
            return True
    return False


def _matches_image(product_id: str, target: Target) -> bool:
    """A product names the image by reference, by ``name@digest`` or by an OCI purl."""
    pid = product_id.strip()
    if pid.startswith("pkg:oci/"):
        return _matches_oci_purl(pid, target)
    digest = _digest_of(pid)
    if digest and (target.digest or target.config_digest):
        return digest in (target.digest, target.config_digest)
    if pid.startswith("pkg:"):
        return False
    if pid == target.reference:
        return True
    if target.name:
        if pid == target.name and not digest:
            return True
        if target.tag and pid == f"{target.name}:{target.tag}":
            return True
    return False


def _matches_oci_purl(pid: str, target: Target) -> bool:
    """``pkg:oci/NAME[@DIGEST][?repository_url=HOST/REPO&tag=TAG]``: with ``repository_url``, only
    an image scanned from that repository; then the digest, else the name (and tag) decide."""
    body, _, query = pid[len("pkg:oci/") :].partition("?")
    qualifiers = {k.lower(): v for k, v in parse_qsl(query.split("#", 1)[0])}
    repository = qualifiers.get("repository_url")
    if repository is not None and _repository(repository) != _repository(target.name or ""):
        return False
    digest = _digest_of(pid)
    if digest and (target.digest or target.config_digest):
        return digest in (target.digest, target.config_digest)
    tag = qualifiers.get("tag")
    if tag is not None and tag != target.tag:
        return False
    name = unquote(body.split("@", 1)[0]).lower()
    return bool(target.name) and str(target.name).rsplit("/", 1)[-1] == name


def _repository(text: str) -> str:
    """``https://Registry.Example/team/app/`` and ``registry.example/team/app`` are one repository."""
    bare = text.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    return bare.lower()


def _digest_of(product_id: str) -> str | None:
    text = product_id.replace("%3A", ":").replace("%3a", ":")
    if "@sha256:" in text:
        return "sha256:" + text.split("@sha256:", 1)[1].split("?", 1)[0].split("#", 1)[0]
    return None
