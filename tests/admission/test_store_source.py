"""Admission decisions from real scan results of the sample image, stored and scanned on demand.

Admission looks up registry references only, so the sample is pushed to the loopback registry."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from stockade.admission.engine import decide
from stockade.admission.interface import LookupBudget
from stockade.admission.policy import parse_policy
from stockade.admission.vulns import CachedVulnSource
from stockade.admission.workload import workload_of
from stockade.lab.samples import build_sample, push_sample
from stockade.model import Severity, UsageError
from stockade.scanning.admission_source import StoreVulnSource
from stockade.scanning.pipeline import ImageOptions
from stockade.scanning.scan_tables import scan_images
from stockade.store import open_store
from tests.conftest import require
from tests.scanning.conftest import OPEN_REGISTRY, listening
from tests.scanning.scan_cli_support import make_db, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample():
    return build_sample()


@pytest.fixture(scope="module")
def pushed(sample) -> str:
    require(
        listening(OPEN_REGISTRY), f"no registry on {OPEN_REGISTRY} (.ci/setup.d/20-registry.sh)"
    )
    push_sample(sample, OPEN_REGISTRY)
    return f"{OPEN_REGISTRY}/stockade/sample:{sample.tag}"


def pod(image: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


def test_scanned_image_answers_from_the_store(tmp_path, pushed) -> None:
    db = make_db(tmp_path / "db.sqlite")
    ref = pushed
    out = run("scan", "image", ref, "--insecure", "--db", db, "--format", "json")
    assert out.returncode in (0, 1), out.stderr
    source = StoreVulnSource(open_store(db), scan_on_demand=False)
    s = source.summary(ref, budget=LookupBudget(0))
    assert s is not None and s.scanned
    assert s.count_at_least(Severity.MEDIUM) >= 3  # requests, idna, urllib3 in the sample image
    assert "CVE-2024-35195" in s.ids
    assert source.summary(f"{OPEN_REGISTRY}/stockade/nowhere:1", budget=LookupBudget(0)) is None
    with pytest.raises(UsageError, match="not a registry image"):
        source.summary("docker-archive:/nowhere.tar", budget=LookupBudget(0))
    policy = parse_policy(
        "spec:\n  mode: protect\n  rules:\n    - {name: r, criteria: {cves: [CVE-2024-35195]}}\n",
        name="p",
    )
    d = decide(workload_of(pod(ref)), policy, source)
    assert not d.allowed and "CVE-2024-35195" in d.message
    # Each webhook worker warms its cache with the images the store knows, latest scanned first.
    assert source.known_images(10) == [ref]
    cached = CachedVulnSource(source)
    assert not cached.is_ready(ref)
    assert cached.warm() == 1 and cached.is_ready(ref)


def test_a_scan_stored_under_another_spelling_of_the_image_answers(tmp_path, pushed) -> None:
    """Scanned as docker.io/stockade/sample:TAG, run as stockade/sample:TAG (the familiar form a
    pod writes): the same image, so its stored findings decide, without an on-demand scan."""
    db = make_db(tmp_path / "db.sqlite")
    out = run("scan", "image", pushed, "--insecure", "--db", db, "--format", "json")
    assert out.returncode in (0, 1), out.stderr
    tag = pushed.rsplit(":", 1)[1]
    store = open_store(db)
    with store.connect() as conn:  # as if the scan had been of the Docker Hub image
        conn.execute(
            update(scan_images)
            .where(scan_images.c.reference == pushed)
            .values(reference=f"docker.io/stockade/sample:{tag}")
        )
        conn.commit()
    source = StoreVulnSource(store, scan_on_demand=False)
    for written in (f"stockade/sample:{tag}", f"index.docker.io/stockade/sample:{tag}"):
        s = source.summary(written, budget=LookupBudget(0))
        assert s is not None and "CVE-2024-35195" in s.ids, written
    assert source.summary(f"stockade/other:{tag}", budget=LookupBudget(0)) is None


def test_never_scanned_image_is_scanned_on_demand_within_the_budget(tmp_path, pushed) -> None:
    db = make_db(tmp_path / "db.sqlite")
    ref = pushed
    source = StoreVulnSource(open_store(db), image_options=ImageOptions(insecure=True))
    first = source.summary(
        ref, budget=LookupBudget(0.0)
    )  # no time at all: not scanned yet, the scan goes on
    assert first is not None and not first.scanned
    later = source.summary(ref, budget=LookupBudget(120))
    assert later is not None and later.scanned and later.count_at_least(Severity.LOW) >= 4
