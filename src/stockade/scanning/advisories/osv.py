"""OSV JSON records (https://ossf.github.io/osv-schema/) to normalized advisories.

``ECOSYSTEM`` and ``SEMVER`` ranges and ``versions`` lists are kept; ``GIT`` ranges cannot be
matched against installed packages and are skipped with a reason; withdrawn records are skipped.
Every version string is checked against its ecosystem's scheme at import time so a bad record is
reported here, not at scan time.
"""

from __future__ import annotations

from typing import Any

from stockade.scanning.advisories import alpine_secdb, ecosystems
from stockade.scanning.advisories.cvss import CvssError, parse_vector
from stockade.scanning.advisories.model import (
    Advisory,
    Affected,
    Cvss,
    EventKind,
    FixState,
    Problem,
    VersionRange,
    unbounded_event,
)
from stockade.scanning.versions import VersionError, scheme_for

_KINDS = {k.value: k for k in EventKind}
# RustSec's ``affected[].database_specific.informational`` kinds that are no vulnerability
# ("unsound", a soundness bug, is one and stays).
_NOT_A_FLAW = ("unmaintained", "notice")


class RecordError(ValueError):
    """The whole record is unusable."""


def is_osv(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("id"), str)
        and ("affected" in doc or "modified" in doc or "schema_version" in doc)
    )


def convert(doc: Any, where: str) -> tuple[Advisory | None, list[Problem]]:
    """One OSV record; returns (advisory or None if skipped entirely, problems)."""
    try:
        return _convert(doc, where)
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # A field of the wrong JSON type somewhere in the record: skip the record, say where.
        rid = doc.get("id") if isinstance(doc, dict) else None
        return None, [Problem(where=f"{where}#{rid}", message=f"malformed record: {exc!r}")]


def _strings(value: Any) -> list[str]:
    """A JSON list of strings (anything else counts as empty: a string is not a list of ids)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value[:40] if isinstance(value, str) else None


def _objects(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _object(value: Any) -> dict[str, Any]:
    """A JSON object (anything else counts as empty)."""
    return value if isinstance(value, dict) else {}


def _convert(doc: Any, where: str) -> tuple[Advisory | None, list[Problem]]:
    problems: list[Problem] = []
    if not is_osv(doc):
        return None, [Problem(where=where, message="not an OSV record (no id/affected/modified)")]
    rid = doc["id"]
    here = f"{where}#{rid}" if not where.endswith(rid) else where
    if doc.get("withdrawn"):
        return None, [Problem(where=here, message=f"withdrawn on {doc['withdrawn']}; skipped")]
    affected: list[Affected] = []
    for i, entry in enumerate(_objects(doc.get("affected"))):
        try:
            item = _affected(entry, problems, f"{here} affected[{i}]")
        except (RecordError, VersionError, ecosystems.UnknownEcosystem) as exc:
            problems.append(Problem(where=f"{here} affected[{i}]", message=str(exc)))
            continue
        if item is not None:
            affected.append(item)
    affected = alpine_secdb.merge_listings(affected)  # one entry per secdb listing
    cvss: list[Cvss] = []
    vendor_rating: str | None = None
    for sev in _objects(doc.get("severity")):
        if not isinstance(sev, dict) or not isinstance(sev.get("score"), str):
            continue
        if sev.get("type") == "Ubuntu":  # Ubuntu's own priority travels as a severity entry
            vendor_rating = _text_severity(sev["score"])
        elif str(sev.get("type", "")).startswith("CVSS_"):
            try:
                cvss.append(parse_vector(sev["score"]))
            except CvssError as exc:
                problems.append(
                    Problem(where=here, message=f"bad CVSS vector {sev['score']!r}: {exc}")
                )
    db = doc.get("database_specific") if isinstance(doc.get("database_specific"), dict) else {}
    adv = Advisory(
        id=rid,
        source="osv",
        aliases=tuple(sorted(set(_strings(doc.get("aliases"))) - {rid})),
        upstream=tuple(sorted(set(_strings(doc.get("upstream"))) - {rid})),
        summary=str(doc.get("summary") or doc.get("details") or "")[:500],
        published=_text(doc.get("published")),
        modified=_text(doc.get("modified")),
        severity=_text_severity(db.get("severity")) or vendor_rating,
        cvss=tuple(cvss),
        references=tuple(
            r["url"]
            for r in _objects(doc.get("references"))
            if isinstance(r, dict) and isinstance(r.get("url"), str)
        ),
        affected=tuple(affected),
    )
    if doc.get("affected") and not affected:
        problems.append(Problem(where=here, message="no affected package could be used; skipped"))
        return None, problems
    return adv, problems


def _text_severity(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _affected(entry: Any, problems: list[Problem], where: str) -> Affected | None:
    if not isinstance(entry, dict):
        raise RecordError("affected entry is not an object")
    if not isinstance(entry.get("package"), dict):
        types = {r.get("type") for r in entry.get("ranges") or [] if isinstance(r, dict)}
        if types == {"GIT"}:
            problems.append(Problem(where=where, message="GIT range without a package skipped"))
            return None
        raise RecordError("affected entry without a package")
    pkg = entry["package"]
    raw_eco, raw_name = pkg.get("ecosystem"), pkg.get("name")
    if not isinstance(raw_eco, str) or not isinstance(raw_name, str) or not raw_name:
        raise RecordError("package needs an ecosystem and a name")
    eco = ecosystems.from_osv(raw_eco)
    if eco == "go":
        eco = _go_platforms(eco, _object(entry.get("ecosystem_specific")))
    elif eco == "crates.io":
        eco = _rust_platforms(eco, _object(entry.get("ecosystem_specific")))
    scheme = scheme_for(eco)
    if scheme is None:
        raise ecosystems.UnknownEcosystem(f"no version scheme for ecosystem {raw_eco!r}")
    ranges: list[VersionRange] = []
    fixed: list[str] = []
    for r in _objects(entry.get("ranges")):
        rtype = r.get("type") if isinstance(r, dict) else None
        if rtype == "GIT":
            problems.append(
                Problem(where=where, message="GIT range skipped (commits cannot be matched)")
            )
            continue
        if rtype not in ("ECOSYSTEM", "SEMVER"):
            raise RecordError(f"unknown range type {rtype!r}")
        events = []
        for ev in _objects(r.get("events")):
            (kind, version), *extra = ev.items() if isinstance(ev, dict) else ((None, None),)
            if extra or kind not in _KINDS or not isinstance(version, str):
                raise RecordError(f"bad range event {ev!r}")
            if not unbounded_event(kind, version):
                scheme.key(version)  # raises VersionError for a bad version
            events.append((_KINDS[kind], version))
            if kind == "fixed":
                fixed.append(version)
        ranges.append(VersionRange(type=rtype, events=tuple(events)))
    db_spec = _object(entry.get("database_specific"))
    notice = db_spec.get("informational")
    if notice in _NOT_A_FLAW:
        # RustSec's notices (an unmaintained crate, a crate's notice) name no flaw and no fix:
        # cargo-audit reports them as warnings; matched, every version read vulnerable for ever.
        problems.append(
            Problem(where=where, message=f"informational advisory ({notice}), not a vulnerability")
        )
        return None
    ranges = _close_open_ranges(ranges, db_spec, scheme)
    versions = tuple(_strings(entry.get("versions")))
    if versions and ecosystems.frozen_fips_stream(raw_eco):
        ranges = []  # the stream's builds only (see ecosystems.frozen_fips_stream)
    if not ranges and not versions:
        problems.append(Problem(where=where, message="no usable range or versions list; skipped"))
        return None
    eco_spec = _object(entry.get("ecosystem_specific"))
    # Debian's urgency, Ubuntu's priority (negligible..critical), a database's own rating.
    severity = _text_severity(
        eco_spec.get("urgency")
        or eco_spec.get("ubuntu_priority")
        or eco_spec.get("severity")
        or db_spec.get("severity")
    )
    if severity == "untriaged":
        severity = None
    package = ecosystems.package_name(eco, raw_name)
    stream = ecosystems.fips_stream(raw_eco)
    if stream is not None:  # the three FIPS streams share ubuntu-fips:N (see fips_package)
        package = ecosystems.fips_package(stream, package)
    return Affected(
        ecosystem=eco,
        package=package,
        ranges=tuple(ranges),
        versions=versions,
        fix_state=FixState.FIXED if fixed else FixState.NOT_FIXED,
        fixed_version=max(fixed, key=scheme.key) if fixed else None,
        severity=severity,
    )


# The GOOS values whose binaries are ELF files: the only Go binaries Stockade reads modules from.
_ELF_GOOS = frozenset(
    ("android", "dragonfly", "freebsd", "illumos", "linux", "netbsd", "openbsd", "solaris")
)


def _go_platforms(eco: str, eco_spec: dict[str, Any]) -> str:
    """The Go vulndb names the operating systems a vulnerable package is built for
    (``imports[].goos``: ``path/filepath`` on ``windows`` for GO-2023-1568). An entry whose every
    import is limited to systems without ELF binaries (Windows, macOS, iOS, Plan 9, WebAssembly)
    cannot be in a Go module read from an image's ELF binaries: it is kept apart as
    ``go:windows`` (``go:darwin,ios``), which those modules are not looked up in. Matched as
    ``go``, every Linux binary of an affected toolchain was reported vulnerable."""
    imports = [i for i in _objects(eco_spec.get("imports")) if isinstance(i, dict)]
    systems: set[str] = set()
    for item in imports:
        goos = _strings(item.get("goos"))
        if not goos:
            return eco  # an import on every system
        systems.update(goos)
    if not imports or systems & _ELF_GOOS:
        return eco
    return f"{eco}:{','.join(sorted(systems))}"


# Rust's target_os values whose binaries are ELF files.
_ELF_TARGET_OS = _ELF_GOOS | {"haiku", "fuchsia", "redox", "l4re", "espidf", "horizon", "vita"}


def _rust_platforms(eco: str, eco_spec: dict[str, Any]) -> str:
    """RustSec names the operating systems an advisory applies to (``affects.os``: atty's
    unaligned read, RUSTSEC-2021-0145, on ``windows`` only); as for the Go vulndb's (see
    ``_go_platforms``), an entry for systems without ELF binaries only is kept apart as
    ``crates.io:windows``: the crates of a Linux image (read from its ELF binaries, or from
    the Cargo.lock of what it builds and runs) are not looked up there."""
    systems = _strings(_object(eco_spec.get("affects")).get("os"))
    if not systems or set(systems) & _ELF_TARGET_OS:
        return eco
    return f"{eco}:{','.join(sorted(set(systems)))}"


def _close_open_ranges(
    ranges: list[VersionRange], db_spec: dict[str, Any], scheme: Any
) -> list[VersionRange]:
    """The GitHub Advisory Database writes a range with no fix as ``introduced`` alone and puts
    its known end in ``database_specific.last_known_affected_version_range`` (``< 0.2``,
    ``<= 1.4.1``): without it every later version would match. The bound becomes the range's
    ``limit`` (``<``) or ``last_affected`` (``<=``) event."""
    bound = db_spec.get("last_known_affected_version_range")
    if not isinstance(bound, str):
        return ranges
    op, _, version = bound.strip().partition(" ")
    kind = {"<": EventKind.LIMIT, "<=": EventKind.LAST_AFFECTED}.get(op)
    version = version.strip()
    if kind is None or not version or not scheme.valid(version):
        return ranges
    out = []
    for r in ranges:
        if r.events and r.events[-1][0] == EventKind.INTRODUCED:
            r = VersionRange(type=r.type, events=(*r.events, (kind, version)))
        out.append(r)
    return out


def records(doc: Any) -> list[Any]:
    """The records in one JSON document: a record, a list of records (legacy Go vulndb files)."""
    if isinstance(doc, list):
        return doc
    return [doc]
