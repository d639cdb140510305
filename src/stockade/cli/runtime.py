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
    Applied profiles are re-read when the file changes. With --controller, the profiles applied
    at the controller are followed by version (they replace the file's) and what Discover
    learns is sent up."""
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
    follow = _Following.start(reporter, mon, emit_events)
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
                        if follow is not None:
                            follow.tick()
                        if mtime() != seen and not (follow and follow.profiles.version):
                            seen = mtime()
                            mon.profiles = profile.load_state(profiles_path)
                            err_console.print("profiles re-read", highlight=False, markup=False)
                        if mon.stats.learned != learned_count:
                            learned_count = mon.stats.learned
                            profile.save_state(mon.learned(), learned_file)
                            if follow is not None and mon.stats.learned:
                                follow.learned.offer(mon.learned())
            except KeyboardInterrupt:
                pass
            finally:
                if mon.stats.learned != learned_count:
                    profile.save_state(mon.learned(), learned_file)
                    if follow is not None and mon.stats.learned:
                        follow.learned.offer(mon.learned())
            mon.stats.lost = conn.lost
    finally:
        if follow is not None:
            follow.close()
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


def learned_sender(link: Any, agent: str, *, every: float = 2.0) -> Any:
    """A LearnedSender posting through the agent's link to the controller."""
    import logging

    from stockade.events.upload import upload
    from stockade.runtime.follow import LearnedSender

    notice = logging.getLogger("stockade.runtime").warning

    def send(path: str, payload: dict[str, str], attempts: int) -> bool:
        return upload(link, path, payload, what="learned profile", notice=notice, attempts=attempts)

    return LearnedSender(send, agent, every=every, timeout=link.timeout)


class _Following:
    """The watch's link to the controller: its profiles followed, what is learned sent up."""

    def __init__(self, fetcher: Any, profiles: Any, learned: Any) -> None:
        self.fetcher, self.profiles, self.learned = fetcher, profiles, learned

    @classmethod
    def start(cls, reporter: Any, mon: Any, emit: Any) -> _Following | None:
        if reporter is None:
            return None
        from stockade.firewall.enforce.follow import ConfigFetcher
        from stockade.runtime.follow import ProfileFollower

        def install(profiles: Any, version: int) -> None:
            mon.profiles = profiles
            err_console.print(
                f"profiles version {version} from the controller applied",
                highlight=False,
                markup=False,
            )

        follower = ProfileFollower(install, emit, mon.node)
        fetcher = ConfigFetcher(reporter.link)
        learned = learned_sender(reporter.link, reporter.agent.name)
        fetcher.start()
        learned.start()
        return cls(fetcher, follower, learned)

    def tick(self) -> None:
        answer = self.fetcher.take()
        if answer is not None:
            self.profiles.apply(answer)
            self.fetcher.since = answer.version

    def close(self) -> None:
        self.fetcher.stop()
        self.learned.close()


AtController = Annotated[
    bool,
    typer.Option(
        "--at-controller",
        help="Work on the profiles applied at --controller (its API, with --token: reader for "
        "export and diff, operator for apply) instead of this node's --profiles file.",
        rich_help_panel="Controller",
    ),
]
PROFILES_PATH = "/api/v1/runtime-profiles"


def _controller_call(
    agent: Any, method: str, path: str, text: str | None = None, *, yaml: bool = False
) -> Any:
    """One request to the controller's API; its answer, or a one-line error (a document the
    controller refuses is a configuration error, exit 2; an unreachable controller exit 3)."""
    import httpx

    from stockade.events.reporter import ControllerLink
    from stockade.model.errors import ConfigError, InputError

    if not agent.controller or not agent.token:
        raise UsageError("--at-controller needs --controller and --token")
    link = ControllerLink(url=agent.controller, token=agent.token, ca=agent.ca)
    headers = {"Authorization": f"Bearer {link.token}"}
    if yaml:
        headers["Accept"] = "application/yaml"
    if text is not None:
        headers["Content-Type"] = "application/yaml"
    try:
        with httpx.Client(verify=link.verify(), timeout=link.timeout, headers=headers) as c:
            answer = c.request(method, link.url.rstrip("/") + path, content=text)
    except httpx.HTTPError as exc:
        raise InputError(f"controller {link.url}: {exc or type(exc).__name__}") from None
    if answer.status_code < 300 or (answer.status_code == 404 and method == "GET"):
        return answer
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    why = " ".join(str(detail or answer.text).split())[:300]
    if answer.status_code == 400:
        raise ConfigError(f"the controller refused the profiles: {why}")
    if answer.status_code in (401, 403):
        raise UsageError(f"--token: the controller answered {answer.status_code} ({why})")
    raise InputError(f"controller {link.url} answered {answer.status_code}: {why}")


def _controller_profiles(agent: Any, learned: bool) -> Any:
    """The controller's applied (or learned) profiles; none when it has none."""
    from stockade.runtime import profile

    path = PROFILES_PATH + ("/learned" if learned else "")
    answer = _controller_call(agent, "GET", path, yaml=True)
    if answer.status_code == 404:
        return profile.Profiles()
    return profile.parse_texts([(f"controller {path}", answer.text)])


@profile_app.command("export")
def export(
    profiles: ProfilesOpt = DEFAULT_PROFILES,
    learned: Annotated[
        bool,
        typer.Option(
            "--learned",
            help="What Discover learned (with the applied profiles); with --at-controller, what "
            "every agent sent up, merged.",
        ),
    ] = False,
    mode: Annotated[
        str | None, typer.Option("--mode", help="Give every profile this mode.")
    ] = None,
    zero_drift: Annotated[
        bool | None,
        typer.Option("--zero-drift/--no-zero-drift", help="Set zero-drift on every profile."),
    ] = None,
    output: OutputOption = None,
    at_controller: AtController = False,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
) -> None:
    """Print the applied (or learned) profiles as YAML."""
    from stockade.cli.agent import AgentOptions
    from stockade.runtime import profile

    if mode is not None and mode not in MODES:
        raise UsageError("--mode is discover, monitor or protect")
    if at_controller:
        agent = AgentOptions(controller=controller, token=token, ca=controller_ca, name=None)
        current = _controller_profiles(agent, learned)
    else:
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
    at_controller: AtController = False,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Validate the files as one set of profiles and make them the applied ones (all or
    nothing); a running watch picks them up. With --controller, the change is reported; with
    --at-controller, they are applied at the controller (a new version every watch following
    it takes)."""
    from stockade.cli.agent import AgentOptions, send
    from stockade.runtime import profile
    from stockade.runtime.follow import applied_event

    new = profile.load_files(files)
    agent = AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name)
    modes = {p.name: p.mode + (" zero-drift" if p.zero_drift else "") for p in new.spec.profiles}
    if at_controller:
        done = _controller_call(agent, "PUT", PROFILES_PATH, profile.dump(new)).json()
        console.print(
            f"applied {len(new.spec.profiles)} profiles at {controller} as version "
            f"{done['version']}; modes {modes}",
            highlight=False,
        )
        return
    profile.save_state(new, profiles)
    console.print(
        f"applied {len(new.spec.profiles)} profiles to {profiles}; modes {modes}", highlight=False
    )
    send(agent, ("runtime",), [applied_event(new, source="file")])


@profile_app.command("diff")
def diff(
    files: Annotated[list[Path], typer.Argument(help="Profile files to compare.")],
    profiles: ProfilesOpt = DEFAULT_PROFILES,
    at_controller: AtController = False,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
) -> None:
    """Show what applying the files would change (exit 1 when something would)."""
    from stockade.cli.agent import AgentOptions
    from stockade.runtime import profile

    new = profile.load_files(files)
    if at_controller:
        agent = AgentOptions(controller=controller, token=token, ca=controller_ca, name=None)
        running = _controller_profiles(agent, learned=False)
    else:
        running = profile.load_state(profiles)
    lines = profile.diff_lines(running, new)
    if not lines:
        console.print("no changes")
        return
    emit("\n".join(lines), None)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    runtime_app.add_typer(profile_app, name="profile")
    app.add_typer(runtime_app, name="runtime")
