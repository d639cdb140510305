"""Matching an inventory against the advisory store.

OS packages are looked up by (distribution release, source package), as distributions publish
advisories (``debian:12`` + ``openssl``, from the Debian tracker and OSV ``Debian:12`` records;
``alpine:3.19`` + origin). Amazon Linux and SUSE by binary package (their data names binaries). A modular
RPM (``modularitylabel`` ``nodejs:18:...``) is looked up as ``nodejs:18/<source>``, so only
advisories for that module stream apply. Rocky and AlmaLinux packages are also looked up in the
RHEL release they declare compatibility with (``rocky:9`` -> ``redhat:9``), and SLE Micro for Rancher
in SLE Micro's (``sle-micro-rancher:5.4`` -> ``sle-micro:5.4``); such findings say so in their data
source. Language packages by ecosystem and normalized name. Each installed version's key is
encoded once as bytes (``versions.sortable``) and the store's spans of each row's ranges
(``advisories.spans``) let the database return only the rows the version falls in, with their
records, in a few queries (one per ecosystem and 400 packages). Rows it cannot decide (RubyGems,
Maven versions with qualifiers, versions an older importer stored that the scheme rejects) are
walked in Python: each distinct ranges text decoded once, each version string parsed once per
scheme (cached keys).

Records that name each other (an id in another's aliases) are merged into one finding per
vulnerability per package, carrying every id (CVE, GHSA, PYSEC, DSA...).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any
from urllib.parse import unquote

from sqlalchemy import Connection

from stockade.model import Finding, ResourceRef
from stockade.model.slots import slot_constructor
from stockade.scanning.advisories import ecosystems
from stockade.scanning.advisories.model import unbounded_event
from stockade.scanning.advisories.spans import UNKEYED
from stockade.scanning.advisories.store import (
    HIT_FIX,
    HIT_PK,
    HIT_PROBE,
    HIT_SEQ,
    AffectedRow,
    RecordRow,
    SpanHit,
    affected_rows,
    affected_rows_by_pk,
    ecosystems_with_data,
    ensure_spans,
    record_rows,
    scores_of_ids,
    span_hits,
)
from stockade.scanning.interface import Inventory, Package, Unchecked
from stockade.scanning.match_eval import (
    AFFECTED_NO_FIX,
    StoredRanges,
    load_json,
    stored_range_fix,
    stored_ranges,
    versions_list,
)
from stockade.scanning.match_findings import (
    RowHit,
    build_findings,
    ids_without_score,
    with_scores_of_ids,
)
from stockade.scanning.versions import Scheme, VersionError, scheme_for
from stockade.scanning.versions.sortable import NotSortable, stored_key, text_key
from stockade.store.db import Store

_LANGUAGE_TYPES = {
    "python": "pypi",
    "npm": "npm",
    "go-module": "go",
    "java-archive": "maven",
    "rust-crate": "crates.io",
    "gem": "rubygems",
    "php-composer": "packagist",
    "dotnet": "nuget",
}
_OS_TYPES = ("deb", "apk", "rpm")


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What one package is looked up and compared as."""

    package: Package
    ecosystem: str
    name: str
    version: str
    via: str | None = None  # the compatible release looked up instead (``redhat:9``)


# Every package gets a Target: built by filling its slots (see ``slot_constructor``).
_new_target = slot_constructor(Target)


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchReport:
    findings: tuple[Finding, ...]
    skipped: tuple[str, ...]  # packages that could not be checked, with the reason
    checked: int  # packages looked up in an ecosystem the store has advisory data for
    # Whole distribution releases or ecosystems that went unchecked, with their package counts.
    unchecked: tuple[Unchecked, ...] = ()


def target_for(
    pkg: Package,
    distro_eco: str | None,
    source_epochs: Mapping[tuple[str, str], str] | None = None,
) -> Target | str:
    """The lookup target of a package, or the reason it cannot be checked. ``source_epochs``:
    the epoch of each source RPM (name, version-release) of the inventory that is known (see
    :func:`source_rpm_epochs`)."""
    if pkg.type in _OS_TYPES:
        if distro_eco is None:
            return f"{pkg.name} {pkg.version}: unknown distribution, OS package not checked"
        by_binary = pkg.type == "apk" or ecosystems.keyed_by_binary(distro_eco)
        name = pkg.name if by_binary and pkg.type == "rpm" else (pkg.source_name or pkg.name)
        version = pkg.version if by_binary else (pkg.source_version or pkg.version)
        if pkg.type == "deb":
            # A FIPS build, a Realtime kernel... is matched against its own stream's data only.
            distro_eco = ecosystems.separate_build(distro_eco, name, version) or distro_eco
        if pkg.type == "rpm":
            epoch = pkg.meta("epoch")
            if own_version(pkg) and not by_binary:
                # A subpackage with a version of its own (perl-Errno 1.28 from perl 5.26.3) has
                # an epoch of its own too (0; perl's is 4): the source's is another package's.
                epoch = (source_epochs or {}).get((name, version))
            if epoch and epoch != "0" and ":" not in version:
                version = f"{epoch}:{version}"  # rpm headers keep the epoch apart
            module = _module_stream(pkg.meta("modularity-label"))
            if module:
                name = f"{module}/{name}"
        return _new_target(package=pkg, ecosystem=distro_eco, name=name, version=version, via=None)
    eco = _LANGUAGE_TYPES.get(pkg.type)
    if eco is None:
        return f"{pkg.name} {pkg.version}: package type {pkg.type!r} has no advisory ecosystem"
    name = pkg.name
    if eco == "maven" and ":" not in name:
        group = pkg.meta("maven-group") or pkg.meta("group") or _purl_namespace(pkg.purl, "maven")
        if not group:
            return f"{pkg.name} {pkg.version}: Maven package without a groupId"
        name = f"{group}:{pkg.name}"
    return _new_target(
        package=pkg,
        ecosystem=eco,
        name=ecosystems.package_name(eco, name),
        version=pkg.version,
        via=None,
    )


def own_version(pkg: Package) -> bool:
    """An RPM whose version-release is not its source RPM's (a subpackage versioned apart)."""
    if pkg.type != "rpm" or not pkg.source_version:
        return False
    return pkg.version.rpartition(":")[2] != pkg.source_version


def source_rpm_epochs(packages: Iterable[Package]) -> dict[tuple[str, str], str]:
    """The epoch of each source RPM (name, version-release) that an installed binary built at
    the source's own version-release carries (perl-libs 4:5.26.3-421.el8 from
    perl-5.26.3-421.el8.src.rpm: 4). The source RPM's file name has no epoch, and a subpackage
    versioned apart has its own."""
    out: dict[tuple[str, str], str] = {}
    for p in packages:
        if p.type == "rpm" and p.source_name and p.source_version and not own_version(p):
            out.setdefault((p.source_name, p.source_version), p.meta("epoch") or "0")
    return out


def _module_stream(label: str | None) -> str | None:
    """``nodejs:18:8080020230808111853:ad008a3a`` -> ``nodejs:18`` (None without a label)."""
    parts = (label or "").split(":")
    return f"{parts[0]}:{parts[1]}" if len(parts) >= 2 and parts[0] and parts[1] else None


def _with_compatible(targets: list[Target]) -> list[Target]:
    """Each target, followed by its lookup in the release it declares compatibility with."""
    out: list[Target] = []
    for t in targets:
        out.append(t)
        compat = ecosystems.compatible_release(t.ecosystem)
        if compat is not None:
            out.append(
                _new_target(
                    package=t.package, ecosystem=compat, name=t.name, version=t.version, via=compat
                )
            )
    return out


def _with_fips_streams(targets: list[Target], streams: tuple[str, ...]) -> list[Target]:
    """A FIPS build's lookups: its name in each FIPS stream the image's apt sources follow
    (every stream when they name none), and as stored before the streams were kept apart (a
    store imported by an earlier release: its sources are to be imported again)."""
    out: list[Target] = []
    for t in targets:
        if t.ecosystem.startswith("ubuntu-fips:"):
            for stream in streams or ecosystems.FIPS_STREAMS:
                name = ecosystems.fips_package(stream, t.name)
                out.append(
                    _new_target(
                        package=t.package,
                        ecosystem=t.ecosystem,
                        name=name,
                        version=t.version,
                        via=None,
                    )
                )
        out.append(t)
    return out


def _stream_lookup(t: Target) -> bool:
    """A FIPS build's lookup in one stream (its plain lookup stands for it in counts)."""
    return t.ecosystem.startswith("ubuntu-fips:") and "/" in t.name


def _unlookable_group(pkg: Package, inventory: Inventory) -> tuple[str, str] | None:
    """The (ecosystem, reason) a package that has no lookup target is counted under, or None when
    only that one package is at fault (a bad version, a jar without a groupId: it stays skipped)."""
    if pkg.type in _OS_TYPES:
        d = inventory.distro
        if d is None:
            return (f"{pkg.type} (unknown distribution)", "no os-release: distribution unknown")
        release = f"{d.id}:{d.version_id or d.version_codename or '?'}"
        return (release, f"distribution {release} is not supported")
    if pkg.type not in _LANGUAGE_TYPES:
        return (pkg.type, f"package type {pkg.type!r} has no advisory ecosystem")
    return None


def _purl_namespace(purl: str, kind: str) -> str | None:
    """``pkg:maven/org.example/artifact@1.0`` -> ``org.example``."""
    prefix = f"pkg:{kind}/"
    if not purl.startswith(prefix):
        return None
    path = purl[len(prefix) :].split("@", 1)[0].split("?", 1)[0]
    namespace, _, _name = path.rpartition("/")
    return unquote(namespace) or None


class Matcher:
    """Loads the advisories an inventory needs, once, and turns packages into findings."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self, inventory: Inventory) -> MatchReport:
        """Findings for every package of the inventory, and the packages that were skipped."""
        with _no_gc():
            return self._run(inventory)

    def _epochs_from_advisories(self, targets: list[Target], which: list[int]) -> list[Target]:
        """Targets of subpackages versioned apart whose source RPM's epoch no installed binary
        tells: the epoch the advisories give their source's versions, when they all give one
        (Red Hat writes perl's fixes 4:5.26.3-...). Compared at epoch 0, every fix of an
        epoch above 0 read them as affected for ever."""
        with self.store.connect() as conn:
            rows = affected_rows(conn, {(targets[i].ecosystem, targets[i].name) for i in which})
        # One epoch per package over all its lookups (Rocky's and RHEL's): one installed key.
        found: dict[int, list[AffectedRow]] = {}
        for i in which:
            t = targets[i]
            found.setdefault(id(t.package), []).extend(rows.get((t.ecosystem, t.name), []))
        epochs = {pkg: _advisory_epoch(pkg_rows) for pkg, pkg_rows in found.items()}
        out = list(targets)
        for i in which:
            t = targets[i]
            epoch = epochs[id(t.package)]
            if epoch and epoch != "0":
                out[i] = _new_target(
                    package=t.package,
                    ecosystem=t.ecosystem,
                    name=t.name,
                    version=f"{epoch}:{t.version}",
                    via=t.via,
                )
        return out

    def _run(self, inventory: Inventory) -> MatchReport:
        ensure_spans(self.store)
        distro_eco = None
        if inventory.distro is not None:
            d = inventory.distro
            distro_eco = ecosystems.from_distro(d.id, d.version_id, d.version_codename)
        candidates: list[Target] = []
        skipped: list[str] = []
        unchecked: dict[tuple[str, str], int] = {}
        rpms = [p for p in inventory.packages if p.type == "rpm"] if distro_eco else []
        epochs = source_rpm_epochs(rpms)
        for pkg in inventory.packages:
            t = target_for(pkg, distro_eco, epochs)
            if isinstance(t, str):
                skipped.append(t)
                group = _unlookable_group(pkg, inventory)
                if group is not None:
                    unchecked[group] = unchecked.get(group, 0) + 1
            elif scheme_for(t.ecosystem) is None:
                skipped.append(f"{pkg.name} {pkg.version}: no version scheme for {t.ecosystem}")
                group = (t.ecosystem, "no version scheme for this ecosystem")
                unchecked[group] = unchecked.get(group, 0) + 1
            else:
                candidates.append(t)
        streams = tuple(
            s
            for s in (inventory.distro.fips_streams if inventory.distro is not None else ())
            if s in ecosystems.FIPS_STREAMS  # an SBOM's distro says what it likes
        )
        if distro_eco is not None and distro_eco.startswith("ubuntu:"):
            candidates = _with_fips_streams(candidates, streams)
        candidates = _with_compatible(candidates)
        unknown = (
            [
                i
                for i, t in enumerate(candidates)
                if ":" not in t.version
                and own_version(t.package)
                and not ecosystems.keyed_by_binary(t.ecosystem)
                and (t.package.source_name or "", t.package.source_version or "") not in epochs
            ]
            if rpms
            else []
        )
        if unknown:
            candidates = self._epochs_from_advisories(candidates, unknown)
        with self.store.connect() as conn:
            covered = ecosystems_with_data(conn, {t.ecosystem for t in candidates})
        # A package counts as checked when its own release or a compatible one has data.
        checked_pkgs = {id(t.package) for t in candidates if t.ecosystem in covered}
        own_target = {id(t.package): t for t in candidates if t.via is None}
        targets = []
        for t in candidates:
            if t.ecosystem in covered:
                targets.append(t)
            elif t.via is None and id(t.package) not in checked_pkgs and not _stream_lookup(t):
                group = (t.ecosystem, f"no advisory data for {t.ecosystem} in the store")
                unchecked[group] = unchecked.get(group, 0) + 1
        # A package's own target and its compatible-release target give one set of findings.
        by_package: dict[int, list[Target]] = {}
        for t in targets:
            by_package.setdefault(id(t.package), []).append(t)
        # The installed version's key of each package, as stored bytes for the database to compare
        # with the rows' spans (b"" for schemes whose rows are all evaluated in Python). A package's
        # lookups are probes first, first + 1... (None: its rows are all walked in Python).
        packages: list[tuple[list[Target], Scheme, Any, int | None]] = []
        probes: dict[str, list[tuple[int, str, bytes, str]]] = {}
        n_probes = 0
        bad_versions: list[tuple[list[Target], VersionError]] = []
        by_python: list[list[Target]] = []  # packages whose key cannot be stored as bytes
        for lookups in by_package.values():
            scheme = scheme_for(lookups[0].ecosystem)
            assert scheme is not None
            # Most versions are encoded from their text: parsed only if a row of the package is
            # walked in Python.
            key: Any = _UNPARSED
            try:
                stored = text_key(scheme.name, lookups[0].version)
                if stored is None:
                    key = scheme.key(lookups[0].version)
                    stored = stored_key(scheme, key) or b""
            except VersionError as exc:
                bad_versions.append((lookups, exc))
                continue
            except NotSortable:
                by_python.append(lookups)
                packages.append((lookups, scheme, key, None))
                continue
            packages.append((lookups, scheme, key, n_probes))
            for t in lookups:
                probes.setdefault(t.ecosystem, []).append((n_probes, t.name, stored, t.version))
                n_probes += 1
        # Per probe: the span query's rows (see SpanHit), then per package the rows walked in
        # Python, shaped alike.
        found: list[list[SpanHit]] = [[] for _ in range(n_probes)]
        unkeyed: list[int] = []  # the affected rows of unkeyed spans (their pks)
        with self.store.connect() as conn:
            for eco, eco_probes in probes.items():
                for r in span_hits(conn, eco, eco_probes):
                    found[r[HIT_PROBE]].append(r)
                    if r[HIT_SEQ] == UNKEYED:
                        unkeyed.append(r[HIT_PK])
            # The rows the Python walk takes: their ranges and versions.
            walked = affected_rows_by_pk(conn, unkeyed) if unkeyed else {}
            # An installed version the scheme rejects is reported when the package has advisories.
            listed = affected_rows(
                conn, {(t.ecosystem, t.name) for ts, _e in bad_versions for t in ts}
            )
            skipped.extend(
                f"{ts[0].package.name}: {exc}"
                for ts, exc in bad_versions
                if any((t.ecosystem, t.name) in listed for t in ts)
            )
            python_rows = _python_rows(conn, by_python, walked)
        # Per scheme: ranges text -> decoded ranges (None: a version the scheme rejects). A
        # distribution fix closes many CVEs of a package at the same version: decoded once.
        memos: dict[str, dict[str, StoredRanges | None]] = {}
        bad_rows: list[tuple[AffectedRow, RecordRow, VersionError]] = []
        matched: list[tuple[Target, list[RowHit], Scheme]] = []
        for lookups, scheme, key, first in packages:
            hits: list[RowHit] = []
            memo = memos.setdefault(scheme.name, {})
            for j, t in enumerate(lookups):
                if first is None:
                    rows_in = python_rows.get((t.ecosystem, t.name), [])
                else:
                    rows_in = _first_per_row(found[first + j])
                via = t.via
                for r in rows_in:
                    fix = r[HIT_FIX]
                    if r[HIT_SEQ] == UNKEYED:
                        if key is _UNPARSED:
                            key = scheme.key(t.version)
                        row = walked[r[HIT_PK]]
                        fix = _python_fix(row, r, t.version, key, scheme, memo, bad_rows)
                        if fix is None:
                            continue
                    hits.append((r, fix or None, via))
            if hits:
                matched.append((own_target[id(lookups[0].package)], hits, scheme))
        skipped.extend(f"advisory {rec[1]} for {r[0]}: {exc}" for r, rec, exc in bad_rows)
        findings: list[Finding] = []
        resource = _resource(inventory)
        for own, hits, scheme in matched:
            findings.extend(build_findings(own, hits, scheme, resource))
        unscored = ids_without_score(findings)
        if unscored:  # the scores of the NVD records of these ids
            with self.store.connect() as conn:
                scores = scores_of_ids(conn, unscored)
            if scores:
                findings = with_scores_of_ids(findings, scores)
        return MatchReport(
            findings=tuple(findings),
            skipped=tuple(skipped),
            checked=len(by_package),
            unchecked=tuple(
                Unchecked(ecosystem=eco, packages=n, reason=reason)
                for (eco, reason), n in sorted(unchecked.items())
            ),
        )


def _advisory_epoch(rows: list[AffectedRow]) -> str | None:
    """The one epoch every version of these rows' ranges carries (None: several, or none)."""
    found = set()
    for row in rows:
        for _type, events in load_json(row[1]):
            for kind, v in events:
                if not unbounded_event(kind, v):
                    head, colon, _rest = v.partition(":")
                    found.add(head if colon else "0")
    return found.pop() if len(found) == 1 else None


def _python_fix(
    row: AffectedRow,
    rec: RecordRow,
    version: str,
    key: Any,
    scheme: Scheme,
    memo: dict[str, StoredRanges | None],
    bad_rows: list[tuple[AffectedRow, RecordRow, VersionError]],
) -> str | None:
    """The range walk in Python, for a row without stored spans: None when the installed version
    is not affected, else its fix ("" when none)."""
    text = row[1]
    if text in memo:
        ranges = memo[text]
    else:
        try:
            ranges = memo[text] = stored_ranges(text, scheme.key)
        except VersionError as exc:  # only from data stored by an older importer
            ranges = memo[text] = None
            bad_rows.append((row, rec, exc))
    if ranges is None:
        return None
    fix = stored_range_fix(key, ranges, scheme.key)
    # An explicit versions list names affected versions, not their fix.
    if fix is None and row[2] != "[]" and version in versions_list(row[2]):
        return AFFECTED_NO_FIX
    return fix


_UNPARSED = object()  # an installed version's key not parsed yet (see Matcher._run)


_ROW_ORDER = itemgetter(HIT_PK, HIT_SEQ)


def _first_per_row(rows: list[SpanHit]) -> list[SpanHit]:
    """A probe's rows in pk order, each once: with its first matching range (lowest seq)."""
    if len(rows) < 2:
        return rows
    rows.sort(key=_ROW_ORDER)
    out = [rows[0]]
    last = rows[0][HIT_PK]
    for r in rows:
        pk = r[HIT_PK]
        if pk != last:
            out.append(r)
            last = pk
    return out


def _python_rows(
    conn: Connection, packages: list[list[Target]], walked: dict[int, AffectedRow]
) -> dict[tuple[str, str], list[SpanHit]]:
    """Every row of these packages (whose installed key cannot be stored as bytes), shaped as a
    SpanHit of an unkeyed span, so that the walk in Python takes them (added to ``walked``)."""
    if not packages:
        return {}
    rows = affected_rows(conn, {(t.ecosystem, t.name) for ts in packages for t in ts})
    records = record_rows(conn, [r[5] for found in rows.values() for r in found])
    for found in rows.values():
        walked.update((r[6], r) for r in found)
    return {
        k: [(*records[r[5]], None, UNKEYED, None, r[6], r[3], r[4]) for r in found]
        for k, found in rows.items()
    }


@contextmanager
def _no_gc() -> Iterator[None]:
    """Matching allocates many small acyclic objects; the cyclic collector would walk the whole
    heap again and again for nothing (it costs a third of the time on large inventories)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def match(inventory: Inventory, store: Store) -> list[Finding]:
    """The vulnerability findings for an inventory (see :class:`Matcher` for skipped packages)."""
    return list(Matcher(store).run(inventory).findings)


def _resource(inv: Inventory) -> ResourceRef:
    digest = inv.image.manifest_digest if inv.image else None
    return ResourceRef(kind="image", name=inv.source, digest=digest)
