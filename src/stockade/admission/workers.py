"""Several webhook processes on one port, so every core decides reviews.

The parent binds one listening socket per worker on the same address with ``SO_REUSEPORT`` (the
kernel spreads new connections over them by a hash of the 4-tuple), then forks the workers. Each
worker builds its own application after the fork (database connections, threads and caches are
never shared across a fork) and serves its socket until SIGTERM. The parent only supervises:
SIGTERM or SIGINT stops every worker and waits for them; a worker that dies after it had been
serving a while is started again; one that dies at start-up stops the whole server with its exit
code (a configuration error would otherwise restart forever). Workers ask the kernel for SIGTERM
when the parent dies, so no worker outlives a killed parent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable

from stockade.model.errors import ConfigError
from stockade.workers import cpu_quota, default_workers, die_with_parent

__all__ = ["cpu_quota", "default_workers", "listening_socket", "serve_workers"]

log = logging.getLogger("stockade.admission")

STARTUP_GRACE = 5.0  # a worker that exits sooner than this after its start is a start-up failure
STOP_TIMEOUT = 20.0  # seconds the workers get to finish their requests before SIGKILL


def listening_socket(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A TCP socket listening on ``host:port`` that other ``SO_REUSEPORT`` sockets may share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def serve_workers(
    run_worker: Callable[[socket.socket], int], *, workers: int, host: str, port: int
) -> int:
    """Run ``run_worker(sock)`` in ``workers`` forked processes sharing ``host:port``; returns the
    exit code once they have all stopped (0 after SIGTERM/SIGINT, else the failed start-up's)."""
    first = listening_socket(host, port)
    port = first.getsockname()[1]  # port 0: the one the kernel chose, for every worker
    sockets = [first] + [listening_socket(host, port) for _ in range(workers - 1)]
    children: dict[int, tuple[int, float]] = {}  # pid -> (worker index, start time)
    stopping = False
    deadline: list[float] = []  # set when stopping starts: SIGKILL for workers still up after it

    def start(index: int) -> None:
        sock = sockets[index]
        pid = os.fork()
        if pid == 0:
            _child(run_worker, sock, [s for s in sockets if s is not sock])
        children[pid] = (index, time.monotonic())
        # the worker holds the only copy: when it dies its socket closes, and the kernel stops
        # sending new connections to it at once (not only when this loop notices the death)
        sock.close()

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            deadline.append(time.monotonic() + STOP_TIMEOUT)
        stopping = True
        for pid in children:
            _kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        for index in range(workers):
            start(index)
        while children:
            pid, status = _wait(deadline)
            if pid < 0:
                break
            if pid == 0:  # the workers did not stop in time
                for left in children:
                    _kill(left, signal.SIGKILL)
                deadline.clear()
                continue
            index, started = children.pop(pid, (-1, 0.0))
            if index < 0 or stopping:
                continue
            exit_code = os.waitstatus_to_exitcode(status)
            if time.monotonic() - started < STARTUP_GRACE:
                code = exit_code if exit_code > 0 else 3
                stop(signal.SIGTERM, None)
                continue
            log.warning("worker %d exited (%d); starting it again", index, exit_code)
            sockets[index].close()  # its backlog went with it; a fresh socket joins the group
            sockets[index] = listening_socket(host, port)
            start(index)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for sock in sockets:
            sock.close()
    return code


def _child(
    run_worker: Callable[[socket.socket], int], sock: socket.socket, others: list[socket.socket]
) -> None:
    """The worker process: never returns (``os._exit``, so the parent's cleanup never runs twice)."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        die_with_parent()
        for other in others:
            other.close()
        code = run_worker(sock)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait(deadline: list[float]) -> tuple[int, int]:
    """The next child to exit: (pid, status); (0, 0) once ``deadline`` passes first, (-1, 0) when
    none is left. Polls, so a signal that starts the stop is acted on within a tick."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return -1, 0
        if pid:
            return pid, status
        if deadline and time.monotonic() >= deadline[0]:
            return 0, 0
        time.sleep(0.05)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
