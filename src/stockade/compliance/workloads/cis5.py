"""CIS Kubernetes Benchmark section 5 policies that can be judged from objects, and image hygiene.

RBAC checks read Roles, ClusterRoles and their bindings; pod checks read the pod spec. Checks that
need several objects at once (namespaces without a NetworkPolicy) live in :mod:`cross`.
"""

from __future__ import annotations

from typing import Any

from stockade.compliance.workloads.model import Context, PodView
from stockade.k8s.objects import metadata, namespace_of

ROLE_KINDS = frozenset({"Role", "ClusterRole"})
BINDING_KINDS = frozenset({"RoleBinding", "ClusterRoleBinding"})
READ_VERBS = frozenset({"get", "list", "watch", "*"})


def _list(value: Any) -> list[Any]:
    """A list field, or nothing when the object has something else there."""
    return value if isinstance(value, list) else []


def _rules(obj: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(i, r) for i, r in enumerate(_list(obj.get("rules"))) if isinstance(r, dict)]


def _strs(rule: dict[str, Any], key: str) -> list[str]:
    v = rule.get(key)
    return [str(x) for x in v] if isinstance(v, list) else []


# -- RBAC (5.1.x) --------------------------------------------------------------------------------


def rbac_wildcards(obj: dict[str, Any], _: Context) -> list[str]:
    bad = []
    for i, rule in _rules(obj):
        for key in ("apiGroups", "resources", "verbs"):
            if "*" in _strs(rule, key):
                bad.append(f"rules[{i}].{key}=['*']")
    return bad


def _grants(rule: dict[str, Any], resource: str, verbs: frozenset[str]) -> bool:
    resources = _strs(rule, "resources")
    groups = _strs(rule, "apiGroups") or [""]
    if resource not in resources and "*" not in resources:
        return False
    if "" not in groups and "*" not in groups:
        return False  # pods and secrets are core-group resources
    return bool(verbs & set(_strs(rule, "verbs")))


def rbac_secrets_access(obj: dict[str, Any], _: Context) -> list[str]:
    return [
        f"rules[{i}] grants {sorted(READ_VERBS & set(_strs(r, 'verbs')))} on secrets"
        for i, r in _rules(obj)
        if _grants(r, "secrets", READ_VERBS)
    ]


def rbac_pod_create(obj: dict[str, Any], _: Context) -> list[str]:
    return [
        f"rules[{i}] grants create on pods"
        for i, r in _rules(obj)
        if _grants(r, "pods", frozenset({"create", "*"}))
    ]


def cluster_admin_binding(obj: dict[str, Any], _: Context) -> list[str]:
    ref = obj.get("roleRef")
    ref = ref if isinstance(ref, dict) else {}
    if ref.get("kind") != "ClusterRole" or ref.get("name") != "cluster-admin":
        return []
    subjects = [s for s in _list(obj.get("subjects")) if isinstance(s, dict)]
    # The built-in binding to the system:masters group is how Kubernetes bootstraps itself.
    others = [
        s for s in subjects if not (s.get("kind") == "Group" and s.get("name") == "system:masters")
    ]
    return [f"subjects: {s.get('kind')}/{s.get('name')} bound to cluster-admin" for s in others]


def default_sa_automount(obj: dict[str, Any], _: Context) -> list[str]:
    """5.1.5 on the ServiceAccount object itself: ``default`` must not mount its token."""
    if metadata(obj).get("name") != "default" or obj.get("automountServiceAccountToken") is False:
        return []
    return [f"automountServiceAccountToken={obj.get('automountServiceAccountToken', '<unset>')}"]


# -- pods (5.1.5, 5.1.6, 5.4.1, 5.6.4) ----------------------------------------------------------


def _sa_name(pod: PodView) -> str:
    return str(pod.spec.get("serviceAccountName") or pod.spec.get("serviceAccount") or "default")


def default_service_account(pod: PodView, _: Context) -> list[str]:
    if _sa_name(pod) != "default":
        return []
    value = pod.spec.get("serviceAccountName") or "<unset>"
    return [f"{pod.base}.serviceAccountName={value}"]


def automount_token(pod: PodView, ctx: Context) -> list[str]:
    value = pod.spec.get("automountServiceAccountToken")
    if value is False:
        return []
    if value is None:
        sa = ctx.service_accounts.get((namespace_of(pod.obj), _sa_name(pod)))
        if sa is not None and sa.get("automountServiceAccountToken") is False:
            return []  # the ServiceAccount turns mounting off and the pod does not turn it back on
        return [f"{pod.base}.automountServiceAccountToken=<unset> (ServiceAccount {_sa_name(pod)})"]
    return [f"{pod.base}.automountServiceAccountToken=true"]


def secrets_in_env(pod: PodView, _: Context) -> list[str]:
    bad = []
    for c in pod.containers:
        for i, env in enumerate(_list(c.spec.get("env"))):
            value_from = env.get("valueFrom") if isinstance(env, dict) else None
            ref = value_from.get("secretKeyRef") if isinstance(value_from, dict) else None
            if isinstance(ref, dict):
                bad.append(
                    f"{c.path}.env[{i}] {env.get('name')} <- secret "
                    f"{ref.get('name')}/{ref.get('key')}"
                )
        for i, src in enumerate(_list(c.spec.get("envFrom"))):
            if isinstance(src, dict) and isinstance(src.get("secretRef"), dict):
                bad.append(f"{c.path}.envFrom[{i}].secretRef.name={src['secretRef'].get('name')}")
    return bad


def default_namespace(obj: dict[str, Any], _: Context) -> list[str]:
    return ["metadata.namespace=default"] if namespace_of(obj) == "default" else []


# -- images --------------------------------------------------------------------------------------


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference; a port in the registry is not a tag."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, tag = image.rsplit(":", 1)
    return image, tag, digest


def image_tag_latest(pod: PodView, _: Context) -> list[str]:
    bad = []
    for c in pod.containers:
        image = str(c.spec.get("image") or "")
        _repo, tag, digest = split_image(image)
        if digest is None and tag in (None, "latest"):
            bad.append(f"{c.path}.image={image}")
    return bad


def image_pull_policy(pod: PodView, _: Context) -> list[str]:
    """A mutable tag pulled IfNotPresent/Never runs whatever a node cached, not what was "
    "reviewed."""
    bad = []
    for c in pod.containers:
        image = str(c.spec.get("image") or "")
        _repo, tag, digest = split_image(image)
        if digest is not None:
            continue
        default = "Always" if tag in (None, "latest") else "IfNotPresent"
        policy = c.spec.get("imagePullPolicy") or default
        if policy != "Always":
            bad.append(f"{c.path}.imagePullPolicy={policy} for {image}")
    return bad
