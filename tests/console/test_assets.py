"""The console's third-party JavaScript is npm's, pinned by the lockfile: the shipped files match
the manifest console/vendor.py wrote, and the manifest matches console/package-lock.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "src" / "stockade" / "api" / "console" / "static" / "vendor"


def test_shipped_libraries_are_the_locked_versions() -> None:
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "console" / "package-lock.json").read_text(encoding="utf-8"))
    locked = {
        k.removeprefix("node_modules/"): v
        for k, v in lock["packages"].items()
        if k.startswith("node_modules/")
    }
    assert set(manifest) == set(locked)
    for package, entry in manifest.items():
        assert entry["version"] == locked[package]["version"], package
        assert entry["integrity"] == locked[package]["integrity"], package
        for name, digest in entry["files"].items():
            assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    shipped = {p.name for p in VENDOR.iterdir()} - {"MANIFEST.json"}
    listed = {name for entry in manifest.values() for name in entry["files"]}
    assert shipped == listed, "a file in vendor/ that no npm package accounts for"


def test_pages_load_nothing_from_elsewhere() -> None:
    pages = ROOT / "src" / "stockade" / "api" / "console"
    for path in [*pages.rglob("*.html"), *pages.rglob("*.js")]:
        if "vendor" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, f"{path} loads from elsewhere"
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, f"{path} writes HTML"
