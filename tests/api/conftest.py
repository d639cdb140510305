"""A controller per module, once on SQLite and once on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.controller import Controller, running_controller


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def controller(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Controller]:
    yield from running_controller(request.param, tmp_path_factory, "stockade_api_test")
