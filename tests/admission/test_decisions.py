"""The decision cache (issue 19): a review answered from a recent decision gets exactly the
AdmissionReview response, and the same event (its own uid, user, dry-run), that deciding it again
would give, on the engine's cases and the example manifests."""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import pytest

from stockade.admission.decisions import DecisionCache
from stockade.admission.policy import load_policy
from stockade.admission.review import answer, recall
from stockade.admission.vulns import CachedVulnSource
from stockade.model import Event
from tests.admission.test_engine import CASES, FACTS, Raising, policy_with
from tests.admission.webhook import EXAMPLES, manifests, review_for

EXAMPLE_POLICY = load_policy(EXAMPLES / "policy.yaml")


def _event_fields(e: Event | None) -> dict[str, Any] | None:
    if e is None:
        return None
    out = dataclasses.asdict(e)
    del out["id"], out["at"]  # new for every event
    return out


def _reviews() -> list[tuple[str, Any, dict[str, Any]]]:
    """(case name, policy, review): every engine case, every example manifest under the example
    policy for each operation and API version, and requests the policy does not judge."""
    out = []
    for criteria, obj, _reason in CASES:
        for mode in ("protect", "monitor"):
            out.append((f"{criteria} {mode}", policy_with(criteria, mode), review_for(obj)))
    for name, obj in manifests().items():
        for op in ("CREATE", "UPDATE", "DELETE"):
            for version in ("admission.k8s.io/v1", "admission.k8s.io/v1beta1"):
                review = review_for(obj, operation=op, api_version=version)
                out.append((f"{name} {op} {version}", EXAMPLE_POLICY, review))
    sub = review_for(manifests()["Deployment/prod/pay"])
    sub["request"]["subResource"] = "status"
    out.append(("status sub-resource", EXAMPLE_POLICY, sub))
    return out


CASES_ALL = _reviews()


def _again(review: dict[str, Any], user: str) -> dict[str, Any]:
    """The same request from another user, with its own uid and dry-run."""
    other = copy.deepcopy(review)
    other["request"]["uid"] = f"{review['request']['uid']}-again"
    other["request"]["userInfo"] = {"username": user}
    other["request"]["dryRun"] = True
    return other


@pytest.mark.parametrize(("name", "policy", "review"), CASES_ALL, ids=[c[0] for c in CASES_ALL])
def test_a_recalled_decision_answers_as_deciding_again(
    name: str, policy: Any, review: dict[str, Any]
) -> None:
    source = CachedVulnSource(FACTS)
    cache = DecisionCache()
    first = answer(review, policy, source, decisions=cache)
    assert first.response == answer(review, policy, source).response
    again = _again(review, "bob@example.com")
    expected = answer(again, policy, source)  # the full path, no cache
    hit = recall(again, cache)
    if first.event is None:  # not judged (DELETE, a status update): nothing to remember
        assert hit is None and len(cache) == 0
        return
    assert hit is not None and cache.hits == 1
    assert hit.response == expected.response
    assert hit.response["response"]["uid"] == again["request"]["uid"]
    assert _event_fields(hit.event) == _event_fields(expected.event)
    assert hit.event is not None and hit.event.data["user"] == "bob@example.com"
    # answer() with the cache takes the same decision
    assert answer(again, policy, source, decisions=cache).response == expected.response


def test_a_different_object_is_not_answered_from_another() -> None:
    policy = policy_with("{privileged: true}")
    obj = manifests()["Deployment/prod/pay"]
    cache = DecisionCache()
    assert answer(review_for(obj), policy, FACTS, decisions=cache).response["response"]["allowed"]
    privileged = copy.deepcopy(obj)
    privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    assert recall(review_for(privileged), cache) is None
    denied = answer(review_for(privileged), policy, FACTS, decisions=cache)
    assert not denied.response["response"]["allowed"]
    other_ns = review_for(obj, namespace="elsewhere")
    assert recall(other_ns, cache) is None


def test_a_decision_with_an_error_is_not_kept() -> None:
    policy = policy_with("{vulnerabilities: {severity: critical}}")
    review = review_for(manifests()["Deployment/prod/pay"])
    cache = DecisionCache()
    out = answer(review, policy, Raising(), decisions=cache)  # type: ignore[arg-type]
    assert out.event is not None and out.event.data["error"]
    assert len(cache) == 0 and recall(review, cache) is None


def test_decisions_expire_and_the_cache_is_bounded() -> None:
    policy = policy_with("{privileged: true}")
    objs = list(manifests().values())
    cache = DecisionCache(ttl=0.05, max_entries=3)
    for obj in objs:
        answer(review_for(obj), policy, FACTS, decisions=cache)
    assert len(cache) == 3 < len(objs)
    assert recall(review_for(objs[-1]), cache) is not None
    assert recall(review_for(objs[0]), cache) is None  # the oldest went first
    time.sleep(0.06)
    assert recall(review_for(objs[-1]), cache) is None
