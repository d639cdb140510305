"""Admission criteria: each one reads a workload and returns the reasons it is met (empty: not met).

A rule is met when *all* of its criteria are met. Criteria are plain functions in an explicit
table (``CRITERIA``), each with a pydantic model of its parameters.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stockade.admission.images import matches_any, parse_image
from stockade.admission.interface import (
    Container,
    ImageVulns,
    SignatureRequirement,
    SignatureVerdict,
    Workload,
)
from stockade.admission.workload import container_kind
from stockade.compliance.workloads import BY_ID, Violation, check_object, violations
from stockade.model import Severity, Status, UsageError

VulnLookup = Callable[[str], ImageVulns | None]
# None: the verification could not be made (the engine records why; failurePolicy applies).
SignatureLookup = Callable[[str, SignatureRequirement], SignatureVerdict | None]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VulnParams(_Params):
    severity: str = "high"
    count: int = Field(default=1, ge=1)
    fixableOnly: bool = False

    @field_validator("severity")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            Severity.parse(v)
        except UsageError as exc:
            raise ValueError(exc.message) from None
        return v


class CvssParams(_Params):
    gte: float = Field(ge=0.0, le=10.0)


class RegistryParams(_Params):
    allow: list[str] | None = None
    deny: list[str] | None = None


class TagParams(_Params):
    requireDigest: bool = False
    deny: list[str] = Field(default_factory=list)


class CapParams(_Params):
    add: Literal["any"] | list[str] = "any"

    @field_validator("add")
    @classmethod
    def _reportable(cls, v: Literal["any"] | list[str]) -> Literal["any"] | list[str]:
        # The criterion is pss.restricted.capabilities, which lets NET_BIND_SERVICE be added: a
        # rule naming it would never fire, so it is refused rather than silently ignored.
        if isinstance(v, list) and any(_cap_name(x) == "NET_BIND_SERVICE" for x in v):
            raise ValueError(
                "NET_BIND_SERVICE may be added under the Pod Security Standards (restricted) "
                "and is never reported; remove it from the list"
            )
        return v


class HostPathParams(_Params):
    allowed: list[str] = Field(default_factory=list)  # path prefixes that are fine


class WorkloadCheckParams(_Params):
    ids: list[str] = Field(
        min_length=1
    )  # check ids or globs: pss.restricted.*, cis.secrets.env_vars
    profile: Literal["baseline", "restricted"] = "restricted"


class PrivEscParams(_Params):
    explicitOnly: bool = False


class EnvSecretsParams(_Params):
    # True: only secrets written into the object fire; secretKeyRef and envFrom.secretRef (the
    # recommended ways) pass. False (``envSecrets: true``): any secret in env fires (CIS 5.4.1).
    literalOnly: bool = False


class IdentityParams(_Params):
    subject: str = Field(min_length=1)  # certificate SAN (email or URI), exact or a glob
    issuer: str = Field(min_length=1)  # the OIDC issuer Fulcio recorded, exact or a glob


class TrustRootParams(_Params):
    fulcioRoots: list[str] = Field(min_length=1)  # PEM files: the only trust anchors
    fulcioIntermediates: list[str] = Field(default_factory=list)
    rekorKeys: list[str] = Field(min_length=1)  # PEM public keys of the transparency log


class SignedByParams(_Params):
    keys: list[str] = Field(default_factory=list)  # PEM public key files
    identities: list[IdentityParams] = Field(default_factory=list)
    trustRoot: TrustRootParams | None = None

    @model_validator(mode="after")
    def _complete(self) -> SignedByParams:
        if not self.keys and not self.identities:
            raise ValueError("signedBy needs keys or identities")
        if self.identities and self.trustRoot is None:
            raise ValueError("signedBy identities need a trustRoot (fulcioRoots and rekorKeys)")
        return self

    def requirement(self) -> SignatureRequirement:
        root = self.trustRoot
        return SignatureRequirement(
            keys=tuple(self.keys),
            identities=tuple((i.subject, i.issuer) for i in self.identities),
            fulcio_roots=tuple(root.fulcioRoots) if root else (),
            fulcio_intermediates=tuple(root.fulcioIntermediates) if root else (),
            rekor_keys=tuple(root.rekorKeys) if root else (),
        )


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    params: type[BaseModel] | None  # None: the YAML value is just `true`
    # The third argument is a VulnLookup, or a SignatureLookup when needs_signatures is set.
    check: Callable[[Any, Workload, Any], list[str]]
    needs_vulns: bool = False
    needs_signatures: bool = False


def _images(w: Workload) -> Iterator[Container]:
    seen: set[str] = set()
    for c in w.containers:
        if c.image and c.image not in seen:
            seen.add(c.image)
            yield c


def _vulnerabilities(p: VulnParams, w: Workload, vulns: VulnLookup) -> list[str]:
    sev = Severity.parse(p.severity)
    out = []
    for c in _images(w):
        s = vulns(c.image)
        if s is None or not s.scanned:
            continue
        n = s.count_at_least(sev, fixable_only=p.fixableOnly)
        if n >= p.count:
            fix = " fixable" if p.fixableOnly else ""
            out.append(
                f"image {c.image} has {n}{fix} vulnerabilities at {sev} or above (limit {p.count - 1})"
            )
    return out


def _cves(p: list[str], w: Workload, vulns: VulnLookup) -> list[str]:
    wanted = {x.upper() for x in p}
    out = []
    for c in _images(w):
        s = vulns(c.image)
        if s is None:
            continue
        hit = sorted(wanted & {i.upper() for i in s.ids})
        if hit:
            out.append(f"image {c.image} has {', '.join(hit)}")
    return out


def _cvss(p: CvssParams, w: Workload, vulns: VulnLookup) -> list[str]:
    out = []
    for c in _images(w):
        s = vulns(c.image)
        if s is not None and s.max_cvss is not None and s.max_cvss >= p.gte:
            out.append(
                f"image {c.image} has a vulnerability with CVSS {s.max_cvss:.1f} (>= {p.gte:.1f})"
            )
    return out


def _unscanned(_p: bool, w: Workload, vulns: VulnLookup) -> list[str]:
    out = []
    for c in _images(w):
        s = vulns(c.image)
        if s is None or not s.scanned:
            out.append(f"image {c.image} has no scan result")
        elif s.unchecked:
            out.append(f"image {c.image} was scanned incompletely: {'; '.join(s.unchecked)}")
    return out


def _registries(p: RegistryParams, w: Workload, _v: VulnLookup) -> list[str]:
    out = []
    for c in _images(w):
        registry = parse_image(c.image).registry
        if p.allow is not None and not matches_any(c.image, p.allow):
            out.append(f"image {c.image} is from registry {registry}, not in the allowed list")
        if p.deny and matches_any(c.image, p.deny):
            out.append(f"image {c.image} is from a denied registry ({registry})")
    return out


def _image_tag(p: TagParams, w: Workload, _v: VulnLookup) -> list[str]:
    out = []
    for c in _images(w):
        ref = parse_image(c.image)
        if p.requireDigest and ref.digest is None:
            out.append(f"image {c.image} is not pinned by digest")
        tag = ref.effective_tag
        if tag is not None and ref.digest is None and tag in p.deny:
            out.append(f"image {c.image} uses the tag {tag!r}")
    return out


def _signed_by(p: SignedByParams, w: Workload, signatures: SignatureLookup) -> list[str]:
    """Met for every image that is not signed as required (a verification that could not be made
    is an error for the failure policy, not a reason)."""
    requirement = p.requirement()
    out = []
    for c in _images(w):
        verdict = signatures(c.image, requirement)
        if verdict is not None and not verdict.signed:
            out.append(
                f"image {c.image} is not signed by {requirement.describe()}: {verdict.summary}"
            )
    return out


# The six Pod Security criteria are the compliance pillar's checks; only their parameters (allowed
# host paths, named capabilities, explicitOnly) are applied here, to the structured evidence.


def _found(check_id: str, w: Workload) -> list[Violation]:
    """What the compliance check ``check_id`` finds in the workload (nothing if it does not apply)."""
    return violations(BY_ID[check_id], dict(w.obj)) or []


def _container(v: Violation) -> str:
    c = v.container
    return "pod" if c is None else f"{container_kind(c.path)} {c.name!r}"


def _privileged(_p: bool, w: Workload, _v: VulnLookup) -> list[str]:
    return [f"{_container(v)} is privileged" for v in _found("pss.baseline.privileged", w)]


def _host_namespaces(_p: bool, w: Workload, _v: VulnLookup) -> list[str]:
    return [f"pod uses {v.field}" for v in _found("pss.baseline.host_namespaces", w)]


def _clean_path(path: str) -> str:
    """A host path as the node resolves it: ``//``, ``.`` and ``..`` folded, no trailing slash
    (so ``/var/log/`` and ``/var/log`` are one path, and ``/var/log/../../etc`` is ``/etc``)."""
    clean = posixpath.normpath("/" + path)
    return "/" + clean.lstrip("/")


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _host_path(p: HostPathParams, w: Workload, _v: VulnLookup) -> list[str]:
    out = []
    allowed = [_clean_path(a) for a in p.allowed]
    for v in _found("pss.baseline.host_path", w):
        path = v.value or ""
        if any(_under(_clean_path(path), a) for a in allowed):
            continue
        out.append(f"volume {v.volume!r} mounts host path {path}")
    return out


def _run_as_root(_p: bool, w: Workload, _v: VulnLookup) -> list[str]:
    """Root for sure (runAsUser 0 on the container, or on the pod and not overridden), or maybe
    (runAsNonRoot not true and no runAsUser in effect); a non-zero runAsUser is not root."""
    reasons: dict[str, str] = {}
    for v in _found("pss.restricted.run_as_user", w):
        for c in (v.container,) if v.container else v.inherited_by:
            reasons[c.path] = f"{container_kind(c.path)} {c.name!r} runs as user 0"
    for v in _found("pss.restricted.run_as_non_root", w):
        if v.container and v.run_as_user is None and v.container.path not in reasons:
            reasons[v.container.path] = (
                f"{_container(v)} may run as root (no runAsNonRoot and no runAsUser)"
            )
    return list(reasons.values())


def _cap_name(cap: str) -> str:
    return cap.upper().removeprefix("CAP_")


def _capabilities(p: CapParams, w: Workload, _v: VulnLookup) -> list[str]:
    out = []
    for v in _found("pss.restricted.capabilities", w):
        if v.field != "add":
            continue  # the same check also wants drop: [ALL]; this criterion is about adding
        # the runtime reads names without regard to case or a CAP_ prefix; ALL adds every one
        added = [a for a in v.items if _cap_name(a) != "NET_BIND_SERVICE"]
        if p.add != "any":
            wanted = {_cap_name(x) for x in p.add}
            added = [a for a in added if _cap_name(a) in wanted or _cap_name(a) == "ALL"]
        if added:
            out.append(f"{_container(v)} adds capabilities {', '.join(added)}")
    return out


def _priv_escalation(p: PrivEscParams, w: Workload, _v: VulnLookup) -> list[str]:
    out = []
    for v in _found("pss.restricted.privilege_escalation", w):
        if v.value == "true":
            out.append(f"{_container(v)} sets allowPrivilegeEscalation: true")
        elif not p.explicitOnly:
            out.append(f"{_container(v)} does not set allowPrivilegeEscalation: false")
    return out


_SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|credential)", re.I)
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")
_KEY_WORDS = frozenset(
    ["KEY", "KEYS"]
    + [
        f"{prefix}KEY"
        for prefix in (
            "API", "ACCESS", "SECRET", "PRIVATE", "AUTH", "SIGNING", "MASTER", "LICENSE",
            "ENCRYPTION", "HMAC", "SESSION", "CLIENT", "APP", "SERVICE", "ADMIN", "ROOT",
        )
    ]
)  # fmt: skip
_ENV_REFERENCE = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_.-]*\)")  # value: $(OTHER_VAR)


def _names_a_key(name: str) -> bool:
    """``*KEY*`` names: the word KEY (API_KEY, SECRET_KEY, apiKey, AWS_ACCESS_KEY_ID) or a known
    compound (APIKEY); not a public key, KEYCLOAK_URL or HOCKEY_TEAM."""
    words = [w.upper() for w in _NAME_WORDS.findall(name)]
    return "PUBLIC" not in words and any(w in _KEY_WORDS for w in words)


def _looks_secret(name: str, value: object) -> bool:
    """A literal value under a secret-sounding name; paths to mounted secret files are fine."""
    if not isinstance(value, str) or not value:
        return False
    if not (_SECRET_NAME.search(name) or _names_a_key(name)):
        return False
    if _ENV_REFERENCE.fullmatch(value):
        return False  # expands another variable; the secret (if any) is not written here
    return not (name.upper().endswith(("_FILE", "_PATH", "_DIR", "_NAME")) or value.startswith("/"))


def _items(value: object) -> list[Any]:
    """A list field, or nothing when the object holds something else there."""
    return value if isinstance(value, list) else []


def _env_secrets(p: EnvSecretsParams, w: Workload, _v: VulnLookup) -> list[str]:
    out = []
    for c in w.containers:
        for env in _items(c.spec.get("env")):
            if not isinstance(env, Mapping):
                continue
            name = str(env.get("name", ""))
            value_from = env.get("valueFrom")
            if isinstance(value_from, Mapping) and isinstance(
                value_from.get("secretKeyRef"), Mapping
            ):
                if not p.literalOnly:
                    secret = value_from["secretKeyRef"].get("name")
                    out.append(f"{c.kind} {c.name!r} takes env {name} from secret {secret!r}")
            elif _looks_secret(name, env.get("value")):
                out.append(f"{c.kind} {c.name!r} sets a secret-looking env {name} in clear")
        for src in _items(c.spec.get("envFrom")):
            if (
                not p.literalOnly
                and isinstance(src, Mapping)
                and isinstance(src.get("secretRef"), Mapping)
            ):
                out.append(
                    f"{c.kind} {c.name!r} loads env from secret {src['secretRef'].get('name')!r}"
                )
    return out


def _required_labels(p: list[str], w: Workload, _v: VulnLookup) -> list[str]:
    missing = [label for label in p if label not in w.labels]
    return [f"missing required labels: {', '.join(missing)}"] if missing else []


def _workload_checks(p: WorkloadCheckParams, w: Workload, _v: VulnLookup) -> list[str]:
    """The compliance pillar's workload checks (Pod Security Standards, CIS 5.x) on this object."""

    out = []
    for f in check_object(dict(w.obj), profile=p.profile):
        if f.status is Status.FAIL and any(fnmatch.fnmatchcase(f.id, pat) for pat in p.ids):
            evidence = getattr(f.details, "evidence", "") if f.details else ""
            out.append(f"{f.id}: {f.title}" + (f" ({evidence})" if evidence else ""))
    return out


CRITERIA: dict[str, Criterion] = {
    c.name: c
    for c in (
        Criterion("vulnerabilities", VulnParams, _vulnerabilities, needs_vulns=True),
        Criterion("cves", None, _cves, needs_vulns=True),
        Criterion("cvssScore", CvssParams, _cvss, needs_vulns=True),
        Criterion("unscannedImages", None, _unscanned, needs_vulns=True),
        Criterion("signedBy", SignedByParams, _signed_by, needs_signatures=True),
        Criterion("registries", RegistryParams, _registries),
        Criterion("imageTag", TagParams, _image_tag),
        Criterion("privileged", None, _privileged),
        Criterion("hostNamespaces", None, _host_namespaces),
        Criterion("hostPath", HostPathParams, _host_path),
        Criterion("runAsRoot", None, _run_as_root),
        Criterion("capabilities", CapParams, _capabilities),
        Criterion("allowPrivilegeEscalation", PrivEscParams, _priv_escalation),
        Criterion("envSecrets", EnvSecretsParams, _env_secrets),
        Criterion("requiredLabels", None, _required_labels),
        Criterion("workloadChecks", WorkloadCheckParams, _workload_checks),
    )
}
