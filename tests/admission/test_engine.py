"""The decision engine and criteria on real manifests, with in-memory vulnerability sources."""

from __future__ import annotations

import copy

import pytest

from stockade.admission.engine import decide
from stockade.admission.images import parse_image
from stockade.admission.interface import ImageVulns, LookupBudget
from stockade.admission.policy import load_policy, parse_policy
from stockade.admission.review import failure_response
from stockade.admission.vulns import CachedVulnSource, FileVulnSource
from stockade.admission.workload import workload_of
from stockade.model import ConfigError, Severity
from tests.admission.webhook import EXAMPLES, manifests

OBJECTS = manifests()
BASE = OBJECTS["Deployment/prod/pay"]


def policy_with(criteria: str, mode: str = "protect", extra: str = ""):
    return parse_policy(
        f"spec:\n  mode: {mode}\n{extra}  rules:\n    - name: r\n      criteria: {criteria}\n",
        name="t.yaml",
    )


def pod(**container_sc) -> dict:
    obj = copy.deepcopy(BASE)
    obj["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(container_sc)
    return obj


def mutate(fn):
    obj = copy.deepcopy(BASE)
    fn(obj["spec"]["template"]["spec"], obj)
    return obj


class Raising:
    def summary(self, image: str, *, budget):
        raise OSError("scan store unreachable")


FACTS = FileVulnSource(EXAMPLES / "vulns.yaml")
PAY_IMAGE = BASE["spec"]["template"]["spec"]["containers"][0]["image"]


def with_image(image: str) -> dict:
    return mutate(lambda s, o: s["containers"][0].update(image=image))


# (criterion YAML, object that meets it, reason fragment). BASE itself meets none of them.
CASES = [
    (
        "{vulnerabilities: {severity: critical}}",
        with_image("registry.internal.example/shop/legacy:2.1"),
        "at critical",
    ),
    (
        "{vulnerabilities: {severity: high, fixableOnly: true}}",
        with_image("registry.internal.example/shop/api:3.4"),
        "fixable",
    ),
    (
        "{vulnerabilities: {severity: medium, count: 5}}",
        with_image("nginx:1.25.3"),
        "7 vulnerabilities at medium",
    ),
    (
        "{cves: [cve-2021-44228]}",
        with_image("registry.internal.example/shop/legacy:2.1"),
        "CVE-2021-44228",
    ),
    (
        "{cvssScore: {gte: 9.0}}",
        with_image("registry.internal.example/shop/legacy:2.1"),
        "CVSS 10.0",
    ),
    (
        "{unscannedImages: true}",
        with_image("registry.internal.example/shop/new:1"),
        "no scan result",
    ),
    (
        "{registries: {allow: [registry.internal.example]}}",
        with_image("ghcr.io/x/y:1"),
        "not in the allowed",
    ),
    ("{registries: {deny: ['docker.io']}}", with_image("redis:7"), "denied registry"),
    (
        "{imageTag: {requireDigest: true}}",
        with_image("registry.internal.example/shop/api:3.4"),
        "not pinned",
    ),
    ("{imageTag: {deny: [latest]}}", with_image("registry.internal.example/shop/api"), "'latest'"),
    ("{privileged: true}", pod(privileged=True), "is privileged"),
    ("{hostNamespaces: true}", mutate(lambda s, o: s.update(hostIPC=True)), "hostIPC"),
    (
        "{hostPath: {allowed: [/var/log]}}",
        mutate(lambda s, o: s.update(volumes=[{"name": "h", "hostPath": {"path": "/etc"}}])),
        "/etc",
    ),
    ("{runAsRoot: true}", pod(runAsUser=0), "runs as user 0"),
    ("{runAsRoot: true}", mutate(lambda s, o: s.pop("securityContext")), "may run as root"),
    (
        "{capabilities: {add: [SYS_ADMIN]}}",
        pod(capabilities={"add": ["CAP_SYS_ADMIN"]}),
        "SYS_ADMIN",
    ),
    (
        "{allowPrivilegeEscalation: true}",
        pod(allowPrivilegeEscalation=True),
        "allowPrivilegeEscalation: true",
    ),
    (
        "{allowPrivilegeEscalation: true}",
        mutate(lambda s, o: s["containers"][0]["securityContext"].pop("allowPrivilegeEscalation")),
        "does not set",
    ),
    (
        "{envSecrets: true}",
        mutate(
            lambda s, o: s["containers"][0]["env"].append({"name": "API_TOKEN", "value": "abc123"})
        ),
        "API_TOKEN",
    ),
    (
        "{envSecrets: true}",
        mutate(lambda s, o: s["containers"][0].update(envFrom=[{"secretRef": {"name": "db"}}])),
        "secret 'db'",
    ),
    ("{requiredLabels: [app, owner]}", BASE, "owner"),
]


@pytest.mark.parametrize(("criteria", "obj", "reason"), CASES, ids=[c[0] for c in CASES])
def test_each_criterion_fires_and_stays_quiet(criteria: str, obj: dict, reason: str) -> None:
    policy = policy_with(criteria)
    bad = decide(workload_of(obj), policy, FACTS)
    assert not bad.allowed and reason in bad.message, bad.message
    clean = (
        BASE if obj is not BASE else mutate(lambda s, o: o["metadata"]["labels"].update(owner="x"))
    )
    good = decide(workload_of(clean), policy, FACTS)
    assert good.allowed and not good.violations, good.message


def test_monitor_mode_allows_and_warns() -> None:
    d = decide(
        workload_of(pod(privileged=True)), policy_with("{privileged: true}", mode="monitor"), None
    )
    assert d.allowed and d.warnings and "[monitor]" in d.warnings[0]


def test_rule_mode_overrides_global_mode() -> None:
    policy = parse_policy(
        "spec:\n  mode: monitor\n  rules:\n    - {name: r, mode: protect, criteria: {privileged: true}}\n",
        name="p",
    )
    assert not decide(workload_of(pod(privileged=True)), policy, None).allowed


def test_all_criteria_of_a_rule_must_hold() -> None:
    policy = policy_with("{privileged: true, hostNamespaces: true}")
    assert decide(workload_of(pod(privileged=True)), policy, None).allowed


def test_match_scopes_rules() -> None:
    text = (
        "spec:\n  mode: protect\n  rules:\n    - name: r\n      match: {namespaces: [prod*], excludeNamespaces: [prod-sandbox],"
        " kinds: [Deployment], labels: {pci: cde}}\n      criteria: {privileged: true}\n"
    )
    policy = parse_policy(text, name="p")
    obj = pod(privileged=True)
    assert not decide(workload_of(obj), policy, None).allowed
    obj["metadata"]["namespace"] = "prod-sandbox"
    assert decide(workload_of(obj), policy, None).allowed
    obj["metadata"]["namespace"] = "prod"
    obj["metadata"]["labels"]["pci"] = "no"
    obj["spec"]["template"]["metadata"]["labels"]["pci"] = "no"
    assert decide(workload_of(obj), policy, None).allowed


def test_allow_rules_are_exceptions_checked_first() -> None:
    text = (
        "spec:\n  mode: protect\n  rules:\n    - {name: ok, action: allow, match: {images: ['registry.internal.example/*']}}\n"
        "    - {name: r, criteria: {privileged: true}}\n"
    )
    policy = parse_policy(text, name="p")
    d = decide(workload_of(pod(privileged=True)), policy, None)
    assert d.allowed and d.allowed_by == "ok"
    other = pod(privileged=True)
    other["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/library/busybox:1"
    assert not decide(workload_of(other), policy, None).allowed


@pytest.mark.parametrize(("failure", "allowed"), [("ignore", True), ("fail", False)])
def test_failure_policy_when_the_vulnerability_lookup_breaks(failure: str, allowed: bool) -> None:
    policy = policy_with(
        "{vulnerabilities: {severity: critical}}", extra=f"  failurePolicy: {failure}\n"
    )
    d = decide(workload_of(BASE), policy, Raising())
    assert d.allowed is allowed and d.error and "scan store unreachable" in d.error
    if allowed:
        assert any("could not" in w or "failed" in w for w in d.warnings)


@pytest.mark.parametrize(("failure", "allowed"), [("ignore", True), ("fail", False)])
def test_a_failed_decision_is_worded_like_a_failed_lookup(failure: str, allowed: bool) -> None:
    """The webhook's own failures (a decision past its deadline, or raising) name the policy
    that decided, as a failed lookup's message does."""
    policy = policy_with("{privileged: true}", extra=f"  failurePolicy: {failure}\n")
    review = {"apiVersion": "admission.k8s.io/v1", "request": {"uid": "u-1"}}
    resp = failure_response(review, policy, "decision timed out")["response"]
    said = f"Stockade could not decide (decision timed out); failurePolicy is {failure}"
    assert resp["uid"] == "u-1" and resp["allowed"] is allowed
    assert (resp["warnings"] if allowed else [resp["status"]["message"]]) == [said]


def test_every_container_kind_is_judged() -> None:
    obj = copy.deepcopy(OBJECTS["Pod/shop/debug"])
    obj["spec"]["containers"][0]["securityContext"] = {}
    obj["spec"]["initContainers"] = [
        {"name": "init", "image": "busybox", "securityContext": {"privileged": True}}
    ]
    d = decide(workload_of(obj), policy_with("{privileged: true}"), None)
    assert "initContainer 'init' is privileged" in d.message


def test_cached_source_calls_inner_once() -> None:
    calls = []

    class Counting:
        def summary(self, image, *, budget):
            calls.append(image)
            return ImageVulns(image=image, counts={Severity.HIGH: 1})

    cached = CachedVulnSource(Counting())
    for _ in range(5):
        assert cached.summary("a:1", budget=LookupBudget(1)).count_at_least(Severity.HIGH) == 1
    assert calls == ["a:1"]


def test_vulnerability_facts_answer_for_every_spelling_of_the_image() -> None:
    """Facts given for docker.io/library/nginx:1.25 are the facts of a pod's nginx:1.25 (and of
    nginx, which is :latest, only when given for latest)."""
    facts = FileVulnSource.from_mapping(
        {"docker.io/library/nginx:1.25": {"critical": 1}, "nginx:latest": {"high": 2}}
    )
    for image in ("nginx:1.25", "library/nginx:1.25", "index.docker.io/library/nginx:1.25"):
        s = facts.summary(image, budget=LookupBudget(0))
        assert s is not None and s.count_at_least(Severity.CRITICAL) == 1, image
    latest = facts.summary("docker.io/library/nginx", budget=LookupBudget(0))
    assert latest is not None and latest.count_at_least(Severity.HIGH) == 2
    assert facts.summary("nginx:1.26", budget=LookupBudget(0)) is None


@pytest.mark.parametrize(
    ("ref", "registry", "repo", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("localhost:5000/a/b:2", "localhost:5000", "a/b", "2", None),
        ("ghcr.io/o/r@sha256:ab", "ghcr.io", "o/r", None, "sha256:ab"),
        ("quay.io/o/r:1@sha256:ab", "quay.io", "o/r", "1", "sha256:ab"),
        ("user/app:3", "docker.io", "user/app", "3", None),
    ],
)
def test_image_reference_parsing(ref, registry, repo, tag, digest) -> None:
    r = parse_image(ref)
    assert (r.registry, r.repository, r.tag, r.digest) == (registry, repo, tag, digest)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "spec:\n  rules:\n    - name: r\n      criteria: {privileged: yes-please}\n",
            "t.yaml:4: spec.rules[0].criteria",
        ),
        (
            "spec:\n  rules:\n    - name: r\n      criteria: {nosuch: true}\n",
            "unknown criterion 'nosuch'",
        ),
        ("spec:\n  mode: block\n", "t.yaml:2: spec.mode"),
        (
            "spec:\n  rules:\n    - name: r\n      criteria: {vulnerabilities: {severity: severe}}\n",
            "unknown severity",
        ),
        (
            "spec:\n  rules:\n    - {name: a, criteria: {privileged: true}}\n    - {name: a, criteria: {privileged: true}}\n",
            "unique",
        ),
        (
            "spec:\n  rules:\n    - {name: a, action: allow, criteria: {privileged: true}}\n",
            "takes no criteria",
        ),
        ("spec: [unclosed\n", "t.yaml:2: invalid YAML"),
    ],
)
def test_bad_policies_are_rejected_with_the_line(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_policy(text, name="t.yaml")
    assert fragment in str(err.value)


def test_example_policy_loads() -> None:
    assert len(load_policy(EXAMPLES / "policy.yaml").spec.rules) >= 10


def test_workload_checks_of_the_compliance_pillar_are_a_criterion() -> None:
    policy = policy_with("{workloadChecks: {ids: ['pss.restricted.*'], profile: restricted}}")
    bad = mutate(
        lambda s, o: s["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True)
    )
    d = decide(workload_of(bad), policy, None)
    assert not d.allowed and "pss.restricted.privilege_escalation" in d.message
    seccomp = mutate(
        lambda s, o: s["securityContext"].update(seccompProfile={"type": "RuntimeDefault"})
    )
    assert decide(workload_of(seccomp), policy, None).allowed, decide(
        workload_of(seccomp), policy, None
    ).message
