"""Real receivers on loopback for the notifier tests: an HTTP(S) server that records every request
and checks webhook signatures with its own HMAC, a server that accepts and never answers, rsyslog
(Debian's) with its own configuration, and an aiosmtpd server with STARTTLS. Each is bounded in
time and cleaned up by its fixture."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from stockade.admission.certs import ServingFiles, ensure_serving_cert
from tests.support import require

WEBHOOK_SECRET = "receiver-secret-0123456789abcdef"


def make_certs(directory: Path) -> ServingFiles:
    """A private CA and a serving certificate for 127.0.0.1 / localhost."""
    return ensure_serving_cert(directory, service="receiver", namespace="test")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None  # None: no signature header

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Answers each POST with the next status of ``statuses`` (the last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    secret: str = WEBHOOK_SECRET
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        sig = headers.get("x-stockade-signature")
        ok = None
        if sig is not None:
            want = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(sig, want)
        self.requests.append(Request(path, headers, body, ok))
        return self.statuses[min(len(self.requests) - 1, len(self.statuses) - 1)]


@contextmanager
def serve_http(receiver: HttpReceiver, certs: ServingFiles | None) -> Iterator[HttpReceiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(min(length, 1 << 20))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.record(self.path, headers, body)
            reply = b"ok" if status < 300 else b"receiver says no"
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if certs is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs.cert, certs.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    receiver.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class SilentServer:
    """Accepts connections and never answers a byte; counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for c in self.connections:
            c.close()
        self.sock.close()


# ------------------------------------------------------------------------------------ rsyslog

_PROBE = (
    '{\\"pri\\":\\"%pri%\\",\\"ver\\":\\"%protocol-version%\\",\\"host\\":\\"%hostname:::json%\\",'
    '\\"app\\":\\"%app-name:::json%\\",\\"procid\\":\\"%procid:::json%\\",'
    '\\"msgid\\":\\"%msgid:::json%\\",\\"sd\\":\\"%structured-data:::json%\\",'
    '\\"msg\\":\\"%msg:::json%\\",\\"raw\\":\\"%rawmsg:::json%\\",\\"input\\":\\"%inputname%\\"}\\n'
)


@dataclass
class Rsyslog:
    udp_port: int
    tcp_port: int
    tls_port: int
    out: Path
    ca_file: Path

    def lines(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if len(lines) >= count:
                return lines
            time.sleep(0.05)
        return self.lines()


@contextmanager
def run_rsyslog(directory: Path) -> Iterator[Rsyslog]:
    """Debian's rsyslogd in the foreground with only our inputs (no /dev/log, no system files):
    imudp, plain imtcp and imtcp with the OpenSSL stream driver, writing what it parsed as JSON."""
    binary = shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None
    )
    require(binary is not None, "needs rsyslogd (Debian package rsyslog)")
    require(
        Path("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so").exists()
        or any(Path("/usr/lib").glob("*/rsyslog/lmnsd_ossl.so")),
        "needs rsyslog's OpenSSL driver (Debian package rsyslog-openssl)",
    )
    assert binary is not None
    directory.mkdir(parents=True, exist_ok=True)
    certs = make_certs(directory / "tls")
    udp, tcp, tls = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    out = directory / "out.jsonl"
    conf = directory / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{directory}" maxMessageSize="64k")\n'
        'module(load="imudp")\n'
        'module(load="imtcp" maxSessions="50")\n'
        f'input(type="imudp" address="127.0.0.1" port="{udp}")\n'
        f'input(type="imtcp" address="127.0.0.1" port="{tcp}" name="tcp")\n'
        f'input(type="imtcp" address="127.0.0.1" port="{tls}" name="tls" streamDriver.name="ossl" '
        'streamDriver.mode="1" streamDriver.authMode="anon" '
        f'streamDriver.CAFile="{certs.ca_cert}" streamDriver.CertFile="{certs.cert}" '
        f'streamDriver.KeyFile="{certs.key}")\n'
        f'template(name="probe" type="string" string="{_PROBE}")\n'
        f'action(type="omfile" file="{out}" template="probe")\n'
    )
    log = (directory / "rsyslogd.log").open("wb")
    proc = subprocess.Popen(
        [binary, "-n", "-f", str(conf), "-i", str(directory / "rsyslogd.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not all(_listening(p) for p in (tcp, tls)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "rsyslogd did not start: " + (directory / "rsyslogd.log").read_text()[-2000:]
                )
            time.sleep(0.05)
        yield Rsyslog(udp, tcp, tls, out, certs.ca_cert)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------ SMTP


@dataclass
class MailBox:
    port: int
    ca_file: Path
    messages: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def run_smtp(directory: Path) -> Iterator[MailBox]:
    """aiosmtpd with STARTTLS required before MAIL FROM and AUTH (LOGIN/PLAIN, user ``alert``,
    password ``s3cret-pass``)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    certs = make_certs(directory / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    box = MailBox(port=free_port(), ca_file=certs.ca_cert)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "data": envelope.content,
                    "tls": session.ssl is not None,
                    "auth": getattr(session, "authenticated", False),
                }
            )
            return "250 OK"

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == b"alert"
            and auth_data.password == b"s3cret-pass"
        )
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=box.port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
        auth_required=False,
        ready_timeout=10,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
