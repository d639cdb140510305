"""Receivers for the notifier tests (see receivers.py); each stopped when its test ends."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from stockade.admission.certs import ServingFiles
from tests.events.receivers import (
    HttpReceiver,
    MailBox,
    Rsyslog,
    SilentServer,
    make_certs,
    run_rsyslog,
    run_smtp,
    serve_http,
)
from tests.support import require


@pytest.fixture
def certs(tmp_path: Path) -> ServingFiles:
    return make_certs(tmp_path / "receiver-tls")


@pytest.fixture
def http_receiver(certs: ServingFiles) -> Iterator[Callable[..., HttpReceiver]]:
    """A factory: ``http_receiver(statuses=[500, 200], tls=True)`` starts one more receiver."""
    with ExitStack() as stack:

        def start(statuses: list[int] | None = None, *, tls: bool = True) -> HttpReceiver:
            receiver = HttpReceiver(statuses=statuses or [200])
            return stack.enter_context(serve_http(receiver, certs if tls else None))

        yield start


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    with run_rsyslog(tmp_path / "rsyslog") as rs:
        yield rs


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[MailBox]:
    require(importlib.util.find_spec("aiosmtpd") is not None, "needs aiosmtpd (the test extra)")
    with run_smtp(tmp_path / "smtp") as box:
        yield box
