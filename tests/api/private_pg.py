"""A PostgreSQL server of one test's own (``initdb`` + ``pg_ctl`` as the postgres user, in a
temporary directory of /tmp, on a free loopback port), so the test can restart it or ``kill -9`` it without
disturbing the shared server other tests use."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import require


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie holds nothing


class PrivatePostgres:
    """``start``, ``restart``, ``kill9`` (postmaster and its children, then crash recovery on the
    next ``start``) and ``stop``; ``url`` for the store."""

    def __init__(self) -> None:
        bindir = _bindir()
        require(bindir is not None, "needs the PostgreSQL server binaries (initdb, pg_ctl)")
        require(os.geteuid() == 0, "needs root to run initdb as the postgres user")
        try:
            self.user = pwd.getpwnam("postgres")
        except KeyError:
            require(False, "needs a postgres system user")
        assert bindir is not None
        self.bin = bindir
        # not under pytest's tmp_path: its parents are root's alone, the server runs as postgres
        self.root = root = Path(tempfile.mkdtemp(prefix="stockade-pg-"))
        self.data = root / "data"
        self.port = _free_port()
        self.url = f"postgresql://stockade@127.0.0.1:{self.port}/postgres"
        os.chown(root, self.user.pw_uid, self.user.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "stockade", "--auth=trust", "--no-sync"
        )  # fmt: skip

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        out = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if out.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)}: {out.stderr.strip()}\n{tail}")

    def _options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c fsync=on -c synchronous_commit=on"
        )

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self._options(),
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def restart(self) -> None:
        """A clean restart (``-m fast``: sessions are cut, what committed stays)."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self._options(),
            "-l", str(self.root / "server.log"), "-m", "fast", "-w", "-t", "60", "restart",
        )  # fmt: skip

    def kill9(self) -> None:
        """SIGKILL to the postmaster and every backend: a crash; the next start recovers from
        the WAL."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
        ).stdout.split()
        for p in [pid, *map(int, children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        killed = [pid, *map(int, children)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(map(_alive, killed)):
            time.sleep(0.05)
        # Dead, but perhaps a zombie until this container's init reaps it, and a zombie's pid
        # still answers kill(pid, 0): the server would take the lock file for a live one's.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        if not _alive(pid):
            (self.data / "postmaster.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except RuntimeError:
                self.kill9()
        shutil.rmtree(self.root, ignore_errors=True)
