"""Start-up of the ``stockade`` command, pinned by what it imports rather than by wall clock (which
a loaded machine makes flaky): ``--version`` imports no CLI framework, ``--help`` lists every
command without loading any command module, and no command module pulls a heavy library in at
import. Timing is benchmarks/startup.py's job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stockade import __version__
from stockade.cli.app import COMMANDS

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}

FRAMEWORKS = {"typer", "click", "rich"}
# Libraries only the commands that use them may import (module level of a command module
# included): the database, the API models, TLS, HTTP clients, YAML.
HEAVY = {"sqlalchemy", "alembic", "pydantic", "cryptography", "httpx", "yaml", "fastapi", "uvicorn"}

# Runs the entry point the console script runs, then writes the modules the process imported
# (sys.modules sees modules importlib.import_module loads, which -X importtime does not list);
# the process exits with the command's own exit code. (tests/cli/test_coercion.py runs it too.)
DRIVER = """
import json, sys
from stockade.cli.app import main
try:
    main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        json.dump(sorted(sys.modules), f)
"""


def _run(*args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    dump = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(dump), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    return proc, set(json.loads(dump.read_text()))


def _top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_imports_no_cli_framework(flag: str) -> None:
    # The real `python -m stockade` path, as -X importtime reports it.
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stockade", flag],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert proc.returncode == 0 and proc.stdout == f"stockade {__version__}\n"
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "stockade.cli.app" in imported  # the listing is real
    assert not _top_level(imported) & (FRAMEWORKS | HEAVY), sorted(imported)


def test_version_fast_path_imports_nothing_else_of_stockade(tmp_path: Path) -> None:
    proc, modules = _run("--version", tmp_path=tmp_path)
    assert proc.returncode == 0 and proc.stdout == f"stockade {__version__}\n"
    assert {m for m in modules if m.startswith("stockade")} == {
        "stockade",
        "stockade.cli",
        "stockade.cli.app",
    }
    assert not _top_level(modules) & (FRAMEWORKS | HEAVY)


def test_version_through_the_full_parser_says_the_same(tmp_path: Path) -> None:
    # --version with anything else goes through Typer (eager option): same line, same exit code.
    proc, modules = _run("--version", "scan", tmp_path=tmp_path)
    assert proc.returncode == 0 and proc.stdout == f"stockade {__version__}\n"
    assert "typer" in modules


def test_help_lists_every_command_without_loading_one(tmp_path: Path) -> None:
    proc, modules = _run("--help", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in COMMANDS:
        assert f" {name} " in proc.stdout, name
    assert "Exit codes" in proc.stdout
    loaded = {m for m in modules if m.startswith("stockade.cli.")}
    # stockade.cli.streams: the masking gate on stdout and stderr (no Typer, no Rich in it);
    # stockade.cli.coercion: values converted without pydantic (Typer's own modules only).
    assert loaded == {
        "stockade.cli.app",
        "stockade.cli.root",
        "stockade.cli.streams",
        "stockade.cli.coercion",
    }
    assert not _top_level(modules) & HEAVY, sorted(_top_level(modules) & HEAVY)


def test_a_command_loads_only_its_own_modules(tmp_path: Path) -> None:
    proc, modules = _run("bench", "--help", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert all(name in proc.stdout for name in ("k8s", "docker", "processes", "workloads"))
    loaded = {m.removeprefix("stockade.cli.") for m in modules if m.startswith("stockade.cli.")}
    assert {"bench", "bench_nodes", "bench_workloads"} <= loaded
    assert not loaded & {"scan", "sensor", "controller", "admission", "deploy", "db_cmd"}


# Registers every command module on one Typer app, as the eager registry used to: the commands
# the modules really add, their help, and what importing all of them pulled in.
ALL_COMMANDS = """
import importlib, json, sys
import typer, typer.main
from stockade.cli.app import COMMANDS
app = typer.Typer()
for module in dict.fromkeys(m for modules, _ in COMMANDS.values() for m in modules):
    importlib.import_module(f"stockade.cli.{module}").register(app)
group = typer.main.get_group(app)
json.dump({"help": {n: c.help for n, c in group.commands.items()}, "modules": sorted(sys.modules)},
          sys.stdout)
"""


@pytest.fixture(scope="module")
def every_command() -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", ALL_COMMANDS], capture_output=True, text=True, timeout=120, env=ENV
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_registry_names_every_command_the_modules_add(every_command: dict[str, object]) -> None:
    helps = every_command["help"]
    assert isinstance(helps, dict)
    assert set(helps) == set(COMMANDS)


def test_registry_help_is_the_first_sentence_of_the_commands_own(
    every_command: dict[str, object],
) -> None:
    helps = every_command["help"]
    assert isinstance(helps, dict)
    for name, (_, line) in COMMANDS.items():
        own = " ".join((helps[name] or "").split())
        assert line.endswith(".") and own.startswith(line), (name, line, own)


def test_no_command_module_imports_a_heavy_library(every_command: dict[str, object]) -> None:
    modules = every_command["modules"]
    assert isinstance(modules, list)
    assert not _top_level(set(modules)) & HEAVY, sorted(_top_level(set(modules)) & HEAVY)


GOLDEN_WORKLOADS = Path(__file__).resolve().parents[1] / "compliance" / "workloads" / "golden"


def test_a_command_imports_only_the_heavy_libraries_it_uses(tmp_path: Path) -> None:
    # Manifests read from files, nothing stored: YAML only; no HTTP client (that is for a live
    # cluster), no database, and no pydantic (Typer's conversion of plain options goes without it:
    # stockade.cli.coercion).
    folder = GOLDEN_WORKLOADS / "pss.baseline.privileged-PASS"
    proc, modules = _run(
        "bench", "workloads", str(folder), "--no-store", "-f", "json", tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)
    assert _top_level(modules) & HEAVY == {"yaml"}


def test_the_controllers_application_imports_no_http_client() -> None:
    # The notifiers' HTTP client is imported when a notification is sent, not when the
    # controller starts.
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, stockade.api.app; print('httpx' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# Loaded by the routes or jobs that use them, not by a controller's start: the admission engine,
# the firewall's policy models and nft, the WAF and DLP sensors, the compliance frameworks, the
# runtime profiles' models, the notifiers, PostgreSQL's dialect on SQLite.
NOT_AT_CONTROLLER_START = (
    "stockade.admission.engine",
    "stockade.admission.policy",
    "stockade.firewall.policy.model",
    "stockade.firewall.enforce",
    "stockade.network.waf",
    "stockade.network.dlp",
    "stockade.network.forensics",
    "stockade.compliance.frameworks",
    "stockade.runtime.profile",
    "stockade.events.notify.dispatch",
    "sqlalchemy.dialects.postgresql",
)
CONTROLLER_START = """
import json, sys
from pathlib import Path
from stockade.api.app import create_app
from stockade.api.server import generated_files
from stockade.cli import controller
from stockade.store import open_store

store = open_store(f"sqlite:///{sys.argv[1]}/stockade.db")
service = controller._response_service(store, None, None, None)
controller._scan_run_watch(store, service, 60.0)
generated_files(Path(sys.argv[1]) / "tls", "127.0.0.1")
create_app(store, responses=service)
print(json.dumps(sorted(sys.modules)))
"""


def test_a_controller_starts_without_the_pillars_only_some_routes_use(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CONTROLLER_START, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stdout)
    assert "stockade.api.virtual_patches" in modules and "sqlalchemy" in modules
    loaded = [m for m in modules if m.startswith(NOT_AT_CONTROLLER_START)]
    assert not loaded, loaded
