"""``stockade sensor``: see every connection between workloads, its protocol, whether it is
encrypted, and sensitive data crossing it in clear (live capture or pcap/pcapng files).

The command's options (Typer); its body is :func:`stockade.cli.sensor_run.run_sensor`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stockade.cli.agent import (
    AgentNameOption,
    ControllerCaOption,
    ControllerOption,
    TokenOption,
)
from stockade.cli.common import DbOption, StoreOption
from stockade.cli.sensor_run import DEFAULT_STATE, run_sensor


def sensor_cmd(
    iface: Annotated[
        list[str] | None, typer.Option("--iface", "-i", help="Capture on this interface (repeat).")
    ] = None,
    lab: Annotated[
        bool, typer.Option("--lab", help="Capture on the lab pods' host-side veths.")
    ] = False,
    pcap: Annotated[
        Path | None, typer.Option("--pcap", help="Read a pcap or pcapng file instead.")
    ] = None,
    netns: Annotated[
        str | None, typer.Option("--netns", help="Network namespace of the interfaces.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop live capture after S seconds.")
    ] = None,
    count: Annotated[int | None, typer.Option("--count", help="Stop after N frames.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=0,
            help="Live capture processes (one PACKET_FANOUT group, split by flow; 0: the cores "
            "this process may use). --pcap reads in one process.",
        ),
    ] = 1,
    state: Annotated[
        Path, typer.Option("--state", help="Lab inventory (workload identity).")
    ] = DEFAULT_STATE,
    identities: Annotated[
        str | None,
        typer.Option(
            "--identities",
            help="Workload identities: `kubernetes` (the API of the cluster this runs in, else "
            "~/.kube/config), `kubernetes:KUBECONFIG`, or a file: Stockade's workload list or "
            "`kubectl get pods -A -o json` (for captures taken in a cluster).",
        ),
    ] = None,
    node: Annotated[
        str | None,
        typer.Option(
            "--node",
            help="With --identities kubernetes: this node's pods in their own watch (the node "
            "agent's scope), the other nodes' pods as capped peers.",
        ),
    ] = None,
    stream_depth: Annotated[
        int, typer.Option("--stream-depth", help="Bytes inspected per direction.")
    ] = 65536,
    fmt: Annotated[
        str, typer.Option("--format", help="table or json (JSON Lines, one connection each).")
    ] = "table",
    fail_on: Annotated[
        str | None, typer.Option("--fail-on", help="Exit 1 if an event at or above this severity.")
    ] = None,
    tls_policy: Annotated[
        Path | None,
        typer.Option(
            "--tls-policy",
            help="TLS policy file (tls: minVersion, alert: facts that raise events); see docs/network.md.",
        ),
    ] = None,
    tls_min_version: Annotated[
        str | None,
        typer.Option(
            "--tls-min-version",
            help="Alert on TLS below this version (default TLS1.2; overrides the policy file).",
        ),
    ] = None,
    store: StoreOption = True,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Show connections (client -> server, protocol, encryption, DLP hits) and store events."""
    code = run_sensor(
        iface=iface,
        lab=lab,
        pcap=pcap,
        netns=netns,
        duration=duration,
        count=count,
        workers=workers,
        state=state,
        identities=identities,
        node=node,
        stream_depth=stream_depth,
        fmt=fmt,
        fail_on=fail_on,
        tls_policy=tls_policy,
        tls_min_version=tls_min_version,
        store=store,
        db=db,
        controller=controller,
        token=token,
        controller_ca=controller_ca,
        agent_name=agent_name,
    )
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("sensor")(sensor_cmd)
