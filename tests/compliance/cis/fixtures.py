"""Builds fixture nodes for the CIS tests from a spec (``node.yaml``): a base tree copied from
``golden/_base``, overlay files, modes and owners (set for real with chmod/chown), and a process
list written to ``ROOT/.stockade/processes.json`` (static pods contribute their command lines,
as the kubelet would start them).

Spec keys: ``base`` (name under ``_base``), ``attrs`` ({pattern: "MODE USER:GROUP"}), ``remove``
(node paths), ``write`` ({path: text}), ``symlinks`` ({path: target}), ``processes`` (added),
``drop_processes`` (argv[0] basenames), ``env`` ({argv[0] basename: {VAR: value}}). A ``root/``
folder next to the spec is copied over the base.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


from tests.support import require  # noqa: E402,F401 - re-exported for the cis tests


def load_spec(path: Path) -> dict[str, Any]:
    spec = yaml.safe_load(path.read_text()) or {}
    spec["_dir"] = path.parent
    return spec


def build(spec: dict[str, Any], dest: Path) -> Path:
    """Materialise the node described by ``spec`` at ``dest`` (must not exist) and return it."""
    base: dict[str, Any] = {}
    if spec.get("base"):
        base = load_spec(GOLDEN / "_base" / f"{spec['base']}.yaml")
    if base.get("tree"):
        shutil.copytree(base["_dir"] / base["tree"], dest, symlinks=True)
    else:
        dest.mkdir(parents=True)
    overlay = spec["_dir"] / "root"
    if overlay.is_dir():
        shutil.copytree(overlay, dest, symlinks=True, dirs_exist_ok=True)
    for node_path in spec.get("remove") or []:
        target = dest / node_path.lstrip("/")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for node_path, text in (spec.get("write") or {}).items():
        target = dest / node_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    attrs = (
        {"*": base.get("files", "644 root:root")}
        | (base.get("attrs") or {})
        | (spec.get("attrs") or {})
    )
    _apply_attrs(dest, attrs, base.get("dirs", "755 root:root"))
    for node_path, target in (spec.get("symlinks") or {}).items():
        link = dest / node_path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(target)
    for node_path in (base.get("sockets") or []) + (spec.get("sockets") or []):
        _socket(dest / node_path.lstrip("/"))
    _apply_attrs(dest, {k: v for k, v in attrs.items() if k != "*"}, "")
    _write_processes(dest, base, spec)
    return dest


def _socket(path: Path) -> None:
    """A real Unix socket file (bound from its directory: socket paths are limited to 107 bytes)."""
    import socket

    path.parent.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.chdir(path.parent)
        sock.bind(path.name)
    finally:
        os.chdir(cwd)
        sock.close()


def _ids(root: Path, name: str) -> dict[str, int]:
    out = {}
    path = root / "etc" / name
    if path.exists():
        for line in path.read_text().splitlines():
            f = line.split(":")
            if len(f) >= 3:
                out[f[0]] = int(f[2])
    return out


def _apply_attrs(root: Path, attrs: dict[str, str], dir_default: str) -> None:
    users, groups = _ids(root, "passwd"), _ids(root, "group")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            real = Path(dirpath) / name
            if real.is_symlink():
                continue
            node_path = "/" + str(real.relative_to(root))
            if node_path.startswith("/.stockade"):
                continue
            spec = dir_default if real.is_dir() else ""
            for pattern, value in attrs.items():
                if pattern == "*" and real.is_dir():
                    continue
                if fnmatch.fnmatchcase(node_path, pattern):
                    spec = _merge(spec, value)
            _set(real, spec, users, groups)


def _merge(old: str, new: str) -> str:
    mode, owner = "", ""
    for part in f"{old} {new}".split():
        if ":" in part:
            owner = part
        else:
            mode = part
    return f"{mode} {owner}".strip()


def _set(path: Path, spec: str, users: dict[str, int], groups: dict[str, int]) -> None:
    for part in spec.split():
        if ":" in part:
            user, group = part.split(":")
            uid = users[user] if user in users else int(user)
            gid = groups[group] if group in groups else int(group)
            os.chown(path, uid, gid, follow_symlinks=False)
        else:
            path.chmod(int(part, 8))


def _write_processes(root: Path, base: dict[str, Any], spec: dict[str, Any]) -> None:
    procs: list[dict[str, Any]] = []
    drop = set(spec.get("drop_processes") or [])
    for item in base.get("processes") or []:
        if Path(item["cmdline"][0]).name not in drop:
            procs.append({"cmdline": list(item["cmdline"])})
    for item in spec.get("processes") or []:
        procs.append({"cmdline": list(item["cmdline"])})
    pod_dir = spec.get("static_pods", base.get("static_pods"))
    if pod_dir and (root / pod_dir.lstrip("/")).is_dir():
        for manifest in sorted((root / pod_dir.lstrip("/")).glob("*.yaml")):
            try:
                doc = yaml.safe_load(manifest.read_text())
                container = doc["spec"]["containers"][0]
            except (yaml.YAMLError, KeyError, TypeError, IndexError):
                continue  # a broken manifest starts no process
            argv = [
                str(a) for a in (container.get("command") or []) + (container.get("args") or [])
            ]
            procs.append({"cmdline": ["/usr/local/bin/" + argv[0], *argv[1:]]})
    env = spec.get("env") or {}
    for pid, p in enumerate(procs, start=1):
        p["pid"] = pid * 100
        name = Path(p["cmdline"][0]).name
        # a capture records every environment (stockade bench processes does)
        p["env"] = {str(k): str(v) for k, v in (env.get(name) or {}).items()}
    out = root / ".stockade" / "processes.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"format": "stockade-processes/1", "processes": procs}, indent=1))
