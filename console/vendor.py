"""Copy the console's JavaScript libraries from npm (pinned by package-lock.json) into the package.

    python3 console/vendor.py          # npm ci, copy, write static/vendor/MANIFEST.json
    python3 console/vendor.py --check  # npm ci, and fail if the shipped files differ

The copies are committed, so an install of Stockade needs neither npm nor the network; the
manifest records each library's version, its lockfile integrity and the SHA-256 of every file
shipped (tests/api/test_console_assets.py checks the files against it and the lockfile).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR = HERE.parent / "src" / "stockade" / "api" / "console" / "static" / "vendor"

# package -> (file in the npm package, name shipped); each package's LICENSE ships beside it.
FILES = {
    "cytoscape": [("dist/cytoscape.min.js", "cytoscape.min.js")],
    "layout-base": [("layout-base.js", "layout-base.js")],
    "cose-base": [("cose-base.js", "cose-base.js")],
    "cytoscape-fcose": [("cytoscape-fcose.js", "cytoscape-fcose.js")],
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lock() -> dict[str, dict[str, str]]:
    data = json.loads((HERE / "package-lock.json").read_text(encoding="utf-8"))
    return {
        key.removeprefix("node_modules/"): value
        for key, value in data["packages"].items()
        if key.startswith("node_modules/")
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=HERE, check=True
    )
    lock = _lock()
    manifest: dict[str, dict[str, object]] = {}
    differs: list[str] = []
    for package, files in FILES.items():
        root = HERE / "node_modules" / package
        shipped: dict[str, str] = {}
        for source, name in [*files, ("LICENSE", f"{package}.LICENSE.txt")]:
            target = VENDOR / name
            if check:
                if not target.exists() or _sha256(target) != _sha256(root / source):
                    differs.append(name)
            else:
                VENDOR.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / source, target)
            shipped[name] = _sha256(root / source)
        manifest[package] = {
            "version": lock[package]["version"],
            "integrity": lock[package]["integrity"],
            "files": shipped,
        }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    if check:
        current = (VENDOR / "MANIFEST.json").read_text(encoding="utf-8")
        if current != text:
            differs.append("MANIFEST.json")
        if differs:
            print(f"vendor: differs from npm: {', '.join(differs)}", file=sys.stderr)
            return 1
        print("vendor: the shipped files are npm's")
        return 0
    (VENDOR / "MANIFEST.json").write_text(text, encoding="utf-8")
    print(f"vendor: {len(FILES)} libraries copied to {VENDOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
