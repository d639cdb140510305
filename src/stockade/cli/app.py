"""The ``stockade`` command's entry point and its registry of commands.

This module stays light, because the console script imports it before anything runs:
``stockade --version`` (or ``-V``) answers before Typer, Click or Rich is imported, and the Typer
app (``stockade.cli.root``, built on first use of ``app``) imports a command's module only when
that command runs or shows its own help. ``stockade --help`` lists every command from the table
below without importing any command module.

Each command module has a ``register(app)`` function that adds its commands to a Typer app. A new
command is one row of ``COMMANDS``: its name, the modules whose ``register`` adds it (in order) and
its one-line help, the first sentence of the command's own help (tests/cli/test_startup.py checks
that the rows and the modules agree).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from stockade import __version__

if TYPE_CHECKING:
    import typer

    app: typer.Typer

# name -> (modules under stockade.cli whose register() adds it, one-line help), in the order
# `stockade --help` lists them.
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "up": (
        ("up",),
        "Bring up the live platform on this machine: the controller and its web console, the "
        "lab's pods with the firewall and the network sensor reporting to it, the sample image "
        "scanned, the CIS benchmarks run, and lab traffic (card numbers in clear and over TLS, "
        "a blocked connection).",
    ),
    "demo": (
        ("demo",),
        "Run the whole product on embedded defaults: image, vulnerabilities, CIS, admission, "
        "network, firewall, and the compliance report built from all of it.",
    ),
    "sensor": (
        ("sensor",),
        "Show connections (client -> server, protocol, encryption, DLP hits) and store events.",
    ),
    "images": (
        ("scan",),
        "List scanned images with their vulnerability counts by severity (latest scan).",
    ),
    "sbom": (("sbom",), "List the packages in an image or root filesystem (an SBOM)."),
    "enforcer": (
        ("firewall",),
        "Enforce the policy on the node: kernel rules, first-bytes verdicts, events; rules "
        "removed on exit.",
    ),
    "quarantine": (
        ("firewall",),
        "Cut all of a workload's traffic (it keeps running); --lift restores it.",
    ),
    "capture": (
        ("capture",),
        "Capture one workload's packets (or mask an existing capture) into a pcap with card "
        "numbers, SSNs and other DLP finds masked inside the packets before they are written; "
        "prints each packet and what was masked.",
    ),
    "db": (("db_cmd",), "The project database: migrations, advisory data, event retention."),
    "bench": (
        ("bench", "bench_nodes", "bench_workloads"),
        "Audit nodes, Docker hosts and workloads against the CIS Benchmarks and the Pod Security "
        "Standards.",
    ),
    "lab": (("lab",), "A lab of pods (network namespaces) with real services and traffic."),
    "dlp": (("dlp",), "Data loss prevention sensors and protocol detection."),
    "scan": (
        ("scan",),
        "Scan images, filesystems, processes and SBOMs for vulnerabilities, with a CI gate.",
    ),
    "sample": (("sample",), "The sample image built from real Debian, PyPI and npm packages."),
    "report": (("report",), "Reports from the stored results."),
    "admission": (
        ("admission",),
        "Kubernetes admission control: keep vulnerable and risky workloads out.",
    ),
    "policy": (("firewall",), "Firewall policy as code: groups, rules, modes, data rules."),
    "rules": (("rules",), "Response rules: what the controller does when an event arrives."),
    "notify": (
        ("notify",),
        "Notification targets (webhook, Slack, Teams, syslog, email, Alertmanager).",
    ),
    "controller": (
        ("controller",),
        "The controller: HTTPS API over the store that agents report to (see docs/controller.md).",
    ),
    "agent": (
        ("agent", "agent_run"),
        "The node agent (`agent run`, one per node) and the spool of events for the controller.",
    ),
    "deploy": (("deploy",), "Deploy Stockade into a Kubernetes cluster (see docs/deploy.md)."),
    "runtime": (("runtime",), "Runtime protection: process events, profiles, zero-drift."),
}

VERSION_FLAGS = ("--version", "-V")


def __getattr__(name: str) -> Any:
    """``app``: the Typer app, built on first use (tests add throwaway commands to it)."""
    if name == "app":
        from stockade.cli.root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: turns StockadeError into a one-line message and its exit code.

    Click handles usage errors itself (exit 2); anything else that escapes is a bug and keeps its
    traceback. Error messages and every log record pass the masking gate (``stockade.model.redact``):
    they quote inputs, and inputs may hold card numbers. ``--version`` alone prints a constant
    before any of that is imported.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 1 and args[0] in VERSION_FLAGS:
        try:
            sys.stdout.write(f"stockade {__version__}\n")
            sys.stdout.flush()
        except BrokenPipeError:
            pass
        return

    from stockade.cli.streams import guard_standard_streams
    from stockade.model.errors import StockadeError
    from stockade.model.redact import install_log_redaction

    install_log_redaction()
    guard_standard_streams()
    try:
        if args[:2] == ["scan", "image"]:
            # The common invocations run without Typer (see stockade.cli.scan_fast).
            from stockade.cli.scan_fast import try_scan_image

            code = try_scan_image(args[2:])
            if code is not None:
                sys.exit(code)
        elif args[:1] == ["sensor"] and "--pcap" in "".join(args):
            # reading a capture file runs without Typer's parsing (see stockade.cli.sensor_fast)
            from stockade.cli.sensor_fast import try_sensor_pcap

            code = try_sensor_pcap(args[1:])
            if code is not None:
                sys.exit(code)
        from stockade.cli.root import app

        app(args=argv)
    except StockadeError as exc:
        from stockade.cli.common import print_error

        print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
