"""Running the CLI and preparing advisory databases for the scan CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from tests.conftest import SHARED

from stockade.scanning.advisories.reader import read_source
from stockade.scanning.advisories.store import write_batches
from stockade.store import open_store

HERE = Path(__file__).parent
OWN_RECORDS = HERE / "data" / "sample-advisories"


def shared_samples() -> Path:
    for base in (SHARED, Path("/work/shared")):
        if (base / "data" / "advisories" / "osv-samples").is_dir():
            return base / "data" / "advisories" / "osv-samples"
    return SHARED / "data" / "advisories" / "osv-samples"


def make_db(path: Path, *, built: datetime | None = None, sources: tuple[Path, ...] = ()) -> str:
    """A project database with the real samples and our records imported; returns its URL."""
    url = f"sqlite:///{path}"
    store = open_store(url)
    try:
        batches = [read_source(str(s)) for s in (sources or (OWN_RECORDS, shared_samples()))]
        write_batches(store, batches, now=built)
    finally:
        store.close()
    return url


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("STOCKADE_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )
