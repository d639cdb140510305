"""Issue 11, High 1: card numbers and SSNs in protocol metadata left the process unmasked.

A card in a URL path, a Host header, a DNS name, a TLS SNI, a PostgreSQL user, a Kafka client id,
an SMTP greeting, an SSH banner... was stored in ``network_connections``, printed by ``sensor
--format json`` and copied into ``tls.weak_version`` events, while the DLP engine reported the same
number masked. Every string now leaves through one gate (``stockade.model.redact``). The end-to-end
test plants numbers in every metadata field of every protocol detector, runs the real sensor on a
real pcap into a real SQLite file, and looks for any formatting of them everywhere it wrote.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sqlite3
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.model import Event, Finding, Pillar, ResourceRef, Severity
from stockade.model.redact import (
    RedactingFilter,
    digits_of,
    own_id,
    redact,
    redact_text,
    redact_text_fully,
)
from stockade.network.dlp.validators import luhn_check_digit
from stockade.store import Store
from stockade.store.records import (
    OWN_IDS,
    _clean,
    _storable_text,
    list_events,
    list_findings,
    record_events,
    record_findings,
    storable,
)
from tests.network import frames as F

# ---------------------------------------------------------------------------------------------
# Planted numbers: Luhn-valid cards of every length the gate covers, and SSNs that pass the rules.


def _card(prefix: str, length: int, seed: int) -> str:
    rng = random.Random(seed)
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - 1 - len(prefix)))
    return body + luhn_check_digit(body)


_GROUPS = {13: (4, 4, 5), 14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}


def shaped(number: str, sep: str) -> str:
    """``number`` written with ``sep`` between its usual groups (3-2-4 for an SSN)."""
    sizes = (3, 2, 4) if len(number) == 9 else _GROUPS[len(number)]
    parts, at = [], 0
    for n in sizes:
        parts.append(number[at : at + n])
        at += n
    return sep.join(parts)


def any_format(number: str) -> re.Pattern[bytes]:
    """The digits of ``number`` in order with up to three non-digits (or a %20) between any two:
    plain, spaced, dashed, dotted, URL-encoded, or any mix."""
    gap = rb"(?:[^0-9]|%2[0dDeE]){0,3}"
    return re.compile(gap.join(d.encode() for d in number))


PLANTED: dict[str, str] = {}  # field -> planted number (digits only)


def plant(field: str, number: str) -> str:
    PLANTED[field] = number
    return number


# ---------------------------------------------------------------------------------------------
# Real protocol bytes, one conversation per detector (layouts from each protocol's specification).


def _http1() -> tuple[bytes, bytes]:
    path = shaped(plant("http.path", _card("4", 16, 1)), "")
    host = shaped(plant("http.host", _card("51", 16, 2)), "-")
    req = f"GET /v1/cards/{path}/charge HTTP/1.1\r\nHost: {host}.shop.example\r\n\r\n"
    return req.encode(), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def _http1_ssn() -> tuple[bytes, bytes]:
    ssn = plant("http.path ssn", "536228401")
    card = shaped(plant("http.path %20", _card("6011", 16, 3)), "%20")
    host = shaped(plant("http.host dotted", _card("37", 15, 4)), ".")
    req = f"GET /people/{shaped(ssn, '-')}/cards/{card} HTTP/1.1\r\nHost: {host}.example\r\n\r\n"
    return req.encode(), b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def json_escaped(text: str, every: int = 1) -> str:
    """``text`` with every ``every``-th character written as a JSON escape (``4`` -> ``\\u0034``)."""
    return "".join(f"\\u{ord(c):04x}" if i % every == 0 else c for i, c in enumerate(text))


def _http1_spelled() -> tuple[bytes, bytes]:
    # a card in JSON escapes (all of it, and every other character), one with UTF-8 no-break
    # spaces between its groups, and a Maestro 56 card with points in the Host
    escaped = json_escaped(shaped(plant("http.path escaped", _card("4", 16, 40)), ""))
    mixed = json_escaped(shaped(plant("http.path half escaped", _card("55", 16, 41)), "-"), 2)
    nbsp = shaped(plant("http.path nbsp", _card("6011", 16, 42)), "\u00a0")
    host = shaped(plant("http.host maestro dotted", _card("56", 16, 43)), ".")
    path = f"/v1/{escaped}/c/{mixed}/n/{nbsp}/"
    req = f"GET {path} HTTP/1.1\r\nHost: {host}.example\r\n\r\n"
    return req.encode(), b"HTTP/1.1 204 No Content\r\n\r\n"


def _dns_question(name: str, response: bool) -> bytes:
    flags = 0x8180 if response else 0x0100
    head = struct.pack("!HHHHHH", 0x4A4A, flags, 1, 0, 0, 0)
    labels = b"".join(bytes([len(x)]) + x.encode() for x in name.rstrip(".").split("."))
    return head + labels + b"\0" + struct.pack("!HH", 1, 1)


def _dns_udp() -> tuple[bytes, bytes]:
    name = shaped(plant("dns.qname dotted", _card("4", 16, 5)), ".") + ".pay.example."
    return _dns_question(name, False), _dns_question(name, True)


def _dns_tcp() -> tuple[bytes, bytes]:
    name = f"ssn{plant('dns.qname ssn', '219456781')}.x{plant('dns.qname', _card('4', 13, 6))}.example."
    q, a = _dns_question(name, False), _dns_question(name, True)
    return struct.pack("!H", len(q)) + q, struct.pack("!H", len(a)) + a


def _client_hello(sni: str, version: int = 0x0301) -> bytes:
    name = sni.encode()
    server_name = struct.pack("!BH", 0, len(name)) + name
    sni_ext = struct.pack("!HH", 0, len(server_name) + 2) + struct.pack("!H", len(server_name))
    sni_ext += server_name
    body = struct.pack("!H", version) + bytes(32) + b"\0" + struct.pack("!HH", 2, 0x002F)
    body += b"\x01\x00" + struct.pack("!H", len(sni_ext)) + sni_ext
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16" + struct.pack("!HH", 0x0301, len(handshake)) + handshake


def _server_hello(version: int = 0x0301) -> bytes:
    body = struct.pack("!H", version) + bytes(32) + b"\0" + struct.pack("!HB", 0x002F, 0)
    handshake = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16" + struct.pack("!HH", version, len(handshake)) + handshake


def _tls() -> tuple[bytes, bytes]:
    # TLS 1.0: a tls.weak_version event, whose data and message carry the SNI
    sni = plant("tls.sni", _card("4", 16, 7)) + ".pay.example"
    return _client_hello(sni), _server_hello()


def _postgres() -> tuple[bytes, bytes]:
    user = shaped(plant("postgres.user", _card("55", 16, 8)), " ")
    database = shaped(plant("postgres.database", "401335012"), "-")
    app = shaped(plant("postgres.application_name", _card("4", 19, 9)), ".")
    params = b"".join(
        k + b"\0" + v.encode() + b"\0"
        for k, v in ((b"user", user), (b"database", database), (b"application_name", app))
    )
    body = struct.pack("!I", 196608) + params + b"\0"
    return struct.pack("!i", 4 + len(body)) + body, b"R" + struct.pack("!ii", 8, 0)


def _postgres_ssl() -> tuple[bytes, bytes]:
    sni = "db-" + shaped(plant("postgres tls.sni", _card("36", 14, 10)), "-") + ".example"
    request = struct.pack("!iI", 8, 80877103)
    return request + _client_hello(sni, 0x0303), b"S" + _server_hello(0x0303)


def _mysql() -> tuple[bytes, bytes]:
    version = "8.0.36-" + plant("mysql.version", _card("35", 16, 11))
    body = (b"\x0a" + version.encode() + b"\0" + struct.pack("<I", 11) + b"abcdefgh" + b"\0"
            + struct.pack("<H", 0xF7FF) + b"\x21" + struct.pack("<H", 2)
            + struct.pack("<H", 0x81) + b"\x15" + bytes(10) + b"ijklmnopqrst\0"
            + b"caching_sha2_password\0")  # fmt: skip
    greeting = len(body).to_bytes(3, "little") + b"\0" + body
    user = shaped(plant("mysql.user", "078223344"), "")
    login = struct.pack("<II", 0x0200 | 0x8000, 1 << 24) + b"\x21" + bytes(23) + user.encode()
    login += b"\0"
    return len(login).to_bytes(3, "little") + b"\x01" + login, greeting


def _kafka() -> tuple[bytes, bytes]:
    client_id = ("billing-" + shaped(plant("kafka.client_id", _card("62", 16, 12)), "-")).encode()
    body = struct.pack("!hhih", 18, 3, 77, len(client_id)) + client_id + b"\0\0"
    return struct.pack("!i", len(body)) + body, struct.pack("!ii", 10, 77) + bytes(6)


def _smtp() -> tuple[bytes, bytes]:
    card = shaped(plant("smtp.greeting", _card("4", 16, 13)), " ")
    return b"EHLO client.example\r\n", f"220 mx {card} ESMTP\r\n250 mx\r\n".encode()


def _ssh() -> tuple[bytes, bytes]:
    client = "SSH-2.0-OpenSSH_" + plant("ssh.client_software", _card("4", 16, 14)) + "\r\n"
    server = "SSH-2.0-" + shaped(plant("ssh.server_software", "536228402"), "-") + "\r\n"
    return client.encode(), server.encode()


def _h2(
    headers: list[tuple[str, str]], server_headers: list[tuple[str, str]]
) -> tuple[bytes, bytes]:
    def frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
        return (
            len(payload).to_bytes(3, "big")
            + bytes([ftype, flags])
            + struct.pack("!I", stream)
            + payload
        )

    client = (
        F_PREFACE + frame(4, 0, 0, b"") + frame(1, 0x4 | 0x1, 1, hpack.Encoder().encode(headers))
    )
    server = frame(4, 0, 0, b"") + frame(1, 0x4, 1, hpack.Encoder().encode(server_headers))
    return client, server


F_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _grpc() -> tuple[bytes, bytes]:
    method = "/pay.v1.Cards/Charge" + plant("grpc.method", _card("4", 16, 15))
    authority = shaped(plant("grpc http.host", _card("52", 16, 16)), "-") + ".grpc.example"
    return _h2(
        [(":method", "POST"), (":scheme", "http"), (":path", method), (":authority", authority),
         ("content-type", "application/grpc")],
        [(":status", "200"), ("content-type", "application/grpc")],
    )  # fmt: skip


def _http2() -> tuple[bytes, bytes]:
    path = "/orders/" + shaped(plant("http2 http.path", _card("4", 16, 17)), ".")
    authority = "ssn-" + plant("http2 http.host", "536228403") + ".example"
    return _h2(
        [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", authority)],
        [(":status", "200")],
    )


def _redis() -> tuple[bytes, bytes]:
    name = plant("redis.command", _card("4", 16, 18)).encode()
    return b"*2\r\n$%d\r\n%s\r\n$3\r\nkey\r\n" % (len(name), name), b"-ERR unknown command\r\n"


def _mongodb() -> tuple[bytes, bytes]:
    key = plant("mongodb.command", _card("54", 16, 19))
    element = b"\x10" + key.encode() + b"\0" + struct.pack("<i", 1)
    doc = struct.pack("<i", 4 + len(element) + 1) + element + b"\0"
    body = struct.pack("<I", 0) + b"\0" + doc
    reply_body = struct.pack("<I", 0) + b"\0" + doc
    return (
        struct.pack("<iiii", 16 + len(body), 7, 0, 2013) + body,
        struct.pack("<iiii", 16 + len(reply_body), 8, 7, 2013) + reply_body,
    )


def _imap() -> tuple[bytes, bytes]:
    card = shaped(plant("imap greeting", _card("4", 16, 20)), "-")
    return b"a1 CAPABILITY\r\n", f"* OK IMAP4rev1 {card} ready\r\na1 OK done\r\n".encode()


def _pop3() -> tuple[bytes, bytes]:
    ssn = shaped(plant("pop3 greeting", "536228404"), " ")
    return b"CAPA\r\n", f"+OK POP3 {ssn} ready\r\n".encode()


# (builder, transport, server port, protocol the sensor must name, detail keys that must be there)
CONVERSATIONS = (
    (_http1, "tcp", 8080, "proto.http", ("http.path", "http.host")),
    (_http1_ssn, "tcp", 8081, "proto.http", ("http.path", "http.host")),
    (_http1_spelled, "tcp", 8083, "proto.http", ("http.path", "http.host")),
    (_dns_udp, "udp", 53, "proto.dns", ("dns.qname",)),
    (_dns_tcp, "tcp", 53, "proto.dns", ("dns.qname",)),
    (_tls, "tcp", 443, "proto.tls", ("tls.sni",)),
    (_postgres, "tcp", 5432, "proto.postgres", ("postgres.user", "postgres.database")),
    (_postgres_ssl, "tcp", 5433, "proto.postgres", ("tls.sni",)),
    (_mysql, "tcp", 3306, "proto.mysql", ("mysql.version", "mysql.user")),
    (_kafka, "tcp", 9092, "proto.kafka", ("kafka.client_id",)),
    (_smtp, "tcp", 25, "proto.smtp", ("smtp.greeting",)),
    (_ssh, "tcp", 22, "proto.ssh", ("ssh.client_software", "ssh.server_software")),
    (_grpc, "tcp", 50051, "proto.grpc", ("grpc.method", "http.host")),
    (_http2, "tcp", 8082, "proto.http2", ("http.path", "http.host")),
    (_redis, "tcp", 6379, "proto.redis", ("redis.command",)),
    (_mongodb, "tcp", 27017, "proto.mongodb", ("mongodb.command",)),
    (_imap, "tcp", 143, "proto.imap", ()),
    (_pop3, "tcp", 110, "proto.pop3", ()),
)


def _pcap(path: Path) -> None:
    frames: list[bytes] = []
    for i, (build, transport, port, _proto, _keys) in enumerate(CONVERSATIONS):
        request, response = build()
        client, cport = f"10.0.1.{i + 1}", 41000 + i
        if transport == "udp":
            frames.append(F.ipv4(client, "10.0.2.1", 17, F.udp(cport, port, request)))
            frames.append(F.ipv4("10.0.2.1", client, 17, F.udp(port, cport, response)))
        else:
            frames.extend(F.conversation(client, "10.0.2.1", cport, port, request, response))
    path.write_bytes(F.pcap([(1700000000 + i / 1000, F.ether(p)) for i, p in enumerate(frames)]))


# Runs the real entry point with a log file at DEBUG and SQLAlchemy echoing every statement and its
# parameters: the log sees every value that goes to the database.
_WITH_LOG_FILE = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(filename=sys.argv[1], level=logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    from stockade.cli.app import main
    main(sys.argv[2:])
    """
)


def _sensor(log: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", _WITH_LOG_FILE, str(log), "sensor", *args],
        capture_output=True,
        timeout=180,
        env=os.environ.copy(),
    )


_ESCAPES = re.compile(rb"\\+u00([0-9a-fA-F]{2})")  # a JSON escape, itself escaped or not


def unescaped(blob: bytes) -> bytes:
    """``blob`` with JSON escapes of Latin-1 characters undone (a digit written ``\\u0034``, or
    ``\\\\u0034`` once the output escaped the backslash)."""
    return _ESCAPES.sub(lambda m: bytes([int(m[1], 16)]), blob)


def _leaks(blobs: dict[str, bytes]) -> list[str]:
    found = []
    for field, number in PLANTED.items():
        pattern = any_format(number)
        found += [
            f"{field} ({number}) in {where}"
            for where, b in blobs.items()
            if pattern.search(b) or pattern.search(unescaped(b))
        ]
    return found


def test_numbers_in_protocol_metadata_never_leave_the_sensor(tmp_path: Path) -> None:
    capture = tmp_path / "planted.pcap"
    _pcap(capture)
    db, log = tmp_path / "s.db", tmp_path / "sensor.log"
    out = _sensor(log, "--pcap", str(capture), "--format", "json", "--db", f"sqlite:///{db}")
    assert out.returncode == 0, out.stderr.decode()
    # the database file and whatever WAL/SHM the sensor left, before anything else opens them
    blobs = {p.name: p.read_bytes() for p in tmp_path.glob("s.db*")}
    table = _sensor(tmp_path / "table.log", "--pcap", str(capture), "--format", "table")
    assert table.returncode == 0, table.stderr.decode()
    # without the store the lines are built without the dict (ConnectionRecord.json_line)
    lines = _sensor(tmp_path / "lines.log", "--pcap", str(capture), "--format", "json",
                    "--no-store")  # fmt: skip
    assert lines.returncode == 0, lines.stderr.decode()
    blobs |= {
        "stdout": out.stdout,
        "stderr": out.stderr,
        "log": log.read_bytes(),
        "table stdout": table.stdout,
        "table stderr": table.stderr,
        "no-store stdout": lines.stdout,
        "no-store stderr": lines.stderr,
    }
    run_id = re.compile(rb'"id": "[0-9a-f-]+-')
    assert run_id.sub(b"", lines.stdout) == run_id.sub(b"", out.stdout)
    assert b"INSERT INTO network_connections" in blobs["log"]  # the log saw the parameters
    assert _leaks(blobs) == []
    assert len(PLANTED) >= 25

    records = [json.loads(line) for line in out.stdout.splitlines()]
    by_port = {(r["transport"], r["server"]["port"]): r for r in records}
    for _build, transport, port, protocol, keys in CONVERSATIONS:
        rec = by_port[(transport, port)]
        assert rec["protocol"] == protocol, (port, rec["protocol"])
        for key in keys:  # the planted field really reached the record, masked
            assert "*" in rec["details"][key], (protocol, key, rec["details"])
    assert by_port[("tcp", 443)]["tls"]["version"] == "TLS1.0"
    conn = sqlite3.connect(db)
    try:
        (sni,) = conn.execute(
            "SELECT sni FROM network_connections WHERE server_port=443"
        ).fetchone()
        weak = conn.execute(
            "SELECT message, data FROM events WHERE kind='tls.weak_version'"
        ).fetchall()
        stored = conn.execute("SELECT count(*) FROM network_connections").fetchone()[0]
    finally:
        conn.close()
    assert stored == len(CONVERSATIONS)
    assert sni.startswith("4") and "*" in sni and sni.endswith(".pay.example")
    assert len(weak) == 1 and "*" in json.loads(weak[0][1])["sni"]


def test_error_message_masks_what_it_quotes(tmp_path: Path) -> None:
    card = _card("4", 16, 30)
    missing = tmp_path / f"capture-{shaped(card, '-')}.pcap"
    out = _sensor(tmp_path / "err.log", "--pcap", str(missing))
    assert out.returncode == 3 and out.stderr.startswith(b"stockade: error: ")
    assert b"capture-" in out.stderr and not any_format(card).search(out.stderr)


def test_log_records_are_masked_whatever_the_handler(tmp_path: Path) -> None:
    card, ssn = _card("4", 16, 31), "536228405"
    script = textwrap.dedent(
        f"""
        import logging, sys
        from stockade.model.redact import install_log_redaction
        install_log_redaction()
        logging.basicConfig(filename=sys.argv[1], level=logging.INFO)
        log = logging.getLogger("stockade.test")
        log.warning("host %s ssn %s", "{shaped(card, ".")}.example", "{shaped(ssn, "-")}")
        try:
            raise ValueError("bad user {card}")
        except ValueError:
            log.exception("failed for {shaped(card, " ")}")
        log.info("%d %s", 1)  # a broken format string is reported by logging, not raised
        """
    )
    log = tmp_path / "app.log"
    subprocess.run([sys.executable, "-c", script, str(log)], check=True, capture_output=True)
    text = log.read_bytes()
    assert b"ValueError: bad user 4" in text and b"***-**-8405" in text
    assert not any_format(card).search(text) and not any_format(ssn).search(text)


# ---------------------------------------------------------------------------------------------
# Events and findings written to the store, SQLite and PostgreSQL


def test_events_and_findings_are_masked_in_the_store(any_store: Store) -> None:
    card, ssn = _card("4", 16, 40), "536228406"
    pod = ResourceRef(kind="pod", name=f"pay-{card}", namespace="shop", labels=(("ssn", ssn),))
    event = Event(
        kind="tls.weak_version",
        message=f"TLS1.0 negotiated, SNI {shaped(card, ' ')}",
        severity=Severity.MEDIUM,
        resource=pod,
        data={
            "connection": "abcd1234-5",
            "sni": f"{card}.example",
            "nested": [{"v": shaped(ssn, "-")}],
        },
    )
    digest = "sha256:" + "4111111111111111" + "ab" * 24
    finding = Finding(
        id="k8s.workload.env_secret",
        pillar=Pillar.COMPLIANCE,
        title=f"secret in env of {shaped(card, '-')}",
        severity=Severity.HIGH,
        resource=ResourceRef(kind="image", name=f"shop/{ssn}", digest=digest),
    )
    record_events(any_store, [event])
    run = record_findings(any_store, [finding])
    (got,) = list_events(any_store)
    (row,) = list_findings(any_store, run_id=run)
    text = json.dumps([got.to_dict(), row], default=str).encode()
    assert not any_format(card).search(text) and not any_format(ssn).search(text)
    assert got.data["sni"] == f"{card[:4]}********{card[-4:]}.example"
    assert got.data["connection"] == "abcd1234-5" and got.data["nested"] == [{"v": "***-**-8406"}]
    assert row["resource"]["digest"] == digest  # a digest is not a card


def test_numbers_quoted_in_advisories_are_masked_in_the_store(tmp_path: Path) -> None:
    """Advisory documents are third-party text: a summary or a link that quotes a card number
    or an SSN (an example in a write-up) is stored masked, as every string is."""
    card, ssn = _card("51", 16, 41), "536228407"
    doc = json.loads(
        (Path(__file__).parents[2] / "examples/advisories/GHSA-248v-346w-9cwc.json").read_text()
    )
    doc["summary"] = f"leaks {shaped(card, ' ')} and {shaped(ssn, '-')} in logs"
    doc["references"] = [{"type": "WEB", "url": f"https://example.com/report/{card}"}]
    (tmp_path / "adv.json").write_text(json.dumps(doc))
    db = tmp_path / "store.db"
    env = {**os.environ, "STOCKADE_DB": f"sqlite:///{db}"}
    proc = subprocess.run(
        [sys.executable, "-m", "stockade", "db", "import", str(tmp_path / "adv.json")],
        capture_output=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(db) as conn:
        (summary, refs) = conn.execute("SELECT summary, refs FROM adv_vulnerabilities").fetchone()
    assert summary == f"leaks {card[:4]} **** **** {card[-4:]} and ***-**-{ssn[-4:]} in logs"
    assert f"{card[:4]}********{card[-4:]}" in refs
    blob = db.read_bytes() + proc.stdout + proc.stderr
    assert not any_format(card).search(blob) and not any_format(ssn).search(blob)


def test_numbers_quoted_in_skipped_advisory_records_are_masked_in_the_warnings(
    tmp_path: Path,
) -> None:
    """``db import`` names each record it skips and why, quoting the document (an id, a
    version, a publisher's URL): those warnings leave the process too."""
    card, ssn = _card("51", 16, 43), "536228407"
    doc = {
        "apkurl": "{{urlprefix}}/{{reponame}}/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk",
        "archs": ["x86_64"],
        "reponame": "os",
        "urlprefix": f"https://packages.example.org/{shaped(card, ' ')}",
        "packages": [{"pkg": {"name": "zlib", "secfixes": {"1.2.12-r0": ["CVE-2018-25032"]}}}],
    }
    alpine = {
        "distroversion": "v3.19",
        "packages": [
            {"pkg": {"name": "zlib", "secfixes": {"1.0-r0": [f"ticket {ssn}"]}}},
            {"pkg": {"name": "musl", "secfixes": {"1.2.4-r1": ["CVE-2025-26519"]}}},
        ],
    }
    (tmp_path / "security.json").write_text(json.dumps(doc))
    (tmp_path / "main.json").write_text(json.dumps(alpine))
    db = tmp_path / "store.db"
    env = {**os.environ, "STOCKADE_DB": f"sqlite:///{db}"}
    proc = subprocess.run(
        [sys.executable, "-m", "stockade", "db", "import", "--verbose", str(tmp_path)],
        capture_output=True, timeout=120, env=env,
    )  # fmt: skip
    assert b"stockade: warning: " in proc.stderr and b"no advisory id" in proc.stderr
    blob = proc.stdout + proc.stderr
    assert not any_format(card).search(blob) and not any_format(ssn).search(blob), blob


# ---------------------------------------------------------------------------------------------
# The gate itself


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("GET /pay/4111111111111111 HTTP/1.1", "GET /pay/4111********1111 HTTP/1.1"),
        ("4111 1111 1111 1111", "4111 **** **** 1111"),
        ("4111-1111-1111-1111.shop.example", "4111-****-****-1111.shop.example"),
        ("4111.1111.1111.1111.pay.example.", "4111.****.****.1111.pay.example."),
        ("/pay/4111%201111%201111%201111", "/pay/4111%20****%20****%201111"),
        ("app-378282246310005x", "app-3782*******0005x"),
        ("ssn 536-22-8401 and 536 22 8401", "ssn ***-**-8401 and ***-**-8401"),
        ("user536228401", "user***-**-8401"),
        # nine digits with letters on both sides are an identifier's (token id 9c9c...), not an SSN
        ("token 9c9c536228401a26", "token 9c9c536228401a26"),
        ("id=536228401a", "id=***-**-8401a"),
        ("2023-11-14T22:13:20.001000+00:00", "2023-11-14T22:13:20.001000+00:00"),
        ("order 4111111111111112, port 5432", "order 4111111111111112, port 5432"),
        ("000-12-3456, 666123456, 536-00-8401", "000-12-3456, 666123456, 536-00-8401"),
        ("10.244.1.15 -> 10.244.1.16:8080", "10.244.1.15 -> 10.244.1.16:8080"),
        ("image@sha256:" + "4111111111111111" + "ab" * 24, "image@sha256:" + "4111111111111111" + "ab" * 24),
        # a UUID's hex groups are an id's digits (a CycloneDX serial number, a pod uid) ...
        ("urn:uuid:6885fe2f-dbb2-4288-9e3c-289708889e16", "urn:uuid:6885fe2f-dbb2-4288-9e3c-289708889e16"),
        ("uid 96b435d2-dd8c-4b0f-9c87-28c560141336", "uid 96b435d2-dd8c-4b0f-9c87-28c560141336"),
        # ... but a number in a UUID-shaped string without a hex letter, or across its groups, is not
        ("00000000-0000-0000-0000-536228401000", "00000000-0000-0000-0000-536228401000"),
        ("41111111-1111-1111-0000-000000000000", "4111****-****-1111-0000-000000000000"),
        ("card 4111-1111-1111-1111-a111-111111111111", "card 4111-****-****-1111-a111-111111111111"),
        ("ssn 536-22-8401-abcd-ef", "ssn ***-**-8401-abcd-ef"),
        # no-break spaces (and one read as Latin-1 from UTF-8), JSON escapes, Maestro 56-59
        ("4111\u00a01111\u00a01111\u00a01111", "4111\xa0****\xa0****\xa01111"),
        ("card 4111\xc2\xa01111\xc2\xa01111\xc2\xa01111", "card 4111\xc2\xa0****\xc2\xa0****\xc2\xa01111"),
        ('{"c":"' + "".join(f"\\u{ord(d):04x}" for d in "4111111111111111") + '"}', '{"c":"4111********1111"}'),
        ('"41\\u00311 1111 1111 1111"', '"4111 **** **** 1111"'),
        ("\\u0034\\u0031\\u0031\\u0031\\u002d1111-1111-1111", "4111-****-****-1111"),
        ("ssn \\u0035\\u00336-22-8401", "ssn ***-**-8401"),
        ("maestro 5641 8200 0000 0005", "maestro 5641 **** **** 0005"),
        ("debit 5600.0000.0003", "debit 5600.0000.0003"),  # 12 digits: the gate masks 13-19
        ("ok \\u00e9 \\u0031\\u0032 \\u0034 text", "ok \\u00e9 \\u0031\\u0032 \\u0034 text"),
    ],
)  # fmt: skip
def test_gate_examples(text: str, masked: str) -> None:
    assert redact_text(text) == masked


def test_url_encoded_separators_keep_their_characters() -> None:
    # the digits of a "%20" between a number's groups are no digits of the number: they were
    # counted as an SSN's, so in-place masking (forensic pcaps) hid "%20" instead, and a card
    # that is also SSN-shaped came out as "***%**0*%20..." (found by the separators property test)
    from stockade.model.redact import hidden_in_place

    text = "/q?ssn=536%2022%208401"
    hidden = bytearray(text.encode())
    for _kind, _start, _end, positions in hidden_in_place(text):
        for i in positions:
            hidden[i] = ord("*")
    assert hidden.decode() == "/q?ssn=***%20**%208401"
    assert redact_text("400%2001%200001%200000008") == "***%20**%20****%20***0008"


def test_random_uuids_pass_the_gate_unchanged() -> None:
    # about 1 in 100 random UUIDs has nine digits in a row in its last group: before UUIDs were
    # recognised as ids, a SBOM's serial number came out as "urn:uuid:...-***-**-8889e16"
    import uuid

    rng = random.Random(20261205)
    texts = [f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}" for _ in range(3000)]
    assert [t for t in texts if redact_text(t) != t] == []


def test_text_without_numbers_is_the_same_object() -> None:
    text = "GET /index.html HTTP/1.1 Host: shop.example " * 50
    assert redact_text(text) is text
    value = {"a": [text, ("x", 1, None)], "b": 2.5}
    assert redact(value) == value


_SEPARATORS = st.sampled_from(["", "", "", " ", "-", ".", "_", "+", "%20", " - ", "  ", "\xa0"])
_AROUND = st.text(
    alphabet="ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ /:?=&,;()[]{}\"'@#*", max_size=30
)


# 16-digit issuer ranges of the brands the gate knows (visa, mastercard both series, discover,
# jcb, unionpay, mir, maestro): a PAN is a Luhn-valid number in an issuer range of its length.
_ISSUERS = st.sampled_from(
    [
        "4",
        "51",
        "53",
        "55",
        "2221",
        "2500",
        "2720",
        "6011",
        "65",
        "3528",
        "3589",
        "62",
        "2200",
        "6759",
        "56",
        "5899",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    _ISSUERS,
    st.text(alphabet="0123456789", min_size=15, max_size=15),
    _SEPARATORS,
    st.lists(st.booleans(), min_size=15, max_size=15),
    _AROUND,
    _AROUND,
)
def test_any_luhn_valid_card_with_any_separators_is_masked(
    issuer: str, digits: str, sep: str, cuts: list[bool], before: str, after: str
) -> None:
    """A card written with one separator (any of them, between any digits) is masked."""
    partial = (issuer + digits)[:15]
    card = partial + luhn_check_digit(partial)
    separators = [sep if cut else "" for cut in cuts]
    written = card[0] + "".join(sep + d for sep, d in zip(separators, card[1:], strict=True))
    out = redact_text(before + written + after)
    if len(set(card)) == 1:
        return  # 0000000000000000 is Luhn-valid but no card
    assert not any_format(card).search(out.encode()), out
    assert out.startswith(before) and out.endswith(after)
    middle = out[len(before) : len(out) - len(after)].replace("%20", " ")
    shown = [i for i, ch in enumerate(c for c in middle if c.isdigit() or c == "*") if ch != "*"]
    # at most the first 4 and the last 4 digits stay visible (fewer when a shorter card-shaped
    # window inside it is masked as well)
    assert all(i < 4 or i >= len(card) - 4 for i in shown), out


@settings(max_examples=300, deadline=None)
@given(
    _ISSUERS,
    st.text(alphabet="0123456789", min_size=15, max_size=15),
    st.sampled_from(["", " ", "-", ".", "\xa0"]),
    st.integers(1, 5),
    _AROUND,
)
def test_a_card_written_in_json_escapes_is_masked(
    issuer: str, digits: str, sep: str, every: int, before: str
) -> None:
    """A card with some or all of its characters written as JSON escapes (``\\u0034``) is
    masked: nothing of it is left to read once the escapes are undone."""
    partial = (issuer + digits)[:15]
    card = partial + luhn_check_digit(partial)
    if len(set(card)) == 1:
        return
    out = redact_text(before + json_escaped(shaped(card, sep), every))
    assert not any_format(card).search(unescaped(out.encode())), out


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_characters="0123456789")),
    st.lists(st.integers(0, 99_999_999), max_size=8),
)
def test_text_without_cards_or_ssns_is_unchanged(text: str, numbers: list[int]) -> None:
    assert redact_text(text) is text
    mixed = text + ", ".join(str(n) for n in numbers)  # runs of 8 digits at most
    assert redact_text(mixed) == mixed


def test_luhn_valid_runs_outside_every_issuer_range_are_left_alone() -> None:
    """Timestamps and ids that happen to pass Luhn are not PANs: a Go pseudo-version's 14-digit
    time (no issuer uses 20 for 14 digits), an epoch in milliseconds (13 digits starting 1)."""
    stamp = "2023010112345" + luhn_check_digit("2023010112345")
    millis = "170170170170" + luhn_check_digit("170170170170")
    text = f"golang.org/x/net v0.0.0-{stamp}-abcdef123456 at {millis}"
    assert redact_text(text) == text


def test_log_filter_masks_message_and_arguments() -> None:
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "user %s: %r", ("4111 1111 1111 1111", "536-22-8401"), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "user 4111 **** **** 1111: '***-**-8401'"


# ---------------------------------------------------------------------------------------------
# The CLI's own output: reports, SBOMs and usage errors pass the gate too.


def test_reports_and_usage_errors_print_no_planted_number(tmp_path: Path) -> None:
    """A card in a file path inside a scanned filesystem reaches the SBOM and scan reports as a
    package location; one in a command-line argument reaches Click's usage error. Both are masked on
    stdout, stderr and in -o files."""
    card = _card("4", 16, 7)
    root = tmp_path / "rootfs"
    meta = root / "app" / shaped(card, "-") / "site-packages" / "foo-1.0.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n")
    db = f"sqlite:///{tmp_path / 's.db'}"
    runs = [
        ["sbom", f"dir:{root}", "--format", "json"],
        ["sbom", f"dir:{root}", "--format", "cyclonedx", "-o", str(tmp_path / "out.cdx.json")],
        ["scan", "rootfs", str(root), "--format", "json", "--db", db, "--allow-stale-db"],
        ["report", "compliance", "--framework", card],
    ]
    outputs = [
        subprocess.run([sys.executable, "-m", "stockade", *args], capture_output=True, timeout=300)
        for args in runs
    ]
    seen = b"".join(out.stdout + out.stderr for out in outputs)
    sbom = outputs[0].stdout  # the JSON SBOM's run
    assert b"foo" in sbom and b"site-packages" in sbom  # the package is reported
    seen += (tmp_path / "out.cdx.json").read_bytes()
    assert not any_format(card).search(seen), "a planted card reached the CLI's output"


# ---------------------------------------------------------------------------------------------
# The fast pre-check (most strings pass with one regex scan) and the store's one-walk gate answer
# exactly as the full search does: differential tests over generated strings with planted numbers.

_SEPARATORS = [" ", "-", ".", "_", "+", "%20", "%2d", "%2E", "\t", "  ", " - ", "--", "/", ":", ""]


def _planted_text(rng: random.Random) -> str:
    """Text with numbers a gate must mask, numbers it must not, and near misses, joined by
    separators the gate accepts, rejects, or just barely accepts."""
    # (rng.choices draws a run in one call: generating the texts was most of these tests' time)
    parts: list[str] = []
    for _ in range(rng.randint(1, 8)):
        pick = rng.random()
        if pick < 0.25:
            length = rng.choice([13, 14, 15, 16, 17, 18, 19])
            prefix = rng.choice(["4", "51", "55", "34", "37", "6011", "65", "3528", "36", "62"])
            body = prefix + "".join(rng.choices("0123456789", k=length - 1 - len(prefix)))
            number = body + luhn_check_digit(body)  # Luhn-valid, as _card makes them
        elif pick < 0.4:
            number = rng.choice(["536228401", "219456781", "401335012", "078051120"])
        elif pick < 0.5:
            number = "".join(rng.choices("0123456789", k=rng.randint(8, 21)))
        elif pick < 0.6:
            number = "".join(rng.choices("0123456789abcdef", k=rng.randint(30, 70)))
        else:
            number = "".join(rng.choices("0123456789 -._+%2:abXZ\x00", k=rng.randint(0, 30)))
        if len(number) >= 9 and rng.random() < 0.6 and number.isdigit():
            sep = rng.choice(_SEPARATORS)
            if len(number) in (9, 13, 14, 15, 16, 19):
                number = shaped(number, sep)
            else:
                cut = rng.randint(1, len(number) - 1)
                number = number[:cut] + sep + number[cut:]
        parts.append(number)
    return "".join(p + rng.choice([*_SEPARATORS, "x", " pod ", "/v1/"]) for p in parts)


def test_the_pre_check_masks_exactly_what_the_full_search_masks() -> None:
    rng = random.Random(20261205)
    masked = 0
    for _ in range(5_000):
        text = _planted_text(rng)
        fast = redact_text(text)
        assert fast == redact_text_fully(text), text
        masked += fast != text
    assert masked > 1_000  # the generator plants numbers the gate masks, not only near misses


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("0123456789 -._+%2dDeE\tx")), max_size=80),
        min_size=10,
        max_size=10,
    )
)
def test_the_pre_check_agrees_on_digit_and_separator_soup(texts: list[str]) -> None:
    """Ten texts a draw (1,000 in all): a draw costs more than the check of one."""
    for text in texts:
        assert redact_text(text) == redact_text_fully(text)


def _storable_reference(value: object) -> object:
    """What the store wrote before its one-walk gate: the gate, then the cleaning."""
    return _clean(redact(value, keep=OWN_IDS))


def test_the_stores_gate_equals_the_gate_then_the_cleaning() -> None:
    rng = random.Random(5)
    for _ in range(500):
        texts = [_planted_text(rng) for _ in range(6)]
        value = {
            texts[0]: texts[1],
            "id": texts[2],  # an own id: cleaned, never masked
            "nested": [texts[3], (texts[4], {"connection": texts[5], "n": 7})],
            "short": "dlp",
        }
        for _ in range(2):  # the second time strings come from the store's cache of passed ones
            assert storable(value) == _storable_reference(value)
            assert _storable_text(texts[1]) == _storable_reference(texts[1])


def test_only_an_id_in_stockades_own_shape_is_spared_under_an_id_key(any_store: Store) -> None:
    """``id`` and ``connection`` in an event's data are kept as they are only when they have the
    shape of an id Stockade makes; a card or SSN put there (free text, nested) is masked, on the
    way into the store and on the way out to a controller or receiver."""
    card, ssn = _card("4", 16, 41), "536228401"
    own = {
        "connection": "0a1b2c3d-9e8f-4a5b-8c7d-00000000002a",
        "id": "0190a1b2c3d4e5f60718293a4b5c6d7e",
    }
    planted = {
        "id": shaped(card, " "),
        "connection": shaped(ssn, "-"),
        # the shape connection ids had before session 11: a card with one dash in it
        "also": {"connection": f"{card[:8]}-{card[8:]}", "id": f"{card[:8]}-{card[8:]}"},
        "evidence": {"id": {"note": shaped(card, "-")}, "connection": [f"ssn {ssn}"]},
        "link": own,
    }
    event = Event(kind="dlp.sensitive_in_clear", message="planted", data=planted)
    for out in (redact(planted, keep=OWN_IDS), storable(planted)):
        text = json.dumps(out)
        assert card not in digits_of(text) and ssn not in digits_of(text), text
        assert out["link"] == own  # Stockade's own ids are kept
    record_events(any_store, [event])
    (got,) = list_events(any_store)
    stored = json.dumps(got.data)
    assert card not in digits_of(stored) and ssn not in digits_of(stored), stored
    assert got.data["link"] == own


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_what_an_id_key_spares_the_gate_would_have_left_as_it_is(data: st.DataObject) -> None:
    """Sparing a value under an id key is only a shortcut: every string ``own_id`` accepts, digits
    only or not, comes out of the gate unchanged, so nothing can hide behind the key."""
    digits = st.sampled_from("0123456789" * 6 + "abcdef")
    hexes = lambda n: st.text(digits, min_size=n, max_size=n)  # noqa: E731
    shapes = st.one_of(
        hexes(32),
        st.tuples(hexes(8), hexes(4), hexes(4), hexes(4), hexes(12)).map("-".join),
    )
    value = data.draw(shapes)
    if not own_id(value):  # digits only: not an id's shape, so the key spares nothing
        assert value.replace("-", "").isdigit()
        assert redact({"connection": value}) == {"connection": redact_text(value)}
        return
    assert redact_text(value) == value
    assert redact({"connection": value}) == {"connection": value}


def test_a_digits_only_uuid_is_not_spared_as_an_id() -> None:
    """A UUID's shape of digits only can hold a card number the gate masks (found by the test
    above: Luhn-valid digits across the groups), so an id key does not spare it."""
    value = "00000000-0000-0000-4499-000000000000"
    assert redact_text(value) != value
    assert not own_id(value)
    assert redact({"id": value}, keep=frozenset({"id"})) == {"id": redact_text(value)}


def test_connection_ids_are_ids_the_gate_leaves_as_they_are() -> None:
    """The flow table makes UUID-shaped connection ids (its run's random bits, then a counter), so
    the gate never masks one, and no card in a shape the gate would mask is spared as an id."""
    from stockade.identity import Directory
    from stockade.network.flows import FlowTable, run_prefix

    table = FlowTable(None, Directory(), lambda record: None)
    table._run = run_prefix(bytes.fromhex("41111111111141118111"))  # 20 random digits, no letter
    assert table._run == "e1111111-1111-4111-8111-"  # one made a letter: a UUID the gate spares
    made = [table._new(1.0, ("10.0.0.1", 40000 + n, "10.0.0.2", 80, 6), 6, reverse=False)[0].id
            for n in range(3)]  # fmt: skip
    assert made == [f"e1111111-1111-4111-8111-{n:012x}" for n in (1, 2, 3)]
    assert run_prefix(bytes.fromhex("0123456789abcdef0123")) == "01234567-89ab-cdef-0123-"
    for value in made:
        assert own_id(value) and redact_text(value) == value
    assert (
        not own_id("41111111-11111111") and redact_text("41111111-11111111") != "41111111-11111111"
    )


def _hostile_record(detail: str = "v"):  # -> ConnectionRecord
    from stockade.network.connection import ConnectionRecord, Hit
    from stockade.network.interface import DlpMatch, TlsInfo

    card, ssn = "4111 1111 1111 1111", "536-22-8401"
    ref = ResourceRef(kind="pod", namespace=f"ns-{ssn}", name=f"web-{card}")
    return ConnectionRecord(
        id="run-1", start=1_780_000_000.25, end=1_780_000_001.5, transport=f"tcp{card}",
        ip_version=4, client_ip="10.0.0.1", client_port=40000, server_ip="10.0.0.2",
        server_port=8080, client=ref, server=ResourceRef(kind="external", name=ssn),
        protocol=f"proto.{card}", encrypted=False, upgrade=f"starttls {ssn}",
        tls=TlsInfo(version="TLS1.2", sni=f"{card}.example", alpn=(ssn, "h2"), cipher=card),
        flags_client=ssn, flags_server="SAPF", state=f"closed {card}",
        hits=(Hit(direction="client", match=DlpMatch(sensor="dlp.payment_card",
              masked="4111 **** **** 1111", start=3, end=22, confidence=0.9)),),
        details=(("http.path", f"/pay/{card}"), (f"x.{ssn}", detail)),
    )  # fmt: skip


def test_connection_record_to_dict_masks_every_string_as_the_whole_walk_did() -> None:
    """``to_dict`` masks string by string (the JSON line is not masked again as a whole): it must
    answer exactly as ``redact`` over the whole unmasked record, whatever field a number is in."""
    from stockade.network.connection import ConnectionRecord

    rec = _hostile_record()
    assert rec.to_dict() == {"id": "run-1", **redact(rec.plain())}
    text = json.dumps(rec.to_dict())
    assert "4111 1111 1111 1111" not in text and "536-22-8401" not in text
    quiet = ConnectionRecord(
        id="run-2", start=1.0, end=2.0, transport="udp", ip_version=6, client_ip="fd00::1",
        client_port=53, server_ip="fd00::2", server_port=53, client=rec.client,
        server=rec.client, protocol="proto.dns", encrypted=False,
    )  # fmt: skip
    assert quiet.to_dict() == {"id": "run-2", **redact(quiet.plain())}


@given(
    st.lists(
        st.floats(min_value=0, max_value=253_402_300_798, allow_nan=False),
        min_size=10,
        max_size=10,
    )
)
@settings(max_examples=300, deadline=None)
def test_a_records_times_never_look_like_a_card_or_ssn(stamps: list[float]) -> None:
    """``ConnectionRecord.to_dict`` leaves its ISO times out of the gate: that is only right if
    the gate never changes one, for any capture time a datetime can hold (ten a draw, 3,000 in
    all)."""
    from stockade.network.connection import _iso

    for ts in stamps:
        text = _iso(ts)
        assert redact_text(text) == text == redact_text_fully(text)


def test_a_records_times_on_their_digit_edges() -> None:
    from stockade.network.connection import _iso

    for ts in (0.0, 0.000001, 999_999_999.999999, 1_780_000_000.123456, 253_402_300_798.999):
        text = _iso(ts)
        assert redact_text_fully(text) == text


@pytest.mark.parametrize("detail", ["v", "nul\x00here", "lone \udcff", "emoji \U0001f600"])
def test_stored_connection_data_is_masked_and_cleaned(tmp_path: Path, detail: str) -> None:
    """The stored record skips the second walk when its JSON shows nothing to clean: the stored
    data is the same as the full ``storable`` walk gives, for clean and unclean details alike."""
    from stockade.network.store import list_connections, write
    from stockade.store import open_store

    rec = _hostile_record(detail)
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        write(store, [rec])
        (row,) = list_connections(store)
    finally:
        store.close()
    assert row["data"] == json.loads(json.dumps(storable(rec.to_dict())))
    text = json.dumps(row["data"])
    assert "4111 1111 1111 1111" not in text and "536-22-8401" not in text
    assert "\\u0000" not in text and "\\udcff" not in text


def test_a_resource_is_masked_every_time_it_is_stored() -> None:
    """The rows of an agent's events share the stored dict of a resource that passed the gate
    unchanged; one with a number in it is masked again each time and never kept."""
    from stockade.store.records import _CLEAN_REFS, _event_row

    rng = random.Random(11)
    card = _card("4", 16, 40)
    dirty = ResourceRef(kind="pod", name=f"pay-{card}", namespace="shop", labels=(("n", card),))
    clean = ResourceRef(kind="pod", name="web-1", namespace="shop", labels=(("app", "web"),))
    for _ in range(3):
        texts = [_planted_text(rng) for _ in range(2)]
        planted = ResourceRef(kind="pod", name=texts[0], labels=(("k", texts[1]),))
        for ref in (dirty, clean, planted):
            event = Event(kind="dlp.sensitive_in_clear", message="m", resource=ref, peer=ref)
            row = _event_row(event, event.at)
            for stored in (row["resource"], row["peer"]):
                assert stored == _storable_reference(ref.to_dict())
    assert card not in repr(_CLEAN_REFS) and dirty not in _CLEAN_REFS and clean in _CLEAN_REFS


@given(
    st.lists(
        st.lists(st.text("0123456789", min_size=1, max_size=3), min_size=4, max_size=4),
        min_size=10,
        max_size=10,
    )
)
@settings(max_examples=300, deadline=None)
def test_an_ipv4_addresss_spelling_never_looks_like_a_card_or_ssn(quads: list[list[str]]) -> None:
    """``ConnectionRecord.json_line`` passes a dotted quad (groups of one to three digits, as
    inet_ntoa writes them) without the gate: only right if the gate never changes one (ten a
    draw, 3,000 in all)."""
    from stockade.network.connection import _DOTTED_QUAD, _mask_ip

    for groups in quads:
        text = ".".join(groups)
        assert _DOTTED_QUAD.fullmatch(text)
        assert redact_text_fully(text) == text == _mask_ip(text)
    card = "4111.1111.1111.1111"  # four digits a group: not a dotted quad, so it is masked
    assert _DOTTED_QUAD.fullmatch(card) is None and _mask_ip(card) != card


def test_the_translated_first_test_is_implied_by_the_regular_expression() -> None:
    """redact_text's first test (nine digits in a row once the characters that may stand between
    a number's digits are deleted) holds wherever the regular expression it stands before finds
    nine close digits: it lets through only strings the regular expression would let through."""
    from stockade.model.redact import _MAYBE_SENSITIVE, _nine_close_digits

    rng = random.Random(20261205)
    found = 0
    for _ in range(20_000):
        text = _planted_text(rng)
        if _MAYBE_SENSITIVE.search(text):
            found += 1
            assert _nine_close_digits(text.encode("utf-8", "surrogatepass")), text
    assert found > 5_000


_SOUP = st.text(alphabet=st.sampled_from(list("0123456789 -._+%2dDeE\t\x00xé\ud800")), max_size=60)


@settings(max_examples=200, deadline=None)
@given(st.lists(_SOUP, min_size=10, max_size=10))
def test_the_translated_first_test_on_soup(texts: list[str]) -> None:
    """Ten texts a draw (2,000 in all)."""
    from stockade.model.redact import _MAYBE_SENSITIVE, _nine_close_digits

    for text in texts:
        if _MAYBE_SENSITIVE.search(text):
            assert _nine_close_digits(text.encode("utf-8", "surrogatepass"))
        assert redact_text(text) == redact_text_fully(text)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [*_strings(k), *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_a_json_text_passes_whole_only_when_every_string_in_it_passes() -> None:
    """json_passes (the events' data written from its JSON text as it is, the gate decided on the
    whole text): never true for a document one of whose strings or keys the gate changes or the
    store cleans, whatever spelling a planted card or SSN takes (tabs and NUL escaped in JSON,
    %20, a key, a nested list); and true for most documents without one."""
    import orjson

    from stockade.model.redact import json_passes

    rng = random.Random(7)
    passed = changed = 0
    for _ in range(5_000):
        quiet = ["pod", "web-12", "tcp/443", "GET /v1", "x:80", "é", "a_b", "%2F"]
        texts = [
            _planted_text(rng) if rng.random() < 0.4 else " ".join(rng.sample(quiet, 3))
            for _ in range(3)
        ]
        doc = {texts[0]: texts[1], "n": rng.randrange(10**6), "list": [texts[2], {"k": 1.5}]}
        try:
            raw = orjson.dumps(doc)
        except TypeError:  # a lone surrogate: never written from orjson's text
            continue
        gated = [s for s in _strings(doc) if redact_text_fully(s) != s or "\x00" in s]
        changed += bool(gated)
        if json_passes(raw):
            passed += 1
            assert not gated, (doc, gated)
    assert changed > 1_000 and passed > 100
    assert json_passes(orjson.dumps({"port": 443, "sample": "4111 11** **** 1111", "seq": 7}))


_CLOSE = "0123456789 \t._-+%dDeEx:/\xe9\x00"


_CLOSE_TEXT = st.binary(max_size=40) | st.text(_CLOSE, max_size=40).map(
    lambda t: t.encode("latin-1")
)


@given(st.lists(_CLOSE_TEXT, min_size=10, max_size=10))
@settings(max_examples=300, deadline=None)
def test_the_compiled_lines_digit_test_is_the_gates_first(raws: list[bytes]) -> None:
    """pcapfast.c writes an HTTP path or host into a JSON line without the gate only when its
    ``sp_close_digits`` finds no nine close digits in it: the gate's first test, without which
    the gate returns the text unchanged. The two agree on every text (its bytes read as
    latin-1, as the record's details are), and where they find none the gate changes nothing.
    Ten texts a draw (3,000 in all): a draw costs more than the checks of one."""
    from stockade.model.redact import _nine_close_digits
    from stockade.network.capture import fastpcap

    mod = fastpcap.compiled()
    assert mod is not None, "python3 setup.py build_ext --inplace"
    for raw in raws:
        text = raw.decode("latin-1")
        close = bool(mod.lib.sp_close_digits(raw, len(raw)))
        assert close == _nine_close_digits(text.encode("utf-8", "surrogatepass")), raw
        if not close:
            assert redact_text(text) == text == redact_text_fully(text)


_GROUP = st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x1234, 0xABCD, 0x0D0E, 0x9999])


_ADDRESS = st.one_of(
    st.binary(min_size=4, max_size=4),
    st.lists(_GROUP, min_size=8, max_size=8).map(lambda g: struct.pack("!8H", *g)),
    st.binary(min_size=16, max_size=16),
)


@given(st.lists(_ADDRESS, min_size=10, max_size=10))
@settings(max_examples=300, deadline=None)
def test_the_compiled_lines_addresses_are_pythons_and_pass_the_gate(raws: list[bytes]) -> None:
    """pcapfast.c writes the address of a peer no workload owns itself (``sp_ip_text``): as
    Python writes it (inet_ntoa, ipaddress), and only a spelling the gate never changes: a
    dotted quad, or IPv6 groups of at most four hex digits between colons. An IPv4-mapped
    address, which Python versions spell differently, is left to Python. Ten addresses a draw
    (3,000 in all)."""
    import ipaddress

    from stockade.network.capture import fastpcap

    mod = fastpcap.compiled()
    assert mod is not None, "python3 setup.py build_ext --inplace"
    for raw in raws:
        out = mod.ffi.new("char[64]")  # a fresh buffer each time: nothing left from the last
        n = mod.lib.sp_ip_text(raw, len(raw), out)
        address = ipaddress.ip_address(raw)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            assert n == -1, raw
            continue
        text = mod.ffi.string(out, n).decode()
        assert text == str(address), raw
        assert redact_text(text) == text == redact_text_fully(text)


@pytest.mark.parametrize(
    "name", ["4111111111111111", "ops-4111-1111-1111-1111", "agent-123-45-6789", "078051120"]
)
def test_a_user_or_token_named_with_a_card_or_ssn_is_refused_and_nothing_stored(
    sqlite_store: Store, name: str
) -> None:
    """Names are identities: stored masked they would name nobody, stored in clear they would
    leak (PCI DSS 3.4). The name is refused, the error does not echo it, and no row is written."""
    from sqlalchemy import func, select

    from stockade.api.auth import Principal, add_user, create_token
    from stockade.api.tables import tokens, users
    from stockade.model import UsageError

    admin = Principal(name="admin", role="admin", via="cli")
    with pytest.raises(UsageError) as token_error:
        create_token(sqlite_store, name=name, role="agent", actor=admin)
    with pytest.raises(UsageError) as user_error:
        add_user(sqlite_store, name=name, role="reader", password="x" * 16, actor=admin)
    for error in (token_error, user_error):
        assert "card number or an SSN" in str(error.value)
        assert name not in str(error.value)
    # a name the pattern refuses anyway is echoed only through the gate
    with pytest.raises(UsageError) as bad:
        create_token(sqlite_store, name=name + "!", role="agent", actor=admin)
    assert redact_text(name + "!") in str(bad.value) and name + "!" not in str(bad.value)
    with sqlite_store.connect() as conn:
        for table in (tokens, users):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
    # an ordinary name still passes
    create_token(sqlite_store, name="ci-agent-7", role="agent", actor=admin)
