"""Virtual patches from vulnerabilities, as data: which sensor a group's CVEs call for (by id or
alias), when a group's rules already apply it, the option that lets the controller apply it
(per group, or for every group from the policy's spec), and the policy with a patch added."""

from __future__ import annotations

import pytest

from stockade.firewall.policy.files import dump, parse_texts
from stockade.firewall.policy.vpatch import Exposure, patch_action, proposals, with_patch
from stockade.model.errors import ConfigError
from stockade.network.waf import builtin_sensors

POLICY = """\
apiVersion: stockade.dev/v1
kind: FirewallPolicy
spec:
  virtualPatch: auto
  groups:
    - {name: web, selector: {namespace: shop, pods: ["web-*"]}, mode: protect}
    - name: legacy
      selector: {namespace: shop, labels: {tier: legacy}}
      virtualPatch: propose
      waf: [{sensor: "waf.s*", action: block}, {sensor: waf.log4shell, action: alert}]
    - {name: partner, selector: {cidrs: [198.51.100.0/24]}}
"""


def exposure(workload: str, *ids: str) -> Exposure:
    return Exposure(ids=frozenset(ids), workload=workload, image="sha256:" + "1" * 64)


def test_cves_by_id_or_alias_call_for_the_sensor_of_each_group_of_the_workload() -> None:
    policy = parse_texts([("p", POLICY)])
    found = proposals(
        policy,
        builtin_sensors(),
        [
            exposure("shop/web-1", "CVE-2021-44228"),
            exposure("shop/old", "GHSA-7rjr-3q55-vv33", "CVE-2021-45046"),
            exposure("shop/old", "CVE-2014-6278"),  # Shellshock, as waf.shellshock lists it
            exposure("shop/web-2", "CVE-2024-0001"),  # covered by no sensor
        ],
        {"shop/old": {"tier": "legacy"}},
    )
    got = {(p.group, p.sensor.id): p for p in found}
    assert set(got) == {
        ("web", "waf.log4shell"),
        ("legacy", "waf.log4shell"),
        ("legacy", "waf.shellshock"),
    }  # never the address-selected group
    assert got[("web", "waf.log4shell")].cves == {"CVE-2021-44228"}
    assert got[("legacy", "waf.log4shell")].cves == {"CVE-2021-45046"}
    # an alert rule leaves it open; the glob block rule covers shellshock
    assert got[("legacy", "waf.log4shell")].action == "alert"
    assert not got[("legacy", "waf.log4shell")].applied
    assert got[("legacy", "waf.shellshock")].applied
    # the spec's option is every group's default; a group can say otherwise
    assert got[("web", "waf.log4shell")].auto and not got[("legacy", "waf.log4shell")].auto


def test_the_option_survives_the_canonical_form_and_merged_files() -> None:
    policy = parse_texts([("p", POLICY)])
    again = parse_texts([("dumped", dump(policy))])
    assert again == policy and "virtualPatch: auto" in dump(policy)
    first, rest = POLICY.split("  groups:\n")
    merged = parse_texts([("a", first + "  groups:\n" + rest), ("b", "spec: {groups: []}\n")])
    assert merged.spec.virtualPatch == "auto"
    plain = parse_texts([("p", POLICY.replace("  virtualPatch: auto\n", ""))])
    assert "virtualPatch" not in dump(plain).split("groups:")[0]
    assert not plain.auto_patched(plain.group("web"))


def test_a_patch_is_a_block_rule_of_the_group() -> None:
    policy = parse_texts([("p", POLICY)])
    patched = with_patch(policy, "web", "waf.log4shell")
    assert patch_action(patched.group("web"), "waf.log4shell") == "block"
    upgraded = with_patch(policy, "legacy", "waf.log4shell")  # its alert rule becomes block
    assert [(w.sensor, w.action) for w in upgraded.group("legacy").waf] == [
        ("waf.s*", "block"),
        ("waf.log4shell", "block"),
    ]
    with pytest.raises(ConfigError, match="no group 'nope'"):
        with_patch(policy, "nope", "waf.log4shell")
