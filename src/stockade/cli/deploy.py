"""``stockade deploy``: the Kubernetes objects without Kustomize, and the certificate they use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stockade.cli.common import OutputOption, emit, err_console

deploy_app = typer.Typer(
    help="Deploy Stockade into a Kubernetes cluster (see docs/deploy.md).", no_args_is_help=True
)

Namespace = Annotated[str, typer.Option("--namespace", help="Namespace Stockade runs in.")]
CertDir = Annotated[
    Path,
    typer.Option("--cert-dir", help="Folder of the CA and serving certificate (deploy certs)."),
]


@deploy_app.command("certs")
def certs(namespace: Namespace = "stockade", cert_dir: CertDir = Path("stockade-tls")) -> None:
    """Create (or reuse) a CA and one serving certificate for the controller and the webhook
    Services (stockade-controller and stockade-admission in the namespace)."""
    from stockade.admission.certs import ensure_certificate, service_names

    names = service_names("stockade-controller", namespace)
    names += [n for n in service_names("stockade-admission", namespace) if n not in names]
    files = ensure_certificate(cert_dir, names, ca_name="Stockade CA")
    err_console.print(
        f"CA {files.ca_cert}, certificate {files.cert}, key {files.key}. The serving Secret:\n"
        f"  kubectl -n {namespace} create secret generic stockade-tls --from-file={cert_dir}",
        markup=False,
    )


@deploy_app.command("manifests")
def manifests(
    namespace: Namespace = "stockade",
    controller_replicas: Annotated[
        int | None,
        typer.Option(
            "--controller-replicas",
            min=1,
            help="Controller replicas (default 2 with --postgres-url-secret, else 1).",
        ),
    ] = None,
    postgres_url_secret: Annotated[
        str | None,
        typer.Option(
            "--postgres-url-secret",
            help="Secret whose key `url` is the PostgreSQL URL the replicas share (production); "
            "without it: one replica, SQLite on a PersistentVolumeClaim (single node).",
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option("--image", help="Controller image REPO:TAG (the agent's: REPO-agent:TAG)."),
    ] = None,
    agent_image: Annotated[
        str | None, typer.Option("--agent-image", help="Agent image, instead of --image's.")
    ] = None,
    cert_dir: CertDir = Path("stockade-tls"),
    output: OutputOption = None,
) -> None:
    """Print every object (kubectl apply -f -): the same as `kubectl kustomize` of
    deploy/overlays/production (with --postgres-url-secret) or single-node (without)."""
    from stockade.config import read_text
    from stockade.deploy.render import Options, render, to_yaml
    from stockade.model.errors import ConfigError

    ca_file = cert_dir / "ca.crt"
    if not ca_file.is_file():
        raise ConfigError(f"no {ca_file}: run `stockade deploy certs --cert-dir {cert_dir}` first")
    options = Options(
        ca_pem=read_text(ca_file).encode(),
        namespace=namespace,
        postgres_url_secret=postgres_url_secret,
        controller_replicas=controller_replicas,
        image=image,
        agent_image=agent_image,
    )
    emit(to_yaml(render(options)), output)


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
