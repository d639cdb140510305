"""What the node benchmark reads, watched for change: configuration files (globs such as
``/etc/kubernetes/manifests/*.yaml``) and the command lines of named processes (``kubelet``,
``kube-apiserver``). Polled: a fingerprint of each is compared with the last one, so a file
rewritten in place, replaced by a rename, created or deleted, and a process restarted with other
flags all count. Bounded: at most ``MAX_FILES`` files of at most ``MAX_BYTES`` each are hashed."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

MAX_FILES = 256
MAX_BYTES = 4 * 1024 * 1024
MAX_CMDLINE = 64 * 1024

DEFAULT_FILES = (
    "/var/lib/kubelet/config.yaml",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/manifests/*.yaml",
    "/etc/systemd/system/kubelet.service.d/*.conf",
    "/etc/rancher/rke2/config.yaml",
    "/etc/rancher/k3s/config.yaml",
)
DEFAULT_PROCESSES = (
    "kubelet",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
    "kube-proxy",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Watched:
    files: tuple[str, ...] = DEFAULT_FILES  # paths or globs, under ``root``
    processes: tuple[str, ...] = DEFAULT_PROCESSES  # argv[0]'s base name, or the kernel's comm
    root: Path = Path("/")  # the node's filesystem (``/host`` in the agent's pod)
    proc: Path = Path("/proc")


def _file_print(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            h.update(f.read(MAX_BYTES + 1))
    except OSError as exc:
        return f"unreadable:{exc.errno}"
    return h.hexdigest()


def _rooted(root: Path, pattern: str) -> str:
    return str(root / pattern.lstrip("/")) if root != Path("/") else pattern


def fingerprint(watched: Watched) -> dict[str, str]:
    """``{"file:PATH": digest, "process:NAME": command lines}`` as they are now."""
    out: dict[str, str] = {}
    for pattern in watched.files:
        for path in sorted(glob.glob(_rooted(watched.root, pattern)))[:MAX_FILES]:
            if len(out) >= MAX_FILES:
                break
            out[f"file:{path}"] = _file_print(path)
    lines: dict[str, list[str]] = {}
    names = set(watched.processes)
    for entry in _pids(watched.proc):
        try:
            raw = (entry / "cmdline").read_bytes()[:MAX_CMDLINE]
        except OSError:
            continue
        argv = raw.rstrip(b"\0").split(b"\0")
        name = os.path.basename(argv[0].decode("utf-8", "replace")) if argv and argv[0] else ""
        if name not in names:
            name = _comm(entry)  # the executed file's name: a script's, not its interpreter's
        if name in names:
            lines.setdefault(name, []).append(" ".join(a.decode("utf-8", "replace") for a in argv))
    for name, cmdlines in lines.items():
        out[f"process:{name}"] = hashlib.sha256("\n".join(sorted(cmdlines)).encode()).hexdigest()
    return out


def _comm(entry: Path) -> str:
    try:
        return (entry / "comm").read_text(errors="replace").strip()
    except OSError:
        return ""


def _pids(proc: Path) -> list[Path]:
    try:
        return [e for e in proc.iterdir() if e.name.isdigit()]
    except OSError:
        return []


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs: ``file:PATH`` or ``process:NAME`` keys added, removed or changed."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
