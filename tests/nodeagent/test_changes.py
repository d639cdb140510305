"""What the node agent watches for the CIS benchmark: files (globs, under the node's root) and
process command lines; every kind of change shows, nothing else does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from stockade.nodeagent.changes import Watched, changed, fingerprint


def test_files_changed_created_replaced_and_deleted(tmp_path: Path) -> None:
    manifests = tmp_path / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    (manifests / "kube-apiserver.yaml").write_text("--anonymous-auth=false\n")
    watched = Watched(files=("/etc/kubernetes/manifests/*.yaml",), processes=(), root=tmp_path)
    before = fingerprint(watched)
    assert changed(before, fingerprint(watched)) == []

    (manifests / "kube-apiserver.yaml").write_text("--anonymous-auth=true\n")  # same size
    after = fingerprint(watched)
    assert changed(before, after) == [f"file:{manifests}/kube-apiserver.yaml"]

    (manifests / "etcd.yaml").write_text("x")
    assert changed(after, fingerprint(watched)) == [f"file:{manifests}/etcd.yaml"]
    after = fingerprint(watched)
    tmp = manifests / ".tmp"
    tmp.write_text("y")
    os.replace(tmp, manifests / "etcd.yaml")  # an editor's save
    assert changed(after, fingerprint(watched)) == [f"file:{manifests}/etcd.yaml"]
    after = fingerprint(watched)
    (manifests / "etcd.yaml").unlink()
    assert changed(after, fingerprint(watched)) == [f"file:{manifests}/etcd.yaml"]


def started(proc: subprocess.Popen[bytes], seconds: float = 10.0) -> None:
    """Wait until the child has exec'd its script (right after fork it is still this Python)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if b"fake-kubelet" in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError("the fake kubelet did not start")


def test_a_process_restarted_with_other_flags(tmp_path: Path) -> None:
    script = tmp_path / "fake-kubelet"
    script.write_text(f"#!{sys.executable}\nimport time; time.sleep(30)\n")
    script.chmod(0o755)
    watched = Watched(files=(), processes=("fake-kubelet",))
    before = fingerprint(watched)
    proc = subprocess.Popen([str(script), "--read-only-port=0"])
    try:
        started(proc)
        running = fingerprint(watched)
        assert changed(before, running) == ["process:fake-kubelet"]
        assert changed(running, fingerprint(watched)) == []
    finally:
        proc.kill()
        proc.wait()
    proc = subprocess.Popen([str(script), "--read-only-port=10255"])
    try:
        started(proc)
        assert changed(running, fingerprint(watched)) == ["process:fake-kubelet"]
    finally:
        proc.kill()
        proc.wait()
