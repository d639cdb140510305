"""What is remembered about one layer, and its cache in the store.

A :class:`LayerRecord` holds everything the merge needs without the blob: the layer's path index
(kinds, links, whiteouts, opaque dirs), the packages the catalogers found and the bytes of a few
small files kept for later lookups (os-release, symlink targets). Rows are keyed by the layer's
diff id and the names and versions of the catalogers, so a new cataloger version re-reads layers.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import sqlite3
import zlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stockade.model.errors import StoreError
from stockade.scanning.interface import Cataloger, Package
from stockade.scanning.layers import LayerIndex

if TYPE_CHECKING:
    from stockade.store import Store

FORMAT = 1


@dataclass(slots=True, kw_only=True)
class LayerRecord:
    diff_id: str
    index: LayerIndex
    packages: list[Package]
    skipped: list[str] = field(default_factory=list)
    kept: dict[str, bytes] = field(default_factory=dict)


def cataloger_key(catalogers: list[Cataloger] | tuple[Cataloger, ...]) -> str:
    return ",".join(sorted(f"{c.name}@{c.version}" for c in catalogers))


def cache_key(diff_id: str, catalogers_key: str) -> str:
    return hashlib.sha256(f"{FORMAT}\n{diff_id}\n{catalogers_key}".encode()).hexdigest()


def encode(record: LayerRecord) -> bytes:
    idx = record.index
    doc = {
        "paths": "\n".join(f"{k}{p}" for p, k in idx.kinds.items()),
        "links": idx.links,
        "whiteouts": idx.whiteouts,
        "opaque": idx.opaque,
        "packages": [_package_doc(p) for p in record.packages],
        "skipped": record.skipped,
        "kept": {p: base64.b64encode(b).decode() for p, b in record.kept.items()},
    }
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)


def decode(diff_id: str, blob: bytes) -> LayerRecord:
    doc = json.loads(zlib.decompress(blob))
    kinds = {line[1:]: line[0] for line in doc["paths"].split("\n") if line}
    index = LayerIndex(
        kinds=kinds, links=doc["links"], whiteouts=doc["whiteouts"], opaque=doc["opaque"]
    )
    return LayerRecord(
        diff_id=diff_id,
        index=index,
        packages=[_package_from(d) for d in doc["packages"]],
        skipped=doc["skipped"],
        kept={p: base64.b64decode(b) for p, b in doc["kept"].items()},
    )


def _package_doc(p: Package) -> dict[str, Any]:
    doc = asdict(p)
    doc.pop("layer", None)
    return doc


def _package_from(doc: dict[str, Any]) -> Package:
    return Package(
        type=doc["type"],
        name=doc["name"],
        version=doc["version"],
        purl=doc.get("purl", ""),
        licenses=tuple(doc.get("licenses") or ()),
        locations=tuple(doc.get("locations") or ()),
        source_name=doc.get("source_name"),
        source_version=doc.get("source_version"),
        arch=doc.get("arch"),
        metadata=tuple((str(k), str(v)) for k, v in doc.get("metadata") or ()),
    )


class LayerCache:
    """Reads and writes :class:`LayerRecord` rows; a ``None`` store caches nothing.

    On an SQLite store opened on the fast path the rows are read and written with the standard
    library's sqlite3, so a warm re-scan never imports SQLAlchemy.
    """

    def __init__(self, store: Store | None, catalogers_key: str) -> None:
        self.store = store
        self.catalogers_key = catalogers_key

    def get_many(self, diff_ids: list[str]) -> dict[str, LayerRecord]:
        if self.store is None or not diff_ids:
            return {}
        keys = {cache_key(d, self.catalogers_key): d for d in diff_ids}
        out = {}
        for key, data in self._rows(list(keys)):
            try:
                out[keys[key]] = decode(keys[key], bytes(data))
            except (zlib.error, ValueError, KeyError, TypeError, AttributeError):
                continue  # an unreadable row is a miss: the layer is read and the row rewritten
        return out

    def _rows(self, keys: list[str]) -> list[tuple[str, bytes]]:
        assert self.store is not None
        conn = self.store.sqlite_connect()
        if conn is not None:
            marks = ",".join("?" * len(keys))
            try:
                sql = f"SELECT cache_key, data FROM scan_layer_cache WHERE cache_key IN ({marks})"
                return [(str(k), bytes(d)) for k, d in conn.execute(sql, keys).fetchall()]
            except sqlite3.Error as exc:
                raise StoreError(f"database error: {exc}", subject=self.store.safe_url) from exc
            finally:
                conn.close()
        from sqlalchemy import select

        from stockade.scanning.tables import layer_cache

        query = select(layer_cache.c.cache_key, layer_cache.c.data)
        with self.store.connect() as sa_conn:
            rows = sa_conn.execute(query.where(layer_cache.c.cache_key.in_(keys))).all()
        return [(str(k), bytes(d)) for k, d in rows]

    def put(self, record: LayerRecord) -> None:
        self.put_many([record])

    def put_many(self, records: list[LayerRecord]) -> None:
        """Write (or rewrite) the rows of ``records`` in one transaction."""
        if self.store is None or not records:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "cache_key": cache_key(record.diff_id, self.catalogers_key),
                "diff_id": record.diff_id,
                "catalogers": self.catalogers_key[:1000],
                "format": FORMAT,
                "created_at": now,
                "data": encode(record),
            }
            for record in records
        ]
        keys = [row["cache_key"] for row in rows]
        conn = self.store.sqlite_connect()
        if conn is not None:
            # The text form SQLAlchemy's DateTime uses on SQLite, so both paths read alike.
            stamp = now.replace(tzinfo=None).isoformat(sep=" ")
            for row in rows:
                row["created_at"] = stamp
            try:
                with conn:
                    conn.executemany(
                        "DELETE FROM scan_layer_cache WHERE cache_key = ?", [(k,) for k in keys]
                    )
                    conn.executemany(
                        "INSERT OR REPLACE INTO scan_layer_cache (cache_key, diff_id, catalogers,"
                        " format, created_at, data) VALUES (:cache_key, :diff_id, :catalogers,"
                        " :format, :created_at, :data)",
                        rows,
                    )
            except sqlite3.Error as exc:
                raise StoreError(f"database error: {exc}", subject=self.store.safe_url) from exc
            finally:
                conn.close()
            return
        from sqlalchemy import delete, insert
        from sqlalchemy.exc import IntegrityError

        from stockade.scanning.tables import layer_cache

        # Another scan may cache the same layer at the same moment; its row is as good as ours
        # (one transaction per row here, so such a clash costs that row only).
        for row in rows:
            with contextlib.suppress(IntegrityError), self.store.begin() as sa_conn:
                sa_conn.execute(
                    delete(layer_cache).where(layer_cache.c.cache_key == row["cache_key"])
                )
                sa_conn.execute(insert(layer_cache).values(**row))
