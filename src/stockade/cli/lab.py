"""``stockade lab``: pods as network namespaces with real services, on this host (root)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from stockade.cli.common import console, emit
from stockade.model.errors import UsageError

lab_app = typer.Typer(
    help="A lab of pods (network namespaces) with real services and traffic.", no_args_is_help=True
)

PrefixOpt = Annotated[
    str, typer.Option("--prefix", help="Name prefix of every namespace the lab makes.")
]
StateOpt = Annotated[Path, typer.Option("--state", help="Inventory file the sensor reads.")]
DEFAULT_PREFIX = "sk-"
DEFAULT_STATE = Path("/run/stockade/lab.json")


def _need_root() -> None:
    if os.geteuid() != 0:
        raise UsageError("the lab needs root (network namespaces)")


@lab_app.command("up")
def up_cmd(
    prefix: PrefixOpt = DEFAULT_PREFIX,
    state: StateOpt = DEFAULT_STATE,
    no_databases: Annotated[
        bool, typer.Option("--no-databases", help="Skip PostgreSQL and Redis.")
    ] = False,
    container: Annotated[
        list[str] | None,
        typer.Option(
            "--container",
            help="POD=IMAGE: run the pod's container from the image's root filesystem (own "
            "mount, PID, UTS namespaces and cgroup; image: sample). Repeatable.",
        ),
    ] = None,
) -> None:
    """Create the pods, start their services and save the inventory."""
    from stockade.lab import manager

    _need_root()
    containers: dict[str, str] = {}
    for item in container or ():
        pod, sep, image = item.partition("=")
        if not sep or not pod or not image:
            raise UsageError(f"--container takes POD=IMAGE, got {item!r}")
        containers[pod] = image
    inv = manager.up(prefix, state, databases_on=not no_databases, containers=containers)
    for p in inv.pods:
        services = ", ".join(f"{s.name}:{s.port}" for s in p.services) or "-"
        where = "outside" if p.external else f"{p.namespace}/{p.name}"
        console.print(f"{where:18} {p.ipv4:15} {p.ipv6:14} {services}", highlight=False)
    console.print(f"lab {prefix!r} is up; inventory in {state}", highlight=False)


@lab_app.command("down")
def down_cmd(prefix: PrefixOpt = DEFAULT_PREFIX, state: StateOpt = DEFAULT_STATE) -> None:
    """Stop the lab's processes and delete its namespaces (safe to repeat)."""
    from stockade.lab import manager

    _need_root()
    removed = manager.down(prefix, state)
    spaces = [r for r in removed if not r.startswith("container ")]
    console.print(
        f"removed {len(spaces)} namespaces" + (f": {', '.join(removed)}" if removed else ""),
        highlight=False,
    )


@lab_app.command("status")
def status_cmd(
    state: StateOpt = DEFAULT_STATE,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Show the lab's pods, addresses and services."""
    from stockade.lab import manager

    info = manager.status(state)
    if fmt == "json":
        emit(json.dumps(info, indent=2), None)
        return
    for p in info["pods"]:  # type: ignore[attr-defined]
        svc = ", ".join(
            f"{s['name']}:{s['port']}{'' if s['running'] else ' (stopped)'}" for s in p["services"]
        )
        console.print(
            f"{p['netns']:16} {'up' if p['up'] else 'MISSING':8} {p['ipv4']:15} {svc or '-'}",
            highlight=False,
        )


@lab_app.command("traffic")
def traffic_cmd(
    state: StateOpt = DEFAULT_STATE,
    count: Annotated[int, typer.Option("--count", help="Requests per scenario (1-1000).")] = 3,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these scenarios.")
    ] = None,
) -> None:
    """Drive bounded, realistic traffic between the pods (cards and PII, clear and TLS)."""
    from stockade.lab import inventory, manager

    _need_root()
    results = manager.traffic(inventory.load(state), count, set(only) if only else None)
    for r in results:
        console.print(
            f"{r.scenario:20} {r.client:>9} -> {r.server:8} {'ok' if r.ok else 'FAILED'} {r.detail}",
            highlight=False,
            markup=False,
        )
    if not all(r.ok for r in results):
        raise typer.Exit(3)


@lab_app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_cmd(
    pod: Annotated[str, typer.Argument(help="A pod started with --container.")],
    argv: Annotated[list[str], typer.Argument(help="The command (a path inside the image).")],
    state: StateOpt = DEFAULT_STATE,
) -> None:
    """Run a command inside a pod's container (its namespaces, root and cgroup); exits with the
    command's status."""
    import subprocess

    from stockade.lab import inventory, manager

    _need_root()
    args = manager.container_exec_args(inventory.load(state), pod, argv)
    raise typer.Exit(subprocess.run(args, check=False).returncode)


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
