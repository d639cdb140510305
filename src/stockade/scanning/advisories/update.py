"""Importing named sources and updating from the configured list (``sources.yaml``).

Config file (``$XDG_CONFIG_HOME/stockade/sources.yaml``, else ``~/.config/stockade/sources.yaml``)::

    sources:
      - /srv/mirror/osv/PyPI/all.zip          # a path (file, folder or zip)
      - url: file:///srv/mirror/debian/tracker.json
      - url: https://mirror.example/alpine/v3.19/main.json
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from stockade.model.errors import AdvisoryError, ConfigError
from stockade.model.progress import NullObserver, Observer
from stockade.scanning.advisories.model import ImportBatch
from stockade.scanning.advisories.reader import describe, read_source
from stockade.scanning.advisories.store import write_batches
from stockade.store.db import Store


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "stockade" / "sources.yaml"


def import_sources(
    store: Store,
    sources: Sequence[str],
    *,
    timeout: float = 60.0,
    observer: Observer | None = None,
) -> list[ImportBatch]:
    """Read every source, then store them all in one transaction (all or nothing)."""
    obs = observer or NullObserver()
    batches = []
    for src in sources:
        task = obs.task(f"reading {src}")
        try:
            batch = read_source(src, timeout=timeout)
        finally:
            obs.finish(task)
        batch.source = describe(src)
        if not batch.advisories and batch.problems:
            raise AdvisoryError(
                f"no usable advisory records ({len(batch.problems)} problems, first: "
                f"{batch.problems[0]}); nothing was imported",
                subject=src,
            )
        batches.append(batch)
    task = obs.task(f"storing {sum(len(b.advisories) for b in batches)} records")
    try:
        write_batches(store, batches)
    finally:
        obs.finish(task)
    return batches


def load_config(path: Path) -> list[str]:
    """The source list from a sources.yaml; raises ConfigError when it is missing or wrong."""
    from stockade.config import parse_yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "no sources configured: create it with a `sources:` list of paths or URLs",
            subject=str(path),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", subject=str(path)) from exc
    doc, _node = parse_yaml(text, name=str(path))
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), list) or not doc["sources"]:
        raise ConfigError("expected a non-empty `sources:` list", subject=str(path))
    out: list[str] = []
    for i, item in enumerate(doc["sources"]):
        if isinstance(item, str) and item.strip():
            value = item.strip()
        elif isinstance(item, dict) and isinstance(item.get("url") or item.get("path"), str):
            value = str(item.get("url") or item.get("path")).strip()
        else:
            raise ConfigError(
                f"sources[{i}] must be a path, or a mapping with `url` or `path`", subject=str(path)
            )
        if "://" not in value and not os.path.isabs(os.path.expanduser(value)):
            value = str((path.parent / value).resolve())  # relative paths are relative to the file
        out.append(value)
    return out
