"""TLS facts and policy on real handshakes: certificates made with ``cryptography`` (CA-signed,
expired, not yet valid, self-signed, for another name, a 1024-bit RSA key), Python ``ssl`` servers
on loopback under TLS 1.2 (certificates in clear) and TLS 1.3 (encrypted), weak suites OpenSSL still
negotiates (NULL, anonymous ECDH, CBC with SHA-1), mTLS; captured into a pcap and read by
``stockade sensor --pcap``. Suites OpenSSL refuses (RC4, 3DES, export) are judged from real
ServerHello bytes with the suite changed."""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.network import tls_certs, tls_suites
from stockade.network.interface import CertificateInfo
from stockade.network.tls import handshake_bytes, inspect
from stockade.network.tls_policy import TlsPolicy, facts, violations
from stockade.store import open_store
from stockade.store.records import list_events
from tests.network import tls_talk as T

SNI = "orders.shop.svc"
TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def _sides(ex: T.Exchange) -> tuple[bytes, bytes]:
    return (
        b"".join(b for d, b in ex.chunks if d == 0),
        b"".join(b for d, b in ex.chunks if d == 1),
    )


# server port -> what that connection is
SCENARIOS = {
    1001: "good",
    1002: "expired",
    1003: "not_yet_valid",
    1004: "self_signed",
    1005: "wrong_name",
    1006: "weak_key",
    1007: "tls13",
    1008: "null_cipher",
    1009: "anon",
    1010: "cbc_sha",
    1011: "mtls",
    1012: "mtls_no_client_cert",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, T.Exchange]:
    d = tmp_path_factory.mktemp("tlsfacts")
    ca = T.certificate("Test CA", ca=True)
    ca_file, _ = ca.files(d, "ca")
    now = T.NOW
    certs = {
        "good": T.certificate(SNI, dns=(SNI, "*.api.shop.svc"), issuer=ca),
        "expired": T.certificate(
            SNI,
            dns=(SNI,),
            issuer=ca,
            not_before=now - dt.timedelta(days=60),
            not_after=now - dt.timedelta(days=1),
        ),
        "not_yet_valid": T.certificate(
            SNI, dns=(SNI,), issuer=ca, not_before=now + dt.timedelta(days=10)
        ),
        "self_signed": T.certificate(SNI, dns=(SNI,)),
        "wrong_name": T.certificate(
            "billing", dns=("billing.shop.svc", "*.shop.svc.cluster"), issuer=ca
        ),
        "weak_key": T.certificate(
            SNI, dns=(SNI,), issuer=ca, key=rsa.generate_private_key(65537, 1024)
        ),
        "client": T.certificate("payments", dns=("payments.shop.svc",), issuer=ca),
    }
    files = {name: c.files(d, name) for name, c in certs.items()}
    good = files["good"]
    s0 = "@SECLEVEL=0"

    def run(name: str) -> T.Exchange:
        cert = files.get(name, good)
        if name == "tls13":
            return T.talk(T.server_context(*good, version=TLS13), T.client_context(), SNI)
        if name == "weak_key":
            return T.talk(
                T.server_context(*cert, ciphers=f"ECDHE-RSA-AES128-GCM-SHA256:{s0}"),
                T.client_context(ciphers=f"ECDHE-RSA-AES128-GCM-SHA256:{s0}"),
                SNI,
            )
        suites = {
            "null_cipher": f"ECDHE-ECDSA-NULL-SHA:{s0}",
            "anon": f"AECDH-AES128-SHA:{s0}",
            "cbc_sha": "ECDHE-ECDSA-AES128-SHA",
        }.get(name)
        if name.startswith("mtls"):
            server = T.server_context(*good, client_ca=ca_file)
            if name == "mtls_no_client_cert":
                server.verify_mode = ssl.CERT_OPTIONAL
            client = T.client_context(cert=files["client"] if name == "mtls" else None)
            return T.talk(server, client, SNI)
        return T.talk(
            T.server_context(*cert, ciphers=suites), T.client_context(ciphers=suites), SNI
        )

    return {name: run(name) for name in SCENARIOS.values()}


@pytest.fixture(scope="module")
def sensor_run(
    world: dict[str, T.Exchange], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, dict], dict[str, list], subprocess.CompletedProcess[str]]:
    d = tmp_path_factory.mktemp("tlsfacts-run")
    ts = time.time()
    pcap = T.write_pcap(
        d / "tls.pcap",
        [(world[name], ts, 40000 + port, port) for port, name in SCENARIOS.items()],
    )
    db = d / "s.db"
    out = _cli("sensor", "--pcap", str(pcap), "--format", "json", "--db", f"sqlite:///{db}")
    assert out.returncode == 0, out.stderr
    recs = {SCENARIOS[r["server"]["port"]]: r for r in map(json.loads, out.stdout.splitlines())}
    store = open_store(f"sqlite:///{db}")
    try:
        events: dict[str, list] = {}
        for e in list_events(store, kind="tls.*"):
            events.setdefault(SCENARIOS[e.data["server_port"]], []).append(e)
    finally:
        store.close()
    return recs, events, out


def test_the_servers_negotiated_what_the_scenarios_need(world: dict[str, T.Exchange]) -> None:
    assert world["tls13"].version == "TLSv1.3"
    assert {ex.version for n, ex in world.items() if n != "tls13"} == {"TLSv1.2"}
    assert world["null_cipher"].cipher == "ECDHE-ECDSA-NULL-SHA"
    assert world["anon"].cipher == "AECDH-AES128-SHA"


def test_certificate_facts_from_tls12_handshakes(sensor_run) -> None:
    recs, _events, _ = sensor_run
    assert set(recs) == set(SCENARIOS.values())
    good = recs["good"]["tls"]
    assert good["version"] == "TLS1.2" and good["certificate_status"] == "seen"
    cert = good["certificate"]
    assert cert["subject"] == f"CN={SNI}" and cert["issuer"] == "CN=Test CA"
    assert cert["name_matches_sni"] is True and cert["key"] == "EC 256"
    assert not (cert["expired"] or cert["not_yet_valid"] or cert["self_signed"] or cert["weak_key"])
    assert cert["signature_hash"] == "sha256" and cert["chain_length"] == 1
    assert cert["dns_names"] == [SNI, "*.api.shop.svc"]
    assert good["cipher_strength"] == "ok" and good["client_certificate"] == "not_requested"

    def c(name: str) -> dict:
        return recs[name]["tls"]["certificate"]

    assert c("expired")["expired"] and not c("expired")["not_yet_valid"]
    assert c("not_yet_valid")["not_yet_valid"] and not c("not_yet_valid")["expired"]
    assert c("self_signed")["self_signed"] and c("self_signed")["name_matches_sni"]
    assert c("wrong_name")["name_matches_sni"] is False and not c("wrong_name")["self_signed"]
    assert c("weak_key")["key"] == "RSA 1024" and c("weak_key")["weak_key"]


def test_tls13_certificates_are_not_visible(sensor_run) -> None:
    recs, events, _ = sensor_run
    t = recs["tls13"]["tls"]
    assert t["version"] == "TLS1.3" and t["certificate_status"] == "encrypted"
    assert t["certificate"] is None and t["client_certificate"] == "encrypted"
    assert "tls13" not in events  # nothing guessed, nothing raised


def test_weak_and_legacy_suites_negotiated_for_real(sensor_run) -> None:
    recs, events, _ = sensor_run
    null, anon, cbc = (recs[n]["tls"] for n in ("null_cipher", "anon", "cbc_sha"))
    assert (null["cipher"], null["cipher_strength"]) == ("TLS_ECDHE_ECDSA_WITH_NULL_SHA", "weak")
    assert (anon["cipher"], anon["cipher_strength"]) == (
        "TLS_ECDH_anon_WITH_AES_128_CBC_SHA",
        "weak",
    )
    assert anon["certificate_status"] == "absent"  # anonymous: no certificate at all
    assert (cbc["cipher"], cbc["cipher_strength"]) == (
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "legacy",
    )
    assert [e.kind for e in events["null_cipher"]] == ["tls.weak_cipher"]
    assert events["null_cipher"][0].data["strength"] == "weak"
    assert str(events["null_cipher"][0].severity) == "high"
    assert "cbc_sha" not in events  # legacy is a fact; it alerts only when the policy asks


def test_mtls_seen_or_not(sensor_run) -> None:
    recs, _events, _ = sensor_run
    assert recs["mtls"]["tls"]["client_certificate"] == "sent"
    assert recs["mtls_no_client_cert"]["tls"]["client_certificate"] == "requested_not_sent"


def test_events_one_per_fact_with_the_default_policy(sensor_run) -> None:
    _recs, events, out = sensor_run
    kinds = {name: sorted(e.kind for e in evs) for name, evs in events.items()}
    assert kinds == {
        "expired": ["tls.certificate_expired"],
        "not_yet_valid": ["tls.certificate_not_yet_valid"],
        "self_signed": ["tls.certificate_self_signed"],
        "wrong_name": ["tls.certificate_name_mismatch"],
        "weak_key": ["tls.certificate_weak_key"],
        "null_cipher": ["tls.weak_cipher"],
        "anon": ["tls.weak_cipher"],
    }
    expired = events["expired"][0]
    assert expired.data["subject"] == f"CN={SNI}" and expired.data["sni"] == SNI
    assert expired.resource is not None and expired.peer is not None
    assert "TLS policy events" in out.stderr


def test_policy_minimum_version_and_alerts(world: dict[str, T.Exchange], tmp_path: Path) -> None:
    pcap = T.write_pcap(
        tmp_path / "p.pcap",
        [
            (world[n], time.time(), 40000 + p, p)
            for p, n in ((1001, "good"), (1010, "cbc_sha"), (1012, "mtls_no_client_cert"))
        ],
    )
    base = ("sensor", "--pcap", str(pcap), "--no-store", "--fail-on", "low")
    assert _cli(*base).returncode == 0  # nothing below the defaults
    out = _cli(*base, "--tls-min-version", "1.3")
    assert out.returncode == 1 and "3 weak TLS" in out.stderr
    policy = tmp_path / "tls.yaml"
    policy.write_text("tls:\n  alert: [legacy_cipher, client_certificate_missing]\n")
    out = _cli(*base, "--tls-policy", str(policy), "--format", "json")
    assert (
        out.returncode == 1 and "0 weak TLS, 4 TLS policy events"
    )  # legacy suite + 3 without client certificates in out.stderr
    policy.write_text("tls:\n  minVersion: TLS9\n")
    out = _cli(*base, "--tls-policy", str(policy))
    assert out.returncode == 2 and "unknown TLS version" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    out = _cli(*base, "--tls-min-version", "banana")
    assert out.returncode == 2 and "--tls-min-version" in out.stderr


# ---------------------------------------------------------------- byte fixtures and units


def _with_suite(server: bytes, code: int) -> bytes:
    """The same server bytes with the ServerHello's chosen suite replaced."""
    hs, _ = handshake_bytes(server)
    assert server[5] == 2  # the first record starts with the ServerHello
    sid_len = server[5 + 4 + 2 + 32]
    at = 5 + 4 + 2 + 32 + 1 + sid_len
    assert hs[at - 5 : at - 3] == server[at : at + 2]
    return server[:at] + code.to_bytes(2, "big") + server[at + 2 :]


@pytest.mark.parametrize(
    ("code", "name", "level"),
    [
        (0x0005, "TLS_RSA_WITH_RC4_128_SHA", "weak"),
        (0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "weak"),
        (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5", "weak"),
        (0x0009, "TLS_RSA_WITH_DES_CBC_SHA", "weak"),
        (0x0001, "TLS_RSA_WITH_NULL_MD5", "weak"),
        (0x0018, "TLS_DH_anon_WITH_RC4_128_MD5", "weak"),
        (0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", "legacy"),
        (0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", "legacy"),
        (0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "legacy"),
        (0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ok"),
        (0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ok"),
        (0xFEFE, "0xFEFE", "unknown"),
    ],
)
def test_suites_openssl_refuses_judged_from_bytes(
    world: dict[str, T.Exchange], code: int, name: str, level: str
) -> None:
    client, server = _sides(world["good"])
    info = inspect(client, _with_suite(server, code))
    assert info is not None and info.cipher == name
    assert facts(info, time.time())["cipher_strength"] == level
    alerted = [v.fact for v in violations(info, time.time(), TlsPolicy())]
    assert ("weak_cipher" in alerted) == (level == "weak")


def test_table_names_agree_with_openssl() -> None:
    out = subprocess.run(
        ["openssl", "ciphers", "-V", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    seen = 0
    for line in out.splitlines():
        code_text, _, std = line.split()[:3]
        hi, lo = code_text.split(",")
        name = tls_suites.extra_name(int(hi, 16) << 8 | int(lo, 16))
        if name is not None:
            assert name == std
            seen += 1
    assert seen > 100


def _cert(dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> CertificateInfo:
    return CertificateInfo(
        subject="CN=x",
        issuer="CN=x",
        serial="1",
        not_before=0.0,
        not_after=1.0,
        self_signed=False,
        dns_names=dns,
        ip_addresses=ips,
    )


@pytest.mark.parametrize(
    ("names", "host", "ok"),
    [
        (("orders.shop.svc",), "orders.shop.svc", True),
        (("Orders.Shop.SVC.",), "orders.shop.svc", True),
        (("*.shop.svc",), "orders.shop.svc", True),
        (("*.shop.svc",), "shop.svc", False),  # the wildcard needs a label
        (("*.shop.svc",), "a.orders.shop.svc", False),  # exactly one label
        (("*.com",), "shop.com", False),  # never a whole public suffix
        (("o*.shop.svc",), "orders.shop.svc", False),  # partial wildcards are not honoured
        (("*.*.svc",), "a.b.svc", False),
        ((), "orders.shop.svc", False),  # no subjectAltName: no fallback to the common name
    ],
)
def test_name_matching(names: tuple[str, ...], host: str, ok: bool) -> None:
    assert tls_certs.name_matches(_cert(dns=names), host) is ok


def test_ip_names_and_no_sni() -> None:
    assert tls_certs.name_matches(_cert(ips=("10.0.0.2",)), "10.0.0.2") is True
    assert tls_certs.name_matches(_cert(dns=("10.0.0.2",)), "10.0.0.2") is False
    assert tls_certs.name_matches(_cert(dns=("a",)), None) is None


def _cert_message(ders: list[bytes]) -> bytes:
    body = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    return len(body).to_bytes(3, "big") + body


def test_certificate_list_is_bounded(world: dict[str, T.Exchange]) -> None:
    der = T.certificate("x").cert.public_bytes(serialization.Encoding.DER)
    assert tls_certs.certificate_list(_cert_message([der] * 12)) == [der] * tls_certs.MAX_CERTS
    big = b"\x30" * (tls_certs.MAX_CERT_BYTES + 1)
    assert tls_certs.certificate_list(_cert_message([big])) is None
    assert tls_certs.certificate_list(_cert_message([der])[:-1]) is None  # cut short
    assert tls_certs.certificate_list(b"\x00\x00\x05\x00\x00\x09abcde") is None  # lies
    assert tls_certs.leaf_info(b"\x30\x03\x02\x01\x00") is None  # DER, not a certificate


def test_certificate_cut_by_stream_depth_is_absent(world: dict[str, T.Exchange]) -> None:
    client, server = _sides(world["expired"])
    cert_at = server.index(b"\x0b", 5 + 4)  # somewhere inside the Certificate message
    info = inspect(client, server[: cert_at + 40])
    assert info is not None and info.certificate is None
    assert info.certificate_status == "absent" and info.client_certificate is None


def test_mangled_tls12_flight_never_raises(world: dict[str, T.Exchange]) -> None:
    """Every byte of a real mTLS handshake (both certificates in clear) changed in turn."""
    client, server = _sides(world["mtls"])

    @settings(max_examples=400, deadline=None)
    @given(st.booleans(), st.integers(min_value=0, max_value=4000), st.integers(0, 255))
    def mangle(on_client: bool, at: int, value: int) -> None:
        data = bytearray(client if on_client else server)
        data[at % len(data)] = value
        c, s = (bytes(data), server) if on_client else (client, bytes(data))
        info = inspect(c, s)
        if info is not None:
            facts(info, time.time())
            violations(info, time.time(), TlsPolicy())

    mangle()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12))
def test_random_certificate_messages_never_raise(ders: list[bytes]) -> None:
    chain = tls_certs.certificate_list(_cert_message(ders))
    if chain:
        tls_certs.leaf_info(chain[0])


# ---------------------------------------------------------------- compliance evidence


def _pci_421(db: str) -> dict:
    out = _cli("report", "compliance", "--framework", "pci-dss", "-f", "json", "--db", db)
    assert out.returncode == 0, out.stderr
    (req,) = [r for r in json.loads(out.stdout)["requirements"] if r["id"] == "4.2.1"]
    return req


def test_pci_4_2_1_fails_on_certificate_facts_and_passes_on_good_ones(
    world: dict[str, T.Exchange], tmp_path: Path
) -> None:
    good_db, bad_db = f"sqlite:///{tmp_path / 'good.db'}", f"sqlite:///{tmp_path / 'bad.db'}"
    now = time.time()
    good = T.write_pcap(tmp_path / "good.pcap", [(world["good"], now, 40001, 1001)])
    assert _cli("sensor", "--pcap", str(good), "--db", good_db).returncode == 0
    req = _pci_421(good_db)
    assert req["status"] == "PASS", req
    passing = {c["id"] for c in req["checks"] if c["counts"]["PASS"]}
    assert {"tls.weak_version", "tls.weak_cipher", "tls.certificate_expired"} <= passing
    assert {"tls.certificate_self_signed", "tls.certificate_name_mismatch"} <= passing

    names = ("good", "expired", "self_signed", "null_cipher")
    bad = T.write_pcap(
        tmp_path / "bad.pcap",
        [(world[n], now, 40100 + i, 1100 + i) for i, n in enumerate(names)],
    )
    assert _cli("sensor", "--pcap", str(bad), "--db", bad_db).returncode == 0
    req = _pci_421(bad_db)
    assert req["status"] == "FAIL"
    failing = {c["id"]: c["failures"] for c in req["checks"] if c["counts"]["FAIL"]}
    assert set(failing) == {
        "tls.certificate_expired",
        "tls.certificate_self_signed",
        "tls.weak_cipher",
    }
    assert "certificate expired" in failing["tls.certificate_expired"][0]["evidence"]
    # a failing fact has no passing row beside it; facts nobody failed still pass
    passing = {c["id"] for c in req["checks"] if c["counts"]["PASS"]}
    assert "tls.certificate_expired" not in passing and "tls.certificate_name_mismatch" in passing


def test_tls13_only_traffic_gives_no_certificate_evidence(
    world: dict[str, T.Exchange], tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    cap = T.write_pcap(tmp_path / "t.pcap", [(world["tls13"], time.time(), 40001, 1001)])
    assert _cli("sensor", "--pcap", str(cap), "--db", db).returncode == 0
    checks = {c["id"]: c for c in _pci_421(db)["checks"]}
    assert checks["tls.weak_cipher"]["counts"]["PASS"] == 1
    assert not any(
        c["counts"]["PASS"] or c["counts"]["FAIL"]
        for k, c in checks.items()
        if k.startswith("tls.certificate_")
    )
