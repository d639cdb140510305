"""The kernel's first look (clean.bpf.c, see clean.py) on the node's interfaces: built, attached
with tc on the ingress of every interface of the node's namespace but the loopback (a pod's
host-side veth sees the pod's segments; the uplink, the segments from outside), kept attached to
interfaces that appear later (new pods), and removed when the enforcer stops.

The program is loaded (and verified, about a second and a half) once, on the first interface;
the others get the same program through a pin in a BPF file system of its own (/run/stockade/bpf:
"tc -n" mounts a fresh /sys, where /sys/fs/bpf would not be seen), so they share its map of
directions. Without a pin each interface loads its own copy.
The filter has its own priority
(:data:`PREF`), so other tc programs on the same hook (a CNI's) are left alone, and a missing
filter only makes segments wait for the enforcer as before: never a packet let through unjudged.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import re
import struct
import subprocess
import tempfile
from pathlib import Path

from stockade.firewall.enforce import clean_build
from stockade.model.errors import EnforcementError
from stockade.network.netns import in_ns, run
from stockade.workers import process_exists

log = logging.getLogger("stockade.enforcer")

PREF = 0x5AC  # the tc filter priority of this program on an interface's ingress
SOURCE = clean_build.SOURCE
OBJECT = Path(__file__).with_name("clean.bpf.o")  # built by setup.py (clang) when it can
SECTION = "tc"


def compile_to(out: Path, clang: str | None = None) -> None:
    """Build clean.bpf.c into ``out`` with clang (-target bpf); EnforcementError on failure."""
    clang = clang or clean_build.clang()
    if clang is None:
        raise EnforcementError("no clang to build the classifier (apt install clang libbpf-dev)")
    cmd = clean_build.command(clang, out)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip())
        raise EnforcementError(f"cannot build the classifier: {first[:200]}")


def program() -> Path | None:
    """The built classifier: the installed object, else one built now into a cache (an editable
    install that never ran setup.py's build), else None (no clang: the enforcer runs without)."""
    if OBJECT.is_file() and OBJECT.stat().st_mtime >= SOURCE.stat().st_mtime:
        return OBJECT
    digest = hashlib.sha256(
        SOURCE.read_bytes() + SOURCE.with_name("clean_tables.h").read_bytes()
    ).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or tempfile.gettempdir()) / "stockade-bpf"
    out = cache / f"clean-{digest}.o"
    if out.is_file():
        return out
    try:
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = out.with_suffix(f".{os.getpid()}.tmp")
        compile_to(partial)
        partial.replace(out)
    except (OSError, EnforcementError) as exc:
        log.warning("the kernel's first look is off (%s): every inspected segment waits", exc)
        return None
    return out


BPF_FS = Path("/run/stockade/bpf")
_BPF_OBJ_PIN, _BPF_PROG_GET_FD_BY_ID = 6, 13
_SYS_BPF = {"x86_64": 321, "aarch64": 280}


def _bpf(cmd: int, attr: bytes) -> int:
    """The bpf(2) system call with ``attr`` (a union bpf_attr, zero-padded): its result."""
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        raise OSError(38, "bpf(2) number unknown on this machine")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr.ljust(128, b"\0"), 128)
    r = libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), buf, ctypes.c_uint(128))
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(r)


def pin(prog_id: int, path: Path) -> None:
    """Pin the loaded program ``prog_id`` at ``path`` (in the BPF file system, mounted if not)."""
    if not os.path.ismount(BPF_FS):
        BPF_FS.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["mount", "-t", "bpf", "stockade-bpf", str(BPF_FS)])
    fd = _bpf(_BPF_PROG_GET_FD_BY_ID, struct.pack("=III", prog_id, 0, 0))
    try:
        name = ctypes.create_string_buffer(str(path).encode())
        _bpf(_BPF_OBJ_PIN, struct.pack("=QII", ctypes.addressof(name), fd, 0))
    finally:
        os.close(fd)


def sweep_stale_pins() -> int:
    """Unlink the pins of enforcers that are gone (killed before they could remove theirs: a pin
    keeps its program and map in the kernel); the number removed."""
    if not os.path.ismount(BPF_FS):
        return 0
    removed = 0
    for entry in BPF_FS.glob("stockade-clean-*"):
        pid = entry.name.rpartition("-")[2]
        if pid.isdigit() and not process_exists(int(pid)):
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def interfaces(node: str) -> dict[int, str]:
    """The node namespace's interfaces but the loopback: {ifindex: name}."""
    out = run(in_ns(node, "ip", "-o", "link", "show")).stdout
    found: dict[int, str] = {}
    for line in out.splitlines():
        index, _, rest = line.partition(":")
        name = rest.strip().split(":")[0].split("@")[0]
        if index.strip().isdigit() and name and name != "lo":
            found[int(index)] = name
    return found


class Classifier:
    """The program on the node's interfaces: :meth:`sync` attaches it where it is missing."""

    def __init__(self, node: str, obj: Path) -> None:
        self.node, self.obj = node, obj
        self.attached: dict[int, str] = {}
        self.failed: set[int] = set()  # refused once: not retried every sync
        self.pinned: Path | None = None  # the program loaded once, for the other interfaces
        sweep_stale_pins()

    def sync(self) -> int:
        """Attach to the interfaces that appeared since the last call; the number attached."""
        try:
            now = interfaces(self.node)
        except EnforcementError as exc:
            log.warning("cannot list the node's interfaces: %s", exc)
            return 0
        self.attached = {i: n for i, n in self.attached.items() if now.get(i) == n}
        added = 0
        for index, name in now.items():
            if index in self.attached or index in self.failed:
                continue
            try:
                self._attach(name)
            except EnforcementError as exc:
                self.failed.add(index)
                log.warning("classifier not attached to %s (its segments wait): %s", name, exc)
                continue
            self.attached[index] = name
            added += 1
        return added

    def _tc(self, *args: str, check: bool = True, timeout: float = 20) -> str:
        # "tc -n" enters the network namespace only: the BPF file system stays in sight
        return run(["tc", "-n", self.node, *args], check=check, timeout=timeout).stdout

    def _attach(self, dev: str) -> None:
        # clsact may be there already (a CNI's programs): added when missing, never replaced
        self._tc("qdisc", "add", "dev", dev, "clsact", check=False)
        head = ["filter", "replace", "dev", dev, "ingress", "pref", str(PREF), "handle", "1"]
        if self.pinned is not None:
            self._tc(*head, "bpf", "object-pinned", str(self.pinned), "da")
            return
        self._tc(*head, "bpf", "da", "obj", str(self.obj), "sec", SECTION, timeout=120)
        shown = self._tc("filter", "show", "dev", dev, "ingress", "pref", str(PREF))
        found = re.search(r"\bid (\d+)", shown)
        if found is None:
            return
        path = BPF_FS / f"stockade-clean-{self.node}-{os.getpid()}"
        try:
            pin(int(found.group(1)), path)
        except (OSError, EnforcementError) as exc:
            log.info("classifier not pinned (%s): each interface loads its own", exc)
            return
        self.pinned = path

    def remove(self) -> None:
        """Take the program off every interface it was put on (idempotent)."""
        for name in self.attached.values():
            self._tc("filter", "del", "dev", name, "ingress", "pref", str(PREF), check=False)
        self.attached = {}
        if self.pinned is not None:
            self.pinned.unlink(missing_ok=True)
            self.pinned = None
