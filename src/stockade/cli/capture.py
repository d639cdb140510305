"""``stockade capture``: packet capture of one workload (or masking of an existing capture), written
as pcap with card numbers, SSNs and other DLP finds masked inside the packets."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from stockade.cli.common import console, err_console
from stockade.model.errors import UsageError

DEFAULT_STATE = Path("/run/stockade/lab.json")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\Z")
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30,
          "gib": 2**30}  # fmt: skip
MAX_SIZE = 64 * 2**30


def parse_size(text: str) -> int:
    """``10MB`` (10**6), ``512KiB`` (2**10), ``2GB``, ``1500`` (bytes)."""
    m = _SIZE.match(text.strip().lower())
    if not m:
        raise UsageError(f"bad size {text!r} (write a number and a unit: 500KB, 10MB, 1GiB)")
    value = int(float(m.group(1)) * _UNITS[m.group(2) or ""])
    if not 0 < value <= MAX_SIZE:
        raise UsageError(f"the size {text!r} must be more than 0 and at most 64 GiB")
    return value


def _describe(ts: float, frame: bytearray, lay: Any, masked: bool) -> str:
    stamp = time.strftime("%H:%M:%S", time.gmtime(ts)) + f".{round(ts % 1 * 1e6) % 1000000:06d}"
    if lay is None:
        return f"{stamp} non-IP frame, {len(frame)} bytes" + (" [masked]" if masked else "")
    a, b = (lay.l3 + 12, lay.l3 + 16) if lay.version == 4 else (lay.l3 + 8, lay.l3 + 24)
    width = 4 if lay.version == 4 else 16
    src = ipaddress.ip_address(bytes(frame[a : a + width]))
    dst = ipaddress.ip_address(bytes(frame[b : b + width]))
    # words between the numbers: the output gate would read "20.002000 10.1.0.2.8080" as one
    # digit run (and mask what passes Luhn)
    if lay.proto in (6, 17):
        sport = int.from_bytes(frame[lay.l4 : lay.l4 + 2], "big")
        dport = int.from_bytes(frame[lay.l4 + 2 : lay.l4 + 4], "big")
        what = f"{'TCP' if lay.proto == 6 else 'UDP'} {_at(src, sport)} > {_at(dst, dport)}"
        what += f" payload={lay.end - lay.payload}"
    else:
        what = f"IP {src} > {dst}" + (" fragment" if lay.fragment else "")
    return f"{stamp} {what}" + (" [masked]" if masked else "")


def _at(ip: Any, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def capture_cmd(
    pod: Annotated[
        str | None, typer.Argument(help="Lab pod to capture (its host-side veth).")
    ] = None,
    out: Annotated[
        Path, typer.Option("--output", "-o", help="pcap file to write (mode 0600).")
    ] = Path("capture.pcap"),
    lab_state: Annotated[
        Path, typer.Option("--lab-state", help="Lab inventory (`stockade lab up`).")
    ] = DEFAULT_STATE,
    iface: Annotated[
        list[str] | None,
        typer.Option(
            "--iface", "-i", help="Capture on this interface instead of a lab pod (repeat)."
        ),
    ] = None,
    netns: Annotated[
        str | None, typer.Option("--netns", help="Network namespace of --iface.")
    ] = None,
    pcap: Annotated[
        Path | None, typer.Option("--pcap", help="Mask this pcap/pcapng file instead of capturing.")
    ] = None,
    duration: Annotated[
        str, typer.Option("--duration", help="Stop after this long (30s, 5m).")
    ] = "10s",
    max_bytes: Annotated[
        str,
        typer.Option("--max-bytes", help="Stop before the file exceeds this size (10MB, 1GiB)."),
    ] = "10MB",
    max_packets: Annotated[
        int | None, typer.Option("--max-packets", help="Stop after N packets.")
    ] = None,
    bpf: Annotated[
        str | None,
        typer.Option("--filter", help="Capture filter, tcpdump syntax ('tcp port 8080')."),
    ] = None,
    sensors: Annotated[
        Path | None, typer.Option("--sensors", help="YAML file of user DLP sensors (masked too).")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Do not print one line per packet.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object.")
    ] = False,
) -> None:
    """Capture one workload's packets (or mask an existing capture) into a pcap with card numbers,
    SSNs and other DLP finds masked inside the packets before they are written; prints each packet
    and what was masked. Exit codes: 0 written, 2 usage error, 3 capture or file error."""
    from stockade.cli.dlp import _engine
    from stockade.network.forensics import capture_workload, mask_pcap

    if sum(x is not None for x in (pod, iface, pcap)) != 1:
        raise UsageError("name one source: a lab POD, --iface or --pcap")
    size = parse_size(max_bytes)
    seconds = parse_duration_s(duration)
    engine = _engine(sensors, "auto", False)

    def show(*packet: Any) -> None:
        console.print(_describe(*packet), highlight=False, markup=False)

    on_packet = None if quiet or as_json else show
    if pcap is not None:
        report = mask_pcap(pcap, out, dlp_engine=engine, bpf_filter=bpf, max_bytes=size,
                           max_packets=max_packets, on_packet=on_packet)  # fmt: skip
    else:
        if os.geteuid() != 0:
            raise UsageError("live capture needs root")
        namespace: str | None
        if pod is not None:
            from stockade.lab.inventory import load

            inv = load(lab_state)
            interfaces, namespace = [inv.pod(pod).host_if], inv.node_netns
        else:
            interfaces, namespace = list(iface or ()), netns
        report = capture_workload(interfaces, namespace=namespace, duration=seconds,
                                  max_bytes=size, max_packets=max_packets, bpf_filter=bpf,
                                  out_path=out, dlp_engine=engine, on_packet=on_packet)  # fmt: skip
    if as_json:
        typer.echo(json.dumps(report.to_dict(), sort_keys=True))
        return
    masked = ", ".join(f"{k} {v}" for k, v in sorted(report.masked.items())) or "nothing"
    note = (
        f"{report.packets} packets, {report.bytes} bytes written to {report.path} "
        f"({report.stopped}); masked: {masked}; conservative {report.conservative}; "
        f"{report.packets_masked} packets changed, {report.checksums_fixed} checksums fixed"
    )
    if report.filter:
        note += f"; filter in {report.filter_where}, {report.filtered_out} frames filtered out"
    if report.kernel_drops:
        note += f"; kernel dropped {report.kernel_drops}"
    if report.skipped_linktype:
        note += f"; {report.skipped_linktype} frames of another link type skipped"
    err_console.print(note, highlight=False, soft_wrap=True)


def parse_duration_s(text: str) -> float:
    from stockade.model.duration import parse_duration

    return parse_duration(text, allow_zero=False).total_seconds()


def register(app: typer.Typer) -> None:
    app.command("capture")(capture_cmd)
