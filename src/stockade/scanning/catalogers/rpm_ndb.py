"""The header blobs of an rpm NDB database (``Packages.db``: SUSE Linux Enterprise 15, openSUSE
Leap 15, SLE Micro), read without rpm.

Layout (rpm's ``ndb`` backend, all numbers little-endian 32-bit): the file starts with a 32-byte
header (magic ``RpmP``, format version 0, generation, the number of 4096-byte pages that hold the
slot table, the next package index). The slot table follows in the same pages: 16-byte slots
(magic ``Slot``, package index, offset and length of the blob in 16-byte blocks); a slot with
package index 0 is free. A blob starts with a 16-byte header (magic ``BlbS``, the package index
again, a checksum, the header's length in bytes) followed by the rpm header itself. Every slot,
offset and length is checked against the file.
"""

from __future__ import annotations

import struct

HEADER_MAGIC = b"RpmP"
SLOT_MAGIC = b"Slot"
BLOB_MAGIC = b"BlbS"
_PAGE = 4096
_SLOT = 16
_BLOCK = 16
_BLOB_HEADER = 16
MAX_SLOT_PAGES = 4096  # a million slots: far more packages than any image holds
MAX_BLOB = 64 * 1024 * 1024


class NdbError(ValueError):
    """Not a readable NDB rpm database."""


def read_blobs(data: bytes) -> list[bytes]:
    """The rpm header blob of every package in an NDB ``Packages.db``, in slot order."""
    if len(data) < _PAGE or data[:4] != HEADER_MAGIC:
        raise NdbError("not an NDB rpm database (bad magic)")
    version, _generation, slot_pages = struct.unpack_from("<III", data, 4)
    if version != 0:
        raise NdbError(f"unsupported NDB format version {version}")
    if not 0 < slot_pages <= MAX_SLOT_PAGES or slot_pages * _PAGE > len(data):
        raise NdbError(f"implausible slot table of {slot_pages} pages")
    out: list[bytes] = []
    seen: set[int] = set()
    # the file header takes the room of the first two slots
    for off in range(2 * _SLOT, slot_pages * _PAGE, _SLOT):
        magic = data[off : off + 4]
        pkgidx, blkoff, blkcnt = struct.unpack_from("<III", data, off + 4)
        if magic != SLOT_MAGIC:
            raise NdbError(f"slot at byte {off}: bad magic")
        if pkgidx == 0:
            continue
        if pkgidx in seen:
            raise NdbError(f"package index {pkgidx} in two slots")
        seen.add(pkgidx)
        out.append(_blob(data, pkgidx, blkoff, blkcnt))
    return out


def _blob(data: bytes, pkgidx: int, blkoff: int, blkcnt: int) -> bytes:
    start, size = blkoff * _BLOCK, blkcnt * _BLOCK
    if blkoff < 1 or size < _BLOB_HEADER or start + size > len(data):
        raise NdbError(f"package {pkgidx}: blob outside the file")
    magic = data[start : start + 4]
    owner, _checksum, length = struct.unpack_from("<III", data, start + 4)
    if magic != BLOB_MAGIC or owner != pkgidx:
        raise NdbError(f"package {pkgidx}: no blob where its slot points")
    if length > MAX_BLOB or _BLOB_HEADER + length > size:
        raise NdbError(f"package {pkgidx}: blob of {length} bytes does not fit its blocks")
    return data[start + _BLOB_HEADER : start + _BLOB_HEADER + length]
