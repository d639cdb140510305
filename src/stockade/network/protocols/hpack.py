"""Just enough HPACK (RFC 7541) to read request and response headers of HTTP/2 and gRPC:
integers, string literals with Huffman coding, the static table and a dynamic table."""

from __future__ import annotations

from collections import deque

from .huffman_table import CODES

STATIC_TABLE: tuple[tuple[str, str], ...] = (
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
)  # fmt: skip

_DECODE = {(length, code): sym for sym, (code, length) in enumerate(CODES)}
_MAX_BITS = 30


class HpackError(ValueError):
    """The header block is malformed or truncated."""


def huffman_decode(data: bytes) -> bytes:
    out = bytearray()
    code = length = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            length += 1
            sym = _DECODE.get((length, code))
            if sym is not None:
                if sym == 256:
                    raise HpackError("EOS symbol inside a Huffman string")
                out.append(sym)
                code = length = 0
            elif length > _MAX_BITS:
                raise HpackError("invalid Huffman code")
    # Padding: at most 7 bits, all ones (the EOS prefix).
    if length > 7 or code != (1 << length) - 1:
        raise HpackError("invalid Huffman padding")
    return bytes(out)


DEFAULT_TABLE_SIZE = 4096  # SETTINGS_HEADER_TABLE_SIZE until the peer says otherwise
MAX_HEADERS = 256  # header fields in one block
MAX_DECODED = 64 * 1024  # octets of one decoded block, counted as the table does (RFC 7541 4.1)


class Decoder:
    """Keeps the dynamic table across header blocks of one connection direction.

    The work per block stays linear in its length: the table's size is kept as a running total,
    a dynamic table size update may not exceed ``limit`` (the SETTINGS_HEADER_TABLE_SIZE the
    decoder announced, RFC 7541 4.2 and 6.3), and a block decodes to at most
    :data:`MAX_HEADERS` fields and :data:`MAX_DECODED` octets.
    """

    def __init__(self, limit: int = DEFAULT_TABLE_SIZE) -> None:
        self.dynamic: deque[tuple[str, str]] = deque()
        self.limit = limit
        self.max_size = limit
        self.size = 0  # RFC 7541 4.1: the sum of 32 + len(name) + len(value) over the entries

    def _entry(self, index: int) -> tuple[str, str]:
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dyn = index - len(STATIC_TABLE) - 1
        if 0 <= dyn < len(self.dynamic):
            return self.dynamic[dyn]
        raise HpackError(f"header index {index} out of range")

    def _insert(self, name: str, value: str) -> None:
        self.dynamic.appendleft((name, value))
        self.size += _entry_size(name, value)
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size:
            name, value = self.dynamic.pop()
            self.size -= _entry_size(name, value)

    def _resize(self, size: int) -> None:
        if size > self.limit:
            raise HpackError(f"dynamic table size update to {size} exceeds the limit {self.limit}")
        self.max_size = size
        self._evict()

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        decoded = 0
        pos = 0
        while pos < len(block):
            b = block[pos]
            if b & 0xE0 == 0x20:  # dynamic table size update
                if headers:
                    raise HpackError("dynamic table size update after a header field")
                size, pos = _integer(block, pos, 5)
                self._resize(size)
                continue
            if b & 0x80:  # indexed field
                index, pos = _integer(block, pos, 7)
                name, value = self._entry(index)
            else:
                prefix = 6 if b & 0x40 else 4  # with incremental indexing / without / never
                index, pos = _integer(block, pos, prefix)
                if index:
                    name = self._entry(index)[0]
                else:
                    name, pos = _string(block, pos)
                value, pos = _string(block, pos)
                if prefix == 6:
                    self._insert(name, value)
            headers.append((name, value))
            decoded += _entry_size(name, value)
            if len(headers) > MAX_HEADERS or decoded > MAX_DECODED:
                raise HpackError(
                    f"header block decodes to more than {MAX_HEADERS} fields or {MAX_DECODED} octets"
                )
        return headers


def _entry_size(name: str, value: str) -> int:
    return 32 + len(name) + len(value)


def _integer(data: bytes, pos: int, prefix: int) -> tuple[int, int]:
    if pos >= len(data):
        raise HpackError("truncated integer")
    mask = (1 << prefix) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise HpackError("truncated or oversized integer")
        b = data[pos]
        pos += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _string(data: bytes, pos: int) -> tuple[str, int]:
    if pos >= len(data):
        raise HpackError("truncated string")
    huffman = bool(data[pos] & 0x80)
    length, pos = _integer(data, pos, 7)
    raw = data[pos : pos + length]
    if len(raw) < length:
        raise HpackError("truncated string")
    text = huffman_decode(raw) if huffman else raw
    return text.decode("latin-1"), pos + length
