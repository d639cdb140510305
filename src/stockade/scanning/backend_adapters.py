"""The real backend of a scan: the image reader, the catalogers, the advisory store, the matcher.

Kept apart from :mod:`stockade.scanning.pipeline` so the pipeline imports none of them until a
scan runs (CLI start-up stays fast) and so this is the one place that knows their signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from stockade.model.progress import Observer
from stockade.scanning.interface import Inventory
from stockade.scanning.pipeline import ImageOptions, MatchOutcome
from stockade.scanning.results import DatabaseInfo
from stockade.store import Store

if TYPE_CHECKING:
    from stockade.scanning.registry_scan import RegistryLister
    from stockade.scanning.sources.interface import OpenImage
    from stockade.scanning.sources.registry import RegistryClient


def check_db(store: Store, max_age: timedelta, allow_stale: bool) -> DatabaseInfo:
    """Raise StaleDataError when the advisory data is missing, or too old unless allowed."""
    from stockade.scanning.advisories.freshness import check_freshness, reimport_lines

    info = check_freshness(store, max_age=max_age, allow_stale=allow_stale)
    if info.upgrade_pending:  # an upgrade's work first: it finds sources to import again
        from stockade.scanning.advisories.store import ensure_spans

        ensure_spans(store)
        info = check_freshness(store, max_age=max_age, allow_stale=allow_stale)
    return DatabaseInfo(
        built=info.built_at,
        sources=info.sources,
        generation=info.generation,
        warnings=tuple(reimport_lines(info.reimport)),
    )


def build_inventory(
    ref: str,
    store: Store,
    observer: Observer,
    image: ImageOptions,
    opened: OpenImage | None = None,
) -> Inventory:
    """Inventory ``ref``; an image already opened (manifest and config read) is not resolved
    again."""
    from stockade.scanning.catalogers import default_catalogers, finalize
    from stockade.scanning.inventory import build_inventory as build
    from stockade.scanning.inventory import inventory_image

    # finalize turns the catalogers' pseudo-packages (os-release, deb copyright, skipped files)
    # into the distro, licenses and skipped reasons: only real packages reach the matcher.
    if opened is not None:
        return finalize(
            inventory_image(
                opened.source,
                opened.resolved,
                catalogers=default_catalogers(),
                store=store,
                observer=observer,
            )
        )
    return finalize(
        build(
            ref,
            catalogers=default_catalogers(),
            store=store,
            observer=observer,
            platform=image.platform,
            insecure=image.insecure,
            auth=image.registry_auth(),
        )
    )


def open_image(ref: str, image: ImageOptions) -> OpenImage | None:
    """Open an image and read only its manifest and config; None for filesystem sources. The
    caller closes it."""
    from stockade.scanning.sources import open_source
    from stockade.scanning.sources.interface import OpenImage, parse_reference

    parsed = parse_reference(ref)
    if not parsed.is_image:
        return None
    # Credentials (and the module that finds them) only for a registry: a file needs none.
    auth = image.registry_auth() if parsed.kind == "registry" else None
    source = open_source(parsed, insecure=image.insecure, auth=auth)
    try:
        return OpenImage(source, source.resolve(image.platform))
    except BaseException:
        source.close()
        raise


# ``name@version`` of every default cataloger, sorted: what ``cataloger_key(default_catalogers())``
# gives, written out so that a re-scan of a kept inventory does not import the catalogers (a tenth
# of a second). tests/scanning/test_rescan_fast_path.py fails when a cataloger changes its version.
CATALOGERS_KEY = (
    "apk@2,apt-sources@1,composer@2,dotnet-deps@1,dpkg@3,elf-package-note@1,golang@3,java@3,"
    "npm@2,os-release@1,python@2,rpm@3,ruby@1,rust@1"
)


def catalogers_key() -> str:
    """Names and versions of the catalogers in use: kept inventories made by others are stale."""
    return CATALOGERS_KEY


def match(store: Store, inv: Inventory) -> MatchOutcome:
    """Findings, the packages the matcher could not check, and what went unchecked as a whole."""
    from stockade.scanning.matcher import Matcher

    result = Matcher(store).run(inv)
    return MatchOutcome(
        findings=result.findings, skipped=result.skipped, unchecked=result.unchecked
    )


def read_sbom(path: str) -> Inventory:
    """A CycloneDX, SPDX, syft or Stockade JSON SBOM as an inventory (format from the content)."""
    from stockade.model.errors import InputError
    from stockade.scanning.sbom import MAX_SBOM, read

    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SBOM + 1)
    except FileNotFoundError as exc:
        raise InputError("no such file", subject=path) from exc
    except IsADirectoryError as exc:
        raise InputError("is a directory, expected an SBOM file", subject=path) from exc
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", subject=path) from exc
    return read(data, name=path)


def registry_lister(
    host: str, image: ImageOptions, namespaces: Sequence[str] = ()
) -> RegistryLister:
    """The image reader's registry client, seen as the registry walk needs it: repositories from
    the catalog, or from Docker Hub's API for ``docker.io`` (which has no catalog)."""
    from stockade.scanning.sources.registry import RegistryClient

    client = RegistryClient(host, insecure=image.insecure, auth=image.registry_auth())
    return _ClientLister(client, tuple(namespaces))


class _ClientLister:
    def __init__(self, client: RegistryClient, namespaces: tuple[str, ...] = ()) -> None:
        self.client = client
        self.namespaces = namespaces

    def repositories(self) -> Sequence[str]:
        from stockade.scanning.sources.docker_hub import hub_repositories
        from stockade.scanning.sources.registry_auth import HUB_HOSTS

        if self.client.host in HUB_HOSTS:
            return hub_repositories(self.client, self.namespaces)
        repos = self.client.list_repositories()
        if not self.namespaces:
            return repos
        return [r for r in repos if r.split("/", 1)[0] in self.namespaces and "/" in r]

    def tags(self, repository: str) -> Sequence[str]:
        return self.client.list_tags(repository)

    def manifest_digest(self, repository: str, tag: str) -> str:
        """The digest of the manifest (or index) the tag points at: the bytes, hashed."""
        from stockade.scanning.sources import manifest as mf

        response = self.client.get(
            f"/v2/{repository}/manifests/{tag}",
            f"repository:{repository}:pull",
            f"manifest {repository}:{tag}",
            {"Accept": mf.ACCEPT},
        )
        return mf.sha256_digest(response.content)

    def close(self) -> None:
        self.client.close()
