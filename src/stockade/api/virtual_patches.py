"""Virtual patches proposed from the vulnerabilities of the groups' running workloads, applied by an
operator in one call, or by the controller itself for groups with ``virtualPatch: auto`` (set on
the group, or for every group in the policy's ``spec``).

A proposal is a group of the firewall policy in force, a built-in WAF sensor, the CVEs of the
sensor that the images of the group's running workloads carry (their newest scans), those
workloads and images, and whether a ``block`` rule of the group already covers the sensor.
Applying one adds ``{sensor, action: block}`` to the group's ``waf`` rules: a new version of the
firewall policy (the enforcers following the controller pick it up), audited, and an event
``virtual_patch.applied`` naming the group, sensor and CVEs. Automatic patches are applied when
vulnerability facts arrive: a scan upload or a scan summary naming the workloads of an image.
"""

# No "from __future__ import annotations": FastAPI reads the dependency aliases at run time.

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from stockade.api import auth, catalog
from stockade.api.access import Operator, Publish, Reader, StoreDep
from stockade.api.auth import Principal
from stockade.firewall.policy.store import PolicyChanged, apply_policy, load_policy
from stockade.model import Event, Severity
from stockade.model.redact import redact, redact_text
from stockade.network.graph import node_id
from stockade.network.tables import graph_nodes
from stockade.store import Store
from stockade.store.records import record_events

if TYPE_CHECKING:
    from stockade.firewall.policy.model import Policy
    from stockade.firewall.policy.vpatch import Exposure, Proposal
    from stockade.network.waf.sensors import WafSensor

# The firewall policy's models, the proposals and the WAF sensors are imported by the functions
# that use them: a controller loads them with the first virtual patch request, or the first scan
# that finds a policy in force (auto_apply), not at its start.

router = APIRouter()

AUTO = Principal(name="virtual-patch", role="admin", via="controller")
AUTO_TRIES = 3  # a concurrent policy edit: read again and retry, then leave it to the next facts


class ApplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    group: str = Field(min_length=1, max_length=63)
    sensor: str = Field(min_length=1, max_length=200)
    action: Literal["block", "alert"] = "block"


def sensors() -> dict[str, "WafSensor"]:
    """The sensors the controller knows the CVEs of: the built-in pack."""
    from stockade.network.waf.sensors import builtin_sensors

    return {s.id: s for s in builtin_sensors()}


def exposures(store: Store, known: Mapping[str, str]) -> list["Exposure"]:
    """Each vulnerability of each running workload's image (the image's newest scan)."""
    from stockade.firewall.policy.vpatch import Exposure

    running = catalog.workload_images(store, known)
    runs: dict[str, tuple[str, list[str]]] = {}
    for image in catalog.images(store):
        workloads = image.runs(running)
        if workloads:
            runs[image.run["id"]] = (image.digest or image.key, workloads)
    out = []
    for row in catalog.run_findings(store, runs):
        v = catalog.vulnerability(row)
        key, workloads = runs[row["run_id"]]
        ids = frozenset({v["id"], *v["aliases"]})
        out += [Exposure(ids=ids, workload=w, image=key) for w in workloads]
    return out


def workload_labels(store: Store, workloads: set[str]) -> dict[str, dict[str, str]]:
    """The labels the network graph knows of each workload (``namespace/name``)."""
    ids = {node_id("workload", w.rpartition("/")[0], w.rpartition("/")[2]): w for w in workloads}
    out: dict[str, dict[str, str]] = {}
    q = select(graph_nodes.c.id, graph_nodes.c.labels)
    with store.connect() as conn:
        for start in range(0, len(ids), 500):
            part = list(ids)[start : start + 500]
            for ident, labels in conn.execute(q.where(graph_nodes.c.id.in_(part))):
                if isinstance(labels, dict):
                    out[ids[ident]] = {str(k): str(v) for k, v in labels.items()}
    return out


def in_force(store: Store) -> tuple["Policy", int] | None:
    row = load_policy(store)
    if row is None:
        return None
    from stockade.firewall.policy.files import parse_texts

    return parse_texts([("stored policy", row[0])]), row[1]


def current(
    store: Store, known: Mapping[str, str]
) -> tuple["Policy", int, list["Proposal"]] | None:
    """The policy in force, its version and its proposals; None before a policy is applied."""
    from stockade.firewall.policy.vpatch import proposals

    found_policy = in_force(store)
    if found_policy is None:
        return None
    policy, version = found_policy
    found = exposures(store, known)
    labels = workload_labels(store, {e.workload for e in found})
    return policy, version, proposals(policy, sensors().values(), found, labels)


def _event(p: "Proposal", *, version: int, action: str, who: Principal) -> Event:
    cves = ", ".join(sorted(p.cves)) or "no CVE seen yet"
    return Event(
        kind="virtual_patch.applied",
        message=(
            f"virtual patch {p.sensor.id} ({cves}) applied to group {p.group} "
            f"({action}, {p.mode} mode) by {who.who}"
        ),
        severity=Severity.NEGLIGIBLE,
        source="controller",
        data={
            "group": p.group,
            "sensor": p.sensor.id,
            "cves": sorted(p.cves),
            "workloads": sorted(p.workloads),
            "images": sorted(p.images),
            "version": version,
            "auto": who is AUTO,
            "who": who.who,
        },
        action=action,
        mode=p.mode,
        rule=p.sensor.id,
    )


def _apply(
    store: Store,
    policy: "Policy",
    version: int,
    chosen: list["Proposal"],
    *,
    action: str,
    who: Principal,
    publish: Callable[[Event], None],
) -> int:
    """Add every chosen patch in one new policy version (only over ``version``: PolicyChanged
    when the policy moved meanwhile); audited, one event per patch."""
    from stockade.firewall.policy.files import dump, parse_texts
    from stockade.firewall.policy.vpatch import with_patch

    changed = policy
    for p in chosen:
        changed = with_patch(changed, p.group, p.sensor.id, action)
    text = redact_text(dump(changed))
    new = apply_policy(store, parse_texts([("policy", text)]), text, expected=version)
    patches = [f"{p.group}:{p.sensor.id}:{action}" for p in chosen]
    auth.audit(
        store,
        who,
        "virtual_patch_applied",
        before={"version": version},
        after={"version": new, "patches": patches},
        message=f"{who.who} applied virtual patches {', '.join(patches)} (policy version {new})",
        sink=publish,
    )
    events = [_event(p, version=new, action=action, who=who) for p in chosen]
    record_events(store, events)
    for e in events:
        publish(e)
    return new


def auto_apply(
    store: Store, known: Mapping[str, str], publish: Callable[[Event], None]
) -> list["Proposal"]:
    """Apply every open proposal of the groups with ``virtualPatch: auto``; the ones applied."""
    for _ in range(AUTO_TRIES):
        policy_now = in_force(store)
        if policy_now is None or not any(
            map(policy_now[0].auto_patched, policy_now[0].spec.groups)
        ):
            return []  # no group asks for it: the vulnerabilities are not even read
        found = current(store, known)
        if found is None:
            return []
        policy, version, listed = found
        chosen = [p for p in listed if p.auto and not p.applied]
        if not chosen:
            return []
        try:
            _apply(store, policy, version, chosen, action="block", who=AUTO, publish=publish)
        except PolicyChanged:
            continue
        return chosen
    return []


def _known(request: Request) -> Mapping[str, str]:
    known: Mapping[str, str] = request.app.state.service.responder.known_images
    return known


@router.get("/api/v1/virtual-patches")
def list_virtual_patches(
    request: Request,
    store: StoreDep,
    _: Reader,
    group: str | None = Query(default=None, max_length=63),
    pending: bool | None = Query(default=None, description="not applied yet (true) or applied"),
) -> dict[str, Any]:
    """The virtual patches the groups' vulnerabilities call for: group, sensor, the CVEs covered,
    the workloads and images carrying them, whether a block rule is in force, the group's mode."""
    found = current(store, _known(request))
    if found is None:
        return {"version": 0, "items": []}
    _policy, version, listed = found
    items = [
        p.to_dict()
        for p in listed
        if (group is None or p.group == group) and (pending is None or p.applied is not pending)
    ]
    out: dict[str, Any] = redact({"version": version, "items": items})
    return out


@router.post("/api/v1/virtual-patches")
def apply_virtual_patch(
    body: ApplyBody, request: Request, store: StoreDep, who: Operator, publish: Publish
) -> dict[str, Any]:
    """Apply one virtual patch: ``{group, sensor}`` (``action`` block by default) becomes a
    ``waf`` rule of the group in a new version of the firewall policy."""
    from stockade.firewall.policy.vpatch import Proposal

    sensor = sensors().get(body.sensor)
    if sensor is None:
        raise HTTPException(400, f"unknown WAF sensor {redact_text(body.sensor[:100])!r}")
    found = current(store, _known(request))
    if found is None:
        raise HTTPException(404, "no firewall policy applied yet")
    policy, version, listed = found
    group = next((g for g in policy.spec.groups if g.name == body.group), None)
    if group is None:
        raise HTTPException(404, f"no group {redact_text(body.group)!r} in the policy")
    chosen = next(
        (p for p in listed if p.group == body.group and p.sensor.id == body.sensor),
        None,
    ) or Proposal(group=group.name, mode=group.mode, auto=policy.auto_patched(group), sensor=sensor)
    if chosen.action == body.action or (chosen.applied and body.action == "alert"):
        same: dict[str, Any] = redact({**chosen.to_dict(), "version": version, "changed": False})
        return same
    try:
        new = _apply(store, policy, version, [chosen], action=body.action, who=who, publish=publish)
    except PolicyChanged as exc:
        raise HTTPException(409, str(exc)) from None
    chosen.action = body.action
    out: dict[str, Any] = redact({**chosen.to_dict(), "version": new, "changed": True})
    return out
