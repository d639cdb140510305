"""Property tests: whatever bytes or JSON an image holds, the reader answers with an ImageError (or
a result), never another exception."""

from __future__ import annotations

import contextlib
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockade.model.errors import ImageError
from stockade.scanning.imagewrite import LAYER_MEDIA, compress, sha, tar_from_entries
from stockade.scanning.interface import LayerInfo
from stockade.scanning.layers import read_layer
from stockade.scanning.sources import manifest as mf

TAR = tar_from_entries(
    [
        ("d", "var/lib/dpkg", b""),
        ("f", "var/lib/dpkg/status", b"Package: a\nVersion: 1\n" * 20),
        ("l", "etc/os-release", "../usr/lib/os-release"),
        ("h", "var/lib/dpkg/status2", "var/lib/dpkg/status"),
        ("f", "usr/lib/.wh.x", b""),
    ]
)
BLOBS = {kind: compress(TAR, kind) for kind in ("none", "gzip", "zstd")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["none", "gzip", "zstd"]),
    cuts=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 255)), max_size=6),
    truncate=st.one_of(st.none(), st.integers(0, 20_000)),
)
def test_mutated_layers_raise_only_image_errors(
    kind: str, cuts: list, truncate: int | None
) -> None:
    blob = bytearray(BLOBS[kind])
    for pos, value in cuts:
        if pos < len(blob):
            blob[pos] = value
    if truncate is not None:
        blob = blob[:truncate]
    layer = LayerInfo(
        digest=sha(bytes(blob)), diff_id=None, media_type=LAYER_MEDIA[kind], size=len(blob)
    )
    with contextlib.suppress(ImageError):
        read_layer(io.BytesIO(bytes(blob)), layer, wants=lambda *a: True, what="fuzz")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.just("sha256:" + "a" * 64),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = "config layers digest size mediaType manifests platform rootfs diff_ids history os"
keys = st.sampled_from([*KEYS.split(), "architecture", "schemaVersion"])
documents = st.dictionaries(keys, json_values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(doc=documents, nested=documents)
def test_garbage_manifests_configs_and_indexes(doc: dict, nested: dict) -> None:
    doc = {**doc, **({"layers": [nested]} if "layers" not in doc else {})}

    def fetch(_desc: dict) -> bytes:
        return json.dumps(nested).encode()

    for step in (
        lambda: mf.parse_manifest(doc, "fuzz"),
        lambda: mf.parse_config(json.dumps(doc).encode(), "fuzz"),
        lambda: mf.select_from_index({**doc, "manifests": [nested, doc]}, None, "fuzz"),
        lambda: mf.resolve_manifest(
            json.dumps(doc).encode(), None, lambda d: json.dumps(nested).encode(), None, "fuzz"
        ),
    ):
        with contextlib.suppress(ImageError):
            step()
