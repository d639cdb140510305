"""Evidence from events: what the network, firewall and admission pillars saw, as report rows.

Those pillars write events, not findings (a card in clear is something that happened, at a time,
between two workloads). A framework report reads the events of a time window and turns each kind it
knows into rows of the same shape as stored findings, so one selector language (``dlp.*``,
``firewall.*``, ``pillar:admission``) covers both. Every string in an event passed the masking gate
when it was stored; nothing here unmasks.

What counts as passing evidence is deliberately narrow: a summary of a sensor run over the window
(``network.observed``) with no card data in clear, TLS connections with no weak version or cipher
suite, server certificates seen in clear (TLS 1.2 and below) none of which was expired,
self-signed, for another name or with a weak key (TLS 1.3 hides them: no certificate row), a blocked
connection (the control worked), a CDE group in Protect. No sensor data in the window leaves the
network requirements NOT_ASSESSED, never PASS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stockade.model import Event

# What each evidence id means; the ids are the finding ids that selectors match.
EVIDENCE_TITLES = {
    "dlp.payment_card": "Card numbers sent in clear",
    "dlp.us_ssn": "US social security numbers sent in clear",
    "dlp.iban": "Bank account numbers (IBAN) sent in clear",
    "dlp.email": "E-mail addresses sent in clear",
    "dlp.phone": "Phone numbers sent in clear",
    "dlp.sensitive_in_clear": "Sensitive data in clear over the observed traffic",
    "dlp.blocked": "Sensitive data in clear stopped by the firewall",
    "tls.weak_version": "TLS below the policy's minimum version (default 1.2) negotiated",
    "tls.weak_cipher": "Weak TLS cipher suites negotiated (NULL, export, RC4, DES/3DES, anonymous)",
    "tls.certificate_expired": "TLS server certificates expired when used",
    "tls.certificate_not_yet_valid": "TLS server certificates used before their validity",
    "tls.certificate_self_signed": "Self-signed TLS server certificates",
    "tls.certificate_name_mismatch": "TLS server certificates that do not cover the name asked for",
    "tls.certificate_weak_key": "TLS server certificates with weak keys",
    "tls.required": "Clear-text connections where TLS is required",
    "firewall.violation": "Connections the firewall policy does not allow (Monitor mode)",
    "firewall.blocked": "Connections blocked by the firewall policy",
    "firewall.segmentation": "Groups that guard card data are enforced (Protect mode)",
    "admission.denied": "Workloads refused by the admission policy",
    "admission.violation": "Workloads admitted with admission policy violations",
    "admission.allowed": "Workloads admitted by the admission policy",
}

# The event kinds read from the window, and the newest policy state read from any time.
WINDOW_KINDS = (
    "dlp.sensitive_in_clear",
    "dlp.blocked",
    "tls.weak_version",
    "tls.weak_cipher",
    "tls.certificate_expired",
    "tls.certificate_not_yet_valid",
    "tls.certificate_self_signed",
    "tls.certificate_name_mismatch",
    "tls.certificate_weak_key",
    "tls.required",
    "firewall.violation",
    "firewall.blocked",
    "admission.denied",
    "admission.violation",
    "admission.allowed",
    "network.observed",
)
STATE_KINDS = ("firewall.policy_applied",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    since: datetime
    until: datetime

    def text(self) -> str:
        return f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC"


def rows_from_events(events: Iterable[Event], window: Window) -> list[dict[str, Any]]:
    """Report rows (the shape of a stored finding) for the events of ``window`` and the newest
    firewall policy state."""
    events = list(events)
    rows: list[dict[str, Any]] = []
    for e in events:
        handler = _HANDLERS.get(e.kind)
        if handler is not None:
            rows.extend(handler(e))
    rows.extend(_observed(events, window))
    state = max(
        (e for e in events if e.kind == "firewall.policy_applied"), key=lambda e: e.at, default=None
    )
    if state is not None:
        rows.extend(_segmentation(state))
    return rows


def _row(
    e: Event,
    finding_id: str,
    status: str,
    evidence: str,
    *,
    pillar: str,
    location: str = "",
    resource: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "finding_id": finding_id,
        "pillar": pillar,
        "title": EVIDENCE_TITLES.get(finding_id, finding_id),
        "severity": str(e.severity),
        "status": status,
        "resource": resource if resource is not None else _resource(e),
        "details": {
            "evidence": evidence,
            "location": location or f"event {e.id} at {e.at:%Y-%m-%d %H:%M:%S}",
        },
        "compliance": [],
        "run_id": f"events:{e.kind}",
        "at": e.at,
    }


def _resource(e: Event) -> dict[str, Any]:
    return e.resource.to_dict() if e.resource else {"kind": "node", "name": e.source}


def _dlp_in_clear(e: Event) -> Iterator[dict[str, Any]]:
    sensor = str(e.data.get("sensor") or "dlp.sensitive_in_clear")
    where = f"connection {e.data['connection']}" if e.data.get("connection") else ""
    yield _row(e, sensor, "FAIL", e.message, pillar="network", location=where)


def _blocked(e: Event) -> Iterator[dict[str, Any]]:
    # The control did its job: the connection was stopped, which is passing evidence.
    yield _row(e, e.kind, "PASS", e.message, pillar="firewall")


def _by_action(e: Event) -> Iterator[dict[str, Any]]:
    """tls.required: blocked in Protect (passing), let through in Monitor (failing)."""
    status = "PASS" if e.data.get("action") == "block" else "FAIL"
    yield _row(e, e.kind, status, e.message, pillar="firewall")


def _fail(pillar: str) -> Callable[[Event], Iterator[dict[str, Any]]]:
    def handler(e: Event) -> Iterator[dict[str, Any]]:
        yield _row(e, e.kind, "FAIL", e.message, pillar=pillar)

    return handler


def _admission(e: Event) -> Iterator[dict[str, Any]]:
    status = {"admission.violation": "WARN"}.get(e.kind, "PASS")
    yield _row(e, e.kind, status, e.message, pillar="admission")


_HANDLERS: dict[str, Callable[[Event], Iterator[dict[str, Any]]]] = {
    "dlp.sensitive_in_clear": _dlp_in_clear,
    "dlp.blocked": _blocked,
    "firewall.blocked": _blocked,
    "tls.required": _by_action,
    "tls.weak_version": _fail("network"),
    "tls.weak_cipher": _fail("network"),
    "tls.certificate_expired": _fail("network"),
    "tls.certificate_not_yet_valid": _fail("network"),
    "tls.certificate_self_signed": _fail("network"),
    "tls.certificate_name_mismatch": _fail("network"),
    "tls.certificate_weak_key": _fail("network"),
    "firewall.violation": _fail("firewall"),
    "admission.denied": _admission,
    "admission.violation": _admission,
    "admission.allowed": _admission,
}


def _observed(events: list[Event], window: Window) -> Iterator[dict[str, Any]]:
    """Passing evidence from sensor runs: traffic was watched over the window and nothing was
    found in clear; TLS connections were seen and none was weak."""
    runs = [e for e in events if e.kind == "network.observed"]
    if not runs:
        return
    connections = sum(int(e.data.get("connections") or 0) for e in runs)
    if not connections:
        return
    tls = sum(int(e.data.get("tls") or 0) for e in runs)
    first = min(str(e.data.get("first") or e.at.isoformat()) for e in runs)
    last = max(str(e.data.get("last") or e.at.isoformat()) for e in runs)
    seen = f"{connections} connections observed by {len(runs)} sensor run(s), traffic from {first[:19]} to {last[:19]}"
    newest = max(runs, key=lambda e: e.at)
    node = {"kind": "node", "name": newest.source}
    kinds = {e.kind for e in events}
    if "dlp.sensitive_in_clear" not in kinds:
        yield _row(
            newest,
            "dlp.sensitive_in_clear",
            "PASS",
            f"{seen}: no sensitive data in clear in the window {window.text()}",
            pillar="network",
            resource=node,
        )
    if not tls:
        return
    minimum = sorted({str(e.data.get("tls_min_version") or "TLS1.2") for e in runs})
    # passing evidence per TLS fact: connections that could show it, and none that did
    certs = sum(int(e.data.get("tls_certificates") or 0) for e in runs)
    passing = [
        ("tls.weak_version", tls, f"{tls} used TLS, none below {' / '.join(minimum)}"),
        ("tls.weak_cipher", tls, f"{tls} used TLS, none with a weak cipher suite"),
    ]
    passing += [
        (kind, certs, f"{certs} server certificates seen in clear (TLS 1.2 and below), {text}")
        for kind, text in (
            ("tls.certificate_expired", "none expired"),
            ("tls.certificate_not_yet_valid", "none used before its validity"),
            ("tls.certificate_self_signed", "none self-signed"),
            ("tls.certificate_name_mismatch", "all cover the name asked for"),
            ("tls.certificate_weak_key", "none with a weak key"),
        )
    ]
    for kind, seen_count, text in passing:
        if seen_count and kind not in kinds:
            yield _row(newest, kind, "PASS", f"{seen}: {text}", pillar="network", resource=node)


def _segmentation(state: Event) -> Iterator[dict[str, Any]]:
    """Groups that guard card data (a DLP rule for payment cards, or required TLS) and their mode;
    the rules that admit traffic into them are the evidence an auditor reads."""
    rules = [r for r in state.data.get("rules") or [] if isinstance(r, dict)]
    for g in state.data.get("groups") or []:
        if not isinstance(g, dict) or not g.get("cde"):
            continue
        name = str(g.get("name"))
        admits = [
            f"{r.get('name')} ({', '.join(map(str, r.get('from') or []))} -> {name}"
            f"{' ' + ', '.join(map(str, r.get('ports') or [])) if r.get('ports') else ''})"
            for r in rules
            if r.get("action") == "allow" and name in (r.get("to") or [])
        ]
        mode = str(g.get("mode"))
        text = (
            f"group {name} ({g.get('selector')}) is in {mode} mode"
            f"{'' if mode == 'protect' else ': its traffic is only watched, not enforced'}; "
            f"rules admitting traffic into it: {'; '.join(admits) or 'none (default deny)'}"
        )
        status = "PASS" if mode == "protect" else "FAIL"
        ref = {"kind": "group", "name": name}
        yield _row(state, "firewall.segmentation", status, text, pillar="firewall", resource=ref)
