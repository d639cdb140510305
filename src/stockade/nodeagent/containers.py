"""Running containers as the container runtime left them on the node's disk: for each, its pod,
its root filesystem and its image, read from the runtime's own state under ``--host-root``
(hostPath ``/`` at ``/host`` in the DaemonSet). No runtime socket is used.

- **containerd** (CRI plugin, runtime v2 shim): one bundle per task,
  ``/run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/``, holding the OCI runtime
  ``config.json`` (``root.path`` is ``rootfs``, the bundle's ``rootfs`` folder, where the overlayfs
  snapshotter's snapshot, ``/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/<n>/fs``
  and the image's layers under it, is mounted) and ``init.pid``. The CRI annotations name it:
  ``io.kubernetes.cri.container-type`` (``sandbox`` for the pause container, skipped),
  ``io.kubernetes.cri.container-name``, ``io.kubernetes.cri.sandbox-name``,
  ``io.kubernetes.cri.sandbox-namespace``, ``io.kubernetes.cri.image-name`` (the image as the pod
  spec names it) and, where the runtime sets it, ``io.kubernetes.cri.image-ref``.
- **CRI-O** (containers/storage): ``/var/lib/containers/storage/overlay-containers/<id>/userdata/``
  with ``config.json`` (``root.path``: ``/var/lib/containers/storage/overlay/<layer>/merged``, also
  the ``io.kubernetes.cri-o.MountPoint`` annotation) and ``pidfile``; annotations
  ``io.kubernetes.cri-o.ContainerType``, the kubelet's labels ``io.kubernetes.container.name``,
  ``io.kubernetes.pod.name``, ``io.kubernetes.pod.namespace`` (copied as annotations, and in the
  ``io.kubernetes.cri-o.Labels`` JSON), ``io.kubernetes.cri-o.ImageName`` and
  ``io.kubernetes.cri-o.ImageRef`` (``repo@sha256:...`` on current CRI-O, the bare image ID on old
  ones).

The root filesystem scanned is the mounted one (the bundle's ``rootfs`` or CRI-O's ``merged``) when
it is there and not empty; else ``/proc/PID/root`` of the container's first process (the runtime's
pid file), when that process still runs and its root is not the node's. A lone snapshot ``fs`` is
never scanned: it is the container's writable layer only, not what runs. The image digest is the
runtime's when it names one (``...@sha256:``); else the pod's ``status.containerStatuses[].imageID``
of the same repository (the API's); else none (the scan is filed under the image's name).

Everything read is bounded: at most ``MAX_CONTAINERS`` state folders, ``config.json`` up to 4 MiB,
absolute paths kept under the host root (``..`` refused).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CONTAINERD_TASKS = "run/containerd/io.containerd.runtime.v2.task/k8s.io"
CRIO_CONTAINERS = "var/lib/containers/storage/overlay-containers"
MAX_CONTAINERS = 4096
MAX_CONFIG = 4 * 1024 * 1024
_ID = re.compile(r"[0-9a-f]{12,128}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeContainer:
    """One container of a pod, from the runtime's state."""

    id: str
    runtime: str  # containerd or cri-o
    namespace: str
    pod: str
    name: str  # the container's name in the pod spec
    image: str  # the image reference the runtime records
    digest: str | None  # sha256:... of the image, when the runtime names it
    rootfs: Path | None  # the mounted root filesystem (under the host root)
    pid: int | None  # the container's first process (host PID namespace)

    @property
    def workload(self) -> str:
        return f"{self.namespace}/{self.pod}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanTarget:
    """One running root filesystem to scan, and what to file its results under."""

    pod: str  # namespace/name
    source: str  # dir:PATH or pid:PID, as scan_image reads it
    image: str | None = None  # the image reference
    digest: str | None = None  # sha256:... the results are filed under
    container: str = ""  # the container's name in the pod ("" from the pod's process)
    runtime: str = ""  # containerd, cri-o, or "" (the pod's process, /proc/PID/root)


class RuntimeState:
    """The containers of both runtimes under ``host_root``; a ``config.json`` is parsed again only
    when it changes (the agent asks every few seconds)."""

    def __init__(self, host_root: Path) -> None:
        self.host_root = host_root
        self._cache: dict[Path, tuple[int, RuntimeContainer | None]] = {}

    def containers(self) -> list[RuntimeContainer]:
        """Every application container (no sandbox) of containerd and CRI-O."""
        found: list[RuntimeContainer] = []
        cache: dict[Path, tuple[int, RuntimeContainer | None]] = {}
        layouts = (
            (self.host_root / CONTAINERD_TASKS, ".", _containerd),
            (self.host_root / CRIO_CONTAINERS, "userdata", _crio),
        )
        for base, inner, read in layouts:
            for entry in _entries(base):
                folder = entry / inner
                path = folder / "config.json"
                try:
                    stamp = path.stat().st_mtime_ns
                except OSError:
                    continue  # being created or removed
                held = self._cache.get(path)
                if held is not None and held[0] == stamp:
                    container = held[1]
                else:
                    config = _config(path)
                    container = read(entry.name, folder, config, self.host_root) if config else None
                cache[path] = (stamp, container)
                if container is not None:
                    found.append(container)
        self._cache = cache  # containers gone are forgotten
        return found


def find(host_root: Path) -> list[RuntimeContainer]:
    """Every application container (no sandbox) of containerd and CRI-O found under ``host_root``."""
    return RuntimeState(host_root).containers()


def _entries(base: Path) -> list[Path]:
    try:
        with os.scandir(base) as it:
            names = [
                e.name for e in it if _ID.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return []  # no such runtime on this node
    return [base / n for n in sorted(names)[:MAX_CONTAINERS]]


def _config(path: Path) -> dict[str, object] | None:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG + 1)
    except OSError:
        return None  # being created or removed
    if len(data) > MAX_CONFIG:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _annotations(config: dict[str, object]) -> dict[str, str]:
    raw = config.get("annotations")
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, str)}


def _labels(text: str) -> dict[str, str]:
    """The pod's labels CRI-O keeps as JSON (the kubelet's io.kubernetes.* among them)."""
    try:
        labels = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(labels, dict):
        return {}
    return {str(k): v for k, v in labels.items() if isinstance(v, str)}


def _root_path(config: dict[str, object]) -> str:
    root = config.get("root")
    path = root.get("path") if isinstance(root, dict) else None
    return path if isinstance(path, str) else ""


def _under(host_root: Path, folder: Path, path: str) -> Path | None:
    """``path`` of the config (absolute on the node, or relative to the bundle) under the host root."""
    if not path or ".." in Path(path).parts:
        return None
    return host_root / path.lstrip("/") if path.startswith("/") else folder / path


def _pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="strict")[:32].strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 2**22 else None


def _digest(reference: str) -> str | None:
    _, at, digest = reference.rpartition("@")
    return digest if at and _DIGEST.fullmatch(digest) else None


def _containerd(
    ident: str, folder: Path, config: dict[str, object], host_root: Path
) -> RuntimeContainer | None:
    notes = _annotations(config)
    if notes.get("io.kubernetes.cri.container-type") != "container":
        return None  # the sandbox (pause) or not a CRI container
    namespace = notes.get("io.kubernetes.cri.sandbox-namespace", "")
    pod = notes.get("io.kubernetes.cri.sandbox-name", "")
    if not namespace or not pod:
        return None
    image = notes.get("io.kubernetes.cri.image-name", "")
    ref = notes.get("io.kubernetes.cri.image-ref", "")
    return RuntimeContainer(
        id=ident,
        runtime="containerd",
        namespace=namespace,
        pod=pod,
        name=notes.get("io.kubernetes.cri.container-name", ""),
        image=image,
        # a bare sha256:... is the image's ID (its config), not the digest it was pulled by
        digest=_digest(ref) or _digest(image),
        rootfs=_under(host_root, folder, _root_path(config) or "rootfs"),
        pid=_pid(folder / "init.pid"),
    )


def _crio(
    ident: str, folder: Path, config: dict[str, object], host_root: Path
) -> RuntimeContainer | None:
    notes = _annotations(config)
    if notes.get("io.kubernetes.cri-o.ContainerType") != "container":
        return None
    notes = {**_labels(notes.get("io.kubernetes.cri-o.Labels", "")), **notes}
    namespace = notes.get("io.kubernetes.pod.namespace", "")
    pod = notes.get("io.kubernetes.pod.name", "")
    if not namespace or not pod:
        return None
    image = notes.get("io.kubernetes.cri-o.ImageName", "")
    ref = notes.get("io.kubernetes.cri-o.ImageRef", "")
    root = _root_path(config) or notes.get("io.kubernetes.cri-o.MountPoint", "")
    return RuntimeContainer(
        id=ident,
        runtime="cri-o",
        namespace=namespace,
        pod=pod,
        name=notes.get("io.kubernetes.container.name", ""),
        image=image,
        # current CRI-O: repo@sha256:...; an old one's bare image ID is not a manifest digest
        digest=_digest(ref) or _digest(image),
        rootfs=_under(host_root, folder, root),
        pid=_pid(folder / "pidfile"),
    )


def repository(reference: str) -> str:
    """``registry/repo`` of ``registry/repo:tag`` or ``registry/repo@sha256:...``; Docker Hub's
    short names spelled out, as the kubelet reports them."""
    name = reference.partition("@")[0]
    slash = name.rfind("/")
    if ":" in name[slash + 1 :]:
        name = name[: name.rfind(":")]
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return name


def image_digest(container: RuntimeContainer, api_images: Iterable[str]) -> str | None:
    """The runtime's digest, else that of the pod's API ``imageID`` of the same repository."""
    if container.digest:
        return container.digest
    wanted = repository(container.image) if container.image else ""
    for image in api_images:
        digest = _digest(image)
        if digest and wanted and repository(image) == wanted:
            return digest
    return None


def scan_source(container: RuntimeContainer, proc: Path = Path("/proc")) -> str | None:
    """What ``scan_image`` reads for the container: ``dir:`` of its mounted root filesystem, else
    ``pid:`` of its first process; None when neither is there (a stopped container)."""
    root = container.rootfs
    if root is not None and _populated(root):
        return f"dir:{root}"
    if container.pid is not None:
        try:
            mine = os.stat(proc / str(container.pid) / "root")
        except OSError:
            return None  # the process has gone
        if (mine.st_dev, mine.st_ino) not in _node_roots(proc):
            return f"pid:{container.pid}"
    return None


def _node_roots(proc: Path) -> set[tuple[int, int]]:
    """The node's root (init's, with hostPID) and this process's own: neither is a container's."""
    roots = set()
    for path in (proc / "1" / "root", Path("/")):
        try:
            st = os.stat(path)
        except OSError:
            continue
        roots.add((st.st_dev, st.st_ino))
    return roots


def _populated(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(True for _ in it)
    except OSError:
        return False
