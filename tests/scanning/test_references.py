from __future__ import annotations

import pytest

from stockade.model.errors import UsageError
from stockade.scanning.sources.interface import parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("docker-archive:/tmp/a.tar", {"kind": "docker-archive", "path": "/tmp/a.tar"}),
        ("oci:/tmp/layout", {"kind": "oci", "path": "/tmp/layout", "tag": None}),
        ("oci:/tmp/layout:v1.2", {"kind": "oci", "path": "/tmp/layout", "tag": "v1.2"}),
        ("oci:rel/img.tar:latest", {"kind": "oci", "path": "rel/img.tar", "tag": "latest"}),
        ("dir:/", {"kind": "dir", "path": "/"}),
        ("pid:42", {"kind": "pid", "path": "/proc/42/root", "pid": 42}),
        (
            "127.0.0.1:5000/stockade/sample:1",
            {
                "kind": "registry",
                "host": "127.0.0.1:5000",
                "repository": "stockade/sample",
                "tag": "1",
            },
        ),
        (
            "registry.example.com/team/app",
            {
                "kind": "registry",
                "host": "registry.example.com",
                "repository": "team/app",
                "tag": "latest",
            },
        ),
        (
            f"localhost:5000/app@{DIGEST}",
            {
                "kind": "registry",
                "host": "localhost:5000",
                "repository": "app",
                "digest": DIGEST,
                "tag": None,
            },
        ),
        (
            f"[::1]:5000/a/b:t@{DIGEST}",
            {
                "kind": "registry",
                "host": "[::1]:5000",
                "repository": "a/b",
                "tag": "t",
                "digest": DIGEST,
            },
        ),
    ],
)
def test_reference_forms(text: str, expected: dict) -> None:
    ref = parse_reference(text)
    for key, value in expected.items():
        assert getattr(ref, key) == value, key
    assert ref.text == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ubuntu",  # no registry host: we never guess docker hub
        "ubuntu:22.04",
        "docker-archive:",
        "pid:abc",
        "pid:0",
        "127.0.0.1:5000/UPPER/case",
        "127.0.0.1:5000/app@sha256:short",
        "127.0.0.1:5000/app:bad tag",
        " dir:/",
    ],
)
def test_bad_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_reference(text)
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)
