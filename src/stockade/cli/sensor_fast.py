"""``stockade sensor --pcap FILE`` without Typer's option parsing, for the invocations that read
a capture file.

Typer builds a pydantic adapter for each of the command's twenty-five options (pydantic's import
and schema building): about 0.1 s of CPU, a third of the command's start-up; importing Typer and
Rich at all costs another 50 ms. So :func:`try_sensor_pcap` takes ``sensor --pcap FILE`` with
the options below, and calls the command's body (``sensor_run.run_sensor``, which imports
neither) with its defaults for everything else (read from its signature; a test holds them to
the Typer command's); it declines (returns None: the Typer command runs, exactly as before)
for anything else: another option or spelling, ``--help``, a value that is not a number where
one is needed, or an option's environment variable set.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

# The options taken here, as the Typer command spells them: option -> (parameter, conversion, or
# the value of a flag). tests/cli/test_sensor_fast.py holds them to the Typer command's.
_VALUE = {
    "--pcap": ("pcap", Path),
    "--format": ("fmt", str),
    "--db": ("db", str),
    "--fail-on": ("fail_on", str),
    "--stream-depth": ("stream_depth", int),
    "--count": ("count", int),
}
_FLAG = {"--store": ("store", True), "--no-store": ("store", False)}
# Environment variables that are options of the command: with any set, the Typer command runs.
OPTION_ENV = (
    "STOCKADE_DB",
    "STOCKADE_CONTROLLER",
    "STOCKADE_CONTROLLER_TOKEN",
    "STOCKADE_CONTROLLER_CA",
    "STOCKADE_AGENT_NAME",
)


def parse(args: list[str]) -> dict[str, Any] | None:
    """The parameters of ``sensor ...`` (``args`` after ``sensor``), or None when this lane does
    not take them."""
    found: dict[str, Any] = {}
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        i += 1
        if name in _FLAG and not eq:
            param, flag = _FLAG[name]
            found[param] = flag
            continue
        if name not in _VALUE:
            return None
        if not eq:
            if i >= len(args):
                return None
            value = args[i]
            i += 1
        param, convert = _VALUE[name]
        if param in found:  # repeated: Typer's rule decides
            return None
        try:
            found[param] = convert(value)
        except ValueError:
            return None
    return found if "pcap" in found else None


def try_sensor_pcap(args: list[str]) -> int | None:
    """Run ``stockade sensor`` for ``args`` (everything after ``sensor``) and return its exit
    code; None when declined. A StockadeError goes to the caller, as from the Typer command."""
    if any(os.environ.get(var) for var in OPTION_ENV):
        return None
    found = parse(args)
    if found is None:
        return None
    from stockade.cli.sensor_run import run_sensor

    params = inspect.signature(run_sensor).parameters
    return run_sensor(**{name: found.get(name, p.default) for name, p in params.items()})
