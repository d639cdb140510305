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


def die_with_parent() -> None:
    """In a forked worker: the kernel sends SIGTERM when the parent dies, so none outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(0)
