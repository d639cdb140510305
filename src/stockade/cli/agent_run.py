"""``stockade agent run``: the node agent, one process per node (what the DaemonSet runs).

It follows the node's pods from the Kubernetes API (``--identities``, node scope), finds each
pod's host-side interface, and for them runs the sensor, the node CIS benchmark (again when a
watched configuration file or process command line changes, and on a schedule) and scans of the
running containers' root filesystems, reporting everything to the controller with the node's name
through one reporter and its spool. The work itself is the existing commands' (``sensor``,
``bench k8s``, ``scan pid``) as library calls; :mod:`stockade.nodeagent` keeps them going.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from stockade.cli.agent import (
    AgentNameOption,
    AgentOptions,
    ControllerCaOption,
    ControllerOption,
    TokenOption,
    reporting,
)
from stockade.cli.common import DbOption, err_console, open_db
from stockade.model.duration import parse_duration
from stockade.model.errors import UsageError

CAPABILITIES = ("network.sensor", "dlp", "cis", "scan", "agent.node")


def _say(line: str) -> None:
    err_console.print(line, markup=False, highlight=False, soft_wrap=True)


def _seconds(text: str, option: str, low: float, high: float) -> float:
    value = parse_duration(text, allow_zero=False).total_seconds()
    if not low <= value <= high:
        raise UsageError(f"{option} must be between {low:g}s and {high:g}s")
    return value


def agent_run(
    node: Annotated[
        str,
        typer.Option(
            "--node",
            envvar="NODE_NAME",
            help="This node's name (spec.nodeName; the DaemonSet passes it from the downward API).",
        ),
    ],
    identities: Annotated[
        str,
        typer.Option(
            "--identities",
            help="Where pods are known from: `kubernetes` (the pod's service account, else "
            "~/.kube/config) or `kubernetes:KUBECONFIG`; the node's pods in their own watch.",
        ),
    ] = "kubernetes",
    node_netns: Annotated[
        str | None,
        typer.Option(
            "--node-netns",
            help="Named network namespace holding the pods' host-side interfaces (default: this "
            "process's own, the host's in a hostNetwork pod; the lab's node namespace).",
        ),
    ] = None,
    host_root: Annotated[
        Path,
        typer.Option(
            "--host-root",
            help="The node's filesystem for the CIS benchmark and the watched files (/host in "
            "the DaemonSet); processes are read from /proc (hostPID).",
        ),
    ] = Path("/"),
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="Node role for the benchmark instead of detection."),
    ] = None,
    watch_file: Annotated[
        list[str] | None,
        typer.Option(
            "--watch-file",
            help="Also watch this file or glob (repeatable); kubelet config, kubeconfig, static "
            "pod manifests and RKE2/K3s configs are watched by default.",
        ),
    ] = None,
    watch_process: Annotated[
        list[str] | None,
        typer.Option(
            "--watch-process",
            help="Also watch this process's command line (repeatable); kubelet and the control "
            "plane's are watched by default.",
        ),
    ] = None,
    watch_every: Annotated[
        str,
        typer.Option("--watch-every", help="Look for changes this often (1s to 5m)."),
    ] = "10s",
    bench_every: Annotated[
        str,
        typer.Option("--bench-every", help="Run the CIS benchmark this often anyway (1m to 30d)."),
    ] = "6h",
    scan_workers: Annotated[
        int,
        typer.Option("--scan-workers", min=1, max=8, help="Container scans run at once."),
    ] = 2,
    sensor: Annotated[
        bool, typer.Option("--sensor/--no-sensor", help="Capture on the pods' interfaces.")
    ] = True,
    bench: Annotated[
        bool, typer.Option("--bench/--no-bench", help="Run the node CIS benchmark.")
    ] = True,
    scan: Annotated[
        bool, typer.Option("--scan/--no-scan", help="Scan running containers' filesystems.")
    ] = True,
    enforce: Annotated[
        bool,
        typer.Option(
            "--enforce/--no-enforce",
            help="Run the firewall enforcer for the node (`stockade enforcer --identities ... "
            "--controller ...`, supervised): the controller's policy and quarantines, followed "
            "as pods come and go. Needs --controller.",
        ),
    ] = False,
    network_policy: Annotated[
        bool,
        typer.Option(
            "--quarantine-network-policy",
            help="With --enforce: a quarantine also writes a labelled deny-all NetworkPolicy "
            "for the pod through the Kubernetes API, deleted when it is lifted (off by default; "
            "needs networkpolicies create/delete/get/list).",
        ),
    ] = False,
    heartbeat: Annotated[
        str, typer.Option("--heartbeat", help="Longest quiet time at the controller (1s to 5m).")
    ] = "30s",
    max_db_age: Annotated[
        str, typer.Option("--max-db-age", help="Refuse advisory data older than this.")
    ] = "7d",
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Run the node agent: sensor, CIS benchmark and container scans for this node's pods.

    Everything is reported to the controller with the node's name; SIGTERM or Ctrl-C stops it.
    See docs/agent.md.

    Exit codes: 0 stopped, 2 usage or configuration error, 3 the Kubernetes API refusing or not
    answering (or the node unreadable) at start."""
    import os

    from stockade.identity.sources import is_kubernetes, opened
    from stockade.nodeagent.changes import DEFAULT_FILES, DEFAULT_PROCESSES, Watched
    from stockade.nodeagent.containers import RuntimeState
    from stockade.nodeagent.runner import Jobs, NodeAgent, Settings

    if not is_kubernetes(identities):
        raise UsageError("--identities: the agent follows the Kubernetes API (kubernetes[:FILE])")
    if duration is not None and duration <= 0:
        raise UsageError("--duration must be positive")
    if enforce and not controller:
        raise UsageError(
            "--enforce follows the controller's policy and quarantines: give --controller"
        )
    if network_policy and not enforce:
        raise UsageError("--quarantine-network-policy is part of --enforce: give both")
    if (sensor or scan or enforce) and os.geteuid() != 0:
        raise UsageError(
            "the agent needs root for capture and container scans (--no-sensor --no-scan)"
        )
    watch = Watched(
        files=DEFAULT_FILES + tuple(watch_file or ()),
        processes=DEFAULT_PROCESSES + tuple(watch_process or ()),
        root=host_root,
    )
    settings = Settings(
        node=node,
        node_netns=node_netns,
        watch=watch,
        watch_every=_seconds(watch_every, "--watch-every", 1, 300),
        scan_workers=scan_workers,
    )
    bench_seconds = _seconds(bench_every, "--bench-every", 60, 30 * 86400)
    beat = _seconds(heartbeat, "--heartbeat", 1, 300)
    if not host_root.is_dir():
        raise UsageError(f"--host-root {host_root}: not a folder")
    store = open_db(db)
    options = AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name)
    early_stop = threading.Event()
    _on_signals(early_stop.set)  # a stop during the set-up below ends the agent once it runs
    enforcer = None
    if enforce:
        # first: the firewall is what protects the node, and its start is the slowest part; it
        # starts while the agent sets itself up and runs its first benchmark and scans, instead
        # of after the set-up (8 s of the 17 s it took to enforce in the lab test at load 2.7)
        enforcer = _enforcer(options, identities, node, node_netns, db, network_policy)
        enforcer.start()
    try:
        with (
            reporting(options, CAPABILITIES, node=node, heartbeat=beat) as reporter,
            opened(identities, node=node) as directory,
        ):
            if reporter is None:
                _say("agent: no --controller: results stay in the local store")
            wiring = _Wiring(store, options, reporter, node, node_netns, directory, max_db_age)
            jobs = Jobs(
                capture=wiring.capture if sensor else None,
                bench_runs=wiring.bench(host_root, role, bench_seconds) if bench else None,
                on_bench=wiring.on_bench,
                scan=wiring.scan if scan else None,
                containers=RuntimeState(host_root).containers if scan else None,
                notice=_say,
            )
            agent = NodeAgent(directory, settings, jobs)
            _on_signals(agent.stop)
            if early_stop.is_set():
                agent.stop()
            _say(f"agent: node {node}, {len(agent.local_pods())} pods known; SIGTERM stops")
            agent.run(duration)
    finally:
        if enforcer is not None:
            enforcer.stop()
            _release_host_netns(node_netns)
    store.close()
    _say(f"agent stopped: {agent.bench_runs} CIS runs, {agent.scans_started} container scans")


HOST_NETNS = "stockade-host"


def _enforcer(
    options: AgentOptions,
    identities: str,
    node: str,
    node_netns: str | None,
    db: str | None,
    network_policy: bool = False,
) -> Any:
    """``stockade enforcer`` for the node's namespace as a supervised child (its own spool, named
    ``<agent>-enforcer``; the token passed in its environment, never on its command line)."""
    import os
    import sys

    from stockade.cli.agent import agent_info
    from stockade.network.netns import run
    from stockade.nodeagent.supervise import Supervised

    if node_netns is None:
        # nft and iptables run through `ip netns exec`: give the host's namespace a name
        run(["ip", "netns", "attach", HOST_NETNS, str(os.getpid())])
    # the name the agent reports under (--controller is given with --enforce)
    name = agent_info(options.name, CAPABILITIES, node).name + "-enforcer"
    argv = [
        *(sys.executable, "-m", "stockade", "enforcer", "--identities", identities),
        *("--node", node, "--netns", node_netns or HOST_NETNS, "--agent-name", name),
        *(("--db", db) if db else ()),
        *(("--quarantine-network-policy",) if network_policy else ()),
        *("--controller", str(options.controller)),
        *(("--controller-ca", str(options.ca)) if options.ca else ()),
    ]
    env = {**os.environ, "STOCKADE_CONTROLLER_TOKEN": str(options.token)}
    return Supervised("firewall enforcer", argv, env=env, notice=_say)


def _release_host_netns(node_netns: str | None) -> None:
    if node_netns is None:
        from stockade.network.netns import run

        run(["ip", "netns", "delete", HOST_NETNS], check=False)  # the name only


def _on_signals(stop: Any) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


class _Wiring:
    """The agent's jobs as the existing commands do them, reporting through one reporter."""

    def __init__(
        self,
        store: Any,
        options: AgentOptions,
        reporter: Any,
        node: str,
        node_netns: str | None,
        directory: Any,
        max_db_age: str,
    ) -> None:
        from stockade.cli.scan import _options

        self.store = store
        self.options = options
        self.reporter = reporter
        self.node = node
        self.node_netns = node_netns
        self.directory = directory
        self.scan_options = _options(
            fail_on=None,
            ignore_unfixed=False,
            ignore_file=None,
            vex=None,
            max_db_age=max_db_age,
            allow_stale_db=False,
            allow_unchecked=True,
            fmt="json",
        )

    def _events(self, events: list[Any]) -> None:
        if self.reporter is not None:
            self.reporter.add_all(events)

    # sensor: `stockade sensor --iface ... --identities kubernetes --node NODE`
    def capture(self, interfaces: list[str], stop: Any) -> None:
        from stockade.network.analysis import Inspectors
        from stockade.network.flows import FlowConfig
        from stockade.network.recorder import Recorder
        from stockade.network.sensor import run_live

        recorder = Recorder(
            self.store,
            capture=f"node {self.node}: {', '.join(interfaces)}",
            on_events=self._events,
        )
        try:
            run_live(
                interfaces,
                namespace=self.node_netns,
                inspectors=Inspectors.default(),
                identities=self.directory,
                config=FlowConfig(),
                stop=stop,
                on_record=recorder.add,
                keep=False,
            )
        finally:
            recorder.finish()

    # benchmark: `stockade bench k8s --root HOST_ROOT --processes /proc --every ...`
    def bench(self, host_root: Path, role: list[str] | None, every: float) -> Any:
        from stockade.cli.bench_nodes import _roles
        from stockade.compliance.cis import loader
        from stockade.compliance.cis.node import open_node
        from stockade.compliance.cis.schedule import repeated_runs
        from stockade.compliance.cis.versions import choose

        root = None if host_root == Path("/") else host_root
        processes = Path("/proc")
        version, _why = choose("kubernetes", open_node(root, processes))
        benchmark = loader.builtin("kubernetes", version)
        roles = _roles(role) if role else None

        def runs(sleep: Any) -> Any:
            return repeated_runs(
                benchmark,
                root=root,
                processes=processes,
                roles=roles,
                store=self.store,
                every=every,
                sleep=sleep,
            )

        return runs

    def on_bench(self, run: Any, why: list[str]) -> None:
        from stockade.cli.agent import cis_event, cis_results, upload_results

        result, run_id = run
        result = replace(result, node_name=self.node)
        counts = ", ".join(f"{n} {s}" for s, n in result.counts().items() if n)
        _say(f"agent: CIS run ({'; '.join(why[:3])}): {counts}")
        self._events([cis_event(result, run_id)])
        upload_results(self.options, "/api/v1/cis/runs", cis_results(result, run_id), "CIS run")

    # scans: `stockade scan dir:ROOTFS` (or `pid:PID`), filed under the runtime's image digest
    def scan(self, target: Any, workload: Any) -> None:
        from stockade.cli.agent import scan_event, scan_results, upload_results
        from stockade.scanning.pipeline import real_backend, scan_image

        report = scan_image(self.store, target.source, self.scan_options, real_backend())
        payload = scan_results(report)
        event = scan_event(report)
        image = target.image or ""
        name, tag = image.partition("@")[0], None
        if ":" in name.rpartition("/")[2]:
            name, _, tag = name.rpartition(":")
        what = f"container {target.container} of " if target.container else ""
        payload["image"] = {
            "reference": (image or f"{what}pod {target.pod} ({target.source})")[:1024],
            "name": name or None,
            "tag": tag,
            "digest": target.digest,
        }
        data = {**event.data, "pod": target.pod, "node": self.node}
        if target.container:
            data.update(container=target.container, runtime=target.runtime)
        event = replace(
            event,
            message=f"{event.message} ({what}pod {target.pod} on {self.node})",
            data=data,
        )
        self._events([event])
        upload_results(self.options, "/api/v1/scans", payload, f"container scan of {target.pod}")


def register(app: typer.Typer) -> None:
    from stockade.cli.agent import agent_app

    agent_app.command("run")(agent_run)
