"""The masked-capture writer: the file appears whole, mode 0600, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stockade.model.errors import InputError
from stockade.network.capture.pcapfile import PcapReader
from stockade.network.capture.pcapwriter import PcapBuffer, PcapWriter
from tests.network import frames as F

PKT = F.ipv4("10.0.0.1", "10.0.0.2", 17, F.udp(5353, 53, b"query"))


def test_closed_whole_with_mode_0600_and_read_back(tmp_path: Path) -> None:
    out = tmp_path / "cap.pcap"
    old = os.umask(0o022)
    try:
        w = PcapWriter(out, linktype=101)
    finally:
        os.umask(old)
    w.write(1.5, PKT)
    assert not out.exists()  # nothing at the target until close()
    w.write(2.25, PKT)
    w.close()
    assert out.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["cap.pcap"]
    with PcapReader(out) as r:
        assert [(ts, bytes(buf[off : off + n])) for ts, _l, buf, off, n in r.frames()] == [
            (1.5, PKT),
            (2.25, PKT),
        ]
    memory = PcapBuffer(linktype=101)
    memory.write(1.5, PKT)
    memory.write(2.25, PKT)
    assert memory.value() == out.read_bytes()


def test_abort_leaves_nothing_and_keeps_an_older_file(tmp_path: Path) -> None:
    out = tmp_path / "cap.pcap"
    out.write_bytes(b"earlier capture")
    w = PcapWriter(out, linktype=101)
    w.write(1.0, PKT)
    w.abort()
    assert out.read_bytes() == b"earlier capture"
    assert [p.name for p in tmp_path.iterdir()] == ["cap.pcap"]


def test_a_failed_close_is_an_input_error_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "cap.pcap"
    out.mkdir()
    (out / "x").write_bytes(b"")  # a full folder at the target: the rename fails
    w = PcapWriter(out, linktype=101)
    w.write(1.0, PKT)
    with pytest.raises(InputError, match="cannot write"):
        w.close()
    assert [p.name for p in tmp_path.iterdir()] == ["cap.pcap"]
