"""The body of ``stockade sensor``, without Typer or Rich at import (the command's options are
in :mod:`stockade.cli.sensor`; :mod:`stockade.cli.sensor_fast` calls :func:`run_sensor` for
``--pcap`` without either: about 50 ms of start-up)."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stockade.cli.streams import write_masked
from stockade.model.errors import InputError, UsageError

DEFAULT_STATE = Path("/run/stockade/lab.json")
EXIT_FINDINGS = 1  # (stockade.cli.common.EXIT_FINDINGS)


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _enc(rec: Any) -> str:
    if rec.tls is not None and rec.tls.version:
        return str(rec.tls.version)
    return "encrypted" if rec.encrypted else "clear"


def _table(records: list[Any]) -> None:
    from rich.table import Table

    from stockade.cli.common import console
    from stockade.model.redact import redact_text

    t = Table(show_lines=False)
    for col in (
        "client",
        "server",
        "port",
        "protocol",
        "encryption",
        "bytes c>s / s>c",
        "DLP (masked)",
    ):
        t.add_column(col)
    for r in records:
        hits = sorted({f"{h.match.sensor.removeprefix('dlp.')} {h.match.masked}" for h in r.hits})
        cells = (
            _who(r.client, r.client_ip),
            _who(r.server, r.server_ip),
            str(r.server_port),
            r.protocol.removeprefix("proto."),
            _enc(r),
            f"{_fmt_bytes(r.bytes_to_server)} / {_fmt_bytes(r.bytes_to_client)}",
            "\n".join(hits) or "-",
        )
        t.add_row(*(redact_text(c) for c in cells))
    console.print(t)


def _who(ref: Any, ip: str) -> str:
    if ref.kind == "pod":
        return f"{ref.namespace}/{ref.name}"
    return ip


def run_sensor(
    *,
    iface: list[str] | None = None,
    lab: bool = False,
    pcap: Path | None = None,
    netns: str | None = None,
    duration: float | None = None,
    count: int | None = None,
    workers: int | None = 1,
    state: Path = DEFAULT_STATE,
    identities: str | None = None,
    node: str | None = None,
    stream_depth: int = 65536,
    fmt: str = "table",
    fail_on: str | None = None,
    tls_policy: Path | None = None,
    tls_min_version: str | None = None,
    store: bool = True,
    db: str | None = None,
    controller: str | None = None,
    token: str | None = None,
    controller_ca: Path | None = None,
    agent_name: str | None = None,
) -> int:
    """``stockade sensor`` with its options' values (the defaults are the command's: a test holds
    them equal); returns the exit code (1: an event at or above ``fail_on``)."""
    from stockade.identity import Directory
    from stockade.identity.sources import is_kubernetes, opened
    from stockade.model import Severity
    from stockade.network.analysis import Inspectors
    from stockade.network.flows import FlowConfig

    if fmt not in ("table", "json"):
        raise UsageError("--format must be table or json")
    if sum(bool(x) for x in (iface, lab, pcap)) != 1:
        raise UsageError("choose one source: --iface, --lab or --pcap")
    if pcap is not None and workers is not None and workers > 1:
        raise UsageError("--pcap is read by one process: --workers is for live capture")
    if (count is not None and count < 1) or (duration is not None and duration <= 0):
        raise UsageError("--count and --duration must be positive")
    if not 1024 <= stream_depth <= 16 * 1024 * 1024:
        raise UsageError("--stream-depth must be between 1 KiB and 16 MiB")
    threshold = Severity.parse(fail_on) if fail_on else None
    policy = _tls_policy(tls_policy, tls_min_version)
    if identities is not None and lab:
        raise UsageError("--identities and --lab are two sources of identity: choose one")
    if node is not None and not (identities and is_kubernetes(identities)):
        raise UsageError("--node goes with --identities kubernetes")
    inv = None
    if identities is None and (lab or state.exists() or state != DEFAULT_STATE):
        from stockade.lab.inventory import load

        inv = load(state) if (lab or state != DEFAULT_STATE) else _try_load(state)
    sources = contextlib.ExitStack()
    who = (
        sources.enter_context(opened(identities, node=node))
        if identities is not None
        else (inv.directory() if inv is not None else Directory())
    )
    inspectors = Inspectors.default()
    config = FlowConfig(stream_depth=stream_depth)
    # The start-up heap (modules, the DLP database) lives as long as the run: keep it out of the
    # collector's full passes, which otherwise walk it again and again while flows come and go.
    gc.freeze()

    capture = str(pcap) if pcap is not None else ("the lab" if lab else ", ".join(iface or ()))
    capabilities = ("dlp", "network.sensor") + (("capture",) if lab else ())
    with (
        sources,
        _reporting(controller, token, controller_ca, agent_name, capabilities) as reporter,
        _captures(reporter, inv if lab else None),
    ):
        out = _Outputs(fmt=fmt, db=db, store=store, capture=capture, policy=policy,
                       live=pcap is None)  # fmt: skip
        if reporter is not None:
            out.recorder.on_events = reporter.add_all
            out.recorder.on_record = lambda rec: reporter.add_connection(rec.to_dict())
        run = _capture(
            out, pcap, lab, iface, netns, inv, inspectors, who, config, duration, count, workers
        )
    if fmt == "table":
        _table(run.records)
    _summary(run, out, store)
    if run.stats.get("failed"):
        raise InputError("sensor " + "; ".join(run.stats["failed"]))
    if threshold is not None and out.worst >= threshold:
        return EXIT_FINDINGS
    return 0


@contextmanager
def _reporting(
    controller: str | None,
    token: str | None,
    ca: Path | None,
    name: str | None,
    capabilities: tuple[str, ...],
) -> Iterator[Any]:
    """``stockade.cli.agent.reporting`` (None without ``--controller``; it checks ``--token`` and
    ``--controller-ca``), imported only when one of them is given: it brings Typer and Rich."""
    if not (controller or token or ca):
        yield None
        return
    from stockade.cli.agent import AgentOptions, reporting

    with reporting(
        AgentOptions(controller=controller, token=token, ca=ca, name=name), capabilities
    ) as r:
        yield r


@contextmanager
def _captures(reporter: Any, inv: Any) -> Iterator[None]:
    """With ``--lab --controller``: carry out the controller's packet capture requests for the
    lab's workloads while the sensor runs (docs/forensics.md)."""
    if reporter is None or inv is None or os.geteuid() != 0:
        yield
        return
    from stockade.network.capture_agent import CaptureAgent

    pods = {f"{p.namespace}/{p.name}": p.host_if for p in inv.pods}

    def locate(workload: str) -> tuple[list[str], str | None] | None:
        host_if = pods.get(workload)
        return ([host_if], inv.node_netns) if host_if else None

    with CaptureAgent(reporter.link, locate):
        yield


def _capture(
    out: _Outputs,
    pcap: Path | None,
    lab: bool,
    iface: list[str] | None,
    netns: str | None,
    inv: Any,
    inspectors: Any,
    who: Any,
    config: Any,
    duration: float | None,
    count: int | None,
    workers: int | None,
) -> Any:
    from stockade.network.sensor import run_live, run_pcap

    fmt = "json" if out.json else "table"
    try:
        if pcap is not None:
            run = run_pcap(
                pcap,
                inspectors=inspectors,
                identities=who,
                config=config,
                count=count,
                on_record=out.record,
                keep=fmt == "table",
                on_lines=out.lines_writer(),
            )
        else:
            if os.geteuid() != 0:
                raise UsageError("live capture needs root")
            if lab:
                assert inv is not None
                interfaces, namespace = inv.host_interfaces(), inv.node_netns
            else:
                interfaces, namespace = list(iface or ()), netns
            if not workers:
                from stockade.workers import default_workers

                workers = default_workers()
            live: Any = run_live
            if workers > 1:
                from functools import partial

                from stockade.network.fanout import run_fanout

                live = partial(run_fanout, workers=workers)
            run = live(
                interfaces,
                namespace=namespace,
                inspectors=inspectors,
                identities=who,
                config=config,
                duration=duration,
                count=count,
                on_record=out.record,
                keep=fmt == "table",
            )
        out.flush()
    finally:
        out.close()
    return run


def _summary(run: Any, out: _Outputs, store: bool) -> None:
    src = run.stats.get("source", {})
    flows = run.stats.get("flows", {})
    note = f"{out.connections} connections, {run.stats['decode']['frames']} frames"
    if src.get("workers", 1) > 1:
        note += f" ({src['workers']} capture workers)"
    if "kernel_drops" in src:
        note += f", kernel drops {src['kernel_drops']} of {src['kernel_packets']}"
    if src.get("truncated"):
        note += ", file truncated at the end"
    if src.get("bad_timestamps"):
        note += f", {src['bad_timestamps']} frames with out-of-range timestamps (kept, at the previous frame's time)"
    if flows.get("evicted") or flows.get("half_open_dropped"):
        note += f", evicted {flows['evicted']}, half-open dropped {flows['half_open_dropped']}"
    tls_events = sum(n for k, n in out.kinds.items() if k.startswith("tls."))
    note += f", {out.kinds.get('dlp.sensitive_in_clear', 0)} DLP events, {out.kinds.get('tls.weak_version', 0)} weak TLS, {tls_events} TLS policy events"
    if store:
        note += f"; stored {out.stored[0]} connections and {out.stored[1]} events"
    # Rich printed this line as it stands (no markup, emoji code or highlighting in it, never
    # wrapped): written plainly, the command needs no Rich at all
    sys.stderr.write(note + "\n")
    sys.stderr.flush()


class _Outputs:
    """Per connection: stream JSON (the CLI's part); tallies and batched storing are the network
    pillar's ``Recorder``."""

    def __init__(
        self, *, fmt: str, db: str | None, store: bool, capture: str, policy: Any, live: bool
    ) -> None:
        from stockade.network.recorder import Recorder

        self.json = fmt == "json"
        # live capture: each line as its connection ends; a file: as the buffer fills, and at
        # the end (a flush a line was a write call a line)
        self.live = live
        self._store = None
        if store:
            from stockade.cli.common import open_db

            self._store = open_db(db)  # opened first: a bad URL fails before any capture
        self.recorder = Recorder(self._store, capture=capture, policy=policy)

    @property
    def connections(self) -> int:
        return self.recorder.connections

    @property
    def kinds(self) -> dict[str, int]:
        return self.recorder.kinds

    @property
    def worst(self) -> Any:
        return self.recorder.worst

    @property
    def stored(self) -> tuple[int, int]:
        return self.recorder.stored

    def record(self, rec: Any) -> None:
        if not self.json:
            self.recorder.add(rec)
            return
        if self._store is None:  # only the line is needed: built without the dict
            line = rec.json_line()
            self.recorder.add(rec)
        else:  # the dict made once, for the line and the store
            data = rec.to_dict()
            self.recorder.add(rec, data)
            line = json.dumps(data)
        write_masked(line + "\n")  # every string of it passed the gate (to_dict, json_line)
        if self.live:
            sys.stdout.flush()

    def lines_writer(self) -> Any:
        """``run_pcap``'s ``on_lines`` when this output only writes JSON lines and tallies them
        (no store, no controller: they need the records), else None."""
        r = self.recorder
        if not self.json or self._store is not None or r.on_record or r.on_events:
            return None
        return self.lines

    def lines(
        self, text: str, count: int, protocol: str, first: float, last: float, hits: Any
    ) -> None:
        """JSON lines written by the compiled path (pcapfast.c says why nothing in them can hold
        a number the masking gate masks; findings are put in by ``hits_json``), in their place
        among the records'."""
        self.recorder.add_plain(count, protocol, first, last, hits)
        write_masked(text)

    def flush(self) -> None:
        if self.json:
            sys.stdout.flush()
        self.recorder.flush()

    def close(self) -> None:
        try:
            self.recorder.finish()
        finally:
            if self._store is not None:
                self._store.close()


def _tls_policy(path: Path | None, min_version: str | None) -> Any:
    from stockade.network.tls_policy import TlsPolicy, load_policy, parse_min_version

    version = None
    if min_version is not None:
        try:
            version = parse_min_version(min_version)
        except ValueError as exc:
            raise UsageError(f"--tls-min-version: {exc}") from None
    if path is not None:
        return load_policy(path, min_version=version)
    return TlsPolicy(min_version=version) if version else TlsPolicy()


def _try_load(state: Path) -> Any:
    from stockade.lab.inventory import load
    from stockade.model.errors import ConfigError

    try:
        return load(state)
    except ConfigError:
        return None
