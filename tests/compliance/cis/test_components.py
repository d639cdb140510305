"""Finding components: process flags, k3s embedded flags, static pod manifests and systemd units
as declared command lines, path candidates and the flag > config > env precedence."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stockade.compliance.cis import loader
from stockade.compliance.cis.components import Resolver, lookup, parse_flags
from stockade.compliance.cis.engine import run
from stockade.compliance.cis.node import Node, Process, open_node


def test_parse_flags_forms() -> None:
    flags = parse_flags(["--a=1", "--b", "2", "-H", "fd://", "-H", "tcp://x", "--bool", "--c=x=y"])
    assert flags == {
        "--a": ["1"],
        "--b": ["2"],
        "-H": ["fd://", "tcp://x"],
        "--bool": ["true"],
        "--c": ["x=y"],
    }


def test_lookup_paths() -> None:
    doc = {"a": {"b": [1, 2]}, "r": [{"p": [{"aescbc": {}}]}, {"p": [{"identity": {}}]}], "t": True}
    assert lookup(doc, "a.b") == ["1", "2"]
    assert lookup(doc, "a.b.1") == "2"
    assert lookup(doc, "t") == "true"
    assert lookup(doc, "r.*.p.0") == ['{"aescbc": {}}', '{"identity": {}}']
    assert lookup(doc, "a.missing") is None


def _node(tmp_path: Path, files: dict[str, str], procs: list[list[str]]) -> Node:
    for path, text in files.items():
        p = tmp_path / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return Node(
        root=tmp_path,
        processes=tuple(Process(pid=i + 1, argv=tuple(a)) for i, a in enumerate(procs)),
        process_source="test",
    )


def test_k3s_embedded_flags_and_roles(tmp_path: Path) -> None:
    node = _node(
        tmp_path,
        {},
        [
            [
                "/usr/local/bin/k3s",
                "server",
                "--kube-apiserver-arg=profiling=false",
                "--kube-apiserver-arg",
                "anonymous-auth=false",
                "--kubelet-arg=read-only-port=0",
            ]
        ],
    )
    r = Resolver(loader.builtin("kubernetes"), node)
    assert r.flag("apiserver", ("--profiling",)) == ("--profiling", ["false"])
    assert r.flag("apiserver", ("--anonymous-auth",)) == ("--anonymous-auth", ["false"])
    assert r.flag("kubelet", ("--read-only-port",)) == ("--read-only-port", ["0"])
    assert {"control-plane", "worker"} <= r.roles()


def test_declared_by_unit_with_drop_ins_and_env_files(tmp_path: Path) -> None:
    """No process list: the kubelet command line comes from kubelet.service, the kubeadm drop-in
    (which resets ExecStart) and the environment file it names."""
    files = {
        "/usr/lib/systemd/system/kubelet.service": "[Service]\nExecStart=/usr/bin/kubelet\n",
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": (
            '[Service]\nEnvironment="KUBELET_CONFIG_ARGS=--config=/etc/k/kc.yaml"\n'
            "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n"
            "ExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_CONFIG_ARGS \\\n  $KUBELET_KUBEADM_ARGS\n"
        ),
        "/var/lib/kubelet/kubeadm-flags.env": 'KUBELET_KUBEADM_ARGS="--anonymous-auth=false"\n',
        "/etc/k/kc.yaml": "readOnlyPort: 10255\n",
    }
    node = _node(tmp_path, files, [])
    r = Resolver(loader.builtin("kubernetes"), node)
    state = r.state("kubelet")
    assert state.source.startswith("systemd unit /usr/lib/systemd/system/kubelet.service")
    assert state.flags == {"--config": ["/etc/k/kc.yaml"], "--anonymous-auth": ["false"]}
    assert r.path("kubelet", "config") == "/etc/k/kc.yaml"  # from the --config flag
    result = run(loader.builtin("kubernetes"), node, only=["4.2.1", "4.2.4"])
    status = {f.id: str(f.status) for f in result.findings}
    assert status == {"k8s.kubelet.anonymous_auth": "PASS", "k8s.kubelet.read_only_port": "WARN"}


def test_static_pod_manifest_declares_flags_without_process_list(tmp_path: Path) -> None:
    manifest = {
        "spec": {
            "containers": [
                {
                    "command": ["kube-apiserver", "--profiling=true"],
                    "args": ["--anonymous-auth=false"],
                }
            ]
        }
    }
    node = _node(
        tmp_path, {"/etc/kubernetes/manifests/kube-apiserver.yaml": json.dumps(manifest)}, []
    )
    result = run(loader.builtin("kubernetes"), node, only=["1.2.1", "1.2.15"])
    got = {f.id: f for f in result.findings}
    assert str(got["k8s.apiserver.profiling"].status) == "FAIL"
    assert "static pod manifest" in got["k8s.apiserver.profiling"].details.evidence  # type: ignore[union-attr]
    assert str(got["k8s.apiserver.anonymous_auth"].status) == "PASS"


def test_running_process_wins_over_manifest(tmp_path: Path) -> None:
    manifest = {"spec": {"containers": [{"command": ["kube-apiserver", "--profiling=true"]}]}}
    node = _node(
        tmp_path,
        {"/etc/kubernetes/manifests/kube-apiserver.yaml": json.dumps(manifest)},
        [["/usr/local/bin/kube-apiserver", "--profiling=false"]],
    )
    result = run(loader.builtin("kubernetes"), node, only=["1.2.15"])
    assert str(result.findings[0].status) == "PASS"
    assert "process 1" in result.findings[0].details.evidence  # type: ignore[union-attr]


def test_processes_json_round_trip(tmp_path: Path) -> None:
    (tmp_path / ".stockade").mkdir()
    (tmp_path / ".stockade" / "processes.json").write_text(
        json.dumps(
            {
                "processes": [
                    {
                        "pid": 7,
                        "cmdline": ["etcd", "--data-dir=/d"],
                        "env": {"ETCD_CERT_FILE": "/c"},
                    }
                ]
            }
        )
    )
    node = open_node(tmp_path)
    assert node.processes[0].argv == ("etcd", "--data-dir=/d")
    assert node.env_of(node.processes[0]) == {"ETCD_CERT_FILE": "/c"}
    r = Resolver(loader.builtin("kubernetes"), node)
    assert r.path("etcd", "datadir") == "/d"


def test_rke2_layout(tmp_path: Path) -> None:
    """RKE2 keeps static pods, certificates and kubeconfigs under /var/lib/rancher/rke2."""
    manifest = {"spec": {"containers": [{"command": ["kube-apiserver", "--profiling=false"]}]}}
    files = {
        "/var/lib/rancher/rke2/agent/pod-manifests/kube-apiserver.yaml": json.dumps(manifest),
        "/var/lib/rancher/rke2/server/tls/server-ca.crt": "x",
        "/var/lib/rancher/rke2/server/cred/scheduler.kubeconfig": "x",
        "/var/lib/rancher/rke2/agent/kubelet.kubeconfig": "x",
        "/var/lib/rancher/rke2/server/db/etcd/member/snap/db": "x",
    }
    node = _node(tmp_path, files, [["/var/lib/rancher/rke2/bin/kubelet", "--anonymous-auth=false"]])
    r = Resolver(loader.builtin("kubernetes"), node)
    assert r.state("apiserver").source.startswith("static pod manifest /var/lib/rancher/rke2/")
    assert r.path("apiserver", "pki") == "/var/lib/rancher/rke2/server/tls"
    assert (
        r.path("scheduler", "kubeconfig")
        == "/var/lib/rancher/rke2/server/cred/scheduler.kubeconfig"
    )
    assert r.path("kubelet", "kubeconfig") == "/var/lib/rancher/rke2/agent/kubelet.kubeconfig"
    assert r.path("etcd", "datadir") == "/var/lib/rancher/rke2/server/db/etcd"
    assert r.roles() == {"control-plane", "worker"}


def test_glob_characters_in_root(tmp_path: Path) -> None:
    root = tmp_path / "node[1]"
    node = _node(root, {"/etc/cni/net.d/10-flannel.conflist": "{}"}, [])
    assert node.expand("/etc/cni/net.d/*") == ["/etc/cni/net.d/10-flannel.conflist"]


def test_procfs_as_process_list(tmp_path: Path) -> None:
    """In a hostPID pod: --root /host --processes /proc (environments read lazily from it)."""
    import os

    import pytest

    from stockade.model import InputError

    node = open_node(tmp_path, Path("/proc"))
    me = next(p for p in node.processes if p.pid == os.getpid())
    assert me.env is None and "PATH" in (node.env_of(me) or {})
    assert node.root == tmp_path.resolve() and not node.live
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a procfs"):
        open_node(tmp_path, tmp_path / "empty")


def test_environment_not_captured_is_error(tmp_path: Path) -> None:
    """etcd takes ETCD_* variables as flags; without its environment the answer is unknown."""
    node = _node(tmp_path, {}, [["etcd", "--data-dir=/var/lib/etcd"]])
    result = run(loader.builtin("kubernetes"), node, only=["2.1", "2.2"])
    got = {f.id: (str(f.status), f.details.reason) for f in result.findings}  # type: ignore[union-attr]
    assert got["k8s.etcd.tls_cert"] == (
        "ERROR",
        "environment of pid 1 is not readable or was not captured",
    )


def test_benchmark_version_from_image_tag(tmp_path: Path) -> None:
    from stockade.compliance.cis.versions import choose

    def node_with(tag: str | None) -> Node:
        d = tmp_path / (tag or "none")
        files = {}
        if tag:
            files["/etc/kubernetes/manifests/kube-apiserver.yaml"] = (
                f"spec:\n  containers:\n  - image: registry.k8s.io/kube-apiserver:{tag}\n"
                "    command: [kube-apiserver]\n"
            )
        return _node(d, files, [])

    assert choose("kubernetes", node_with("v1.33.2"))[0] == "cis-1.12"
    version, why = choose("kubernetes", node_with("v1.30.4"))
    assert version == "cis-1.11"
    assert why == "Kubernetes 1.30 (image tag in /etc/kubernetes/manifests/kube-apiserver.yaml)"
    assert "older than every shipped benchmark" in choose("kubernetes", node_with("v1.26.0"))[1]
    assert choose("kubernetes", node_with(None)) == (
        "cis-1.12",
        "Kubernetes version not found on the node: newest benchmark",
    )
    assert choose("docker", node_with(None))[0] == "cis-1.6"


def _statuses(node: Node, only: list[str], benchmark: str = "kubernetes") -> dict[str, str]:
    return {f.id: str(f.status) for f in run(loader.builtin(benchmark), node, only=only).findings}


def test_a_flag_given_twice_reads_as_the_component_reads_it(tmp_path: Path) -> None:
    """pflag keeps the last value of a one-value flag and appends to a list flag: a command line
    assembled from a base manifest and overrides (kubeadm extraArgs, k3s --kube-apiserver-arg)
    repeats flags, and judging every value given, or one list of the two, was wrong both ways."""
    node = _node(
        tmp_path,
        {},
        [
            [
                "kube-apiserver",
                "--anonymous-auth=true",
                "--anonymous-auth=false",  # runs with false
                "--profiling=false",
                "--profiling=true",  # runs with true
                "--authorization-mode=Node,RBAC",
                "--authorization-mode=Webhook",  # runs with Node,RBAC,Webhook
                "--enable-admission-plugins=NamespaceLifecycle,NodeRestriction",
                "--enable-admission-plugins=EventRateLimit,AlwaysPullImages",
            ],
            [
                "kubelet",
                "--feature-gates=SeccompDefault=true,RotateKubeletServerCertificate=false",
                "--feature-gates=GracefulNodeShutdown=true",
            ],
        ],
    )
    got = _statuses(node, ["1.2.1", "1.2.6", "1.2.7", "1.2.8", "1.2.11", "1.2.12", "1.2.15",
                           "1.2.14", "4.2.11"])  # fmt: skip
    assert got["k8s.apiserver.anonymous_auth"] == "PASS"
    assert got["k8s.apiserver.profiling"] == "FAIL"
    assert got["k8s.apiserver.authorization_not_always_allow"] == "PASS"
    assert got["k8s.apiserver.authorization_node"] == "PASS"
    assert got["k8s.apiserver.authorization_rbac"] == "PASS"
    assert got["k8s.apiserver.always_pull_images"] == "PASS"
    assert got["k8s.apiserver.node_restriction"] == "PASS"
    assert got["k8s.kubelet.rotate_server_certificates"] == "WARN"  # turned off in the first


def test_docker_listening_addresses_under_both_names_are_all_judged(tmp_path: Path) -> None:
    """``--host`` and ``-H`` are one list flag, and pflag takes ``-Hvalue``: a TCP address without
    TLS given either way is found (it passed when the other name came first)."""
    for argv in (
        ["dockerd", "--host", "unix:///var/run/docker.sock", "-H", "tcp://0.0.0.0:2375"],
        ["dockerd", "-H", "fd://", "-Htcp://0.0.0.0:2375"],
    ):
        node = _node(tmp_path, {}, [argv])
        assert _statuses(node, ["2.7"], "docker") == {"docker.daemon.tls": "WARN"}, argv
    node = _node(tmp_path, {}, [["dockerd", "-H", "fd://", "--host=unix:///run/docker.sock"]])
    assert _statuses(node, ["2.7"], "docker") == {"docker.daemon.tls": "PASS"}


# The KubeletConfiguration kubeadm writes to /var/lib/kubelet/config.yaml, as `kubeadm init
# --dry-run` prints it (Kubernetes 1.27-1.30): zero durations are written out as "0s".
KUBEADM_KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
cpuManagerReconcilePeriod: 0s
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
resolvConf: /run/systemd/resolve/resolv.conf
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
"""
KUBEADM_KUBELET = [
    "/usr/bin/kubelet",
    "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
    "--kubeconfig=/etc/kubernetes/kubelet.conf",
    "--config=/var/lib/kubelet/config.yaml",
    "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
]
_KUBELET_AUTH = ["4.2.1", "4.2.2", "4.2.4", "4.2.5"]


def test_kubeadm_kubelet_config_zero_timeout_is_the_default(tmp_path: Path) -> None:
    """The kubelet reads a zero duration in its config file as unset and runs with 4h; only
    --streaming-connection-idle-timeout=0 turns the timeout off."""
    files = {"/var/lib/kubelet/config.yaml": KUBEADM_KUBELET_CONFIG}
    got = _statuses(_node(tmp_path / "a", files, [KUBEADM_KUBELET]), _KUBELET_AUTH)
    assert set(got.values()) == {"PASS"}, got
    node = _node(
        tmp_path / "b", files, [[*KUBEADM_KUBELET, "--streaming-connection-idle-timeout=0"]]
    )
    assert _statuses(node, ["4.2.5"]) == {"k8s.kubelet.streaming_idle_timeout": "WARN"}


def test_kubelet_keys_left_out_take_the_defaults_of_where_they_are_read(tmp_path: Path) -> None:
    """A config file defaults anonymous auth off, Webhook authorization and no read-only port;
    a kubelet without one runs with the command line's defaults: anonymous on, AlwaysAllow and
    the unauthenticated read-only port 10255."""
    sparse = "\n".join(
        line
        for line in KUBEADM_KUBELET_CONFIG.splitlines()
        if not line.startswith(("authentication:", "authorization:", "  "))
    )
    node = _node(tmp_path / "a", {"/var/lib/kubelet/config.yaml": sparse}, [KUBEADM_KUBELET])
    result = run(loader.builtin("kubernetes"), node, only=["4.2.1", "4.2.2", "4.2.4"])
    assert {str(f.status) for f in result.findings} == {"PASS"}
    assert all("the config file's default" in f.details.evidence for f in result.findings)  # type: ignore[union-attr]
    bare = ["/usr/bin/kubelet", "--kubeconfig=/etc/kubernetes/kubelet.conf"]
    got = _statuses(_node(tmp_path / "b", {}, [bare]), ["4.2.1", "4.2.2", "4.2.4"])
    assert got == {
        "k8s.kubelet.anonymous_auth": "FAIL",
        "k8s.kubelet.authorization_mode": "FAIL",
        "k8s.kubelet.read_only_port": "WARN",  # the benchmark does not score 4.2.4
    }


@pytest.mark.root
def test_root_owned_files_are_root_without_an_etc_passwd(tmp_path: Path) -> None:
    """A --root tree holding only /etc/kubernetes (no /etc/passwd): uid and gid 0 are root."""
    node = _node(tmp_path, {"/etc/kubernetes/manifests/kube-apiserver.yaml": "{}"}, [])
    os.chown(tmp_path / "etc/kubernetes/manifests/kube-apiserver.yaml", 0, 0)
    assert node.stat("/etc/kubernetes/manifests/kube-apiserver.yaml").owner == "root:root"
    os.chown(tmp_path / "etc/kubernetes/manifests/kube-apiserver.yaml", 1000, 1000)
    assert node.stat("/etc/kubernetes/manifests/kube-apiserver.yaml").owner == "1000:1000"


@pytest.mark.parametrize(
    "text",
    [
        "spec: []",
        "spec: {containers: [{command: kube-apiserver --profiling=true}]}",
        "spec: {containers: [{command: [kube-apiserver], args: {profiling: true}}]}",
    ],
)
def test_a_broken_static_pod_manifest_is_a_result_not_a_crash(tmp_path: Path, text: str) -> None:
    node = _node(tmp_path, {"/etc/kubernetes/manifests/kube-apiserver.yaml": text}, [])
    got = _statuses(node, ["1.2.15"])
    assert got["k8s.apiserver.profiling"] in ("NOT_APPLICABLE", "FAIL")


_RUNNING = {"ID": "4f1c2a9e8b7d", "Name": "/web", "State": {"Running": True}}


@pytest.mark.parametrize(
    ("config", "hostconfig", "status"),
    [
        ({**_RUNNING, "State": "running"}, {}, "ERROR"),
        (_RUNNING, ["Privileged"], "ERROR"),
        ({**_RUNNING, "MountPoints": ["/var"]}, {"SecurityOpt": True, "Binds": 1}, None),
        (_RUNNING, {"PortBindings": {"80/tcp": "8080"}, "SecurityOpt": "seccomp=x"}, None),
    ],
)
def test_odd_container_configurations_are_results_not_crashes(
    tmp_path: Path, config: dict, hostconfig: object, status: str | None
) -> None:
    """Shapes dockerd never writes (a hand-edited or corrupted container folder): the container
    checks say ERROR (not a configuration) or read what is usable; the run goes on."""
    files = {
        "/var/lib/docker/containers/4f1c/config.v2.json": json.dumps(config),
        "/var/lib/docker/containers/4f1c/hostconfig.json": json.dumps(hostconfig),
    }
    got = _statuses(_node(tmp_path, files, [["dockerd"]]), ["5"], "docker")
    assert got
    if status:
        assert "ERROR" in got.values()


def test_kubelet_config_drop_ins_are_merged_over_the_config_file(tmp_path: Path) -> None:
    """--config-dir (beta and on by default since Kubernetes 1.30): the *.conf files, in name
    order, override the config file key by key; without the flag the directory is not read."""
    files = {
        "/var/lib/kubelet/config.yaml": KUBEADM_KUBELET_CONFIG,
        "/etc/kubernetes/kubelet.conf.d/10-debug.conf": (
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
            "authentication: {anonymous: {enabled: true}}\nreadOnlyPort: 10255\n"
        ),
        "/etc/kubernetes/kubelet.conf.d/20-port.conf": "readOnlyPort: 0\n",
        "/etc/kubernetes/kubelet.conf.d/30-ignored.yaml": "authorization: {mode: AlwaysAllow}\n",
    }
    with_dir = [*KUBEADM_KUBELET, "--config-dir=/etc/kubernetes/kubelet.conf.d"]
    node = _node(tmp_path / "a", files, [with_dir])
    result = run(loader.builtin("kubernetes"), node, only=["4.2.1", "4.2.2", "4.2.3", "4.2.4"])
    got = {f.id: str(f.status) for f in result.findings}
    assert got == {
        "k8s.kubelet.anonymous_auth": "FAIL",  # 10-debug.conf turns it on
        "k8s.kubelet.authorization_mode": "PASS",  # a .yaml file is not a drop-in
        "k8s.kubelet.client_ca_file": "PASS",  # the config file's key, not overridden
        "k8s.kubelet.read_only_port": "PASS",  # 20-port.conf comes last
    }
    anonymous = next(f for f in result.findings if f.id == "k8s.kubelet.anonymous_auth")
    assert "10-debug.conf" in anonymous.details.evidence  # type: ignore[union-attr]
    got = _statuses(_node(tmp_path / "b", files, [KUBEADM_KUBELET]), ["4.2.1"])
    assert got == {"k8s.kubelet.anonymous_auth": "PASS"}


def test_structured_authorization_config_names_the_authorizers(tmp_path: Path) -> None:
    """Kubernetes 1.32 (GA): --authorization-config replaces --authorization-mode; the
    authorizers of its AuthorizationConfiguration are the modes."""
    config = (
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\n"
        "authorizers:\n  - {type: Node, name: node}\n  - {type: RBAC, name: rbac}\n"
    )
    argv = ["kube-apiserver", "--authorization-config=/etc/kubernetes/authz.yaml"]
    node = _node(tmp_path / "a", {"/etc/kubernetes/authz.yaml": config}, [argv])
    got = _statuses(node, ["1.2.6", "1.2.7", "1.2.8"])
    assert set(got.values()) == {"PASS"}, got
    loose = config.replace("{type: RBAC, name: rbac}", "{type: AlwaysAllow, name: all}")
    node = _node(tmp_path / "b", {"/etc/kubernetes/authz.yaml": loose}, [argv])
    assert _statuses(node, ["1.2.6", "1.2.7", "1.2.8"]) == {
        "k8s.apiserver.authorization_not_always_allow": "FAIL",
        "k8s.apiserver.authorization_node": "PASS",
        "k8s.apiserver.authorization_rbac": "FAIL",
    }


# etcd.conf.yml.sample (etcd-io/etcd) as a node would have it, TLS settings filled in
ETCD_CONF = """name: 'cp-1'
data-dir: /srv/etcd
listen-client-urls: https://10.0.0.5:2379
client-transport-security:
  cert-file: /etc/etcd/pki/server.crt
  key-file: /etc/etcd/pki/server.key
  client-cert-auth: true
  trusted-ca-file: /etc/etcd/pki/ca.crt
  auto-tls: false
peer-transport-security:
  cert-file: /etc/etcd/pki/peer.crt
  key-file: /etc/etcd/pki/peer.key
  client-cert-auth: true
  trusted-ca-file: /etc/etcd/pki/ca.crt
  auto-tls: false
"""
ETCD_CHECKS = ["2.1", "2.2", "2.3", "2.4", "2.5", "2.6"]


def test_etcd_reads_its_config_file_instead_of_its_flags(tmp_path: Path) -> None:
    """etcd ignores its flags and environment once --config-file (or $ETCD_CONFIG_FILE) names a
    file: the checks read the file's keys, and a flag next to it proves nothing."""
    files = {"/etc/etcd/etcd.conf.yml": ETCD_CONF, "/srv/etcd/member/wal/0.wal": ""}
    argv = ["/usr/local/bin/etcd", "--config-file=/etc/etcd/etcd.conf.yml"]
    node = _node(tmp_path / "a", files, [argv])
    assert set(_statuses(node, ETCD_CHECKS).values()) == {"PASS"}
    assert Resolver(loader.builtin("kubernetes"), node).path("etcd", "datadir") == "/srv/etcd"

    weak = ETCD_CONF.replace("client-cert-auth: true", "client-cert-auth: n").replace(
        "auto-tls: false", "auto-tls: on"
    )
    hardened_flags = [
        *argv,
        "--client-cert-auth=true",
        "--peer-client-cert-auth=true",
        "--auto-tls=false",
        "--peer-auto-tls=false",
    ]
    node = _node(tmp_path / "b", {**files, "/etc/etcd/etcd.conf.yml": weak}, [hardened_flags])
    assert _statuses(node, ETCD_CHECKS) == {
        "k8s.etcd.tls_cert": "PASS",
        "k8s.etcd.client_cert_auth": "FAIL",
        "k8s.etcd.auto_tls": "FAIL",
        "k8s.etcd.peer_tls_cert": "PASS",
        "k8s.etcd.peer_client_cert_auth": "FAIL",
        "k8s.etcd.peer_auto_tls": "FAIL",
    }

    bare = "name: cp-1\nlisten-client-urls: http://0.0.0.0:2379\n"
    flags = ["/usr/local/bin/etcd", "--cert-file=/x.crt", "--key-file=/x.key"]
    node = Node(
        root=_node(tmp_path / "c", {"/etc/etcd/bare.yml": bare}, []).root,
        processes=(
            Process(pid=7, argv=tuple(flags), env={"ETCD_CONFIG_FILE": "/etc/etcd/bare.yml"}),
        ),
        process_source="test",
    )
    assert _statuses(node, ["2.1", "2.3"]) == {
        "k8s.etcd.tls_cert": "FAIL",
        "k8s.etcd.auto_tls": "PASS",
    }


def test_etcd_without_a_config_file_reads_flags_and_environment(tmp_path: Path) -> None:
    argv = ["/usr/local/bin/etcd", "--cert-file=/x.crt", "--key-file=/x.key"]
    node = Node(
        root=_node(tmp_path, {}, []).root,
        processes=(Process(pid=7, argv=tuple(argv), env={"ETCD_CLIENT_CERT_AUTH": "true"}),),
        process_source="test",
    )
    assert _statuses(node, ["2.1", "2.2"]) == {
        "k8s.etcd.tls_cert": "PASS",
        "k8s.etcd.client_cert_auth": "PASS",
    }


def test_anonymous_auth_in_the_structured_authentication_config(tmp_path: Path) -> None:
    """Kubernetes 1.30+: anonymous authentication can be set in the AuthenticationConfiguration
    that --authentication-config names (and then not with --anonymous-auth). The check is not
    scored: a failure is a WARN."""
    config = (
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n"
        "anonymous:\n  enabled: {enabled}\n  conditions:\n  - path: /livez\n"
    )
    argv = [
        "kube-apiserver",
        "--authentication-config=/etc/kubernetes/authn.yaml",
        "--authorization-config=/etc/kubernetes/authz.yaml",
    ]
    authz = "kind: AuthorizationConfiguration\nauthorizers:\n  - {type: RBAC, name: rbac}\n"
    for n, (enabled, status) in enumerate([("false", "PASS"), ("true", "WARN"), ("y", "WARN")]):
        files = {
            "/etc/kubernetes/authn.yaml": config.replace("{enabled}", enabled),
            "/etc/kubernetes/authz.yaml": authz,
        }
        node = _node(tmp_path / str(n), files, [argv])
        got = _statuses(node, ["1.2.1", "1.2.8"])
        assert got == {
            "k8s.apiserver.anonymous_auth": status,
            "k8s.apiserver.authorization_rbac": "PASS",
        }, enabled


KUBEADM_DROPIN = (  # kubeadm's 10-kubeadm.conf, as the kubeadm package installs it
    "# Note: This dropin only works with kubeadm and kubelet v1.11+\n[Service]\n"
    'Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/'
    'bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"\n'
    'Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"\n'
    "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n"
    "EnvironmentFile=-/etc/default/kubelet\n"
    "ExecStart=\n"
    "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
    "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n"
)
KUBEADM_UNIT_FILES = {
    "/usr/lib/systemd/system/kubelet.service": (
        "[Unit]\nDescription=kubelet: The Kubernetes Node Agent\n\n[Service]\n"
        "ExecStart=/usr/bin/kubelet\nRestart=always\n"
    ),
    "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": KUBEADM_DROPIN,
    "/var/lib/kubelet/kubeadm-flags.env": (
        'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/'
        'containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10"\n'
    ),
    "/var/lib/kubelet/config.yaml": (
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "authentication:\n  anonymous:\n    enabled: false\n"
    ),
}


def test_environment_files_override_environment_lines_in_any_drop_in(tmp_path: Path) -> None:
    """systemd: variables from EnvironmentFile= override Environment=, wherever the lines are; a
    later drop-in's Environment= does not beat /etc/default/kubelet."""
    files = {
        **KUBEADM_UNIT_FILES,
        "/etc/default/kubelet": "KUBELET_EXTRA_ARGS=--anonymous-auth=true\n",
        "/etc/systemd/system/kubelet.service.d/20-hardening.conf": (
            '[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--anonymous-auth=false"\n'
        ),
    }
    node = _node(tmp_path, files, [])
    r = Resolver(loader.builtin("kubernetes"), node)
    assert r.flag("kubelet", ("--anonymous-auth",)) == ("--anonymous-auth", ["true"])
    assert r.flag("kubelet", ("--container-runtime-endpoint",)) == (
        "--container-runtime-endpoint",
        ["unix:///var/run/containerd/containerd.sock"],
    )
    assert _statuses(node, ["4.2.1"]) == {"k8s.kubelet.anonymous_auth": "FAIL"}


def test_drop_ins_apply_in_name_order_across_unit_folders(tmp_path: Path) -> None:
    """A vendor drop-in in /usr/lib named 20-... comes after /etc's 10-kubeadm.conf (systemd sorts
    drop-ins by name across folders); one of the same name in /etc masks it."""
    vendor = "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --anonymous-auth=true\n"
    files = {
        **KUBEADM_UNIT_FILES,
        "/usr/lib/systemd/system/kubelet.service.d/20-vendor.conf": vendor,
    }
    node = _node(tmp_path / "a", files, [])
    assert _statuses(node, ["4.2.1"]) == {"k8s.kubelet.anonymous_auth": "FAIL"}
    masked = {**files, "/etc/systemd/system/kubelet.service.d/20-vendor.conf": "[Service]\n"}
    node = _node(tmp_path / "b", masked, [])
    assert _statuses(node, ["4.2.1"]) == {"k8s.kubelet.anonymous_auth": "PASS"}


def test_braced_variables_are_one_argument_and_bare_ones_are_split(tmp_path: Path) -> None:
    """systemd splits "$VAR" (a whole word) at white space and keeps "${VAR}" as one argument."""
    from stockade.compliance.cis.systemd import read_service

    unit = (
        "[Service]\nEnvironment='A=--read-only-port=0 --anonymous-auth=false' B=x C=\n"
        "ExecStart=/usr/bin/kubelet $A ${A} --name=${B}$$ --v=$B $C $UNSET\n"
    )
    node = _node(tmp_path, {"/etc/systemd/system/kubelet.service": unit}, [])
    service = read_service(node, "/etc/systemd/system/kubelet.service")
    assert service is not None
    assert service.argv == (
        "/usr/bin/kubelet",
        "--read-only-port=0",
        "--anonymous-auth=false",
        "--read-only-port=0 --anonymous-auth=false",
        "--name=x$",
        "--v=$B",
    )


# etcd as a systemd service configured by its environment (the etcd package's etcd.service and
# /etc/etcd/etcd.conf, as Kubernetes the hard way and RHEL hosts run it)
ETCD_SERVICE = (
    "[Unit]\nDescription=Etcd Server\n\n[Service]\nType=notify\nWorkingDirectory=/var/lib/etcd/\n"
    "EnvironmentFile=-/etc/etcd/etcd.conf\nUser=etcd\n"
    "ExecStart=/usr/bin/etcd\nRestart=on-failure\n"
)
ETCD_ENV = (
    'ETCD_NAME="cp-1"\nETCD_DATA_DIR="/srv/etcd/default.etcd"\n'
    "ETCD_CERT_FILE=/etc/kubernetes/certs/server.crt\nETCD_KEY_FILE=/etc/kubernetes/certs/server.key\n"
    "ETCD_CLIENT_CERT_AUTH=true\nETCD_TRUSTED_CA_FILE=/etc/kubernetes/certs/ca.crt\n"
    "ETCD_PEER_AUTO_TLS=true\n"
)


def test_a_declared_service_environment_feeds_the_env_tests(tmp_path: Path) -> None:
    files = {"/usr/lib/systemd/system/etcd.service": ETCD_SERVICE, "/etc/etcd/etcd.conf": ETCD_ENV}
    node = _node(tmp_path, files, [])
    assert _statuses(node, ["2.1", "2.2", "2.3", "2.6"]) == {
        "k8s.etcd.tls_cert": "PASS",
        "k8s.etcd.client_cert_auth": "PASS",
        "k8s.etcd.auto_tls": "PASS",
        "k8s.etcd.peer_auto_tls": "FAIL",
    }
    r = Resolver(loader.builtin("kubernetes"), node)
    assert r.path("etcd", "datadir") == "/srv/etcd/default.etcd"


def test_a_static_pod_manifest_declares_its_environment(tmp_path: Path) -> None:
    manifest = {
        "spec": {
            "containers": [
                {
                    "command": ["etcd", "--cert-file=/a.crt", "--key-file=/a.key"],
                    "env": [
                        {"name": "ETCD_CLIENT_CERT_AUTH", "value": "true"},
                        {"name": "ETCD_PEER_AUTO_TLS", "value": "true"},
                    ],
                }
            ]
        }
    }
    node = _node(tmp_path, {"/etc/kubernetes/manifests/etcd.yaml": json.dumps(manifest)}, [])
    assert _statuses(node, ["2.1", "2.2", "2.6"]) == {
        "k8s.etcd.tls_cert": "PASS",
        "k8s.etcd.client_cert_auth": "PASS",
        "k8s.etcd.peer_auto_tls": "FAIL",
    }


@pytest.mark.parametrize(
    ("gates", "config", "kubelet", "controller_manager"),
    [
        (None, None, "PASS", "PASS"),
        ("RotateKubeletServerCertificate=true", None, "PASS", "PASS"),
        ("RotateKubeletServerCertificate=false", None, "WARN", "FAIL"),
        ("RotateKubeletServerCertificate=0", None, "WARN", "FAIL"),
        ("Foo=true, RotateKubeletServerCertificate = F", None, "WARN", "FAIL"),
        ("RotateKubeletServerCertificate=False,Foo=true", None, "WARN", "FAIL"),
        ("FooRotateKubeletServerCertificate=false", None, "PASS", "PASS"),  # another gate
        (None, "false", "WARN", "PASS"),
        ("Foo=true", "false", "WARN", "PASS"),  # the flag leaves the gate to the config file
        ("RotateKubeletServerCertificate=1", "false", "PASS", "PASS"),  # the flag's gate wins
    ],
)
def test_feature_gates_are_read_as_the_components_read_them(
    tmp_path: Path, gates: str | None, config: str | None, kubelet: str, controller_manager: str
) -> None:
    """A gate's value is read by strconv.ParseBool, and the kubelet's --feature-gates override its
    config file's featureGates key by key. (4.2.11 is not scored: a failure is a WARN.)"""
    flags = [f"--feature-gates={gates}"] if gates else []
    argv = ["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml", *flags]
    text = "kind: KubeletConfiguration\n"
    text += f"featureGates:\n  RotateKubeletServerCertificate: {config}\n" if config else ""
    node = _node(tmp_path, {"/var/lib/kubelet/config.yaml": text}, [argv])
    assert _statuses(node, ["4.2.11"]) == {"k8s.kubelet.rotate_server_certificates": kubelet}
    node = _node(tmp_path / "cm", {}, [["/usr/local/bin/kube-controller-manager", *flags]])
    assert _statuses(node, ["1.3.6"]) == {
        "k8s.controller_manager.rotate_kubelet_server_certificate": controller_manager
    }


def test_k3s_reads_component_flags_from_its_config_file_before_the_command_line(
    tmp_path: Path,
) -> None:
    """k3s puts the settings of /etc/rancher/k3s/config.yaml (and config.yaml.d/*.yaml, where a
    ``key+`` appends) before its command line: list flags add up, the command line's last value
    of a one-value flag wins."""
    files = {
        "/etc/rancher/k3s/config.yaml": (
            "write-kubeconfig-mode: '0644'\n"
            "kube-apiserver-arg:\n  - enable-admission-plugins=AlwaysAdmit\n  - profiling=true\n"
        ),
        "/etc/rancher/k3s/config.yaml.d/50-audit.yaml": (
            "kube-apiserver-arg+:\n  - audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log\n"
        ),
    }
    argv = ["/usr/local/bin/k3s", "server", "--kube-apiserver-arg=profiling=false"]
    node = _node(tmp_path, files, [argv])
    assert _statuses(node, ["1.2.10", "1.2.15", "1.2.16"]) == {
        "k8s.apiserver.always_admit": "FAIL",
        "k8s.apiserver.profiling": "PASS",
        "k8s.apiserver.audit_log_path": "PASS",
    }
    other = _node(tmp_path / "c", {"/srv/k3s.yaml": "kube-apiserver-arg: [profiling=false]\n"}, [])
    node = Node(
        root=other.root,
        processes=(Process(pid=9, argv=("/usr/local/bin/k3s", "server", "-c", "/srv/k3s.yaml")),),
        process_source="test",
    )
    assert _statuses(node, ["1.2.15"]) == {"k8s.apiserver.profiling": "PASS"}


def test_etcd_reads_single_dash_flags_as_go_does(tmp_path: Path) -> None:
    """etcd parses with Go's flag package, where -auto-tls=true is --auto-tls=true."""
    argv = ["/usr/local/bin/etcd", "-cert-file=/a.crt", "-key-file", "/a.key", "-auto-tls=true",
            "--client-cert-auth=true", "-peer-auto-tls"]  # fmt: skip
    node = _node(tmp_path, {}, [argv])
    assert _statuses(node, ["2.1", "2.2", "2.3", "2.6"]) == {
        "k8s.etcd.tls_cert": "PASS",
        "k8s.etcd.client_cert_auth": "PASS",
        "k8s.etcd.auto_tls": "FAIL",
        "k8s.etcd.peer_auto_tls": "FAIL",
    }


def test_a_kubelet_without_config_reads_no_config_file(tmp_path: Path) -> None:
    """The kubelet reads a config file only when --config names one: a file at the usual place
    does not configure a kubelet started without it (the command-line defaults apply)."""
    files = {
        "/var/lib/kubelet/config.yaml": (
            "kind: KubeletConfiguration\nauthentication:\n  anonymous:\n    enabled: false\n"
        )
    }
    node = _node(tmp_path / "a", files, [["/usr/bin/kubelet", "--v=2"]])
    assert _statuses(node, ["4.2.1"]) == {"k8s.kubelet.anonymous_auth": "FAIL"}
    argv = ["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"]
    node = _node(tmp_path / "b", files, [argv])
    assert _statuses(node, ["4.2.1"]) == {"k8s.kubelet.anonymous_auth": "PASS"}
    # k3s starts its kubelet with --config-dir DATA_DIR/agent/etc/kubelet.conf.d and no --config
    # (k3s 1.32+, pkg/daemons/agent/agent_linux.go): /var/lib/kubelet/config.yaml is not read, the
    # drop-ins are (k3s writes its defaults to 00-k3s-defaults.conf there)
    opened = {
        **files,
        "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/00-k3s-defaults.conf": (
            "kind: KubeletConfiguration\nauthentication:\n  anonymous:\n    enabled: true\n"
        ),
    }
    node = _node(tmp_path / "c", opened, [["/usr/local/bin/k3s", "agent"]])
    assert _statuses(node, ["4.2.1", "4.2.4"]) == {
        "k8s.kubelet.anonymous_auth": "FAIL",
        "k8s.kubelet.read_only_port": "PASS",  # k3s passes --read-only-port=0 itself
    }
    dropin = {
        "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/00-k3s-defaults.conf": files[
            "/var/lib/kubelet/config.yaml"
        ]
    }
    node = _node(tmp_path / "d", dropin, [["/usr/local/bin/k3s", "agent"]])
    got = _findings(node, ["4.2.1"])["k8s.kubelet.anonymous_auth"]
    assert str(got.status) == "PASS"
    assert "kubelet.conf.d/00-k3s-defaults.conf" in got.details.evidence  # type: ignore[attr-defined]


def test_a_control_plane_of_systemd_services_is_found_by_its_units(tmp_path: Path) -> None:
    """Kubernetes the hard way: kube-apiserver, the scheduler, the kubelet and kube-proxy run as
    systemd services, their flags on continued ExecStart= lines."""
    files = {
        "/etc/systemd/system/kube-apiserver.service": (
            "[Unit]\nDescription=Kubernetes API Server\n\n[Service]\n"
            "ExecStart=/usr/local/bin/kube-apiserver \\\n  --allow-privileged=true \\\n"
            "  --authorization-mode=Node,RBAC \\\n  --profiling=false \\\n  --v=2\n"
            "Restart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n"
        ),
        "/etc/systemd/system/kube-scheduler.service": (
            "[Service]\nExecStart=/usr/local/bin/kube-scheduler \\\n"
            "  --config=/etc/kubernetes/config/kube-scheduler.yaml \\\n  --v=2\n"
        ),
        "/etc/systemd/system/kube-proxy.service": (
            "[Service]\nExecStart=/usr/local/bin/kube-proxy \\\n"
            "  --config=/var/lib/kube-proxy/kube-proxy-config.yaml\n"
        ),
        "/etc/systemd/system/kubelet.service": (
            "[Service]\nExecStart=/usr/local/bin/kubelet \\\n"
            "  --config=/var/lib/kubelet/kubelet-config.yaml \\\n  --v=2\n"
        ),
        "/var/lib/kube-proxy/kube-proxy-config.yaml": (
            "kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
            "metricsBindAddress: 0.0.0.0:10249\n"
        ),
    }
    node = _node(tmp_path, files, [])
    assert _statuses(node, ["1.2.7", "1.2.15", "1.4.1", "4.3.1"]) == {
        "k8s.apiserver.authorization_node": "PASS",
        "k8s.apiserver.profiling": "PASS",
        "k8s.scheduler.profiling": "FAIL",
        "k8s.proxy.metrics_bind_address": "FAIL",
    }


_BASE = Path(__file__).resolve().parents[1] / "golden" / "_base" / "kubeadm" / "root"


def _manifest_without(name: str, drop: str) -> str:
    """A static pod manifest of the kubeadm fixture node with one command line flag left out."""
    text = (_BASE / "etc/kubernetes/manifests" / name).read_text()
    kept = [line for line in text.splitlines() if not line.strip().startswith(f"- {drop}")]
    assert len(kept) == len(text.splitlines()) - 1, f"{drop} not in {name}"
    return "\n".join(kept) + "\n"


def test_an_unset_bind_address_is_the_default_every_address(tmp_path: Path) -> None:
    """The controller manager and the scheduler listen on 0.0.0.0 unless --bind-address says
    otherwise, so a manifest without the flag fails 1.3.7 and 1.4.2 and the evidence names the
    default; k3s passes --bind-address=127.0.0.1 to both itself unless the user overrides it."""
    files = {
        "/etc/kubernetes/manifests/kube-controller-manager.yaml": _manifest_without(
            "kube-controller-manager.yaml", "--bind-address"
        ),
        "/etc/kubernetes/manifests/kube-scheduler.yaml": _manifest_without(
            "kube-scheduler.yaml", "--bind-address"
        ),
    }
    result = run(
        loader.builtin("kubernetes"), _node(tmp_path / "a", files, []), only=["1.3.7", "1.4.2"]
    )
    got = {f.id: f for f in result.findings}
    for cid in ("k8s.controller_manager.bind_address", "k8s.scheduler.bind_address"):
        assert str(got[cid].status) == "FAIL", got[cid]
        assert "the default 0.0.0.0" in got[cid].details.evidence  # type: ignore[union-attr]

    k3s = ["/usr/local/bin/k3s", "server", "--cluster-init"]
    result = run(
        loader.builtin("kubernetes"), _node(tmp_path / "b", {}, [k3s]), only=["1.3.7", "1.4.2"]
    )
    for f in result.findings:
        assert str(f.status) == "PASS", f
        assert "k3s server starts" in f.details.evidence  # type: ignore[union-attr]
        assert "--bind-address=127.0.0.1" in f.details.evidence  # type: ignore[union-attr]

    opened = [*k3s, "--kube-scheduler-arg=bind-address=0.0.0.0"]
    assert _statuses(_node(tmp_path / "c", {}, [opened]), ["1.3.7", "1.4.2"]) == {
        "k8s.controller_manager.bind_address": "PASS",
        "k8s.scheduler.bind_address": "FAIL",
    }


def test_etcd_matches_config_keys_as_go_json_does(tmp_path: Path) -> None:
    """etcd reads --config-file with sigs.k8s.io/yaml (YAML to JSON, keys sorted) and Go's
    encoding/json, which matches keys ignoring case: Client-Transport-Security is honoured. Of
    keys folding alike the last one in sorted order wins and two objects merge (checked with
    Go 1.19's encoding/json on this machine)."""
    shouted = (
        ETCD_CONF.replace("client-transport-security:", "Client-Transport-Security:")
        .replace("peer-transport-security:", "PEER-TRANSPORT-SECURITY:")
        .replace("  client-cert-auth: true", "  Client-Cert-Auth: true")
        .replace("  cert-file:", "  Cert-File:")
        .replace("  auto-tls: false", "  AUTO-TLS: true")
    )
    argv = ["/usr/local/bin/etcd", "--config-file=/etc/etcd/etcd.conf.yml"]
    node = _node(tmp_path / "a", {"/etc/etcd/etcd.conf.yml": shouted}, [argv])
    assert _statuses(node, ETCD_CHECKS) == {
        "k8s.etcd.tls_cert": "PASS",
        "k8s.etcd.client_cert_auth": "PASS",
        "k8s.etcd.auto_tls": "FAIL",
        "k8s.etcd.peer_tls_cert": "PASS",
        "k8s.etcd.peer_client_cert_auth": "PASS",
        "k8s.etcd.peer_auto_tls": "FAIL",
    }
    # the document's order does not decide: "CLIENT-..." sorts before "client-..."
    both = (
        "client-transport-security:\n  client-cert-auth: true\n"
        "CLIENT-TRANSPORT-SECURITY:\n  cert-file: /etc/etcd/pki/server.crt\n"
        "  key-file: /etc/etcd/pki/server.key\n  client-cert-auth: false\n"
        "data-dir: /srv/etcd\n"
    )
    node = _node(tmp_path / "b", {"/etc/etcd/etcd.conf.yml": both}, [argv])
    assert _statuses(node, ["2.1", "2.2"]) == {
        "k8s.etcd.tls_cert": "PASS",  # from the first object, merged
        "k8s.etcd.client_cert_auth": "PASS",  # the lower-case key sorts last
    }
    assert Resolver(loader.builtin("kubernetes"), node).path("etcd", "datadir") == "/srv/etcd"
    dirs = _node(tmp_path / "c", {"/etc/etcd/etcd.conf.yml": "Data-Dir: /srv/e2\n"}, [argv])
    assert Resolver(loader.builtin("kubernetes"), dirs).path("etcd", "datadir") == "/srv/e2"


def test_go_fold_is_ascii_case_plus_kelvin_and_long_s() -> None:
    from stockade.compliance.cis.components import go_fold, go_json_view

    assert go_fold("Client-Cert-Auth") == go_fold("client-cert-auth")
    assert go_fold("client-tran\u017fport") == go_fold("client-transport")  # long s
    assert go_fold("\u212aey-file") == go_fold("key-file")  # Kelvin sign
    assert go_fold("\u0131cc") != go_fold("icc")  # dotless i does not fold to i in Go
    assert go_fold("stra\u00dfe") != go_fold("strasse")  # no full case folding
    view = go_json_view({"icc": False, "ICC": None, "Hosts": ["a"], "hosts": ["b"]})
    assert view == {"ICC": False, "HOSTS": ["b"]}  # null leaves it; a later list replaces


def test_dockerd_refuses_daemon_json_keys_not_spelled_as_its_options(tmp_path: Path) -> None:
    """dockerd looks every top-level daemon.json key up among its flag names, case-sensitively,
    and refuses to start on one it does not know ("the following directives don't match any
    configuration option"), though Go's JSON decoding alone would have read "Icc" as icc. So a
    file with "Icc": false configures nothing: the checks that read it are ERROR, saying why,
    and neither pass on the misspelt key nor fail on the default."""
    daemon = '{"Icc": false, "USERNS-REMAP": "default", "live-restore": true}\n'
    node = _node(tmp_path / "a", {"/etc/docker/daemon.json": daemon}, [["/usr/bin/dockerd"]])
    result = run(loader.builtin("docker"), node, only=["2.2", "2.9", "2.15"])
    got = {f.id: f for f in result.findings}
    assert {k: str(f.status) for k, f in got.items()} == {
        "docker.daemon.icc": "ERROR",
        "docker.daemon.userns_remap": "ERROR",
        "docker.daemon.live_restore": "ERROR",
    }
    reason = got["docker.daemon.icc"].details.reason  # type: ignore[union-attr]
    assert "'Icc' is not a dockerd option" in reason and "'icc'" in reason, reason
    exact = '{"icc": false, "userns-remap": "default", "live-restore": true}\n'
    node = _node(tmp_path / "b", {"/etc/docker/daemon.json": exact}, [["/usr/bin/dockerd"]])
    assert set(_statuses(node, ["2.2", "2.9", "2.15"], "docker").values()) == {"PASS"}


K3S_ETCD_CONFIG = (Path(__file__).parent / "k3s_etcd_config.yaml").read_text()
K3S_ETCD = "/var/lib/rancher/k3s/server/db/etcd/config"
SECTION_2 = [*ETCD_CHECKS, "2.7"]


def _findings(node: Node, only: list[str]) -> dict[str, object]:
    return {f.id: f for f in run(loader.builtin("kubernetes"), node, only=only).findings}


def test_k3s_embedded_etcd_is_audited_from_the_config_k3s_writes(tmp_path: Path) -> None:
    """k3s server --cluster-init runs etcd inside itself, reading the config file k3s writes at
    every start: section 2 judges that file (there is no etcd process or manifest)."""
    k3s = ["/usr/local/bin/k3s", "server", "--cluster-init"]
    node = _node(tmp_path / "a", {K3S_ETCD: K3S_ETCD_CONFIG}, [k3s])
    assert "etcd" in Resolver(loader.builtin("kubernetes"), node).roles()
    got = _findings(node, SECTION_2)
    assert {k: str(f.status) for k, f in got.items()} == {
        **{k: "PASS" for k in got if k != "k8s.etcd.unique_ca"},
        "k8s.etcd.unique_ca": "WARN",  # manual
    }
    evidence = got["k8s.etcd.client_cert_auth"].details.evidence  # type: ignore[attr-defined]
    assert f"config {K3S_ETCD}" in evidence, evidence
    assert Resolver(loader.builtin("kubernetes"), node).path("etcd", "datadir") == (
        "/var/lib/rancher/k3s/server/db/etcd"
    )
    # --etcd-arg values land in the same file; a weakened one is read from there
    weak = K3S_ETCD_CONFIG.replace("  client-cert-auth: true\n  key-file: /var/lib/rancher/k3s/server/tls/etcd/server-client.key",
                                   "  client-cert-auth: false\n  key-file: /var/lib/rancher/k3s/server/tls/etcd/server-client.key")  # fmt: skip
    # a restarted server finds its etcd by the file alone (--cluster-init is needed once)
    node = _node(tmp_path / "b", {K3S_ETCD: weak}, [["/usr/local/bin/k3s", "server"]])
    assert _statuses(node, ["2.2", "2.5"]) == {
        "k8s.etcd.client_cert_auth": "FAIL",
        "k8s.etcd.peer_client_cert_auth": "PASS",
    }
    moved = "/srv/k3s/server/db/etcd/config"
    node = _node(tmp_path / "c", {moved: K3S_ETCD_CONFIG}, [["k3s", "server", "-d", "/srv/k3s"]])
    assert set(_statuses(node, ETCD_CHECKS).values()) == {"PASS"}


def test_k3s_without_embedded_etcd_has_no_section_2(tmp_path: Path) -> None:
    """With SQLite through kine (the single-server default) or an external datastore there is
    no etcd on the node: section 2 is NOT_APPLICABLE and says why; --cluster-init without the
    config k3s writes at start-up is an ERROR, not a pass or a fail."""
    sqlite = {"/var/lib/rancher/k3s/server/db/state.db": ""}
    node = _node(tmp_path / "a", sqlite, [["/usr/local/bin/k3s", "server"]])
    got = _findings(node, SECTION_2)
    assert {str(f.status) for f in got.values()} == {"NOT_APPLICABLE"}
    for f in got.values():
        assert "SQLite through kine" in f.details.reason, f  # type: ignore[attr-defined]
    external = [
        "/usr/local/bin/k3s",
        "server",
        "--datastore-endpoint=postgres://k3s:s3cr3t@db:5432/k3s",
    ]
    node = _node(tmp_path / "b", {}, [external])
    reasons = [f.details.reason for f in _findings(node, SECTION_2).values()]  # type: ignore[attr-defined]
    assert all("external datastore" in r and "s3cr3t" not in r for r in reasons), reasons
    node = _node(tmp_path / "c", {}, [["/usr/local/bin/k3s", "server", "--cluster-init"]])
    got = _findings(node, ETCD_CHECKS)
    assert {str(f.status) for f in got.values()} == {"ERROR"}
    assert all(K3S_ETCD in f.details.reason for f in got.values())  # type: ignore[attr-defined]


# kelseyhightower/kubernetes-the-hard-way configs/kube-scheduler.yaml and kube-proxy-config.yaml
KTHW_SCHEDULER = """apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: "/var/lib/kubernetes/kube-scheduler.kubeconfig"
leaderElection:
  leaderElect: true"""
KTHW_PROXY = """kind: KubeProxyConfiguration
apiVersion: kubeproxy.config.k8s.io/v1alpha1
clientConnection:
  kubeconfig: "/var/lib/kube-proxy/kubeconfig"
mode: "iptables"
clusterCIDR: "10.200.0.0/16\""""


KUBELET = ["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"]


def test_flags_a_config_file_replaces_are_not_read_next_to_it(tmp_path: Path) -> None:
    """kube-scheduler ignores its deprecated --profiling and --kubeconfig once --config names a
    KubeSchedulerConfiguration (whose enableProfiling defaults to true), and kube-proxy ignores
    --metrics-bind-address next to --config; neither reads a config file it is not given."""
    files = {
        "/etc/kubernetes/config/kube-scheduler.yaml": KTHW_SCHEDULER,
        "/var/lib/kubernetes/kube-scheduler.kubeconfig": "apiVersion: v1\nkind: Config\n",
    }
    argv = ["/usr/local/bin/kube-scheduler", "--config=/etc/kubernetes/config/kube-scheduler.yaml",
            "--profiling=false", "--kubeconfig=/etc/kubernetes/scheduler.conf", "--v=2"]  # fmt: skip
    node = _node(tmp_path / "a", files, [argv])
    (node.root / "var/lib/kubernetes/kube-scheduler.kubeconfig").chmod(0o644)
    got = _findings(node, ["1.4.1", "1.1.15"])
    assert str(got["k8s.scheduler.profiling"].status) == "FAIL"
    assert "the config file's default true" in got["k8s.scheduler.profiling"].details.evidence  # type: ignore[attr-defined]
    kubeconfig = got["k8s.files.scheduler_kubeconfig_mode"]
    assert str(kubeconfig.status) == "FAIL"
    assert "/var/lib/kubernetes/kube-scheduler.kubeconfig" in kubeconfig.details.evidence  # type: ignore[attr-defined]
    off = {
        **files,
        "/etc/kubernetes/config/kube-scheduler.yaml": KTHW_SCHEDULER + "\nenableProfiling: false\n",
    }
    assert _statuses(_node(tmp_path / "b", off, [argv]), ["1.4.1"]) == {
        "k8s.scheduler.profiling": "PASS"
    }

    public = KTHW_PROXY + "\nmetricsBindAddress: 0.0.0.0:10249\n"
    proxy = ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/kube-proxy-config.yaml",
             "--metrics-bind-address=127.0.0.1:10249"]  # fmt: skip
    node = _node(
        tmp_path / "c", {"/var/lib/kube-proxy/kube-proxy-config.yaml": public}, [proxy, KUBELET]
    )
    assert _statuses(node, ["4.3.1"]) == {"k8s.proxy.metrics_bind_address": "FAIL"}
    # without --config the file at the usual place configures nothing
    node = _node(
        tmp_path / "d",
        {"/var/lib/kube-proxy/config.conf": public},
        [["kube-proxy", "--v=2"], KUBELET],
    )
    assert _statuses(node, ["4.3.1"]) == {"k8s.proxy.metrics_bind_address": "PASS"}


def test_kubelet_certificate_rotation_left_out_is_off(tmp_path: Path) -> None:
    """--rotate-certificates and KubeletConfiguration's rotateCertificates default to false, so a
    kubelet whose config leaves the key out does not rotate its client certificate: 4.2.10 fails
    and says the default was judged (kubeadm's config, which sets it, passes)."""
    files = {"/var/lib/kubelet/config.yaml": KUBEADM_KUBELET_CONFIG}
    assert _statuses(_node(tmp_path / "a", files, [KUBEADM_KUBELET]), ["4.2.10"]) == {
        "k8s.kubelet.rotate_certificates": "PASS"
    }
    left_out = KUBEADM_KUBELET_CONFIG.replace("rotateCertificates: true\n", "")
    assert left_out != KUBEADM_KUBELET_CONFIG
    node = _node(tmp_path / "b", {"/var/lib/kubelet/config.yaml": left_out}, [KUBEADM_KUBELET])
    got = _findings(node, ["4.2.10"])["k8s.kubelet.rotate_certificates"]
    assert str(got.status) == "FAIL"
    assert "the config file's default false" in got.details.evidence  # type: ignore[attr-defined]
    bare = ["/usr/bin/kubelet", "--kubeconfig=/etc/kubernetes/kubelet.conf"]
    assert _statuses(_node(tmp_path / "c", {}, [bare]), ["4.2.10"]) == {
        "k8s.kubelet.rotate_certificates": "FAIL"
    }


def test_k3s_api_server_and_controller_manager_settings_k3s_makes_itself(tmp_path: Path) -> None:
    """k3s server starts the API server with anonymous auth off, Node,RBAC, NodeRestriction and
    its certificates, and the controller manager with per-controller credentials and the root
    CA: a bare `k3s server` passes those checks (paths under its --data-dir), and a user's
    --kube-apiserver-arg replaces k3s's value."""
    k3s = ["/usr/local/bin/k3s", "server", "--data-dir=/srv/k3s"]
    only = ["1.2.1", "1.2.4", "1.2.5", "1.2.7", "1.2.8", "1.2.14", "1.2.22", "1.2.24", "1.2.25",
            "1.3.3", "1.3.5"]  # fmt: skip
    got = _findings(_node(tmp_path / "a", {}, [k3s]), only)
    assert {str(f.status) for f in got.values()} == {"PASS"}, got
    evidence = got["k8s.apiserver.client_ca_file"].details.evidence  # type: ignore[attr-defined]
    assert "--client-ca-file=/srv/k3s/server/tls/client-ca.crt (not given: k3s server" in evidence
    replaced = [*k3s, "--kube-apiserver-arg=enable-admission-plugins=AlwaysPullImages"]
    assert _statuses(_node(tmp_path / "b", {}, [replaced]), ["1.2.11", "1.2.14"]) == {
        "k8s.apiserver.always_pull_images": "PASS",
        "k8s.apiserver.node_restriction": "FAIL",
    }


def test_dockerd_refuses_an_option_given_as_flag_and_in_daemon_json(tmp_path: Path) -> None:
    """docker.service starts dockerd with -H fd://; a daemon.json that also lists "hosts" makes
    dockerd refuse to start ("the following directives are specified both as a flag and in the
    configuration file"), so the flag's value is not the daemon's: ERROR, not PASS."""
    daemon = '{"hosts": ["tcp://0.0.0.0:2375"], "icc": false}\n'
    argv = ["/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"]
    node = _node(tmp_path / "a", {"/etc/docker/daemon.json": daemon}, [argv])
    got = _findings_of(node, ["2.7"], "docker")["docker.daemon.tls"]
    assert str(got.status) == "ERROR", got
    assert "specified both as a flag and in the configuration file" in got.details.reason  # type: ignore[attr-defined]
    node = _node(tmp_path / "b", {"/etc/docker/daemon.json": '{"icc": false}\n'}, [argv])
    assert _statuses(node, ["2.7"], "docker") == {"docker.daemon.tls": "PASS"}


def _findings_of(node: Node, only: list[str], benchmark: str) -> dict[str, object]:
    return {f.id: f for f in run(loader.builtin(benchmark), node, only=only).findings}


def test_components_a_k3s_server_is_told_not_to_run_are_absent(tmp_path: Path) -> None:
    """k3s server --disable-scheduler (and --disable-apiserver, --disable-controller-manager,
    --disable-etcd for split roles) runs no such component: its checks are NOT_APPLICABLE and
    say why, instead of judging k3s's own flags for a component that is not there."""
    k3s = ["/usr/local/bin/k3s", "server", "--disable-scheduler", "--disable-etcd"]
    node = _node(tmp_path / "a", {K3S_ETCD: K3S_ETCD_CONFIG}, [k3s])
    got = _findings(node, ["1.4.1", "1.4.2", "1.3.7", "2.1"])
    assert {k: str(f.status) for k, f in got.items()} == {
        "k8s.scheduler.profiling": "NOT_APPLICABLE",
        "k8s.scheduler.bind_address": "NOT_APPLICABLE",
        "k8s.controller_manager.bind_address": "PASS",
        "k8s.etcd.tls_cert": "NOT_APPLICABLE",
    }
    assert "--disable-scheduler" in got["k8s.scheduler.profiling"].details.reason  # type: ignore[attr-defined]
    assert "--disable-etcd" in got["k8s.etcd.tls_cert"].details.reason  # type: ignore[attr-defined]
    in_file = {"/etc/rancher/k3s/config.yaml": "disable-scheduler: true\n"}
    node = _node(tmp_path / "b", in_file, [["/usr/local/bin/k3s", "server"]])
    assert _statuses(node, ["1.4.2"]) == {"k8s.scheduler.bind_address": "NOT_APPLICABLE"}


def test_a_boolean_flag_does_not_take_the_next_argument(tmp_path: Path) -> None:
    """pflag and Go's flag package give a boolean flag its value only as --flag=value: in
    `--profiling false` profiling is true and `false` a stray argument, which kube-apiserver
    rejects ("does not take any arguments"). Reading it as --profiling=false passed 1.2.15 on a
    manifest the API server cannot start with; it is ERROR, saying why."""
    manifest = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: kube-apiserver, namespace: kube-system}\n"
        "spec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver,"
        " --authorization-mode, 'Node,RBAC', --profiling, 'false']\n"
    )
    node = _node(tmp_path / "a", {"/etc/kubernetes/manifests/kube-apiserver.yaml": manifest}, [])
    got = _findings(node, ["1.2.15", "1.2.7"])
    assert {k: str(f.status) for k, f in got.items()} == {
        "k8s.apiserver.profiling": "ERROR",
        "k8s.apiserver.authorization_node": "ERROR",
    }
    assert "--profiling false" in got["k8s.apiserver.profiling"].details.reason  # type: ignore[attr-defined]
    # a string flag does take the next argument, and --flag=false is a boolean's value
    fixed = manifest.replace("--profiling, 'false'", "--profiling=false")
    node = _node(tmp_path / "b", {"/etc/kubernetes/manifests/kube-apiserver.yaml": fixed}, [])
    assert _statuses(node, ["1.2.15", "1.2.7"]) == {
        "k8s.apiserver.profiling": "PASS",
        "k8s.apiserver.authorization_node": "PASS",
    }


def test_a_quoted_boolean_in_a_config_file_is_refused_not_read(tmp_path: Path) -> None:
    """etcd (sigs.k8s.io/yaml then encoding/json), the kubelet and dockerd decode their config
    files into Go structs, where a string for a bool field is an error: `client-cert-auth: "true"`
    or `"icc": "false"` keeps the component from starting with that file. Reading the text as
    the boolean passed etcd's 2.2 and Docker's 2.2; both are ERROR and say why."""
    conf = ETCD_CONF.replace("  client-cert-auth: true\n  trusted-ca-file: /etc/etcd/pki/ca.crt\n  auto-tls: false\npeer",
                             "  client-cert-auth: 'true'\n  trusted-ca-file: /etc/etcd/pki/ca.crt\n  auto-tls: false\npeer")  # fmt: skip
    assert conf != ETCD_CONF
    argv = ["/usr/local/bin/etcd", "--config-file=/etc/etcd/etcd.conf.yml"]
    node = _node(tmp_path / "a", {"/etc/etcd/etcd.conf.yml": conf}, [argv])
    got = _findings(node, ["2.2", "2.5"])
    assert {k: str(f.status) for k, f in got.items()} == {
        "k8s.etcd.client_cert_auth": "ERROR",
        "k8s.etcd.peer_client_cert_auth": "PASS",
    }
    assert "is the string 'true'" in got["k8s.etcd.client_cert_auth"].details.reason  # type: ignore[attr-defined]
    daemon = '{"icc": "false", "live-restore": true}\n'
    node = _node(tmp_path / "b", {"/etc/docker/daemon.json": daemon}, [["/usr/bin/dockerd"]])
    assert _statuses(node, ["2.2", "2.15"], "docker") == {
        "docker.daemon.icc": "ERROR",
        "docker.daemon.live_restore": "PASS",
    }


K3S_DEFAULTS = "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/00-k3s-defaults.conf"


def test_k3s_before_1_32_passes_its_kubelet_settings_as_flags(tmp_path: Path) -> None:
    """k3s before 1.32 writes no kubelet drop-in: it starts the kubelet with its settings as
    flags (as its log shows: "Running kubelet ... --anonymous-auth=false
    --authentication-token-webhook=true --authorization-mode=Webhook
    --client-ca-file=/var/lib/rancher/k3s/agent/client-ca.crt ... --read-only-port=0
    --tls-cert-file=/var/lib/rancher/k3s/agent/serving-kubelet.crt"). Judged as a kubelet with
    no config file, a stock k3s 1.31 agent failed 4.2.1-4.2.3."""
    only = ["4.2.1", "4.2.2", "4.2.3", "4.2.4", "4.2.9"]
    agent = ["/usr/local/bin/k3s", "agent"]
    got = _findings(_node(tmp_path / "a", {}, [agent]), only)
    assert {k: str(f.status) for k, f in got.items()} == dict.fromkeys(
        ["k8s.kubelet.anonymous_auth", "k8s.kubelet.authorization_mode",
         "k8s.kubelet.client_ca_file", "k8s.kubelet.read_only_port", "k8s.kubelet.tls_cert"],
        "PASS",
    )  # fmt: skip
    evidence = got["k8s.kubelet.client_ca_file"].details.evidence  # type: ignore[attr-defined]
    assert "--client-ca-file=/var/lib/rancher/k3s/agent/client-ca.crt (not given: k3s agent" in (
        evidence
    )
    # the user's --kubelet-arg (config.yaml kubelet-arg:) replaces k3s's value
    files = {"/etc/rancher/k3s/config.yaml": "kubelet-arg:\n  - authorization-mode=AlwaysAllow\n"}
    assert _statuses(_node(tmp_path / "b", files, [agent]), ["4.2.2"]) == {
        "k8s.kubelet.authorization_mode": "FAIL"
    }
    # k3s 1.32+ writes 00-k3s-defaults.conf at every start and passes no such flags: the drop-in
    # decides, under k3s's own --data-dir
    moved = K3S_DEFAULTS.replace("/var/lib/rancher/k3s", "/srv/k3s")
    dropin = {
        moved: "kind: KubeletConfiguration\nauthentication:\n  anonymous:\n    enabled: true\n"
    }
    node = _node(tmp_path / "c", dropin, [[*agent, "--data-dir=/srv/k3s"]])
    assert _statuses(node, ["4.2.1", "4.2.3"]) == {
        "k8s.kubelet.anonymous_auth": "FAIL",
        "k8s.kubelet.client_ca_file": "FAIL",
    }


def test_k3s_sets_the_service_account_key_and_the_etcd_client_certificates(
    tmp_path: Path,
) -> None:
    """k3s starts the controller manager with --service-account-private-key-file (its
    service.current.key, else service.key) and, with embedded etcd, the API server with
    --etcd-cafile/--etcd-certfile/--etcd-keyfile under DATA_DIR/server/tls/etcd (as its log shows:
    "--etcd-cafile=/var/lib/rancher/k3s/server/tls/etcd/server-ca.crt
    --etcd-certfile=/var/lib/rancher/k3s/server/tls/etcd/client.crt ..."): a bare k3s server
    failed 1.3.4, 1.2.23 and 1.2.26."""
    only = ["1.3.4", "1.2.23", "1.2.26"]
    server = ["/usr/local/bin/k3s", "server", "--cluster-init"]
    current = {"/var/lib/rancher/k3s/server/tls/service.current.key": "", K3S_ETCD: K3S_ETCD_CONFIG}
    got = _findings(_node(tmp_path / "a", current, [server]), only)
    assert {str(f.status) for f in got.values()} == {"PASS"}, got
    ev = {k: f.details.evidence for k, f in got.items()}  # type: ignore[attr-defined]
    assert (
        "tls/service.current.key (not given: k3s server starts"
        in ev["k8s.controller_manager.service_account_private_key"]
    )
    assert (
        "--etcd-certfile=/var/lib/rancher/k3s/server/tls/etcd/client.crt"
        in ev["k8s.apiserver.etcd_client_cert"]
    )
    got = _findings(_node(tmp_path / "b", {K3S_ETCD: K3S_ETCD_CONFIG}, [server[:2]]), ["1.3.4"])
    assert (
        "tls/service.key (not given"
        in got["k8s.controller_manager.service_account_private_key"].details.evidence
    )  # type: ignore[attr-defined]
    # SQLite (no etcd): kine serves the API server on unix://kine.sock, no etcd link to secure
    got = _findings(_node(tmp_path / "c", {}, [server[:2]]), only)
    assert {k: str(f.status) for k, f in got.items()} == {
        "k8s.controller_manager.service_account_private_key": "PASS",
        "k8s.apiserver.etcd_client_cert": "NOT_APPLICABLE",
        "k8s.apiserver.etcd_cafile": "NOT_APPLICABLE",
    }
    assert "--etcd-servers=unix://kine.sock" in got["k8s.apiserver.etcd_cafile"].details.reason  # type: ignore[attr-defined]
    # an external etcd: k3s hands the API server the --datastore-* certificates, if given
    bare = ["/usr/local/bin/k3s", "server", "--datastore-endpoint=https://etcd-1:2379"]
    assert _statuses(_node(tmp_path / "d", {}, [bare]), ["1.2.23", "1.2.26"]) == {
        "k8s.apiserver.etcd_client_cert": "FAIL",
        "k8s.apiserver.etcd_cafile": "FAIL",
    }
    certs = {
        "/etc/rancher/k3s/config.yaml": (
            "datastore-endpoint: https://etcd-1:2379\ndatastore-cafile: /etc/etcd/ca.crt\n"
            "datastore-certfile: /etc/etcd/client.crt\ndatastore-keyfile: /etc/etcd/client.key\n"
        )
    }
    node = _node(tmp_path / "e", certs, [server[:2]])
    assert _statuses(node, ["1.2.23", "1.2.26"]) == {
        "k8s.apiserver.etcd_client_cert": "PASS",
        "k8s.apiserver.etcd_cafile": "PASS",
    }
    # a control-plane-only server (--disable-etcd) reaches the etcd of the servers it joined
    split = ["/usr/local/bin/k3s", "server", "--disable-etcd", "--server=https://k3s-1:6443"]
    assert _statuses(_node(tmp_path / "g", {}, [split]), ["1.2.23", "1.2.26"]) == {
        "k8s.apiserver.etcd_client_cert": "PASS",
        "k8s.apiserver.etcd_cafile": "PASS",
    }
    # a SQL datastore goes through kine too
    pg = ["/usr/local/bin/k3s", "server", "--datastore-endpoint=postgres://k3s:pw@db:5432/k3s"]
    assert _statuses(_node(tmp_path / "f", {}, [pg]), ["1.2.26"]) == {
        "k8s.apiserver.etcd_cafile": "NOT_APPLICABLE"
    }


def test_k3s_args_merge_with_its_own_as_k3s_merges_them(tmp_path: Path) -> None:
    """k3s merges a component arg with the value it sets itself (GetArgs): `key=v` replaces it,
    `key+=v` appends to it and `key-=v` prepends; config.yaml.d drop-ins are *.yaml and *.yml,
    where a `kube-apiserver-arg+:` key appends to the earlier files' list."""
    files = {
        "/etc/rancher/k3s/config.yaml": "kube-apiserver-arg:\n  - audit-log-maxage=30\n",
        "/etc/rancher/k3s/config.yaml.d/90-hardening.yml": (
            "kube-apiserver-arg+:\n  - enable-admission-plugins+=AlwaysPullImages\n"
        ),
    }
    node = _node(tmp_path / "a", files, [["/usr/local/bin/k3s", "server"]])
    got = _findings(node, ["1.2.11", "1.2.14", "1.2.17"])
    assert {k: str(f.status) for k, f in got.items()} == {
        "k8s.apiserver.always_pull_images": "PASS",
        "k8s.apiserver.node_restriction": "PASS",  # k3s's NodeRestriction is kept
        "k8s.apiserver.audit_log_maxage": "PASS",  # the main file's entry is kept too
    }
    evidence = got["k8s.apiserver.node_restriction"].details.evidence  # type: ignore[attr-defined]
    assert "--enable-admission-plugins=NodeRestriction,AlwaysPullImages" in evidence
    assert "90-hardening.yml" in evidence
    prepend = ["/usr/local/bin/k3s", "server", "--kube-apiserver-arg=enable-admission-plugins-=AlwaysAdmit"]  # fmt: skip
    assert _statuses(_node(tmp_path / "b", {}, [prepend]), ["1.2.10", "1.2.14"]) == {
        "k8s.apiserver.always_admit": "FAIL",
        "k8s.apiserver.node_restriction": "PASS",
    }


def test_k3s_embedded_etcd_data_dir_belongs_to_root(tmp_path: Path) -> None:
    """k3s runs its embedded etcd as root and creates DATA_DIR/server/db/etcd itself; there is no
    etcd user (k3s's CIS self-assessment: "should be root:root"), so 1.1.12 expects root:root
    there instead of failing every k3s server for not being etcd:etcd."""
    server = [["/usr/local/bin/k3s", "server", "--cluster-init"]]
    node = _node(tmp_path / "a", {K3S_ETCD: K3S_ETCD_CONFIG}, server)
    got = _findings(node, ["1.1.12"])["k8s.files.etcd_data_dir_owner"]
    assert str(got.status) == "PASS", got
    assert "/var/lib/rancher/k3s/server/db/etcd" in got.details.evidence  # type: ignore[attr-defined]
    os.chown(tmp_path / "a/var/lib/rancher/k3s/server/db/etcd", 1000, 1000)
    node = _node(tmp_path / "a", {}, server)
    assert _statuses(node, ["1.1.12"]) == {"k8s.files.etcd_data_dir_owner": "FAIL"}
    # a separate etcd keeps the benchmark's etcd:etcd
    etcd = [["/usr/local/bin/etcd", "--data-dir=/var/lib/etcd"], ["/usr/local/bin/kube-apiserver"]]
    root = {"/var/lib/etcd/member/snap/db": ""}
    assert _statuses(_node(tmp_path / "b", root, etcd), ["1.1.12"]) == {
        "k8s.files.etcd_data_dir_owner": "FAIL"
    }


# as k3s writes it with secrets-encryption (the key is a fixture's, not a real one)
K3S_ENCRYPTION = json.dumps(
    {
        "kind": "EncryptionConfiguration",
        "apiVersion": "apiserver.config.k8s.io/v1",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {
                        "aescbc": {
                            "keys": [
                                {
                                    "name": "aescbckey",
                                    "secret": "Zml4dHVyZS1rZXktbm90LXJlYWwtMzItYnl0ZXMhIQ==",
                                }
                            ]
                        }
                    },
                    {"identity": {}},
                ],
            }
        ],
    }
)


def test_k3s_secrets_encryption_and_no_key_in_the_evidence(tmp_path: Path) -> None:
    """k3s server with secrets-encryption starts the API server with --encryption-provider-config
    DATA_DIR/server/cred/encryption-config.json: 1.2.27 passes and 1.2.28 reads that file. The
    evidence of 1.2.28 names the provider but not its key: the aescbc `secret` is the cluster's
    data encryption key, and evidence is stored and reported."""
    files = {
        "/etc/rancher/k3s/config.yaml": "secrets-encryption: true\n",
        "/var/lib/rancher/k3s/server/cred/encryption-config.json": K3S_ENCRYPTION,
    }
    node = _node(tmp_path / "a", files, [["/usr/local/bin/k3s", "server"]])
    got = _findings(node, ["1.2.27", "1.2.28"])
    assert {k: str(f.status) for k, f in got.items()} == {
        "k8s.apiserver.encryption_provider_config": "PASS",
        "k8s.apiserver.encryption_providers": "PASS",
    }
    evidence = got["k8s.apiserver.encryption_providers"].details.evidence  # type: ignore[attr-defined]
    assert '"aescbc"' in evidence and "aescbckey" in evidence
    assert "Zml4dHVyZS1rZXkt" not in evidence
    assert _statuses(_node(tmp_path / "b", {}, [["/usr/local/bin/k3s", "server"]]), ["1.2.27"]) == {
        "k8s.apiserver.encryption_provider_config": "WARN"
    }


def test_k3s_gives_the_api_server_its_own_cipher_suites(tmp_path: Path) -> None:
    """k3s passes the API server six ECDHE AES-GCM/ChaCha20 suites unless the user names some
    (its log: "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,..."): 1.2.29 was a
    WARN on every bare k3s server."""
    server = ["/usr/local/bin/k3s", "server"]
    got = _findings(_node(tmp_path / "a", {}, [server]), ["1.2.29"])
    found = got["k8s.apiserver.tls_cipher_suites"]
    assert str(found.status) == "PASS", found
    evidence = found.details.evidence  # type: ignore[attr-defined]
    assert evidence.startswith("--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,")
    assert "(not given: k3s server starts apiserver with it" in evidence
    weak = [*server, "--kube-apiserver-arg=tls-cipher-suites=TLS_RSA_WITH_AES_128_CBC_SHA"]
    assert _statuses(_node(tmp_path / "b", {}, [weak]), ["1.2.29"]) == {
        "k8s.apiserver.tls_cipher_suites": "WARN"
    }


def test_k3s_without_kube_proxy_or_agent_runs_no_such_component(tmp_path: Path) -> None:
    """k3s --disable-kube-proxy (a CNI such as Cilium replaces it) runs no kube-proxy, and a
    k3s server --disable-agent runs neither kubelet nor kube-proxy: their checks are
    NOT_APPLICABLE with the setting as reason, not judged by the defaults k3s would give it."""
    files = {"/etc/rancher/k3s/config.yaml": "disable-kube-proxy: true\n"}
    node = _node(tmp_path / "a", files, [["/usr/local/bin/k3s", "agent"]])
    got = _findings(node, ["4.3.1", "4.2.4"])
    assert {k: str(f.status) for k, f in got.items()} == {
        "k8s.proxy.metrics_bind_address": "NOT_APPLICABLE",
        "k8s.kubelet.read_only_port": "PASS",
    }
    assert "--disable-kube-proxy" in got["k8s.proxy.metrics_bind_address"].details.reason  # type: ignore[attr-defined]
    server = ["/usr/local/bin/k3s", "server", "--disable-agent"]
    assert _statuses(_node(tmp_path / "b", {}, [server]), ["4.2.4", "4.3.1", "1.2.15"]) == {
        "k8s.kubelet.read_only_port": "NOT_APPLICABLE",
        "k8s.proxy.metrics_bind_address": "NOT_APPLICABLE",
        "k8s.apiserver.profiling": "PASS",
    }


def test_k3s_default_paths_move_with_its_data_dir(tmp_path: Path) -> None:
    """k3s --data-dir (or data-dir: in its config file) moves its certificates, kubeconfigs and
    etcd data: the file checks read them there instead of finding nothing at
    /var/lib/rancher/k3s and answering NOT_APPLICABLE."""
    files = {
        "/etc/rancher/k3s/config.yaml": "data-dir: /srv/k3s\n",
        "/srv/k3s/server/tls/client-ca.key": "",
        "/srv/k3s/server/cred/scheduler.kubeconfig": "apiVersion: v1\nkind: Config\n",
        "/srv/k3s/agent/kubeproxy.kubeconfig": "apiVersion: v1\nkind: Config\n",
    }
    node = _node(tmp_path / "a", files, [["/usr/local/bin/k3s", "server"]])
    for path in files:
        os.chmod(node.root / path.lstrip("/"), 0o644)
    got = _findings(node, ["1.1.15", "1.1.21", "4.1.3"])
    assert {k: str(f.status) for k, f in got.items()} == {
        "k8s.files.scheduler_kubeconfig_mode": "FAIL",
        "k8s.files.pki_key_mode": "WARN",
        "k8s.files.proxy_kubeconfig_mode": "WARN",
    }
    assert "/srv/k3s/server/tls/client-ca.key" in got["k8s.files.pki_key_mode"].details.evidence  # type: ignore[attr-defined]


def test_kubelet_config_file_checks_skip_a_file_the_kubelet_does_not_read(tmp_path: Path) -> None:
    """4.1.9/4.1.10 are about the config file the kubelet uses: a kubelet started without
    --config (flags only, or k3s's) reads none, so a leftover /var/lib/kubelet/config.yaml is
    NOT_APPLICABLE (kube-bench's k3s audit: "There is no kubelet config file"), not a FAIL."""
    files = {"/var/lib/kubelet/config.yaml": KUBEADM_KUBELET_CONFIG}
    for name, argv in (
        ("bare", ["/usr/bin/kubelet", "--kubeconfig=/etc/kubernetes/kubelet.conf"]),
        ("k3s", ["/usr/local/bin/k3s", "agent"]),
    ):
        node = _node(tmp_path / name, files, [argv])
        os.chmod(node.root / "var/lib/kubelet/config.yaml", 0o644)
        got = _findings(node, ["4.1.9"])["k8s.files.kubelet_config_mode"]
        assert str(got.status) == "NOT_APPLICABLE", got
        assert "started without --config" in got.details.reason  # type: ignore[attr-defined]
    node = _node(tmp_path / "kubeadm", files, [KUBEADM_KUBELET])
    os.chmod(node.root / "var/lib/kubelet/config.yaml", 0o644)
    assert _statuses(node, ["4.1.9"]) == {"k8s.files.kubelet_config_mode": "FAIL"}


def test_k3s_settings_from_its_environment(tmp_path: Path) -> None:
    """k3s's install script keeps K3S_DATASTORE_ENDPOINT (and K3S_DATASTORE_CAFILE, ...) in
    k3s.service.env, which k3s reads as the settings of the same name (its config file and
    command line override them): an external etcd given so gets its certificates checked, not
    taken for SQLite."""
    env = {
        "K3S_DATASTORE_ENDPOINT": "https://etcd-1:2379",
        "K3S_DATASTORE_CAFILE": "/etc/etcd/ca.crt",
        "K3S_DATASTORE_CERTFILE": "/etc/etcd/client.crt",
        "K3S_DATASTORE_KEYFILE": "/etc/etcd/client.key",
    }
    root = _node(tmp_path / "a", {}, []).root

    def node(env: dict[str, str]) -> Node:
        proc = Process(pid=7, argv=("/usr/local/bin/k3s", "server"), env=env)
        return Node(root=root, processes=(proc,), process_source="test")

    assert _statuses(node(env), ["1.2.23", "1.2.26", "2.1"]) == {
        "k8s.apiserver.etcd_client_cert": "PASS",
        "k8s.apiserver.etcd_cafile": "PASS",
        "k8s.etcd.tls_cert": "NOT_APPLICABLE",  # the etcd is not on this node
    }
    no_certs = {"K3S_DATASTORE_ENDPOINT": "https://etcd-1:2379"}
    assert _statuses(node(no_certs), ["1.2.26"]) == {"k8s.apiserver.etcd_cafile": "FAIL"}
    got = _findings(node({"K3S_CLUSTER_INIT": "true"}), ["2.1"])["k8s.etcd.tls_cert"]
    assert str(got.status) == "ERROR"  # told to run etcd, but its config is missing


def test_k3s_admin_kubeconfig_in_server_cred_is_checked(tmp_path: Path) -> None:
    """k3s keeps its admin kubeconfig in DATA_DIR/server/cred/admin.kubeconfig (the file
    kube-bench's k3s audit of 1.1.13 reads) besides the /etc/rancher/k3s/k3s.yaml copy: a 644
    admin.kubeconfig passed 1.1.13 because only the copy was looked at."""
    files = {
        "/etc/rancher/k3s/k3s.yaml": "apiVersion: v1\nkind: Config\n",
        "/var/lib/rancher/k3s/server/cred/admin.kubeconfig": "apiVersion: v1\nkind: Config\n",
    }
    node = _node(tmp_path, files, [["/usr/local/bin/k3s", "server"]])
    os.chmod(node.root / "etc/rancher/k3s/k3s.yaml", 0o600)
    os.chmod(node.root / "var/lib/rancher/k3s/server/cred/admin.kubeconfig", 0o644)
    got = _findings(node, ["1.1.13"])["k8s.files.admin_conf_mode"]
    assert str(got.status) == "FAIL", got
    assert "admin.kubeconfig: mode=644" in got.details.evidence  # type: ignore[attr-defined]


KOPS_APISERVER = """apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - name: kube-apiserver
    image: k8s.gcr.io/kube-apiserver:v1.15.3
    command:
    - /bin/sh
    - -c
    - mkfifo /tmp/pipe; (tee -a /var/log/kube-apiserver.log < /tmp/pipe & ) ; exec /usr/local/bin/kube-apiserver --allow-privileged=true --anonymous-auth=false --authorization-mode=RBAC --profiling=false > /tmp/pipe 2>&1
"""


def test_a_static_pod_whose_shell_starts_the_component(tmp_path: Path) -> None:
    """kops wrote its control plane manifests as `/bin/sh -c "mkfifo /tmp/pipe; ... ; exec
    /usr/local/bin/kube-apiserver --flags > /tmp/pipe 2>&1"`: the flags are the words after the
    binary up to the redirection, not the `-c` script as one value (which failed 1.2.15 and
    guessed at 1.2.1). A script that does not name the binary declares nothing."""
    path = "/etc/kubernetes/manifests/kube-apiserver.manifest"
    node = _node(tmp_path / "a", {path: KOPS_APISERVER}, [])
    got = _findings(node, ["1.2.1", "1.2.15", "1.2.7"])
    assert {k: str(f.status) for k, f in got.items()} == {
        "k8s.apiserver.anonymous_auth": "PASS",
        "k8s.apiserver.profiling": "PASS",
        "k8s.apiserver.authorization_node": "FAIL",  # RBAC only
    }
    assert path in got["k8s.apiserver.profiling"].details.evidence  # type: ignore[attr-defined]
    opaque = KOPS_APISERVER.replace("exec /usr/local/bin/kube-apiserver", "exec /opt/start.sh")
    node = _node(tmp_path / "b", {path: opaque}, [])
    assert _statuses(node, ["1.2.15"]) == {"k8s.apiserver.profiling": "NOT_APPLICABLE"}
