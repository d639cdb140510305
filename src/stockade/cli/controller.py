"""``stockade controller``: the API server, and its tokens and users."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from stockade.cli.common import DbOption, console, err_console, open_db, print_error

ctl_app = typer.Typer(
    help="The controller: HTTPS API over the store that agents report to (see docs/controller.md).",
    invoke_without_command=True,
)
token_app = typer.Typer(help="API tokens (agents, scripts, Prometheus).", no_args_is_help=True)
user_app = typer.Typer(help="Users who log in with a password.", no_args_is_help=True)
ctl_app.add_typer(token_app, name="token")
ctl_app.add_typer(user_app, name="user")

Role = Annotated[str, typer.Option("--role", help="admin, operator, reader or agent.")]


def _default_cert_dir() -> Path:
    from stockade.store.db import default_url

    url = default_url()
    base = Path(url[len("sqlite:///") :]).parent if url.startswith("sqlite:///") else None
    return (base or Path.home() / ".local" / "share" / "stockade") / "controller-tls"


def _cli_actor():
    from stockade.api.auth import Principal

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Principal(name=name, role="admin", via="cli")


@ctl_app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 9443,
    db: DbOption = None,
    cert_dir: Annotated[
        Path | None,
        typer.Option(
            "--cert-dir",
            help="Where the generated CA (ca.crt) and serving certificate live "
            "(default: controller-tls next to the SQLite store).",
        ),
    ] = None,
    cert: Annotated[
        Path | None, typer.Option(help="Serving certificate (PEM) instead of a generated one.")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="Key of --cert (PEM).")] = None,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls/--no-tls",
            help="HTTPS (the default); --no-tls serves plain HTTP, only behind a TLS proxy.",
        ),
    ] = True,
    session_hours: Annotated[
        float, typer.Option(min=0.01, max=720, help="Hours a login session lasts.")
    ] = 8.0,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections at once; further ones are closed.")
    ] = 512,
    body_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=600,
            help="Seconds a request body may take to arrive; a slower one gets 408 (a slow "
            "sender holds its request no longer).",
        ),
    ] = 10.0,
    login_failures_per_address: Annotated[
        int,
        typer.Option(
            "--login-failures-per-address",
            min=1,
            max=1_000_000,
            help="Failed logins a client address may make in a row before its logins are "
            "slowed down (429 with Retry-After, doubling from 1 s); a user name may fail 5 "
            "times. Each replica counts its own.",
        ),
    ] = 50,
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            help="Response rules (ResponseRules YAML) to start with: imported into the store when "
            "it holds none. The store's rules are those of every replica; replace them through "
            "PUT /api/v1/response-rules or `stockade rules apply`.",
        ),
    ] = None,
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets",
            help="Notification targets (YAML) the rules' notify action sends to, to start with: "
            "imported into the store when it holds none; replaced through "
            "PUT /api/v1/notification-targets.",
        ),
    ] = None,
    lab_state: Annotated[
        Path | None,
        typer.Option(
            "--lab-state",
            help="Single-node mode: the node's workload inventory (the lab's state file); "
            "quarantine cuts traffic with nft in the node namespace. Without it, quarantine is "
            "recorded for the enforcers.",
        ),
    ] = None,
    rematch_every: Annotated[
        float,
        typer.Option(
            "--rematch-every",
            min=1,
            max=86400,
            help="Seconds between two looks at the store for new advisory data (stockade db "
            "import|update --db: running workloads' images are matched again) and new scan runs "
            "(a registry watch or scan on this store); the response rules evaluate both.",
        ),
    ] = 60.0,
    retention: Annotated[
        Path | None,
        typer.Option(
            "--retention",
            help="Retention policy (Retention YAML): max age, rows and bytes per event category, "
            "applied every spec.every (first run one interval after start). Default: 90 days and "
            "1,000,000 events per category, audit 400 days.",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Processes serving the port together (SO_REUSEPORT), each one replica of the "
            "controller: agent posts and API requests spread over the cores. More than 1 needs a "
            "PostgreSQL store (--db postgresql://...).",
        ),
    ] = 1,
) -> None:
    """Serve the API (HTTPS, OpenAPI at /api/openapi.json) until interrupted.

    Create the first admin with `stockade controller user add NAME --role admin` and agent tokens
    with `stockade controller token create --role agent --name NODE`."""
    if ctx.invoked_subcommand is not None:
        ctx.ensure_object(dict)["db"] = db
        return
    from stockade.admission.limits import Limits
    from stockade.api.app import Settings, create_app
    from stockade.api.leader import SingletonJob
    from stockade.api.server import Listen, generated_files, run
    from stockade.model.errors import UsageError
    from stockade.store.retention import DEFAULT_POLICY, RetentionJob, load_retention

    if (cert is None) != (key is None):
        raise UsageError("--cert and --key go together")
    store = open_db(db)
    if workers > 1 and store.dialect != "postgresql":
        store.close()
        raise UsageError(
            "--workers above 1 needs a PostgreSQL store (--db postgresql://...): the worker "
            "processes are replicas, and SQLite has one writer"
        )
    service = _response_service(store, rules, targets, lab_state)  # a bad file stops us here
    policy = load_retention(retention) if retention is not None else DEFAULT_POLICY
    scheme = "https"
    if not tls:
        listen = Listen(host=host, port=port)
        scheme = "http"
    elif cert is not None and key is not None:
        listen = Listen(host=host, port=port, certfile=cert, keyfile=key)
    else:
        files = generated_files(cert_dir or _default_cert_dir(), host)
        listen = Listen(host=host, port=port, certfile=files.cert, keyfile=files.key)
        err_console.print(f"CA certificate for clients: {files.ca_cert}", markup=False)

    def build_app(store, service):
        job = RetentionJob(store, policy, sink=lambda event: service.submit([event]))
        rematch = _scan_run_watch(store, service, rematch_every)
        # singleton work: on the replica holding the database lock (any SQLite one)
        return create_app(
            store,
            Settings(
                session_hours=session_hours,
                secure_cookies=tls,
                body_timeout=body_timeout,
                login_failures_per_address=login_failures_per_address,
            ),
            responses=service,
            jobs=[
                SingletonJob(name=job.name, run=lambda: _run_job(job), interval=job.interval),
                SingletonJob(
                    name=rematch.name, run=lambda: _run_job(rematch), interval=rematch.interval
                ),
            ],
        )

    err_console.print(
        f"response rules {service.rules.name!r}: {len(service.rules.rules)} enabled; "
        f"{len(service.targets)} notification targets; quarantine "
        + ("on this node (nft)" if service.quarantine.mode == "node" else "recorded for enforcers"),
        markup=False,
    )
    err_console.print(
        f"controller on {scheme}://{host}:{port} (API /api/v1, OpenAPI /api/openapi.json), "
        f"store {store.safe_url}",
        markup=False,
    )
    err_console.print(
        f"retention: {_describe_retention(policy)}; applied every {policy.every} by the leader",
        markup=False,
    )
    limits = Limits(max_connections=max_connections)
    if workers == 1:
        run(build_app(store, service), listen, limits=limits)
        return
    _serve_workers(workers, listen, limits, store, lambda: _worker_app(db, lab_state, build_app))


def _worker_app(db: str | None, lab_state: Path | None, build_app):
    """One worker's application, made in the worker after the fork: its own store (database
    connections never cross a fork) and response service; the rules and targets were seeded by
    the parent, so the store already holds them."""
    store = open_db(db)
    return build_app(store, _response_service(store, None, None, lab_state))


def _serve_workers(workers: int, listen, limits, store, make_app) -> None:
    """``--workers N``: N processes on one port (admission's SO_REUSEPORT supervisor), each a
    replica; the parent only supervises."""
    from stockade.admission.workers import serve_workers
    from stockade.api.server import run
    from stockade.model.errors import StockadeError

    store.close()  # nothing the parent opened may cross the fork

    def forked(sock) -> int:
        try:
            run(make_app(), listen, limits=limits, sock=sock)
        except StockadeError as exc:
            print_error(exc)
            return exc.exit_code
        return 0

    err_console.print(f"{workers} worker processes (replicas on one port)", markup=False)
    code = serve_workers(forked, workers=workers, host=listen.host, port=listen.port)
    if code:
        raise typer.Exit(code)


def _describe_retention(policy) -> str:
    from stockade.model.duration import human

    def limits(lim) -> str:
        parts = [
            f"{human(lim.max_age)}" if lim.max_age else "",
            f"{lim.max_rows} events" if lim.max_rows else "",
            f"{lim.max_bytes} bytes" if lim.max_bytes else "",
        ]
        return ", ".join(p for p in parts if p) or "kept"

    named = "; ".join(f"{c} {limits(lim)}" for c, lim in sorted(policy.categories.items()))
    return f"default {limits(policy.default)}" + (f"; {named}" if named else "")


def _scan_run_watch(store, service, every: float):
    """The job handing new vulnerability facts about running workloads' images to the response
    rules: images matched again after an advisory update, and new scan runs in the store."""
    from stockade.api.catalog import workload_images
    from stockade.api.rematch import ScanRunWatch
    from stockade.store.records import record_events

    def sink(event) -> None:
        record_events(store, [event])
        service.submit([event])

    return ScanRunWatch(
        store=store,
        running=lambda: workload_images(store, service.responder.known_images),
        sink=sink,
        interval=every,
    )


def _run_job(job) -> None:
    """One run of a singleton job; a failure is said on stderr and tried again at its next turn."""
    from stockade.model.errors import StockadeError

    try:
        job()
    except StockadeError as exc:
        err_console.print(f"stockade: warning: {job.name}: {exc}", markup=False)


def _response_service(store, rules: Path | None, targets: Path | None, lab_state: Path | None):
    """The response side of this controller: quarantine, and the rules and targets in force, which
    the store holds (every replica follows them); ``--rules``/``--targets`` seed a store that
    holds none (a bad file stops the controller even when the store has its own)."""
    from stockade.api import auth, response_store
    from stockade.api.quarantine import NodeQuarantine, RecordedQuarantine
    from stockade.api.responses import ResponseService
    from stockade.config import read_text

    if lab_state is not None:
        from stockade.firewall.policy.endpoints import Directory
        from stockade.lab.inventory import load

        inv = load(lab_state)
        quarantine = NodeQuarantine(
            store, inv.node_netns, Directory.from_identities(inv.directory())
        )
    else:
        quarantine = RecordedQuarantine(store)
    actor = _cli_actor()
    seeded = response_store.seed_files(
        store,
        rules=read_text(rules) if rules is not None else None,
        targets=read_text(targets) if targets is not None else None,
        rules_name=str(rules),
        targets_name=str(targets),
        by=actor.who,
    )
    service = ResponseService(store, quarantine=quarantine)
    service.refresh(force=True)
    files = {response_store.RULES: rules, response_store.TARGETS: targets}
    for name, version in seeded.items():
        kind = name.replace("_", " ")
        if version is None:
            err_console.print(
                f"note: the store's {kind} (version {service.versions[name]}) stay in force; "
                f"{files[name]} is not imported (replace them through the API or "
                "`stockade rules apply`)",
                markup=False,
            )
            continue
        after = (
            service.rules_summary() if name == response_store.RULES else service.targets_summary()
        )
        what = "response_rules" if name == response_store.RULES else "notification_targets"
        auth.audit(
            store,
            actor,
            f"{what}_replaced",
            before=None,
            after=after,
            message=f"{actor.who} seeded the {kind} from {files[name]} (version {version})",
        )
    return service


def _db(ctx: typer.Context, db: str | None) -> str | None:
    return db or (ctx.obj or {}).get("db")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="What the token is for (e.g. the node).")],
    role: Role,
    db: DbOption = None,
) -> None:
    """Create an API token and print it once (it is stored only as a SHA-256 digest)."""
    from stockade.api.auth import create_token

    info, secret = create_token(open_db(_db(ctx, db)), name=name, role=role, actor=_cli_actor())
    err_console.print(
        f"token {info['id']} ({info['role']}) for {info['name']}; shown once:", markup=False
    )
    console.print(secret, markup=False, highlight=False, soft_wrap=True)


@token_app.command("list")
def token_list(ctx: typer.Context, db: DbOption = None) -> None:
    """List tokens (never their secrets)."""
    from stockade.api.auth import list_tokens

    for t in list_tokens(open_db(_db(ctx, db))):
        state = f"revoked {t['revoked_at']}" if t["revoked_at"] else "active"
        console.print(f"{t['id']}  {t['role']:<8} {t['name']}  {state}", markup=False)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The id `token list` shows.")],
    db: DbOption = None,
) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    from stockade.api.auth import revoke_token
    from stockade.model.errors import UsageError

    if revoke_token(open_db(_db(ctx, db)), token_id, actor=_cli_actor()) is None:
        raise UsageError(f"no token with id {token_id!r}")
    err_console.print(f"token {token_id} revoked", markup=False)


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Role = "reader",
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from the first line of stdin; without it one is generated "
            "and printed once.",
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Add a user (the password is stored as an argon2id hash)."""
    from stockade.api.auth import add_user, generate_password

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else generate_password()
    add_user(open_db(_db(ctx, db)), name=name, role=role, password=password, actor=_cli_actor())
    err_console.print(f"user {name} ({role}) added", markup=False)
    if not password_stdin:
        err_console.print("password, shown once:", markup=False)
        console.print(password, markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(ctl_app, name="controller")
