"""``stockade sbom REF``: the packages inside an image or filesystem, as a table or an SBOM."""

from __future__ import annotations

import io
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from stockade.cli.common import DbOption, OutputOption, RichObserver, console, emit

if TYPE_CHECKING:
    from stockade.scanning.interface import Inventory


class SbomFormat(StrEnum):
    table = "table"
    json = "json"
    cyclonedx = "cyclonedx"
    spdx = "spdx"


def sbom(
    ref: str = typer.Argument(
        ...,
        metavar="REF",
        help="docker-archive:PATH, oci:PATH[:TAG], HOST[:PORT]/REPO[:TAG|@DIGEST], dir:PATH, "
        "pid:PID.",
    ),
    fmt: SbomFormat = typer.Option(
        SbomFormat.table,
        "--format",
        "-f",
        help="table, json (Stockade), cyclonedx (1.5) or spdx (2.3).",
    ),
    output: OutputOption = None,
    platform: str | None = typer.Option(
        None, "--platform", metavar="OS/ARCH[/VARIANT]", help="Which image of a multi-arch index."
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Plain HTTP to the registry."),
    username: str | None = typer.Option(None, "--username", envvar="STOCKADE_REGISTRY_USERNAME"),
    password: str | None = typer.Option(None, "--password", envvar="STOCKADE_REGISTRY_PASSWORD"),
    db: DbOption = None,
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Read every layer; use no layer cache."
    ),
    max_entries: int | None = typer.Option(
        None,
        "--max-entries",
        min=1,
        envvar="STOCKADE_MAX_ENTRIES",
        help="Refuse an image whose layers hold more entries than this (default 500000).",
    ),
) -> None:
    """List the packages in an image or root filesystem (an SBOM)."""
    from stockade.model.errors import UsageError
    from stockade.scanning.catalogers import default_catalogers, finalize
    from stockade.scanning.inventory import build_inventory
    from stockade.scanning.layers import Limits

    if (username is None) != (password is None):
        raise UsageError("--username and --password go together")
    store = None if no_cache else _open_store(db)
    try:
        with RichObserver() as observer:
            inventory = build_inventory(
                ref,
                catalogers=default_catalogers(),
                store=store,
                observer=observer,
                platform=platform,
                insecure=insecure,
                username=username,
                password=password,
                limits=Limits(max_image_entries=max_entries) if max_entries else None,
            )
    finally:
        if store is not None:
            store.close()
    inventory = finalize(inventory)
    if fmt is SbomFormat.table:
        _table(inventory, output)
    else:
        from stockade.scanning import sbom as sboms

        emit(sboms.write(inventory, fmt.value), output)


def _open_store(db: str | None):  # keeps the store import out of CLI start-up
    from stockade.cli.common import open_db

    return open_db(db)


def _table(inventory: Inventory, output: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("NAME", no_wrap=True)
    table.add_column("VERSION", no_wrap=True)
    table.add_column("TYPE", no_wrap=True)
    table.add_column("SOURCE", overflow="fold")
    table.add_column("LICENSES", overflow="ellipsis", no_wrap=True)
    for p in inventory.packages:
        source = p.source_name if p.source_name and p.source_name != p.name else ""
        if source and p.source_version and p.source_version != p.version:
            source += f" {p.source_version}"
        licenses = ", ".join(p.licenses[:2]) + (
            f" +{len(p.licenses) - 2}" if len(p.licenses) > 2 else ""
        )
        table.add_row(p.name, p.version, p.type, source, licenses)
    head = [f"{inventory.source}"]
    if inventory.distro:
        head.append(
            inventory.distro.pretty_name or f"{inventory.distro.id} {inventory.distro.version_id}"
        )
    head.append(f"{len(inventory.packages)} packages")
    if inventory.image is not None:
        head.append(f"layers: {inventory.read_layers} read, {inventory.cached_layers} from cache")
    target = (
        console if output is None else Console(file=io.StringIO(), width=200, color_system=None)
    )
    target.print(" · ".join(head), markup=False, highlight=False, soft_wrap=True)
    target.print(table)
    for reason in inventory.skipped:
        target.print(f"skipped: {reason}", markup=False, highlight=False, soft_wrap=True)
    if output is not None:
        emit(target.file.getvalue(), output)  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    app.command("sbom")(sbom)
