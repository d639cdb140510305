"""``stockade admission``: the validating webhook, its manifest, its policy and offline tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from stockade.cli.agent import (
    AgentNameOption,
    ControllerCaOption,
    ControllerOption,
    TokenOption,
)
from stockade.cli.common import (
    EXIT_FINDINGS,
    DbOption,
    OutputOption,
    console,
    emit,
    err_console,
    open_db,
    print_error,
)
from stockade.cli.scan import InsecureOpt, PasswordOpt, UserOpt

adm_app = typer.Typer(
    help="Kubernetes admission control: keep vulnerable and risky workloads out.",
    no_args_is_help=True,
)
policy_app = typer.Typer(
    help="The admission policy kept in the project database.", no_args_is_help=True
)
adm_app.add_typer(policy_app, name="policy")

DEFAULT_CERT_DIR = Path("/var/lib/stockade/admission")
CertDir = Annotated[
    Path, typer.Option("--cert-dir", help="Where the generated CA and serving certificate live.")
]
Service = Annotated[str, typer.Option("--service", help="Kubernetes Service name of the webhook.")]
Namespace = Annotated[str, typer.Option("--namespace", help="Namespace of the webhook Service.")]


def _policy(policy: Path | None, db: str | None):
    from stockade.admission.policy import DEFAULT_POLICY_YAML, load_policy, parse_policy

    if policy is not None:
        return load_policy(policy), str(policy)
    from stockade.admission.tables import load_policy_text

    store = open_db(db)
    try:
        text = load_policy_text(store)
    finally:
        store.close()  # nothing opened here may cross the fork of `serve --workers`
    if text is not None:
        return parse_policy(text, name="stored policy"), "stored policy 'default'"
    return parse_policy(DEFAULT_POLICY_YAML, name="built-in policy"), "built-in default policy"


@adm_app.command("serve")
def serve(
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Policy YAML (default: the stored one, else built-in)."),
    ] = None,
    vulns: Annotated[
        Path | None, typer.Option("--vulns", help="Image vulnerability facts file (YAML/JSON).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="HTTPS port.")] = 8443,
    cert: Annotated[
        Path | None, typer.Option(help="Serving certificate (PEM); with --key.")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="Serving key (PEM); with --cert.")] = None,
    cert_dir: CertDir = DEFAULT_CERT_DIR,
    service: Service = "stockade-admission",
    namespace: Namespace = "stockade",
    db: DbOption = None,
    header_timeout: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds to receive a request's headers (TLS handshake included)."
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to receive a request body after its headers.")
    ] = 10.0,
    max_header_bytes: Annotated[
        int, typer.Option(min=1024, help="Largest request line plus headers, in bytes.")
    ] = 32 * 1024,
    max_body_bytes: Annotated[
        int, typer.Option(min=1024, help="Largest request body, in bytes (413 beyond).")
    ] = 3 * 1024 * 1024,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections at once; further ones are closed.")
    ] = 256,
    http_parser: Annotated[
        str,
        typer.Option(
            "--http-parser",
            metavar="auto|httptools|h11",
            help="HTTP parser: httptools (compiled) or h11 (pure Python), both within the limits "
            "above; auto: httptools when installed.",
        ),
    ] = "auto",
    scan_workers: Annotated[int, typer.Option(min=1, help="On-demand scans that run at once.")] = 2,
    scan_queue: Annotated[
        int,
        typer.Option(min=0, help="On-demand scans that may wait; when full, lookups fail fast."),
    ] = 8,
    max_scans_per_review: Annotated[
        int,
        typer.Option(
            min=0, help="On-demand scans one review may start; later images are undecided."
        ),
    ] = 4,
    scan_timeout: Annotated[
        float,
        typer.Option(
            min=1.0, help="Seconds after which a running on-demand scan gives its slot back."
        ),
    ] = 60.0,
    scan_registry: Annotated[
        list[str] | None,
        typer.Option(
            "--scan-registry",
            metavar="HOST_GLOB",
            help="A registry host (glob, e.g. registry.internal:5000 or *.corp.example) that "
            "on-demand scans may reach (repeatable; default: any registry).",
        ),
    ] = None,
    insecure: InsecureOpt = False,
    username: UserOpt = None,
    password: PasswordOpt = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Processes serving the port (SO_REUSEPORT), each with its own decision cache "
            "warmed at start (default: the cores it may use, within its cgroup CPU limit).",
        ),
    ] = None,
    realtime_priority: Annotated[
        int,
        typer.Option(
            "--realtime-priority",
            min=0,
            max=99,
            help="Serve under the SCHED_RR real-time policy at this priority (1-99), so a "
            "review takes a core from normal processes at once instead of queueing behind them; "
            "needs CAP_SYS_NICE. 0 (the default): the normal policy. The event store process "
            "and on-demand scans stay normal.",
        ),
    ] = 0,
) -> None:
    """Serve AdmissionReview requests over HTTPS on POST /validate (GET /healthz, /readyz).

    Images never scanned are scanned on demand from their registry, with the same registry
    settings as `stockade scan image` (--insecure, --username/--password, docker config)."""
    from stockade.admission.certs import ensure_serving_cert
    from stockade.admission.limits import HTTP_PARSERS, Limits, best_http_parser
    from stockade.admission.server import AdmissionApp, EventWriter
    from stockade.admission.server import serve as run
    from stockade.admission.vulns import CachedVulnSource, FileVulnSource
    from stockade.admission.workers import default_workers, serve_workers
    from stockade.cli.agent import AgentOptions, reporting
    from stockade.model import Event
    from stockade.model.errors import StockadeError, UsageError
    from stockade.store.records import record_events
    from stockade.store.writer_process import EventStoreProcess
    from stockade.workers import use_realtime

    if (cert is None) != (key is None):
        raise UsageError("--cert and --key go together")
    if http_parser not in ("auto", *HTTP_PARSERS):
        raise UsageError(f"--http-parser is one of auto, {', '.join(HTTP_PARSERS)}")
    if http_parser == "httptools" and best_http_parser() != "httptools":
        raise UsageError("--http-parser httptools: httptools is not installed")
    parser = best_http_parser() if http_parser == "auto" else http_parser
    if realtime_priority:  # before any thread or fork: every worker and its threads inherit it
        use_realtime(realtime_priority)
    pol, origin = _policy(policy, db)
    open_db(db).close()  # created and migrated once, here: workers would race to migrate it
    file_source = FileVulnSource(vulns) if vulns else None  # read once, errors before any fork
    if cert is None or key is None:
        files = ensure_serving_cert(cert_dir, service=service, namespace=namespace)
        cert, key = files.cert, files.key
        err_console.print(
            f"CA bundle: {files.ca_cert} (stockade admission manifest --cert-dir {cert_dir})"
        )
    err_console.print(
        f"policy: {origin}, mode {pol.spec.mode}, {len(pol.spec.rules)} rules; "
        f"listening on https://{host}:{port}/validate"
    )
    limits = Limits(
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_header_bytes=max_header_bytes,
        max_body_bytes=max_body_bytes,
        max_connections=max_connections,
        http=parser,
    )
    agent = AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name)
    certfile, keyfile = str(cert), str(key)

    def worker(sock=None) -> None:
        # Everything with a connection, a thread or a cache is made here, in the worker process.
        store = open_db(db)
        if file_source is not None:
            source = CachedVulnSource(file_source)
        else:
            source = _store_source(
                store,
                workers=scan_workers,
                queue=scan_queue,
                max_scans_per_review=max_scans_per_review,
                scan_timeout=scan_timeout,
                registries=scan_registry or [],
                insecure=insecure,
                username=username,
                password=password,
            )
        source.warm()
        # Events are stored by a child process: the database costs this process no core time
        # and no interpreter lock while it serves (here only when the child is behind).
        stored_by = EventStoreProcess(db, overflow=lambda batch: record_events(store, batch))
        stored_by.start()
        with reporting(agent, ("admission",)) as reporter:

            def write(batch: list[Event]) -> int:
                if reporter is not None:
                    reporter.add_all(batch)
                return stored_by(batch)

            # The child is closed with the writer (uvicorn's lifespan shutdown): uvicorn ends the
            # process with the SIGTERM it caught right after, before any `finally` here runs.
            writer = EventWriter(write, closing=stored_by.close)
            app = AdmissionApp(pol, source, writer, limits=limits)
            fetcher = _follow_controller(app, reporter) if policy is None else None
            try:
                run(app, host=host, port=port, certfile=certfile, keyfile=keyfile, sock=sock)
            finally:
                if fetcher is not None:
                    fetcher.stop()
                stored_by.close()  # no-op after the writer's stop; else (a failed start) now

    count = workers if workers is not None else default_workers()
    if count == 1:
        worker()
        return

    def forked(sock) -> int:
        try:
            worker(sock)
        except StockadeError as exc:
            print_error(exc)
            return exc.exit_code
        return 0

    err_console.print(f"{count} worker processes")
    code = serve_workers(forked, workers=count, host=host, port=port)
    if code:
        raise typer.Exit(code)


def _follow_controller(app, reporter):
    """With --controller and no --policy file: the controller's admission policy, followed by
    version (a thread per webhook process); None without a controller."""
    if reporter is None:
        return None
    from stockade.admission.follow import AdmissionPolicyFollower
    from stockade.firewall.enforce.follow import ConfigFetcher

    def install(policy) -> None:
        app.replace_policy(policy)
        err_console.print(
            f"policy from the controller: mode {policy.spec.mode}, {len(policy.spec.rules)} rules",
            highlight=False,
            markup=False,
        )

    follower = AdmissionPolicyFollower(install, app.events.put, node=reporter.agent.name)
    fetcher = ConfigFetcher(reporter.link, deliver=follower.apply)
    fetcher.start()
    return fetcher


def _store_source(
    store,
    *,
    registries: list[str],
    insecure: bool,
    username: str | None,
    password: str | None,
    **bounds,
):
    """The scan store as a vulnerability source (scans never-seen images on demand, bounded)."""
    from stockade.admission.vulns import CachedVulnSource
    from stockade.scanning.admission_source import StoreVulnSource
    from stockade.scanning.pipeline import ImageOptions

    options = ImageOptions(insecure=insecure, username=username, password=password)
    return CachedVulnSource(
        StoreVulnSource(store, image_options=options, registries=registries, **bounds)
    )


@adm_app.command("certs")
def certs(
    cert_dir: CertDir = DEFAULT_CERT_DIR,
    service: Service = "stockade-admission",
    namespace: Namespace = "stockade",
) -> None:
    """Create (or reuse) the CA and serving certificate and print the CA bundle (PEM)."""
    from stockade.admission.certs import ensure_serving_cert

    files = ensure_serving_cert(cert_dir, service=service, namespace=namespace)
    emit(files.ca_pem().decode(), None)


@adm_app.command("manifest")
def manifest(
    cert_dir: CertDir = DEFAULT_CERT_DIR,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="CA PEM to embed instead of --cert-dir's.")
    ] = None,
    service: Service = "stockade-admission",
    namespace: Namespace = "stockade",
    failure_policy: Annotated[
        str | None,
        typer.Option(
            "--failure-policy",
            help="Ignore (fail open) or Fail (default: the policy's failurePolicy).",
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Policy YAML (default: the stored one, else built-in)."),
    ] = None,
    db: DbOption = None,
    timeout: Annotated[
        int, typer.Option("--timeout", min=1, max=30, help="timeoutSeconds (1-30).")
    ] = 5,
    output: OutputOption = None,
) -> None:
    """Print the ValidatingWebhookConfiguration (kubectl apply -f -)."""
    from stockade.admission.certs import ensure_serving_cert
    from stockade.admission.manifest import render, webhook_configuration
    from stockade.config import read_text
    from stockade.model.errors import UsageError

    if failure_policy is None:  # when Stockade is unreachable, the API server does what it would
        failure_policy = _policy(policy, db)[0].spec.failurePolicy.capitalize()
    if failure_policy not in ("Ignore", "Fail"):
        raise UsageError("--failure-policy is Ignore or Fail")
    if ca_bundle is not None:
        ca = read_text(ca_bundle).encode()
    else:
        ca = ensure_serving_cert(cert_dir, service=service, namespace=namespace).ca_pem()
    config = webhook_configuration(
        ca_pem=ca,
        service=service,
        namespace=namespace,
        failure_policy=failure_policy,
        timeout_seconds=timeout,
    )
    emit(render(config), output)


@policy_app.command("set")
def policy_set(file: Path, db: DbOption = None) -> None:
    """Validate a policy file and store it as the active policy."""
    from stockade.admission.policy import parse_policy
    from stockade.admission.tables import save_policy
    from stockade.config import read_text

    text = read_text(file)
    pol = parse_policy(text, name=str(file))
    save_policy(open_db(db), "default", text)
    console.print(
        f"stored policy {pol.metadata.name!r}: {len(pol.spec.rules)} rules, mode {pol.spec.mode}"
    )


@policy_app.command("show")
def policy_show(db: DbOption = None) -> None:
    """Print the active policy (stored, else the built-in default)."""
    from stockade.admission.policy import DEFAULT_POLICY_YAML
    from stockade.admission.tables import load_policy_text

    emit(load_policy_text(open_db(db)) or DEFAULT_POLICY_YAML, None)


@adm_app.command("test")
def test(
    directory: Annotated[
        Path, typer.Argument(help="A folder of suites (stockade-test.yaml) or one suite file.")
    ],
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Decide manifests offline and compare with the expected results (exit 1 on any mismatch)."""
    from rich.table import Table

    from stockade.admission.testing import run_tests
    from stockade.model.errors import UsageError

    if fmt not in ("table", "json"):
        raise UsageError("--format is table or json")
    if not directory.exists():
        raise UsageError(f"{directory} does not exist")
    results = run_tests(directory)
    failed = [r for r in results if not r.passed]
    if fmt == "json":
        emit(json.dumps([_as_dict(r) for r in results], indent=2), None)
    else:
        table = Table("result", "resource", "expected", "actual", "detail")
        for r in results:
            table.add_row(
                "[green]pass[/]" if r.passed else "[red]FAIL[/]",
                r.resource,
                r.expected,
                r.actual,
                r.detail,
            )
        console.print(table)
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(EXIT_FINDINGS)


def _as_dict(r):
    from dataclasses import asdict

    return asdict(r)


def register(app: typer.Typer) -> None:
    app.add_typer(adm_app, name="admission")
