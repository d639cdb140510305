"""``stockade policy``, ``stockade enforcer``, ``stockade quarantine``: the container firewall."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from stockade.cli.agent import (
    AgentNameOption,
    ControllerCaOption,
    ControllerOption,
    TokenOption,
)
from stockade.cli.common import DbOption, OutputOption, console, emit, err_console, open_db

policy_app = typer.Typer(
    help="Firewall policy as code: groups, rules, modes, data rules.", no_args_is_help=True
)

LabState = Annotated[
    Path, typer.Option("--lab-state", help="Workload inventory (the lab's state file).")
]
DEFAULT_STATE = Path("/run/stockade/lab.json")


def _directory(state: Path):
    from stockade.firewall.policy.endpoints import Directory
    from stockade.lab.inventory import load

    inv = load(state)
    return inv, Directory.from_identities(inv.directory())


def _stored(db: str | None):
    from stockade.firewall.enforce.service import stored_policy

    return stored_policy(open_db(db))


@policy_app.command("apply")
def apply(
    files: Annotated[list[Path], typer.Argument(help="Policy YAML files or folders.")],
    db: DbOption = None,
) -> None:
    """Validate the files as one policy and make it the running policy (all or nothing)."""
    from stockade.firewall.policy.files import dump, load_files
    from stockade.firewall.policy.store import apply_policy

    policy = load_files(files)
    version = apply_policy(open_db(db), policy, dump(policy))
    modes = {g.name: g.mode for g in policy.spec.groups}
    console.print(
        f"applied policy {policy.metadata.name!r} version {version}: {len(policy.spec.groups)} groups, "
        f"{len(policy.spec.rules)} rules; modes {modes}"
    )


@policy_app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="yaml or networkpolicy.")] = "yaml",
    learned: Annotated[
        bool, typer.Option("--learned", help="Add the rules learned in Discover mode.")
    ] = False,
    mode: Annotated[
        str, typer.Option("--mode", help="With --learned: the mode every group gets.")
    ] = "protect",
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """Print the running policy (optionally with learned rules) as YAML or NetworkPolicies."""
    import yaml

    from stockade.firewall.policy.files import dump
    from stockade.firewall.policy.learn import policy_from_learned
    from stockade.firewall.policy.netpol import export_policies
    from stockade.firewall.policy.store import learned as learned_rows
    from stockade.model.errors import UsageError

    if fmt not in ("yaml", "networkpolicy"):
        raise UsageError("--format is yaml or networkpolicy")
    if mode not in ("discover", "monitor", "protect"):
        raise UsageError("--mode is discover, monitor or protect")
    store = open_db(db)
    if learned:
        from stockade.firewall.policy.store import load_policy

        base = _stored(db)[0] if load_policy(store) else None
        policy = policy_from_learned(learned_rows(store), base=base, mode=mode)
    else:
        policy = _stored(db)[0]
    if fmt == "yaml":
        emit(dump(policy), output)
        return
    docs, warnings = export_policies(policy)
    for w in warnings:
        err_console.print(f"note: {w}", markup=False)
    emit(yaml.safe_dump_all(docs, sort_keys=False), output)


@policy_app.command("diff")
def diff(
    files: Annotated[
        list[Path], typer.Argument(help="Policy files to compare with the running one.")
    ],
    db: DbOption = None,
) -> None:
    """Show what applying the files would change (exit 1 when something would)."""
    from stockade.firewall.policy.files import diff_lines, dump, load_files
    from stockade.firewall.policy.store import load_policy

    new = dump(load_files(files))
    row = load_policy(open_db(db))
    lines = diff_lines(row[0] if row else "", new)
    if not lines:
        console.print("no changes")
        return
    emit("\n".join(lines), None)
    raise typer.Exit(1)


def _explained_protocols(l4: str, proto: str | None) -> tuple[str, str | None]:
    """``--l4`` and ``--proto`` as the rules spell them (``TCP`` is tcp, ``http`` is
    proto.http); anything else is refused, never judged as a protocol no rule names."""
    from stockade.model import UsageError
    from stockade.network.protocols import SLUGS

    l4 = l4.lower()
    if l4 not in ("tcp", "udp", "icmp"):
        raise UsageError(f"--l4 {l4!r}: expected tcp, udp or icmp")
    if proto is None:
        return l4, None
    slug = proto.lower()
    slug = slug if slug.startswith("proto.") else f"proto.{slug}"
    if slug not in SLUGS:
        raise UsageError(
            f"--proto {proto!r}: unknown application protocol (known: {', '.join(SLUGS)})"
        )
    return l4, slug


@policy_app.command("explain")
def explain(
    src: Annotated[str, typer.Argument(help="Source: ns/pod, pod or address.")],
    dst: Annotated[str, typer.Argument(help="Destination: ns/pod, pod or address.")],
    port: Annotated[int, typer.Argument(min=1, max=65535)],
    proto: Annotated[
        str | None, typer.Option("--proto", help="Application protocol, e.g. proto.http.")
    ] = None,
    l4: Annotated[str, typer.Option("--l4", help="tcp, udp or icmp.")] = "tcp",
    policy: Annotated[
        list[Path] | None, typer.Option("--policy", help="Explain with these files instead.")
    ] = None,
    lab_state: LabState = DEFAULT_STATE,
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    db: DbOption = None,
) -> None:
    """Name the rule that allows or denies a connection, and why."""
    from stockade.firewall.policy.endpoints import resolve
    from stockade.firewall.policy.engine import data_needs, evaluate
    from stockade.firewall.policy.files import load_files

    l4, proto = _explained_protocols(l4, proto)
    pol = load_files(policy) if policy else _stored(db)[0]
    inv, directory = _directory(lab_state)
    a, b = directory.find(src), directory.find(dst)
    resolved = resolve([n for g in pol.spec.groups for n in g.selector.dns], netns=inv.node_netns)
    v = evaluate(pol, a, b, port, l4=l4, app=proto, resolved=resolved)
    needs = data_needs(pol, a, b, resolved)
    if fmt == "json":
        emit(
            json.dumps(
                {
                    "action": v.action,
                    "rule": v.rule,
                    "mode": v.mode,
                    "reason": v.reason,
                    "src": a.display(),
                    "dst": b.display(),
                    "src_groups": v.src_groups,
                    "dst_groups": v.dst_groups,
                    "dlp_block": needs.block,
                    "dlp_alert": needs.alert,
                    "require_tls": needs.require_tls,
                    "require_tls_action": needs.tls_action if needs.require_tls else None,
                    "require_tls_groups": needs.tls_groups,
                    "waf_block": needs.waf_block,
                    "waf_alert": needs.waf_alert,
                },
                indent=2,
            ),
            None,
        )
        return
    verb = {
        "allow": "ALLOW",
        "deny": "DENY",
        "violation": "ALLOW (violation recorded)",
        "learn": "ALLOW (learned)",
        "inspect": "DEPENDS on the application protocol",
    }[v.action]
    console.print(
        f"{a.display()} -> {b.display()} {l4}/{port}{' ' + proto if proto else ''}: [bold]{verb}[/]"
    )
    console.print(f"  {v.reason}", markup=False)
    console.print(
        f"  groups: source {list(v.src_groups) or '-'}, destination {list(v.dst_groups) or '-'}; "
        f"mode {v.mode or 'unmanaged'}",
        markup=False,
    )
    if needs.any:
        console.print(
            f"  data rules: block {list(needs.block)}, alert {list(needs.alert)}, "
            f"TLS required: "
            + (
                f"{needs.tls_action} (groups {', '.join(needs.tls_groups)})"
                if needs.require_tls
                else "no"
            ),
            markup=False,
        )
        if needs.waf:
            console.print(
                f"  virtual patches (WAF): block {list(needs.waf_block)}, "
                f"alert {list(needs.waf_alert)}",
                markup=False,
            )


@policy_app.command("import-netpol")
def import_netpol(
    files: Annotated[list[Path], typer.Argument(help="NetworkPolicy YAML/JSON files.")],
    output: OutputOption = None,
) -> None:
    """Convert Kubernetes NetworkPolicies to a Stockade policy (L3/L4)."""
    from stockade.config import parse_yaml_all, read_text
    from stockade.firewall.policy.files import dump
    from stockade.firewall.policy.netpol import import_policies
    from stockade.k8s.objects import expand_list

    docs = []
    for f in files:
        for d, _node in parse_yaml_all(read_text(f), name=str(f)):
            if isinstance(d, dict):
                docs.extend(expand_list(d))
    policy, warnings = import_policies(docs)
    for w in warnings:
        err_console.print(f"note: {w}", markup=False)
    emit(dump(policy), output)


def enforcer(
    policy: Annotated[
        list[Path] | None, typer.Option("--policy", help="Policy files (default: the applied one).")
    ] = None,
    lab_state: LabState = DEFAULT_STATE,
    fail: Annotated[
        str,
        typer.Option(
            "--fail", help="open: traffic flows when the enforcer is down; closed: it stops."
        ),
    ] = "open",
    queue: Annotated[int, typer.Option("--queue", min=0, max=65535, help="NFQUEUE number.")] = 0,
    depth: Annotated[
        int, typer.Option("--depth", min=1024, help="Bytes of each connection inspected.")
    ] = 65536,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
    remove: Annotated[
        bool,
        typer.Option("--remove", help="Only remove rules left by an enforcer that was killed."),
    ] = False,
    identities: Annotated[
        str | None,
        typer.Option(
            "--identities",
            help="Workloads from the Kubernetes API instead of the lab: `kubernetes` or "
            "`kubernetes:KUBECONFIG`, followed as pods come and go (needs --netns).",
        ),
    ] = None,
    node: Annotated[
        str | None,
        typer.Option("--node", help="With --identities: this node's name (the agent's scope)."),
    ] = None,
    netns: Annotated[
        str | None,
        typer.Option(
            "--netns",
            help="With --identities: the named network namespace the node's rules go into.",
        ),
    ] = None,
    network_policy: Annotated[
        bool,
        typer.Option(
            "--quarantine-network-policy",
            help="With --identities and --controller: also write a labelled deny-all "
            "NetworkPolicy for each quarantined pod through the Kubernetes API (the cluster's CNI "
            "cuts it too) and delete it when the quarantine is lifted (docs/agent.md).",
        ),
    ] = False,
    waf_sensors: Annotated[
        list[Path] | None,
        typer.Option(
            "--waf-sensors",
            help="WAF sensor files added to the built-in pack (docs/waf.md); groups' waf rules name them.",
        ),
    ] = None,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Enforce the policy on the node: kernel rules, first-bytes verdicts, events; rules removed on exit.

    Once a connection's verdict is final but for DLP, the segments a tc classifier finds \
clean pass in the kernel and a copy goes to the sensors (docs/firewall.md, "The kernel's first \
look"; STOCKADE_ENFORCER_CLEAN=0 turns it off; STOCKADE_ENFORCER_COPIES_WAIT_US, default 2000, bounds how long a copy may wait to be read while copies keep coming; STOCKADE_ENFORCER_BODY_SPIN_US, default 50, how long the loop waits awake for a request body written apart from its head)."""
    from stockade.model.errors import UsageError

    if (identities is None) != (netns is None) or (node is not None and identities is None):
        raise UsageError("--identities and --netns go together (and --node with them)")
    if network_policy and (identities is None or controller is None):
        raise UsageError(
            "--quarantine-network-policy follows the controller's quarantines in a cluster: "
            "give --identities and --controller"
        )
    if remove:
        from stockade.firewall.enforce import nft

        namespace = netns if netns is not None else _directory(lab_state)[0].node_netns
        nft.remove(namespace)
        console.print(f"firewall rules removed from {namespace}")
        return
    if fail not in ("open", "closed"):
        raise UsageError("--fail is open or closed")
    import contextlib

    from stockade.cli.agent import AgentOptions, reporting

    live = None
    policies = None
    with contextlib.ExitStack() as stack:
        waf = _waf_engine(waf_sensors or [])  # a bad sensor file stops here, before any rule
        if identities is not None:
            from stockade.firewall.policy.endpoints import Directory
            from stockade.identity.sources import client_for, is_kubernetes, opened

            if not is_kubernetes(identities):
                raise UsageError("--identities: kubernetes or kubernetes:KUBECONFIG")
            assert netns is not None
            live = stack.enter_context(opened(identities, node=node))
            if network_policy:
                policies = client_for(identities)
            namespace, directory = netns, Directory.from_identities(live)
        else:
            inv, directory = _directory(lab_state)
            namespace = inv.node_netns
        agent = AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name)
        reporter = stack.enter_context(reporting(agent, ("firewall", "dlp"), node=node))
        stats = _enforce(
            db,
            namespace,
            directory,
            policy,
            queue,
            depth,
            fail,
            duration,
            reporter,
            live,
            waf,
            policies,
        )
    console.print(f"enforcer stopped; rules removed. {stats}")


def _enforce(
    db: str | None,
    namespace: str,
    directory: Any,
    policy: list[Path] | None,
    queue: int,
    depth: int,
    fail: str,
    duration: float | None,
    reporter: Any,
    identities: Any = None,
    waf: Any = None,
    network_policies: Any = None,
) -> Any:
    from stockade.firewall.enforce.nft import Settings
    from stockade.firewall.enforce.service import Hooks, serve

    hooks = Hooks(
        events=reporter.add_all if reporter is not None else (lambda batch: None),
        ready=lambda pol: err_console.print(
            f"enforcing {len(pol.spec.rules)} rules in {namespace} "
            f"(queue {queue}, fail {fail}); Ctrl-C to stop"
        ),
        reloading=lambda version: err_console.print(f"policy version {version}: re-applying"),
    )
    return serve(
        open_db(db),
        namespace,
        directory,
        Settings(queue=queue, depth=depth, fail_open=fail == "open"),
        policy_files=policy,
        duration=duration,
        hooks=hooks,
        controller=reporter.link if reporter is not None else None,
        identities=identities,
        waf_engine=waf,
        network_policies=network_policies,
    )


def _waf_engine(files: list[Path]) -> Any:
    """The built-in WAF pack plus user sensor files (ids must differ), or None for the built-in
    pack alone (compiled when a group first asks for it)."""
    if not files:
        return None
    from stockade.config import repeated
    from stockade.model.errors import ConfigError
    from stockade.network.waf import WafEngine, builtin_sensors, load_sensor_file

    sensors = list(builtin_sensors())
    for f in files:
        sensors += load_sensor_file(f)
    dup = repeated(s.id for s in sensors)
    if dup:
        raise ConfigError(
            f"WAF sensor ids must be unique (built-in ones included): {', '.join(dup)}"
        )
    return WafEngine(sensors)


def quarantine(
    workload: Annotated[str, typer.Argument(help="ns/pod or pod.")],
    lift: Annotated[bool, typer.Option("--lift", help="Restore the workload's traffic.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the event).")] = "manual",
    lab_state: LabState = DEFAULT_STATE,
    db: DbOption = None,
) -> None:
    """Cut all of a workload's traffic (it keeps running); --lift restores it."""
    from stockade.firewall.enforce.actions import quarantine_workload

    inv, directory = _directory(lab_state)
    target = directory.find(workload)
    done = quarantine_workload(
        open_db(db), inv.node_netns, directory, target, lift=lift, reason=reason
    )
    console.print(
        ("lifted quarantine of " if lift else "quarantined ")
        + f"{target.display()} ({', '.join(done)})"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
    app.command("enforcer")(enforcer)
    app.command("quarantine")(quarantine)
