"""The root Typer app of ``stockade``, whose commands are loaded on demand.

The commands are the rows of ``stockade.cli.app.COMMANDS``. A command's modules are imported, and
their ``register(app)`` run, the first time the command is looked up to run it or to show its own
help; listing the commands (``stockade --help``) uses the rows' one-line help and imports nothing.
A loaded command's plain parameters convert their values without pydantic
(:mod:`stockade.cli.coercion`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter  # Typer's own copy of Click
    from typer.core import TyperOption

from stockade import __version__
from stockade.cli.app import COMMANDS, VERSION_FLAGS

try:
    from stockade.cli import coercion
except ImportError:  # a Typer whose conversion moved (tests/cli/test_coercion.py says so): its own
    coercion = None  # type: ignore[assignment]

HELP_OPTION_NAMES = ("-h", "--help")

# Commands loaded so far, shared by every group built from `app` (Typer builds a new group on each
# call), so that each module's register() runs once per process.
_loaded: dict[str, Command] = {}


def load(name: str) -> Command:
    """The command ``name`` of the registry, importing its modules on first use."""
    if name not in _loaded:
        modules, _ = COMMANDS[name]
        scratch = typer.Typer()
        for module in modules:
            importlib.import_module(f"stockade.cli.{module}").register(scratch)
        group = typer.main.get_group(scratch)
        for registered, command in group.commands.items():  # a module may add several
            if registered in COMMANDS and registered not in _loaded:
                if coercion is not None:  # plain values converted without pydantic
                    coercion.install(command, HELP_OPTION_NAMES)
                _loaded[registered] = command
    return _loaded[name]


class LazyCommands(MutableMapping[str, "Command"]):
    """A group's commands: the registry's names, loaded on lookup, then any added directly."""

    def __init__(self, added: MutableMapping[str, Command]) -> None:
        self.added = dict(added)

    def __getitem__(self, name: str) -> Command:
        if name in self.added:
            return self.added[name]
        if name in COMMANDS:
            return load(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self.added or name in COMMANDS

    def __setitem__(self, name: str, command: Command) -> None:
        self.added[name] = command

    def __delitem__(self, name: str) -> None:
        del self.added[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self.added if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS.keys() | self.added.keys())


class LazyGroup(TyperGroup):
    """A Typer group over ``LazyCommands``; its help lists the commands without loading them."""

    def __init__(self, **attrs: object) -> None:
        super().__init__(**attrs)  # type: ignore[arg-type]
        self.commands: LazyCommands = LazyCommands(self.commands)
        self._listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if self._listing and cmd_name in COMMANDS and cmd_name not in self.commands.added:
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][1])
        return self.commands.get(cmd_name)

    def get_help_option(self, ctx: Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if coercion is not None:
            coercion.convert_plainly(option)
        return option

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="stockade",
    cls=LazyGroup,
    help="Container security for Kubernetes: inventory and vulnerabilities, CIS benchmarks, "
    "network DLP, firewall and admission control.\n\n"
    "Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage or configuration error, "
    "3 scan or input error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": list(HELP_OPTION_NAMES)},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stockade {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, *VERSION_FLAGS, callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Stockade."""
