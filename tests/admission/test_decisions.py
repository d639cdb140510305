"""The decision cache (issue 19): a review answered from a recent decision gets exactly the
AdmissionReview response, and the same event (its own uid), that deciding it again would give, on
the engine's cases and the example manifests; only a body that differs in the request's uid alone
is answered from another's decision."""

from __future__ import annotations

import copy
import dataclasses
import json
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


def _again(review: dict[str, Any]) -> dict[str, Any]:
    """The same request with its own uid."""
    other = copy.deepcopy(review)
    other["request"]["uid"] = f"{review['request']['uid']}-again"
    return other


def _key(review: dict[str, Any], **dumps: Any) -> bytes | None:
    return DecisionCache.key(json.dumps(review, **dumps).encode(), review["request"]["uid"])


@pytest.mark.parametrize(("name", "policy", "review"), CASES_ALL, ids=[c[0] for c in CASES_ALL])
def test_a_recalled_decision_answers_as_deciding_again(
    name: str, policy: Any, review: dict[str, Any]
) -> None:
    source = CachedVulnSource(FACTS)
    cache = DecisionCache()
    key = _key(review)
    assert key is not None
    first = answer(review, policy, source, decisions=cache, key=key)
    assert first.response == answer(review, policy, source).response
    again = _again(review)
    assert _key(again) == key  # only the uid differs
    expected = answer(again, policy, source)  # the full path, no cache
    hit = recall(again, cache, key)
    if first.event is None:  # not judged (DELETE, a status update): nothing to remember
        assert hit is None and len(cache) == 0
        return
    assert hit is not None and cache.hits == 1
    assert hit.response == expected.response
    assert hit.response["response"]["uid"] == again["request"]["uid"]
    assert _event_fields(hit.event) == _event_fields(expected.event)


def test_only_the_uid_may_differ() -> None:
    review = review_for(manifests()["Deployment/prod/pay"])
    key = _key(review)
    other_user = copy.deepcopy(review)
    other_user["request"]["userInfo"]["username"] = "bob@example.com"
    dry = copy.deepcopy(review)
    dry["request"]["dryRun"] = True
    privileged = copy.deepcopy(review)
    spec = privileged["request"]["object"]["spec"]["template"]["spec"]
    spec["containers"][0]["securityContext"]["privileged"] = True
    keys = {key, _key(other_user), _key(dry), _key(privileged), _key(review, indent=1)}
    assert None not in keys and len(keys) == 5
    # the uid's text twice in the body (here in an annotation): no key, never cached
    twice = copy.deepcopy(review)
    twice["request"]["object"]["metadata"]["annotations"] = {"a": review["request"]["uid"]}
    assert _key(twice) is None
    cache = DecisionCache()
    out = answer(twice, policy_with("{privileged: true}"), FACTS, decisions=cache, key=None)
    assert out.event is not None and len(cache) == 0 and recall(twice, cache, None) is None


def test_a_decision_with_an_error_is_not_kept() -> None:
    policy = policy_with("{vulnerabilities: {severity: critical}}")
    review = review_for(manifests()["Deployment/prod/pay"])
    cache = DecisionCache()
    key = _key(review)
    out = answer(review, policy, Raising(), decisions=cache, key=key)  # type: ignore[arg-type]
    assert out.event is not None and out.event.data["error"]
    assert len(cache) == 0 and recall(review, cache, key) is None


def test_decisions_expire_and_the_cache_is_bounded() -> None:
    policy = policy_with("{privileged: true}")
    reviews = [review_for(obj) for obj in manifests().values()]
    cache = DecisionCache(ttl=0.05, max_entries=3)
    for review in reviews:
        answer(review, policy, FACTS, decisions=cache, key=_key(review))
    assert len(cache) == 3 < len(reviews)
    assert recall(reviews[-1], cache, _key(reviews[-1])) is not None
    assert recall(reviews[0], cache, _key(reviews[0])) is None  # the oldest went first
    time.sleep(0.06)
    assert recall(reviews[-1], cache, _key(reviews[-1])) is None
