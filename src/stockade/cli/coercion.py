"""Typer's conversion of the CLI's plain parameter values, without pydantic.

Typer converts every value of a command's parameters (``--count 3``, a default ``Path``) through a
pydantic ``TypeAdapter`` that it builds for the parameter when the command first runs: importing
pydantic and building those schemas costs about 0.1-0.2 s of CPU in each ``stockade`` process
that parses options, more than many commands' own work. Nearly all of the CLI's parameters are
plain (``str``, ``int``, ``float``, ``bool``, ``Path``, a ``StrEnum``, a list of one of these),
and their usual values need none of that. :func:`install` gives each such parameter of a loaded
command a conversion (:class:`PlainParam`) that takes the usual values directly (a decimal number
within the option's bounds, a path, one of the choices) and hands any other value to the
conversion Typer would have built, so that errors and unusual spellings (``1e3``, ``0x10``, an
out-of-range number, a bad choice) get Typer's own answer word for word. Paths and choices are
checked by Typer's own functions. ``tests/cli/test_coercion.py`` compares the two conversions over
a table of values.

This reaches into Typer's conversion (``typer._coercion``, from the Typer releases whose
conversion goes through pydantic); tests/cli/test_coercion.py fails if a Typer release changes it,
and the CLI then keeps Typer's own conversion (``stockade.cli.root`` imports this module only
if it can).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

from typer._click import Context
from typer._coercion import RuntimeParam, build_runtime_param, resolve_type_descriptor
from typer._param_types import coerce_cli_choice, coerce_cli_path
from typer.core import _TyperParameter

if TYPE_CHECKING:
    from typer._click import Command
    from typer.models import ParameterInfo

Convert = Callable[[Any, "ParameterInfo", _TyperParameter, "Context"], Any]

# Spellings every conversion takes alike; anything else (signs, exponents, underscores, spaces,
# huge numbers) is Typer's to decide.
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_DECIMAL = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")


class _Declined(Exception):
    """The value is not one this module takes: Typer's own conversion decides."""


def _bounded(number: int | float, info: ParameterInfo) -> int | float:
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        raise _Declined  # Typer words the range error
    return number


def _str(value: Any, info: ParameterInfo, param: _TyperParameter, ctx: Context) -> Any:
    if type(value) is str:
        return value
    raise _Declined


def _bool(value: Any, info: ParameterInfo, param: _TyperParameter, ctx: Context) -> Any:
    if type(value) is bool:
        return value
    raise _Declined


def _int(value: Any, info: ParameterInfo, param: _TyperParameter, ctx: Context) -> Any:
    if type(value) is int:
        return _bounded(value, info)
    if type(value) is str and _INTEGER.fullmatch(value):
        return _bounded(int(value), info)
    raise _Declined


def _float(value: Any, info: ParameterInfo, param: _TyperParameter, ctx: Context) -> Any:
    if type(value) is float:
        return _bounded(value, info)
    if type(value) is str and _DECIMAL.fullmatch(value):
        return _bounded(float(value), info)
    raise _Declined


def _path(value: Any, info: ParameterInfo, param: _TyperParameter, ctx: Context) -> Any:
    if not (isinstance(value, Path) or (type(value) is str and value)):
        raise _Declined
    # Typer's own checks (exists, file_okay, readable...) and messages; path_type=None keeps the
    # value as given (Typer would make the Path through pydantic first, then check it).
    checked = coerce_cli_path(value, info, path_type=None, param=param, ctx=ctx)
    return checked if isinstance(checked, Path) else Path(checked)


def _choice(
    value: Any,
    info: ParameterInfo,
    param: _TyperParameter,
    ctx: Context,
    *,
    choices: tuple[Any, ...],
) -> Any:
    try:
        return coerce_cli_choice(
            value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx
        )
    except ValueError:
        raise _Declined from None  # Typer words the list of choices


def _each(
    item: Convert, value: Any, info: ParameterInfo, param: _TyperParameter, ctx: Context
) -> Any:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [item(v, info, param, ctx) for v in items]


def _leaf(annotation: Any, info: ParameterInfo) -> Convert | None:
    if annotation is str:
        return _str
    if annotation is bool:
        return _bool
    if annotation is int:
        return _int
    if annotation is float:
        return _float
    if annotation is Path and info.path_type is None and not info.allow_dash:
        return _path
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return partial(_choice, choices=tuple(annotation))
    return None


def plain_conversion(annotation: Any, info: ParameterInfo) -> Convert | None:
    """The conversion of a plain parameter, or None for one Typer converts itself."""
    if info.parser is not None or info.clamp:
        return None
    if get_origin(annotation) is list:
        item = _leaf(get_args(annotation)[0], info)
        return partial(_each, item) if item is not None else None
    if get_origin(annotation) is not None:
        return None
    return _leaf(annotation, info)


@dataclass(frozen=True)
class PlainParam(RuntimeParam):
    """A parameter's conversion: the plain one, else the one Typer builds (through pydantic)."""

    convert: Convert

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        try:
            return self.convert(value, self.parameter_info, param, ctx)
        except _Declined:
            return typer_conversion(self.annotation, self.parameter_info)._coerce_value(
                value, param=param, ctx=ctx
            )


def typer_conversion(annotation: Any, info: ParameterInfo) -> RuntimeParam:
    """The conversion Typer itself builds for a parameter (the reference)."""
    return build_runtime_param(resolve_type_descriptor(annotation, info))


def convert_plainly(param: object) -> None:
    """Give ``param`` the plain conversion if it is a plain Typer parameter."""
    if not isinstance(param, _TyperParameter) or param._runtime_param is not None:
        return
    described = param.type_descriptor
    if described.file_annotation is not None:
        return
    convert = plain_conversion(described.annotation, described.parameter_info)
    if convert is not None:
        param._runtime_param = PlainParam(
            annotation=described.annotation,
            parameter_info=described.parameter_info,
            convert=convert,
        )


def install(command: Command, help_option_names: Sequence[str]) -> None:
    """Give the plain parameters of ``command`` and of its subcommands, their ``--help`` included,
    the plain conversion. ``help_option_names``: the root context's (which every command's
    context inherits)."""
    # Click makes a command's help option on first use and keeps it: made here, it is the one
    # the command parses with.
    help_option = command.get_help_option(
        Context(command, help_option_names=list(help_option_names))
    )
    for param in [*command.params, help_option]:
        convert_plainly(param)
    for sub in getattr(command, "commands", {}).values():
        install(sub, help_option_names)
