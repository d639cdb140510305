"""``stockade runtime``: process monitoring of the lab's workloads (``watch``) and process profiles
as policy as code (``profile export|apply|diff``)."""

from __future__ import annotations

import json
import os
import selectors
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from stockade.cli.agent import (
    AgentNameOption,
    ControllerCaOption,
    ControllerOption,
    TokenOption,
)
from stockade.cli.common import OutputOption, console, emit, err_console
from stockade.model.errors import EnforcementError, UsageError

runtime_app = typer.Typer(
    help="Runtime protection: process events, profiles, zero-drift.", no_args_is_help=True
)
profile_app = typer.Typer(
    help="Process profiles as code: export, apply, diff.", no_args_is_help=True
)

DEFAULT_PROFILES = Path("/var/lib/stockade/runtime/profiles.yaml")
ProfilesOpt = Annotated[
    Path,
    typer.Option(
        "--profiles",
        help="The applied profiles (what `profile apply` writes and `watch` enforces); what "
        "Discover learns is kept beside it in *.learned.yaml.",
    ),
]
LabState = Annotated[
    Path, typer.Option("--lab-state", help="Workload inventory (the lab's state file).")
]
DEFAULT_STATE = Path("/run/stockade/lab.json")
MODES = ("discover", "monitor", "protect")


def learned_path(profiles: Path) -> Path:
    return profiles.with_name(profiles.stem + ".learned.yaml")


def event_line(event: Any) -> str:
    """One event as the JSON line ``watch`` prints (masked: a command line may hold a card)."""
    from stockade.model.redact import redact

    return json.dumps(redact(event.to_dict()))


@runtime_app.command("watch")
def watch(
    lab_state: LabState = DEFAULT_STATE,
    profiles: ProfilesOpt = DEFAULT_PROFILES,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0.1, help="Stop after this many seconds.")
    ] = None,
    exec_gate: Annotated[
        bool,
        typer.Option(
            "--exec-gate/--no-exec-gate",
            help="Refuse execs in Protect before they run (fanotify permission events) where "
            "the kernel allows; without it Protect kills after the exec.",
        ),
    ] = True,
    file_gate: Annotated[
        bool,
        typer.Option(
            "--file-gate/--no-file-gate",
            help="Report opens of sensitive paths for writing (binaries, libraries, /etc/passwd, "
            "/etc/shadow, package databases, a profile's files) and deny them in Protect "
            "(fanotify).",
        ),
    ] = True,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Watch process events (root): attribute them to workloads, learn (Discover), alert
    (Monitor) or kill (Protect); events are printed as JSON lines and sent to --controller.
    Applied profiles are re-read when the file changes."""
    from stockade.cli.agent import AgentOptions, reporting

    if os.geteuid() != 0:
        raise UsageError("runtime watch needs root (the kernel's process connector)")
    agent = AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name)
    with reporting(agent, ("runtime",)) as reporter:
        stats = _watch(lab_state, profiles, duration, reporter, exec_gate, file_gate)
    err_console.print(f"runtime watch stopped: {stats}", highlight=False, markup=False)


def _watch(
    state: Path,
    profiles_path: Path,
    duration: float | None,
    reporter: Any,
    exec_gate: bool,
    file_gate: bool,
) -> Any:
    from stockade.lab.inventory import load
    from stockade.runtime import profile
    from stockade.runtime.execgate import ExecGate
    from stockade.runtime.filegate import FileGate
    from stockade.runtime.image import load_or_index
    from stockade.runtime.monitor import Monitor, Root
    from stockade.runtime.procevents import ProcConnector

    inv = load(state)
    roots = {
        p.workload().display(): Root(
            path=p.root, image=load_or_index(Path(p.image_root)) if p.image_root else None
        )
        for p in inv.pods
        if p.cgroup
    }
    if not roots:
        raise UsageError(f"no pod of {state} runs a container (lab up --container POD=sample)")

    lock = threading.Lock()  # the file gate reports from its own thread

    def emit_events(events: list[Any]) -> None:
        with lock:
            for e in events:
                emit(event_line(e), None)
            if reporter is not None:
                reporter.add_all(events)

    def mtime() -> float:
        return profiles_path.stat().st_mtime if profiles_path.exists() else 0.0

    seen = mtime()
    mon = Monitor(
        directory=inv.directory(),
        roots=roots,
        profiles=profile.load_state(profiles_path),
        emit=emit_events,
        node=inv.node_netns,
    )
    learned_file, learned_count, saved_at = learned_path(profiles_path), -1, 0.0
    deadline = time.monotonic() + duration if duration else None
    gate = ExecGate(mon) if exec_gate else None
    gate_note = "off (--no-exec-gate)"
    try:
        if gate is not None:
            for p in inv.pods:
                if p.cgroup:
                    gate.add(p.workload(), roots[p.workload().display()])
            gate_note = "on (fanotify: denied before they run in Protect)"
    except EnforcementError as exc:
        assert gate is not None
        gate.close()
        gate, gate_note = None, f"unavailable ({exc}); Protect kills after the exec"
    files = FileGate(mon) if file_gate else None
    file_note = "off (--no-file-gate)"
    try:
        if files is not None:
            for p in inv.pods:
                if p.cgroup:
                    files.add(p.workload(), roots[p.workload().display()])
            files.start()
            file_note = "on (writes to sensitive paths reported, denied in Protect)"
    except EnforcementError as exc:
        assert files is not None
        files.close()
        files, file_note = None, f"unavailable ({exc})"
    sel = selectors.DefaultSelector()
    try:
        with ProcConnector() as conn:
            sel.register(conn.fileno(), selectors.EVENT_READ, None)
            for fd in gate.fds() if gate is not None else ():
                sel.register(fd, selectors.EVENT_READ, fd)
            err_console.print(
                f"watching {len(roots)} workloads: {', '.join(sorted(roots))}; exec refusal "
                f"{gate_note}; file monitoring {file_note}",
                highlight=False,
                markup=False,
            )
            try:
                while deadline is None or time.monotonic() < deadline:
                    for key, _ in sel.select(0.2):
                        if key.data is None:
                            mon.handle(conn.read(0.0))
                        elif gate is not None:
                            gate.handle(key.data)
                    now = time.monotonic()
                    if now - saved_at >= 0.5:
                        saved_at = now
                        if mtime() != seen:
                            seen = mtime()
                            mon.profiles = profile.load_state(profiles_path)
                            err_console.print("profiles re-read", highlight=False, markup=False)
                        if mon.stats.learned != learned_count:
                            learned_count = mon.stats.learned
                            profile.save_state(mon.learned(), learned_file)
            except KeyboardInterrupt:
                pass
            finally:
                if mon.stats.learned != learned_count:
                    profile.save_state(mon.learned(), learned_file)
            mon.stats.lost = conn.lost
    finally:
        sel.close()
        if gate is not None:
            gate.close()  # the kernel lets anything still held through
        if files is not None:
            files.close()
            err_console.print(
                f"file monitoring: {files.reported} writes reported, {files.denied} denied",
                highlight=False,
                markup=False,
            )
    return mon.stats


@profile_app.command("export")
def export(
    profiles: ProfilesOpt = DEFAULT_PROFILES,
    learned: Annotated[
        bool, typer.Option("--learned", help="What Discover learned (with the applied profiles).")
    ] = False,
    mode: Annotated[
        str | None, typer.Option("--mode", help="Give every profile this mode.")
    ] = None,
    zero_drift: Annotated[
        bool | None,
        typer.Option("--zero-drift/--no-zero-drift", help="Set zero-drift on every profile."),
    ] = None,
    output: OutputOption = None,
) -> None:
    """Print the applied (or learned) profiles as YAML."""
    from stockade.runtime import profile

    if mode is not None and mode not in MODES:
        raise UsageError("--mode is discover, monitor or protect")
    current = profile.load_state(learned_path(profiles) if learned else profiles)
    changes: dict[str, Any] = {}
    if mode is not None:
        changes["mode"] = mode
    if zero_drift is not None:
        changes["zero_drift"] = zero_drift
    if changes:
        current = profile.Profiles(
            spec=profile.Spec(
                profiles=[p.model_copy(update=changes) for p in current.spec.profiles]
            )
        )
    emit(profile.dump(current), output)


@profile_app.command("apply")
def apply(
    files: Annotated[list[Path], typer.Argument(help="Profile YAML files or folders.")],
    profiles: ProfilesOpt = DEFAULT_PROFILES,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Validate the files as one set of profiles and make them the applied ones (all or
    nothing); a running watch picks them up. With --controller, the change is reported."""
    import hashlib

    from stockade.cli.agent import AgentOptions, send
    from stockade.model import Event
    from stockade.runtime import profile

    new = profile.load_files(files)
    text = profile.dump(new)
    profile.save_state(new, profiles)
    modes = {p.name: p.mode + (" zero-drift" if p.zero_drift else "") for p in new.spec.profiles}
    console.print(
        f"applied {len(new.spec.profiles)} profiles to {profiles}; modes {modes}", highlight=False
    )
    event = Event(
        kind="process.profiles_applied",
        message=f"{len(new.spec.profiles)} process profiles applied",
        source="stockade.runtime",
        data={
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "profiles": {
                p.name: {"mode": p.mode, "zeroDrift": p.zero_drift, "processes": len(p.processes)}
                for p in new.spec.profiles
            },
        },
        action="apply",
    )
    agent = AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name)
    send(agent, ("runtime",), [event])


@profile_app.command("diff")
def diff(
    files: Annotated[list[Path], typer.Argument(help="Profile files to compare.")],
    profiles: ProfilesOpt = DEFAULT_PROFILES,
) -> None:
    """Show what applying the files would change (exit 1 when something would)."""
    from stockade.runtime import profile

    lines = profile.diff_lines(profile.load_state(profiles), profile.load_files(files))
    if not lines:
        console.print("no changes")
        return
    emit("\n".join(lines), None)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    runtime_app.add_typer(profile_app, name="profile")
    app.add_typer(runtime_app, name="runtime")
