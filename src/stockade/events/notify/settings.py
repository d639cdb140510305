"""Pieces shared by the notifiers' settings models (pydantic: target files are a trust boundary)."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or len(value) > 2048:
        raise ValueError("must be an http:// or https:// URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def secret_from(value: str | None, env: str | None, what: str) -> str | None:
    """An inline secret, or the one in the environment variable ``env`` (kept out of the file)."""
    if value is not None and env is not None:
        raise ValueError(f"give {what} or {what}_env, not both")
    if env is None:
        return value
    found = os.environ.get(env)
    if not found:
        raise ValueError(f"environment variable {env} ({what}_env) is not set")
    return found
