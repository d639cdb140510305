"""The CLI path (one-line errors, exit codes) and the live root-filesystem sources."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from stockade.lab.samples import SampleImage
from stockade.model.errors import ImageError, UsageError
from stockade.scanning.imagewrite import compress, sha, tar_from_entries
from stockade.scanning.inventory import build_inventory
from tests.scanning.conftest import write_raw_oci

ROOT = Path(__file__).resolve().parents[2]
# A throwaway command on the real app, run through the real entry point (stockade.cli.app.main).
SCRIPT = """
import sys, typer
from stockade.cli.app import app, main
from tests.scanning.simple_catalogers import all_catalogers

@app.command("test-inventory")
def _inv(ref: str, insecure: bool = False) -> None:
    from stockade.scanning.inventory import build_inventory
    inv = build_inventory(ref, catalogers=all_catalogers(), insecure=insecure)
    print(len(inv.packages))

main(sys.argv[1:])
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}")
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env, timeout=120
    )


def _assert_one_line_error(
    proc: subprocess.CompletedProcess[str], code: int, *needles: str
) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stockade: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_cli_success(sample: SampleImage) -> None:
    proc = _cli("test-inventory", sample.refs()[0])
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) > 30


def test_cli_hostile_and_broken_inputs(tmp_path: Path) -> None:
    tar = tar_from_entries([("f", "../../etc/evil", b"x")])
    blob = compress(tar, "gzip")
    evil = write_raw_oci(tmp_path / "evil", [(blob, "application/vnd.oci.image.layer.v1.tar+gzip")],
                         diff_ids=[sha(tar)])  # fmt: skip
    _assert_one_line_error(_cli("test-inventory", evil), 3, evil, "path traversal")
    plain = "application/vnd.oci.image.layer.v1.tar"
    missing = write_raw_oci(
        tmp_path / "missing", [(blob, plain)], diff_ids=[sha(tar)], skip_blobs=(0,)
    )
    _assert_one_line_error(_cli("test-inventory", missing), 3, "missing blob")
    weird = write_raw_oci(tmp_path / "weird", [(blob, "application/x-weird")], diff_ids=[sha(tar)])
    _assert_one_line_error(_cli("test-inventory", weird), 3, "unknown layer media type")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\0garbage" * 300)
    _assert_one_line_error(_cli("test-inventory", f"docker-archive:{junk}"), 3, str(junk))
    _assert_one_line_error(_cli("test-inventory", "ubuntu"), 2, "not an image reference")


def test_sample_command_prints_refs(sample: SampleImage) -> None:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}")
    proc = subprocess.run(
        [sys.executable, "-m", "stockade", "sample", "build", "--cache-dir", str(sample.root)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == sample.refs()


def test_sample_push_failure_is_one_line(sample: SampleImage) -> None:
    from tests.scanning.registry_servers import free_port

    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}")
    cmd = ["sample", "build", "--cache-dir", str(sample.root), "--push", f"127.0.0.1:{free_port()}"]
    proc = subprocess.run(
        [sys.executable, "-m", "stockade", *cmd],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 3
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("stockade: error: sample recipe: skopeo copy")
    )


@pytest.fixture(scope="module")
def unpacked(sample: SampleImage, tmp_path_factory) -> Path:
    """The sample's first three layers unpacked as a root filesystem (Debian + Python + npm)."""
    import json

    root = tmp_path_factory.mktemp("rootfs") / "root"
    root.mkdir()
    with tarfile.open(sample.docker_archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        for name in manifest["Layers"][:3]:
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                layer.extractall(root, filter="tar")
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/fake-status").parent.mkdir(parents=True, exist_ok=True)
    return root


def test_dir_source(unpacked: Path, catalogers: list) -> None:
    # a status file under /proc must be skipped, and an escaping symlink is not followed
    (unpacked / "proc/var/lib/dpkg").mkdir(parents=True, exist_ok=True)
    (unpacked / "proc/var/lib/dpkg/status").write_text(
        "Package: ghost\nStatus: install ok installed\n"
    )
    inv = build_inventory(f"dir:{unpacked}", catalogers=catalogers)
    assert inv.image is None and inv.distro is not None and inv.distro.id == "debian"
    names = {(p.type, p.name) for p in inv.packages}
    assert ("python", "attrs") in names  # no layer 5 here: attrs is still installed
    assert ("deb", "bash") in names and ("deb", "ghost") not in names
    assert ("os", "debian") in names  # /etc/os-release -> ../usr/lib/os-release, inside the root
    assert all(p.layer is None for p in inv.packages)


def test_dir_source_escaping_symlink(tmp_path: Path, catalogers: list) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").symlink_to("../../../../../etc/os-release")
    inv = build_inventory(f"dir:{tmp_path}", catalogers=catalogers)
    assert inv.packages == () and inv.distro is None
    assert any("outside the root" in s for s in inv.skipped)


def test_dir_source_errors(tmp_path: Path, catalogers: list) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        build_inventory(f"dir:{tmp_path / 'nope'}", catalogers=catalogers)


@pytest.mark.root
def test_pid_source_reads_a_chrooted_process(unpacked: Path, catalogers: list) -> None:
    from tests.conftest import require

    require(os.geteuid() == 0, "chroot needs root")
    proc = subprocess.Popen(["chroot", str(unpacked), "/bin/sleep", "30"])
    try:
        for _ in range(200):  # until the child has actually entered the chroot
            if os.readlink(f"/proc/{proc.pid}/root") == str(unpacked):
                break
            time.sleep(0.01)
        inv = build_inventory(f"pid:{proc.pid}", catalogers=catalogers)
        expected = build_inventory(f"dir:{unpacked}", catalogers=catalogers)
        assert {(p.type, p.name, p.version) for p in inv.packages} == {
            (p.type, p.name, p.version) for p in expected.packages
        }
        assert inv.source == f"pid:{proc.pid}"
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(ImageError, match="cannot read the process root"):
        build_inventory(f"pid:{proc.pid}", catalogers=catalogers)  # gone now
