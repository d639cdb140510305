"""The sensor pipeline: a packet source -> ``Decoder`` -> ``FlowTable`` -> connection records."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockade.identity import Directory
from stockade.model.errors import PacketError
from stockade.network.analysis import Inspectors
from stockade.network.capture.decode import SUPPORTED_LINKTYPES, Decoder
from stockade.network.connection import ConnectionRecord
from stockade.network.flows import FlowConfig, FlowTable


@dataclass(slots=True)
class SensorRun:
    records: list[ConnectionRecord] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _pipeline(
    inspectors: Inspectors | None,
    identities: Directory,
    config: FlowConfig | None,
    on_record: Callable[[ConnectionRecord], None] | None,
    run: SensorRun,
    keep: bool,
) -> tuple[Decoder, FlowTable]:
    def emit(rec: ConnectionRecord) -> None:
        if keep:
            run.records.append(rec)
        if on_record is not None:
            on_record(rec)

    table = FlowTable(inspectors, identities, emit, config)
    return Decoder(table, tunnels=True, fragments=True), table


def _finish(run: SensorRun, decoder: Decoder, table: FlowTable, extra: dict[str, Any]) -> SensorRun:
    table.flush()
    run.stats = {
        "decode": decoder.stats.as_dict(),
        "flows": {k: getattr(table.stats, k) for k in table.stats.__slots__},
        **extra,
    }
    return run


def run_pcap(
    path: Path,
    *,
    inspectors: Inspectors | None,
    identities: Directory,
    config: FlowConfig | None = None,
    count: int | None = None,
    on_record: Callable[[ConnectionRecord], None] | None = None,
    keep: bool = True,
    on_lines: Callable[[str, int, str, float, float, tuple[Any, ...]], None] | None = None,
) -> SensorRun:
    """Read a pcap or pcapng file through the whole sensor.

    ``on_lines`` is for a caller that only writes each record's ``json_line()`` and tallies it
    (``Recorder.add_plain``): with it, the compiled path writes the lines of the common
    connections (clear HTTP/1.x) itself, a finding put in by Python, and hands them over,
    ``on_lines(text, count, protocol, first, last, hits)`` (see ``fastpcap.Lines``), in their
    place among the records; such connections reach neither ``on_record`` nor ``records``. It
    is not used with ``keep`` (every record kept) nor on the pure-Python path."""
    from stockade.network.capture import fastpcap
    from stockade.network.capture.pcapfile import PcapReader

    run = SensorRun()
    decoder, table = _pipeline(inspectors, identities, config, on_record, run, keep)
    fast = fastpcap.compiled()
    if fast is not None:  # the same path with the per-frame work in C
        lines = None if keep else on_lines
        decoder.stats, source = fastpcap.run(fast, path, table, count, lines)
        return _finish(run, decoder, table, {"source": source})
    frame = decoder.frame
    n = supported = 0
    unsupported = None
    with PcapReader(path) as reader:
        for ts, link, buf, off, caplen in reader.frames():
            if link in SUPPORTED_LINKTYPES:
                supported += 1
            elif reader.format == "pcap":  # one link type for the whole file
                raise PacketError(f"unsupported link type {link}", subject=str(path))
            else:  # a pcapng's other interfaces (USB, nflog, ...): their frames are counted
                unsupported = link
            frame(ts, link, buf, off, caplen)
            n += 1
            if count is not None and n >= count:
                break
        if unsupported is not None and not supported:
            raise PacketError(f"unsupported link type {unsupported}", subject=str(path))
        source = {
            "file": str(path),
            "format": reader.format,
            "truncated": reader.truncated,
            "bad_timestamps": reader.bad_timestamps,
        }
    return _finish(run, decoder, table, {"source": source})


def run_live(
    interfaces: list[str] | None,
    *,
    namespace: str | None,
    inspectors: Inspectors | None,
    identities: Directory,
    config: FlowConfig | None = None,
    duration: float | None = None,
    count: int | None = None,
    on_record: Callable[[ConnectionRecord], None] | None = None,
    ready: Callable[[], None] | None = None,
    stop: Callable[[], bool] | None = None,
    keep: bool = True,
) -> SensorRun:
    """Capture on ``interfaces`` (in ``namespace``) until ``duration`` or ``count`` frames."""
    # the detectors load before the first frame, not at the first detection (analysis.detect
    # imports them then): a lag while the ring fills
    from stockade.network import protocols  # noqa: F401
    from stockade.network.capture.live import Ring

    run = SensorRun()
    decoder, table = _pipeline(inspectors, identities, config, on_record, run, keep)
    with Ring(interfaces, namespace=namespace) as ring:
        if ready is not None:
            ready()
        # Ctrl-C ends an unbounded capture; the flows seen so far are still reported
        with contextlib.suppress(KeyboardInterrupt):
            ring.run(decoder.frame, duration=duration, count=count, stop=stop, idle=table.tick)
        capture = {
            "interfaces": interfaces or ["*"],
            "namespace": namespace,
            "kernel_packets": ring.stats_packets,
            "kernel_drops": ring.stats_drops,
            "frames": ring.frames,
        }
    return _finish(run, decoder, table, {"source": capture})
