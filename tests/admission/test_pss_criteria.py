"""The six Pod Security criteria are the compliance pillar's checks: they fire exactly where the
check fails, and their parameters (allowed host paths, named capabilities, explicitOnly) filter the
check's structured evidence."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from stockade.admission.engine import decide
from stockade.admission.policy import parse_policy
from stockade.admission.workload import workload_of
from stockade.compliance.workloads import BY_ID, WORKLOAD_KINDS, violations
from stockade.model import ConfigError

GOLDEN = Path(__file__).parents[1] / "compliance" / "workloads" / "golden"
WORKLOADS = [
    (f"{path.parent.name}/{i}", obj)
    for path in sorted(GOLDEN.glob("*/*.yaml"))
    for i, obj in enumerate(yaml.safe_load_all(path.read_text()))
    if isinstance(obj, dict) and obj.get("kind") in WORKLOAD_KINDS
]


def policy_with(criteria: str):
    return parse_policy(
        f"spec:\n  mode: protect\n  rules:\n    - name: r\n      criteria: {criteria}\n",
        name="t.yaml",
    )


def reasons(criteria: str, obj: dict[str, Any]) -> str:
    """The denial message ('' when allowed)."""
    w = workload_of(obj)
    assert w is not None
    d = decide(w, policy_with(criteria), None)
    return "" if d.allowed else d.message


# criterion -> (the compliance check it is, which of its findings the criterion reports)
SAME_AS_CHECK = {
    "{privileged: true}": ("pss.baseline.privileged", lambda v: True),
    "{hostNamespaces: true}": ("pss.baseline.host_namespaces", lambda v: True),
    "{hostPath: {allowed: []}}": ("pss.baseline.host_path", lambda v: True),
    "{allowPrivilegeEscalation: true}": ("pss.restricted.privilege_escalation", lambda v: True),
    "{capabilities: {add: any}}": ("pss.restricted.capabilities", lambda v: v.field == "add"),
}


@pytest.mark.parametrize("criteria", SAME_AS_CHECK)
def test_criterion_fires_exactly_where_its_compliance_check_fails(criteria: str) -> None:
    check_id, reported = SAME_AS_CHECK[criteria]
    fired = 0
    for where, obj in WORKLOADS:
        expected = [v for v in violations(BY_ID[check_id], obj) or [] if reported(v)]
        assert bool(reasons(criteria, obj)) == bool(expected), (where, expected)
        fired += bool(expected)
    assert fired, "the golden manifests exercise the check"


def pod(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def test_host_path_evidence_names_the_volume_and_allowed_prefixes_filter_it() -> None:
    obj = pod(
        {
            "containers": [{"name": "c", "image": "x:1"}],
            "volumes": [
                {"name": "logs", "hostPath": {"path": "/var/log/app/web"}},
                {"name": "near", "hostPath": {"path": "/var/log/application"}},
                {"name": "etc", "hostPath": {"path": "/etc"}},
            ],
        }
    )
    found = violations(BY_ID["pss.baseline.host_path"], obj) or []
    assert [(v.volume, v.value) for v in found] == [
        ("logs", "/var/log/app/web"),
        ("near", "/var/log/application"),
        ("etc", "/etc"),
    ]
    message = reasons("{hostPath: {allowed: [/var/log/app/]}}", obj)
    assert "volume 'logs'" not in message
    assert "volume 'near' mounts host path /var/log/application" in message
    assert "volume 'etc' mounts host path /etc" in message


def test_run_as_root_follows_the_user_in_effect_for_each_container() -> None:
    obj = pod(
        {
            "securityContext": {"runAsUser": 0},
            "initContainers": [{"name": "setup", "image": "x:1"}],
            "containers": [
                {"name": "app", "image": "x:1", "securityContext": {"runAsUser": 1000}},
                {"name": "side", "image": "x:1"},
            ],
        }
    )
    (pod_level,) = violations(BY_ID["pss.restricted.run_as_user"], obj) or []
    assert pod_level.container is None
    assert [c.name for c in pod_level.inherited_by] == ["setup", "side"]
    message = reasons("{runAsRoot: true}", obj)
    assert "initContainer 'setup' runs as user 0" in message
    assert "container 'side' runs as user 0" in message
    assert "'app'" not in message  # its own runAsUser 1000 overrides the pod's 0

    unset = pod({"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "x:1"}]})
    unset["spec"]["containers"][1]["securityContext"] = {"runAsUser": 1000}
    message = reasons("{runAsRoot: true}", unset)
    assert "container 'a' may run as root (no runAsNonRoot and no runAsUser)" in message
    assert "'b'" not in message  # a non-zero user is not root, though PSS wants runAsNonRoot
    assert not reasons(
        "{runAsRoot: true}", pod({**unset["spec"], "securityContext": {"runAsNonRoot": True}})
    )


def test_run_as_root_follows_pod_security_in_a_user_namespace() -> None:
    """UID 0 under ``hostUsers: false`` maps to an unprivileged host user: PSS allows it, and so
    does the criterion that is that check."""
    spec = {"containers": [{"name": "c", "image": "x:1", "securityContext": {"runAsUser": 0}}]}
    assert "container 'c' runs as user 0" in reasons("{runAsRoot: true}", pod(spec))
    assert not reasons("{runAsRoot: true}", pod({**spec, "hostUsers": False}))


def test_capabilities_are_the_restricted_check_and_names_match_without_cap_prefix() -> None:
    spec = {
        "containers": [
            {
                "name": "c",
                "image": "x:1",
                "securityContext": {
                    "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "CAP_SYS_ADMIN"]}
                },
            },
            {"name": "web", "image": "x:1", "securityContext": {"capabilities": {"drop": []}}},
        ]
    }
    # CHOWN is fine for baseline, not for restricted: `add: any` reports it
    assert "container 'c' adds capabilities CHOWN, CAP_SYS_ADMIN" in reasons(
        "{capabilities: {add: any}}", pod(spec)
    )
    named = reasons("{capabilities: {add: [sys_admin]}}", pod(spec))
    assert "container 'c' adds capabilities CAP_SYS_ADMIN" in named and "CHOWN" not in named
    assert "'web'" not in reasons("{capabilities: {add: any}}", pod(spec))  # drop is not add


def test_a_capability_the_check_never_reports_is_refused_in_the_list() -> None:
    with pytest.raises(ConfigError, match="NET_BIND_SERVICE"):
        policy_with("{capabilities: {add: [SYS_ADMIN, cap_net_bind_service]}}")


def test_allow_privilege_escalation_explicit_only_reports_only_true() -> None:
    base = {"name": "c", "image": "x:1"}
    on = pod({"containers": [{**base, "securityContext": {"allowPrivilegeEscalation": True}}]})
    unset = pod({"containers": [copy.deepcopy(base)]})
    explicit = "{allowPrivilegeEscalation: {explicitOnly: true}}"
    assert "container 'c' sets allowPrivilegeEscalation: true" in reasons(explicit, on)
    assert not reasons(explicit, unset)
    assert "container 'c' does not set allowPrivilegeEscalation: false" in reasons(
        "{allowPrivilegeEscalation: true}", unset
    )
