"""`admission serve --workers N`: processes sharing the port (SO_REUSEPORT), each answering."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.admission.test_webhook import post
from tests.admission.webhook import EXAMPLES, manifests, review_for, start_webhook, stop_webhook
from tests.support import require

OBJECTS = manifests()
EXPECTED = {"Deployment/prod/pay": True, "Deployment/shop/legacy": False, "Pod/shop/debug": False}


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def test_two_workers_answer_and_shutdown_leaves_no_process(tmp_path: Path) -> None:
    hook = start_webhook(
        tmp_path,
        "--policy",
        str(EXAMPLES / "policy.yaml"),
        "--vulns",
        str(EXAMPLES / "vulns.yaml"),
        "--workers",
        "2",
    )
    try:
        workers = children(hook.proc.pid)
        assert len(workers) == 2
        before = {p: cpu_ticks(p) for p in workers}
        for i in range(40):  # a new connection each time: the kernel spreads them by 4-tuple
            key = list(EXPECTED)[i % len(EXPECTED)]
            with hook.client() as c:
                assert post(c, review_for(OBJECTS[key]))["allowed"] is EXPECTED[key]
        worked = {p: cpu_ticks(p) - before[p] for p in workers}
        assert all(t > 0 for t in worked.values()), worked
    finally:
        err = stop_webhook(hook)
    assert hook.proc.returncode == 0, err
    assert wait_gone(workers) == []


def test_every_review_is_stored_once_by_the_workers_event_store_processes(
    tmp_path: Path,
) -> None:
    """Issue 19: each worker hands its events to a child process (nice +10) that stores them;
    at shutdown every review's event is stored, exactly once, and no process is left."""
    from stockade.store import open_store
    from stockade.store.records import list_events
    from stockade.store.writer_process import NICE

    hook = start_webhook(tmp_path, "--vulns", str(EXAMPLES / "vulns.yaml"), "--workers", "2")
    try:
        workers = children(hook.proc.pid)
        stores = [c for w in workers for c in children(w)]
        assert len(stores) == 2
        assert all(
            b"stockade.store.writer_process" in Path(f"/proc/{c}/cmdline").read_bytes()
            for c in stores
        )
        lowered = os.getpriority(os.PRIO_PROCESS, 0) + NICE
        deadline = time.monotonic() + 10  # each lowers its own priority as it starts
        while time.monotonic() < deadline and any(
            os.getpriority(os.PRIO_PROCESS, c) != lowered for c in stores
        ):
            time.sleep(0.05)
        assert all(os.getpriority(os.PRIO_PROCESS, c) == lowered for c in stores)
        uids = set()
        for i in range(60):  # new connections: both workers answer
            key = list(EXPECTED)[i % len(EXPECTED)]
            review = review_for(OBJECTS[key])
            uids.add(review["request"]["uid"])
            with hook.client() as c:
                post(c, review)
    finally:
        err = stop_webhook(hook)
    assert hook.proc.returncode == 0, err
    # Stored before the server's exit: each worker stops its child before its own end.
    stored = [e.data.get("uid") for e in list_events(open_store(hook.db), kind="admission.*")]
    assert [c for c in stores if alive(c)] == []
    assert wait_gone(workers) == []
    assert sorted(u for u in stored if u in uids) == sorted(uids)  # each once, none missing


def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    hook = start_webhook(tmp_path, "--vulns", str(EXAMPLES / "vulns.yaml"), "--workers", "2")
    workers = children(hook.proc.pid)
    hook.proc.send_signal(signal.SIGKILL)
    hook.proc.communicate(timeout=20)  # EOF once the workers, which share its pipes, are gone
    assert wait_gone(workers) == []


def test_a_worker_failing_at_start_stops_the_server_with_its_exit_code(tmp_path: Path) -> None:
    # Credentials without --scan-registry are refused when a worker builds its scan source.
    cmd = [
        sys.executable,
        "-m",
        "stockade",
        "admission",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--cert-dir",
        str(tmp_path / "certs"),
        "--db",
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        "--username",
        "u",
        "--password",
        "p",
        "--workers",
        "2",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert out.returncode == 2
    assert "stockade: error: --username needs --scan-registry" in out.stderr
    assert "Traceback" not in out.stderr


def test_each_worker_warms_its_decision_cache_from_the_facts_file() -> None:
    from stockade.admission.vulns import CachedVulnSource, FileVulnSource

    facts = FileVulnSource(EXAMPLES / "vulns.yaml")

    class Remote:  # answers like the scan store would: from elsewhere, never ready by itself
        def summary(self, image: str, *, budget: object) -> object:
            return facts.summary(image, budget=budget)  # type: ignore[arg-type]

        def known_images(self, limit: int) -> list[str]:
            return facts.known_images(limit)

        def is_ready(self, image: str) -> bool:
            return False

        def saturation(self) -> None:
            return None

    cached = CachedVulnSource(Remote())  # type: ignore[arg-type]
    images = facts.known_images(1000)
    assert images and not any(cached.is_ready(i) for i in images)
    assert cached.warm() == len(images)
    assert all(cached.is_ready(i) for i in images)
    # the facts file itself answers from memory, for the images it does not list too
    assert CachedVulnSource(facts).is_ready("registry.example/never/listed:1")


def test_default_workers_follow_the_cgroup_cpu_quota(tmp_path: Path) -> None:
    from stockade.admission.workers import cpu_quota, default_workers

    cores = len(os.sched_getaffinity(0))
    assert default_workers(tmp_path) == cores  # no cgroup files: every core
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) is None and default_workers(tmp_path) == cores
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: one worker
    assert cpu_quota(tmp_path) == 0.5 and default_workers(tmp_path) == 1
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")  # cgroup v1: 1 CPU
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert default_workers(tmp_path) == 1


def _policy_of(pid: int) -> set[int]:
    """The scheduling policies of all threads of ``pid``."""
    return {os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{pid}/task")}


def test_realtime_priority_serves_under_sched_rr_and_stores_under_the_normal_policy(
    tmp_path: Path,
) -> None:
    require(os.geteuid() == 0, "needs CAP_SYS_NICE (root) for SCHED_RR")
    hook = start_webhook(
        tmp_path,
        "--policy",
        str(EXAMPLES / "policy.yaml"),
        "--vulns",
        str(EXAMPLES / "vulns.yaml"),
        "--workers",
        "2",
        "--realtime-priority",
        "3",
    )
    try:
        with hook.client() as c:
            assert post(c, review_for(OBJECTS["Deployment/prod/pay"]))["allowed"] is True
        workers = children(hook.proc.pid)
        assert len(workers) == 2
        for w in workers:
            assert _policy_of(w) == {os.SCHED_RR}
            assert os.sched_getparam(w).sched_priority == 3
            stores = children(w)
            assert stores, "each worker has its event store process"
            for s in stores:
                assert _policy_of(s) == {os.SCHED_OTHER}
                deadline = time.monotonic() + 20  # it lowers its own priority as it starts
                while os.getpriority(os.PRIO_PROCESS, s) != 10 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert os.getpriority(os.PRIO_PROCESS, s) == 10
    finally:
        stop_webhook(hook)


def test_realtime_priority_without_cap_sys_nice_is_a_one_line_error(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "drops CAP_SYS_NICE from root's bounding set")
    libc = ctypes.CDLL(None, use_errno=True)

    def without_sys_nice() -> None:  # root keeps only the bounding set across exec
        libc.prctl(24, 23, 0, 0, 0)  # PR_CAPBSET_DROP, CAP_SYS_NICE

    cmd = [sys.executable, "-m", "stockade", "admission", "serve", "--port", "0"]
    cmd += ["--cert-dir", str(tmp_path / "certs"), "--db", f"sqlite:///{tmp_path / 'db'}"]
    cmd += ["--realtime-priority", "1"]
    r = subprocess.run(cmd, preexec_fn=without_sys_nice, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("stockade: error: --realtime-priority 1: ")
    assert "CAP_SYS_NICE" in lines[0]
