"""The deployment's objects as users get them: ``kubectl kustomize`` of each overlay and
``stockade deploy manifests``, both from the same certificate folder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from stockade.admission.certs import ensure_certificate
from stockade.deploy.render import Options, render
from tests.support import require

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ("production", "single-node")


def make_ca(folder: Path) -> bytes:
    names = ["stockade-controller.stockade.svc", "stockade-admission.stockade.svc"]
    return ensure_certificate(folder, names, ca_name="Stockade CA").ca_pem()


def kustomize(overlay: str, tmp: Path, ca_pem: bytes) -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/overlays/OVERLAY`` with the CA copied in, as docs/deploy.md says."""
    require(shutil.which("kubectl") is not None, "kubectl (kustomize) is not installed")
    tree = tmp / "deploy"
    if not tree.exists():
        shutil.copytree(REPO / "deploy", tree, symlinks=False)
    (tree / "overlays" / overlay / "ca.crt").write_bytes(ca_pem)
    out = subprocess.run(
        ["kubectl", "kustomize", str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def python(ca_pem: bytes, overlay: str, **options: Any) -> list[dict[str, Any]]:
    secret = "stockade-postgres" if overlay == "production" else None
    return render(Options(ca_pem=ca_pem, postgres_url_secret=secret, **options))
