"""Python versions (PEP 440), parsed by ``packaging``; its error is wrapped once here."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from stockade.scanning.versions.interface import Scheme, VersionError


def parse(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion as exc:
        raise VersionError("pep440", text, "not a PEP 440 version") from exc


SCHEME = Scheme("pep440", parse)
