"""``stockade demo``: the whole product on this machine, on embedded defaults (the tour itself is
``stockade.lab.demo``; this module parses the options and prints)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from stockade.cli.common import console, err_console


class _Console:
    def rule(self, title: str) -> None:
        console.rule(f"[bold]{title}")

    # soft_wrap: a line stays one line when the output is piped or logged (Rich would cut it at
    # 80 columns mid-sentence); a terminal still folds it where it is too narrow
    def line(self, text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    def command(self, text: str) -> None:
        console.print(text, style="dim", markup=False, highlight=False, soft_wrap=True)

    def error(self, text: str) -> None:
        err_console.print(text, markup=False)


def demo(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where reports and the demo database go.")
    ] = Path("stockade-demo"),
    network: Annotated[
        bool | None,
        typer.Option(
            "--network/--no-network",
            help="Run the lab, sensor and firewall (needs root; default: when root).",
        ),
    ] = None,
) -> None:
    """Run the whole product on embedded defaults: image, vulnerabilities, CIS, admission, network,
    firewall, and the compliance report built from all of it."""
    from stockade.lab.demo import Demo, DemoFailed, run

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, STOCKADE_DB=f"sqlite:///{workdir / 'stockade.db'}")
    d = Demo(workdir, env, _Console())
    try:
        run(d, network=(os.geteuid() == 0) if network is None else network)
    except DemoFailed as exc:
        err_console.print(f"stockade: error: demo stopped: {exc}", markup=False)
        raise typer.Exit(3) from None
    console.rule("[bold]Summary")
    for what, outcome in d.results:
        console.print(f"  {what}: {outcome}", markup=False)
    console.print(
        f"  database: {workdir / 'stockade.db'} (STOCKADE_DB=sqlite:///{workdir / 'stockade.db'} stockade ...)",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
