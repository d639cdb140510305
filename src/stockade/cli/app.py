"""The ``stockade`` command. Each command group lives in its own module with a ``register(app)``
function; the list below is the whole registry (no import side effects)."""

from __future__ import annotations

import importlib
import sys

import typer

from stockade import __version__
from stockade.cli.common import err_console, guard_standard_streams
from stockade.model.errors import StockadeError
from stockade.model.redact import install_log_redaction, redact_text

COMMAND_MODULES = (
    "stockade.cli.up",
    "stockade.cli.demo",
    "stockade.cli.db_cmd",
    "stockade.cli.bench",
    "stockade.cli.lab",
    "stockade.cli.sensor",
    "stockade.cli.dlp",
    "stockade.cli.scan",
    "stockade.cli.sample",
    "stockade.cli.bench_nodes",
    "stockade.cli.bench_workloads",
    "stockade.cli.report",
    "stockade.cli.admission",
    "stockade.cli.sbom",
    "stockade.cli.firewall",
    "stockade.cli.rules",
    "stockade.cli.notify",
    "stockade.cli.controller",
    "stockade.cli.capture",
    "stockade.cli.agent",
    "stockade.cli.deploy",
    "stockade.cli.runtime",
)

app = typer.Typer(
    name="stockade",
    help="Container security for Kubernetes: inventory and vulnerabilities, CIS benchmarks, "
    "network DLP, firewall and admission control.\n\n"
    "Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage or configuration error, "
    "3 scan or input error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stockade {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Stockade."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: turns StockadeError into a one-line message and its exit code.

    Click handles usage errors itself (exit 2); anything else that escapes is a bug and keeps its
    traceback. Error messages and every log record pass the masking gate (``stockade.model.redact``):
    they quote inputs, and inputs may hold card numbers.
    """
    install_log_redaction()
    guard_standard_streams()
    try:
        app(args=argv)
    except StockadeError as exc:
        err_console.print(
            f"stockade: error: {redact_text(str(exc))}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
