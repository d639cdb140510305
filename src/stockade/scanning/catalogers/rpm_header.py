"""RPM header blobs as stored in the rpmdb (no lead, no 8-byte magic): ``il`` index entries and
``dl`` bytes of data, both big-endian int32, then ``il`` entries of (tag, type, offset, count),
then the data store. Every offset and count is checked against the blob before use."""

from __future__ import annotations

import struct

NAME, VERSION, RELEASE, EPOCH, LICENSE, VENDOR, ARCH, SOURCERPM = (
    1000,
    1001,
    1002,
    1003,
    1014,
    1011,
    1022,
    1044,
)
MODULARITYLABEL = 5096
DIRINDEXES, BASENAMES, DIRNAMES = 1116, 1117, 1118
WANTED = {NAME, VERSION, RELEASE, EPOCH, LICENSE, VENDOR, ARCH, SOURCERPM, MODULARITYLABEL}
# file-list tags: every element is kept (as a "\n"-joined string or a tuple of ints)
ARRAYS = {DIRINDEXES, BASENAMES, DIRNAMES}
_MAX_FILES = 1_000_000
_INT32, _STRING, _STRING_ARRAY, _I18NSTRING = 4, 6, 8, 9
_MAX_ENTRIES = 100_000


class HeaderError(ValueError):
    """The blob is not a well-formed RPM header."""


Value = str | int | tuple[int, ...]


def parse_header(blob: bytes) -> dict[int, Value]:
    """The wanted tags of one header: strings (first element of arrays) and int32 values; the
    file-list arrays whole (string arrays joined by newlines, int32 arrays as tuples)."""
    if len(blob) < 8:
        raise HeaderError("header shorter than 8 bytes")
    il, dl = struct.unpack_from(">ii", blob, 0)
    if il <= 0 or il > _MAX_ENTRIES or dl < 0:
        raise HeaderError(f"implausible header sizes il={il} dl={dl}")
    store = 8 + 16 * il
    if store + dl > len(blob):
        raise HeaderError("header sizes exceed the blob")
    out: dict[int, Value] = {}
    for i in range(il):
        tag, typ, off, count = struct.unpack_from(">iiii", blob, 8 + 16 * i)
        if tag not in WANTED and tag not in ARRAYS:
            continue
        if off < 0 or off >= dl or count <= 0:
            raise HeaderError(f"tag {tag}: offset {off} outside the data store")
        start = store + off
        if tag in ARRAYS:
            out[tag] = _array(blob, tag, typ, start, count, store + dl)
        elif typ == _INT32:
            if off + 4 > dl:
                raise HeaderError(f"tag {tag}: int32 outside the data store")
            out[tag] = struct.unpack_from(">i", blob, start)[0]
        elif typ in (_STRING, _STRING_ARRAY, _I18NSTRING):
            end = blob.find(b"\0", start, store + dl)
            if end < 0:
                raise HeaderError(f"tag {tag}: unterminated string")
            out[tag] = blob[start:end].decode("utf-8", errors="replace")
    return out


def _array(
    blob: bytes, tag: int, typ: int, start: int, count: int, end: int
) -> str | tuple[int, ...]:
    if count > _MAX_FILES:
        raise HeaderError(f"tag {tag}: {count} elements")
    if typ == _INT32:
        if start + 4 * count > end:
            raise HeaderError(f"tag {tag}: int32 array outside the data store")
        return struct.unpack_from(f">{count}i", blob, start)
    if typ != _STRING_ARRAY:
        raise HeaderError(f"tag {tag}: unexpected type {typ}")
    items: list[str] = []
    pos = start
    for _ in range(count):
        stop = blob.find(b"\0", pos, end)
        if stop < 0:
            raise HeaderError(f"tag {tag}: unterminated string")
        items.append(blob[pos:stop].decode("utf-8", errors="replace"))
        pos = stop + 1
    return "\n".join(items)


def file_paths(fields: dict[int, Value]) -> list[str]:
    """The paths a header's file list names (``DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]``)."""
    names, dirs, index = fields.get(BASENAMES), fields.get(DIRNAMES), fields.get(DIRINDEXES)
    if not isinstance(names, str) or not isinstance(dirs, str) or not isinstance(index, tuple):
        return []
    base, folders = names.split("\n"), dirs.split("\n")
    return [
        folders[i] + name for name, i in zip(base, index, strict=False) if 0 <= i < len(folders)
    ]
