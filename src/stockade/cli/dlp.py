"""``stockade dlp``: run the DLP sensors over files or standard input, list the sensors, and
detect the protocol of a captured conversation. Evidence is always masked."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stockade.cli.common import EXIT_FINDINGS, console
from stockade.model.errors import InputError

if TYPE_CHECKING:
    from stockade.network.dlp import DlpEngine

SensorsOption = Annotated[
    Path | None,
    typer.Option(
        "--sensors", help="YAML file of user-defined sensors (added to the built-in ones)."
    ),
]


def _engine(sensors: Path | None, backend: str, ignore_test_cards: bool) -> DlpEngine:
    from stockade.network.dlp import BUILTIN_SENSORS, DlpEngine, load_sensor_file

    extra = load_sensor_file(sensors) if sensors else ()
    return DlpEngine(
        (*BUILTIN_SENSORS, *extra), backend=backend, ignore_test_cards=ignore_test_cards
    )


def _read(path: Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", subject=str(path)) from exc


def scan(
    files: Annotated[list[Path], typer.Argument(help="Files to scan ('-' for standard input).")],
    sensors: SensorsOption = None,
    backend: Annotated[str, typer.Option(help="auto, hs-stream, hs-window or re.")] = "auto",
    ignore_test_cards: Annotated[
        bool, typer.Option("--ignore-test-cards", help="Do not report published test card numbers.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per match.")] = False,
) -> None:
    """Scan files for card numbers, SSNs, IBANs, e-mail addresses, phone numbers and user sensors.
    Exits 1 when anything is found."""
    engine = _engine(sensors, backend, ignore_test_cards)
    found = 0
    for path in files:
        for m in engine.scan(_read(path)):
            found += 1
            if as_json:
                row = {"file": str(path), "sensor": m.sensor, "masked": m.masked, "start": m.start,
                       "end": m.end, "confidence": m.confidence, "label": m.label, "context": m.context}  # fmt: skip
                typer.echo(json.dumps(row))
            else:
                label = f" {m.label}" if m.label else ""
                console.print(
                    f"{path}:{m.start}-{m.end}  {m.sensor}{label}  {m.masked}  ({m.confidence:.2f})",
                    highlight=False,
                )
    if found:
        raise typer.Exit(EXIT_FINDINGS)


def sensors_cmd(sensors: SensorsOption = None) -> None:
    """List the DLP sensors: id, validator, base score and context words."""
    engine = _engine(sensors, "auto", False)
    for compiled in engine.sensors:
        s = compiled.sensor
        typer.echo(
            f"{s.id:22} validator={s.validator:13} score={s.score:.2f} mask={s.mask:8} "
            f"context={','.join(s.context[:6])}"
        )


def detect_cmd(
    client: Annotated[Path, typer.Argument(help="First bytes the client sent.")],
    server: Annotated[Path | None, typer.Argument(help="First bytes the server sent.")] = None,
) -> None:
    """Detect the protocol of one connection from the first bytes of each direction."""
    from stockade.network.protocols import detect

    got = detect(_read(client), _read(server) if server else b"")
    typer.echo(json.dumps({"protocol": got.protocol, "encrypted": got.encrypted, "upgrade": got.upgrade,
                           "confidence": got.confidence, "details": dict(got.details)}))  # fmt: skip


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Data loss prevention sensors and protocol detection.", no_args_is_help=True
    )
    group.command("scan")(scan)
    group.command("sensors")(sensors_cmd)
    group.command("detect")(detect_cmd)
    app.add_typer(group, name="dlp")
