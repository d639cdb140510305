"""An advisory update quarantines by rule: the controller matches the stored inventory of a running
workload's image again when new advisories reach its store, and a rule with vulnerability criteria
acts on the result, as it does on an uploaded scan."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stockade.api.rematch import advisory_build
from stockade.scanning.advisories.reader import read_source
from stockade.scanning.advisories.store import write_batches
from stockade.scanning.interface import ImageInfo, Inventory
from stockade.scanning.pipeline import ScanOptions, real_backend, rematch_stored
from stockade.scanning.results import DatabaseInfo
from stockade.scanning.scan_store import record_scan, save_inventory
from stockade.store.records import list_events
from tests.api.controller import SRC, Controller
from tests.api.responding import wait_for, write
from tests.scanning.scan_cli_support import OWN_RECORDS
from tests.scanning.scan_support import DIGEST as OTHER
from tests.scanning.scan_support import IMAGE as OTHER_IMAGE
from tests.scanning.scan_support import package, report

DIGEST = "sha256:" + "5e" * 32
IMAGE = "127.0.0.1:5000/shop/web"
RULES = """\
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: vulns}
spec:
  rules:
    - name: critical-out
      mode: active
      match: {vulnerabilities: {critical: 1}}
      actions: [quarantine]
"""
# A critical advisory for a package the image carries, published after its last scan.
ADVISORY = {
    "schema_version": "1.6.0",
    "id": "PYSEC-2026-9901",
    "modified": "2026-11-30T00:00:00Z",
    "published": "2026-11-30T00:00:00Z",
    "aliases": ["CVE-2026-99001"],
    "summary": "widgetlib deserialises untrusted input",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "widgetlib", "purl": "pkg:pypi/widgetlib"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2.1"}]}],
        }
    ],
}


def inventory() -> Inventory:
    return Inventory(
        source=f"{IMAGE}:1.0",
        image=ImageInfo(
            reference=f"{IMAGE}:1.0",
            name=IMAGE,
            tag="1.0",
            manifest_digest=DIGEST,
            platform="linux/amd64",
        ),
        packages=(package("widgetlib", "1.2.0", type_="python"),),
    )


def quarantined(c: Controller) -> dict[str, Any]:
    with c.client("reader") as client:
        return {w["workload"]: w for w in client.get("/api/v1/quarantine").json()["workloads"]}


@pytest.fixture
def controller(tmp_path: Path) -> Any:
    workdir = tmp_path / "controller"
    workdir.mkdir()
    c = Controller(f"sqlite:///{workdir / 'stockade.db'}", workdir)
    # the store as `stockade scan` left it: advisories, the image's inventory, its clean scan
    write_batches(c.store, [read_source(str(OWN_RECORDS))])
    save_inventory(c.store, inventory(), catalogers="test@1")
    built = advisory_build(c.store)
    report = rematch_stored(
        c.store,
        DIGEST,
        f"{IMAGE}:1.0",
        ScanOptions(),
        real_backend(),
        DatabaseInfo(built=built),
        mode="scan",
    )
    assert report is not None and not report.gate.active  # clean before the update
    c.args = ["--rules", str(write(tmp_path / "rules.yaml", RULES)), "--rematch-every", "1"]
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_an_advisory_update_quarantines_a_running_workload_by_rule(
    controller: Controller, tmp_path: Path
) -> None:
    # the workload is known to run the image (the scan summary names it); clean: nothing happens
    with controller.client("agent") as c:
        answer = c.post(
            "/api/v1/scans/summary",
            json={"image": f"{IMAGE}:1.0", "digest": DIGEST, "images": {"shop/web": DIGEST}},
        )
    assert answer.status_code == 202 and answer.json()["workloads"] == ["shop/web"]
    time.sleep(2.5)  # more than two looks at the advisory data
    assert quarantined(controller) == {}
    assert not list_events(controller.store, kind="response.*")

    # new advisories imported into the controller's store, as an operator does it
    folder = tmp_path / "update"
    folder.mkdir()
    write(folder / "PYSEC-2026-9901.json", json.dumps(ADVISORY))
    imported = subprocess.run(
        [sys.executable, "-m", "stockade", "db", "import", str(folder), "--db", controller.db_url],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert imported.returncode == 0, imported.stderr

    wait_for(lambda: "shop/web" in quarantined(controller), timeout=20, what="the quarantine")
    [scan] = [
        e
        for e in list_events(controller.store, kind="scan.completed")
        if e.data.get("mode") == "rematched"
    ]
    assert scan.source == "controller" and scan.data["counts"]["critical"] == 1
    assert "PYSEC-2026-9901" in scan.data["ids"] and "CVE-2026-99001" in scan.data["ids"]
    assert scan.data["images"] == {"shop/web": DIGEST} and scan.message.startswith(
        "advisory update"
    )
    [acted] = list_events(controller.store, kind="response.acted")
    assert acted.data["rule"] == "critical-out" and acted.data["workload"] == "shop/web"
    assert "critical-out" in quarantined(controller)["shop/web"]["reason"]

    time.sleep(2.5)  # matched against this build once: no second run, no second action
    assert len([e for e in list_events(controller.store, kind="scan.completed")]) == 2
    assert len(list_events(controller.store, kind="response.acted")) == 1


def test_a_new_scan_run_in_the_store_quarantines_by_rule(controller: Controller) -> None:
    """A registry watch (or `scan --db`) storing a re-scan of a running image in the controller's
    store: the rules see the new run without an upload."""
    with controller.client("agent") as c:
        answer = c.post(
            "/api/v1/scans/summary",
            json={"image": f"{IMAGE}:1.0", "images": {"shop/api": f"{OTHER_IMAGE}@{OTHER}"}},
        )
    assert answer.status_code == 202
    time.sleep(2.5)
    assert quarantined(controller) == {}
    run = record_scan(controller.store, report(), reference=f"{OTHER_IMAGE}:1.0", mode="scan")
    wait_for(lambda: "shop/api" in quarantined(controller), timeout=20, what="the quarantine")
    [scan] = [e for e in list_events(controller.store, kind="scan.completed") if e.data.get("run")]
    assert scan.data["run"] == run and scan.data["counts"]["critical"] == 1
    [acted] = list_events(controller.store, kind="response.acted")
    assert acted.data["rule"] == "critical-out" and acted.data["workload"] == "shop/api"
