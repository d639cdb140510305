"""The shipped benchmark data: complete, consistent, and loadable."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from stockade.compliance.cis import loader
from stockade.compliance.cis.model import CheckType

# Checks per section, counted in the benchmarks (CIS Kubernetes 1.12 sections 1-4; Docker 1.6.0).
K8S_SECTIONS = {
    "1.1": 21,
    "1.2": 30,
    "1.3": 7,
    "1.4": 2,
    "2": 7,
    "3.1": 3,
    "3.2": 2,
    "4.1": 10,
    "4.2": 14,
    "4.3": 1,
}
DOCKER_SECTIONS = {"1.1": 18, "1.2": 2, "2": 18, "3": 24, "4": 12, "5": 32, "6": 2, "7": 9}
SLUG = re.compile(r"^(k8s|docker)(\.[a-z0-9_]+){2}$")
REF = re.compile(
    r"^(pci-dss:\d+(\.\d+)+|hipaa:164\.3\d\d(\([a-z0-9]+\))+|gdpr:Art\. (25|32)(\(\w+\))+"
    r"|nist-800-190:4\.\d\.\d)$"
)


@pytest.mark.parametrize(
    ("platform", "version", "sections"),
    [
        ("kubernetes", "cis-1.12", K8S_SECTIONS),
        ("kubernetes", "cis-1.11", K8S_SECTIONS | {"4.2": 15}),
        ("docker", "cis-1.6", DOCKER_SECTIONS),
    ],
)
def test_benchmark_is_complete(platform: str, version: str, sections: dict[str, int]) -> None:
    bench = loader.builtin(platform, version)
    assert Counter(c.section.split()[0] for c in bench.checks) == sections
    ids = [c.id for c in bench.checks]
    numbers = [c.benchmark_id for c in bench.checks]
    assert len(set(ids)) == len(ids) and len(set(numbers)) == len(numbers)
    for c in bench.checks:
        assert SLUG.match(c.id), c.id
        assert c.remediation and c.title and c.role, c.id
        assert all(REF.match(r) for r in c.refs), (c.id, c.refs)
        if c.type is CheckType.AUTOMATED:
            assert c.audit is not None and c.tests is not None, c.id
        assert c.level in (1, 2)


def test_versions_and_unknown_version() -> None:
    assert loader.builtin("kubernetes", "1.12").id == "cis-kubernetes-1.12"
    assert loader.builtin("docker", "cis-1.6").version == "1.6.0"
    from stockade.model import ConfigError

    with pytest.raises(ConfigError, match=r"available: cis-1\.12"):
        loader.builtin("kubernetes", "cis-1.5")


def test_cis_1_11_differences() -> None:
    new, old = loader.builtin("kubernetes", "cis-1.12"), loader.builtin("kubernetes", "cis-1.11")
    by = {c.benchmark_id: c for c in old.checks}
    assert not by["1.2.30"].scored and {c.benchmark_id: c for c in new.checks}["1.2.30"].scored
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in by["4.2.12"].tests.describe()  # type: ignore[union-attr]
    assert by["4.2.15"].id == "k8s.kubelet.ip_address_deny" and by["4.2.15"].role == "worker"
    unchanged = {"1.2.29", "1.2.30", "4.2.12", "4.2.15"}
    for c in new.checks:
        if c.benchmark_id not in unchanged:
            assert by[c.benchmark_id] == c, c.id
