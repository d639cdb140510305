"""A real controller for tests: ``stockade controller`` as a subprocess on loopback, HTTPS with
its generated CA, on SQLite or PostgreSQL (a schema of its own in the STOCKADE_TEST_PG database,
so other tests resetting ``public`` do not pull the floor from under it)."""

from __future__ import annotations

import functools
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from stockade.api import auth
from stockade.api.auth import Principal, create_token
from stockade.api.tables import users
from stockade.model import Event, ResourceRef, Severity
from stockade.store import Store, open_store
from tests.conftest import drop_pg_schema, pg_schema_url

SRC = Path(__file__).resolve().parents[2] / "src"
PASSWORD = "correct horse battery staple"


def pg_url(schema: str) -> str:
    """PG_URL in a freshly emptied schema of its own (one per xdist worker)."""
    return pg_schema_url(schema)


@functools.cache
def _password_hash() -> str:
    """PASSWORD hashed as ``add_user`` hashes it, once per test process: an argon2 hash takes
    0.3 s, and every controller started has two users with that password."""
    return str(auth._hasher().hash(PASSWORD))


def add_users(store: Store, roles: dict[str, str], *, actor: Principal) -> None:
    """Users (name -> role) with PASSWORD, stored and audited as ``add_user`` does, with the
    process's one hash of it (the controller verifies a login against it all the same)."""
    now = datetime.now(UTC)
    rows = [
        {"name": name, "password_hash": _password_hash(), "role": role, "created_at": now}
        for name, role in roles.items()
    ]
    with store.begin() as conn:
        conn.execute(insert(users), rows)
    for row in rows:
        info = {"name": row["name"], "role": row["role"], "created_at": now.isoformat()}
        auth.audit(store, actor, "user_added", after=info)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Controller:
    def __init__(self, url: str, workdir: Path, *args: str) -> None:
        self.args = list(args)  # more options of ``stockade controller`` (--rules, ...)
        self.db_url = url
        self.workdir = workdir
        self.store: Store = open_store(url)
        self.port = _free_port()
        self.base = f"https://127.0.0.1:{self.port}"
        self.ca = workdir / "tls" / "ca.crt"
        self.tokens: dict[str, str] = {}
        admin = Principal(name="tests", role="admin", via="cli")
        for role in ("admin", "operator", "reader", "agent"):
            _, self.tokens[role] = create_token(
                self.store, name=f"t-{role}", role=role, actor=admin
            )
        add_users(self.store, {"alice": "admin", "rita": "reader"}, actor=admin)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        env.pop("STOCKADE_DB", None)
        self.log = (self.workdir / "controller.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stockade",
                "controller",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--db",
                self.db_url,
                "--cert-dir",
                str(self.workdir / "tls"),
                *self.args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.output())
            if self.ca.exists():
                try:
                    httpx.get(f"{self.base}/healthz", verify=self.tls(), timeout=1)
                    return
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise RuntimeError("controller did not start: " + self.output())

    def output(self) -> str:
        return (self.workdir / "controller.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
        self.store.close()

    def tls(self) -> ssl.SSLContext:
        """A client context that trusts only the controller's generated CA."""
        return ssl.create_default_context(cafile=str(self.ca))

    def client(self, role: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(
            base_url=self.base, verify=self.tls(), headers=headers, timeout=30, **kw
        )

    @contextmanager
    def as_role(self, role: str | None) -> Iterator[httpx.Client]:
        with self.client(role) as c:
            yield c


def event(i: int = 0, **kw: Any) -> dict[str, Any]:
    kw.setdefault("kind", "dlp.sensitive_in_clear")
    kw.setdefault("message", f"event {i}")
    kw.setdefault("at", datetime.now(UTC))
    kw.setdefault("id", uuid.uuid4().hex)
    return Event(**kw).to_dict()


AGENT = {"name": "node-1-sensor", "node": "node-1", "version": "0.1.0", "capabilities": ["dlp"]}


def batch(events: list[dict[str, Any]], agent: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"agent": agent or AGENT, "events": events}


def running_controller(
    kind: str, tmp_path_factory: Any, schema: str, *args: str
) -> Iterator[Controller]:
    """A started controller on ``kind`` ("sqlite" or "postgres"), stopped after; ``args`` are
    more options of ``stockade controller``."""
    workdir = tmp_path_factory.mktemp("controller")
    url = f"sqlite:///{workdir / 'stockade.db'}" if kind == "sqlite" else pg_url(schema)
    c = Controller(url, workdir, *args)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def own_controller(kind: str, tmp_path_factory: Any, prefix: str) -> Iterator[Controller]:
    """``running_controller`` on a PostgreSQL schema of this process's own (``PREFIX_PID``),
    dropped after: modules running at the same time elsewhere empty the shared schemas."""
    schema = f"{prefix}_{os.getpid()}"
    try:
        yield from running_controller(kind, tmp_path_factory, schema)
    finally:
        if kind == "postgres":
            drop_pg_schema(schema)


LAB_CARD = "4111 1111 1111 1111"


def card_in_clear_from_crm() -> Event:
    """The event a sensor sends when the lab's marketing/crm posts a card in clear to shop/orders."""
    return Event(
        kind="dlp.sensitive_in_clear",
        severity=Severity.HIGH,
        source="sensor",
        message=f"dlp.payment_card in clear http marketing/crm -> shop/orders:8080: {LAB_CARD}",
        resource=ResourceRef(kind="pod", name="crm", namespace="marketing"),
        peer=ResourceRef(kind="pod", name="orders", namespace="shop"),
        data={"sensor": "dlp.payment_card", "evidence": [LAB_CARD], "server_port": 8080},
        id=uuid.uuid4().hex,
    )
