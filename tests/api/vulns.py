"""Vulnerability facts for the controller in tests: an image's scan upload and the scan summary
naming the workload that runs it."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.controller import Controller


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def vuln(ident: str, package: str, aliases: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "id": ident,
        "pillar": "scanning",
        "title": f"{ident} in {package}",
        "severity": "critical",
        "status": "FAIL",
        "resource": {"kind": "image", "name": package},
        "details": {
            "package": package,
            "package_type": "java-archive",
            "installed_version": "2.14.1",
            "fixed_version": "2.17.1",
            "fix_state": "fixed",
            "aliases": list(aliases),
        },
        "compliance": [],
    }


def upload(controller: Controller, ref: str, n: int, findings: list[dict[str, Any]]) -> None:
    body = {
        "run": uuid.uuid4().hex,
        "finished_at": "2026-12-01T10:00:00+00:00",
        "image": {"reference": ref, "digest": digest(n)},
        "packages": {"total": 40, "by_type": {"java-archive": 40}},
        "findings": findings,
    }
    with controller.client("agent") as c:
        answer = c.post("/api/v1/scans", json=body)
    assert answer.status_code == 201, answer.text


def runs(controller: Controller, workload: str, ref: str, n: int) -> None:
    """A scan summary naming the workload that runs the image."""
    running = f"{ref}@{digest(n)}"
    summary = {"image": running, "counts": {"critical": 1}, "images": {workload: running}}
    with controller.client("operator") as c:
        assert c.post("/api/v1/scans/summary", json=summary).status_code == 202
