"""Image reference parsing as the container runtime resolves it (docker.io defaults)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def effective_tag(self) -> str | None:
        """The tag the runtime pulls: ``latest`` when neither tag nor digest is given."""
        if self.tag is None and self.digest is None:
            return "latest"
        return self.tag


# Docker's reference library treats the registry's old name as the default one: an image written
# ``index.docker.io/library/nginx`` is pulled from docker.io, so it must be judged as docker.io.
_LEGACY_DEFAULT_REGISTRY = "index.docker.io"


def parse_image(ref: str) -> ImageRef:
    """Split ``[registry/]repo[:tag][@digest]`` the way Docker does (``index.docker.io`` is
    ``docker.io``; a first part with a dot, a port, upper case or ``localhost`` is a registry, whose
    name is lower-cased)."""
    digest: str | None = None
    rest = ref
    if "@" in ref:
        rest, digest = ref.split("@", 1)
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        registry, repository = first, remainder
    else:
        registry, repository = "docker.io", rest
    registry = registry.lower()  # a host name: EVIL.example is pulled from evil.example
    if registry == _LEGACY_DEFAULT_REGISTRY:
        registry = "docker.io"
    if registry == "docker.io" and "/" not in repository:
        repository = f"library/{repository}"
    return ImageRef(
        registry=registry, repository=repository, tag=tag or None, digest=digest or None
    )


def matches_any(image: str, patterns: list[str]) -> bool:
    """Whether a glob matches the image's registry, ``registry/repository`` (both without regard
    to case, as host names and repositories are) or the text as given."""
    ref = parse_image(image)
    named = (ref.registry, f"{ref.registry}/{ref.repository}".lower())
    return any(
        fnmatch.fnmatchcase(image, p) or any(fnmatch.fnmatchcase(n, p.lower()) for n in named)
        for p in patterns
    )


def reference_spellings(image: str) -> list[str]:
    """Every way of writing the image ``image`` names, ``image`` itself first: Docker Hub's
    familiar forms (``nginx:1.27``, ``library/nginx:1.27``, ``docker.io/library/nginx:1.27``,
    ``index.docker.io/...``) and, without tag or digest, ``:latest``. A scan stored under one of
    them is the scan of the image a pod writes another way."""
    ref = parse_image(image)
    names = [f"{ref.registry}/{ref.repository}"]
    if ref.registry == "docker.io":
        short = ref.repository.removeprefix("library/")
        names += [f"index.docker.io/{ref.repository}", ref.repository]
        if short != ref.repository:
            names += [short, f"docker.io/{short}", f"index.docker.io/{short}"]
    suffixes = [(f":{ref.tag}" if ref.tag else "") + (f"@{ref.digest}" if ref.digest else "")]
    if ref.tag is None and ref.digest is None:
        suffixes.append(":latest")  # what the runtime pulls
    return list(dict.fromkeys([image, *(n + s for s in suffixes for n in names)]))
