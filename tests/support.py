"""Helpers shared by tests (importable as ``tests.support``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# pytest-xdist's worker name ("gw0", "gw1", ...), "main" without xdist: for per-worker resources.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
# The suffix of this process's PostgreSQL schemas: the worker's name and the test run's id (xdist's,
# else this process's), so two runs on one machine (two worktrees, a developer's run beside CI's)
# never empty each other's schemas.
SCHEMA_SUFFIX = f"{WORKER}_{os.environ.get('PYTEST_XDIST_TESTRUNUID', '')[:8] or os.getpid()}"


def require(condition: bool, reason: str) -> None:
    """Skip outside CI, fail inside it: CI must have every server the suite needs."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI is missing a prerequisite: {reason}")
    pytest.skip(reason)


def require_root(*tools: str) -> None:
    """Root and the named programs, for tests that build network namespaces and kernel rules."""
    require(os.geteuid() == 0, "needs root (network namespaces, nftables)")
    for tool in tools:
        require(shutil.which(tool) is not None, f"needs {tool} on PATH")


class LoopbackServer:
    """A real HTTP(S) server on 127.0.0.1 (a free port) serving ``handler`` in threads until
    :meth:`close`; ``tls``: (certificate, key) files. ``host`` is ``127.0.0.1:<port>``."""

    def __init__(self, handler: type, tls: tuple[Path, Path] | None = None) -> None:
        import ssl
        import threading
        from http.server import ThreadingHTTPServer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
