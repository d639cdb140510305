"""``stockade bench``: CIS benchmarks for Kubernetes nodes and Docker hosts, and workload checks."""

from __future__ import annotations

import typer

bench_app = typer.Typer(
    help="Audit nodes, Docker hosts and workloads against the CIS Benchmarks and the Pod Security "
    "Standards.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
