"""``stockade sample``: build the sample image from real packages (and push it to a registry)."""

from __future__ import annotations

from pathlib import Path

import typer

from stockade.cli.common import console, err_console

sample_app = typer.Typer(
    help="The sample image built from real Debian, PyPI and npm packages.", no_args_is_help=True
)


@sample_app.command("build")
def build(
    push: str | None = typer.Option(
        None,
        "--push",
        metavar="HOST:PORT",
        help="Also copy the sample to this registry with skopeo (TLS verification off only for "
        "a loopback registry).",
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Where to build (default ~/.cache/stockade/samples/<recipe>)."
    ),
    creds: str | None = typer.Option(
        None,
        "--creds",
        metavar="USER:PASSWORD",
        envvar="STOCKADE_PUSH_CREDS",
        help="Registry credentials for --push (prefer the environment variable: a command line "
        "is visible to every user); skopeo gets them in a 0600 auth file.",
    ),
) -> None:
    """Build the sample image once and print references every image command accepts."""
    from stockade.lab.samples import build_sample, push_sample

    sample = build_sample(cache_dir, log=lambda msg: err_console.print(f"[dim]{msg}[/dim]"))
    refs = sample.refs()
    if push:
        refs += push_sample(sample, push, creds=creds)
    for ref in refs:
        console.print(ref, markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(sample_app, name="sample")
