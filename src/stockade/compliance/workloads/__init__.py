"""Workload checks: Pod Security Standards (baseline, restricted), CIS Kubernetes section 5 policies
judged from objects, and image hygiene.

    check_object(obj, profile="restricted")   one object (what the admission webhook calls)
    check_objects(objs, profile="restricted") many objects, with cross-object checks
    pod_spec_of(obj)                          the pod spec of a Pod or a controller's template
    violations(check, obj)                    what one check finds, with the container or volume
"""

from stockade.compliance.workloads.engine import (
    Manifest,
    check_object,
    check_objects,
    run_check,
    violations,
)
from stockade.compliance.workloads.model import (
    PROFILES,
    Context,
    PodView,
    Violation,
    WorkloadCheck,
)
from stockade.compliance.workloads.registry import BY_ID, CHECKS
from stockade.k8s.objects import WORKLOAD_KINDS, containers_of, pod_spec_of

__all__ = [
    "BY_ID",
    "CHECKS",
    "PROFILES",
    "WORKLOAD_KINDS",
    "Context",
    "Manifest",
    "PodView",
    "Violation",
    "WorkloadCheck",
    "check_object",
    "check_objects",
    "containers_of",
    "pod_spec_of",
    "run_check",
    "violations",
]
