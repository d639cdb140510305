"""JSON reports compared with golden files (wording of evidence, expectations and remediations
is part of the product). Regenerate with STOCKADE_UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tests.compliance.cis.fixtures import GOLDEN, build, load_spec
from tests.support import require

from stockade.compliance.cis import loader, report
from stockade.compliance.cis.engine import run
from stockade.compliance.cis.node import open_node

REPORTS = Path(__file__).parent / "reports"
CASES = {"k8s-apiserver-FAIL": ("kubernetes", ["1.2"]), "docker-runtime-FAIL": ("docker", ["5"])}


def _stable(doc: dict) -> dict:  # type: ignore[type-arg]
    for key in ("generated_at", "run_id", "seconds"):
        doc.pop(key)
    doc["node"].pop("process_source")
    for r in doc["results"]:
        # empty optional fields carry no wording (and new ones may be added to CheckDetails)
        r["details"] = {k: v for k, v in r["details"].items() if v != ""}
    return doc


@pytest.mark.root
@pytest.mark.parametrize("case", sorted(CASES))
def test_json_report_matches_golden(case: str, tmp_path: Path) -> None:
    require(os.geteuid() == 0, "fixture nodes set file owners with chown (needs root)")
    platform, sections = CASES[case]
    node = build(load_spec(GOLDEN / case / "node.yaml"), tmp_path / "node")
    result = run(loader.builtin(platform), open_node(node), only=sections)
    got = _stable(json.loads(report.to_json(result, selected="golden")))
    golden = REPORTS / f"{case}.json"
    if os.environ.get("STOCKADE_UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(golden.read_text())
    suites = ET.fromstring(report.to_junit(result))
    assert int(suites.get("tests") or 0) == len(result.findings)
