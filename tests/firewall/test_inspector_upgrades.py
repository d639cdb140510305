"""The inline enforcer on the shared table of in-band upgrades (tests/network/upgrade_cases.py):
with TLS required it holds its verdict until what follows the request tells, then passes TLS and
blocks (or, alert-only, reports once) clear text. Issue 13."""

from __future__ import annotations

import pytest

from stockade.firewall.enforce import marks
from stockade.firewall.enforce.inspector import Inspector
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.engine import data_needs
from stockade.firewall.policy.files import dump, parse_texts
from stockade.firewall.policy.model import Policy
from tests.firewall.test_policy_model import ORD, PAY
from tests.network import frames as F
from tests.network.upgrade_cases import CASES


def policy(require: str, mode: str = "protect") -> Policy:
    text = f"""
apiVersion: stockade.dev/v1
kind: FirewallPolicy
spec:
  groups:
    - name: cde
      selector: {{namespace: shop, labels: {{pci: cde}}}}
      mode: {mode}
      requireTLS: {require}
  rules:
    - {{name: in-cde, from: [cde], to: [cde], ports: [tcp], action: allow}}
"""
    return parse_texts([("tls.yaml", text)])


BLOCK = policy("inbound")
ALERT = policy("{direction: inbound, action: alert}")


def _run(pol: Policy, name: str) -> tuple[list[int], list]:
    """The mark after each turn of the conversation, and the events."""
    events: list = []
    insp = Inspector(pol, Directory([PAY, ORD]), emit=events.append)
    packets = F.dialogue(PAY.ip, ORD.ip, 41200, 5432, CASES[name].turns)
    for p in packets[:3]:  # handshake
        insp.packet(p)
    after = [insp.packet(p)[1] for p in packets[3 : 3 + len(CASES[name].turns)]]
    return after, events


@pytest.mark.parametrize("name", sorted(CASES))
def test_require_tls_blocks_only_what_stays_clear(name: str) -> None:
    case = CASES[name]
    after, events = _run(BLOCK, name)
    assert after[: case.decides] == [0] * case.decides, after  # held: nothing decided yet
    if case.encrypted:
        assert after[case.decides] == marks.ALLOW and events == [], (after, events)
    else:
        assert after[case.decides] == marks.BLOCK, after
        assert [e.kind for e in events] == ["tls.required"] and events[0].data["action"] == "block"


@pytest.mark.parametrize("name", sorted(CASES))
def test_alert_only_passes_everything_and_reports_clear_once(name: str) -> None:
    case = CASES[name]
    after, events = _run(ALERT, name)
    assert marks.BLOCK not in after
    expected = [] if case.encrypted else ["tls.required"]
    assert [e.kind for e in events] == expected
    if events:
        assert events[0].data["action"] == "alert" and "only alerts" in events[0].message


def test_monitor_mode_does_not_alert_on_sslmode_require() -> None:
    """The first-bytes path used to settle on the SSLRequest: a false alert in monitor."""
    after, events = _run(policy("inbound", mode="monitor"), "postgres_sslmode_require")
    assert events == [] and marks.BLOCK not in after


def test_require_tls_forms_and_actions() -> None:
    both = policy("[{direction: inbound, action: block}, {direction: outbound, action: alert}]")
    needs = data_needs(both, PAY, ORD)
    assert (needs.require_tls, needs.tls_action, needs.tls_groups) == (True, "block", ("cde",))
    assert data_needs(ALERT, PAY, ORD).tls_action == "alert"
    assert data_needs(BLOCK, PAY, ORD).tls_action == "block"  # the string form still blocks
    outbound_alert = policy("{direction: outbound, action: alert}")
    assert data_needs(outbound_alert, PAY, ORD).tls_action == "alert"
    assert not data_needs(policy("none"), PAY, ORD).require_tls
    # the canonical YAML keeps the form that was written, and reads back the same
    for pol in (BLOCK, ALERT, both):
        assert parse_texts([("again.yaml", dump(pol))]) == pol


def test_require_tls_rejects_unknown_actions() -> None:
    from stockade.model.errors import ConfigError

    with pytest.raises(ConfigError, match="requireTLS"):
        policy("{direction: inbound, action: drop}")
    with pytest.raises(ConfigError, match="requireTLS"):
        policy("sometimes")


FIXTURES = __import__("pathlib").Path(__file__).parents[1] / "network" / "fixtures" / "protocols"


def _tls_marks(pol: Policy, server_version: bytes | None = None) -> tuple[list[int], list]:
    """A real TLS 1.2 handshake (optionally with the ServerHello's version rewritten) through the
    inspector: the mark after the client's hello and after the server's answer."""
    client = (FIXTURES / "tls12_alpn.c2s").read_bytes()
    server = bytearray((FIXTURES / "tls12_alpn.s2c").read_bytes())
    if server_version is not None:
        server[9:11] = server_version  # record header 5 + handshake header 4: legacy_version
    events: list = []
    insp = Inspector(pol, Directory([PAY, ORD]), emit=events.append)
    packets = F.dialogue(PAY.ip, ORD.ip, 41300, 8443, [(0, client), (1, bytes(server))])
    for p in packets[:3]:
        insp.packet(p)
    return [insp.packet(p)[1] for p in packets[3:5]], events


def test_tls_below_the_minimum_version_is_not_tls_enough() -> None:
    """requireTLS holds the verdict until the server's hello names the version; TLS 1.1 is below
    the default minimum (TLS 1.2) and is blocked like clear text, TLS 1.2 passes."""
    after, events = _tls_marks(BLOCK)
    assert after == [0, marks.ALLOW] and events == []
    after, events = _tls_marks(BLOCK, server_version=b"\x03\x02")
    assert after == [0, marks.BLOCK], after
    assert [e.kind for e in events] == ["tls.required"]
    assert "TLS1.1 is below the minimum TLS1.2" in events[0].message
    strict = policy("{direction: inbound, action: block, minVersion: TLS1.3}")
    after, events = _tls_marks(strict)
    assert after[-1] == marks.BLOCK and "TLS1.2 is below the minimum TLS1.3" in events[0].message
    assert data_needs(strict, PAY, ORD).tls_min_version == "TLS1.3"
