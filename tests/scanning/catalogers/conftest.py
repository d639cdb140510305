"""Fixtures: real inputs assembled into a root filesystem (see catalog_inputs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import require
from tests.scanning.catalogers import catalog_inputs


@pytest.fixture(scope="session")
def sample_root() -> Path:
    missing = catalog_inputs.missing_tools()
    require(not missing, f"tools to build the sample root are missing: {', '.join(missing)}")
    return catalog_inputs.sample_root()
