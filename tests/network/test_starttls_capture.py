"""STARTTLS judged TLS by the sensor on a real capture (issue 13): python's smtplib client
against an SMTP server on loopback that upgrades with real TLS (stdlib ssl, a fresh certificate),
recorded by tcpdump and read back like any pcap."""

from __future__ import annotations

import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from stockade.network.analysis import Inspectors
from stockade.network.sensor import run_pcap
from tests.network.test_flows import _inventory
from tests.support import require_root

pytestmark = pytest.mark.root


class SmtpServer:
    """One SMTP session: greeting, EHLO with STARTTLS offered, STARTTLS (or a refusal), then
    EHLO/MAIL/QUIT on whatever the session became."""

    def __init__(self, cert: Path, key: Path, *, offer_tls: bool) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.offer_tls = offer_tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(20)
        conn, _ = self.sock.accept()
        conn.settimeout(20)
        conn.sendall(b"220 mx.test ESMTP\r\n")
        f = conn.makefile("rb")
        while line := f.readline():
            verb = line.split()[0].upper() if line.split() else b""
            if verb == b"EHLO":
                offer = b"250-STARTTLS\r\n" if self.offer_tls else b""
                conn.sendall(b"250-mx.test\r\n" + offer + b"250 SIZE 1000000\r\n")
            elif verb == b"STARTTLS" and self.offer_tls:
                conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                conn = self.ctx.wrap_socket(conn, server_side=True)
                f = conn.makefile("rb")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            else:
                conn.sendall(b"250 ok\r\n")
        conn.close()
        self.sock.close()


def _certificate(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "mx.crt", tmp / "mx.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=mx.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _capture(tmp: Path, port: int, session) -> Path:
    pcap, log = tmp / f"smtp-{port}.pcap", tmp / f"smtp-{port}.err"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                "timeout",
                "60",
                "tcpdump",
                "-i",
                "lo",
                "-U",
                "--immediate-mode",
                "-n",
                "-s",
                "0",
                "-w",
                str(pcap),
                f"tcp port {port}",
            ],
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 15
        while b"listening on" not in log.read_bytes():  # its filter is attached from then on
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.05)
        session()
    finally:
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    assert "\n0 packets dropped by kernel" in log.read_text(), log.read_text()
    return pcap


def _record(pcap: Path):
    run = run_pcap(pcap, inspectors=Inspectors.default(), identities=_inventory().directory())
    (rec,) = [r for r in run.records if r.protocol == "proto.smtp"]
    return rec


@pytest.mark.parametrize("offer_tls", [True, False])
def test_sensor_judges_starttls_by_what_follows(tmp_path: Path, offer_tls: bool) -> None:
    require_root("tcpdump", "openssl")
    server = SmtpServer(*_certificate(tmp_path), offer_tls=offer_tls)

    def session() -> None:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
            smtp.ehlo("client.test")
            if offer_tls:
                smtp.starttls(context=ssl._create_unverified_context())  # a test certificate
                smtp.ehlo("client.test")
            smtp.mail("a@shop.test")

    rec = _record(_capture(tmp_path, server.port, session))
    server.thread.join(10)
    if offer_tls:
        assert rec.encrypted and rec.upgrade == "smtp-starttls"
        assert rec.tls is not None and rec.tls.version in ("TLS1.2", "TLS1.3")
    else:
        assert not rec.encrypted and rec.upgrade is None
