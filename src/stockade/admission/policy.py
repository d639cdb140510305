"""Admission policy: rules as YAML (Kubernetes-shaped) and their validated form.

```yaml
apiVersion: stockade.dev/v1
kind: AdmissionPolicy
metadata: {name: default}
spec:
  mode: monitor            # monitor (allow + warn + event) or protect (deny); per rule too
  failurePolicy: ignore    # on internal errors (scan lookup failed, ...): ignore = allow, fail = deny
  scanBudgetSeconds: 2     # time to scan a never-seen image on demand
  rules:
    - name: platform-images
      action: allow        # an exception, checked first: admits what its match selects
      match: {namespaces: [platform], images: ["registry.internal/*"]}
    - name: no-critical
      action: deny         # the default
      mode: protect
      match: {namespaces: [prod*], excludeNamespaces: [dev], kinds: [Deployment], labels: {tier: web}}
      criteria:            # all must be met for the rule to fire
        vulnerabilities: {severity: critical, count: 1}
        privileged: true
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stockade.admission.criteria import CRITERIA
from stockade.config import load_yaml_model, parse_yaml, repeated, validate

Mode = Literal["monitor", "protect"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    namespaces: list[str] = Field(default_factory=lambda: ["*"])
    excludeNamespaces: list[str] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=lambda: ["*"])
    labels: dict[str, str] = Field(default_factory=dict)
    images: list[str] = Field(default_factory=lambda: ["*"])  # every image must match one glob


class Rule(_Strict):
    name: str = Field(min_length=1)
    action: Literal["deny", "allow"] = "deny"
    mode: Mode | None = None
    match: Match = Field(default_factory=Match)
    criteria: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None

    @model_validator(mode="after")
    def _criteria_fit_action(self) -> Rule:
        if self.action == "deny" and not self.criteria:
            raise ValueError(f"deny rule {self.name!r} needs at least one criterion")
        if self.action == "allow" and self.criteria:
            raise ValueError(
                f"allow rule {self.name!r} admits by its match (namespaces, kinds, labels, "
                "images); it takes no criteria"
            )
        return self

    @field_validator("criteria")
    @classmethod
    def _criteria(cls, value: dict[str, Any]) -> dict[str, Any]:
        parsed: dict[str, Any] = {}
        for key, raw in value.items():
            crit = CRITERIA.get(key)
            if crit is None:
                raise ValueError(
                    f"unknown criterion {key!r} (known: {', '.join(sorted(CRITERIA))})"
                )
            if raw is False or raw is None:
                continue
            if crit.params is not None:
                parsed[key] = crit.params.model_validate({} if raw is True else raw)
            elif key in ("cves", "requiredLabels"):
                if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
                    raise ValueError(f"{key} takes a non-empty list of strings")
                parsed[key] = list(raw)
            elif raw is not True:
                raise ValueError(f"{key} takes true or false")
            else:
                parsed[key] = True
        return parsed


class Metadata(_Strict):
    name: str = "default"


class Spec(_Strict):
    mode: Mode = "monitor"
    failurePolicy: Literal["ignore", "fail"] = "ignore"
    scanBudgetSeconds: float = Field(default=2.0, ge=0.0, le=25.0)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Spec:
        dup = repeated(r.name for r in self.rules)
        if dup:
            raise ValueError(f"rule names must be unique: {', '.join(dup)}")
        return self


class Policy(_Strict):
    apiVersion: Literal["stockade.dev/v1"] = "stockade.dev/v1"
    kind: Literal["AdmissionPolicy"] = "AdmissionPolicy"
    metadata: Metadata = Field(default_factory=Metadata)
    spec: Spec = Field(default_factory=Spec)


def load_policy(path: Path) -> Policy:
    return load_yaml_model(Policy, path)


def parse_policy(text: str, *, name: str) -> Policy:
    value, node = parse_yaml(text, name=name)
    return validate(Policy, value, node, name=name)


DEFAULT_POLICY_YAML = """\
apiVersion: stockade.dev/v1
kind: AdmissionPolicy
metadata: {name: default}
spec:
  mode: monitor
  failurePolicy: ignore
  scanBudgetSeconds: 2
  rules:
    - name: no-critical-vulnerabilities
      criteria: {vulnerabilities: {severity: critical, count: 1}}
    - name: no-privileged
      criteria: {privileged: true}
    - name: no-host-namespaces
      criteria: {hostNamespaces: true}
    - name: no-env-secrets
      criteria: {envSecrets: {literalOnly: true}}
    - name: no-latest-tag
      criteria: {imageTag: {deny: [latest]}}
"""
