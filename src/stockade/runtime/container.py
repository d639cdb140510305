"""A lab pod's service as a container: an overlay of an image root filesystem (read-only lower,
a per-pod upper), its own mount, PID and UTS namespaces (``unshare`` + ``chroot``), the pod's network
namespace, and a cgroup v2 directory ``stockade.slice/<name>`` so every process it starts can be
attributed to the workload. Everything made here is removed by :func:`remove`.

``python -m stockade.runtime.container CGROUP HOSTNAME -- ARGV...`` is the small launcher: it moves
itself into the cgroup, takes a new UTS namespace with the pod's host name, then execs ``ARGV``
(``ip netns exec`` + ``unshare ... --root`` for a new container, ``nsenter`` to run something in a
running one).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stockade.model.errors import ConfigError, EnforcementError

SLICE = "stockade.slice"
CLONE_NEWUTS = 0x04000000
_MOUNTS = ("proc", "dev", "tmp", "run")


def cgroup2_root() -> Path:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup`` on a unified host, its
    ``unified`` directory on a hybrid one)."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "cgroup2":
            return Path(parts[1])
    raise EnforcementError("no cgroup v2 hierarchy is mounted on this host")


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    """One pod's container: where its files are and which cgroup holds its processes."""

    name: str  # the cgroup directory's name: "<prefix><pod>"
    image_root: Path  # the unpacked image (read-only lower layer)
    state: Path  # upper, work and the merged root live here

    @property
    def root(self) -> Path:
        return self.state / "root"

    @property
    def cgroup(self) -> str:
        """The cgroup v2 path as ``/proc/PID/cgroup`` shows it."""
        return f"/{SLICE}/{self.name}"

    def cgroup_dir(self) -> Path:
        return cgroup2_root() / SLICE / self.name


def prepare(c: Container) -> None:
    """Mount the overlay and create the cgroup."""
    for sub in ("upper", "work", "root"):
        (c.state / sub).mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={c.image_root},upperdir={c.state / 'upper'},workdir={c.state / 'work'}"
    _run(["mount", "-t", "overlay", "overlay", "-o", opts, str(c.root)])
    for d in _MOUNTS:
        (c.root / d).mkdir(exist_ok=True)
    c.cgroup_dir().mkdir(parents=True, exist_ok=True)


def start_args(c: Container, netns: str, hostname: str, argv: list[str]) -> list[str]:
    """The command that starts ``argv`` (a path inside the image) as the container's first
    process: in ``netns``, the cgroup, new UTS, mount and PID namespaces, chrooted to the overlay."""
    unshare = [
        "ip",
        "netns",
        "exec",
        netns,
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation=private",
        f"--root={c.root}",
        "--mount-proc=/proc",
        "--",
        *argv,
    ]
    return _launcher(c, hostname, unshare)


def exec_args(c: Container, init_pid: int, argv: list[str]) -> list[str]:
    """The command that runs ``argv`` inside the running container whose first process (a host
    pid) is ``init_pid``: its namespaces (network included), root and cgroup."""
    nsenter = ["nsenter", "-t", str(init_pid), "-m", "-p", "-u", "-n", "-r", "-w", "--", *argv]
    return _launcher(c, "", nsenter)


def _launcher(c: Container, hostname: str, argv: list[str]) -> list[str]:
    # the cgroup first, in the host's mount namespace (``ip netns exec`` remounts /sys)
    return [
        sys.executable,
        "-m",
        "stockade.runtime.container",
        str(c.cgroup_dir()),
        hostname,
        "--",
        *argv,
    ]


def init_pid(unshare_pid: int, timeout: float = 5.0) -> int:
    """The container's first process (pid 1 inside it): the child ``unshare`` forked."""
    deadline = time.monotonic() + timeout
    path = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            kids = path.read_text().split()
            if kids:
                return int(kids[0])
        time.sleep(0.02)
    raise EnforcementError(f"container process {unshare_pid} started no child")


def pids(c: Container) -> list[int]:
    try:
        return [int(p) for p in (c.cgroup_dir() / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def remove(c: Container) -> None:
    """Kill every process of the cgroup, remove it, unmount the overlay (safe to repeat)."""
    cg = c.cgroup_dir()
    if cg.exists():
        with contextlib.suppress(OSError):
            (cg / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + 5
        while pids(c) and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            cg.rmdir()
        with contextlib.suppress(OSError):
            cg.parent.rmdir()  # the slice, once no other container is left in it
    if os.path.ismount(c.root):
        _run(["umount", "-l", str(c.root)])


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [""]
        raise EnforcementError(f"{' '.join(args[:2])}: {tail[0]}")


def _enter(cgroup_dir: str, hostname: str, argv: list[str]) -> None:
    Path(cgroup_dir, "cgroup.procs").write_text(str(os.getpid()))
    if hostname:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWUTS) != 0:
            raise EnforcementError(f"unshare(UTS): {os.strerror(ctypes.get_errno())}")
        name = hostname.encode()
        if libc.sethostname(name, len(name)) != 0:
            raise EnforcementError(f"sethostname: {os.strerror(ctypes.get_errno())}")
    os.execvp(argv[0], argv)


def main(args: list[str]) -> int:
    if len(args) < 4 or args[2] != "--":
        raise ConfigError("usage: python -m stockade.runtime.container CGROUP HOSTNAME -- ARGV...")
    _enter(args[0], args[1], args[3:])
    return 0  # not reached: exec


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
