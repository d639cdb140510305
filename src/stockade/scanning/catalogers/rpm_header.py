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
WANTED = {NAME, VERSION, RELEASE, EPOCH, LICENSE, VENDOR, ARCH, SOURCERPM, MODULARITYLABEL}
_INT32, _STRING, _STRING_ARRAY, _I18NSTRING = 4, 6, 8, 9
_MAX_ENTRIES = 100_000


class HeaderError(ValueError):
    """The blob is not a well-formed RPM header."""


def parse_header(blob: bytes) -> dict[int, str | int]:
    """The wanted tags of one header: strings (first element of arrays) and int32 values."""
    if len(blob) < 8:
        raise HeaderError("header shorter than 8 bytes")
    il, dl = struct.unpack_from(">ii", blob, 0)
    if il <= 0 or il > _MAX_ENTRIES or dl < 0:
        raise HeaderError(f"implausible header sizes il={il} dl={dl}")
    store = 8 + 16 * il
    if store + dl > len(blob):
        raise HeaderError("header sizes exceed the blob")
    out: dict[int, str | int] = {}
    for i in range(il):
        tag, typ, off, count = struct.unpack_from(">iiii", blob, 8 + 16 * i)
        if tag not in WANTED:
            continue
        if off < 0 or off >= dl or count <= 0:
            raise HeaderError(f"tag {tag}: offset {off} outside the data store")
        start = store + off
        if typ == _INT32:
            if off + 4 > dl:
                raise HeaderError(f"tag {tag}: int32 outside the data store")
            out[tag] = struct.unpack_from(">i", blob, start)[0]
        elif typ in (_STRING, _STRING_ARRAY, _I18NSTRING):
            end = blob.find(b"\0", start, store + dl)
            if end < 0:
                raise HeaderError(f"tag {tag}: unterminated string")
            out[tag] = blob[start:end].decode("utf-8", errors="replace")
    return out
