"""Arbitrary custom-check documents load or fail with a ConfigError, never anything else."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.compliance.cis import loader
from stockade.model import ConfigError

KEYS = [
    "id",
    "title",
    "audit",
    "tests",
    "type",
    "severity",
    "level",
    "scored",
    "component",
    "flag",
    "path",
    "key",
    "env",
    "set",
    "eq",
    "bitmask",
    "regex",
    "has",
    "any",
    "all",
    "files",
    "process",
    "document",
    "text",
    "script",
    "command",
    "timeout",
    "missing",
    "applies_if",
    "refs",
    "checks",
    "sections",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 700),
    st.sampled_from(
        ["kubelet", "apiserver", "600", "(", "x", "/etc/a", "automated", "manual", "high", "na"]
    ),
)
docs = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(docs, st.dictionaries(st.just("checks"), st.lists(docs, max_size=3))))
def test_custom_documents_never_crash(doc: object) -> None:
    base = loader.builtin("kubernetes")
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "c.yaml"
        f.write_text(yaml.safe_dump(doc))
        with contextlib.suppress(ConfigError):  # the only error a bad document may raise
            loader.load_custom(f, base)
