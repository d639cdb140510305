"""``stockade scan image|rootfs|pid|sbom|registry`` and ``stockade images``.

Exit codes: 0 clean (or nothing at or above --fail-on), 1 findings at or above --fail-on remain
after VEX, the ignore file and --ignore-unfixed, 2 usage or configuration error (bad option, bad
ignore file or VEX document), 3 scan error (image unreadable, advisory database missing or stale)
or, with --fail-on, an incomplete scan (a distribution or ecosystem without advisory data, no
package identified) unless --allow-unchecked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stockade.cli.agent import (
    AgentNameOption,
    AgentOptions,
    ControllerCaOption,
    ControllerOption,
    TokenOption,
)
from stockade.cli.common import (
    DbOption,
    OutputOption,
    RichObserver,
    StoreOption,
    emit,
    err_console,
    open_db,
)
from stockade.cli.scan_fast import incomplete_line
from stockade.cli.scan_fast import scan_options as _options

if TYPE_CHECKING:
    from stockade.scanning.pipeline import ScanOptions
    from stockade.scanning.registry_scan import Walk
    from stockade.scanning.results import ScanReport
    from stockade.scanning.scan_store import Coverage

scan_app = typer.Typer(
    help="Scan images, filesystems, processes and SBOMs for vulnerabilities, with a CI gate.\n\n"
    "Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage or configuration error, "
    "3 scan error (unreadable input, missing or stale advisory database) or, with --fail-on, "
    "an incomplete scan (packages without advisory data, none identified) unless "
    "--allow-unchecked.",
    no_args_is_help=True,
)

FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="Report format: table, json, sarif or cyclonedx.")
]
FailOnOpt = Annotated[
    str | None,
    typer.Option("--fail-on", help="Exit 1 when a finding at or above this severity remains."),
]
AllowUncheckedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unchecked",
        help="With --fail-on, accept an incomplete scan: packages of a distribution or ecosystem "
        "the advisory data does not cover, or no package identified at all (otherwise exit 3).",
    ),
]
IgnoreUnfixedOpt = Annotated[
    bool, typer.Option("--ignore-unfixed", help="Do not count findings that have no fixed version.")
]
IgnoreFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ignore-file",
        help="Ignore file (YAML). Default: .stockadeignore.yaml in the current folder, if present.",
    ),
]
VexOpt = Annotated[
    list[Path] | None, typer.Option("--vex", help="OpenVEX document to apply (repeatable).")
]
MaxAgeOpt = Annotated[
    str,
    typer.Option("--max-db-age", help="Refuse advisory data older than this (e.g. 7d, 12h)."),
]
StaleOpt = Annotated[
    bool, typer.Option("--allow-stale-db", help="Scan even when the advisory data is too old.")
]
PlatformOpt = Annotated[
    str | None, typer.Option("--platform", help="Platform of a multi-arch image (linux/arm64).")
]
InsecureOpt = Annotated[
    bool, typer.Option("--insecure", help="Talk plain HTTP to the registry (loopback, labs).")
]
UserOpt = Annotated[
    str | None,
    typer.Option("--username", envvar="STOCKADE_REGISTRY_USERNAME", help="Registry user."),
]
PasswordOpt = Annotated[
    str | None,
    typer.Option("--password", envvar="STOCKADE_REGISTRY_PASSWORD", help="Registry password."),
]

_SIG = "Signatures"
VerifyKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--verify-key",
        metavar="PEM",
        help="Verify cosign signatures: a trusted PEM public key (repeatable). An image not "
        "signed by a --verify-key or --verify-identity exits 1.",
        rich_help_panel=_SIG,
    ),
]
VerifyIdentityOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--verify-identity",
        metavar="SUBJECT",
        help="Keyless: a trusted certificate subject, email or URI, glob (repeatable; needs "
        "--verify-issuer, --fulcio-root and --rekor-key).",
        rich_help_panel=_SIG,
    ),
]
VerifyIssuerOpt = Annotated[
    str | None,
    typer.Option(
        "--verify-issuer",
        metavar="ISSUER",
        help="Keyless: the OIDC issuer (glob).",
        rich_help_panel=_SIG,
    ),
]
FulcioRootOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--fulcio-root",
        metavar="PEM",
        help="Keyless: a trusted Fulcio root, PEM (repeatable).",
        rich_help_panel=_SIG,
    ),
]
FulcioIntermediateOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--fulcio-intermediate",
        metavar="PEM",
        help="Keyless: a Fulcio intermediate certificate, PEM (repeatable).",
        rich_help_panel=_SIG,
    ),
]
RekorKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--rekor-key",
        metavar="PEM",
        help="Keyless: the Rekor public key, PEM (repeatable); its SignedEntryTimestamp gives the "
        "signing time.",
        rich_help_panel=_SIG,
    ),
]
RegistryConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry-config",
        help="Docker config file (or its folder) for registry credentials: auths, credHelpers, "
        "credsStore. Default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json.",
    ),
]
AuthTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--auth-token",
        envvar="STOCKADE_REGISTRY_AUTH_TOKEN",
        help="A base64 USER:PASSWORD authorization token, as AWS ECR issues it "
        "(aws ecr get-authorization-token); prefer the environment variable.",
        show_default=False,
    ),
]
AadTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--aad-token",
        envvar="STOCKADE_ACR_AAD_TOKEN",
        help="An Azure AD access token, exchanged by Azure ACR for a registry refresh token; "
        "prefer the environment variable.",
        show_default=False,
    ),
]


def _signature_trust(
    keys: list[str] | None,
    identities: list[str] | None,
    issuer: str | None,
    roots: list[str] | None,
    intermediates: list[str] | None,
    rekor_keys: list[str] | None,
):  # -> SignatureTrust | None (imported lazily)
    """The trust the --verify-* options describe, or None when none was given."""
    if not (keys or identities or issuer or roots or intermediates or rekor_keys):
        return None  # before the imports: cryptography and the registry client cost 0.1 s
    from stockade.model.errors import UsageError
    from stockade.scanning.signatures import Identity, load_trust

    if bool(identities) != bool(issuer):
        raise UsageError("--verify-identity and --verify-issuer go together")
    return load_trust(
        keys=keys or (),
        identities=[Identity(subject=s, issuer=str(issuer)) for s in identities or ()],
        roots=roots or (),
        intermediates=intermediates or (),
        rekor_keys=rekor_keys or (),
    )


def _finish(report: ScanReport, fmt: str, output: Path | None, agent: AgentOptions) -> None:
    from stockade.cli.agent import scan_event, scan_results, send, upload_results
    from stockade.scanning.reports import renderer

    send(agent, ("scan",), [scan_event(report)])
    upload_results(agent, "/api/v1/scans", scan_results(report), "scan")
    from stockade.scanning.reports.table import render_table

    if fmt == "table" and output is None:
        text = render_table(report, width=err_console.width if err_console.is_terminal else 120)
    else:
        text = renderer(fmt)(report)
    emit(text, output)
    if fmt != "table" or output is not None:  # (the table on the terminal says it already)
        for warning in report.database.warnings if report.database else ():
            err_console.print(f"stockade: warning: {warning}", markup=False, highlight=False)
    for rule in report.gate.expired_rules:
        err_console.print(
            f"stockade: warning: ignore entry {rule.id} ({rule.source}:{rule.line}) expired on "
            f"{rule.expires} and no longer suppresses",
            markup=False,
            highlight=False,
        )
    if report.unchecked_failed:
        # "No vulnerabilities" about packages nobody checked is not a pass: exit 3, not 0 or 1.
        err_console.print(
            incomplete_line(report),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _scan_ref(
    ref: str,
    opts: ScanOptions,
    db: str | None,
    fmt: str,
    output: Path | None,
    agent: AgentOptions,
) -> None:
    from stockade.scanning.pipeline import real_backend, scan_image

    backend = real_backend()
    store = open_db(db)
    try:
        with RichObserver() as observer:
            report = scan_image(store, ref, opts, backend, observer)
    finally:
        store.close()
    _finish(report, fmt, output, agent)


@scan_app.command("image")
def scan_image_cmd(
    ref: Annotated[
        str, typer.Argument(help="registry/repo:tag, docker-archive:FILE, oci:DIR[:tag]")
    ],
    fmt: FormatOpt = "table",
    output: OutputOption = None,
    fail_on: FailOnOpt = None,
    ignore_unfixed: IgnoreUnfixedOpt = False,
    ignore_file: IgnoreFileOpt = None,
    vex: VexOpt = None,
    max_db_age: MaxAgeOpt = "7d",
    allow_stale_db: StaleOpt = False,
    allow_unchecked: AllowUncheckedOpt = False,
    platform: PlatformOpt = None,
    insecure: InsecureOpt = False,
    username: UserOpt = None,
    password: PasswordOpt = None,
    registry_config: RegistryConfigOpt = None,
    auth_token: AuthTokenOpt = None,
    aad_token: AadTokenOpt = None,
    store: StoreOption = True,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
    verify_key: VerifyKeyOpt = None,
    verify_identity: VerifyIdentityOpt = None,
    verify_issuer: VerifyIssuerOpt = None,
    fulcio_root: FulcioRootOpt = None,
    fulcio_intermediate: FulcioIntermediateOpt = None,
    rekor_key: RekorKeyOpt = None,
) -> None:
    """Scan a container image for vulnerable packages (and, with --verify-*, check its cosign
    signatures)."""
    trust = _signature_trust(
        verify_key, verify_identity, verify_issuer, fulcio_root, fulcio_intermediate, rekor_key
    )
    opts = _options(
        signatures=trust,
        fail_on=fail_on,
        ignore_unfixed=ignore_unfixed,
        ignore_file=ignore_file,
        vex=vex,
        max_db_age=max_db_age,
        allow_stale_db=allow_stale_db,
        allow_unchecked=allow_unchecked,
        platform=platform,
        insecure=insecure,
        username=username,
        password=password,
        registry_config=registry_config,
        auth_token=auth_token,
        aad_token=aad_token,
        fmt=fmt,
        store=store,
    )
    _scan_ref(
        ref,
        opts,
        db,
        fmt,
        output,
        AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name),
    )


@scan_app.command("rootfs")
def scan_rootfs_cmd(
    path: Annotated[Path, typer.Argument(help="A root filesystem (unpacked image, host, chroot).")],
    fmt: FormatOpt = "table",
    output: OutputOption = None,
    fail_on: FailOnOpt = None,
    ignore_unfixed: IgnoreUnfixedOpt = False,
    ignore_file: IgnoreFileOpt = None,
    vex: VexOpt = None,
    max_db_age: MaxAgeOpt = "7d",
    allow_stale_db: StaleOpt = False,
    store: StoreOption = True,
    allow_unchecked: AllowUncheckedOpt = False,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Scan a root filesystem folder."""
    from stockade.model.errors import InputError

    opts = _options(
        fail_on=fail_on,
        ignore_unfixed=ignore_unfixed,
        ignore_file=ignore_file,
        vex=vex,
        max_db_age=max_db_age,
        allow_stale_db=allow_stale_db,
        allow_unchecked=allow_unchecked,
        fmt=fmt,
        store=store,
    )
    # Options first: a usage or configuration error (exit 2) wins over a missing input.
    if not path.is_dir():
        raise InputError("not a folder", subject=str(path))
    _scan_ref(
        f"dir:{path.resolve()}",
        opts,
        db,
        fmt,
        output,
        AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name),
    )


@scan_app.command("pid")
def scan_pid_cmd(
    pid: Annotated[int, typer.Argument(help="A process id: its container's root filesystem.")],
    fmt: FormatOpt = "table",
    output: OutputOption = None,
    fail_on: FailOnOpt = None,
    ignore_unfixed: IgnoreUnfixedOpt = False,
    ignore_file: IgnoreFileOpt = None,
    vex: VexOpt = None,
    max_db_age: MaxAgeOpt = "7d",
    allow_stale_db: StaleOpt = False,
    store: StoreOption = True,
    allow_unchecked: AllowUncheckedOpt = False,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Scan the root filesystem a running process sees (/proc/PID/root)."""
    from stockade.model.errors import InputError

    opts = _options(
        fail_on=fail_on,
        ignore_unfixed=ignore_unfixed,
        ignore_file=ignore_file,
        vex=vex,
        max_db_age=max_db_age,
        allow_stale_db=allow_stale_db,
        allow_unchecked=allow_unchecked,
        fmt=fmt,
        store=store,
    )
    # Options first: a usage or configuration error (exit 2) wins over a missing input.
    if pid <= 0 or not Path(f"/proc/{pid}").is_dir():
        raise InputError(f"no such process: {pid}")
    _scan_ref(
        f"pid:{pid}",
        opts,
        db,
        fmt,
        output,
        AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name),
    )


@scan_app.command("sbom")
def scan_sbom_cmd(
    file: Annotated[Path, typer.Argument(help="A CycloneDX or SPDX JSON SBOM.")],
    fmt: FormatOpt = "table",
    output: OutputOption = None,
    fail_on: FailOnOpt = None,
    ignore_unfixed: IgnoreUnfixedOpt = False,
    ignore_file: IgnoreFileOpt = None,
    vex: VexOpt = None,
    max_db_age: MaxAgeOpt = "7d",
    allow_stale_db: StaleOpt = False,
    store: StoreOption = True,
    allow_unchecked: AllowUncheckedOpt = False,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Scan the packages listed in an SBOM (no image needed)."""
    from stockade.scanning.pipeline import real_backend, scan_sbom

    opts = _options(
        fail_on=fail_on,
        ignore_unfixed=ignore_unfixed,
        ignore_file=ignore_file,
        vex=vex,
        max_db_age=max_db_age,
        allow_stale_db=allow_stale_db,
        allow_unchecked=allow_unchecked,
        fmt=fmt,
        store=store,
    )
    backend = real_backend()
    store = open_db(db)
    try:
        report = scan_sbom(store, str(file), opts, backend)
    finally:
        store.close()
    _finish(
        report,
        fmt,
        output,
        AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name),
    )


@scan_app.command("registry")
def scan_registry_cmd(
    host: Annotated[str, typer.Argument(help="Registry HOST[:PORT].")],
    repo: Annotated[
        list[str] | None, typer.Option("--repo", help="Only repositories matching this glob.")
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            help="Only this namespace (repeatable). Required for docker.io, which has no "
            "catalog: its repositories are listed through the Docker Hub API.",
        ),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Keep polling for new tags.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between polls.")] = 60.0,
    max_polls: Annotated[
        int | None, typer.Option("--max-polls", help="Stop watching after this many polls.")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Summary format: table or json.")
    ] = "table",
    output: OutputOption = None,
    fail_on: FailOnOpt = None,
    ignore_unfixed: IgnoreUnfixedOpt = False,
    ignore_file: IgnoreFileOpt = None,
    vex: VexOpt = None,
    max_db_age: MaxAgeOpt = "7d",
    allow_stale_db: StaleOpt = False,
    allow_unchecked: AllowUncheckedOpt = False,
    platform: PlatformOpt = None,
    insecure: InsecureOpt = False,
    username: UserOpt = None,
    password: PasswordOpt = None,
    registry_config: RegistryConfigOpt = None,
    auth_token: AuthTokenOpt = None,
    aad_token: AadTokenOpt = None,
    db: DbOption = None,
    controller: ControllerOption = None,
    token: TokenOption = None,
    controller_ca: ControllerCaOption = None,
    agent_name: AgentNameOption = None,
) -> None:
    """Scan every tag of a registry once per manifest digest; re-match when advisories change."""
    from stockade.model.errors import UsageError
    from stockade.scanning.registry_scan import render_walk, watch_registry

    if fmt not in ("table", "json"):
        raise UsageError(f"--format for scan registry is table or json, not {fmt!r}")
    if interval < 0 or (max_polls is not None and max_polls < 1):
        raise UsageError("--interval must be >= 0 and --max-polls >= 1")
    opts = _options(
        fail_on=fail_on,
        ignore_unfixed=ignore_unfixed,
        ignore_file=ignore_file,
        vex=vex,
        max_db_age=max_db_age,
        allow_stale_db=allow_stale_db,
        allow_unchecked=allow_unchecked,
        platform=platform,
        insecure=insecure,
        username=username,
        password=password,
        registry_config=registry_config,
        auth_token=auth_token,
        aad_token=aad_token,
    )
    from stockade.cli.agent import reporting, walk_event
    from stockade.scanning.pipeline import real_backend

    def on_walk(walk: Walk) -> None:
        err_console.print(walk.line(), markup=False, highlight=False)
        if reporter is not None:
            reporter.add(walk_event(walk))

    store = open_db(db)
    try:
        with (
            reporting(
                AgentOptions(controller=controller, token=token, ca=controller_ca, name=agent_name),
                ("scan", "scan.registry"),
            ) as reporter,
            RichObserver() as observer,
        ):
            walks = watch_registry(
                store,
                host,
                patterns=tuple(repo or ()),
                namespaces=tuple(namespace or ()),
                options=opts,
                backend=real_backend(),
                observer=observer,
                watch=watch,
                interval=interval,
                max_polls=max_polls,
                on_walk=on_walk,
            )
    finally:
        store.close()
    emit(render_walk(walks, fmt), output)
    errors = sum(w.errors for w in walks)
    if errors:
        # An image that could not be read is an incomplete answer, not a clean one.
        err_console.print(
            f"stockade: error: {errors} image(s) could not be scanned (see the summary)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(3)
    incomplete = {i.reference for w in walks for i in w.items if i.unchecked_failed}
    if incomplete:
        err_console.print(
            f"stockade: error: incomplete scan of {len(incomplete)} image(s): packages not "
            "checked (see the summary; --allow-unchecked accepts it)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(3)
    if any(w.failed for w in walks):
        raise typer.Exit(1)


def images_cmd(
    repo: Annotated[str | None, typer.Option("--repo", help="Only this repository (glob).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """List scanned images with their vulnerability counts by severity (latest scan)."""
    import json

    from stockade.model.errors import UsageError
    from stockade.scanning.scan_store import list_images

    if fmt not in ("table", "json"):
        raise UsageError(f"--format for images is table or json, not {fmt!r}")
    store = open_db(db)
    try:
        rows = list_images(store, repository=repo)
    finally:
        store.close()
    if fmt == "json":
        emit(json.dumps([r.to_dict() for r in rows], indent=2), output)
        return
    emit(_images_table(rows), output)


def _images_table(rows: list) -> str:  # type: ignore[type-arg]
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} scanned images", title_justify="left")
    cols = ("Image", "Digest", "Critical", "High", "Medium", "Low", "Other", "Checked", "Scanned")
    for col in cols:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r.reference,
            (r.manifest_digest or "")[:19],
            str(r.counts["critical"]),
            str(r.counts["high"]),
            str(r.counts["medium"]),
            str(r.counts["low"]),
            str(r.counts["negligible"] + r.counts["unknown"]),
            _checked_cell(r.coverage),
            f"{r.last_scanned:%Y-%m-%d %H:%M}",
        )
    buf = io.StringIO()
    Console(file=buf, width=160, no_color=True).print(table)
    return buf.getvalue()


def _checked_cell(coverage: Coverage) -> str:
    """Zero counts mean "no vulnerabilities" only for an image that was checked in full."""
    if coverage.packages is None:
        return "?"  # recorded before coverage was kept
    if coverage.packages == 0:
        return "NOTHING (no package identified)"
    if not coverage.unchecked:
        return "all"
    missing = sum(u.packages for u in coverage.unchecked)
    names = ", ".join(u.ecosystem for u in coverage.unchecked)
    return f"PARTIAL ({missing} of {coverage.packages} not checked: {names})"


def register(app: typer.Typer) -> None:
    app.add_typer(scan_app, name="scan")
    app.command("images")(images_cmd)
