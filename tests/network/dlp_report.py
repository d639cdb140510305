"""Summary lines the DLP corpus tests leave for the terminal summary (tests/network/conftest.py)."""

from __future__ import annotations

import pytest

DLP_SUMMARY = pytest.StashKey[list[str]]()


def report(config: pytest.Config, line: str) -> None:
    config.stash.setdefault(DLP_SUMMARY, []).append(line)
