"""`stockade scan registry` against the loopback registry (.ci/setup.d/20-registry.sh): each
manifest digest read once, re-matched after an advisory import without reading layers (the layer
blobs are deleted from the registry first), new tags picked up by --watch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from stockade.model import StockadeError
from tests.conftest import require
from tests.scanning.scan_cli_support import OWN_RECORDS, make_db, run, shared_samples

REGISTRY = "127.0.0.1:5000"
pytestmark = pytest.mark.registry


def _registry_up() -> bool:
    try:
        return httpx.get(f"http://{REGISTRY}/v2/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def pushed():
    """The sample image pushed under a repository unique to this test run."""
    require(_registry_up(), f"no registry on {REGISTRY} (.ci/setup.d/20-registry.sh starts it)")
    require(shutil.which("skopeo") is not None, "skopeo is not installed")
    from stockade.lab.samples import build_sample

    try:
        sample = build_sample()
    except StockadeError as exc:
        require(False, f"cannot build the sample image: {exc}")
    prefix = f"sk-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    repo = f"{prefix}/app"
    copy(f"oci:{sample.oci_dir}:{sample.tag}", f"{REGISTRY}/{repo}:1")
    return sample, prefix, repo


def copy(src: str, dest: str) -> None:
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", src, f"docker://{dest}"],
        check=True,
        timeout=120,
        capture_output=True,
    )


def walk(db: str, prefix: str, *extra: str) -> list[dict]:
    out = run(
        "scan", "registry", REGISTRY, "--insecure", "--repo", f"{prefix}/*", "--db", db,
        "--format", "json", *extra,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


def test_scan_once_rematch_without_layers(pushed, tmp_path: Path) -> None:
    _, prefix, repo = pushed
    db = make_db(tmp_path / "reg.db")
    [first] = walk(db, prefix, "--fail-on", "medium")
    [img] = first["images"]
    assert img["reference"] == f"{REGISTRY}/{repo}:1" and img["action"] == "scanned"
    assert img["read_layers"] > 0 and img["failed"] is True
    assert img["by_severity"]["medium"] == 3

    [second] = walk(db, prefix)
    assert [i["action"] for i in second["images"]] == ["unchanged"]

    # Delete the image's layer blobs from the registry: from now on, reading a layer fails.
    manifest = httpx.get(
        f"http://{REGISTRY}/v2/{repo}/manifests/1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    ).json()
    for layer in manifest["layers"]:
        r = httpx.delete(f"http://{REGISTRY}/v2/{repo}/blobs/{layer['digest']}", timeout=10)
        assert r.status_code == 202, r.text
    fresh = run(
        "scan", "image", f"{REGISTRY}/{repo}:1", "--insecure", "--db", make_db(tmp_path / "x.db")
    )
    assert fresh.returncode == 3, fresh.stderr  # a real read of the layers fails now
    assert "blob" in fresh.stderr, fresh.stderr

    # New advisory data (a re-import rebuilds the database): the kept inventory is matched again.
    time.sleep(0.01)
    make_db(tmp_path / "reg.db", sources=(OWN_RECORDS, shared_samples()))
    [third] = walk(db, prefix)
    [img] = third["images"]
    assert img["action"] == "rematched" and img["read_layers"] == 0
    assert img["by_severity"]["medium"] == 3

    images = json.loads(run("images", "--db", db, "--format", "json").stdout)
    assert [i["reference"] for i in images] == [f"{REGISTRY}/{repo}:1"]


def test_watch_picks_up_a_new_tag(pushed, tmp_path: Path) -> None:
    sample, first_prefix, _ = pushed
    prefix = f"{first_prefix}-watch"  # its own repository: another test deletes blobs of the first
    repo = f"{prefix}/app"
    copy(f"oci:{sample.oci_dir}:{sample.tag}", f"{REGISTRY}/{repo}:1")
    db = make_db(tmp_path / "watch.db")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "stockade", "scan", "registry", REGISTRY, "--insecure",
            "--repo", f"{prefix}/*", "--db", db, "--format", "json",
            "--watch", "--interval", "1", "--max-polls", "3",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first poll is done
        assert line.startswith("poll 1:"), line
        copy(f"oci:{sample.oci_dir}:{sample.tag}", f"{REGISTRY}/{repo}:2")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    walks = json.loads(out)
    assert len(walks) == 3
    assert {i["reference"].rsplit(":", 1)[1] for i in walks[0]["images"]} <= {"1", "2"}
    last = {i["reference"].rsplit(":", 1)[1]: i["action"] for i in walks[-1]["images"]}
    assert last == {"1": "unchanged", "2": "unchanged"}
    seen_2 = [i for w in walks for i in w["images"] if i["reference"].endswith(":2")]
    assert seen_2[0]["action"] == "cached" and seen_2[0]["read_layers"] == 0  # same digest as :1


def test_an_unreadable_image_is_reported_and_exits_3(pushed, tmp_path: Path) -> None:
    sample, prefix, _ = pushed
    repo = f"{prefix}-broken/app"
    copy(f"oci:{sample.oci_dir}:{sample.tag}", f"{REGISTRY}/{repo}:1")
    manifest = httpx.get(
        f"http://{REGISTRY}/v2/{repo}/manifests/1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    ).json()
    layer = manifest["layers"][-1]["digest"]
    assert httpx.delete(f"http://{REGISTRY}/v2/{repo}/blobs/{layer}", timeout=10).status_code == 202
    db = make_db(tmp_path / "broken.db")
    out = run(
        "scan", "registry", REGISTRY, "--insecure", "--repo", f"{prefix}-broken/*", "--db", db,
        "--format", "json",
    )  # fmt: skip
    assert out.returncode == 3, out.stderr
    [w] = json.loads(out.stdout)
    [img] = w["images"]
    assert img["action"] == "error" and "blob" in img["error"]
    assert "1 image(s) could not be scanned" in out.stderr
