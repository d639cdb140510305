"""``stockade rules``: validate a response rules file and dry-run it over recorded events
(``check``); apply, export and diff the rules the controller's store holds (every replica of the
controller follows them within a second)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from stockade.cli.common import DbOption, OutputOption, console, emit, err_console, open_db
from stockade.model.errors import InputError, StockadeError, UsageError

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
    """An Event from its ``to_dict()`` form, validated as the controller validates agents' events.
    Hand-written events may leave out ``id`` and ``at`` (a new id, now)."""
    import uuid

    from stockade.model import Event

    if isinstance(value, Mapping):
        value = {"id": uuid.uuid4().hex, "at": datetime.now(UTC).isoformat(), **value}
    try:
        return Event.from_dict(value)
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(str(exc)) from None


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
            on = f" {t.workload}" if t.workload and t.action in ("quarantine", "capture") else ""
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


def apply(
    file: Annotated[Path, typer.Argument(help="A ResponseRules YAML file.")],
    db: DbOption = None,
) -> None:
    """Validate the file and make it the controller's response rules (audited).

    Every replica takes them within a second, without a restart."""
    from stockade.api import auth, response_store
    from stockade.cli.controller import _cli_actor
    from stockade.config import read_text
    from stockade.events.rules import RuleSet

    rules, canonical = response_store.rules_document(read_text(file), name=str(file))
    store = open_db(db)
    before = response_store.load(store, response_store.RULES)
    actor = _cli_actor()
    version = response_store.save(store, response_store.RULES, canonical, by=actor.who)

    def summary(rule_set: RuleSet, v: int) -> dict[str, Any]:
        return {"name": rule_set.name, "version": v, "rules": [r.name for r in rule_set.rules]}

    old = (
        None
        if before is None
        else summary(response_store.rules_document(before.text)[0], before.version)
    )
    auth.audit(
        store,
        actor,
        "response_rules_replaced",
        before=old,
        after=summary(rules, version),
        message=f"{actor.who} applied response rules version {version} from {file}",
    )
    console.print(
        f"applied response rules {rules.name!r} version {version}: {len(rules.rules)} enabled, "
        f"{len(rules.disabled)} disabled",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def export(output: OutputOption = None, db: DbOption = None) -> None:
    """Print the controller's rules as stored (canonical YAML); exit 2 when none is stored."""
    from stockade.api import response_store

    stored = response_store.load(open_db(db), response_store.RULES)
    if stored is None:
        raise UsageError("the store holds no response rules (stockade rules apply FILE)")
    emit(stored.text, output)


def diff(
    file: Annotated[Path, typer.Argument(help="A ResponseRules YAML file.")],
    db: DbOption = None,
) -> None:
    """Show what applying the file would change (exit 1 when something would)."""
    from stockade.api import response_store
    from stockade.config import read_text

    _, canonical = response_store.rules_document(read_text(file), name=str(file))
    found = response_store.diff(response_store.load(open_db(db), response_store.RULES), canonical)
    if not found["changed"]:
        console.print("no changes", markup=False)
        return
    emit(str(found["diff"]), None)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Response rules: what the controller does when an event arrives.",
        no_args_is_help=True,
    )
    group.command("check")(check)
    group.command("apply")(apply)
    group.command("export")(export)
    group.command("diff")(diff)
    app.add_typer(group, name="rules")
