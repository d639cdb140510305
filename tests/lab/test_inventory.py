"""The lab's state file: saved whole and read back as it was (no lab needed)."""

from __future__ import annotations

from pathlib import Path

from stockade.lab.inventory import Inventory, Pod, load, save


def _inventory() -> Inventory:
    pod = Pod(
        name="payments",
        namespace="shop",
        labels=(("app", "payments"),),
        netns="x-payments",
        host_if="vh-p",
        ipv4="10.0.0.1",
        ipv6="fd00::1",
    )
    return Inventory(prefix="x-", node_netns="x-node", pods=(pod,), state_dir="/nonexistent")


def test_saved_whole_and_loaded_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "lab.json"
    save(_inventory(), path)
    first = path.stat().st_ino
    assert load(path) == _inventory()
    save(_inventory(), path)  # replaced, not rewritten in place
    assert path.stat().st_ino != first
    assert [p.name for p in path.parent.iterdir()] == ["lab.json"]
