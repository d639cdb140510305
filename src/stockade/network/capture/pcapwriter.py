"""A pcap file writer (microsecond records, host byte order, one link type) for masked captures.

The file is created with mode 0600 under a temporary name beside the target and renamed into
place by ``close()`` (:class:`~stockade.model.atomicfile.AtomicFile`); ``abort()`` removes it, so
a failed capture leaves no partial file behind.
:class:`PcapBuffer` writes the same format into memory (the controller masks uploads there, so no
byte of an upload touches its disk before it is masked).
"""

from __future__ import annotations

import struct
from pathlib import Path

from stockade.model.atomicfile import AtomicFile
from stockade.model.errors import InputError

HEADER = 24
RECORD = 16
SNAPLEN = 262144
_GLOBAL = struct.Struct("=IHHiIII")
_RECORD = struct.Struct("=IIII")


class PcapWriter:
    """``w = PcapWriter(path, linktype=1); w.write(ts, frame); w.close()``"""

    def __init__(self, path: Path | str, *, linktype: int) -> None:
        self.path = Path(path)
        self.linktype = linktype
        self.bytes = HEADER
        self.packets = 0
        try:
            self._out = AtomicFile(self.path, mode=0o600, fsync=True)
        except OSError as exc:
            raise InputError(f"cannot create: {exc.strerror}", subject=str(self.path)) from exc
        self._fh = self._out.file
        self._fh.write(_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype))

    def write(self, ts: float, frame: bytes | bytearray, wire_length: int | None = None) -> None:
        sec = int(ts)
        usec = min(round((ts - sec) * 1e6), 999999)
        try:
            self._fh.write(_RECORD.pack(sec, usec, len(frame), wire_length or len(frame)))
            self._fh.write(frame)
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror}", subject=str(self.path)) from exc
        self.bytes += RECORD + len(frame)
        self.packets += 1

    def close(self) -> None:
        """Flush, sync and move the file into place (mode 0600)."""
        try:
            self._out.commit()  # removes the temporary file when it fails
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror}", subject=str(self.path)) from exc

    def abort(self) -> None:
        self._out.abort()


class PcapBuffer:
    """A :class:`PcapWriter` into memory: ``b = PcapBuffer(linktype=1); b.write(...); b.value()``."""

    def __init__(self, *, linktype: int) -> None:
        self.path = Path("<memory>")
        self.linktype = linktype
        self.bytes = HEADER
        self.packets = 0
        self._parts = [_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype)]

    def write(self, ts: float, frame: bytes | bytearray, wire_length: int | None = None) -> None:
        sec = int(ts)
        usec = min(round((ts - sec) * 1e6), 999999)
        self._parts.append(_RECORD.pack(sec, usec, len(frame), wire_length or len(frame)))
        self._parts.append(bytes(frame))
        self.bytes += RECORD + len(frame)
        self.packets += 1

    def close(self) -> None:
        """Nothing to flush: the pcap is :meth:`value`."""

    def abort(self) -> None:
        self._parts.clear()

    def value(self) -> bytes:
        return b"".join(self._parts)
