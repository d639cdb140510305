"""Pod Security Standards controls (baseline and restricted), one function each.

Semantics follow the Pod Security Admission checks: every init, regular and ephemeral container is
inspected, pod-level ``securityContext`` values apply where a container leaves the field unset, and
explicit container values override them. A function returns the offending ``path=value`` strings.
"""

from __future__ import annotations

from typing import Any

from stockade.compliance.workloads.model import Context, PodView

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


def _contexts(pod: PodView) -> list[tuple[str, dict[str, Any]]]:
    """(path, securityContext) for the pod and each container, pod first."""
    out = [(f"{pod.base}.securityContext", pod.security_context)]
    out += [(f"{c.path}.securityContext", c.security_context) for c in pod.containers]
    return out


# -- baseline ------------------------------------------------------------------------------------


def host_process(pod: PodView, _: Context) -> list[str]:
    bad = []
    for path, sc in _contexts(pod):
        if _sc(sc.get("windowsOptions"), "hostProcess") is True:
            bad.append(f"{path}.windowsOptions.hostProcess=true")
    return bad


def host_namespaces(pod: PodView, _: Context) -> list[str]:
    return [
        f"{pod.base}.{f}=true"
        for f in ("hostNetwork", "hostPID", "hostIPC")
        if pod.spec.get(f) is True
    ]


def privileged(pod: PodView, _: Context) -> list[str]:
    return [
        f"{c.path}.securityContext.privileged=true"
        for c in pod.containers
        if c.security_context.get("privileged") is True
    ]


def _caps(c_sc: dict[str, Any], key: str) -> list[str]:
    caps = c_sc.get("capabilities")
    values = caps.get(key) if isinstance(caps, dict) else None
    return [str(v) for v in values] if isinstance(values, list) else []


def capabilities_baseline(pod: PodView, _: Context) -> list[str]:
    bad = []
    for c in pod.containers:
        extra = [
            cap for cap in _caps(c.security_context, "add") if cap not in BASELINE_CAPABILITIES
        ]
        if extra:
            bad.append(f"{c.path}.securityContext.capabilities.add={extra}")
    return bad


def host_path(pod: PodView, _: Context) -> list[str]:
    vols = _list(pod.spec.get("volumes"))
    return [
        f"{pod.base}.volumes[{i}].hostPath.path={v['hostPath'].get('path', '')}"
        for i, v in enumerate(vols)
        if isinstance(v, dict) and isinstance(v.get("hostPath"), dict)
    ]


def host_ports(pod: PodView, _: Context) -> list[str]:
    bad = []
    for c in pod.containers:
        ports = _list(c.spec.get("ports"))
        for i, p in enumerate(ports):
            if isinstance(p, dict) and p.get("hostPort") not in (None, 0):
                bad.append(f"{c.path}.ports[{i}].hostPort={p['hostPort']}")
    return bad


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def host_probes(pod: PodView, _: Context) -> list[str]:
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
                    bad.append(f"{path}.{action}.host={host}")
    return bad


def apparmor(pod: PodView, _: Context) -> list[str]:
    bad = []
    for key, value in pod.annotations.items():
        if str(key).startswith(APPARMOR_ANNOTATION):
            v = str(value or "")
            if v and v != "runtime/default" and not v.startswith("localhost/"):
                bad.append(f"metadata.annotations[{key}]={v}")
    for path, sc in _contexts(pod):
        kind = _sc(sc.get("appArmorProfile"), "type")
        if kind is not None and kind not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{path}.appArmorProfile.type={kind}")
    return bad


def selinux(pod: PodView, _: Context) -> list[str]:
    bad = []
    for path, sc in _contexts(pod):
        opts = sc.get("seLinuxOptions")
        if not isinstance(opts, dict):
            continue
        if str(opts.get("type") or "") not in SELINUX_TYPES:
            bad.append(f"{path}.seLinuxOptions.type={opts['type']}")
        for key in ("user", "role"):
            if opts.get(key):
                bad.append(f"{path}.seLinuxOptions.{key}={opts[key]}")
    return bad


def proc_mount(pod: PodView, ctx: Context) -> list[str]:
    # Since Kubernetes 1.35 baseline accepts any procMount in a user namespace (hostUsers: false).
    return [] if pod.host_users_off else proc_mount_restricted(pod, ctx)


def proc_mount_restricted(pod: PodView, _: Context) -> list[str]:
    return [
        f"{c.path}.securityContext.procMount={c.security_context['procMount']}"
        for c in pod.containers
        if c.security_context.get("procMount") not in (None, "Default")
    ]


def _seccomp_type(sc: dict[str, Any]) -> Any:
    return _sc(sc.get("seccompProfile"), "type")


def seccomp_baseline(pod: PodView, _: Context) -> list[str]:
    return [
        f"{path}.seccompProfile.type=Unconfined"
        for path, sc in _contexts(pod)
        if _seccomp_type(sc) == "Unconfined"
    ]


def sysctls(pod: PodView, _: Context) -> list[str]:
    items = pod.security_context.get("sysctls")
    items = items if isinstance(items, list) else []
    return [
        f"{pod.base}.securityContext.sysctls[{i}].name={s.get('name')}"
        for i, s in enumerate(items)
        if isinstance(s, dict) and not _member(s.get("name"), SAFE_SYSCTLS)
    ]


# -- restricted ----------------------------------------------------------------------------------


def volume_types(pod: PodView, _: Context) -> list[str]:
    bad = []
    vols = _list(pod.spec.get("volumes"))
    for i, v in enumerate(vols):
        if not isinstance(v, dict):
            continue
        for source in v:
            if source != "name" and source not in RESTRICTED_VOLUMES:
                bad.append(f"{pod.base}.volumes[{i}].{source}")
    return bad


def privilege_escalation(pod: PodView, _: Context) -> list[str]:
    if pod.is_windows:
        return []
    return [
        f"{c.path}.securityContext.allowPrivilegeEscalation="
        f"{_show(c.security_context.get('allowPrivilegeEscalation'))}"
        for c in pod.containers
        if c.security_context.get("allowPrivilegeEscalation") is not False
    ]


def run_as_non_root(pod: PodView, _: Context) -> list[str]:
    if pod.host_users_off:
        return []
    pod_value = pod.security_context.get("runAsNonRoot")
    bad = []
    if pod_value is False:
        bad.append(f"{pod.base}.securityContext.runAsNonRoot=false")
    for c in pod.containers:
        value = c.security_context.get("runAsNonRoot")
        if value is False or (value is None and pod_value is not True):
            bad.append(f"{c.path}.securityContext.runAsNonRoot={_show(value)}")
    return bad


def run_as_user(pod: PodView, _: Context) -> list[str]:
    if pod.host_users_off:
        return []
    return [f"{path}.runAsUser=0" for path, sc in _contexts(pod) if sc.get("runAsUser") == 0]


def seccomp_restricted(pod: PodView, _: Context) -> list[str]:
    if pod.is_windows:
        return []
    pod_type = _seccomp_type(pod.security_context)
    bad = []
    if pod_type is not None and not _member(pod_type, GOOD_SECCOMP):
        bad.append(f"{pod.base}.securityContext.seccompProfile.type={pod_type}")
    for c in pod.containers:
        own = _seccomp_type(c.security_context)
        if own is None and _member(pod_type, GOOD_SECCOMP):
            continue  # inherits a good pod-level profile
        if not _member(own, GOOD_SECCOMP):
            bad.append(f"{c.path}.securityContext.seccompProfile.type={_show(own)}")
    return bad


def capabilities_restricted(pod: PodView, _: Context) -> list[str]:
    if pod.is_windows:
        return []
    bad = []
    for c in pod.containers:
        drop = _caps(c.security_context, "drop")
        if "ALL" not in drop:
            bad.append(f"{c.path}.securityContext.capabilities.drop={drop} (missing ALL)")
        extra = [cap for cap in _caps(c.security_context, "add") if cap != "NET_BIND_SERVICE"]
        if extra:
            bad.append(f"{c.path}.securityContext.capabilities.add={extra}")
    return bad


def _show(value: Any) -> str:
    if value is None:
        return "<unset>"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
