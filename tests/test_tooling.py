"""House style holds on every commit: ruff (lint and format) on the tree, mypy strict on the core."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import require

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_and_format() -> None:
    require(shutil.which("ruff") is not None, "ruff is not installed (pip install -e .[test])")
    check = subprocess.run(
        ["ruff", "check", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout[-3000:]
    fmt = subprocess.run(
        ["ruff", "format", "--check", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fmt.returncode == 0, fmt.stdout[-3000:]


def test_mypy_strict_on_the_core_packages() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:]
