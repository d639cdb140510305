"""TLS ClientHello/ServerHello parsing on real handshakes captured on loopback (Python ssl and
openssl s_client/s_server), re-fragmented, truncated and mangled."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.network.tls import CIPHER_SUITES, handshake_bytes, inspect
from tests.conftest import require

FIXTURES = Path(__file__).parent / "fixtures" / "protocols"


def pair(name: str) -> tuple[bytes, bytes]:
    return (FIXTURES / f"{name}.c2s").read_bytes(), (FIXTURES / f"{name}.s2c").read_bytes()


def test_tls13_with_alpn() -> None:
    info = inspect(*pair("tls13_alpn"))
    assert info is not None
    assert info.version == "TLS1.3" and info.client_max_version == "TLS1.3"
    assert info.sni == "orders.default.svc" and info.alpn == ("h2", "http/1.1")
    assert info.cipher == "TLS_AES_256_GCM_SHA384"
    assert info.alpn_chosen is None  # encrypted in TLS 1.3 (EncryptedExtensions)
    assert not info.hello_retry and info.complete


def test_tls12_alpn_chosen_is_visible() -> None:
    info = inspect(*pair("tls12_alpn"))
    assert info is not None
    assert (info.version, info.client_max_version, info.alpn_chosen) == ("TLS1.2", "TLS1.2", "h2")
    assert info.cipher is not None and info.cipher.startswith("TLS_ECDHE_ECDSA_WITH_")


def test_hello_retry_request_then_real_server_hello() -> None:
    info = inspect(*pair("tls13_hrr"))
    assert info is not None and info.hello_retry
    assert info.version == "TLS1.3" and info.sni == "hrr.test"
    assert info.client_versions[:2] == ("TLS1.3", "TLS1.2")


def test_tls_after_postgres_sslrequest() -> None:
    client, server = pair("postgres_ssl")
    info = inspect(client[8:], server[1:])
    assert info is not None and info.version == "TLS1.3"


def _refragment(stream: bytes, size: int) -> bytes:
    """Same handshake bytes, cut into records of ``size`` bytes (RFC 8446 5.1 allows it)."""
    data, _ = handshake_bytes(stream)
    version = stream[1:3]
    out = b""
    for i in range(0, len(data), size):
        chunk = data[i : i + size]
        out += b"\x16" + version + struct.pack("!H", len(chunk)) + chunk
    return out


@pytest.mark.parametrize("size", [1, 7, 50, 200])
def test_hellos_split_across_records(size: int) -> None:
    client, server = pair("tls13_alpn")
    whole = inspect(client, server)
    split = inspect(_refragment(client, size), _refragment(server, size))
    assert split == whole


@pytest.mark.parametrize("name", ["tls13_alpn", "tls12_alpn", "tls13_hrr"])
def test_truncation_returns_what_was_parsed(name: str) -> None:
    client, server = pair(name)
    full = inspect(client, server)
    assert full is not None
    saw_sni_only = False
    for cut in range(6, len(client), 3):
        info = inspect(client[:cut], b"")
        assert info is not None
        if info.sni is not None:
            assert info.sni == full.sni
            saw_sni_only = saw_sni_only or not info.complete
    assert saw_sni_only, "a cut after the SNI extension must still report the SNI"
    for cut in range(0, len(server), 5):
        info = inspect(client, server[:cut])
        assert info is not None and info.sni == full.sni


def test_sslv2_compatible_client_hello() -> None:
    # RFC 5246 appendix E.2 layout: 2-byte header with the high bit set, msg type 1, version,
    # cipher-spec/session-id/challenge lengths, 3-byte cipher specs, challenge.
    specs = bytes.fromhex("00002f000035000005")
    challenge = bytes(range(16))
    body = b"\x01\x03\x01" + struct.pack("!HHH", len(specs), 0, len(challenge)) + specs + challenge
    hello = struct.pack("!H", 0x8000 | len(body)) + body
    info = inspect(hello, b"")
    assert info is not None and info.sslv2_hello and info.client_max_version == "TLS1.0"
    assert info.sni is None and info.complete


def test_not_tls() -> None:
    assert inspect(b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n") is None
    assert inspect(b"", b"") is None


def test_cipher_names_agree_with_openssl() -> None:
    require(shutil.which("openssl") is not None, "openssl is not installed")
    out = subprocess.run(
        ["openssl", "ciphers", "-stdname", "-V", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    known = {}
    for m in re.finditer(r"0x([0-9A-F]{2}),0x([0-9A-F]{2}) - (TLS_\S+)", out):
        known[int(m.group(1) + m.group(2), 16)] = m.group(3)
    checked = [code for code in CIPHER_SUITES if code in known]
    assert len(checked) >= 30
    for code in checked:
        assert CIPHER_SUITES[code] == known[code], hex(code)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.binary(max_size=400))
def test_random_records_never_raise(client: bytes, server: bytes) -> None:
    inspect(b"\x16\x03\x01" + client, b"\x16\x03\x03" + server)
    inspect(client, server)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2000), st.integers(0, 255))
def test_mangled_real_hello_never_raises(at: int, value: int) -> None:
    client, server = pair("tls13_hrr")
    i = at % len(client)
    j = at % len(server)
    inspect(
        client[:i] + bytes([value]) + client[i + 1 :], server[:j] + bytes([value]) + server[j + 1 :]
    )


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64), server=st.booleans())
def test_the_first_byte_shortcut_answers_as_the_record_walk(data: bytes, server: bool) -> None:
    from stockade.network import tls

    if not server and data[:1] and data[0] & 0x80:
        return  # SSLv2: neither path reads the records
    assert tls.opens_with_hello(data, server=server) == tls._records(data, server=server)
