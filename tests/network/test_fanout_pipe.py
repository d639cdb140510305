"""The records a sensor worker sends its parent (``sensor --workers``) cross a real pipe whole:
TLS facts with the certificate, DLP hits, details; the parent names both ends from its live
directory, and a change to the directory shows in the next record."""

from __future__ import annotations

import ipaddress
import os

from stockade.identity import Directory
from stockade.identity.model import Workload
from stockade.network import fanout
from stockade.network.connection import ConnectionRecord, Hit
from stockade.network.interface import CertificateInfo, DlpMatch, TlsInfo

ORDERS = Workload(name="orders", namespace="shop", addresses=("10.0.0.2", "fd00::2"))


def _records(directory: Directory) -> list[ConnectionRecord]:
    cert = CertificateInfo(
        subject="CN=orders.shop.svc",
        issuer="CN=Shop CA",
        serial="1f",
        not_before=1.0e9,
        not_after=2.0e9,
        self_signed=False,
        dns_names=("orders.shop.svc",),
        key_type="EC",
        key_bits=256,
        signature_hash="sha256",
    )
    tls = TlsInfo(
        version="TLS1.2",
        sni="orders.shop.svc",
        alpn=("h2", "http/1.1"),
        cipher="TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        client_versions=("TLS1.2",),
        certificate_status="seen",
        certificate=cert,
    )
    card = DlpMatch(
        sensor="dlp.payment_card", masked="4111 **** **** 1111", start=7, end=26, label="visa"
    )
    out = []
    for i, (cip, sip) in enumerate((("10.9.9.9", "10.0.0.2"), ("fd00::7", "fd00::2"))):
        out.append(
            ConnectionRecord(
                id=f"c{i}",
                start=1.7e9 + i,
                end=1.7e9 + i + 0.5,
                transport="tcp",
                ip_version=4 if "." in cip else 6,
                client_ip=cip,
                client_port=40000 + i,
                server_ip=sip,
                server_port=443,
                client=directory.lookup(ipaddress.ip_address(cip).packed),
                server=directory.lookup(ipaddress.ip_address(sip).packed),
                protocol="proto.tls",
                encrypted=True,
                tls=tls if i == 0 else None,
                bytes_to_server=1200,
                bytes_to_client=3400,
                packets_to_server=6,
                packets_to_client=5,
                flags_client="SAF",
                flags_server="SAF",
                inspected=4600,
                hits=(Hit(direction="client", match=card),) if i else (),
                details=(("http.host", "orders"),),
            )
        )
    return out


def _through_pipe(records: list[ConnectionRecord]) -> list[tuple]:
    read, write = os.pipe()
    try:
        pipe = fanout._Pipe(write)
        for rec in records:
            pipe.record(rec)
        pipe.flush()
        pipe.send(("done", {"frames": 2}, None))
        os.close(write)
        write = -1
        buf = bytearray()
        while chunk := os.read(read, 1 << 16):
            buf += chunk
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    messages = fanout._messages(buf)
    assert not buf  # every byte was a whole message
    assert messages[-1] == ("done", {"frames": 2}, None)
    return [values for kind, *rest in messages if kind == "records" for values in rest[0]]


def test_records_cross_the_pipe_whole_and_the_parent_names_them() -> None:
    directory = Directory([ORDERS])
    sent = _records(directory)
    who = fanout._Names(directory)
    got = [fanout._record(values, who) for values in _through_pipe(sent)]
    assert got == sent
    assert got[0].server.name == "orders" and got[0].client.kind == "external"
    assert got[0].tls is not None and got[0].tls.certificate == sent[0].tls.certificate


def test_the_parent_names_follow_changes_to_its_directory() -> None:
    directory = Directory()
    who = fanout._Names(directory)
    values = _through_pipe(_records(Directory()))
    assert fanout._record(values[0], who).server.kind == "external"
    directory.put("pod/shop/orders", ORDERS)
    assert fanout._record(values[0], who).server.name == "orders"
    directory.remove("pod/shop/orders")
    assert fanout._record(values[1], who).server.kind == "external"
