"""The generated CA and serving certificate (controller, webhook): reused while they fit, made
anew otherwise, and never seen half-written by a client waiting for them."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stockade.admission.certs import ensure_certificate


def _inodes(files: object) -> dict[str, int]:
    return {n: getattr(files, n).stat().st_ino for n in ("ca_cert", "cert", "key")}


def test_reused_while_they_cover_the_names(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path, ["stockade.local"], ca_name="Test CA")
    before = _inodes(first), first.ca_cert.read_bytes()
    again = ensure_certificate(tmp_path, ["stockade.local"], ca_name="Test CA")
    assert (_inodes(again), again.ca_cert.read_bytes()) == before


def test_made_anew_each_file_replaced_whole(tmp_path: Path) -> None:
    old = ensure_certificate(tmp_path, ["a.local"], ca_name="Test CA")
    old_inodes, old_ca = _inodes(old), old.ca_cert.read_bytes()
    new = ensure_certificate(tmp_path, ["b.local"], ca_name="Test CA")
    # written beside and renamed over: a reader holds the old file or the whole new one (a file
    # rewritten in place keeps its inode and is empty for a moment)
    assert all(_inodes(new)[n] != old_inodes[n] for n in old_inodes)
    assert new.ca_cert.read_bytes() != old_ca
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert stat.S_IMODE(new.key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(new.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(new.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["b.local"]
    key = serialization.load_pem_private_key(new.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
