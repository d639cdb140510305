"""Pod Security Standards controls (baseline and restricted), one function each.

Semantics follow the Pod Security Admission checks: every init, regular and ephemeral container is
inspected, pod-level ``securityContext`` values apply where a container leaves the field unset, and
explicit container values override them. A function returns the offending values as
:class:`Violation` s (``path=value`` with the container or volume they are about).
"""

from __future__ import annotations

from typing import Any

from stockade.compliance.workloads.model import Context, PodView, Violation
from stockade.k8s.objects import Container

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",  # 1.27
        "net.ipv4.tcp_keepalive_time",  # 1.29
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",  # 1.32
        "net.ipv4.tcp_wmem",
        "net.ipv4.tcp_slow_start_after_idle",  # 1.37
        "net.ipv4.tcp_notsent_lowat",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
GOOD_SECCOMP = frozenset({"RuntimeDefault", "Localhost"})


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _member(value: Any, allowed: frozenset[str]) -> bool:
    """Set membership that tolerates unhashable values (a list where a string belongs)."""
    return isinstance(value, str) and value in allowed


def _sc(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


def _contexts(pod: PodView) -> list[tuple[str, dict[str, Any], Container | None]]:
    """(path, securityContext, container) for the pod (container None) and each container, pod
    first."""
    out: list[tuple[str, dict[str, Any], Container | None]] = [
        (f"{pod.base}.securityContext", pod.security_context, None)
    ]
    out += [(f"{c.path}.securityContext", c.security_context, c) for c in pod.containers]
    return out


def _sc_violation(path: str, value: Any, c: Container | None) -> Violation:
    return Violation(path=path, value=_show(value), container=c)


# -- baseline ------------------------------------------------------------------------------------


def host_process(pod: PodView, _: Context) -> list[Violation]:
    return [
        _sc_violation(f"{path}.windowsOptions.hostProcess", True, c)
        for path, sc, c in _contexts(pod)
        if _sc(sc.get("windowsOptions"), "hostProcess") is True
    ]


def host_namespaces(pod: PodView, _: Context) -> list[Violation]:
    return [
        Violation(path=f"{pod.base}.{f}", value="true")
        for f in ("hostNetwork", "hostPID", "hostIPC")
        if pod.spec.get(f) is True
    ]


def privileged(pod: PodView, _: Context) -> list[Violation]:
    return [
        _sc_violation(f"{c.path}.securityContext.privileged", True, c)
        for c in pod.containers
        if c.security_context.get("privileged") is True
    ]


def _caps(c_sc: dict[str, Any], key: str) -> list[str]:
    caps = c_sc.get("capabilities")
    values = caps.get(key) if isinstance(caps, dict) else None
    return [str(v) for v in values] if isinstance(values, list) else []


def _added(c: Container, extra: list[str]) -> Violation:
    return Violation(
        path=f"{c.path}.securityContext.capabilities.add",
        value=str(extra),
        container=c,
        items=tuple(extra),
    )


def capabilities_baseline(pod: PodView, _: Context) -> list[Violation]:
    bad = []
    for c in pod.containers:
        extra = [
            cap for cap in _caps(c.security_context, "add") if cap not in BASELINE_CAPABILITIES
        ]
        if extra:
            bad.append(_added(c, extra))
    return bad


def host_path(pod: PodView, _: Context) -> list[Violation]:
    vols = _list(pod.spec.get("volumes"))
    return [
        Violation(
            path=f"{pod.base}.volumes[{i}].hostPath.path",
            value=str(v["hostPath"].get("path", "")),
            volume=str(v.get("name", "")),
        )
        for i, v in enumerate(vols)
        if isinstance(v, dict) and isinstance(v.get("hostPath"), dict)
    ]


def host_ports(pod: PodView, _: Context) -> list[Violation]:
    bad = []
    for c in pod.containers:
        ports = _list(c.spec.get("ports"))
        for i, p in enumerate(ports):
            if isinstance(p, dict) and p.get("hostPort") not in (None, 0):
                bad.append(_sc_violation(f"{c.path}.ports[{i}].hostPort", p["hostPort"], c))
    return bad


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def host_probes(pod: PodView, _: Context) -> list[Violation]:
    bad = []
    for c in pod.containers:
        handlers = [(f"{c.path}.{p}", c.spec.get(p)) for p in _PROBES]
        lifecycle = _dict(c.spec.get("lifecycle"))
        handlers += [
            (f"{c.path}.lifecycle.{h}", lifecycle.get(h)) for h in ("postStart", "preStop")
        ]
        for path, handler in handlers:
            for action in ("httpGet", "tcpSocket"):
                host = _sc(_sc(handler, action), "host")
                if host:
                    bad.append(_sc_violation(f"{path}.{action}.host", host, c))
    return bad


def apparmor(pod: PodView, _: Context) -> list[Violation]:
    bad = []
    for key, value in pod.annotations.items():
        if str(key).startswith(APPARMOR_ANNOTATION):
            v = str(value or "")
            if v and v != "runtime/default" and not v.startswith("localhost/"):
                bad.append(Violation(path=f"metadata.annotations[{key}]", value=v))
    for path, sc, c in _contexts(pod):
        kind = _sc(sc.get("appArmorProfile"), "type")
        if kind is not None and kind not in ("RuntimeDefault", "Localhost"):
            bad.append(_sc_violation(f"{path}.appArmorProfile.type", kind, c))
    return bad


def selinux(pod: PodView, _: Context) -> list[Violation]:
    bad = []
    for path, sc, c in _contexts(pod):
        opts = sc.get("seLinuxOptions")
        if not isinstance(opts, dict):
            continue
        if str(opts.get("type") or "") not in SELINUX_TYPES:
            bad.append(_sc_violation(f"{path}.seLinuxOptions.type", opts["type"], c))
        for key in ("user", "role"):
            if opts.get(key):
                bad.append(_sc_violation(f"{path}.seLinuxOptions.{key}", opts[key], c))
    return bad


def proc_mount(pod: PodView, ctx: Context) -> list[Violation]:
    # Since Kubernetes 1.35 baseline accepts any procMount in a user namespace (hostUsers: false).
    return [] if pod.host_users_off else proc_mount_restricted(pod, ctx)


def proc_mount_restricted(pod: PodView, _: Context) -> list[Violation]:
    return [
        _sc_violation(f"{c.path}.securityContext.procMount", c.security_context["procMount"], c)
        for c in pod.containers
        if c.security_context.get("procMount") not in (None, "Default")
    ]


def _seccomp_type(sc: dict[str, Any]) -> Any:
    return _sc(sc.get("seccompProfile"), "type")


def seccomp_baseline(pod: PodView, _: Context) -> list[Violation]:
    return [
        _sc_violation(f"{path}.seccompProfile.type", "Unconfined", c)
        for path, sc, c in _contexts(pod)
        if _seccomp_type(sc) == "Unconfined"
    ]


def sysctls(pod: PodView, _: Context) -> list[Violation]:
    items = pod.security_context.get("sysctls")
    items = items if isinstance(items, list) else []
    return [
        Violation(path=f"{pod.base}.securityContext.sysctls[{i}].name", value=str(s.get("name")))
        for i, s in enumerate(items)
        if isinstance(s, dict) and not _member(s.get("name"), SAFE_SYSCTLS)
    ]


# -- restricted ----------------------------------------------------------------------------------


def volume_types(pod: PodView, _: Context) -> list[Violation]:
    bad = []
    vols = _list(pod.spec.get("volumes"))
    for i, v in enumerate(vols):
        if not isinstance(v, dict):
            continue
        for source in v:
            if source != "name" and source not in RESTRICTED_VOLUMES:
                path = f"{pod.base}.volumes[{i}].{source}"
                bad.append(Violation(path=path, value=None, volume=str(v.get("name", ""))))
    return bad


def privilege_escalation(pod: PodView, _: Context) -> list[Violation]:
    if pod.is_windows:
        return []
    return [
        _sc_violation(
            f"{c.path}.securityContext.allowPrivilegeEscalation",
            c.security_context.get("allowPrivilegeEscalation"),
            c,
        )
        for c in pod.containers
        if c.security_context.get("allowPrivilegeEscalation") is not False
    ]


def run_as_non_root(pod: PodView, _: Context) -> list[Violation]:
    if pod.host_users_off:
        return []
    pod_value = pod.security_context.get("runAsNonRoot")
    pod_user = pod.security_context.get("runAsUser")
    bad = []
    if pod_value is False:
        bad.append(_sc_violation(f"{pod.base}.securityContext.runAsNonRoot", False, None))
    for c in pod.containers:
        value = c.security_context.get("runAsNonRoot")
        if value is False or (value is None and pod_value is not True):
            own_user = c.security_context.get("runAsUser")
            bad.append(
                Violation(
                    path=f"{c.path}.securityContext.runAsNonRoot",
                    value=_show(value),
                    container=c,
                    run_as_user=pod_user if own_user is None else own_user,
                )
            )
    return bad


def run_as_user(pod: PodView, _: Context) -> list[Violation]:
    if pod.host_users_off:
        return []
    bad = []
    for path, sc, c in _contexts(pod):
        if sc.get("runAsUser") != 0:
            continue
        heirs = () if c else tuple(x for x in pod.containers if _unset(x, "runAsUser"))
        bad.append(Violation(path=f"{path}.runAsUser", value="0", container=c, inherited_by=heirs))
    return bad


def _unset(c: Container, key: str) -> bool:
    return c.security_context.get(key) is None


def seccomp_restricted(pod: PodView, _: Context) -> list[Violation]:
    if pod.is_windows:
        return []
    pod_type = _seccomp_type(pod.security_context)
    bad = []
    if pod_type is not None and not _member(pod_type, GOOD_SECCOMP):
        bad.append(_sc_violation(f"{pod.base}.securityContext.seccompProfile.type", pod_type, None))
    for c in pod.containers:
        own = _seccomp_type(c.security_context)
        if own is None and _member(pod_type, GOOD_SECCOMP):
            continue  # inherits a good pod-level profile
        if not _member(own, GOOD_SECCOMP):
            bad.append(_sc_violation(f"{c.path}.securityContext.seccompProfile.type", own, c))
    return bad


def capabilities_restricted(pod: PodView, _: Context) -> list[Violation]:
    if pod.is_windows:
        return []
    bad = []
    for c in pod.containers:
        drop = _caps(c.security_context, "drop")
        if "ALL" not in drop:
            bad.append(
                Violation(
                    path=f"{c.path}.securityContext.capabilities.drop",
                    value=f"{drop} (missing ALL)",
                    container=c,
                )
            )
        extra = [cap for cap in _caps(c.security_context, "add") if cap != "NET_BIND_SERVICE"]
        if extra:
            bad.append(_added(c, extra))
    return bad


def _show(value: Any) -> str:
    if value is None:
        return "<unset>"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
