"""A policy folder as Kubernetes mounts a ConfigMap: each key a link at the top (``policy.yaml ->
..data/policy.yaml``), ``..data`` a link to the timestamped copy that holds the files. The
policy is read once, through the top-level links, however the folder is named."""

from __future__ import annotations

from pathlib import Path

from stockade.config import files_below
from stockade.firewall.policy.files import dump, load_files
from tests.firewall.conftest import EXAMPLES


def _configmap_volume(root: Path, files: dict[str, str]) -> Path:
    stamp = root / "..2026_12_06_10_00_00.123456789"
    stamp.mkdir(parents=True)
    for name, text in files.items():
        (stamp / name).write_text(text)
    (root / "..data").symlink_to(stamp.name)
    for name in files:
        (root / name).symlink_to(f"..data/{name}")
    return root


def test_a_mounted_configmap_is_read_once(tmp_path: Path) -> None:
    text = (EXAMPLES / "policy.yaml").read_text()
    volume = _configmap_volume(tmp_path / "policy", {"policy.yaml": text})
    # before: the copy under ..2026_... and the link at the top were two files, and the
    # policy was refused ("group names must be unique")
    assert dump(load_files([volume])) == dump(load_files([EXAMPLES / "policy.yaml"]))


def test_folders_linked_in_are_walked_once_and_hidden_ones_skipped(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "deep").mkdir(parents=True)
    (shared / "deep" / "b.yaml").write_text("b")
    top = tmp_path / "top"
    (top / ".git").mkdir(parents=True)
    (top / ".git" / "hidden.yaml").write_text("no")
    (top / ".swap.yaml").write_text("no")
    (top / "a.yml").write_text("a")
    (top / "notes.txt").write_text("no")
    (top / "linked").symlink_to(shared)
    (shared / "back").symlink_to(top)  # a cycle through two links
    found = files_below(top, lambda name: name.endswith((".yaml", ".yml")))
    assert [p.relative_to(top).as_posix() for p in found] == ["a.yml", "linked/deep/b.yaml"]
