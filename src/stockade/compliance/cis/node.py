"""The node being audited: its filesystem (live ``/`` or a tree mounted elsewhere) and its
process list (live ``/proc`` or a captured ``processes.json``)."""

from __future__ import annotations

import glob
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from stockade.model import InputError

PROCESS_FILE = ".stockade/processes.json"
_MAX_LINKS = 40


@dataclass(frozen=True, slots=True, kw_only=True)
class Process:
    pid: int
    argv: tuple[str, ...]
    env: dict[str, str] | None = None  # None: not captured / not readable


@dataclass(frozen=True, slots=True, kw_only=True)
class FileInfo:
    path: str  # as the node sees it (absolute, without the root prefix)
    mode: str  # permission bits in octal: "600"
    owner: str  # "user:group" (names from the node's own /etc/passwd and /etc/group)
    is_dir: bool


class FileProblem(Exception):
    """A file exists but cannot be read or parsed; the check becomes ERROR with this reason."""


@dataclass(slots=True)
class Node:
    """Read-only view of a node. ``root`` is ``/`` for the live host."""

    root: Path
    processes: tuple[Process, ...]
    process_source: str  # "/proc", a file path, or "none"
    proc_dir: Path | None = None  # a procfs to read environments from lazily (live or hostPID)
    _users: dict[int, str] | None = field(default=None, repr=False)
    _groups: dict[int, str] | None = field(default=None, repr=False)

    @property
    def live(self) -> bool:
        return self.root == Path("/")

    def host_path(self, path: str) -> Path:
        """The real path of a node path, following symlinks inside the root (an absolute link
        target is taken relative to the root, so nothing outside it is ever read)."""
        parts = [p for p in path.split("/") if p and p != "."]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = self.root.joinpath(*resolved, part)
            if candidate.is_symlink():
                hops += 1
                if hops > _MAX_LINKS:
                    raise FileProblem(f"{path}: too many levels of symbolic links")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            resolved.append(part)
        return self.root.joinpath(*resolved)

    def exists(self, path: str) -> bool:
        """True if something is at ``path``; a symlink loop counts (reading it is then an error)."""
        try:
            return self.host_path(path).exists()
        except FileProblem:
            return True
        except OSError:
            return False

    def expand(self, pattern: str) -> list[str]:
        """Node paths matching a glob pattern (a plain path is returned if it exists)."""
        if not any(ch in pattern for ch in "*?["):
            return [pattern] if self.exists(pattern) else []
        base = str(self.root).rstrip("/")
        hits = sorted(glob.glob(glob.escape(base) + pattern))
        return [h[len(base) :] or "/" for h in hits]

    def stat(self, path: str) -> FileInfo:
        try:
            st = self.host_path(path).stat()
        except PermissionError as exc:
            raise FileProblem(f"{path}: permission denied") from exc
        except OSError as exc:
            raise FileProblem(f"{path}: {exc.strerror}") from exc
        return FileInfo(
            path=path,
            mode=format(stat.S_IMODE(st.st_mode), "o"),
            owner=f"{self.user_name(st.st_uid)}:{self.group_name(st.st_gid)}",
            is_dir=stat.S_ISDIR(st.st_mode),
        )

    def walk(self, top: str, pattern: str = "") -> list[str]:
        """``top`` and every entry below it (node paths), optionally filtered by file name."""
        import fnmatch

        real = self.host_path(top)
        if not real.is_dir():
            return (
                [top]
                if real.exists() and (not pattern or fnmatch.fnmatch(real.name, pattern))
                else []
            )
        out = [] if pattern else [top]
        for dirpath, dirnames, filenames in os.walk(real):
            rel = (
                "/" + str(Path(dirpath).relative_to(self.root))
                if dirpath != str(self.root)
                else "/"
            )
            for name in sorted(dirnames + filenames):
                if pattern and not fnmatch.fnmatch(name, pattern):
                    continue
                out.append(str(Path(rel) / name))
        return out

    def read_text(self, path: str, limit: int = 4 * 1024 * 1024) -> str:
        real = self.host_path(path)
        try:
            st = real.stat()
        except PermissionError as exc:
            raise FileProblem(f"{path}: permission denied") from exc
        except OSError as exc:
            raise FileProblem(f"{path}: {exc.strerror}") from exc
        if stat.S_ISDIR(st.st_mode):
            raise FileProblem(f"{path}: is a directory")
        if not stat.S_ISREG(st.st_mode) and not (self.live and path.startswith("/proc/")):
            # a FIFO or device under --root would block or never end
            raise FileProblem(f"{path}: not a regular file")
        try:
            with real.open("rb") as fh:
                data = fh.read(limit + 1)
        except PermissionError as exc:
            raise FileProblem(f"{path}: permission denied") from exc
        except IsADirectoryError as exc:
            raise FileProblem(f"{path}: is a directory") from exc
        except OSError as exc:
            raise FileProblem(f"{path}: {exc.strerror}") from exc
        if len(data) > limit:
            raise FileProblem(f"{path}: larger than {limit} bytes")
        return data.decode("utf-8", errors="replace")

    def user_name(self, uid: int) -> str:
        if self._users is None:
            self._users = self._id_names("/etc/passwd")
        # uid and gid 0 are root on every Linux, whether or not the tree carries /etc/passwd
        return self._users.get(uid, "root" if uid == 0 else str(uid))

    def group_name(self, gid: int) -> str:
        if self._groups is None:
            self._groups = self._id_names("/etc/group")
        return self._groups.get(gid, "root" if gid == 0 else str(gid))

    def _id_names(self, path: str) -> dict[int, str]:
        names: dict[int, str] = {}
        try:
            text = self.read_text(path)
        except FileProblem:
            return names
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[2].isdigit():
                names.setdefault(int(fields[2]), fields[0])
        return names

    def env_of(self, proc: Process) -> dict[str, str] | None:
        """A process's environment: captured, or read from the procfs the list came from."""
        if proc.env is not None or self.proc_dir is None:
            return proc.env
        try:
            raw = (self.proc_dir / str(proc.pid) / "environ").read_bytes()
        except OSError:
            return None
        return dict(_split_env(raw))


def _split_env(raw: bytes) -> Iterator[tuple[str, str]]:
    for item in raw.split(b"\0"):
        key, sep, value = item.decode("utf-8", errors="replace").partition("=")
        if sep:
            yield key, value


def live_processes(proc_dir: Path = Path("/proc")) -> tuple[Process, ...]:
    """Every process in a procfs from <pid>/cmdline (kernel threads have none)."""
    procs = []
    for entry in os.scandir(proc_dir):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        argv = tuple(a.decode("utf-8", errors="replace") for a in raw.split(b"\0") if a)
        if argv:
            procs.append(Process(pid=int(entry.name), argv=argv))
    return tuple(sorted(procs, key=lambda p: p.pid))


# Environments hold secrets (tokens, passwords); by default a capture keeps only the variables
# the components audited here read as settings.
ENV_PREFIXES = ("ETCD_", "KUBE", "DOCKER_", "CONTAINERD_", "K3S_", "RKE2_")


def capture(*, env: str = "audit") -> dict[str, object]:
    """This host's process list in the ``processes.json`` format. ``env`` is ``audit`` (only
    variables starting with ENV_PREFIXES), ``all`` or ``none``."""
    out = []
    for proc in live_processes():
        item: dict[str, object] = {"pid": proc.pid, "cmdline": list(proc.argv)}
        if env != "none":
            try:
                raw = Path(f"/proc/{proc.pid}/environ").read_bytes()
            except OSError:
                raw = None  # unreadable: left out, so an audit that needs it says so
            if raw is not None:
                pairs = _split_env(raw)
                item["env"] = dict(pairs) if env == "all" else dict(_audit_env(pairs))
        out.append(item)
    return {"format": "stockade-processes/1", "processes": out}


# k3s/RKE2 settings that are credentials (k3s's own list of secret settings: tokens, the
# cluster secret, the VPN auth, S3 keys); the datastore endpoint keeps only its scheme, which is
# all an audit reads of it (etcd or kine), not the user and password a SQL endpoint carries
_SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSWORD|VPN_AUTH|ACCESS_KEY")
_ENDPOINT_ENV = re.compile(r"_DATASTORE_ENDPOINT$")


def _audit_env(pairs: Iterator[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """The variables an audit reads (ENV_PREFIXES), without credentials."""
    for key, value in pairs:
        if not key.startswith(ENV_PREFIXES) or _SECRET_ENV.search(key):
            continue
        if _ENDPOINT_ENV.search(key):
            scheme, sep, _ = value.partition("://")
            value = f"{scheme}://" if sep else ""
        yield key, value


# a node's ps as JSON is some kilobytes per process: far below this
_MAX_PROCESS_LIST = 64 * 1024 * 1024


def load_processes(path: Path) -> tuple[Process, ...]:
    """Parse a captured process list; a malformed file is an input error."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_PROCESS_LIST + 1)
    except OSError as exc:
        raise InputError(f"cannot read process list {path}: {exc.strerror}") from exc
    if len(raw) > _MAX_PROCESS_LIST:
        raise InputError(f"process list {path} is larger than {_MAX_PROCESS_LIST >> 20} MiB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"process list {path} is not valid JSON: {exc}") from exc
    except RecursionError:  # the decoder's own nesting guard
        raise InputError(f"process list {path} is not valid JSON: nested too deeply") from None
    items = data.get("processes") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(f"process list {path}: expected a list under 'processes'")
    procs = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"process list {path}: entry {n} is not an object")
        argv = item.get("cmdline")
        if isinstance(argv, str):
            argv = argv.split()
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise InputError(f"process list {path}: entry {n} needs 'cmdline' (a list of strings)")
        env = item.get("env")
        if env is not None and not (
            isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
        ):
            raise InputError(f"process list {path}: entry {n} has a bad 'env' (want string map)")
        pid = item.get("pid", n + 1)
        if not isinstance(pid, int):
            raise InputError(f"process list {path}: entry {n} has a bad 'pid'")
        procs.append(Process(pid=pid, argv=tuple(argv), env=env))
    return tuple(procs)


def open_node(root: Path | None = None, processes: Path | None = None) -> Node:
    """The live host, or a node filesystem at ``root`` with its process list: ``--processes``
    names a captured JSON file or a procfs directory (``/proc`` in a ``hostPID`` pod); with
    ``--root`` the default is ``ROOT/.stockade/processes.json``, else no processes."""
    base = Path("/") if root is None else root.resolve()
    live = base == Path("/")
    if not base.is_dir():
        raise InputError(f"--root {base}: not a directory")
    if processes is None and live:
        processes = Path("/proc")
    if processes is None and (base / PROCESS_FILE).is_file():
        processes = base / PROCESS_FILE
    if processes is None:
        return Node(root=base, processes=(), process_source="none")
    if processes.is_dir():
        if not (processes / "self").exists() and not any(
            p.name.isdigit() for p in processes.iterdir()
        ):
            raise InputError(f"--processes {processes}: a directory but not a procfs")
        return Node(
            root=base,
            processes=live_processes(processes),
            process_source=str(processes),
            proc_dir=processes,
        )
    return Node(root=base, processes=load_processes(processes), process_source=str(processes))
