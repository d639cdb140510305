"""Decisions on process events: attribute each to a workload (its cgroup, through the identity
directory), then per the workload's profile learn it (Discover), raise ``process.violation``
(Monitor) or kill it with SIGKILL and raise ``process.killed`` (Protect). Zero-drift profiles allow
only the image's own executables (path and hash) and learn nothing. The built-in suspicious list
raises ``process.suspicious`` in every mode (killed in Protect) and is never learned.

Kill happens after the exec (the process may have run for the moment it took to read and hash
it); :mod:`stockade.runtime.execgate` refuses the exec before it runs where fanotify allows. Host executables outside the workload's root (``ip``, ``unshare``, ``nsenter`` starting
or entering the container, before their chroot) are not judged: a process inside the root cannot
reach them. An executable that could not be read (the process already ended) is reported as
``process.unverified`` with what the kernel gave (pid, tgid, parent) outside Discover."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from stockade.identity import Directory, Workload
from stockade.model import Event, Severity
from stockade.runtime import proc, suspicious
from stockade.runtime.image import ImageFiles
from stockade.runtime.procevents import ProcEvent
from stockade.runtime.profile import Process, Profile, Profiles, Selector, Spec

SOURCE = "stockade.runtime"
_SLUGGY = re.compile(r"[^a-z0-9.-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Root:
    """Where a workload's files are on the host (its container's merged root) and its image."""

    path: str
    image: ImageFiles | None = None

    def inside(self, host_path: str) -> str | None:
        """``host_path`` as the workload sees it, or None when it lies outside its root."""
        if self.path in ("", "/"):
            return host_path
        if host_path == self.path or host_path.startswith(self.path + "/"):
            return host_path[len(self.path) :] or "/"
        return None


@dataclass(slots=True)
class Stats:
    events: int = 0
    attributed: int = 0
    execs: int = 0
    unreadable: int = 0
    learned: int = 0
    violations: int = 0
    suspicious: int = 0
    killed: int = 0
    denied: int = 0  # execs refused before they ran (fanotify)
    host_tools: int = 0  # execs of host binaries entering the workload (not judged)
    lost: int = 0  # times the kernel dropped events (we fell behind)


@dataclass(slots=True)
class _Known:
    workload: Workload
    path: str = ""  # its executable inside the workload, once it exec'd
    ppid: int = 0  # its parent, from the fork event (kept when /proc no longer has it)


def profile_name(w: Workload) -> str:
    return _SLUGGY.sub("-", f"{w.namespace}.{w.name}".lower()).strip(".-")[:63] or "workload"


@dataclass(slots=True)
class Monitor:
    directory: Directory
    roots: dict[str, Root]  # by Workload.display()
    profiles: Profiles
    emit: Callable[[list[Event]], None]
    node: str = ""
    kill: Callable[[int], None] = field(default=lambda pid: os.kill(pid, signal.SIGKILL))
    stats: Stats = field(default_factory=Stats)
    _pids: dict[int, _Known] = field(default_factory=dict)
    _hashes: proc.Hashes = field(default_factory=proc.Hashes)
    _learned: dict[str, dict[tuple[str, str, str], Process]] = field(default_factory=dict)
    _created: dict[str, Profile] = field(default_factory=dict)
    # pid -> the executable last judged for it: two execs in a row (``bash -c 'exec tail'``) may
    # both be read after the second one, and one process is reported once
    _judged: dict[int, str] = field(default_factory=dict)

    # -- attribution --------------------------------------------------------------------------

    def attribute(self, pid: int) -> Workload | None:
        """Known from its fork (the cheap path, and the only one once a short process is gone),
        else its cgroup now (a process moved into a workload's cgroup after it was forked)."""
        known = self._pids.get(pid)
        if known is not None:
            return known.workload
        cg = proc.cgroup_of(pid)
        return self.directory.workload_of_cgroup(cg) if cg is not None else None

    def _fork(self, ev: ProcEvent) -> None:
        """A child starts in its parent's cgroup: attribute it by the parent (known, or its
        cgroup read now; the parent usually outlives a short child, whose own files may be gone)."""
        parent = self._pids.get(ev.ptgid)
        if parent is None:
            cg = proc.cgroup_of(ev.ptgid)
            w = self.directory.workload_of_cgroup(cg) if cg is not None else None
            if w is None:
                return
            parent = self._pids[ev.ptgid] = _Known(w, "")
            exe = proc.exe_of(ev.ptgid)
            root = self.roots.get(w.display())
            if exe and root is not None:
                parent.path = root.inside(exe) or ""
        self.stats.attributed += 1
        self._pids[ev.pid] = _Known(parent.workload, parent.path, ev.ptgid)

    def handle(self, batch: list[ProcEvent]) -> None:
        out: list[Event] = []
        for ev in batch:
            self.stats.events += 1
            if ev.kind == "exit":
                self._judged.pop(ev.pid, None)
                if self._pids.pop(ev.pid, None) is not None:
                    self.stats.attributed += 1
                continue
            if ev.pid != ev.tgid:
                continue  # a thread: the process is what we judge
            if ev.kind == "fork":
                self._fork(ev)
                continue
            w = self.attribute(ev.pid)
            if w is None:
                continue
            self.stats.attributed += 1
            self._exec(ev, w, out)
        if out:
            self.emit(out)

    # -- one exec -----------------------------------------------------------------------------

    def _exec(self, ev: ProcEvent, w: Workload, out: list[Event]) -> None:
        self.stats.execs += 1
        root = self.roots.get(w.display(), Root(path="/"))
        exe = proc.exe_of(ev.pid)  # first: a short process may be gone a moment later
        sha = self._hashes.of(ev.pid) if exe else None
        cmdline = proc.cmdline_of(ev.pid) or ""
        known = self._pids.get(ev.pid)
        ppid = proc.parent_of(ev.pid) or (known.ppid if known else 0)
        parent = self.parent_path(ppid, root)
        profile = self.profile_for(w)
        base = {"pid": ev.pid, "tgid": ev.tgid, "ppid": ppid, "parent": parent}
        if exe is None or sha is None:
            self.stats.unreadable += 1
            if profile.mode != "discover" or profile.zero_drift:
                out.append(
                    self._event(
                        "process.unverified",
                        w,
                        profile,
                        f"process {ev.pid} in {w.display()} ended before its executable could be read",
                        {**base, "exe": None, "note": "executable and command line not readable"},
                        Severity.LOW,
                        "alert",
                    )
                )
            return
        path = root.inside(exe)
        if path is None:
            # a host executable (the tools that start or enter the container, before they
            # chroot): nothing inside the root can reach it, so it is plumbing, not drift
            self.stats.host_tools += 1
            self._pids[ev.pid] = _Known(w, "", ppid)
            return
        self._pids[ev.pid] = _Known(w, path, ppid)
        if self._judged.get(ev.pid) == path:
            return
        data = {**base, "exe": path, "sha256": sha, "cmdline": cmdline}
        hit = suspicious.matches(
            suspicious.Exec(
                workload=w,
                path=path,
                cmdline=cmdline,
                parent=parent,
                parent_listens=bool(parent) and proc.Listening.check(ppid),
            )
        )
        if hit is not None:
            self.stats.suspicious += 1
            self._judge(ev, w, profile, "process.suspicious", hit.reason, hit.id, data, out)
            return
        if profile.zero_drift:
            if root.image is not None and root.image.holds(path, sha):
                return
            why = "not in the image" if root.image is not None else "no image known"
            self._judge(ev, w, profile, "process.violation", why, "zero-drift", data, out)
            return
        if self.allowed_by(profile, path, sha, parent):
            return
        if profile.mode == "discover":
            self._learn(profile, path, sha, parent)
            return
        self._judge(
            ev, w, profile, "process.violation", "not in the profile", profile.name, data, out
        )

    def parent_path(self, ppid: int, root: Root) -> str:
        """The parent process's executable inside the workload ("" for one outside it)."""
        known = self._pids.get(ppid)
        if known is not None:
            return known.path
        exe = proc.exe_of(ppid)
        return (root.inside(exe) or "") if exe else ""

    def _judge(
        self,
        ev: ProcEvent,
        w: Workload,
        profile: Profile,
        kind: str,
        reason: str,
        rule: str,
        data: dict[str, object],
        out: list[Event],
    ) -> None:
        what = f"{data['exe']} in {w.display()}: {reason}"
        self._judged[ev.pid] = str(data["exe"])
        if profile.mode == "protect":
            try:
                self.kill(ev.pid)
            except ProcessLookupError:
                data = {**data, "note": "already ended"}
            self.stats.killed += 1
            if kind == "process.suspicious":
                out.append(self._event(kind, w, profile, what, data, Severity.HIGH, "kill", rule))
            out.append(
                self._event(
                    "process.killed",
                    w,
                    profile,
                    f"killed {what}",
                    {**data, "reason": reason},
                    Severity.HIGH,
                    "kill",
                    rule,
                )
            )
            return
        if kind == "process.violation":
            self.stats.violations += 1
        sev = Severity.HIGH if kind == "process.suspicious" else Severity.MEDIUM
        out.append(
            self._event(kind, w, profile, what, {**data, "reason": reason}, sev, "alert", rule)
        )

    def _event(
        self,
        kind: str,
        w: Workload,
        profile: Profile,
        message: str,
        data: dict[str, object],
        severity: Severity,
        action: str,
        rule: str | None = None,
    ) -> Event:
        return Event(
            kind=kind,
            message=message,
            severity=severity,
            source=SOURCE,
            resource=w.ref(),
            data=data,
            action=action,
            mode=profile.mode,
            node=self.node or None,
            rule=rule or profile.name,
        )

    # -- profiles -----------------------------------------------------------------------------

    def profile_for(self, w: Workload) -> Profile:
        found = self.profiles.for_workload(w)
        if found is not None:
            return found
        key = w.display()
        made = self._created.get(key)
        if made is None:
            made = Profile(
                name=profile_name(w),
                selector=Selector(namespace=w.namespace or None, pods=[w.name]),
                mode="discover",
            )
            self._created[key] = made
        return made

    def allowed_by(self, profile: Profile, path: str, sha: str, parent: str) -> bool:
        """In the profile, or learned for it in this run while it is in Discover (a profile
        applied since, in Monitor or Protect, is enforced as written: what it left out of what
        was learned is not allowed)."""
        if profile.allows(path, sha, parent):
            return True
        return profile.mode == "discover" and (path, sha, parent) in self._learned.get(
            profile.name, {}
        )

    def file_event(
        self, w: Workload, profile: Profile, data: dict[str, object], denied: bool
    ) -> None:
        """Report an open of a sensitive path for writing (by :mod:`stockade.runtime.filegate`):
        denied in Protect, alerted otherwise."""
        kind, action = ("file.denied", "deny") if denied else ("file.violation", "alert")
        verb = "refused writing" if denied else "opened for writing"
        self.emit(
            [
                self._event(
                    kind, w, profile, f"{data['exe']} {verb} {data['path']} in {w.display()}",
                    data, Severity.HIGH, action, "file.sensitive",
                )
            ]
        )  # fmt: skip

    def refuse(
        self, w: Workload, profile: Profile, data: dict[str, object], reason: str, rule: str
    ) -> None:
        """Report an exec refused before it ran (by :mod:`stockade.runtime.execgate`)."""
        self.stats.denied += 1
        what = f"{data['exe']} in {w.display()}: {reason}"
        self.emit(
            [
                self._event(
                    "process.denied", w, profile, f"refused {what}", {**data, "reason": reason},
                    Severity.HIGH, "deny", rule,
                )
            ]
        )  # fmt: skip

    def _learn(self, profile: Profile, path: str, sha: str, parent: str) -> None:
        bucket = self._learned.setdefault(profile.name, {})
        if len(profile.processes) + len(bucket) >= 10_000:
            return  # a profile's bound; what is beyond it stays unlearned (and unallowed later)
        bucket[(path, sha, parent)] = Process(path=path, sha256=sha, parent=parent)
        self.stats.learned += 1

    def learned(self) -> Profiles:
        """The profiles with everything learned so far (what Discover leaves behind)."""
        out = []
        for p in [*self.profiles.spec.profiles, *self._created.values()]:
            extra = list(self._learned.get(p.name, {}).values())
            out.append(p.model_copy(update={"processes": [*p.processes, *extra]}) if extra else p)
        return Profiles(spec=Spec(profiles=out))
