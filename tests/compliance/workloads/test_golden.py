"""Walk the golden folders: in ``<check>-FAIL`` exactly that check fails, in ``<check>-PASS``
nothing fails and the check passed at least once.

Folders of baseline checks are judged with the baseline profile (a restricted control would also
object to, say, a hostPath volume); every other folder with the restricted profile.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.compliance.workloads import BY_ID, check_objects
from stockade.compliance.workloads.loader import load_paths
from stockade.model import Status

GOLDEN = Path(__file__).parent / "golden"
FOLDERS = sorted(p for p in GOLDEN.iterdir() if p.is_dir())


def _judge(folder: Path) -> tuple[str, list]:
    check_id = folder.name.rpartition("-")[0]
    profile = "baseline" if check_id.startswith("pss.baseline.") else "restricted"
    loaded = load_paths([str(folder)])
    assert not loaded.errors, [e.details.reason for e in loaded.errors]
    return check_id, check_objects(loaded.manifests, profile=profile)


def test_every_check_has_both_folders() -> None:
    names = {p.name for p in FOLDERS}
    missing = [f"{c}-{o}" for c in BY_ID for o in ("PASS", "FAIL") if f"{c}-{o}" not in names]
    assert not missing
    assert names <= {f"{c}-{o}" for c in BY_ID for o in ("PASS", "FAIL")}


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_golden_folder(folder: Path) -> None:
    check_id, findings = _judge(folder)
    failed = {f.id for f in findings if f.status == Status.FAIL}
    if folder.name.endswith("-FAIL"):
        assert failed == {check_id}, [
            (f.id, f.details.evidence) for f in findings if f.status == Status.FAIL
        ]
    else:
        assert not failed, [(f.id, f.details.evidence) for f in findings if f.status == Status.FAIL]
        assert any(f.id == check_id and f.status == Status.PASS for f in findings)
