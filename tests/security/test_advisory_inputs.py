"""Hostile advisory documents of the vendor formats (Red Hat and SUSE CSAF VEX, Amazon updateinfo,
tar archives): ``stockade db import`` answers with one line on stderr and exit 3, keeps the store as
it was, in bounded time and memory."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from pathlib import Path

import pytest

from tests.scanning.scan_cli_support import run

DATA = Path(__file__).resolve().parents[1] / "scanning" / "data" / "advisories"
VEX = DATA / "redhat-vex" / "cve-2023-38545.json"
SUSE = DATA / "suse-vex" / "cve-2023-47627.json"


def _import_fails(tmp_path: Path, source: Path, reason: str, *, not_: str = "") -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    started = time.monotonic()
    proc = run("db", "import", str(source), "--db", db)
    assert time.monotonic() - started < 60
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stockade: error: "), proc.stderr
    assert reason in lines[0], lines[0]
    assert not not_ or not_ not in lines[0], lines[0]  # read as its format, not as something else
    assert "Traceback" not in proc.stderr


def _vex_with(tmp_path: Path, mutate, source: Path = VEX) -> Path:
    doc = json.loads(source.read_text())
    mutate(doc)
    out = tmp_path / "cve-hostile.json"
    out.write_text(json.dumps(doc))
    return out


def test_truncated_vex(tmp_path: Path) -> None:
    bad = tmp_path / "cve-2023-38545.json"
    bad.write_bytes(VEX.read_bytes()[:5000])
    _import_fails(tmp_path, bad, "malformed JSON")


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("tree is a list", lambda d: d.update(product_tree=[1, 2])),
        ("vulnerabilities a string", lambda d: d.update(vulnerabilities="CVE-2023-38545")),
        ("status a number", lambda d: d["vulnerabilities"][0].update(product_status=7)),
        ("cve a number", lambda d: d["vulnerabilities"][0].update(cve=38545)),
        (
            "relationship fields of the wrong type",
            lambda d: [
                r.update(product_reference=["x"], full_product_name="y")
                for r in d["product_tree"]["relationships"]
            ],
        ),
        (
            "purls of the wrong type",
            lambda d: _each_product(d, lambda p: p.update(product_identification_helper=5)),
        ),
    ],
)
@pytest.mark.parametrize("vendor", ["redhat", "suse"])
def test_vex_with_wrong_types(tmp_path: Path, vendor: str, name: str, mutate) -> None:
    _import_fails(
        tmp_path,
        _vex_with(tmp_path, mutate, SUSE if vendor == "suse" else VEX),
        "no usable advisory records",
        not_="not a recognised advisory format",
    )


def _each_product(doc: dict, fn) -> None:
    stack = list(doc["product_tree"]["branches"])
    while stack:
        b = stack.pop()
        stack.extend(b.get("branches", []))
        if "product" in b:
            fn(b["product"])


def test_huge_tar_member_is_not_read(tmp_path: Path) -> None:
    """A 600 MiB member (a sparse file: no disk used) is refused from its header, never read."""
    info = tarfile.TarInfo("2023/cve-2023-0001.json")
    info.size = 600 * 1024 * 1024
    bad = tmp_path / "csaf_vex_2024-01-01.tar"
    with bad.open("wb") as fh:
        fh.write(info.tobuf(format=tarfile.GNU_FORMAT))
        fh.seek(512 + info.size)
        fh.write(b"\0" * 1024)  # the end-of-archive blocks
    _import_fails(tmp_path, bad, "malformed JSON")


def test_truncated_tar_gz(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(VEX, arcname="2023/cve-2023-38545.json")
    bad = tmp_path / "csaf_vex_2024-01-01.tar.gz"
    bad.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    _import_fails(tmp_path, bad, "")


def test_gzip_bomb_updateinfo(tmp_path: Path) -> None:
    """An updateinfo.xml.gz that inflates past the document limit stops at the limit."""
    bad = tmp_path / "updateinfo.xml.gz"
    with gzip.open(bad, "wb", compresslevel=9) as gz:
        gz.write(b"<updates>")
        chunk = b" " * (1 << 20)
        for _ in range(130):  # past the 128 MiB limit
            gz.write(chunk)
    _import_fails(tmp_path, bad, "broken gzip data")


def test_xml_entities_refused(tmp_path: Path) -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE updates [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><updates>&b;</updates>'
    )
    bad = tmp_path / "updateinfo.xml"
    bad.write_bytes(laughs)
    _import_fails(tmp_path, bad, "DOCTYPE or entities is refused")


@pytest.mark.parametrize(
    "body",
    [
        b"<updates><update type='security'><id>ALAS2023-2023-001</id><pkglist><collection>"
        b"<package name='x' version='1' release='1' epoch='abc'/></collection></pkglist>"
        b"</update></updates>",
        b"<updates><update type='security'><id>NOT-AN-ID</id></update></updates>",
        b"<updates><update type='security'><id>ALAS2-2018-1</id><pkglist><collection>"
        b"<package name='x' version='1 0' release='1'/></collection></pkglist></update></updates>",
        b"<updates><update",
    ],
)
def test_bad_updateinfo(tmp_path: Path, body: bytes) -> None:
    bad = tmp_path / "updateinfo.xml"
    bad.write_bytes(body)
    _import_fails(tmp_path, bad, "no usable advisory records", not_="malformed JSON")
