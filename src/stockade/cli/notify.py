"""``stockade notify``: notification targets: send a test, list and redeliver dead letters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from stockade.cli.common import DbOption, console, emit, open_db

notify_app = typer.Typer(
    help="Notification targets (webhook, Slack, Teams, syslog, email, Alertmanager).",
    no_args_is_help=True,
)

TargetsOption = Annotated[
    Path | None,
    typer.Option("--targets", "-t", help="The targets file (YAML; see docs/notifications.md)."),
]


def _line(d) -> str:
    if d.ok:
        return f"delivered to {d.target} ({d.kind}) in {d.attempts} attempt(s), delivery {d.delivery_id}"
    return f"FAILED {d.target} ({d.kind}) after {d.attempts} attempt(s): {d.error}"


@notify_app.command("test")
def test_cmd(
    target: Annotated[str, typer.Argument(help="Name of the target to send a test event to.")],
    targets: TargetsOption = None,
) -> None:
    """Send a test event to one target, whatever its filter (exit 3 when it is not delivered)."""
    from stockade.events.notify.dispatch import send_test
    from stockade.events.notify.interface import NotifyError
    from stockade.events.notify.targets import find_target, load_targets
    from stockade.model.errors import UsageError

    if targets is None:
        raise UsageError("--targets FILE is required")
    delivery = send_test(find_target(load_targets(targets), target))
    if not delivery.ok:
        raise NotifyError(
            f"test not delivered after {delivery.attempts} attempt(s): {delivery.error}"
        )
    console.print(_line(delivery), markup=False, highlight=False, soft_wrap=True)


@notify_app.command("dead-letters")
def dead_letters_cmd(
    targets: TargetsOption = None,
    redeliver: Annotated[
        bool,
        typer.Option(
            "--redeliver",
            help="Try each listed dead letter again (needs --targets); exit 3 if any fails.",
        ),
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="At most this many, oldest first.")
    ] = 100,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
    db: DbOption = None,
) -> None:
    """List the notifications no retry delivered, or redeliver them (same delivery ids)."""
    from stockade.events.notify.deadletters import DeadLetters
    from stockade.events.notify.dispatch import redeliver as redeliver_all
    from stockade.events.notify.interface import NotifyError
    from stockade.events.notify.targets import load_targets
    from stockade.model.errors import UsageError

    if fmt not in ("table", "json"):
        raise UsageError(f"unknown format {fmt!r} (expected table or json)")
    if redeliver and targets is None:
        raise UsageError("--redeliver needs --targets FILE")
    defined = load_targets(targets) if targets is not None else []
    letters = DeadLetters(open_db(db))
    if redeliver:
        results = redeliver_all(defined, letters, limit=limit)
        if fmt == "json":
            emit(json.dumps([_delivery_dict(d) for d in results], indent=2), None)
        else:
            for d in results:
                console.print(_line(d), markup=False, highlight=False, soft_wrap=True)
            console.print(
                f"{sum(d.ok for d in results)} of {len(results)} redelivered", markup=False
            )
        failed = sum(not d.ok for d in results)
        if failed:
            raise NotifyError(f"{failed} of {len(results)} dead letters not redelivered (kept)")
        return
    listed = letters.list(limit=limit)
    if fmt == "json":
        emit(json.dumps([letter.to_dict() for letter in listed], indent=2), None)
        return
    _print_letters(listed, letters.count())


def _delivery_dict(d) -> dict:
    return {
        "target": d.target,
        "kind": d.kind,
        "delivery_id": d.delivery_id,
        "ok": d.ok,
        "attempts": d.attempts,
        "error": d.error,
    }


def _print_letters(listed, total: int) -> None:
    from rich.table import Table

    if not listed:
        console.print("no dead letters", markup=False)
        return
    t = Table(
        "failed at", "target", "event", "attempts", "delivery", "last error", title="dead letters"
    )
    for letter in listed:
        t.add_row(
            f"{letter.last_failed_at:%Y-%m-%d %H:%M:%S}",
            f"{letter.target} ({letter.target_kind})",
            str(letter.event.get("kind", "")),
            str(letter.attempts),
            letter.delivery_id,
            letter.error,
        )
    console.print(t)
    if total > len(listed):
        console.print(f"{total - len(listed)} more (use --limit)", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")
