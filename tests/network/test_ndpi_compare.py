"""Protocol detection next to nDPI (Debian libndpi-bin, ``ndpiReader``) on the same pcap: a
tcpdump capture on ``lo`` of every scenario in fixtures/capture_protocols.py (``--pcap``).
Where the two disagree the difference must be one docs/protocols.md explains."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from stockade.identity import Directory
from stockade.network.analysis import Inspectors
from stockade.network.sensor import run_pcap
from tests.conftest import require

PCAP = Path(__file__).parent / "fixtures" / "protocols" / "loopback.pcap"

NDPI_NAMES = {
    "HTTP": "proto.http", "TLS": "proto.tls", "PostgreSQL": "proto.postgres",
    "Redis": "proto.redis", "MongoDB": "proto.mongodb", "SSH": "proto.ssh", "SMTP": "proto.smtp",
    "DNS": "proto.dns", "MySQL": "proto.mysql", "Kafka": "proto.kafka", "HTTP2": "proto.http2",
    "IMAP": "proto.imap",
    # nDPI names a mail session that turned to TLS by STARTTLS after the TLS variant
    "IMAPS": "proto.imap",
    "POP3S": "proto.pop3",
    "SMTPS": "proto.smtp", "POP3": "proto.pop3",
}  # fmt: skip

# (nDPI 4.2 answer, ours): why they differ is in docs/protocols.md, "Agreement with nDPI".
EXPLAINED = {
    ("HTTP", "proto.http2"),  # accepted Upgrade: h2c; nDPI keeps the first protocol
    ("Unknown", "proto.http2"),  # no cleartext HTTP/2 (prior knowledge) dissector in nDPI 4.2
    ("Unknown", "proto.grpc"),  # gRPC over h2c, same reason
    ("Unknown", "proto.postgres"),  # nDPI wants the SSLRequest exchange; a plain startup is missed
    ("Unknown", "proto.dns"),  # nDPI's DNS dissector only looks at ports 53/5353/5355
    ("Unknown", "proto.kafka"),  # no Kafka dissector in nDPI 4.2
    ("Nats", "proto.redis"),  # inline "PING\r\n" is NATS too; the "+PONG" reply is Redis
    ("Unknown", "proto.pop3"),  # nDPI 4.2 does not conclude on a POP3 session that starts STLS
}

_FLOW = re.compile(
    r"^\s+\d+\s+(TCP|UDP) 127\.0\.0\.1:(\d+) <-> 127\.0\.0\.1:(\d+) \[proto: [\d.]+/([A-Za-z0-9_.]+)\]"
)


_SNI = re.compile(r"\[Hostname/SNI: ([^\]]+)\]")


def ndpi_flows(pcap: Path) -> dict[tuple[str, int, int], tuple[str, str | None]]:
    out = subprocess.run(
        ["ndpiReader", "-i", str(pcap), "-v", "2"], capture_output=True, text=True, timeout=60
    ).stdout
    flows = {}
    for line in out.splitlines():
        m = _FLOW.match(line)
        if m:
            name = m.group(4).split(".")[-1]  # "91.178/TLS.Amazon" style: keep the application
            sni = _SNI.search(line)
            flows[(m.group(1).lower(), int(m.group(2)), int(m.group(3)))] = (
                name,
                sni and sni.group(1),
            )
    return flows


def test_detection_agrees_with_ndpi_or_the_difference_is_explained() -> None:
    require(
        shutil.which("ndpiReader") is not None, "ndpiReader (Debian libndpi-bin) is not installed"
    )
    theirs = ndpi_flows(PCAP)
    records = run_pcap(PCAP, inspectors=Inspectors.default(), identities=Directory()).records
    ours = {(r.transport, r.client_port, r.server_port): r.protocol for r in records}
    snis = {(r.transport, r.client_port, r.server_port): r.tls.sni for r in records if r.tls}
    assert len(ours) >= 24 and set(theirs) == set(ours)
    agree, explained = 0, set()
    for key, (name, host) in theirs.items():
        if name == "TLS":
            assert snis[key] == host  # the SNI both read from the same ClientHello
        if NDPI_NAMES.get(name) == ours[key]:
            agree += 1
        else:
            assert (name, ours[key]) in EXPLAINED, (key, name, ours[key])
            explained.add((name, ours[key]))
    assert agree >= 14
    assert [p for (transport, _, _), p in ours.items() if transport == "udp"] == ["proto.dns"]
    assert explained == EXPLAINED, "a documented difference no longer happens: update the docs"
