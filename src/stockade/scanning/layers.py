"""Reading one layer blob: a single streaming pass, nothing unpacked to disk.

The blob (gzip, zstd or plain tar: told by its magic bytes, checked against its media type) is
hashed as it streams (the blob digest) and hashed again after decompression (the diff id from the
image config). Every entry name is recorded with its kind, so the merge can tell what later layers
override; whiteouts (``.wh.NAME``) and opaque directories (``.wh..wh..opq``) are recorded apart.
Regular files some cataloger wants are read into memory (bounded per file).

Refused with :class:`UnsafeImage`: ``..`` in entry or hard-link names, more entries or more
uncompressed bytes than the limits, an uncompressed/compressed ratio above the bomb limit, tar
headers :mod:`stockade.scanning.targuard` refuses (checked before ``tarfile`` parses them).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from stockade.model.errors import ConfigError, DigestMismatch, ImageError, UnsafeImage
from stockade.scanning.interface import FileEntry, LayerInfo, Readable
from stockade.scanning.sources.manifest import LAYER_TYPES
from stockade.scanning.targuard import GuardedStream
from stockade.scanning.tarwalk import Member, TarWalker

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_CHUNK = 1 << 20
_TAR_BUFSIZE = 1 << 16  # tarfile copies its buffer per header read: bigger is slower
ENTRIES_ENV = "STOCKADE_MAX_ENTRIES"

# Kinds per path: f regular file, d directory, l symlink, h hard link, o device or fifo.
Wants = Callable[[str, int, int], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on what one image may make us read; all configurable."""

    max_file_bytes: int = 256 * 1024 * 1024  # a wanted file larger than this is skipped
    max_layer_bytes: int = 16 * 1024**3  # uncompressed bytes of one layer
    max_image_bytes: int = 64 * 1024**3  # uncompressed bytes of all layers read in one scan
    max_ratio: int = 100  # uncompressed/compressed, checked once past ratio_floor bytes
    ratio_floor: int = 64 * 1024 * 1024
    max_entries: int = 2_000_000  # entries of one layer
    max_image_entries: int = 500_000  # entries of all layers of one image, cached ones included

    @classmethod
    def configured(cls) -> Limits:
        """The defaults, with ``STOCKADE_MAX_ENTRIES`` (the per-image entry budget) applied."""
        text = os.environ.get(ENTRIES_ENV, "").strip()
        if not text:
            return cls()
        if not text.isdigit() or int(text) <= 0:
            raise ConfigError(f"{ENTRIES_ENV} must be a positive whole number, got {text[:40]!r}")
        return cls(max_image_entries=int(text))


@dataclass(slots=True, kw_only=True)
class LayerIndex:
    """The shape of one layer: what it adds, links, and what it deletes from the layers below."""

    kinds: dict[str, str] = field(default_factory=dict)  # "/etc/passwd" -> "f"
    links: dict[str, str] = field(
        default_factory=dict
    )  # symlink -> target as written; hard link -> path
    whiteouts: list[str] = field(default_factory=list)  # absolute paths deleted
    opaque: list[str] = field(default_factory=list)  # directories whose lower content is hidden


@dataclass(slots=True, kw_only=True)
class LayerRead:
    index: LayerIndex
    files: list[FileEntry]
    skipped: list[str]
    uncompressed_bytes: int
    entries: int = 0  # tar members read, counted against the image's entry budget
    # wanted hard links whose target came before them unread: (link path, target path, mode)
    pending_links: list[tuple[str, str, int]] = field(default_factory=list)


class _Hashing:
    """A read-only stream that hashes and counts what passes through it."""

    def __init__(
        self,
        raw: Readable,
        on_read: Callable[[int], None] | None = None,
        *,
        same_as: _Hashing | None = None,
    ) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0
        self.on_read = on_read
        # A plain tar layer is its own uncompressed stream: the bytes are hashed once, by the
        # blob's hasher, and this digest is that one (the whole stream is drained before it).
        self.same_as = same_as

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n is not None and n >= 0 else _CHUNK * 64)
        if data:
            if self.same_as is None:
                self.hash.update(data)
            self.count += len(data)
            if self.on_read is not None:
                self.on_read(len(data))
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def digest(self) -> str:
        if self.same_as is not None:
            return self.same_as.digest()
        return "sha256:" + self.hash.hexdigest()


class _Peeked:
    """``head`` followed by the rest of ``raw``."""

    def __init__(self, head: bytes, raw: _Hashing) -> None:
        self.head = head
        self.raw = raw

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0 or n >= len(self.head):
                data, self.head = self.head, b""
                more = self.raw.read(n - len(data)) if n is not None and n > len(data) else b""
                return data + more
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.raw.read(n)


def detect_compression(head: bytes) -> str | None:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if len(head) >= 512 and head[:512] == b"\0" * 512:
        return "tar"  # an empty layer: only the end-of-archive blocks
    if len(head) >= 512 and _plausible_v7_header(head[:512]):
        return "tar"
    return None


def _plausible_v7_header(block: bytes) -> bool:
    try:
        return tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape") is not None
    except tarfile.TarError:
        return False


def read_layer(
    raw: Readable,
    layer: LayerInfo,
    *,
    wants: Wants,
    what: str,
    limits: Limits = Limits(),
    budget: int | None = None,
    entry_budget: int | None = None,
    verify_blob_digest: bool = True,
    on_bytes: Callable[[int], None] | None = None,
    reader: str = "fast",
) -> LayerRead:
    """Stream one layer blob once; raise on digest mismatch, corruption or hostile content.

    ``budget`` and ``entry_budget`` are what is left of the image's byte and entry budgets.
    ``reader`` is ``"fast"`` (:class:`~stockade.scanning.tarwalk.TarWalker`) or ``"reference"``
    (``tarfile``), which the tests hold the fast one to.
    """
    if layer.media_type and layer.media_type not in LAYER_TYPES:
        raise ImageError(f"unknown layer media type {layer.media_type!r}", subject=what)
    compressed = _Hashing(raw, _blob_size_check(layer, what, on_bytes))
    head = _read_exactly(compressed, 512)
    kind = detect_compression(head)
    if kind is None:
        raise ImageError("layer is not a tar, gzip or zstd stream", subject=what)
    source = _Peeked(head, compressed)
    cap = min(limits.max_layer_bytes, budget if budget is not None else limits.max_layer_bytes)

    def check_bomb(_: int) -> None:
        total = uncompressed.count
        if total > cap:
            raise UnsafeImage(
                f"layer expands past the limit of {cap} bytes (decompression bomb?)", subject=what
            )
        if total > limits.ratio_floor and total > limits.max_ratio * max(compressed.count, 1):
            raise UnsafeImage(
                f"layer expands more than {limits.max_ratio}x (decompression bomb?)", subject=what
            )

    zstd_error = _zstd_error() if kind == "zstd" else _NeverRaised
    try:
        stream = _decompressor(kind, source)
        uncompressed = _Hashing(stream, check_bomb, same_as=compressed if kind == "tar" else None)
        result = _walk_tar(
            uncompressed,
            wants=wants,
            what=what,
            limits=limits,
            layer_id=layer.diff_id,
            entry_budget=entry_budget,
            reader=reader,
        )
        uncompressed.drain()
        compressed.drain()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ImageError(f"truncated or corrupt {kind} stream: {exc}", subject=what) from exc
    except tarfile.TarError as exc:
        raise ImageError(f"corrupt tar: {exc}", subject=what) from exc
    except zstd_error as exc:
        raise ImageError(f"truncated or corrupt zstd stream: {exc}", subject=what) from exc
    except OSError as exc:
        raise ImageError(f"cannot read layer: {exc}", subject=what) from exc
    if layer.size and compressed.count != layer.size:
        raise ImageError(
            f"blob is {compressed.count} bytes, its descriptor says {layer.size}", subject=what
        )
    if verify_blob_digest and compressed.digest() != layer.digest:
        raise DigestMismatch(
            f"blob digest mismatch: expected {layer.digest}, got {compressed.digest()}",
            subject=what,
        )
    if layer.diff_id is not None and uncompressed.digest() != layer.diff_id:
        raise DigestMismatch(
            f"diff id mismatch: config says {layer.diff_id}, layer is {uncompressed.digest()}",
            subject=what,
        )
    result.uncompressed_bytes = uncompressed.count
    return result


def _blob_size_check(
    layer: LayerInfo, what: str, on_bytes: Callable[[int], None] | None
) -> Callable[[int], None] | None:
    """``on_bytes``, and a stop as soon as the blob runs past the size its descriptor gives: a
    registry may send an endless body (or a Content-Length of a terabyte) for a small layer, and
    the digest can only be checked once the body ends. No size (0) is no bound here."""
    if not layer.size:
        return on_bytes
    seen = 0

    def check(n: int) -> None:
        nonlocal seen
        seen += n
        if seen > layer.size:
            raise ImageError(
                f"blob runs past the {layer.size} bytes its descriptor says", subject=what
            )
        if on_bytes is not None:
            on_bytes(n)

    return check


def _read_exactly(stream: _Hashing, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


class _NeverRaised(Exception):
    pass


def _zstd_error() -> type[Exception]:
    import zstandard  # imported only for zstd layers: it costs start-up time

    return zstandard.ZstdError


def _decompressor(kind: str, source: _Peeked) -> Readable:
    # The gzip and zstandard stubs ask a whole file object; only read() is ever called on it.
    raw = cast(BinaryIO, source)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return source


def normalize_name(name: str, what: str) -> str:
    """``./usr/bin/x`` -> ``/usr/bin/x``; ``..`` anywhere is refused."""
    plain = name[2:] if name.startswith("./") else name
    if "//" not in plain and "/." not in plain and not plain.startswith("."):
        return "/" + plain.strip("/")  # no empty, "." or ".." part: nothing else to drop
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeImage(f"path traversal in layer entry {name!r}", subject=what)
        parts.append(part)
    return "/" + "/".join(parts)


class _ReferenceWalker:
    """``tarfile``'s stream mode behind :class:`TarWalker`'s interface: the reference reader."""

    def __init__(self, stream: _Hashing, what: str) -> None:
        guarded = GuardedStream(stream, what)  # headers are checked before tarfile parses them
        # typeshed's tarfile.open wants a seekable, writable file object even for the stream mode
        # "r|", which only ever calls read(): hence the ignore.
        self._tar = tarfile.open(fileobj=guarded, mode="r|", bufsize=1 << 14)  # type: ignore[call-overload]  # noqa: SIM115 - closed by close()
        self._member: tarfile.TarInfo | None = None

    def next(self) -> Member | None:
        member = self._tar.next()
        self._tar.members.clear()  # tarfile keeps every member it read: never needed here
        self._member = member
        if member is None:
            return None
        return Member(
            member.name, member.type, member.mode, member.size, member.linkname, member.issparse()
        )

    def read(self, n: int) -> bytes:
        assert self._member is not None
        fh = self._tar.extractfile(self._member)
        return fh.read(n) if fh is not None else b""

    def close(self) -> None:
        self._tar.close()


_DIRTYPE, _SYMTYPE, _LNKTYPE = b"5", b"2", b"1"
_REGULAR_TYPES = frozenset((b"0", b"\0", b"7", b"S"))


def _walk_tar(
    stream: _Hashing,
    *,
    wants: Wants,
    what: str,
    limits: Limits,
    layer_id: str | None,
    entry_budget: int | None,
    reader: str = "fast",
) -> LayerRead:
    index = LayerIndex()
    kinds, links = index.kinds, index.links
    files: list[FileEntry] = []
    skipped: list[str] = []
    captured: dict[str, FileEntry] = {}
    pending: list[tuple[str, str, int]] = []
    walker = TarWalker(stream, what) if reader == "fast" else _ReferenceWalker(stream, what)
    max_entries = limits.max_entries
    budget = entry_budget if entry_budget is not None else max_entries + 1
    count = 0
    while (member := walker.next()) is not None:
        count += 1
        if count > max_entries:
            raise UnsafeImage(f"layer has more than {max_entries} entries", subject=what)
        if count > budget:
            raise entries_over_budget(limits, what)
        path = normalize_name(member.name, what)
        if path == "/":
            continue
        parent, _, base = path.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            parent = parent or "/"
            if base == OPAQUE_MARKER:
                index.opaque.append(parent)
            else:
                index.whiteouts.append(parent.rstrip("/") + "/" + base[len(WHITEOUT_PREFIX) :])
            continue
        kind = member.type
        if kind == _DIRTYPE:
            kinds[path] = "d"
        elif kind == _SYMTYPE:
            kinds[path] = "l"
            links[path] = member.linkname
        elif kind == _LNKTYPE:
            target = normalize_name(member.linkname, what)
            kinds[path] = "h"
            links[path] = target
            mode = stat.S_IFREG | (member.mode & 0o7777)
            if wants(path, mode, member.size):
                source = captured.get(target)
                if source is None:
                    pending.append((path, target, mode))
                else:
                    entry = FileEntry(
                        path=path, mode=mode, size=source.size, data=source.data, layer=layer_id
                    )
                    files.append(entry)
        elif kind in _REGULAR_TYPES:
            kinds[path] = "f"
            mode = stat.S_IFREG | (member.mode & 0o7777)
            size = member.size
            if not wants(path, mode, size):
                continue
            if size > limits.max_file_bytes:
                skipped.append(f"{path}: {size} bytes is over the per-file limit")
                continue
            if member.sparse:  # old GNU sparse format: container tools never write it
                skipped.append(f"{path}: a sparse file (old GNU tar format) is not read")
                continue
            data = walker.read(size)
            if len(data) != size:
                raise ImageError(f"truncated layer: {path} is short", subject=what)
            entry = FileEntry(path=path, mode=mode, size=size, data=data, layer=layer_id)
            files.append(entry)
            captured[path] = entry
        else:
            kinds[path] = "o"  # devices and fifos: recorded, never read
    walker.close()
    return LayerRead(
        index=index,
        files=files,
        skipped=skipped,
        uncompressed_bytes=0,
        entries=count,
        pending_links=pending,
    )


def entries_over_budget(limits: Limits, what: str) -> UnsafeImage:
    return UnsafeImage(
        f"the image has more than {limits.max_image_entries} entries in its layers "
        f"(raise the budget with {ENTRIES_ENV} or --max-entries)",
        subject=what,
    )
