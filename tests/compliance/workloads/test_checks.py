"""Field semantics the golden folders do not pin down on their own: container-over-pod precedence,
ephemeral containers, every controller kind, Windows and user-namespace relaxations."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stockade.compliance.workloads import (
    BY_ID,
    CHECKS,
    WORKLOAD_KINDS,
    check_object,
    check_objects,
    containers_of,
    pod_spec_of,
    run_check,
)
from stockade.compliance.workloads.cis5 import split_image
from stockade.model import Status, UsageError

GOOD_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def pod(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", **meta},
        "spec": spec,
    }


def bad(check_id: str, obj: dict[str, Any]) -> list[str]:
    result = run_check(BY_ID[check_id], obj)
    assert result is not None
    return result


def test_pod_spec_of_every_controller_kind() -> None:
    spec = {"containers": [{"name": "c", "image": "i"}]}
    template = {"template": {"spec": spec}}
    shapes = {
        "Pod": spec,
        "Deployment": template,
        "ReplicaSet": template,
        "StatefulSet": template,
        "DaemonSet": template,
        "Job": template,
        "ReplicationController": template,
        "CronJob": {"jobTemplate": {"spec": template}},
    }
    assert set(shapes) == WORKLOAD_KINDS
    for kind, body in shapes.items():
        assert pod_spec_of({"kind": kind, "spec": body}) is spec, kind
    assert pod_spec_of({"kind": "ConfigMap", "data": {}}) is None
    assert pod_spec_of({"kind": "Deployment", "spec": {"template": "garbage"}}) is None


def test_ephemeral_and_init_containers_are_checked() -> None:
    spec = {
        "initContainers": [{"name": "i", "image": "x:1"}],
        "containers": [{"name": "c", "image": "x:1"}],
        "ephemeralContainers": [
            {"name": "debug", "image": "x:1", "securityContext": {"privileged": True}}
        ],
    }
    assert [c.path for c in containers_of(spec)] == [
        "spec.initContainers[0]",
        "spec.containers[0]",
        "spec.ephemeralContainers[0]",
    ]
    assert bad("pss.baseline.privileged", pod(spec)) == [
        "spec.ephemeralContainers[0].securityContext.privileged=true"
    ]


def test_run_as_non_root_container_overrides_pod() -> None:
    on_pod = {
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "a"}, {"name": "b"}],
    }
    assert bad("pss.restricted.run_as_non_root", pod(on_pod)) == []
    override = copy.deepcopy(on_pod)
    override["containers"][1]["securityContext"] = {"runAsNonRoot": False}
    assert bad("pss.restricted.run_as_non_root", pod(override)) == [
        "spec.containers[1].securityContext.runAsNonRoot=false"
    ]
    unset = {
        "containers": [{"name": "a", "securityContext": {"runAsNonRoot": True}}, {"name": "b"}]
    }
    assert bad("pss.restricted.run_as_non_root", pod(unset)) == [
        "spec.containers[1].securityContext.runAsNonRoot=<unset>"
    ]
    pod_false = {
        "securityContext": {"runAsNonRoot": False},
        "containers": [{"name": "a", "securityContext": {"runAsNonRoot": True}}],
    }
    assert bad("pss.restricted.run_as_non_root", pod(pod_false)) == [
        "spec.securityContext.runAsNonRoot=false"
    ]


def test_seccomp_restricted_inherits_and_overrides() -> None:
    pod_level = {
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "a"}],
    }
    assert bad("pss.restricted.seccomp", pod(pod_level)) == []
    override = copy.deepcopy(pod_level)
    override["containers"][0]["securityContext"] = {"seccompProfile": {"type": "Unconfined"}}
    assert bad("pss.restricted.seccomp", pod(override)) == [
        "spec.containers[0].securityContext.seccompProfile.type=Unconfined"
    ]
    assert bad("pss.baseline.seccomp", pod(override)) == [
        "spec.containers[0].securityContext.seccompProfile.type=Unconfined"
    ]
    assert bad("pss.restricted.seccomp", pod({"containers": [{"name": "a"}]})) != []


def test_windows_pods_are_exempt_from_linux_only_restricted_controls() -> None:
    spec = {
        "os": {"name": "windows"},
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "a"}],
    }
    for check in (
        "pss.restricted.privilege_escalation",
        "pss.restricted.seccomp",
        "pss.restricted.capabilities",
    ):
        assert bad(check, pod(spec)) == [], check
    linux = dict(spec, os={"name": "linux"})
    assert bad("pss.restricted.privilege_escalation", pod(linux)) != []


def test_user_namespaces_relax_run_as_controls() -> None:
    spec = {"hostUsers": False, "securityContext": {"runAsUser": 0}, "containers": [{"name": "a"}]}
    assert bad("pss.restricted.run_as_user", pod(spec)) == []
    assert bad("pss.restricted.run_as_non_root", pod(spec)) == []
    assert bad("pss.restricted.run_as_user", pod(dict(spec, hostUsers=True))) == [
        "spec.securityContext.runAsUser=0"
    ]


@pytest.mark.parametrize(
    ("caps", "baseline", "restricted"),
    [
        ({"drop": ["ALL"]}, False, False),
        ({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, False, False),
        ({"drop": ["ALL"], "add": ["CHOWN"]}, False, True),
        ({"drop": ["ALL"], "add": ["SYS_ADMIN"]}, True, True),
        ({"add": ["NET_RAW"]}, True, True),
        ({"drop": ["NET_RAW"]}, False, True),
    ],
)
def test_capabilities(caps: dict[str, Any], baseline: bool, restricted: bool) -> None:
    obj = pod({"containers": [{"name": "a", "securityContext": {"capabilities": caps}}]})
    assert bool(bad("pss.baseline.capabilities", obj)) is baseline
    assert bool(bad("pss.restricted.capabilities", obj)) is restricted


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("kernel.shm_rmid_forced", True),
        ("net.ipv4.tcp_keepalive_time", True),
        ("net.ipv4.tcp_rmem", True),
        ("net.core.somaxconn", False),
        ("kernel.msgmax", False),
        ("net.ipv4.ip_forward", False),
    ],
)
def test_sysctls(name: str, ok: bool) -> None:
    obj = pod({"securityContext": {"sysctls": [{"name": name, "value": "1"}]}, "containers": []})
    assert (bad("pss.baseline.sysctls", obj) == []) is ok


@pytest.mark.parametrize(
    ("selinux", "ok"),
    [
        ({"type": "container_t"}, True),
        ({"type": "container_init_t"}, True),
        ({"level": "s0:c1,c2"}, True),
        ({"type": "spc_t"}, False),
        ({"user": "system_u"}, False),
        ({"role": "system_r"}, False),
    ],
)
def test_selinux(selinux: dict[str, str], ok: bool) -> None:
    obj = pod({"containers": [{"name": "a", "securityContext": {"seLinuxOptions": selinux}}]})
    assert (bad("pss.baseline.selinux", obj) == []) is ok


def test_apparmor_annotation_and_field() -> None:
    key = "container.apparmor.security.beta.kubernetes.io/a"
    base = {"containers": [{"name": "a"}]}
    assert bad("pss.baseline.apparmor", pod(base, annotations={key: "localhost/prof"})) == []
    assert bad("pss.baseline.apparmor", pod(base, annotations={key: "unconfined"})) == [
        f"metadata.annotations[{key}]=unconfined"
    ]
    field = {
        "securityContext": {"appArmorProfile": {"type": "Unconfined"}},
        "containers": [{"name": "a"}],
    }
    assert bad("pss.baseline.apparmor", pod(field)) == [
        "spec.securityContext.appArmorProfile.type=Unconfined"
    ]


def test_volume_types_name_each_bad_source() -> None:
    obj = pod(
        {
            "volumes": [
                {"name": "a", "hostPath": {"path": "/"}},
                {"name": "b", "emptyDir": {}},
                {"name": "c", "iscsi": {}},
            ],
            "containers": [],
        }
    )
    assert bad("pss.restricted.volume_types", obj) == [
        "spec.volumes[0].hostPath",
        "spec.volumes[2].iscsi",
    ]
    assert bad("pss.baseline.host_path", obj) == ["spec.volumes[0].hostPath.path=/"]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", ("nginx", None, None)),
        ("nginx:1.2", ("nginx", "1.2", None)),
        ("localhost:5000/a/b", ("localhost:5000/a/b", None, None)),
        ("localhost:5000/a/b:v1@sha256:ab", ("localhost:5000/a/b", "v1", "sha256:ab")),
    ],
)
def test_split_image(image: str, expected: tuple[str, str | None, str | None]) -> None:
    assert split_image(image) == expected


def test_profiles_select_checks() -> None:
    obj = pod({"containers": [{"name": "a", "image": "x@sha256:1"}]})
    baseline = {f.id for f in check_object(obj, profile="baseline")}
    restricted = {f.id for f in check_object(obj, profile="restricted")}
    assert not any(i.startswith("pss.restricted.") for i in baseline)
    assert {c.id for c in CHECKS if c.id.startswith("pss.restricted.")} <= restricted
    with pytest.raises(UsageError):
        check_object(obj, profile="strict")


def test_check_object_ignores_unrelated_kinds_and_garbage() -> None:
    assert check_object({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}) == []
    # nothing crashes on wrongly typed fields: they are not Kubernetes-valid, so nothing is found
    weird = pod({"containers": "nope", "volumes": [1, None], "securityContext": []})
    assert all(f.status in (Status.PASS, Status.FAIL) for f in check_object(weird))


def test_single_object_automount_uses_service_account_from_the_set() -> None:
    workload = pod({"serviceAccountName": "app", "containers": [{"name": "a"}]})
    sa = {
        "kind": "ServiceAccount",
        "metadata": {"name": "app", "namespace": "ns"},
        "automountServiceAccountToken": False,
    }
    alone = {f.id: f.status for f in check_object(workload)}
    together = {f.id: f.status for f in check_objects([sa, workload]) if f.resource.kind == "pod"}
    assert alone["cis.sa.automount_token"] == Status.FAIL
    assert together["cis.sa.automount_token"] == Status.PASS


def test_findings_carry_metadata_and_evidence() -> None:
    (f,) = [
        f
        for f in check_object(pod({"hostPID": True, "containers": []}))
        if f.id == "pss.baseline.host_namespaces"
    ]
    assert f.status == Status.FAIL and f.resource.display() == "pod:ns/p"
    assert f.details.evidence == "spec.hostPID=true" and f.details.remediation
    assert "cis-k8s:5.2.3" in f.compliance


def test_proc_mount_user_namespace_relaxes_baseline_only() -> None:
    spec = {
        "hostUsers": False,
        "containers": [{"name": "a", "securityContext": {"procMount": "Unmasked"}}],
    }
    assert bad("pss.baseline.proc_mount", pod(spec)) == []
    assert bad("pss.restricted.proc_mount", pod(spec)) == [
        "spec.containers[0].securityContext.procMount=Unmasked"
    ]
    assert bad("pss.baseline.proc_mount", pod(dict(spec, hostUsers=True))) != []


def test_unhashable_values_where_strings_belong_fail_cleanly() -> None:
    spec = {
        "securityContext": {"seccompProfile": {"type": ["x"]}, "sysctls": [{"name": {"a": 1}}]},
        "containers": [{"name": "a", "securityContext": {"seccompProfile": {"type": {}}}}],
    }
    assert len(bad("pss.restricted.seccomp", pod(spec))) == 2
    assert len(bad("pss.baseline.sysctls", pod(spec))) == 1
