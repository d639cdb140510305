"""Process profiles as code: canonical YAML round trip, strict validation naming file and line,
selectors, diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.identity import Workload
from stockade.model.errors import ConfigError
from stockade.runtime import profile

SHA = "a" * 64
GOOD = f"""\
apiVersion: stockade.dev/v1
kind: ProcessProfiles
spec:
  profiles:
    - name: shop.orders
      selector: {{namespace: shop, pods: [orders]}}
      mode: protect
      processes:
        - {{path: /usr/bin/openssl, sha256: {SHA}, parent: ""}}
        - {{path: /bin/sleep, sha256: {SHA}}}
    - name: data
      selector: {{labels: {{tier: db}}}}
      zeroDrift: true
"""


def test_round_trip_is_canonical(tmp_path: Path) -> None:
    src = tmp_path / "p.yaml"
    src.write_text(GOOD)
    loaded = profile.load_files([src])
    text = profile.dump(loaded)
    assert profile.parse_texts([("again", text)]) == loaded
    assert profile.dump(profile.parse_texts([("again", text)])) == text
    orders = loaded.spec.profiles[0]
    assert orders.allows("/usr/bin/openssl", SHA, "")
    assert not orders.allows("/usr/bin/openssl", SHA, "/bin/bash")  # parent is part of it
    assert orders.allows("/bin/sleep", SHA, "/anything")  # parent "*" (the default)
    assert not orders.allows("/bin/sleep", "b" * 64, "")


def test_selectors_pick_the_first_matching_profile() -> None:
    loaded = profile.parse_texts([("p", GOOD)])
    orders = Workload(name="orders", namespace="shop")
    db = Workload(name="db", namespace="data", labels=(("tier", "db"),))
    other = Workload(name="crm", namespace="marketing")
    assert loaded.for_workload(orders).name == "shop.orders"  # type: ignore[union-attr]
    assert loaded.for_workload(db).name == "data"  # type: ignore[union-attr]
    assert loaded.for_workload(other) is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (GOOD.replace("mode: protect", "mode: block"), "p.yaml:7: spec.profiles[0].mode"),
        (GOOD.replace("zeroDrift", "zero_drift_x"), "p.yaml:13: spec.profiles[1].zero_drift_x"),
        (GOOD.replace(f"sha256: {SHA}, parent", "sha256: abc, parent"), "64 lowercase hex"),
        (GOOD.replace("/usr/bin/openssl", "usr/bin/openssl"), "absolute path"),
        (GOOD.replace("name: data", "name: shop.orders"), "defined twice"),
        (GOOD.replace("name: data", "name: Data!"), "slug"),
        ("kind: FirewallPolicy\n", "kind"),
    ],
)
def test_bad_profiles_are_refused_whole_naming_where(tmp_path: Path, text: str, error: str) -> None:
    src = tmp_path / "p.yaml"
    src.write_text(text)
    with pytest.raises(ConfigError, match=error.replace("[", r"\[").replace(".", r"\.")):
        profile.load_files([src])


def test_diff_is_empty_only_when_nothing_changes() -> None:
    a = profile.parse_texts([("a", GOOD)])
    assert profile.diff_lines(a, a) == []
    b = profile.parse_texts([("b", GOOD.replace("mode: protect", "mode: monitor"))])
    lines = profile.diff_lines(a, b)
    assert "-    mode: protect" in lines and "+    mode: monitor" in lines


def test_state_round_trip_and_absent_state(tmp_path: Path) -> None:
    state = tmp_path / "d" / "profiles.yaml"
    assert profile.load_state(state) == profile.Profiles()
    loaded = profile.parse_texts([("p", GOOD)])
    profile.save_state(loaded, state)
    assert profile.load_state(state) == loaded


def test_a_name_in_two_files_is_refused_naming_both(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("name: data", "name: other"))
    with pytest.raises(
        ConfigError, match=r"b\.yaml: profile 'shop\.orders' is already defined in .*a\.yaml"
    ):
        profile.load_files([tmp_path])
