"""A warm re-scan (the image's inventory kept in the store) neither imports the catalogers nor
writes the inventory again, and reports what a cold scan reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stockade.lab.samples import SampleImage
from stockade.scanning.backend_adapters import CATALOGERS_KEY, catalogers_key
from stockade.scanning.catalogers import default_catalogers
from stockade.scanning.layercache import cataloger_key
from tests.scanning.scan_cli_support import make_db

SRC = str(Path(__file__).resolve().parents[2] / "src")

# Runs the CLI in-process, then says which heavy modules the command imported.
PROBE = """
import sys
from stockade.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("\\nPROBE", code, "stockade.scanning.catalogers" in sys.modules, file=sys.stderr)
"""


def test_the_written_out_key_is_the_catalogers_own() -> None:
    # A cataloger that changes its version must change CATALOGERS_KEY, or kept inventories made
    # by its old version would be taken as current.
    assert catalogers_key() == CATALOGERS_KEY == cataloger_key(default_catalogers())


def _scan(ref: str, db: str, out: Path) -> tuple[int, bool]:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = ["scan", "image", ref, "--db", db, "--format", "json", "-o", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=300
    )
    probe = done.stderr.rsplit("PROBE", 1)[1].split()
    return int(probe[0]), probe[1] == "True"


def test_warm_rescan_skips_the_catalogers(sample: SampleImage, tmp_path: Path) -> None:
    db = make_db(tmp_path / "db.sqlite")
    ref = f"oci:{sample.oci_dir}:{sample.tag}"
    cold_code, cold_imported = _scan(ref, db, tmp_path / "cold.json")
    warm_code, warm_imported = _scan(ref, db, tmp_path / "warm.json")
    assert cold_imported and not warm_imported
    assert cold_code == warm_code
    cold = json.loads((tmp_path / "cold.json").read_text())
    warm = json.loads((tmp_path / "warm.json").read_text())
    assert warm["findings"] == cold["findings"] and cold["findings"]
    assert warm["summary"] == cold["summary"]


# The CLI in-process again, saying which of the heavy libraries the command imported.
HEAVY = (
    "typer",
    "typer._click",
    "click",
    "rich",
    "sqlalchemy",
    "pydantic",
    "alembic",
    "httpx",
    "cryptography",
)
MODULES_PROBE = f"""
import sys
from stockade.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = [m for m in {HEAVY!r} if m in sys.modules]
print("\\nPROBE", code, ",".join(heavy) or "-", file=sys.stderr)
"""


def _scan_modules(
    ref: str, db: str, out: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, set[str], dict]:
    environ = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    environ.pop("STOCKADE_DB", None)
    environ.update(env or {})
    args = ["scan", "image", ref, "--db", db, "--format", "json", "-o", str(out), *extra]
    done = subprocess.run(
        [sys.executable, "-c", MODULES_PROBE, *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )
    probe = done.stderr.rsplit("PROBE", 1)[1].split()
    heavy = set() if probe[1] == "-" else set(probe[1].split(","))
    return int(probe[0]), heavy, json.loads(out.read_text())


def _without(report: dict, *keys: str) -> dict:
    return {k: v for k, v in report.items() if k not in keys}


def test_warm_rescan_runs_without_typer_and_sqlalchemy_and_reports_the_same(
    sample: SampleImage, tmp_path: Path
) -> None:
    db = make_db(tmp_path / "db.sqlite")
    ref = f"oci:{sample.oci_dir}:{sample.tag}"
    gate = ("--fail-on", "medium")
    cold_code, _, cold = _scan_modules(ref, db, tmp_path / "cold.json", *gate)
    warm_code, heavy, warm = _scan_modules(ref, db, tmp_path / "warm.json", *gate)
    assert heavy == set(), heavy  # no Typer, Click, Rich, SQLAlchemy, pydantic, ...
    # The Typer command (an option of it in the environment: the fast lane declines) on the
    # same warm store: the same report and exit code.
    typer_code, typer_heavy, typer = _scan_modules(
        ref, db, tmp_path / "typer.json", *gate, env={"STOCKADE_AGENT_NAME": "probe"}
    )
    assert "typer" in typer_heavy
    assert cold_code == warm_code == typer_code == 1
    assert cold["findings"] and _without(warm, "scanned_at") == _without(typer, "scanned_at")
    # Cold and warm differ only in the time and in where the layers came from.
    assert cold["target"]["layers"] == {"read": 5, "cached": 0}
    assert warm["target"]["layers"] == {"read": 0, "cached": 5}
    for report in (cold, warm):
        report.pop("scanned_at")
        report["target"].pop("layers")
    assert warm == cold
