"""The values of a Berkeley DB hash database (the rpmdb ``Packages`` file of RHEL <= 8, CentOS 7,
Amazon Linux 2...), read without the Berkeley DB library.

Layout (Berkeley DB 4.x/5.x, hash access method): page 0 is the metadata page (magic 0x061561 at
offset 12, which also gives the byte order; page size at 20; page type 8 at 25; last page number at
32). Every other page starts with a 26-byte header (next page at 16, entry count at 20,
``hf_offset`` at 22, page type at 25) followed by the entry offsets. Hash pages (type 2 or 13) hold
key/value pairs; a value is either on the page (item type 1) or, when large, on a chain of overflow
pages (item type 3: next page at 4, total length at 8; overflow pages are type 7 and carry
``hf_offset`` bytes after the header). Pages are scanned in order; every offset, length and chain
is checked against the file, chains are walked at most once per page.
"""

from __future__ import annotations

import struct

MAGIC = 0x061561
_HEADER = 26
_HASH_PAGES = (2, 13)
_OVERFLOW = 7
_KEYDATA, _OFFPAGE = 1, 3
MAX_VALUE = 64 * 1024 * 1024


class BdbError(ValueError):
    """Not a readable Berkeley DB hash file."""


def read_values(data: bytes) -> list[bytes]:
    """Every value stored in a Berkeley DB hash database, in page order."""
    if len(data) < 512:
        raise BdbError("shorter than one page")
    if struct.unpack_from("<I", data, 12)[0] == MAGIC:
        e = "<"
    elif struct.unpack_from(">I", data, 12)[0] == MAGIC:
        e = ">"
    else:
        raise BdbError("not a Berkeley DB hash file (bad magic)")
    page_size = struct.unpack_from(e + "I", data, 20)[0]
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        raise BdbError(f"implausible page size {page_size}")
    if data[24] != 0:
        raise BdbError("encrypted databases are not supported")
    if data[25] != 8:
        raise BdbError("not a hash database")
    last = struct.unpack_from(e + "I", data, 32)[0]
    pages = min(last + 1, len(data) // page_size)
    out: list[bytes] = []
    for pgno in range(1, pages):
        base = pgno * page_size
        if data[base + 25] in _HASH_PAGES:
            out.extend(_hash_page(data, e, base, page_size, pages))
    return out


def _hash_page(data: bytes, e: str, base: int, page_size: int, pages: int) -> list[bytes]:
    entries = struct.unpack_from(e + "H", data, base + 20)[0]
    if _HEADER + 2 * entries > page_size:
        raise BdbError(f"page {base // page_size}: {entries} entries do not fit")
    offsets = struct.unpack_from(e + f"{entries}H", data, base + _HEADER)
    values = []
    for i in range(1, entries, 2):  # even entries are keys, odd entries their values
        off = offsets[i]
        end = offsets[i - 1]
        if not _HEADER + 2 * entries <= off < end <= page_size:
            raise BdbError(f"page {base // page_size}: entry {i} outside the page")
        kind = data[base + off]
        if kind == _KEYDATA:
            values.append(data[base + off + 1 : base + end])
        elif kind == _OFFPAGE:
            if end - off < 12:
                raise BdbError(f"page {base // page_size}: short off-page entry")
            first, length = struct.unpack_from(e + "II", data, base + off + 4)
            values.append(_overflow(data, e, first, length, page_size, pages))
    return values


def _overflow(data: bytes, e: str, pgno: int, length: int, page_size: int, pages: int) -> bytes:
    if length > MAX_VALUE:
        raise BdbError(f"value of {length} bytes is larger than {MAX_VALUE}")
    chunks: list[bytes] = []
    got = 0
    seen: set[int] = set()
    while got < length:
        if pgno == 0 or pgno >= pages or pgno in seen:
            raise BdbError("broken overflow chain")
        seen.add(pgno)
        base = pgno * page_size
        if data[base + 25] != _OVERFLOW:
            raise BdbError(f"page {pgno} is not an overflow page")
        used = struct.unpack_from(e + "H", data, base + 22)[0]
        if used > page_size - _HEADER:
            raise BdbError(f"overflow page {pgno} claims {used} bytes")
        chunks.append(data[base + _HEADER : base + _HEADER + used])
        got += used
        pgno = struct.unpack_from(e + "I", data, base + 16)[0]
    value = b"".join(chunks)
    if len(value) != length:
        raise BdbError("overflow chain length mismatch")
    return value
