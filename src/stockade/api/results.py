"""Scan and CIS results agents upload to the controller (``POST /api/v1/scans``,
``POST /api/v1/cis/runs``): validated, masked and stored once.

An upload is one run: an image's scan (its image, packages summary, what could not be checked and
every vulnerability) or one CIS benchmark run on a node (every check result). The findings go to
the core ``findings`` table under the agent's run id, so the compliance reports read them as they
read local results; the run itself is an ``api_results`` row keyed by that id, inserted in the same
transaction, so an upload sent again (a retry after a lost answer) stores nothing twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from stockade.api.tables import results
from stockade.model import InputError, Severity, Status, StockadeError
from stockade.store import Store
from stockade.store.rows import finding_rows, storable
from stockade.store.tables import findings

MAX_FINDINGS = 50_000
MAX_DETAILS_BYTES = 32 * 1024
SEVERITIES = ("critical", "high", "medium", "low", "negligible", "unknown")


class _Body(BaseModel):
    # defer_build: the validators are built by the first upload, not by the controller's start
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ResourceIn(_Body):
    kind: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=1024)
    namespace: str | None = Field(default=None, max_length=253)
    digest: str | None = Field(default=None, max_length=100)
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)


class FindingIn(_Body):
    """A finding as ``Finding.to_dict()`` gives it."""

    id: str = Field(min_length=1, max_length=256)
    pillar: Literal["scanning", "compliance"]
    title: str = Field(max_length=2000)
    severity: str = Field(max_length=16)
    status: str = Field(max_length=16)
    resource: ResourceIn
    details: dict[str, Any] | None = None
    compliance: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("severity")
    @classmethod
    def _severity(cls, v: str) -> str:
        try:
            return str(Severity.parse(v))
        except StockadeError as exc:
            raise ValueError(exc.message) from None

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v not in Status.__members__:
            raise ValueError(f"not a status: {v[:40]!r}")
        return v

    @field_validator("details")
    @classmethod
    def _small(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and len(json.dumps(v, default=str)) > MAX_DETAILS_BYTES:
            raise ValueError(f"larger than {MAX_DETAILS_BYTES} bytes")
        return v

    @field_validator("compliance")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        if any(not 1 <= len(t) <= 128 for t in v):
            raise ValueError("compliance tags have 1 to 128 characters")
        return v


class Unchecked(_Body):
    ecosystem: str = Field(max_length=200)
    packages: int = Field(ge=0, le=10_000_000)
    reason: str = Field(max_length=1000)


class ImageIn(_Body):
    reference: str = Field(min_length=1, max_length=1024)
    name: str | None = Field(default=None, max_length=500)
    tag: str | None = Field(default=None, max_length=200)
    digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")


class PackagesIn(_Body):
    total: int = Field(ge=0, le=10_000_000)
    by_type: dict[str, int] = Field(default_factory=dict, max_length=64)


class _Run(_Body):
    run: str = Field(pattern=r"^[0-9a-f]{32}$")
    finished_at: datetime
    findings: list[FindingIn] = Field(default_factory=list, max_length=MAX_FINDINGS)

    @field_validator("finished_at")
    @classmethod
    def _zoned(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("the time has no zone")
        return v


_R = TypeVar("_R", bound=_Run)


class ScanUpload(_Run):
    """``POST /api/v1/scans``: one image's scan."""

    image: ImageIn
    packages: PackagesIn
    unchecked: list[Unchecked] = Field(default_factory=list, max_length=1000)
    failed: bool = False
    suppressed: int = Field(default=0, ge=0, le=10_000_000)


class BenchmarkIn(_Body):
    id: str = Field(min_length=1, max_length=100)
    title: str = Field(default="", max_length=300)
    version: str = Field(default="", max_length=50)


class CisUpload(_Run):
    """``POST /api/v1/cis/runs``: one benchmark run on one node."""

    node: str = Field(min_length=1, max_length=1024)
    benchmark: BenchmarkIn
    roles: list[str] = Field(default_factory=list, max_length=16)


def _parse(model: type[_R], data: Any, what: str) -> _R:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(f"{what} {where}: {msg}") from None


def parse_scan(data: Any) -> ScanUpload:
    """A scan upload from untrusted data; InputError (one line) when it is not one."""
    upload = _parse(ScanUpload, data, "scan")
    if any(f.pillar != "scanning" for f in upload.findings):
        raise InputError("scan findings: every finding of a scan has pillar 'scanning'")
    return upload


def parse_cis(data: Any) -> CisUpload:
    upload = _parse(CisUpload, data, "CIS run")
    if any(f.pillar != "compliance" for f in upload.findings):
        raise InputError("CIS run findings: every check result has pillar 'compliance'")
    return upload


def fixable(details: dict[str, Any] | None) -> bool:
    """A vulnerability with a fixed version to upgrade to."""
    d = details or {}
    return bool(d.get("fixed_version")) or d.get("fix_state") == "fixed"


def _scan_summary(upload: ScanUpload) -> dict[str, Any]:
    counts = dict.fromkeys(SEVERITIES, 0)
    fixes = dict.fromkeys(SEVERITIES, 0)
    for f in upload.findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
        if fixable(f.details):
            fixes[f.severity] = fixes.get(f.severity, 0) + 1
    image = upload.image
    return {
        "image": {"reference": image.reference, "name": image.name, "tag": image.tag},
        "packages": upload.packages.model_dump(),
        "unchecked": [u.model_dump() for u in upload.unchecked],
        "complete": upload.packages.total > 0 and not upload.unchecked,
        "failed": upload.failed,
        "suppressed": upload.suppressed,
        "counts": counts,
        "fixable": fixes,
    }


def _cis_summary(upload: CisUpload) -> dict[str, Any]:
    counts = {s.value: 0 for s in Status}
    for f in upload.findings:
        counts[f.status] += 1
    fails = [Severity.parse(f.severity) for f in upload.findings if f.status == "FAIL"]
    return {
        "node": upload.node,
        "benchmark": upload.benchmark.model_dump(),
        "roles": list(upload.roles),
        "counts": counts,
        "worst": str(max(fails)) if fails else None,
    }


def store_scan(store: Store, upload: ScanUpload, *, who: str) -> bool:
    """Store a scan upload; False when that run was stored before (nothing changes)."""
    return _store(
        store,
        upload,
        kind="scan",
        subject=upload.image.reference,
        digest=upload.image.digest,
        summary=_scan_summary(upload),
        who=who,
    )


def store_cis(store: Store, upload: CisUpload, *, who: str) -> bool:
    return _store(
        store,
        upload,
        kind="cis",
        subject=upload.node,
        digest=None,
        summary=_cis_summary(upload),
        who=who,
    )


def _store(
    store: Store,
    upload: _Run,
    *,
    kind: str,
    subject: str,
    digest: str | None,
    summary: dict[str, Any],
    who: str,
) -> bool:
    now = datetime.now(UTC)
    row = {
        "id": upload.run,
        "kind": kind,
        "subject": storable(subject),
        "digest": digest,
        "finished_at": upload.finished_at.astimezone(UTC),
        "received_at": now,
        "uploaded_by": storable(who)[:80],
        "findings": len(upload.findings),
        "summary": storable(summary),
    }
    rows = finding_rows(upload.run, now, (f.model_dump() for f in upload.findings))
    try:
        with store.begin() as conn:
            conn.execute(insert(results), [row])
            if rows:
                conn.execute(insert(findings), rows)
    except IntegrityError:  # the same run, sent again (or by another replica meanwhile)
        return False
    return True
