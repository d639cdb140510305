"""Results on hostile or broken nodes: per-check ERROR or NOT_APPLICABLE with a reason, never a
crash; and the live host (no Kubernetes, no Docker) gives NOT_APPLICABLE everywhere."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.compliance.cis.fixtures import GOLDEN, build, load_spec
from tests.support import require

from stockade.compliance.cis import loader
from stockade.compliance.cis.engine import run
from stockade.compliance.cis.node import Node, open_node
from stockade.model import Status


@pytest.fixture
def kubeadm(tmp_path: Path) -> Path:
    require(os.geteuid() == 0, "fixture nodes set file owners with chown (needs root)")
    return build(load_spec(GOLDEN / "k8s-kubelet-PASS" / "node.yaml"), tmp_path / "node")


def _status(node: Node, only: list[str], **kw: object) -> dict[str, tuple[str, str]]:
    result = run(loader.builtin("kubernetes"), node, only=only, **kw)  # type: ignore[arg-type]
    return {f.id: (str(f.status), f.details.reason) for f in result.findings}  # type: ignore[union-attr]


@pytest.mark.parametrize("platform", ["kubernetes", "docker"])
def test_plain_debian_host_is_not_applicable(platform: str) -> None:
    """This machine runs neither Kubernetes nor Docker: every check is NOT_APPLICABLE, none ERROR."""
    result = run(loader.builtin(platform), open_node())
    counts = result.counts()
    assert counts["ERROR"] == 0
    assert counts["NOT_APPLICABLE"] == len(result.findings) > 90
    assert all("not detected" in f.details.reason for f in result.findings)  # type: ignore[union-attr]


@pytest.mark.root
def test_malformed_kubelet_config_is_error_per_check(kubeadm: Path) -> None:
    (kubeadm / "var/lib/kubelet/config.yaml").write_text("authentication: [unclosed\n  x: {\n")
    got = _status(open_node(kubeadm), ["4.2"])
    status, reason = got["k8s.kubelet.read_only_port"]
    assert status == "ERROR" and "malformed config file" in reason
    assert got["k8s.kubelet.anonymous_auth"][0] == "PASS"  # decided by the flag, file not needed
    assert got["k8s.kubelet.hostname_override"][0] == "PASS"  # a flag-only check
    assert sum(s == "ERROR" for s, _ in got.values()) >= 10


@pytest.mark.root
@pytest.mark.timeout(20)
def test_fifo_and_symlink_loop_are_errors(kubeadm: Path) -> None:
    cfg = kubeadm / "var/lib/kubelet/config.yaml"
    cfg.unlink()
    os.mkfifo(cfg)  # reading it would block forever
    got = _status(open_node(kubeadm), ["4.2.4"])
    assert got["k8s.kubelet.read_only_port"] == (
        "ERROR",
        "/var/lib/kubelet/config.yaml: not a regular file",
    )
    cfg.unlink()
    cfg.symlink_to("config.yaml")
    got = _status(open_node(kubeadm), ["4.2.4", "4.1.9"])
    assert got["k8s.kubelet.read_only_port"][0] == "ERROR"
    assert "symbolic links" in got["k8s.kubelet.read_only_port"][1]
    assert got["k8s.files.kubelet_config_mode"][0] == "ERROR"


@pytest.mark.root
def test_symlinks_stay_inside_the_root(kubeadm: Path) -> None:
    """An absolute link target is resolved inside the audited tree, never on the auditing host."""
    admin = kubeadm / "etc/kubernetes/admin.conf"
    admin.unlink()
    admin.symlink_to("/etc/hostname")
    node = open_node(kubeadm)
    assert node.host_path("/etc/kubernetes/admin.conf") == kubeadm / "etc/hostname"
    assert node.read_text("/etc/kubernetes/../../../../etc/hostname").strip() == "cp-1"
    got = _status(node, ["1.1.13"])
    assert got["k8s.files.admin_conf_mode"][0] == "FAIL"  # the fixture's /etc/hostname is 644


@pytest.fixture
def world_readable_node() -> Iterator[Path]:
    """A fixture node in a directory an unprivileged user can traverse (tmp_path cannot be)."""
    require(os.geteuid() == 0, "needs root to build the node and to switch to an unprivileged uid")
    top = Path(tempfile.mkdtemp(prefix="sk-cis-", dir="/tmp"))
    top.chmod(0o755)
    try:
        yield build(load_spec(GOLDEN / "k8s-kubelet-PASS" / "node.yaml"), top / "node")
    finally:
        import shutil

        shutil.rmtree(top)


@pytest.mark.root
def test_unreadable_files_are_errors_not_crashes(world_readable_node: Path) -> None:
    node_dir = world_readable_node
    for d in [node_dir, *[p for p in node_dir.rglob("*") if p.is_dir()]]:
        d.chmod(0o755)  # directories traversable; files keep their 600 root modes
    (node_dir / ".stockade/processes.json").chmod(0o644)
    (node_dir / "etc/passwd").chmod(0o644)
    node = open_node(node_dir)
    os.seteuid(65534)
    try:
        got = _status(node, ["4.1.9", "4.2.4", "4.2.7"])
    finally:
        os.seteuid(0)
    assert got["k8s.kubelet.read_only_port"] == (
        "ERROR",
        "/var/lib/kubelet/config.yaml: permission denied",
    )
    assert got["k8s.files.kubelet_config_mode"][0] == "PASS"  # stat needs no read permission
    assert got["k8s.kubelet.hostname_override"][0] == "PASS"


@pytest.mark.root
def test_role_override(kubeadm: Path) -> None:
    got = _status(open_node(kubeadm), ["1.2.1", "4.2.1"], roles=["worker"])
    assert got["k8s.apiserver.anonymous_auth"] == (
        "NOT_APPLICABLE",
        "node role control-plane not selected with --role (roles: worker)",
    )
    assert got["k8s.kubelet.anonymous_auth"][0] == "PASS"


@pytest.mark.root
def test_absent_component_and_missing_file(kubeadm: Path) -> None:
    (kubeadm / "etc/kubernetes/manifests/kube-scheduler.yaml").unlink()
    (kubeadm / "var/lib/kube-proxy/kubeconfig.conf").unlink()
    plist = kubeadm / ".stockade/processes.json"
    doc = json.loads(plist.read_text())
    doc["processes"] = [p for p in doc["processes"] if "kube-scheduler" not in p["cmdline"][0]]
    plist.write_text(json.dumps(doc))
    got = _status(open_node(kubeadm), ["1.4.1", "1.1.5", "4.1.3"])
    assert got["k8s.scheduler.profiling"] == (
        "NOT_APPLICABLE",
        "scheduler is neither running nor declared on this node",
    )
    assert got["k8s.files.scheduler_manifest_mode"][0] == "NOT_APPLICABLE"
    assert got["k8s.files.proxy_kubeconfig_mode"] == (
        "NOT_APPLICABLE",
        "not found: /var/lib/kube-proxy/kubeconfig.conf",
    )


@pytest.mark.root
def test_skip_and_evidence(kubeadm: Path) -> None:
    result = run(
        loader.builtin("kubernetes"), open_node(kubeadm), only=["1.1.19", "1.2.6"], skip=["1.2.6"]
    )
    got = {f.id: f for f in result.findings}
    assert got["k8s.apiserver.authorization_not_always_allow"].status is Status.INFO
    pki = got["k8s.files.pki_owner"]
    assert pki.status is Status.PASS
    assert pki.details.evidence.startswith("all ")  # type: ignore[union-attr]
    assert "/etc/kubernetes/pki/ca.key: owner=root:root" in pki.details.evidence  # type: ignore[union-attr]
    assert pki.compliance and pki.details.benchmark == "cis-kubernetes-1.12"  # type: ignore[union-attr]


@pytest.mark.root
def test_docker_host_without_process_list_reads_the_unit(tmp_path: Path) -> None:
    """Offline audit of a Docker host: dockerd's flags come from docker.service's ExecStart."""
    require(os.geteuid() == 0, "fixture nodes set file owners with chown (needs root)")
    node_dir = build(load_spec(GOLDEN / "docker-daemon-PASS" / "node.yaml"), tmp_path / "node")
    bench = loader.builtin("docker")
    with_procs = run(bench, open_node(node_dir), only=["2"])
    (node_dir / ".stockade/processes.json").unlink()
    offline = run(bench, open_node(node_dir), only=["2"])
    assert offline.process_source == "none"
    assert [f.status for f in offline.findings] == [f.status for f in with_procs.findings]
    tls = next(f for f in offline.findings if f.id == "docker.daemon.tls")
    assert "systemd unit /usr/lib/systemd/system/docker.service" in tls.details.evidence  # type: ignore[union-attr]
