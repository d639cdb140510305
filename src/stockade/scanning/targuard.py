"""Tar header checks made before :mod:`tarfile` parses anything (CVE-2024-6232 and kin).

``tarfile`` up to Python 3.11.9 / 3.12.5 parses pax extended headers with regular expressions that
are quadratic on crafted input (a 100 KB archive costs about 10 s), and it follows a chain of
extension headers by recursion (a few hundred in a row raise ``RecursionError``). Whatever the
Python, every 512-byte header block of an archive goes through :class:`TarHeaderGuard` first, in the
order ``tarfile`` will read it, and the archive is refused (:class:`UnsafeImage`) when:

- a pax extended or global header (``x``, ``g``, ``X``) or a GNU long name/link (``L``, ``K``) is
  larger than :data:`MAX_EXTENSION_BYTES`;
- a pax header is not a clean sequence of ``LEN KEY=VALUE\\n`` records, or holds a run of more than
  :data:`MAX_DIGIT_RUN` digits (the shape that makes the regular expressions quadratic);
- the global pax headers of one archive add up to more than :data:`MAX_EXTENSION_BYTES`;
- more than :data:`MAX_EXTENSION_CHAIN` extension headers precede one member;
- a pax header carries GNU sparse records (not used by container images; ``tarfile`` reads them with
  unchecked ``int()`` calls).

The guard follows the archive the way ``tarfile`` does (which types have data, pax ``size``
overrides, old GNU sparse extension blocks), and stops where ``tarfile`` stops (an all-zero block, a
bad checksum). :class:`GuardedStream` applies it to a stream (layers), :func:`check_tar_file` to a
seekable file (image archives) without reading the members' data, :func:`open_checked` to a tar
or ``.tar.gz`` file before ``tarfile`` opens it (the sample image's downloads).
"""

from __future__ import annotations

import gzip
import os
import re
import tarfile
from pathlib import Path
from typing import Protocol

from stockade.model.errors import UnsafeImage
from stockade.scanning.interface import Readable

BLOCK = 512
MAX_EXTENSION_BYTES = 64 * 1024
MAX_EXTENSION_CHAIN = 16
MAX_DIGIT_RUN = 64


class SeekableReadable(Readable, Protocol):
    """A byte stream the guard can also seek in (a tar file, plain or gzipped)."""

    def tell(self) -> int: ...

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int: ...


_PAX_TYPES = (b"x", b"g", b"X")
_LONG_TYPES = (b"L", b"K")
_SPARSE = b"S"
_REGULAR = (b"0", b"\0", b"7", b"S")
_SUPPORTED = (*_REGULAR, b"1", b"2", b"3", b"4", b"5", b"6", b"L", b"K")
_DIGIT_RUN = re.compile(rb"[0-9]{%d}" % (MAX_DIGIT_RUN + 1))


def _block(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


def _number(field: bytes) -> int | None:
    """A numeric header field as ``tarfile`` reads it (octal, or base-256); None if invalid."""
    if field[:1] in (b"\x80", b"\xff"):
        value = 0
        for byte in field[1:]:
            value = (value << 8) + byte
        if field[0] == 0xFF:
            value -= 256 ** (len(field) - 1)
        return value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        return None


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156])
    unsigned = 256 + sum(block) - sum(block[148:156])  # the checksum field counts as spaces
    if stored == unsigned:
        return True
    head, tail = block[:148], block[156:]
    high = sum(1 for b in head + tail if b > 127)  # the signed sum some old tars wrote
    return stored == unsigned - 256 * high


class TarHeaderGuard:
    """Follows one archive unit by unit: a header, then what the header says comes next.

    :meth:`feed` takes the unit asked for last (first a 512-byte header) and returns
    ``(collect, skip)``: skip that many bytes, then hand over the next ``collect`` bytes.
    ``collect == 0`` means the end: ``tarfile`` reads nothing further either.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.done = False
        self._expect = "header"  # header | pax | sparse
        self._type = b""
        self._chain = 0
        self._globals: dict[str, str] = {}
        self._global_bytes = 0
        self._local: list[dict[str, str]] = []  # pax headers of this member, outermost first
        self._sparse_data = 0
        self.last_records: dict[str, str] = {}  # the records of the pax header fed last

    def feed(self, unit: bytes) -> tuple[int, int]:
        if self.done:
            return 0, 0
        if self._expect == "pax":
            self._pax(unit)
            return BLOCK, 0
        if len(unit) < BLOCK:
            return self._end()
        if self._expect == "sparse":
            if unit[504]:
                return BLOCK, 0
            self._expect = "header"
            return BLOCK, _block(self._sparse_data)
        return self._header(unit)

    @property
    def expects_sparse(self) -> bool:
        """True while the old GNU sparse extension blocks of a member are being fed."""
        return self._expect == "sparse"

    def _end(self) -> tuple[int, int]:
        self.done = True
        return 0, 0

    def _refuse(self, message: str) -> UnsafeImage:
        return UnsafeImage(f"tar archive refused: {message}", subject=self.what)

    def _header(self, block: bytes) -> tuple[int, int]:
        if block.count(0) == BLOCK or not _checksum_ok(block):
            return self._end()  # tarfile ends the archive here too
        size = _number(block[124:136])
        if size is None:
            return self._end()  # tarfile ends the archive here too
        if size < 0:  # tarfile would seek backwards: no telling where it reads next
            raise self._refuse(f"negative member size {size}")
        kind = block[156:157]
        if kind == b"\0" and block[:100].split(b"\0", 1)[0].endswith(b"/"):
            kind = b"5"  # an old-style directory: no data follows
        if kind in _PAX_TYPES or kind in _LONG_TYPES:
            self._chain += 1
            if self._chain > MAX_EXTENSION_CHAIN:
                raise self._refuse(
                    f"more than {MAX_EXTENSION_CHAIN} extension headers before one member"
                )
            name = "pax header" if kind in _PAX_TYPES else "GNU long name"
            if size > MAX_EXTENSION_BYTES:
                raise self._refuse(
                    f"{name} of {size} bytes is over the limit of {MAX_EXTENSION_BYTES} bytes"
                )
            if kind in _LONG_TYPES:
                return BLOCK, _block(size)  # read in linear time: skipped unseen
            self._expect, self._type = "pax", kind
            return _block(size), 0
        return self._member(block, kind, size)

    def _member(self, block: bytes, kind: bytes, size: int) -> tuple[int, int]:
        for pax in reversed(self._local):  # tarfile applies the header nearest the member first
            if "size" in pax:
                size = int(pax["size"])
        self._chain, self._local = 0, []
        if kind == _SPARSE and block[482]:
            self._expect, self._sparse_data = "sparse", size
            return BLOCK, 0
        has_data = kind in _REGULAR or kind not in _SUPPORTED
        return BLOCK, _block(size) if has_data else 0

    def _pax(self, body: bytes) -> None:
        self._expect = "header"
        try:
            records = _pax_records(body)
        except _Malformed as exc:
            raise self._refuse(str(exc)) from None
        self.last_records = records
        if self._type == b"g":
            self._globals.update(records)
            self._global_bytes = sum(len(k) + len(v) for k, v in self._globals.items())
            if self._global_bytes > MAX_EXTENSION_BYTES:
                raise self._refuse(f"global pax headers add up to over {MAX_EXTENSION_BYTES} bytes")
        else:
            self._local.append({**self._globals, **records})


class _Malformed(ValueError):
    pass


def _pax_records(body: bytes) -> dict[str, str]:
    """``LEN KEY=VALUE\\n`` records filling the body (NUL padding after them is allowed)."""
    if _DIGIT_RUN.search(body):
        raise _Malformed(f"pax header holds a run of more than {MAX_DIGIT_RUN} digits")
    records: dict[str, str] = {}
    pos, end = 0, len(body)
    while pos < end and body[pos] != 0:
        space = body.find(b" ", pos, min(end, pos + 21))
        length_text = body[pos:space] if space > pos else b""
        if not length_text.isdigit():
            raise _Malformed("malformed pax record length")
        length = int(length_text)
        record = body[pos : pos + length]
        key, eq, value = record[len(length_text) + 1 : -1].partition(b"=")
        if len(record) != length or not record.endswith(b"\n") or not eq or not key:
            raise _Malformed("malformed pax record")
        name = key.decode("utf-8", "surrogateescape")
        if name.startswith("GNU.sparse."):
            raise _Malformed("GNU sparse pax records are not supported")
        text = value.decode("utf-8", "surrogateescape")
        if name == "size" and not (value.isdigit() and len(value) <= 20):
            raise _Malformed(f"pax size is not a number: {text[:40]!r}")
        records[name] = text
        pos += length
    if body[pos:].count(0) != end - pos:
        raise _Malformed("malformed pax record")
    return records


class GuardedStream:
    """A read-only stream that checks the tar structure of what passes through, before it is used."""

    def __init__(self, raw: Readable, what: str) -> None:
        self.raw = raw
        self.guard = TarHeaderGuard(what)
        self._want = BLOCK
        self._skip = 0
        self._unit = bytearray()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if not self.guard.done:
            self._feed(data)
        return data

    def _feed(self, data: bytes) -> None:
        if not data:  # the end of the stream: tarfile stops (or fails) here too
            self.guard.done = True
            return
        view, pos = memoryview(data), 0
        while pos < len(view) and not self.guard.done:
            if self._skip:
                step = min(self._skip, len(view) - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._want - len(self._unit), len(view) - pos)
            self._unit += view[pos : pos + take]
            pos += take
            if len(self._unit) < self._want:
                return
            unit = bytes(self._unit)
            self._unit.clear()
            self._want, self._skip = self.guard.feed(unit)


def check_tar_file(fh: SeekableReadable, what: str) -> None:
    """Run the guard over a seekable tar file, seeking past the members' data; rewinds ``fh``."""
    guard = TarHeaderGuard(what)
    want, skip = BLOCK, 0
    start = fh.tell()
    while not guard.done:
        if skip:
            fh.seek(skip, os.SEEK_CUR)
        want, skip = guard.feed(fh.read(want))
    fh.seek(start)


def open_checked(path: Path, what: str) -> tarfile.TarFile:
    """``tarfile.open(path)`` for a plain or gzipped tar whose headers passed the guard."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gzipped else open(path, "rb") as fh:
        check_tar_file(fh, what)
    return tarfile.open(path)
