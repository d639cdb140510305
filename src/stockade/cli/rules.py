"""``stockade rules check``: validate a response rules file and dry-run it over recorded events."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from stockade.cli.common import console, err_console
from stockade.model.errors import InputError, StockadeError

MAX_LINE = 1024 * 1024  # one event of the JSONL file
# A dry run executes nothing: "acted" means an active rule would carry the action out.
_SHOWN = {
    "acted": "would be carried out",
    "would_act": "logged only (monitor)",
    "cooldown": "held back (cooldown)",
    "suppressed": "suppressed",
    "skipped": "skipped",
    "failed": "failed",
}


def _events(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, Event) for every non-blank line; one bad line stops with ``file:line``."""
    from stockade.config import parse_json

    try:
        file = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with file:
        lineno = 0
        while True:
            raw = file.readline(MAX_LINE + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                raise InputError("line longer than 1 MiB", subject=str(path), line=lineno)
            if not raw.strip():
                continue
            try:
                value = parse_json(raw.decode("utf-8"), name=str(path), error=InputError)
                yield lineno, _event(value)
            except UnicodeDecodeError:
                raise InputError("not UTF-8 text", subject=str(path), line=lineno) from None
            except StockadeError as exc:
                raise InputError(exc.message, subject=str(path), line=lineno) from None


def _event(value: Any) -> Any:
    """An Event from its ``to_dict()`` form, checked field by field."""
    from stockade.model import Event, ResourceRef, Severity

    from_dict = getattr(Event, "from_dict", None)  # the controller's envelope validator
    if from_dict is not None:
        try:
            return from_dict(value)
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"not an event: {exc}") from None
    if not isinstance(value, Mapping):
        raise InputError("an event must be a JSON object")
    kind, message = value.get("kind"), value.get("message", "")
    if not isinstance(kind, str) or not kind or not isinstance(message, str):
        raise InputError("an event needs a kind and a message (strings)")
    fields: dict[str, Any] = {"kind": kind, "message": message}
    if isinstance(value.get("id"), str):
        fields["id"] = value["id"]
    if value.get("severity") is not None:
        fields["severity"] = Severity.parse(str(value["severity"]))
    if value.get("at") is not None:
        try:
            at = datetime.fromisoformat(str(value["at"]))
        except ValueError:
            raise InputError(f"bad time {str(value['at'])[:40]!r}") from None
        fields["at"] = at if at.tzinfo else at.replace(tzinfo=UTC)
    for key in ("resource", "peer"):
        ref = value.get(key)
        if ref is not None:
            if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
                raise InputError(f"{key} must be an object with a kind and a name")
            fields[key] = ResourceRef.from_dict(dict(ref))
    data = value.get("data")
    if data is not None and not isinstance(data, Mapping):
        raise InputError("data must be an object")
    fields["data"] = dict(data or {})
    return Event(**fields)


def check(
    file: Annotated[Path, typer.Argument(help="A ResponseRules YAML file.")],
    events: Annotated[
        Path | None,
        typer.Option(
            "--events",
            help="Events as JSON lines (Event.to_dict()): show what the rules would do with them, "
            "in their order and with each rule's mode and cooldown. Nothing is executed.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --events: one JSON object per action.")
    ] = False,
) -> None:
    """Validate a response rules file (exit 2 when it is wrong, 3 when unreadable)."""
    from stockade.events.respond import ActionTaken, Executors, Responder
    from stockade.events.rules import load_rules

    rule_set = load_rules(file)
    active = sum(r.spec.mode == "active" for r in rule_set.rules)
    (err_console if as_json else console).print(
        f"{file}: rules {rule_set.name!r} valid: {len(rule_set.rules)} enabled "
        f"({active} active, {len(rule_set.rules) - active} monitor), "
        f"{len(rule_set.disabled)} disabled",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if events is None:
        return

    def nothing(*_: object) -> None:
        """A dry run executes nothing; the statuses say what would have happened."""

    now = [0.0]  # the clock is the events' own time, so cooldowns play out as recorded
    responder = Responder(
        rule_set, Executors(quarantine=nothing, notify=nothing), clock=lambda: now[0]
    )
    counted: dict[str, int] = {}
    total = 0
    for lineno, event in _events(events):
        total += 1
        now[0] = event.at.timestamp()
        taken: list[ActionTaken] = responder.handle(event)
        for t in taken:
            counted[t.status] = counted.get(t.status, 0) + 1
            if as_json:
                row = {"line": lineno, "kind": event.kind, "dry_run": True, **t.to_dict()}
                typer.echo(json.dumps(row))
                continue
            status = _SHOWN.get(t.status, t.status)
            what = t.action + (f" {','.join(t.targets)}" if t.targets else "")
            on = f" {t.workload}" if t.workload and t.action == "quarantine" else ""
            note = f" ({t.detail})" if t.detail and t.status not in ("acted", "cooldown") else ""
            console.print(
                f"line {lineno}: {event.kind} -> rule {t.rule} [{t.mode}] {what}{on}: "
                f"{status}{note}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if not as_json:
        summary = ", ".join(f"{n} {_SHOWN.get(s, s)}" for s, n in sorted(counted.items()))
        console.print(
            f"{total} events: {summary or 'no rule matched'}", markup=False, soft_wrap=True
        )


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Response rules: what the controller does when an event arrives.",
        no_args_is_help=True,
    )
    group.command("check")(check)
    app.add_typer(group, name="rules")
