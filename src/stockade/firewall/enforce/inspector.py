"""Verdicts from the first bytes of a connection, one queued packet at a time.

The kernel sends a connection here while it is marked INSPECT and within the stream depth. For each
packet :meth:`Inspector.packet` answers ``(accept, mark)``: the mark becomes the connection mark in
the ``post`` chain (ALLOW: the kernel takes over; BLOCK: this packet and every later one is reset or
dropped, so blocked data never reaches the other side). Decisions are made as early as possible:
on the first packet when no rule needs the application protocol and no data rule applies, else when
the protocol is known, and DLP keeps looking at the bytes up to the depth. Where TLS is required, a
connection that upgrades in-band (SSLRequest, STARTTLS, ...) is held like any pending verdict
until :func:`upgrades.judge` says what followed: TLS, or data in clear.

A flow starts at its SYN: a SYN with a new initial sequence number on a known address and port
pair is a new connection and never inherits the old one's verdict. Once decided, a flow keeps only
its mark (the kernel carries the connection from then on); flows end on a RST or on both FINs when
the kernel sends them (deny and implicit rules), else when idle for :data:`IDLE_SECONDS`.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from stockade.firewall.enforce import clean, marks
from stockade.firewall.enforce.answer import Answer
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.engine import (
    TLS_ORDER,
    DataNeeds,
    Endpoint,
    Resolved,
    Verdict,
    awaited_protocols,
    data_needs,
    evaluate,
)
from stockade.firewall.policy.model import Policy
from stockade.model import Event, ResourceRef, Severity
from stockade.network.capture.decode import LINK_RAW, Buf, Decoder, FlowKey
from stockade.network.interface import Detection, DlpMatch, flow_key
from stockade.network.protocols import (
    UNKNOWN,
    could_become,
    detect,
    possible_any,
    refines,
    upgrades,
)
from stockade.network.protocols.base import STRONG
from stockade.network.reassembly import MASK, Stream
from stockade.network.tls import opens_with_hello

if TYPE_CHECKING:
    from stockade.network.dlp.decoding import DecodingStream
    from stockade.network.dlp.engine import DlpEngine
    from stockade.network.waf import WafEngine, WafMatch, WafStream

DETECT_BYTES = 4096  # bytes per direction kept for protocol detection
DECIDE_AFTER = 2048  # client bytes after which an unrecognized protocol is "proto.unknown"
MAX_FLOWS = 20_000
IDLE_SECONDS = 300.0  # an undecided flow nobody sent a packet of for this long is forgotten
# A flow whose connection the kernel saw end (see ends.py) is forgotten this long after: a
# retransmitted segment still finds its flow, and the streams of connections that ended are freed.
END_GRACE = 2.0
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10

# ICMP (1) and ICMPv6 (58) message types that report on another connection
_ICMP_ERRORS = {1: frozenset({3, 4, 5, 11, 12}), 58: frozenset({1, 2, 3, 4})}
_L4_NAMES = {132: "sctp", 47: "gre", 50: "esp", 4: "ipip", 41: "ipv6"}

# what a cached L3/L4 (+ application protocol) verdict depends on: src ip, dst ip, port, l4, app
_VerdictKey: TypeAlias = tuple[str, str, int, str, str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Learned:
    """A connection seen in Discover mode (becomes an allow rule)."""

    src: Endpoint
    dst: Endpoint
    port: int
    l4: str
    app: str | None


@dataclass(slots=True)
class _Flow:
    client: tuple[bytes, int]
    l4: str
    src: Endpoint
    dst: Endpoint
    port: int
    needs: DataNeeds
    pending: Verdict | None  # an L3/L4 verdict waiting for the application protocol
    app: str | None = None
    encrypted: bool = False
    mark: int = 0
    heads: tuple[bytearray, bytearray] = field(default_factory=lambda: (bytearray(), bytearray()))
    streams: list[Stream | None] = field(default_factory=lambda: [None, None])
    dlp: list[DecodingStream | None] = field(default_factory=lambda: [None, None])
    waf: WafStream | None = None  # the client direction's WAF stream, when a group asks for it
    reported: set[str] = field(default_factory=set)
    last: float = 0.0
    isn: int = -1  # the client's initial sequence number, when its SYN was seen
    fins: int = 0  # directions that sent a FIN
    ended: float = 0.0  # when both FINs (or a RST) passed in the kernel (see end_seen)

    def release(self) -> None:
        """Drop what only an undecided flow needs (buffers, DLP stream state)."""
        for stream in self.dlp:
            if stream is not None:
                stream.discard()
        self.dlp = [None, None]
        if self.waf is not None:
            self.waf.close()
            self.waf = None
        self.streams = [None, None]
        self.heads = (bytearray(), bytearray())


class Inspector:
    def __init__(
        self,
        policy: Policy,
        directory: Directory,
        *,
        resolved: Resolved | None = None,
        dlp_engine: DlpEngine | None = None,
        waf_engine: WafEngine | None = None,
        depth: int = 65536,
        emit: Callable[[Event], None] = lambda e: None,
        learn: Callable[[Learned], None] = lambda item: None,
    ) -> None:
        self.policy = policy
        self.directory = directory
        self.resolved = resolved or {}
        self.depth = depth
        self.emit = emit
        self.learn = learn
        self._dlp_engine = dlp_engine
        self._waf_engine = waf_engine  # built-in pack, compiled on the first flow that needs it
        self._flows: OrderedDict[FlowKey, _Flow] = OrderedDict()
        self._decoder = Decoder(self, skip_outgoing=False)
        self._answer: tuple[bool, int] = (True, 0)
        # the TCP packet being judged: (key, direction, seq, ack, payload length, flags)
        self._packet: tuple[FlowKey, int, int, int, int, int] | None = None
        # set when the packet just judged is best answered with a 403
        self.reply: Answer | None = None
        # the packet just judged belongs to a decided connection whose later packets (but for
        # SYNs, FINs, RSTs and a new flow's first) all get the same answer (see fastpath.py)
        self.decided = False
        self._first = self._reply = False  # from the packet mark (see packet())
        self._notice = False  # the packet is a copy the kernel let pass (see end_seen)
        self._verdicts: dict[_VerdictKey, Verdict] = {}  # evaluate() is pure for a given policy
        self._needs: dict[tuple[str, str], DataNeeds] = {}
        self._clean: dict[DataNeeds, int] = {}  # see clean_bits
        # the protocols rules name per (src ip, dst ip, port, l4): see _awaited_app
        self._awaited: dict[tuple[str, str, int, str], frozenset[str]] = {}
        self._endpoints: dict[bytes, Endpoint] = {}
        self.stats = {"packets": 0, "blocked": 0, "allowed": 0, "malformed": 0}

    def _endpoint(self, packed: bytes) -> Endpoint:
        ep = self._endpoints.get(packed)
        if ep is None:
            if len(self._endpoints) > 100_000:
                self._endpoints.clear()
            ep = self._endpoints[packed] = self.directory.by_ip(str(ipaddress.ip_address(packed)))
        return ep

    def _evaluate(self, flow: _Flow, app: str | None = None) -> Verdict:
        key = (flow.src.ip, flow.dst.ip, flow.port, flow.l4, app)
        v = self._verdicts.get(key)
        if v is None:
            if len(self._verdicts) > 100_000:
                self._verdicts.clear()
                self._needs.clear()
                self._awaited.clear()
            v = self._verdicts[key] = evaluate(
                self.policy,
                flow.src,
                flow.dst,
                flow.port,
                l4=flow.l4,
                app=app,
                resolved=self.resolved,
            )
        return v

    def fast_bits(self, client: bytes, server: bytes, port: int) -> int:
        """What the compiled loop may answer alone (``fastpath.PAIR_*``) for TCP connections from
        ``client`` to ``server``:``port`` (packed IPv4 addresses) that open with an HTTP/1 request
        or a TLS ClientHello: the protocols this policy allows there with no event to record, and
        whether the bytes must still be scanned (DLP) or nothing is left to look for. Connections
        that require TLS, run WAF rules, or are denied, recorded or learned stay with Python."""
        from stockade.firewall.enforce import fastpath as fp

        a, b = self._endpoint(client), self._endpoint(server)
        needs = self._needs.get((a.ip, b.ip))
        if needs is None:
            needs = self._needs[(a.ip, b.ip)] = data_needs(self.policy, a, b, self.resolved)
        if needs.require_tls or needs.waf:
            return fp.PAIR_KNOWN
        probe = _Flow(
            client=(client, 0), l4="tcp", src=a, dst=b, port=port, needs=needs, pending=None
        )
        first = self._evaluate(probe).action  # what _flow() judges before the protocol is known
        bits = fp.PAIR_KNOWN
        if first not in ("allow", "inspect"):
            return bits
        awaited = awaited_protocols(self.policy, a, b, port, resolved=self.resolved)
        for app, bit in (("proto.http", fp.PAIR_HTTP), ("proto.tls", fp.PAIR_TLS)):
            if any(refines(p, app) for p in awaited):
                continue  # an HTTP/1 request may still become HTTP/2 (h2c): Python waits
            action = self._evaluate(probe, app).action  # what _on_app() judges
            if action == "allow" or (first == "allow" and action != "learn"):
                bits |= bit
        if not needs.data:
            return bits | fp.PAIR_ALLOW
        scan = self.clean_bits(needs)
        if scan & marks.SCAN:
            bits |= fp.PAIR_CLEAN
        if scan & marks.SCAN_SHORT:
            bits |= fp.PAIR_CLEAN_SHORT
        return bits | fp.PAIR_SCAN

    # the netfilter side --------------------------------------------------------------------

    def packet(self, payload: bytes, mark: int = 0) -> tuple[bool, int]:
        """Verdict for one IP packet: (accept, mark to set; 0 for none). ``mark`` is the packet's
        mark from the kernel (FIRST: the connection's first packet here; REPLY: from its responder)."""
        self.stats["packets"] += 1
        self._first = bool(mark & marks.FIRST)
        self._reply = bool(mark & marks.REPLY)
        self._answer = (True, 0)
        self._packet = None
        self.reply = None
        self.decided = False
        before = self._decoder.stats.malformed
        self._decoder.frame(time.monotonic(), LINK_RAW, payload, 0, len(payload))
        if self._decoder.stats.malformed != before:
            self.stats["malformed"] += 1
        return self._answer

    def end_seen(self, payload: bytes, now: float | None = None) -> None:
        """A FIN or RST of a connection under inspection that the kernel let pass and copied here
        (see ends.py): no verdict; once both directions ended, the flow is forgotten after
        :data:`END_GRACE` seconds instead of when it idles out."""
        self._notice = True
        try:
            ts = time.monotonic() if now is None else now
            self._decoder.frame(ts, LINK_RAW, payload, 0, len(payload))
        finally:
            self._notice = False

    # decoder sink --------------------------------------------------------------------------

    def tcp(
        self,
        ts: float,
        key: FlowKey,
        flags: int,
        seq: int,
        ack: int,
        buf: Buf,
        off: int,
        length: int,
    ) -> None:
        if self._notice:
            self._noticed(ts, key, flags)
            return
        flow, direction = self._flow(ts, key, "tcp", isn=seq if flags & (SYN | ACK) == SYN else -1)
        if flow.mark:
            self._answer = (True, flow.mark)
            if flags & (FIN | RST):
                self._ended(flow, key, direction, flags)
            else:
                self.decided = True
            return
        streams = flow.streams
        stream = streams[direction] or self._stream(flow, direction)
        self._packet = (key, direction, seq, ack, length, flags)
        if flags & ACK:
            # The peer's stream starts exactly where this segment acknowledges, if it has not
            # sent anything yet (its SYN-ACK or SYN stayed in the kernel).
            other = streams[1 - direction] or self._stream(flow, 1 - direction)
            if not other.started:
                other.syn((ack - 1) & MASK)
        if flags & SYN:
            stream.syn(seq)
        elif length:
            stream.segment(seq, buf, off, length)
        self._settle(flow)
        if flags & (FIN | RST):
            if not flow.mark:
                self._finish(flow)
            self._ended(flow, key, direction, flags)
        elif flow.mark:
            flow.release()
            self.decided = True
        self._answer = (True, flow.mark or self._scan_bits(flow))

    def _scan_bits(self, flow: _Flow) -> int:
        """SCAN (and SCAN_SHORT) when the verdict of an undecided TCP flow is final but for DLP
        sensors the kernel's first look covers (clean.py): its clean segments may pass at once."""
        if flow.app is None or flow.pending is not None or flow.needs.waf:
            return 0
        return self.clean_bits(flow.needs)

    def clean_bits(self, needs: DataNeeds) -> int:
        """The SCAN bits for connections with ``needs`` (0: every segment waits for a verdict)."""
        bits = self._clean.get(needs)
        if bits is None:
            bits = 0
            if self._dlp_engine is not None and not needs.waf and (needs.block or needs.alert):
                ids = [c.sensor.id for c in self._dlp_engine.sensors]
                run = clean.predicate_for(ids, (*needs.block, *needs.alert))
                if run == clean.RUN_LONG:
                    bits = marks.SCAN
                elif run == clean.RUN_SHORT:
                    bits = marks.SCAN | marks.SCAN_SHORT
            self._clean[needs] = bits
        return bits

    def _noticed(self, ts: float, key: FlowKey, flags: int) -> None:
        flow, direction = self._flows.get(key), 0
        if flow is None:
            flow, direction = self._flows.get(_reverse(key)), 1
        if flow is None or not flags & (FIN | RST):
            return  # never seen here (no data yet), or already gone: nothing to forget
        flow.fins |= 0b11 if flags & RST else 1 << direction
        if flow.fins == 0b11 and not flow.ended:
            flow.ended = ts

    def _stream(self, flow: _Flow, direction: int) -> Stream:
        stream = flow.streams[direction]
        if stream is None:  # the flow keeps its own (shorter) head for detection
            stream = flow.streams[direction] = Stream(
                self.depth,
                256 * 1024,
                on_data=functools.partial(self._data, flow, direction),
                keep_head=False,
            )
        return stream

    def _ended(self, flow: _Flow, key: FlowKey, direction: int, flags: int) -> None:
        flow.fins |= 0b11 if flags & RST else 1 << direction
        if flow.fins == 0b11:  # reset, or closed both ways: later packets are stragglers
            flow.release()
            self._flows.pop(key if direction == 0 else _reverse(key), None)

    def udp(self, ts: float, key: FlowKey, buf: Buf, off: int, length: int) -> None:
        flow, direction = self._flow(ts, key, "udp")
        if not flow.mark and length:
            self._data(flow, direction, bytes(buf[off : off + length]))
            self._settle(flow, final=True)
        elif not flow.mark and flow.pending is not None and flow.app is None:
            # An empty datagram is a whole message no protocol a rule names can come of: let
            # through undecided, it reached a server where only DNS (say) is allowed.
            flow.app = UNKNOWN
            self._on_app(flow)
            self._settle(flow, final=True)
        if flow.mark:
            flow.release()
        self.decided = bool(flow.mark)
        self._answer = (True, flow.mark)

    def other(
        self, ts: float, proto: int, src: bytes, dst: bytes, buf: Buf, off: int, length: int
    ) -> None:
        """A packet of another IP protocol than TCP and UDP (ICMP, SCTP, GRE, ...) that opens a
        connection: judged by its ends alone (no port, no application protocol), so only rules
        whose ports are ``any`` match it, and in protect mode the implicit rule denies it. ICMP
        errors belong to the connection they report on (conntrack: related) and pass as
        before; its verdict covers them."""
        if proto in (1, 58):
            if length < 1 or buf[off] in _ICMP_ERRORS[proto]:
                return
            l4 = "icmp"
        else:
            l4 = _L4_NAMES.get(proto, f"ip{proto}")
        flow, _ = self._flow(ts, (src, 0, dst, 0, proto), l4)
        if not flow.mark and flow.app is None:
            flow.app = UNKNOWN  # no protocol to wait for: rules naming protocols never match
            verdict = self._evaluate(flow, UNKNOWN)
            if verdict.action != "learn":  # discover passes it; a learned rule needs a port
                self._judge(flow, verdict)
            if not flow.mark and verdict.passes:
                flow.mark = marks.ALLOW
        self.decided = bool(flow.mark)
        self._answer = (True, flow.mark)

    def expire(self, now: float | None = None, idle: float = IDLE_SECONDS) -> int:
        """Forget flows idle for ``idle`` seconds (their FINs may never come here), and flows
        that ended :data:`END_GRACE` seconds ago; returns how many."""
        now = time.monotonic() if now is None else now
        cutoff, gone = now - idle, now - END_GRACE
        stale = [k for k, f in self._flows.items() if f.last < cutoff or 0 < f.ended < gone]
        for k in stale:
            self._flows.pop(k).release()
        return len(stale)

    def forget(self) -> None:
        """Drop every flow (this inspector is being replaced)."""
        while self._flows:
            self._flows.popitem()[1].release()

    # flow state ----------------------------------------------------------------------------

    def _flow(self, ts: float, key: FlowKey, l4: str, *, isn: int = -1) -> tuple[_Flow, int]:
        flow = self._flows.get(key)
        direction = 0
        if flow is None:
            flow = self._flows.get(_reverse(key))
            direction = 1
        if flow is not None and (self._first or (isn >= 0 and (direction == 1 or flow.isn != isn))):
            # The kernel says this is the connection's first packet here, or a client SYN with a
            # new initial sequence number (or from the old server's side): a new connection on a
            # known address and port pair. It must not inherit the old one's verdict or streams.
            del self._flows[key if direction == 0 else _reverse(key)]
            flow.release()
            flow = None
        if flow is None:
            # A flow usually starts at its first data segment (the SYN stays in the kernel): the
            # REPLY mark tells whether that segment came from the server.
            direction = 1 if self._reply and isn < 0 else 0
            ckey = key if direction == 0 else _reverse(key)
            c_ip, c_port, s_ip, _s_port, _ = ckey
            a, b = self._endpoint(c_ip), self._endpoint(s_ip)
            needs = self._needs.get((a.ip, b.ip))
            if needs is None:
                needs = self._needs[(a.ip, b.ip)] = data_needs(self.policy, a, b, self.resolved)
            flow = _Flow(
                client=(c_ip, c_port), l4=l4, src=a, dst=b, port=_s_port, needs=needs, pending=None
            )
            verdict = self._evaluate(flow)
            flow.isn = isn
            self._flows[ckey] = flow
            while len(self._flows) > MAX_FLOWS:
                self._flows.popitem(last=False)[1].release()
            self._judge(flow, verdict)
        flow.last = ts
        return flow, direction

    def _judge(self, flow: _Flow, verdict: Verdict) -> None:
        if verdict.action == "inspect":
            flow.pending = verdict
            return
        flow.pending = None
        if verdict.action == "deny":
            self._block(flow, "firewall.blocked", verdict.reason, rule=verdict.rule)
            return
        if verdict.action == "violation":
            self._event(
                flow, "firewall.violation", Severity.MEDIUM, verdict.reason, rule=verdict.rule
            )
        if verdict.action == "learn" and flow.app is not None:
            self._learn(flow)

    def _data(self, flow: _Flow, direction: int, data: bytes) -> None:
        head = flow.heads[direction]
        if len(head) < DETECT_BYTES:
            head += data[: DETECT_BYTES - len(head)]
        if flow.needs.block or flow.needs.alert:
            stream = flow.dlp[direction]
            if stream is None and self._dlp_engine is not None:
                from stockade.network.dlp.decoding import DecodingStream

                # HTTP bodies as the application reads them (chunked, gzip, forms), raw bytes too
                stream = flow.dlp[direction] = DecodingStream(self._dlp_engine)
            if stream is not None:
                found = stream.feed(data) + stream.decide_now()
                for m in found:
                    self._dlp_hit(flow, direction, m)
        if direction == 0 and flow.needs.waf and not flow.mark:
            waf = flow.waf
            if waf is None:
                if self._waf_engine is None:
                    from stockade.network.waf import WafEngine

                    self._waf_engine = WafEngine()
                waf = flow.waf = self._waf_engine.stream()
            for w in waf.feed(data):
                self._waf_hit(flow, w)
                if flow.mark:
                    break

    def _settle(self, flow: _Flow, *, final: bool = False) -> None:
        """Decide what can be decided with the bytes seen so far."""
        if flow.mark:
            return
        client, server = flow.heads
        if flow.app is None and (client or server):
            judged = None
            if flow.needs.require_tls:
                judged = upgrades.judge(bytes(client), bytes(server), final=final)
                if judged is not None and judged.state == "undecided":
                    return  # the upgrade has begun: TLS or clear, what follows will tell
            det = detect(bytes(client), bytes(server))
            if (
                det.protocol == "proto.tls"
                and not det.encrypted
                and not final
                and _hello_pending(client, server)
            ):
                return  # a record header is no TLS: wait for the hello to parse, or not
            if (
                flow.needs.require_tls
                and det.protocol == "proto.tls"
                and det.encrypted
                and not final
                and _negotiated(flow) is None
            ):
                return  # the version is the server's to choose: wait for its hello
            late = final or len(client) >= DECIDE_AFTER or len(server) >= DECIDE_AFTER
            app: str | None = det.protocol
            if flow.pending is not None and judged is None:
                app = self._awaited_app(flow, det, bytes(client), bytes(server), late)
            elif not (det.protocol != UNKNOWN or judged is not None or late):
                app = None  # an upgrade judged says encrypted or clear: that is known
            if app is not None:
                flow.app, flow.encrypted = app, det.encrypted
                self._on_app(flow)
        if flow.mark:
            return
        if (flow.pending is None and flow.app is not None and not flow.needs.data) or (
            flow.pending is None and not flow.needs.any and self._plain_allow(flow)
        ):
            flow.mark = marks.ALLOW

    def _awaited_app(
        self, flow: _Flow, det: Detection, client: bytes, server: bytes, late: bool
    ) -> str | None:
        """The protocol a connection that a rule naming protocols waits on is judged with, or
        None to wait for more bytes (they pass meanwhile). Only a whole first message counts:
        a TLS record header whose hello does not parse is no TLS, a method's first letters are
        no HTTP request; and bytes that can no longer become any protocol the rules name are
        judged at once, as ``proto.unknown``, not after DECIDE_AFTER bytes went through."""
        key = (flow.src.ip, flow.dst.ip, flow.port, flow.l4)
        awaited = self._awaited.get(key)
        if awaited is None:
            awaited = self._awaited[key] = awaited_protocols(
                self.policy, flow.src, flow.dst, flow.port, l4=flow.l4, resolved=self.resolved
            )
        app = det.protocol
        if app == "proto.tls" and not det.encrypted:
            app = UNKNOWN  # the hello did not parse (one still arriving was waited for)
        if late:
            return app
        named = awaited - {UNKNOWN}
        if app != UNKNOWN and det.confidence >= STRONG:
            # settled, unless a protocol a rule names can still come of it (gRPC's headers
            # after HTTP/2's preface): judged as HTTP/2 now, gRPC would pass a deny-gRPC rule
            if not any(refines(p, app) and could_become(p, client, server) for p in named):
                return app
            return None
        if app in named and b"\n" in client and self._evaluate(flow, app).blocks:
            # A whole line is what line protocols act on (an inline Redis command, an SMTP or
            # IMAP command after a greeting that did not name itself): waiting for more
            # confidence would let that command reach the server before the rule that blocks
            # it judged it. (Where it would be allowed, waiting costs nothing.)
            return app
        # A weak guess decides nothing while a protocol a rule names can still come of these
        # bytes: "GE" is no HTTP request yet and may become the inline Redis "GET k".
        if any(could_become(p, client, server) for p in named):
            return None
        if UNKNOWN in awaited and possible_any(client, server):
            return None  # a rule names proto.unknown: unknown only once nothing else can come
        return app if app not in named else UNKNOWN

    def _plain_allow(self, flow: _Flow) -> bool:
        """Allowed at L3/L4 with nothing to learn or look for: no need to wait for data."""
        return self._evaluate(flow).action in ("allow", "violation")

    def _on_app(self, flow: _Flow) -> None:
        verdict = self._evaluate(flow, flow.app)
        if flow.pending is not None or verdict.action == "learn":
            self._judge(flow, verdict)
        if flow.mark:
            return
        why = ""
        if flow.needs.require_tls and not flow.encrypted:
            why = f"{flow.app} in clear where TLS is required (group {', '.join(flow.needs.tls_groups)})"
        elif flow.needs.require_tls and flow.app == "proto.tls":
            version = _negotiated(flow)
            minimum = flow.needs.tls_min_version
            if version in TLS_ORDER and TLS_ORDER.index(version) < TLS_ORDER.index(minimum):
                why = (
                    f"{version} is below the minimum {minimum} where TLS is required "
                    f"(group {', '.join(flow.needs.tls_groups)})"
                )
        if why:
            if verdict.mode == "protect" and flow.needs.tls_action == "block":
                self._block(flow, "tls.required", why, rule=None)
            else:
                lets = "the rule only alerts" if verdict.mode == "protect" else "monitor mode"
                self._event(flow, "tls.required", Severity.HIGH, f"{why}; {lets}: it passes")

    def _dlp_hit(self, flow: _Flow, direction: int, m: DlpMatch) -> None:
        action = flow.needs.action_for(m.sensor)
        if action is None:
            return
        data = {
            "sensor": m.sensor,
            "evidence": m.masked,
            "direction": "request" if direction == 0 else "response",
            # the connection as the sensor names it too: the graph counts the finding once
            "flow": flow_key(flow.l4, flow.src.ip, flow.client[1], flow.dst.ip, flow.port),
        }
        mode = self._evaluate(flow, flow.app).mode
        if action == "block" and mode == "protect":
            self._block(flow, "dlp.blocked", f"{m.sensor} in clear: {m.masked}", extra=data)
        else:
            self._event(
                flow,
                "dlp.sensitive_in_clear",
                Severity.HIGH,
                f"{m.sensor} in clear: {m.masked}",
                extra=data,
            )

    def _waf_hit(self, flow: _Flow, m: WafMatch) -> None:
        """A virtual patch matched a request: 403 in protect mode when its rule blocks, else an
        alert and the request passes."""
        action = flow.needs.waf_action_for(m.sensor)
        if action is None:
            return
        cves = ", ".join(m.cves) or "no CVE"
        data: dict[str, object] = {
            "sensor": m.sensor,
            "cves": list(m.cves),
            "evidence": m.evidence,
            "where": m.where,
            "severity": m.severity,
        }
        why = f"{m.sensor} ({cves}) in the {m.where}: {m.evidence}"
        mode = self._evaluate(flow, flow.app).mode
        if action == "block" and mode == "protect":
            self._block(flow, "waf.blocked", why, extra=data)
        else:
            self._event(flow, "waf.detected", Severity.HIGH, why, extra=data)

    def _learn(self, flow: _Flow) -> None:
        if "learned" not in flow.reported:
            flow.reported.add("learned")
            self.learn(
                Learned(src=flow.src, dst=flow.dst, port=flow.port, l4=flow.l4, app=flow.app)
            )

    def _finish(self, flow: _Flow) -> None:
        if flow.app is None and flow.pending is None and self._evaluate(flow).action == "learn":
            self._learn(flow)

    def _block(
        self,
        flow: _Flow,
        kind: str,
        why: str,
        *,
        rule: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        flow.mark = marks.BLOCK
        self.stats["blocked"] += 1
        self._event(
            flow, kind, Severity.HIGH, why, rule=rule, extra={**(extra or {}), "action": "block"}
        )
        self._http_reply(flow, kind, why)

    def _http_reply(self, flow: _Flow, kind: str, why: str) -> None:
        """A request blocked in clear HTTP/1.x is answered with a 403 that says why (see answer.py)."""
        if self._packet is None:
            return
        key, direction, seq, ack, length, flags = self._packet
        if direction != 0 or not length or not flags & ACK:
            return
        app, encrypted = flow.app, flow.encrypted
        if app is None:  # blocked by DLP on the very first bytes, before the protocol was settled
            det = detect(bytes(flow.heads[0]), bytes(flow.heads[1]))
            app, encrypted = det.protocol, det.encrypted
        if app != "proto.http" or encrypted:
            return
        src, sport, dst, dport, _ = key
        self.reply = Answer(
            client=str(ipaddress.ip_address(src)),
            client_port=sport,
            server=str(ipaddress.ip_address(dst)),
            server_port=dport,
            request_seq=seq,
            request_end=(seq + length) & MASK,
            response_seq=ack,
            event=kind,
            reason=why,
        )

    def _event(
        self,
        flow: _Flow,
        kind: str,
        sev: Severity,
        why: str,
        *,
        rule: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        tag = f"{kind}:{(extra or {}).get('sensor', '')}:{(extra or {}).get('evidence', '')}"
        if tag in flow.reported:
            return
        flow.reported.add(tag)
        data = {
            "action": "alert",  # the connection went on; _block says "block"
            "rule": rule,
            "port": flow.port,
            "l4": flow.l4,
            "app": flow.app,
            "src_ip": flow.src.ip,
            "dst_ip": flow.dst.ip,
            **(extra or {}),
        }
        self.emit(
            Event(
                kind=kind,
                message=f"{flow.src.display()} -> {flow.dst.display()}:{flow.port}: {why}",
                severity=sev,
                source="enforcer",
                resource=_ref(flow.src),
                peer=_ref(flow.dst),
                data=data,
            )
        )


def _hello_pending(client: bytearray, server: bytearray) -> bool:
    """A TLS hello has begun in either direction and can still complete within the head."""
    for data, is_server in ((client, False), (server, True)):
        check = opens_with_hello(bytes(data), server=is_server)
        if check.state == "more" and data and check.need <= DETECT_BYTES:
            return True
    return False


def _reverse(key: FlowKey) -> FlowKey:
    src, sport, dst, dport, proto = key
    return (dst, dport, src, sport, proto)


def _ref(e: Endpoint) -> ResourceRef:
    if e.external or not e.name:
        return ResourceRef(kind="external", name=e.ip)
    return ResourceRef(
        kind="pod",
        name=e.name,
        namespace=e.namespace or None,
        labels=tuple(sorted(e.labels.items())),
    )


def _negotiated(flow: _Flow) -> str | None:
    """The TLS version the server chose, once its hello has arrived (None before)."""
    from stockade.network.tls import inspect

    info = inspect(bytes(flow.heads[0]), bytes(flow.heads[1]))
    return info.version if info is not None and flow.heads[1] else None
