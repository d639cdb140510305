"""What a workload check is: a short function plus its metadata."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stockade.k8s.objects import (
    Container,
    containers_of,
    pod_metadata_of,
    pod_spec_of,
    spec_path_of,
)
from stockade.model import Severity

PROFILES = ("baseline", "restricted")


@dataclass(frozen=True, slots=True)
class PodView:
    """A pod spec seen through the object that templates it."""

    obj: dict[str, Any]
    spec: dict[str, Any]
    base: str  # field path of the spec: "spec" or "spec.template.spec"
    containers: tuple[Container, ...]

    @classmethod
    def of(cls, obj: dict[str, Any]) -> PodView | None:
        spec = pod_spec_of(obj)
        if spec is None:
            return None
        base = spec_path_of(str(obj.get("kind")))
        return cls(obj=obj, spec=spec, base=base, containers=tuple(containers_of(spec, base)))

    @property
    def security_context(self) -> dict[str, Any]:
        sc = self.spec.get("securityContext")
        return sc if isinstance(sc, dict) else {}

    @property
    def annotations(self) -> dict[str, Any]:
        ann = pod_metadata_of(self.obj).get("annotations")
        return ann if isinstance(ann, dict) else {}

    @property
    def is_windows(self) -> bool:
        os_ = self.spec.get("os")
        return isinstance(os_, dict) and os_.get("name") == "windows"

    @property
    def host_users_off(self) -> bool:
        """``hostUsers: false``: the pod runs in a user namespace."""
        return self.spec.get("hostUsers") is False


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What other objects in the same scan tell a check (empty for a single object)."""

    service_accounts: Mapping[tuple[str | None, str], dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """One offending value and what it is about, for callers that act on it (the admission
    criteria); ``str()`` is the ``field.path=value`` evidence a finding shows."""

    path: str  # "spec.containers[0].securityContext.privileged"
    value: str | None  # "true", "<unset>", "['SYS_ADMIN']"; None: the path says it all
    container: Container | None = None  # the container it is about; None: the pod
    volume: str | None = None  # the volume's name, for volume checks
    items: tuple[str, ...] = ()  # the offending members of a list value (capabilities.add)
    # A pod-level value: the containers that leave the field unset and so inherit it.
    inherited_by: tuple[Container, ...] = ()
    # The runAsUser in effect for the container (its own, else the pod's), where the check reads it.
    run_as_user: Any = None

    @classmethod
    def of_text(cls, text: str) -> Violation:
        path, sep, value = text.partition("=")
        return cls(path=path, value=value if sep else None)

    @property
    def field(self) -> str:
        """The last component of the path: ``hostIPC``, ``privileged``."""
        return self.path.rsplit(".", 1)[-1]

    def __str__(self) -> str:
        return self.path if self.value is None else f"{self.path}={self.value}"


# A pod check returns the offending values (Violations, or plain "field.path=value" strings);
# empty means pass.
PodCheck = Callable[[PodView, Context], Sequence[Violation | str]]
# An object check sees the raw object (RBAC kinds, ServiceAccounts).
ObjectCheck = Callable[[dict[str, Any], Context], list[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadCheck:
    """One check: a stable slug, what it means, and the function that decides it."""

    id: str  # stable slug: "pss.baseline.privileged"
    title: str
    severity: Severity
    benchmark: str  # "pss-baseline", "pss-restricted", "cis-kubernetes-5", "stockade-workloads"
    benchmark_id: str  # the source's own name or number: "privileged", "5.1.3"
    expected: str
    remediation: str
    compliance: tuple[str, ...] = ()
    section: str = ""
    profile: str | None = None  # "baseline"/"restricted" for PSS; None runs in every profile
    pod: PodCheck | None = None  # exactly one of pod / obj is set
    obj: ObjectCheck | None = None
    kinds: frozenset[str] = frozenset()  # object kinds for `obj` checks

    def in_profile(self, profile: str) -> bool:
        if self.profile is None or self.profile == "baseline":
            return True
        return profile == "restricted"
