"""The connection record the sensor emits for every flow, and the events derived from it."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any, cast

from stockade.model import Event, Severity
from stockade.model.redact import redact, redact_text
from stockade.model.resource import ResourceRef
from stockade.model.slots import slot_constructor
from stockade.network.interface import DlpMatch, TlsInfo, flow_key
from stockade.network.tls_policy import TlsPolicy, facts, violations

WEAK_TLS = frozenset({"SSL2.0", "SSL3.0", "TLS1.0", "TLS1.1"})  # below the default minimum
DEFAULT_POLICY = TlsPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    direction: str  # "client" (client to server) or "server"
    match: DlpMatch


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionRecord:
    id: str
    start: float
    end: float
    transport: str  # "tcp" | "udp"
    ip_version: int
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    client: ResourceRef
    server: ResourceRef
    protocol: str
    encrypted: bool
    upgrade: str | None = None
    tls: TlsInfo | None = None
    bytes_to_server: int = 0
    bytes_to_client: int = 0
    packets_to_server: int = 0
    packets_to_client: int = 0
    flags_client: str = ""
    flags_server: str = ""
    state: str = "closed"  # closed | reset | timeout | evicted | active
    gaps: int = 0
    inspected: int = 0  # bytes both ways that went through detection and DLP
    hits: tuple[Hit, ...] = ()
    details: tuple[tuple[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, every string through the masking gate: protocol metadata
        (paths, host names, SNI, user names, banners) is whatever the peers sent.

        Every string value passes the gate; the keys are this module's own literals, the
        numbers cannot hold text and the times are this module's ISO spelling of a number, which
        never holds a card or an SSN (at most ten digits close together, none nine in a row or
        grouped 3-2-4; tests/security/test_masking_gate.py holds it), so the walk skips them
        (``plain()`` is the record unmasked: tests hold ``redact(plain())`` to the same answer)."""
        mask = redact_text
        return {
            "id": self.id,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "transport": mask(self.transport),
            "ip_version": self.ip_version,
            "client": {
                "ip": mask(self.client_ip),
                "port": self.client_port,
                **_masked(self.client),
            },
            "server": {
                "ip": mask(self.server_ip),
                "port": self.server_port,
                **_masked(self.server),
            },
            "protocol": mask(self.protocol),
            "encrypted": self.encrypted,
            "upgrade": mask(self.upgrade) if self.upgrade is not None else None,
            "tls": redact(self._tls()) if self.tls is not None else None,
            "bytes": {"to_server": self.bytes_to_server, "to_client": self.bytes_to_client},
            "packets": {"to_server": self.packets_to_server, "to_client": self.packets_to_client},
            "tcp_flags": {"client": mask(self.flags_client), "server": mask(self.flags_server)},
            "state": mask(self.state),
            "gaps": self.gaps,
            "inspected_bytes": self.inspected,
            "dlp": redact([_hit(h) for h in self.hits]) if self.hits else [],
            "details": redact(dict(self.details)) if self.details else {},
        }

    def json_line(self) -> str:
        """``json.dumps(self.to_dict())``, built from its parts: the line ``sensor --format
        json`` writes, without the dict (about a third of the cost). The same strings go through
        the same gate (:meth:`to_dict` describes it); nested values are ``json.dumps`` of the
        same masked values, and json writes a value nested alike (tests hold the two equal)."""
        q = _mask_quoted
        dumps = json.dumps
        # (the times are digits and "-:T.+" only: quoted as they stand)
        return (
            f'{{"id": {_quoted(self.id)}, "start": "{_iso(self.start)}", '
            f'"end": "{_iso(self.end)}", "transport": {q(self.transport)}, '
            f'"ip_version": {_int(self.ip_version)}, '
            f'"client": {_peer_json(self.client_ip, self.client_port, self.client)}, '
            f'"server": {_peer_json(self.server_ip, self.server_port, self.server)}, '
            f'"protocol": {q(self.protocol)}, '
            f'"encrypted": {_bool(self.encrypted)}, '
            f'"upgrade": {"null" if self.upgrade is None else q(self.upgrade)}, '
            f'"tls": {"null" if self.tls is None else dumps(redact(self._tls()))}, '
            f'"bytes": {{"to_server": {_int(self.bytes_to_server)}, '
            f'"to_client": {_int(self.bytes_to_client)}}}, '
            f'"packets": {{"to_server": {_int(self.packets_to_server)}, '
            f'"to_client": {_int(self.packets_to_client)}}}, '
            f'"tcp_flags": {{"client": {q(self.flags_client)}, '
            f'"server": {q(self.flags_server)}}}, '
            f'"state": {q(self.state)}, "gaps": {_int(self.gaps)}, '
            f'"inspected_bytes": {_int(self.inspected)}, '
            f'"dlp": {hits_json(self.hits) if self.hits else "[]"}, '
            f'"details": {_details_json(self.details) if self.details else "{}"}}}'
        )

    def plain(self) -> dict[str, Any]:
        """:meth:`to_dict` before masking (the reference it is tested against; never output)."""
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "transport": self.transport,
            "ip_version": self.ip_version,
            "client": self._peer(self.client_ip, self.client_port, self.client),
            "server": self._peer(self.server_ip, self.server_port, self.server),
            "protocol": self.protocol,
            "encrypted": self.encrypted,
            "upgrade": self.upgrade,
            "tls": self._tls() if self.tls is not None else None,
            "bytes": {"to_server": self.bytes_to_server, "to_client": self.bytes_to_client},
            "packets": {"to_server": self.packets_to_server, "to_client": self.packets_to_client},
            "tcp_flags": {"client": self.flags_client, "server": self.flags_server},
            "state": self.state,
            "gaps": self.gaps,
            "inspected_bytes": self.inspected,
            "dlp": [_hit(h) for h in self.hits],
            "details": dict(self.details),
        }

    @staticmethod
    def _peer(ip: str, port: int, ref: ResourceRef) -> dict[str, Any]:
        return {"ip": ip, "port": port, **ref.to_dict()}

    def _tls(self) -> dict[str, Any]:
        tls = self.tls
        assert tls is not None
        return {
            "version": tls.version,
            "sni": tls.sni,
            "alpn": list(tls.alpn),
            "alpn_chosen": tls.alpn_chosen,
            "cipher": tls.cipher,
            "client_max_version": tls.client_max_version,
            **facts(tls, self.start),
        }


# ConnectionRecord built without its frozen __init__ (about 5 us for its 26 fields; the sensor
# builds one a flow): ``new_record(...)`` takes every field in declaration order; tests hold the
# two equal.
new_record = slot_constructor(ConnectionRecord, positional=True)


def _hit(h: Hit) -> dict[str, Any]:
    m = h.match
    return {
        "direction": h.direction,
        "sensor": m.sensor,
        "masked": m.masked,
        "offset": m.start,
        "confidence": m.confidence,
    }


@lru_cache(maxsize=4096)
def _masked(ref: ResourceRef) -> dict[str, Any]:
    """``ref.to_dict()`` through the masking gate, once per peer (the same few peers recur in
    thousands of records; the dict is only read: JSON output and the store's rows)."""
    return cast(dict[str, Any], redact(ref.to_dict()))


def hits_json(hits: tuple[Hit, ...]) -> str:
    """``json.dumps(redact([_hit(h) for h in hits]))``, each string through the same gate (the
    ``dlp`` of a record's line)."""
    parts = []
    for h in hits:
        m = h.match
        start, confidence = m.start, m.confidence
        if type(start) is not int or type(confidence) is not float or not math.isfinite(confidence):
            return json.dumps(redact([_hit(h) for h in hits]))  # as json writes anything else
        parts.append(
            f'{{"direction": {_mask_quoted(h.direction)}, "sensor": {_mask_quoted(m.sensor)}, '
            f'"masked": {_mask_quoted(m.masked)}, "offset": {start!r}, '
            f'"confidence": {confidence!r}}}'
        )
    return "[" + ", ".join(parts) + "]"


# The JSON of details tuples whose every key and value passed the gate unchanged (the same few
# method, path, host and status combinations recur in thousands of records), at most
# PASSED_KEPT of them.
_DETAILS: dict[tuple[tuple[str, str], ...], str] = {}


def _details_json(details: tuple[tuple[str, str], ...]) -> str:
    """``json.dumps(redact(dict(details)))``, the usual all-text case without the walk."""
    try:
        kept = _DETAILS.get(details)
    except TypeError:  # something unhashable in it: only the walk below can tell
        kept = None
    if kept is not None:
        return kept
    given = dict(details)
    passed = _PASSED
    known = True
    for k, v in given.items():
        if type(k) is not str or type(v) is not str:
            return json.dumps(redact(given))
        if known and (k not in passed or v not in passed):
            known = False
    if known:  # every key and value passes the gate unchanged (the usual case): their JSON kept
        line = "{" + ", ".join([f"{passed[k]}: {passed[v]}" for k, v in given.items()]) + "}"
        if len(_DETAILS) >= PASSED_KEPT:
            _DETAILS.clear()
        _DETAILS[details] = line
        return line
    masked: dict[str, str] = {}
    for k, v in given.items():
        masked[_mask(k)] = _mask(v)
    return "{" + ", ".join([f"{_quoted(k)}: {_quoted(v)}" for k, v in masked.items()]) + "}"


def _bool(b: bool) -> str:
    return "true" if b is True else "false" if b is False else json.dumps(b)


# Strings the gate returned unchanged (protocol and state names, detail keys, host names, paths
# and addresses that recur from record to record): asked again, the answer is the same. Only
# such strings are kept (nothing the gate would change), at most PASSED_KEPT of them, each with
# its JSON spelling (json.dumps of the string) for the lines built from them.
_PASSED: dict[str, str] = {}
PASSED_KEPT = 4096
# Longer strings are not remembered, so the memory stays bounded: 4,096 strings and their JSON
# spellings measured 2.5 MiB of ASCII and up to about 16 MiB of characters beyond the BMP.
PASSED_LONGEST = 256


def _mask(text: str) -> str:
    """``redact_text(text)``, remembering the strings it passes unchanged."""
    if text in _PASSED:
        return text
    out = redact_text(text)
    if out is text and type(text) is str and len(text) <= PASSED_LONGEST:
        _passed(text)
    return out


def _passed(text: str) -> None:
    """Remember ``text``, which the gate returns unchanged."""
    if len(_PASSED) >= PASSED_KEPT:
        _PASSED.clear()
    _PASSED[text] = _quoted(text)


def _mask_quoted(text: str) -> str:
    """``_quoted(_mask(text))``: the JSON string of a remembered one as kept."""
    quoted = _PASSED.get(text)
    return quoted if quoted is not None else _quoted(_mask(text))


# An IPv4 address as inet_ntoa writes it: at most twelve digits in groups of at most three, so
# never a card (13 digits at least) nor an SSN (nine in a row, or grouped 3-2-4): the gate would
# return it unchanged (tests/security/test_masking_gate.py holds it). Anything else goes through.
_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def _mask_ip(text: str) -> str:
    """``redact_text(text)``, without the search for an IPv4 address's usual spelling."""
    if text in _PASSED:
        return text
    if type(text) is str and _DOTTED_QUAD.fullmatch(text):
        _passed(text)
        return text
    return _mask(text)


def _mask_ip_quoted(text: str) -> str:
    """``_quoted(_mask_ip(text))``."""
    quoted = _PASSED.get(text)
    return quoted if quoted is not None else _quoted(_mask_ip(text))


def _int(n: int) -> str:
    """``json.dumps(n)`` for a count or a port (an int's repr; anything else as json writes it)."""
    return repr(n) if type(n) is int else json.dumps(n)


def _peer_json(address: str, port: int, ref: ResourceRef) -> str:
    """``json.dumps`` of ``{"ip": _mask_ip(address), "port": port, **_masked(ref)}`` (to_dict's
    peer)."""
    if type(port) is int:
        parts = peer_json_parts(address, ref)
        if parts is not None:
            return f"{parts[0]}{port!r}{parts[1]}"
    return json.dumps({"ip": _mask_ip(address), "port": port, **_masked(ref)})  # kept exact


def peer_json_parts(address: str, ref: ResourceRef) -> tuple[str, str] | None:
    """A peer's JSON in ``json_line`` around its port: ``_peer_json(address, port, ref)`` is
    ``before + repr(port) + after`` for every int ``port``, each string through the gate (the
    compiled ``sensor --pcap`` path writes lines with them: pcapfast.c ``sp_peer``); None when
    ``json.dumps`` writes the peer whole."""
    if ref.namespace is None and ref.digest is None and not ref.labels:
        kind, name = ref.kind, ref.name  # an address of no known workload
        if type(kind) is str and type(name) is str:
            return (
                f'{{"ip": {_mask_ip_quoted(address)}, "port": ',
                f', "kind": {_mask_quoted(kind)}, "name": {_mask_ip_quoted(name)}}}',
            )
    masked = _masked(ref)
    if not masked or "ip" in masked or "port" in masked:
        return None
    return f'{{"ip": {_quoted(_mask_ip(address))}, "port": ', f", {_masked_json(ref)}}}"


@lru_cache(maxsize=4096)
def _masked_json(ref: ResourceRef) -> str:
    """The members of ``json.dumps(_masked(ref))``, without its braces."""
    return json.dumps(_masked(ref))[1:-1]


def _iso(ts: float) -> str:
    """``datetime.fromtimestamp(ts, UTC).isoformat()`` (:func:`_iso_reference`), the whole
    seconds' text made once per second: the microseconds rounded as datetime rounds them (half
    to even, a carry into the next second)."""
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        whole += 1.0
        us -= 1_000_000
    elif us < 0:
        whole -= 1.0
        us += 1_000_000
    head = _second(int(whole))
    return f"{head}.{us:06d}+00:00" if us else f"{head}+00:00"


@lru_cache(maxsize=1024)
def _second(whole: int) -> str:
    return datetime.fromtimestamp(whole, UTC).replace(tzinfo=None).isoformat()


def _iso_reference(ts: float) -> str:
    """What :func:`_iso` must equal (the tests compare them)."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def events_for(
    rec: ConnectionRecord, source: str = "sensor", policy: TlsPolicy = DEFAULT_POLICY
) -> list[Event]:
    """``dlp.sensitive_in_clear`` per sensor and direction; the TLS facts ``policy`` alerts on
    (``tls.weak_version`` below its minimum version, ``tls.weak_cipher``,
    ``tls.certificate_expired``, ...), one event each."""
    if not rec.hits and rec.tls is None:
        return []  # the common case: no event, so nothing to build
    out: list[Event] = []
    at = datetime.fromtimestamp(rec.start, UTC)
    where = f"{rec.client.display()} -> {rec.server.display()}:{rec.server_port}"
    # DLP only ever sees bytes before any TLS starts, so every hit was in clear
    grouped: dict[tuple[str, str], list[Hit]] = {}
    for h in rec.hits:
        grouped.setdefault((h.match.sensor, h.direction), []).append(h)
    for (sensor, direction), hits in sorted(grouped.items()):
        evidence = sorted({h.match.masked for h in hits})
        out.append(
            Event(
                kind="dlp.sensitive_in_clear",
                severity=Severity.HIGH,
                source=source,
                at=at,
                message=f"{sensor} in clear {rec.protocol} {where}: {', '.join(evidence[:5])}",
                resource=rec.client,
                peer=rec.server,
                data={
                    "connection": rec.id,
                    "flow": flow_key(
                        rec.transport,
                        rec.client_ip,
                        rec.client_port,
                        rec.server_ip,
                        rec.server_port,
                    ),
                    "sensor": sensor,
                    "direction": direction,
                    "protocol": rec.protocol,
                    "evidence": evidence,
                    "count": len(hits),
                    "server_port": rec.server_port,
                    "client_ip": rec.client_ip,
                    "server_ip": rec.server_ip,
                },
            )
        )
    if rec.tls is not None:
        out += _tls_events(rec, rec.tls, source, policy, at, where)
    return out


def event_kinds(
    rec: ConnectionRecord, policy: TlsPolicy = DEFAULT_POLICY
) -> list[tuple[str, Severity]]:
    """``[(e.kind, e.severity) for e in events_for(rec, ..., policy)]`` without building the
    events (a run that neither stores nor sends them only counts them; tests hold the two
    equal)."""
    if not rec.hits and rec.tls is None:
        return []
    out = dlp_event_kinds(rec.hits)
    if rec.tls is not None:
        out += [(v.kind, v.severity) for v in violations(rec.tls, rec.start, policy)]
    return out


def dlp_event_kinds(hits: tuple[Hit, ...]) -> list[tuple[str, Severity]]:
    """The kinds and severities of the events :func:`events_for` makes of DLP hits: one
    ``dlp.sensitive_in_clear`` per sensor and direction."""
    groups = len({(h.match.sensor, h.direction) for h in hits})
    return [("dlp.sensitive_in_clear", Severity.HIGH)] * groups


def _tls_events(
    rec: ConnectionRecord,
    tls: TlsInfo,
    source: str,
    policy: TlsPolicy,
    at: datetime,
    where: str,
) -> list[Event]:
    return [
        Event(
            kind=v.kind,
            severity=v.severity,
            source=source,
            at=at,
            message=f"{v.text} {where}",
            resource=rec.client,
            peer=rec.server,
            data={
                "connection": rec.id,
                "fact": v.fact,
                "version": tls.version,
                "sni": tls.sni,
                "cipher": tls.cipher,
                "server_port": rec.server_port,
                "client_ip": rec.client_ip,
                "server_ip": rec.server_ip,
                **v.data,
            },
        )
        for v in violations(tls, rec.start, policy)
    ]
