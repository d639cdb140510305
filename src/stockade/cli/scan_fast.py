"""``stockade scan image`` without Typer, for the invocations a CI pipeline repeats.

Typer (with the pydantic adapters it builds for each of the command's thirty options), Click and
Rich cost several times what a warm re-scan itself does (the kept inventory and the kept match
read with sqlite3, see :mod:`stockade.scanning.scan_store` and
:mod:`stockade.scanning.match_cache`). So :func:`try_scan_image` takes ``scan image REF`` with
the options below, runs the same pipeline and writes the same report as the Typer command does,
and declines (returns None: the Typer command runs, exactly as before) for anything else: another
option or spelling, ``--help``, a controller or registry setting in the environment, an ignore file
in the current folder, stderr on a terminal (progress bars), or any error (the Typer command
reports it, with its exit code).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stockade.scanning.pipeline import ScanOptions
    from stockade.scanning.results import ScanReport

DEFAULT_IGNORE_FILE = Path(".stockadeignore.yaml")

# The options taken here, as the Typer command spells them: option -> (parameter, value or None
# when the option takes the next argument).
_OPTIONS: dict[str, tuple[str, object]] = {
    "--format": ("fmt", None),
    "-f": ("fmt", None),
    "--output": ("output", None),
    "-o": ("output", None),
    "--db": ("db", None),
    "--fail-on": ("fail_on", None),
    "--max-db-age": ("max_db_age", None),
    "--ignore-unfixed": ("ignore_unfixed", True),
    "--allow-stale-db": ("allow_stale_db", True),
    "--allow-unchecked": ("allow_unchecked", True),
    "--store": ("store", True),
    "--no-store": ("store", False),
}
# The Typer command's defaults of those options (tests/cli/test_scan_fast.py holds them equal).
DEFAULTS: dict[str, object] = {
    "fmt": "table",
    "max_db_age": "7d",
    "ignore_unfixed": False,
    "allow_stale_db": False,
    "allow_unchecked": False,
    "store": True,
}
# Environment variables that are options of the command (or of the controller link): with any of
# them set, the Typer command runs.
_OPTION_ENV = (
    "STOCKADE_CONTROLLER",
    "STOCKADE_CONTROLLER_TOKEN",
    "STOCKADE_CONTROLLER_CA",
    "STOCKADE_AGENT_NAME",
    "STOCKADE_REGISTRY_USERNAME",
    "STOCKADE_REGISTRY_PASSWORD",
    "STOCKADE_REGISTRY_AUTH_TOKEN",
    "STOCKADE_ACR_AAD_TOKEN",
)


def parse(args: list[str]) -> dict[str, Any] | None:
    """The parameters of ``scan image ...`` (``args`` after ``scan image``), or None when this
    lane does not take them."""
    found: dict[str, Any] = {}
    refs: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            refs.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name not in _OPTIONS or (eq and not name.startswith("--")):
            return None
        param, flag = _OPTIONS[name]
        if flag is not None:
            if eq:
                return None
            found[param] = flag
            continue
        if not eq:
            if i >= len(args):
                return None
            value = args[i]
            i += 1
        found[param] = value
    if len(refs) != 1 or refs[0] == "-":
        return None
    found["ref"] = refs[0]
    return found


def try_scan_image(args: list[str]) -> int | None:
    """Run ``stockade scan image`` for ``args`` (everything after ``scan image``) and return its
    exit code, or None without having written anything when the Typer command must run."""
    params = parse(args)
    if params is None or any(os.environ.get(v) is not None for v in _OPTION_ENV):
        return None
    if sys.stderr.isatty() or DEFAULT_IGNORE_FILE.is_file():
        return None
    from stockade.model.errors import StockadeError
    from stockade.model.progress import NullObserver
    from stockade.scanning.pipeline import real_backend, scan_image
    from stockade.scanning.reports import renderer
    from stockade.store import open_store

    params = {**DEFAULTS, **params}
    fmt = str(params["fmt"])
    output = Path(params["output"]) if "output" in params else None
    try:
        opts = scan_options(
            fail_on=params.get("fail_on"),
            ignore_unfixed=bool(params["ignore_unfixed"]),
            ignore_file=None,
            vex=None,
            max_db_age=str(params["max_db_age"]),
            allow_stale_db=bool(params["allow_stale_db"]),
            allow_unchecked=bool(params["allow_unchecked"]),
            fmt=fmt,
            store=bool(params["store"]),
        )
        store = open_store(params.get("db"))
        try:
            report = scan_image(store, params["ref"], opts, real_backend(), NullObserver())
        finally:
            store.close()
        if fmt == "table" and output is None:
            from stockade.scanning.reports.table import render_table

            text = render_table(report, width=120)  # stderr is no terminal here
        else:
            text = renderer(fmt)(report)
    except StockadeError:
        return None  # the Typer command says what is wrong, with its exit code
    from stockade.cli.streams import emit

    emit(text, output)
    if report.unchecked_failed:
        sys.stderr.write(incomplete_line(report) + "\n")
    return report.exit_code


def incomplete_line(report: ScanReport) -> str:
    """The error line of a scan that left packages unchecked (exit 3 under --fail-on)."""
    return (
        f"stockade: error: incomplete scan: {'; '.join(report.coverage_lines())} "
        "(--allow-unchecked accepts it)"
    )


def scan_options(
    *,
    fail_on: str | None,
    ignore_unfixed: bool,
    ignore_file: Path | None,
    vex: list[Path] | None,
    max_db_age: str,
    allow_stale_db: bool,
    allow_unchecked: bool = False,
    platform: str | None = None,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    registry_config: Path | None = None,
    auth_token: str | None = None,
    aad_token: str | None = None,
    fmt: str = "table",
    store: bool = True,
    signatures: Any = None,
) -> ScanOptions:
    from stockade.model import Severity
    from stockade.model.duration import parse_duration
    from stockade.scanning.gate import Policy
    from stockade.scanning.pipeline import ImageOptions, ScanOptions
    from stockade.scanning.policy_files import load_ignore_file, load_vex
    from stockade.scanning.reports import renderer

    renderer(fmt)  # a bad --format is a usage error before any work is done
    if ignore_file is None and DEFAULT_IGNORE_FILE.is_file():
        ignore_file = DEFAULT_IGNORE_FILE
    rules = load_ignore_file(ignore_file) if ignore_file is not None else ()
    statements = tuple(s for path in vex or () for s in load_vex(path))
    policy = Policy(
        fail_on=Severity.parse(fail_on) if fail_on else None,
        ignore_unfixed=ignore_unfixed,
        ignore_rules=rules,
        vex=statements,
        allow_unchecked=allow_unchecked,
    )
    return ScanOptions(
        policy=policy,
        max_db_age=parse_duration(max_db_age),
        allow_stale_db=allow_stale_db,
        image=ImageOptions(
            platform=platform,
            insecure=insecure,
            username=username,
            password=password,
            auth_token=auth_token,
            aad_token=aad_token,
            registry_config=str(registry_config) if registry_config else None,
        ),
        keep_results=store,
        signatures=signatures,
    )
