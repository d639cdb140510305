"""Registry auto-scan: walk the catalog and tags, scan each manifest digest once, re-match stored
inventories when the advisory data changed, and poll for new tags.

Per tag: the registry tells the manifest digest (one manifest request). A digest never seen is read and
cataloged once and its inventory kept; a digest already kept is only matched again (no layer read)
when the advisory database was rebuilt since its last match, or when it shows up under a new tag;
otherwise the tag is unchanged and costs nothing more. What was last decided per tag (digest and
advisory build time) is read from the tag's latest run.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stockade.model import Severity
from stockade.model.errors import InputError
from stockade.model.progress import NullObserver, Observer
from stockade.scanning.pipeline import Backend, ScanOptions, evaluate, rematch_stored
from stockade.scanning.results import DatabaseInfo, ScanReport
from stockade.scanning.scan_store import (
    image_state,
    load_inventory,
    record_scan,
    save_inventory,
)
from stockade.store import Store


class RegistryLister(Protocol):
    """What the walk needs from a registry client."""

    def repositories(self) -> Sequence[str]: ...

    def tags(self, repository: str) -> Sequence[str]: ...

    def manifest_digest(self, repository: str, tag: str) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class WalkItem:
    reference: str
    digest: str | None
    action: str  # "scanned", "rematched", "cached", "unchanged", "error"
    counts: dict[str, int] = field(default_factory=dict)
    failed: bool = False
    read_layers: int = 0
    error: str | None = None
    # What the scan could not check (nothing identified, ecosystems without advisory data) and
    # whether that fails the run (--fail-on without --allow-unchecked).
    not_checked: tuple[str, ...] = ()
    unchecked_failed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Walk:
    poll: int
    host: str
    items: tuple[WalkItem, ...]

    @property
    def failed(self) -> bool:
        return any(i.failed for i in self.items)

    @property
    def unchecked_failed(self) -> bool:
        return any(i.unchecked_failed for i in self.items)

    @property
    def errors(self) -> int:
        return sum(1 for i in self.items if i.action == "error")

    def tally(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in self.items:
            out[i.action] = out.get(i.action, 0) + 1
        return out

    def line(self) -> str:
        parts = ", ".join(f"{n} {a}" for a, n in sorted(self.tally().items())) or "no tags"
        return f"poll {self.poll}: {self.host}: {len(self.items)} tags ({parts})"


def repository_selected(repo: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(repo, p) for p in patterns)


def walk_registry(
    store: Store,
    host: str,
    lister: RegistryLister,
    *,
    patterns: Sequence[str],
    options: ScanOptions,
    backend: Backend,
    observer: Observer | None = None,
    poll: int = 1,
) -> Walk:
    """One pass over the registry."""
    db = backend.check_db(store, options.max_db_age, options.allow_stale_db)
    key = backend.catalogers_key()
    observer = observer or NullObserver()
    items = []
    for repo in sorted(r for r in lister.repositories() if repository_selected(r, patterns)):
        for tag in sorted(lister.tags(repo)):
            ref = f"{host}/{repo}:{tag}"
            try:
                digest = lister.manifest_digest(repo, tag)
                items.append(_visit(store, ref, digest, options, backend, observer, db, key))
            except InputError as exc:
                # One unreadable image must not hide the rest of the registry; it is reported.
                items.append(WalkItem(reference=ref, digest=None, action="error", error=str(exc)))
    return Walk(poll=poll, host=host, items=tuple(items))


def _visit(
    store: Store,
    ref: str,
    digest: str,
    options: ScanOptions,
    backend: Backend,
    observer: Observer,
    db: DatabaseInfo,
    key: str,
) -> WalkItem:
    stored = load_inventory(store, digest)
    if stored is None or stored.catalogers != key:
        inv = backend.build_inventory(ref, store, observer, options.image, None)
        report = evaluate(store, inv, options, backend, db)
        save_inventory(store, inv, catalogers=key)
        if inv.image is None or inv.image.manifest_digest != digest:
            # The tag names an index: keep the platform's inventory under the index digest too.
            save_inventory(store, inv, catalogers=key, digest=digest)
        record_scan(store, report, reference=ref, mode="scan")
        return _item(ref, digest, "scanned", report)
    seen = image_state(store, ref)
    if seen is not None and seen.digest == digest:
        if seen.db_built == db.built:
            # Nothing new to learn: report the last run's counts against today's --fail-on.
            policy = options.policy
            return WalkItem(
                reference=ref,
                digest=digest,
                action="unchanged",
                counts=seen.counts,
                failed=_fails(seen.counts, policy.fail_on),
                not_checked=tuple(seen.coverage.lines()),
                unchecked_failed=policy.fail_on is not None
                and seen.coverage.incomplete
                and not policy.allow_unchecked,
            )
        action = "rematched"  # same image, new advisory data
    else:
        action = "cached"  # a new tag (or a moved one) for an image already read
    rematched = rematch_stored(store, digest, ref, options, backend, db, mode=action)
    assert rematched is not None
    return _item(ref, digest, action, rematched)


def _fails(counts: dict[str, int], fail_on: Severity | None) -> bool:
    if fail_on is None:
        return False
    return any(n for name, n in counts.items() if Severity.parse(name) >= fail_on)


def _item(ref: str, digest: str, action: str, report: ScanReport) -> WalkItem:
    return WalkItem(
        reference=ref,
        digest=digest,
        action=action,
        counts=report.gate.counts(),
        failed=report.gate.failed,
        read_layers=report.inventory.read_layers,
        not_checked=tuple(report.coverage_lines()),
        unchecked_failed=report.unchecked_failed,
    )


def watch_registry(
    store: Store,
    host: str,
    *,
    patterns: Sequence[str],
    options: ScanOptions,
    backend: Backend,
    namespaces: Sequence[str] = (),
    lister: RegistryLister | None = None,
    observer: Observer | None = None,
    watch: bool = False,
    interval: float = 60.0,
    max_polls: int | None = None,
    on_walk: Callable[[Walk], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Walk]:
    """Walk once, or with ``watch`` keep polling (``max_polls`` bounds it) for new tags.
    ``namespaces`` limits the walk (and names what to list on Docker Hub, which has no catalog)."""
    own = lister is None
    if lister is None:
        from stockade.scanning.backend_adapters import registry_lister

        lister = registry_lister(host, options.image, namespaces)
    try:
        return _poll(
            store,
            host,
            lister,
            patterns,
            options,
            backend,
            observer,
            watch,
            interval,
            max_polls,
            on_walk,
            sleep,
        )
    finally:
        close = getattr(lister, "close", None)
        if own and close is not None:
            close()


def _poll(
    store: Store,
    host: str,
    lister: RegistryLister,
    patterns: Sequence[str],
    options: ScanOptions,
    backend: Backend,
    observer: Observer | None,
    watch: bool,
    interval: float,
    max_polls: int | None,
    on_walk: Callable[[Walk], None] | None,
    sleep: Callable[[float], None],
) -> list[Walk]:
    walks: list[Walk] = []
    polls = (max_polls or 1) if not watch else max_polls
    n = 0
    while polls is None or n < polls:
        n += 1
        walk = walk_registry(
            store,
            host,
            lister,
            patterns=patterns,
            options=options,
            backend=backend,
            observer=observer,
            poll=n,
        )
        walks.append(walk)
        if on_walk is not None:
            on_walk(walk)
        if not watch or (polls is not None and n >= polls):
            break
        sleep(interval)
    return walks


def render_walk(walks: Iterable[Walk], fmt: str) -> str:
    walks = list(walks)
    if fmt == "json":
        return json.dumps(
            [
                {
                    "poll": w.poll,
                    "host": w.host,
                    "tally": w.tally(),
                    "images": [
                        {
                            "reference": i.reference,
                            "digest": i.digest,
                            "action": i.action,
                            "by_severity": i.counts,
                            "failed": i.failed,
                            "read_layers": i.read_layers,
                            "error": i.error,
                            "complete": not i.not_checked if i.action != "error" else None,
                            "not_checked": list(i.not_checked),
                            "unchecked_failed": i.unchecked_failed,
                        }
                        for i in w.items
                    ],
                }
                for w in walks
            ],
            indent=2,
        )
    lines = []
    for w in walks:
        lines.append(w.line())
        for i in w.items:
            counts = " ".join(f"{k[0].upper()}:{v}" for k, v in i.counts.items() if v)
            # "no vulnerabilities" only when the whole image was checked
            detail = i.error or counts or ("" if i.not_checked else "no vulnerabilities")
            if i.action == "unchanged":
                detail = "unchanged"
            line = f"  {i.action:<9} {i.reference} {(i.digest or '')[:19]} {detail}".rstrip()
            lines.append(line)
            lines += [f"            NOT CHECKED: {note}" for note in i.not_checked]
    return "\n".join(lines)
