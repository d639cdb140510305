"""The HPACK subset against an independent encoder (the ``hpack`` package of python-hyper)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.network.protocols.hpack import Decoder, HpackError, huffman_decode

hpack = pytest.importorskip(
    "hpack", reason="the hpack package (test extra) cross-checks the decoder"
)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)
values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(names, values), min_size=1, max_size=8), st.booleans())
def test_decodes_what_hpack_encodes(headers: list[tuple[str, str]], huffman: bool) -> None:
    encoder, decoder = hpack.Encoder(), Decoder()
    for _ in range(2):  # the second block leans on the dynamic table the first one filled
        block = encoder.encode(headers, huffman=huffman)
        assert decoder.decode(block) == headers


def test_static_table_and_grpc_content_type() -> None:
    headers = [
        (":method", "POST"),
        (":path", "/demo.Orders/Get"),
        ("content-type", "application/grpc"),
    ]
    assert Decoder().decode(hpack.Encoder().encode(headers)) == headers


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_huffman_roundtrip_and_garbage(data: bytes) -> None:
    from hpack.huffman import HuffmanEncoder
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

    encoded = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(data)
    assert huffman_decode(encoded) == data
    with contextlib.suppress(HpackError):
        Decoder().decode(data)
