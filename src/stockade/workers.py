"""What the multi-process servers share: how many workers a process should run (the cores it may
use) and how a forked worker follows its parent's death. Used by ``admission serve --workers``
and ``sensor --workers``."""

from __future__ import annotations

import ctypes
import math
import os
import signal
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def default_workers(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: those it may run on, capped by its cgroup's CPU quota
    (a pod limited to 2 CPUs on a 64-core node gets 2 workers, not 64)."""
    cores = len(os.sched_getaffinity(0))
    quota = cpu_quota(cgroup)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cpu_quota(cgroup: Path) -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``); None: no limit."""
    try:
        fields = (cgroup / "cpu.max").read_text().split()
    except OSError:
        try:
            fields = [
                (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip(),
                (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip(),
            ]
        except OSError:
            return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except (ValueError, IndexError):  # "max": no limit
        return None
    return quota / period if quota > 0 and period > 0 else None


def process_exists(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's too, and a zombie not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, owned by someone else
        return True
    return True


def die_with_parent() -> None:
    """In a forked worker: the kernel sends SIGTERM when the parent dies, so none outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(0)


def use_realtime(priority: int) -> None:
    """Run this process (and the threads and processes it starts from now on) under ``SCHED_RR``
    at ``priority`` (1-99): a worker woken by a request takes a core from any normal process at
    once instead of queueing behind them. Needs CAP_SYS_NICE (root, or a container granted
    SYS_NICE); without it: a ConfigError saying so. What should not compete at that priority
    (the event store process, on-demand image scans) calls :func:`normal_priority`."""
    from stockade.model.errors import ConfigError

    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except PermissionError as exc:
        raise ConfigError(
            f"--realtime-priority {priority}: the kernel refused SCHED_RR ({exc.strerror}); "
            "it needs CAP_SYS_NICE (in a pod: securityContext.capabilities.add [SYS_NICE])"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"--realtime-priority {priority}: {exc.strerror}") from exc


def normal_priority() -> None:
    """Put the calling thread back under the normal scheduler when it runs under a real-time one
    (any thread may lower its own policy); else nothing."""
    if runs_realtime():
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def runs_realtime() -> bool:
    """Whether the calling thread runs under a real-time scheduling policy."""
    return os.sched_getscheduler(0) in (os.SCHED_RR, os.SCHED_FIFO)
