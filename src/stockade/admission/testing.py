"""``stockade admission test DIR``: decide manifests offline and compare with expected outcomes.

Each folder below DIR holding a ``stockade-test.yaml`` is one suite:

```yaml
apiVersion: stockade.dev/v1
kind: AdmissionTest
policy: policy.yaml                # relative to the test file
vulnerabilities: vulns.yaml        # optional image facts (see FileVulnSource)
resources: [deploy.yaml, pods/]    # files or folders of (multi-document) YAML
results:
  - resource: Deployment/prod/web  # KIND/NAMESPACE/NAME, or KIND/NAME for the default namespace
    result: deny                   # allow, warn (allowed with a monitor violation) or deny
    rules: [no-critical]           # optional: rules that must be among the violations
```
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stockade.admission.engine import Decision, decide
from stockade.admission.policy import load_policy
from stockade.admission.vulns import FileVulnSource
from stockade.admission.workload import workload_of
from stockade.config import files_below, load_yaml_model, parse_yaml_all, read_text
from stockade.k8s.objects import expand_list, metadata
from stockade.model.errors import ConfigError

TEST_FILE = "stockade-test.yaml"


class Expected(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resource: str
    result: Literal["allow", "warn", "deny"]
    rules: list[str] = Field(default_factory=list)


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apiVersion: Literal["stockade.dev/v1"] = "stockade.dev/v1"
    kind: Literal["AdmissionTest"] = "AdmissionTest"
    policy: str
    vulnerabilities: str | None = None
    resources: list[str] = Field(min_length=1)
    results: list[Expected] = Field(min_length=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseResult:
    suite: str
    resource: str
    expected: str
    actual: str
    passed: bool
    detail: str


def outcome_of(d: Decision) -> str:
    if not d.allowed:
        return "deny"
    return "warn" if d.violations else "allow"


def _documents(path: Path) -> Iterator[dict[str, Any]]:
    files = (
        files_below(path, lambda name: name.endswith((".yaml", ".yml", ".json")))
        if path.is_dir()
        else [path]
    )
    for f in files:
        if f.name == TEST_FILE:
            continue
        for doc, _node in parse_yaml_all(read_text(f), name=str(f), kubernetes=True):
            if isinstance(doc, dict):
                yield from expand_list(doc)


def _key(obj: dict[str, Any]) -> str:
    meta = metadata(obj)
    return f"{obj.get('kind')}/{meta.get('namespace') or 'default'}/{meta.get('name')}"


def run_suite(test_file: Path) -> list[CaseResult]:
    suite = load_yaml_model(Suite, test_file)
    base = test_file.parent
    policy = load_policy(base / suite.policy)
    source = FileVulnSource(base / suite.vulnerabilities) if suite.vulnerabilities else None
    objects: dict[str, dict[str, Any]] = {}
    for res in suite.resources:
        target = base / res
        if not target.exists():
            raise ConfigError(f"{test_file}: resource {res} does not exist")
        for obj in _documents(target):
            objects[_key(obj)] = obj
    results = []
    for exp in suite.results:
        parts = exp.resource.split("/")
        key = exp.resource if len(parts) == 3 else f"{parts[0]}/default/{parts[-1]}"
        found = objects.get(key)
        if found is None:
            results.append(
                CaseResult(
                    suite=str(test_file),
                    resource=exp.resource,
                    expected=exp.result,
                    actual="missing",
                    passed=False,
                    detail="no such resource in the suite",
                )
            )
            continue
        w = workload_of(found)
        decision = Decision(allowed=True) if w is None else decide(w, policy, source)
        actual = outcome_of(decision)
        fired = {v.rule for v in decision.violations}
        missing_rules = [r for r in exp.rules if r not in fired]
        passed = actual == exp.result and not missing_rules
        detail = "; ".join(v.text() for v in decision.violations) or "no rule fired"
        if missing_rules:
            detail = f"expected rules not fired: {', '.join(missing_rules)}; {detail}"
        results.append(
            CaseResult(
                suite=str(test_file),
                resource=exp.resource,
                expected=exp.result,
                actual=actual,
                passed=passed,
                detail=detail,
            )
        )
    return results


def run_tests(directory: Path) -> list[CaseResult]:
    if directory.is_file():
        return run_suite(directory)
    files = files_below(directory, lambda name: name == TEST_FILE)
    if not files:
        raise ConfigError(f"no {TEST_FILE} found under {directory}")
    out: list[CaseResult] = []
    for f in files:
        out.extend(run_suite(f))
    return out
