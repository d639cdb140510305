"""``stockade up``: the live platform on this machine (controller, console, lab, enforcer, sensor,
scan and CIS results, lab traffic) until Ctrl-C; the work is ``stockade.lab.platform``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from stockade.cli.common import err_console
from stockade.cli.demo import _Console


def up(
    workdir: Annotated[
        Path,
        typer.Option("--workdir", help="Where the store, the certificates and the logs go."),
    ] = Path("stockade-up"),
    host: Annotated[
        str, typer.Option("--host", help="Address the console listens on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Its port.")] = 8443,
    prefix: Annotated[
        str, typer.Option("--lab-prefix", help="Prefix of the lab's network namespaces.")
    ] = "up-",
    traffic_every: Annotated[
        float,
        typer.Option(
            "--traffic-every", min=2.0, max=3600.0, help="Seconds between traffic rounds."
        ),
    ] = 20.0,
) -> None:
    """Bring up the live platform on this machine: the controller and its web console, the lab's
    pods with the firewall and the network sensor reporting to it, the sample image scanned, the
    CIS benchmarks run, and lab traffic (card numbers in clear and over TLS, a blocked connection).
    Prints the console's address and a one-time admin password as soon as the controller answers,
    then each part and each result as it lands; Ctrl-C stops everything and removes the lab. Needs root (network namespaces, nftables). Exit codes: 0 stopped by Ctrl-C, 2 usage
    error, 3 a part could not start."""
    from stockade.lab.demo import DemoFailed
    from stockade.lab.platform import Platform, serve

    if os.geteuid() != 0:
        err_console.print(
            "stockade: error: up needs root (network namespaces, nftables)", markup=False
        )
        raise typer.Exit(2)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    platform = Platform(
        workdir, _Console(), host=host, port=port, traffic_every=traffic_every, prefix=prefix
    )
    try:
        serve(platform)
    except DemoFailed as exc:
        err_console.print(f"stockade: error: up stopped: {exc}", markup=False)
        raise typer.Exit(3) from None


def register(app: typer.Typer) -> None:
    app.command("up")(up)
