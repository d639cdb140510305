"""Who a Java archive is when it carries no ``pom.properties``: its file name and manifest.

- File names: ``NAME-VERSION`` where the version starts at the first ``-`` before a digit; two
  Debian conventions put an API version in front of the release: ``NAME-API-spec-RELEASE``
  (Geronimo specs: ``geronimo-annotation-1.3-spec-1.3`` is artifact
  ``geronimo-annotation_1.3_spec`` at ``1.3``) and ``NAME-API-RELEASE`` where the release extends
  the API (``log4j-1.2-1.2.17`` is ``log4j`` at ``1.2.17``).
- Maven coordinates: advisories name ``group:artifact``. A group is mapped from the artifact only
  for the artifacts in :data:`KNOWN_GROUPS`, and only when the manifest confirms it (its
  ``Bundle-SymbolicName``, ``Automatic-Module-Name`` or ``Implementation-Vendor-Id`` is one the
  real project writes): a look-alike file name alone never borrows another project's identity.
"""

from __future__ import annotations

import re

# syft's rule: the version starts at the first "-" followed by a digit (or rc/build)
_FILENAME = re.compile(r"^(?P<name>.+?)-(?P<version>(?:\d|rc\d|build\d).*)$", re.IGNORECASE)
_SPEC = re.compile(r"^(?P<api>\d+(?:\.\d+)*)-spec-(?P<release>\d.*)$")
_API_RELEASE = re.compile(r"^(?P<api>\d+(?:\.\d+)*)-(?P<release>\d+(?:\.\d+)+.*)$")

# artifactId -> (groupId, manifest values the project's own jars carry)
KNOWN_GROUPS: dict[str, tuple[str, frozenset[str]]] = {
    "log4j": ("log4j", frozenset({"log4j"})),
    "log4j-core": ("org.apache.logging.log4j", frozenset({"org.apache.logging.log4j.core"})),
    "log4j-api": ("org.apache.logging.log4j", frozenset({"org.apache.logging.log4j.api"})),
    "commons-io": (
        "commons-io",
        frozenset({"org.apache.commons.io", "org.apache.commons.commons-io"}),
    ),
    "commons-collections": ("commons-collections", frozenset({"org.apache.commons.collections"})),
    "commons-text": (
        "org.apache.commons",
        frozenset({"org.apache.commons.text", "org.apache.commons.commons-text"}),
    ),
    "commons-lang3": (
        "org.apache.commons",
        frozenset({"org.apache.commons.lang3", "org.apache.commons.commons-lang3"}),
    ),
    "guava": ("com.google.guava", frozenset({"com.google.guava", "com.google.common"})),
    "jackson-databind": (
        "com.fasterxml.jackson.core",
        frozenset(
            {"com.fasterxml.jackson.core.jackson-databind", "com.fasterxml.jackson.databind"}
        ),
    ),
    "snakeyaml": ("org.yaml", frozenset({"org.yaml.snakeyaml"})),
    "xstream": ("com.thoughtworks.xstream", frozenset({"xstream", "com.thoughtworks.xstream"})),
}
_CONFIRMING = ("Bundle-SymbolicName", "Automatic-Module-Name", "Implementation-Vendor-Id")
_GROUP = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+\Z")
_GUESSES = (
    "Implementation-Vendor-Id",
    "Bundle-SymbolicName",
    "Automatic-Module-Name",
    "Main-Class",
)


def split_filename(base: str) -> tuple[str, str]:
    """(name, version) from an archive's base name without extension."""
    m = _FILENAME.match(base)
    if not m:
        return base, ""
    name, version = m["name"], m["version"]
    spec = _SPEC.match(version)
    if spec:
        return f"{name}_{spec['api']}_spec", spec["release"]
    api = _API_RELEASE.match(version)
    if api and api["release"].startswith(api["api"] + "."):
        return name, api["release"]
    return name, version


def _value(manifest: dict[str, str], key: str) -> str:
    return manifest.get(key, "").split(";")[0].strip()


def confirmed_group(artifact: str, manifest: dict[str, str]) -> tuple[str, str] | None:
    """(group, how it was confirmed) when ``artifact`` is a known one and the manifest carries
    a value its project writes; else None."""
    known = KNOWN_GROUPS.get(artifact)
    if known is None:
        return None
    group, confirming = known
    for key in _CONFIRMING:
        value = _value(manifest, key)
        vendor = key == "Implementation-Vendor-Id" and value == group
        if value and (value in confirming or vendor):
            return group, f"known-artifact:{key}"
    return None


def maven_group(artifact: str, manifest: dict[str, str]) -> tuple[str, str]:
    """(group, how it was derived) for an archive without pom.properties; ("", "") if none.
    Outside the confirmed known artifacts it is a guess from a reverse-domain manifest value
    (said so in the derivation), which names no advisory's coordinates by accident."""
    confirmed = confirmed_group(artifact, manifest)
    if confirmed is not None:
        return confirmed
    for key in _GUESSES:
        value = _value(manifest, key)
        if _GROUP.match(value):
            return value, f"manifest:{key}"
    return "", ""
