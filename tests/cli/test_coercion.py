"""The CLI's plain conversion of parameter values (stockade.cli.coercion) against the conversion
Typer builds through pydantic, the reference: the same value of the same type, or the same usage
error word for word, over a table of values; and every parameter of every real command, at its
default, converted alike."""

from __future__ import annotations

import importlib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer.main
from typer._click import Context
from typer._click.exceptions import BadParameter
from typer.core import _TyperParameter

from stockade.cli import coercion
from stockade.cli.app import COMMANDS
from tests.cli.test_startup import _run


class Shape(StrEnum):
    table = "table"
    json = "json"


FILE = Path(__file__)

app = typer.Typer()


@app.command()
def every(
    name: Annotated[str, typer.Option()] = "x",
    count: Annotated[int, typer.Option()] = 1,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 80,
    depth: Annotated[int | None, typer.Option(min=1024)] = None,
    seconds: Annotated[float, typer.Option()] = 1.0,
    hours: Annotated[float, typer.Option(min=0.01, max=720)] = 12,
    flag: Annotated[bool, typer.Option()] = False,
    path: Annotated[Path | None, typer.Option()] = None,
    existing: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    folder: Annotated[Path | None, typer.Option(file_okay=False, resolve_path=True)] = None,
    shape: Annotated[Shape, typer.Option()] = Shape.table,
    loose: Annotated[Shape, typer.Option(case_sensitive=False)] = Shape.table,
    names: Annotated[list[str] | None, typer.Option()] = None,
    files: Annotated[list[Path] | None, typer.Option()] = None,
) -> None:
    """Every kind of parameter the CLI uses."""


VALUES: dict[str, list[Any]] = {
    "name": ["abc", "", "-", "ünï code", "--x", 5, b"raw"],
    "count": [
        *["0", "7", "-3", "007", "-0", "+5", "1_000", "1e3", "0x10", "3.0", "3.5", "abc"],
        *(" 5", "5 ", "", "9" * 18, "9" * 25, 5, -5, 5.0, True),
    ],
    "port": ["1", "0", "65535", "65536", "-1", "443", 0, 443, 70000],
    "depth": ["1024", "1023", "65536", "x"],
    "seconds": [
        *["0", "1.5", "-2.25", "1e3", "inf", "nan", ".5", "5.", "1.000", "abc", "2", "0.1"],
        *("", "1" * 20, 2, 2.5, -1.0),
    ],
    "hours": ["0.01", "0.001", "720", "720.5", "12", 12, 12.0, "0"],
    "flag": [True, False, "true", "1", "no", "", "maybe"],
    "path": ["x", "", "/tmp", "a//b/", "./c", Path("y"), "-", "~/z"],
    "existing": [str(FILE), str(FILE.parent), "/nonexistent/file", FILE, "rel/missing"],
    "folder": [".", "/tmp", str(FILE), "missing-dir"],
    "shape": ["json", "JSON", "table", Shape.json, "bogus", ""],
    "loose": ["json", "JSON", "Table", Shape.json, "bogus"],
    "names": [("a", "b"), [], ("",), ["x"], "single"],
    "files": [("a", "b/"), (), (str(FILE),), "one"],
}


def _answer(runtime: Any, value: Any, param: _TyperParameter, ctx: Context) -> tuple[str, Any]:
    try:
        got = runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "error", exc.format_message()
    return type(got).__name__, repr(got)


@pytest.fixture(scope="module")
def command() -> Any:
    return typer.main.get_command(app)


def _param(command: Any, name: str) -> _TyperParameter:
    found = next(p for p in command.params if p.name == name)
    assert isinstance(found, _TyperParameter)
    return found


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in VALUES.items() for value in values]
)
def test_plain_conversion_answers_as_typer_does(command: Any, name: str, value: Any) -> None:
    param = _param(command, name)
    described = param.type_descriptor
    convert = coercion.plain_conversion(described.annotation, described.parameter_info)
    assert convert is not None  # every kind in the table is a plain one
    plain = coercion.PlainParam(
        annotation=described.annotation, parameter_info=described.parameter_info, convert=convert
    )
    reference = coercion.typer_conversion(described.annotation, described.parameter_info)
    ctx = Context(command)
    assert _answer(plain, value, param, ctx) == _answer(reference, value, param, ctx)


def test_the_table_has_values_taken_and_values_declined(command: Any) -> None:
    # Both sides of PlainParam are exercised: values the plain conversion takes, and values it
    # hands to Typer (which then answers, possibly with an error).
    taken = declined = 0
    for name, values in VALUES.items():
        param = _param(command, name)
        described = param.type_descriptor
        convert = coercion.plain_conversion(described.annotation, described.parameter_info)
        assert convert is not None
        for value in values:
            try:
                convert(value, described.parameter_info, param, Context(command))
                taken += 1
            except coercion._Declined:
                declined += 1
            except BadParameter:
                taken += 1  # Typer's own path check answered, through the plain side
    assert taken > 60 and declined > 30, (taken, declined)


def test_install_gives_plain_parameters_the_plain_conversion() -> None:
    command = typer.main.get_command(app)
    coercion.install(command, ["-h", "--help"])
    help_option = command.get_help_option(Context(command, help_option_names=["--other"]))
    assert help_option is not None and set(help_option.opts) == {"-h", "--help"}  # made then
    kinds = {p.name: type(p._runtime_param) for p in [*command.params, help_option]}  # type: ignore[attr-defined]
    assert set(kinds.values()) == {coercion.PlainParam}, kinds
    assert "help" in kinds


def _all_commands() -> dict[str, Any]:
    scratch = typer.Typer()
    for module in dict.fromkeys(m for modules, _ in COMMANDS.values() for m in modules):
        importlib.import_module(f"stockade.cli.{module}").register(scratch)
    return dict(typer.main.get_group(scratch).commands)


def _walk(command: Any, path: str) -> list[tuple[str, Any, _TyperParameter]]:
    found = [(path, command, p) for p in command.params if isinstance(p, _TyperParameter)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _walk(sub, f"{path} {name}")
    return found


def test_every_real_parameter_at_its_default_converts_as_typer_does() -> None:
    plain = 0
    for name, command in _all_commands().items():
        for path, owner, param in _walk(command, name):
            described = param.type_descriptor
            convert = coercion.plain_conversion(described.annotation, described.parameter_info)
            if convert is None or described.file_annotation is not None:
                continue
            plain += 1
            runtime = coercion.PlainParam(
                annotation=described.annotation,
                parameter_info=described.parameter_info,
                convert=convert,
            )
            reference = coercion.typer_conversion(described.annotation, described.parameter_info)
            default = param.get_default(Context(owner), call=True)
            ctx = Context(owner)
            assert _answer(runtime, default, param, ctx) == _answer(
                reference, default, param, ctx
            ), (
                path,
                param.name,
            )
    assert plain > 300, plain  # the CLI's parameters are nearly all plain


# A command with number, path and choice options run as a user runs it (test_startup's driver):
# its options parsed without pydantic, and a bad value refused with Typer's own message.


def test_a_command_parses_its_options_without_pydantic(tmp_path: Path) -> None:
    # every option converted (--queue, --depth: bounded numbers; --lab-state: a path), then the
    # command's own check of --fail answers
    proc, modules = _run(
        "enforcer",
        "--fail",
        "bogus",
        "--queue",
        "3",
        "--depth",
        "2048",
        "--lab-state",
        str(tmp_path / "lab.json"),
        "--duration",
        "1.5",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 2 and "--fail is open or closed" in proc.stderr, proc.stderr
    assert "pydantic" not in {m.split(".")[0] for m in modules}


def test_a_bad_value_gets_typers_own_message(tmp_path: Path) -> None:
    proc, modules = _run("enforcer", "--queue", "70000", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "Invalid value for '--queue'" in proc.stderr
    assert "less than or equal to 65535" in proc.stderr
    assert "pydantic" in {m.split(".")[0] for m in modules}  # Typer's conversion answered
