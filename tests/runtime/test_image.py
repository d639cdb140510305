"""An image root's executables, indexed once and kept in a sidecar file beside the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.model.errors import ConfigError
from stockade.runtime.image import index_root, load_or_index, sha256_of


def test_indexed_once_then_read_from_the_sidecar(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "usr" / "bin").mkdir(parents=True)
    tool = root / "usr" / "bin" / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o755)
    (root / "notes.txt").write_bytes(b"not executable")
    first = load_or_index(root)
    assert first.executables == {"/usr/bin/tool": sha256_of(tool)} == index_root(root).executables
    sidecar = tmp_path / "rootfs.files.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rootfs", "rootfs.files.json"]
    tool.write_bytes(b"changed")  # the sidecar is what counts once written
    assert load_or_index(root) == first
    sidecar.write_text("{")
    with pytest.raises(ConfigError, match="unreadable"):
        load_or_index(root)
