"""No object, however wrongly typed, makes a check raise: the webhook calls these on whatever an
API client sends."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockade.compliance.workloads import WORKLOAD_KINDS, check_objects
from stockade.model import Status

KEYS = [
    "spec",
    "template",
    "jobTemplate",
    "metadata",
    "containers",
    "initContainers",
    "ephemeralContainers",
    "securityContext",
    "capabilities",
    "add",
    "drop",
    "volumes",
    "hostPath",
    "ports",
    "hostPort",
    "env",
    "envFrom",
    "valueFrom",
    "secretKeyRef",
    "secretRef",
    "image",
    "seccompProfile",
    "type",
    "seLinuxOptions",
    "appArmorProfile",
    "windowsOptions",
    "hostProcess",
    "sysctls",
    "name",
    "namespace",
    "annotations",
    "rules",
    "subjects",
    "roleRef",
    "verbs",
    "resources",
    "apiGroups",
    "livenessProbe",
    "httpGet",
    "host",
    "lifecycle",
    "preStop",
    "procMount",
    "runAsNonRoot",
    "runAsUser",
    "os",
    "hostUsers",
    "serviceAccountName",
    "automountServiceAccountToken",
    "hostNetwork",
    "privileged",
]
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 70000),
    st.sampled_from(["", "ALL", "*", "0", "Unconfined"]),
)
tree = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=40,
)
kinds = st.sampled_from(
    [
        *sorted(WORKLOAD_KINDS),
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ServiceAccount",
        "NetworkPolicy",
        "Namespace",
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=kinds, body=st.dictionaries(st.sampled_from(KEYS), tree, max_size=6))
def test_checks_never_raise_on_wrongly_typed_objects(kind: str, body: dict[str, Any]) -> None:
    obj = {**body, "kind": kind}
    for f in check_objects([obj], profile="restricted"):
        assert f.status in (Status.PASS, Status.FAIL)


container = st.dictionaries(st.sampled_from(KEYS), tree, max_size=8)
pod_spec = st.fixed_dictionaries(
    {"containers": st.one_of(st.lists(container, max_size=3), tree)},
    optional={
        k: tree
        for k in ("securityContext", "volumes", "initContainers", "ephemeralContainers", "os")
    },
)
PATHS = {"Pod": ("spec",), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec")}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(WORKLOAD_KINDS)), spec=pod_spec, meta=tree)
def test_pod_checks_never_raise_on_wrongly_typed_pod_specs(
    kind: str, spec: dict[str, Any], meta: Any
) -> None:
    obj: dict[str, Any] = spec
    for key in reversed(PATHS.get(kind, ("spec", "template", "spec"))):
        obj = {key: obj}
    obj |= {"kind": kind, "metadata": meta}
    findings = check_objects([obj], profile="restricted")
    assert any(f.id.startswith("pss.") for f in findings)
