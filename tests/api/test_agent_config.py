"""The configuration the agents follow, by version, on a real store: one sequence stamps every
kind (quarantine, firewall policy, admission policy) in the transaction of its change, and an
agent at version N is sent exactly the kinds changed after N."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from stockade.admission.policy import DEFAULT_POLICY_YAML
from stockade.admission.tables import save_policy as save_admission
from stockade.api.agent_config import agent_config
from stockade.firewall.policy.store import save_policy, set_quarantine
from stockade.store import open_store
from stockade.store.versions import config_versions

POLICY = "apiVersion: stockade.dev/v1\nkind: FirewallPolicy\nmetadata: {name: p}\n"


def test_each_kind_is_sent_once_after_the_version_the_agent_has(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    assert agent_config(store, None) == {"version": 0, "quarantine": []}
    assert agent_config(store, 0) == {"version": 0, "unchanged": True}

    set_quarantine(store, "shop/a", [], "card 4111 1111 1111 1111")
    save_policy(store, POLICY)
    save_admission(store, "default", DEFAULT_POLICY_YAML)

    full = agent_config(store, None)
    assert full["version"] == 3
    assert full["quarantine"][0]["reason"] == "card 4111 **** **** 1111"
    assert full["policy"] == {"name": "default", "version": 1, "yaml": POLICY}
    assert full["admission"]["yaml"] == DEFAULT_POLICY_YAML
    assert set(agent_config(store, 1)) == {"version", "policy", "admission"}
    assert set(agent_config(store, 2)) == {"version", "admission"}
    assert agent_config(store, 3) == {"version": 3, "unchanged": True}
    # a version this store never gave (restored from a backup): everything again
    assert set(agent_config(store, 40)) == {"version", "quarantine", "policy", "admission"}
    store.close()


def test_a_store_without_the_sequence_row_goes_on_from_its_newest_version(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    for _ in range(3):
        set_quarantine(store, "shop/a", [], "r")
    with store.begin() as conn:  # a store written before the sequence existed
        conn.execute(delete(config_versions).where(config_versions.c.name == "all"))
    save_policy(store, POLICY)
    assert agent_config(store, 3) == {
        "version": 4,
        "policy": {"name": "default", "version": 1, "yaml": POLICY},
    }
    store.close()
