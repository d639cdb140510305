"""Reading advisory sources: a file, a folder, a zip (OSV ``all.zip``), a tar archive (plain, gz,
bz2, xz or zst: Red Hat's ``csaf_vex_YYYY-MM-DD.tar.zst``), or an http(s)/file URL.

Each document found is detected (JSON: OSV record or list, Debian tracker, Alpine secdb or per-CVE
parts, Red Hat or SUSE CSAF VEX, NVD CVE records; XML, plain or gzipped: an Amazon Linux ``updateinfo.xml``) and converted; a document that cannot be read or recognised becomes a :class:`Problem` and
the rest of the source is still read. A source that cannot be opened at all raises AdvisoryError.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from stockade.model.errors import AdvisoryError
from stockade.scanning.advisories import (
    alpine_secdb,
    amazon_updateinfo,
    csaf_vex,
    debian_tracker,
    nvd,
    osv,
)
from stockade.scanning.advisories.model import Advisory, ImportBatch, Problem

MAX_DOCUMENT = 512 * 1024 * 1024  # one JSON file (the Debian tracker JSON is ~70 MB today)
MAX_DOWNLOAD = 2 * 1024 * 1024 * 1024
MAX_INFLATED = 128 * 1024 * 1024  # one gzipped document (Amazon's updateinfo.xml is ~20 MB)
# All the documents of one tar archive: Red Hat's VEX archive inflates to several GiB; each member
# is read, converted and dropped in turn, so this bounds the time spent, not the memory.
MAX_ARCHIVE = 64 * 1024 * 1024 * 1024


def read_source(source: str, *, timeout: float = 60.0) -> ImportBatch:
    """Read every advisory from ``source`` (path or URL) into one batch."""
    batch = ImportBatch(source=source, kind="")
    kinds: set[str] = set()
    for where, raw in _documents(source, timeout=timeout):
        try:
            data = _gunzip(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            batch.problems.append(Problem(where=where, message=f"broken gzip data: {exc}"[:300]))
            continue
        if data.lstrip()[:1] == b"<":
            advs, probs = amazon_updateinfo.convert_xml(data, where)
            batch.problems.extend(probs)
            batch.advisories.extend(advs)
            if advs:
                kinds.add("amazon-updateinfo")
            continue
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:  # also integers over 4300 digits
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            batch.problems.append(Problem(where=where, message=f"malformed JSON: {reason}"))
            continue
        kind, advisories, problems = convert_document(doc, where)
        batch.problems.extend(problems)
        batch.advisories.extend(advisories)
        if kind:
            kinds.add(kind)
    batch.kind = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "empty")
    return batch


def convert_document(doc: object, where: str) -> tuple[str, list[Advisory], list[Problem]]:
    """Detect the format of one parsed JSON document and convert it."""
    vendor = csaf_vex.vendor_of(doc)
    if vendor is not None:
        assert isinstance(doc, dict)
        advs, probs = csaf_vex.convert(doc, vendor, where)
        return vendor.source, advs, probs
    if debian_tracker.is_tracker(doc):
        advs, probs = debian_tracker.convert(doc, where)
        return "debian-tracker", advs, probs
    if nvd.is_nvd(doc):
        advs, probs = nvd.convert(doc, where)
        return "nvd", advs, probs
    if alpine_secdb.is_secdb(doc):
        advs, probs = alpine_secdb.convert_secdb(doc, where)
        return alpine_secdb.source_of(doc), advs, probs
    if alpine_secdb.is_parts(doc):
        advs, probs = alpine_secdb.convert_parts(doc, where)
        return "alpine-secdb", advs, probs
    if osv.is_osv(doc) or (isinstance(doc, list) and doc and all(osv.is_osv(d) for d in doc)):
        advs, probs = [], []
        for rec in osv.records(doc):
            adv, p = osv.convert(rec, where)
            probs.extend(p)
            if adv is not None:
                advs.append(adv)
        return "osv", advs, probs
    return "", [], [Problem(where=where, message="not a recognised advisory format; skipped")]


def _documents(source: str, *, timeout: float) -> Iterator[tuple[str, bytes]]:
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        data = _download(source, timeout=timeout)
        name = Path(parsed.path).name or "download"
        if zipfile.is_zipfile(io.BytesIO(data)):
            yield from _zip_documents(io.BytesIO(data), name)
        else:
            yield name, data
        return
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise AdvisoryError(f"unsupported URL scheme {parsed.scheme!r}", subject=source)
    else:
        path = Path(source).expanduser()
    yield from _path_documents(path, source)


def _path_documents(path: Path, label: str) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        from stockade.config import files_below  # YAML's parser: only a folder import needs it

        files = files_below(path, lambda name: _wanted(name, archives=True))
        if not files:
            raise AdvisoryError(
                "folder holds no .json or .zip files (nor .xml or tar archives)", subject=label
            )
        for f in files:
            yield from _file_documents(f, str(f.relative_to(path)))
        return
    if not path.exists():
        raise AdvisoryError("no such file or folder", subject=label)
    yield from _file_documents(path, path.name)


def _file_documents(path: Path, where: str) -> Iterator[tuple[str, bytes]]:
    try:
        if zipfile.is_zipfile(path):
            with path.open("rb") as fh:
                yield from _zip_documents(fh, where)
            return
        if path.name.lower().endswith((".tar.zst", ".tzst")):
            yield from _zstd_tar_documents(path, where)
            return
        if path.suffix.lower() != ".gz" and tarfile.is_tarfile(path):
            with tarfile.open(path, "r:*") as tf:
                yield from _tar_documents(tf, where)
            return
        if path.name.lower().endswith((".tar.gz", ".tgz")):
            with tarfile.open(path, "r:gz") as tf:
                yield from _tar_documents(tf, where)
            return
        if path.stat().st_size > MAX_DOCUMENT:
            raise AdvisoryError(f"larger than {MAX_DOCUMENT >> 20} MiB", subject=str(path))
        yield where, path.read_bytes()
    except tarfile.TarError as exc:
        raise AdvisoryError(f"broken tar archive: {exc}", subject=str(path)) from exc
    except (OSError, EOFError) as exc:
        message = getattr(exc, "strerror", None) or exc
        raise AdvisoryError(f"cannot read: {message}", subject=str(path)) from exc


def _wanted(name: str, *, archives: bool) -> bool:
    low = name.lower()
    docs = (".json", ".xml", ".xml.gz", ".json.gz")
    packs = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tzst")
    return low.endswith(docs + packs if archives else docs)


def _gunzip(data: bytes) -> bytes:
    """A gzipped document (``updateinfo.xml.gz``) inflated, at most MAX_INFLATED bytes."""
    if data[:2] != b"\x1f\x8b":
        return data
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
        out = gz.read(MAX_INFLATED + 1)
    if len(out) > MAX_INFLATED:
        raise OSError(f"inflates to more than {MAX_INFLATED >> 20} MiB")
    return out


def _tar_documents(tf: tarfile.TarFile, where: str) -> Iterator[tuple[str, bytes]]:
    """The regular .json/.xml members of a tar archive (links and devices are never followed);
    at most MAX_ARCHIVE bytes in all."""
    total = 0
    for info in tf:
        if not info.isreg() or not _wanted(info.name, archives=False):
            continue
        member = f"{where}:{info.name}"
        if info.size > MAX_DOCUMENT:
            yield member, b""  # reported as malformed; never read
            continue
        total += info.size
        if total > MAX_ARCHIVE:
            raise AdvisoryError(
                f"archive holds more than {MAX_ARCHIVE >> 30} GiB of documents", subject=where
            )
        fh = tf.extractfile(info)
        if fh is not None:
            yield member, fh.read(MAX_DOCUMENT)


def _zstd_tar_documents(path: Path, where: str) -> Iterator[tuple[str, bytes]]:
    try:
        import zstandard
    except ImportError:
        raise AdvisoryError(
            "reading .tar.zst needs the zstandard module (pip install zstandard), or unpack it "
            "and import the folder",
            subject=str(path),
        ) from None
    with path.open("rb") as raw:
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=reader, mode="r|") as tf:
                yield from _tar_documents(tf, where)
        except zstandard.ZstdError as exc:
            raise AdvisoryError(f"broken zstd data: {exc}", subject=str(path)) from exc


def _zip_documents(fh: io.IOBase | io.BufferedReader, where: str) -> Iterator[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(fh) as zf:
            for info in zf.infolist():
                if info.is_dir() or not info.filename.lower().endswith(".json"):
                    continue
                member = f"{where}:{info.filename}"
                if info.file_size > MAX_DOCUMENT:
                    yield member, b""  # reported as malformed; never inflated
                    continue
                with zf.open(info) as m:
                    data = m.read(MAX_DOCUMENT + 1)
                yield member, data[:MAX_DOCUMENT] if len(data) <= MAX_DOCUMENT else b""
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise AdvisoryError(f"broken zip archive: {exc}", subject=where) from exc


def _download(url: str, *, timeout: float) -> bytes:
    import httpx

    from stockade.scanning.redirects import refuse_https_downgrade

    buf = bytearray()
    downgrade = refuse_https_downgrade(lambda message: AdvisoryError(message, subject=url))
    try:
        with (
            httpx.Client(
                timeout=timeout, follow_redirects=True, event_hooks={"response": [downgrade]}
            ) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code != 200:
                raise AdvisoryError(f"HTTP {resp.status_code}", subject=url)
            for chunk in resp.iter_bytes():
                buf.extend(chunk)
                if len(buf) > MAX_DOWNLOAD:
                    raise AdvisoryError("download larger than 2 GiB", subject=url)
    except httpx.HTTPError as exc:
        raise AdvisoryError(f"cannot download: {exc}", subject=url) from exc
    return bytes(buf)


def describe(path: str) -> str:
    """The stable name a source is stored under: an absolute path, or the URL as given."""
    if "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))
