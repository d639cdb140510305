"""Serving the controller: HTTPS by default with a generated CA and certificate, uvicorn with the
webhook's connection limits (header size and time, connections at once)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockade.admission.certs import ServingFiles, ensure_certificate
from stockade.admission.limits import Limits, run_uvicorn

CA_NAME = "Stockade controller CA"


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen:
    host: str
    port: int
    certfile: Path | None = None  # None: plain HTTP
    keyfile: Path | None = None


def certificate_names(host: str) -> list[str]:
    """DNS names the generated certificate covers: this machine's names, and ``host`` when it is
    a name (127.0.0.1 and ::1 are always in it)."""
    names = [socket.getfqdn(), socket.gethostname(), "localhost", "stockade-controller"]
    if host and not _is_address(host) and host not in names:
        names.insert(0, host)
    return list(dict.fromkeys(n for n in names if n))


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def generated_files(cert_dir: Path, host: str) -> ServingFiles:
    return ensure_certificate(cert_dir, certificate_names(host), ca_name=CA_NAME)


def run(
    app: Any, listen: Listen, *, limits: Limits | None = None, sock: socket.socket | None = None
) -> None:
    """Serve until interrupted (on ``sock`` when given: one worker of several)."""
    run_uvicorn(
        app,
        host=listen.host,
        port=listen.port,
        limits=limits or Limits(),
        certfile=str(listen.certfile) if listen.certfile is not None else None,
        keyfile=str(listen.keyfile) if listen.keyfile is not None else None,
        sock=sock,
    )
