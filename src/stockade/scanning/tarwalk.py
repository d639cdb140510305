"""Walking the members of a layer's tar stream without :mod:`tarfile`'s per-member overhead.

A layer is read once, front to back; most of its members are looked at by name only. This walker
reads the stream in large chunks, parses each 512-byte header with slices, and passes over the
data of members nobody reads without copying it out. The structure is followed by
:class:`~stockade.scanning.targuard.TarHeaderGuard` (which already follows an archive the way
``tarfile`` does and refuses hostile headers), so both readers see the same layout; the member
fields are decoded as ``tarfile``'s stream mode (``"r|"``) decodes them: ustar prefixes, old-style
directories, GNU long names and links, pax ``path``/``linkpath``/``size`` (global and per member,
applied in ``tarfile``'s order), the same end-of-archive and error cases.

One exception: an old GNU sparse member (type ``S``, never written by container tools) is listed
with its real size but its bytes are not reassembled; :attr:`Member.sparse` tells the caller.

``tarfile`` stays the reference reader (``stockade.scanning.layers``, ``reader="reference"``);
tests compare the two on the same archives.
"""

from __future__ import annotations

import re
import tarfile
from typing import NamedTuple

from stockade.scanning.interface import Readable
from stockade.scanning.targuard import BLOCK, TarHeaderGuard

_CHUNK = 1 << 18  # bytes per read: large enough, small enough to stay in cache
_ENCODING = tarfile.ENCODING
_DIR = b"5"
_LINKS = (b"1", b"2")  # hard link, symlink
_EXTENSION = (b"L", b"K", b"x", b"g", b"X")
_GNU_TYPES = (b"L", b"K", b"S")
# uid, gid, mtime, devmajor, devminor: tarfile refuses a header whose number fields do not parse
_OTHER_NUMBERS = ((108, 116), (116, 124), (136, 148), (329, 337), (337, 345))


def _plain(width: int) -> bytes:
    """A number field as tar writers fill it: octal digits ended by NUL or space, or all NULs."""
    return rb"(?:[0-7]{%d}[\0 ]|\0{%d})" % (width - 1, width)


# The header's other number fields all plain (nearly always): no field-by-field parsing needed.
_PLAIN_NUMBERS = re.compile(
    rb"(?s).{100}"
    + _plain(8) * 3  # mode, uid, gid
    + rb".{12}"  # size: the guard parses it
    + _plain(12)  # mtime
    + rb".{181}"  # checksum (the guard checks it), type, link name, magic, version, names
    + _plain(8) * 2  # devmajor, devminor
)


class Member(NamedTuple):
    name: str
    type: bytes  # tarfile's type codes: b"0" regular, b"5" directory, b"2" symlink, ...
    mode: int
    size: int
    linkname: str
    sparse: bool = False


def _nts(field: bytes) -> str:
    end = field.find(b"\0")
    if end != -1:
        field = field[:end]
    return field.decode(_ENCODING, "surrogateescape")


def _nti(field: bytes) -> int:
    """A number field as ``tarfile`` reads it; ``ValueError`` where tarfile's reading fails."""
    if field[0] in (0o200, 0o377):  # base-256 (GNU): big-endian, 0o377 marks a negative number
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if field[0] == 0o377 else value
    end = field.find(b"\0")
    text = field[:end] if end != -1 else field
    try:
        return int(text or b"0", 8)  # plain octal: what nearly every header holds
    except ValueError:
        pass
    # tarfile strips the text as str, which takes a few more characters for spaces
    return int(text.decode("ascii").strip() or "0", 8)


class TarWalker:
    """``next()`` gives each member in order (None at the end); ``read(n)`` the current one's data.

    Raises ``tarfile.ReadError`` where ``tarfile``'s stream mode raises it, and
    :class:`~stockade.model.errors.UnsafeImage` (from the guard) on hostile headers.
    """

    def __init__(self, stream: Readable, what: str) -> None:
        self._stream = stream
        self._buf = b""
        self._pos = 0
        self._region = 0  # bytes of the current member's data area (padding included) unread
        self._first = True
        self._globals: dict[str, str] = {}
        self.guard = TarHeaderGuard(what)

    # -- the buffer ---------------------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        """The next ``n`` bytes (fewer only at the end of the stream)."""
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):
            self._pos = end
            return self._buf[pos:end]
        rest = self._buf[pos:]  # headers and data areas are whole blocks: usually empty
        self._buf, self._pos = b"", 0
        parts = [rest] if rest else []
        have = len(rest)
        while have < n:
            chunk = self._stream.read(max(_CHUNK, n - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(data) <= n:
            return data
        self._buf, self._pos = data, n
        return data[:n]

    def _skip(self, n: int) -> bool:
        """Pass over ``n`` bytes; False if the stream ended first."""
        left = len(self._buf) - self._pos
        if n <= left:
            self._pos += n
            return True
        n -= left
        self._buf, self._pos = b"", 0
        while n > 0:
            chunk = self._stream.read(_CHUNK)
            if not chunk:
                return False
            if len(chunk) > n:
                self._buf, self._pos = chunk, n
                return True
            n -= len(chunk)
        return True

    # -- members ------------------------------------------------------------------------------

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of the current member's data, from its start (once per member)."""
        if n > self._region:
            raise tarfile.StreamError("seeking backwards is not allowed")  # as tarfile fails
        data = self._take(n)
        if len(data) != n:
            raise tarfile.ReadError("unexpected end of data")  # as tarfile's reader fails
        self._region -= n
        return data

    def close(self) -> None:
        """Nothing to release: the stream belongs to the caller."""

    def next(self) -> Member | None:
        if self._region:
            if not self._skip(self._region):
                raise tarfile.ReadError("unexpected end of data")
            self._region = 0
        chain: list[tuple[bytes, object]] = []  # extension headers before the member, in order
        while True:
            block = self._take(BLOCK)
            collect, skip = self.guard.feed(block)
            if self.guard.done or not self._numbers_ok(block):
                return self._end(block, chain)
            self._first = False
            kind = block[156:157]
            if kind in _EXTENSION:
                if kind in (b"L", b"K"):  # the guard skips the name; here it is read
                    chain.append((kind, _nts(self._take(skip))))
                    continue
                body = self._take(collect)
                self.guard.feed(body)
                if kind == b"g":
                    self._globals.update(self.guard.last_records)
                else:
                    chain.append((b"x", {**self._globals, **self.guard.last_records}))
                continue
            sparse = False
            if kind == b"S":
                sparse = True
                while self.guard.expects_sparse and not self.guard.done:
                    collect, skip = self.guard.feed(self._take(BLOCK))
            member = self._member(block, kind, chain, sparse)
            self._region = skip
            return member

    def _numbers_ok(self, block: bytes) -> bool:
        if _PLAIN_NUMBERS.match(block) is not None and block[156:157] != b"S":
            return True
        try:
            _nti(block[100:108])
            for start, end in _OTHER_NUMBERS:
                _nti(block[start:end])
            if block[156:157] == b"S":
                _nti(block[483:495])  # an old GNU sparse member's real size
        except ValueError:
            return False
        return True

    def _end(self, block: bytes, chain: list[tuple[bytes, object]]) -> Member | None:
        """The archive ends here, or is corrupt where tarfile says so."""
        self.guard.done = True
        if chain:
            raise tarfile.ReadError("missing or bad subsequent header")
        if self._first:  # a first header tarfile cannot read (all zeros is an empty archive)
            if not block:
                raise tarfile.ReadError("empty file")
            if len(block) < BLOCK:
                raise tarfile.ReadError("truncated header")
            if block.count(0) != BLOCK:
                raise tarfile.ReadError("invalid header")
        return None

    def _member(
        self, block: bytes, kind: bytes, chain: list[tuple[bytes, object]], sparse: bool
    ) -> Member:
        name = _nts(block[0:100])
        if kind == b"\0" and name.endswith("/"):
            kind = _DIR  # an old-style directory
        if kind == _DIR:
            name = name.rstrip("/")
        prefix = _nts(block[345:500])
        if prefix and kind not in _GNU_TYPES:
            name = prefix + "/" + name
        mode = _nti(block[100:108])
        size = _nti(block[483:495]) if sparse else _nti(block[124:136])
        linkname = _nts(block[157:257]) if kind in _LINKS else ""  # only links use it
        if self._globals:
            name, linkname, size = _apply_pax(self._globals, name, linkname, size)
        if kind == _DIR:
            name = name.rstrip("/")
        for ext, value in reversed(chain):  # tarfile applies the nearest header first
            if ext == b"x":
                assert isinstance(value, dict)
                name, linkname, size = _apply_pax(value, name, linkname, size)
            elif ext == b"L":
                assert isinstance(value, str)
                name = value.removesuffix("/") if kind == _DIR else value
            elif ext == b"K":
                assert isinstance(value, str)
                linkname = value
        return Member(name, kind, mode, size, linkname, sparse)


def _apply_pax(pax: dict[str, str], name: str, linkname: str, size: int) -> tuple[str, str, int]:
    if "path" in pax:
        name = pax["path"].rstrip("/")
    if "linkpath" in pax:
        linkname = pax["linkpath"]
    if "size" in pax:
        try:
            size = int(pax["size"])
        except ValueError:
            size = 0
    return name, linkname, size
