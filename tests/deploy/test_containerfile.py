"""The Containerfile, checked statically (no image builder on these machines), and Stockade's own
SBOM and scan: the wheel built from this tree, installed, lists Stockade with its dependencies,
and Stockade scans that SBOM and that root filesystem with its own advisory data."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from stockade.admission.certs import ensure_certificate
from tests.deploy.rendered import REPO

INSTRUCTION = re.compile(r"^([A-Z]+)\s+(.*)$")


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions, continuation lines joined, comments dropped."""
    text = (REPO / "Containerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = INSTRUCTION.match(line)
        assert match, f"not an instruction: {line!r}"
        op, args = match.groups()
        if op == "FROM":
            name = re.search(r"\bAS\s+(\S+)", args)
            assert name, f"unnamed stage: {line}"
            current = stages.setdefault(name.group(1), [])
        assert current is not None, "an instruction before FROM"
        current.append((op, args))
    return stages


def test_stages_and_base_images_are_pinned():
    stages = _stages()
    assert list(stages) == ["build", "controller", "agent"]
    for name, instructions in stages.items():
        image = instructions[0][1].split()[0]
        assert ":" in image.rsplit("/", 1)[-1], f"{name}: {image} has no tag"
        assert not image.endswith(":latest"), name
        assert re.search(r":3\.11\.\d+-slim", image), f"{name}: not a pinned Python 3.11 slim"


def _user(instructions) -> str:
    users = [args for op, args in instructions if op == "USER"]
    assert users, "no USER"
    return users[-1].split(":")[0]


def test_controller_runs_as_non_root_and_agent_as_root_with_reason():
    stages = _stages()
    assert _user(stages["controller"]) not in ("0", "root")
    assert _user(stages["agent"]) == "0"
    text = (REPO / "Containerfile").read_text()
    assert "Root by necessity" in text  # the reason is written next to it


def test_agent_has_the_debian_packages_it_needs_and_the_controller_none():
    stages = _stages()
    agent = " ".join(args for op, args in stages["agent"] if op == "RUN")
    for package in ("nftables", "iptables", "libhyperscan5", "libnetfilter-queue1", "libpcap"):
        assert package in agent
    controller = " ".join(args for op, args in stages["controller"] if op == "RUN")
    assert "apt-get" not in controller


def test_the_build_stage_has_the_headers_of_every_compiled_part():
    """Without them the wheel builds anyway and each part falls back: the agent's firewall and
    DLP scanned through Python, with no kernel classifier (setup.py builds it with clang)."""
    build = " ".join(args for op, args in _stages()["build"] if op == "RUN")
    for package in ("gcc", "libnetfilter-queue-dev", "libhyperscan-dev", "libpcap-dev", "clang",
                    "libbpf-dev"):  # fmt: skip
        assert package in build, package
    needs = (REPO / ".ci" / "apt-packages.txt").read_text()
    for package in ("libhyperscan-dev", "libpcap-dev", "clang", "libbpf-dev"):
        assert package in needs  # what ./dev setup installs for the same build


def test_nothing_piped_into_a_shell_and_no_unpinned_downloads():
    text = (REPO / "Containerfile").read_text()
    assert not re.search(r"(curl|wget)[^\n|]*\|\s*(ba)?sh", text)
    assert "ADD http" not in text
    assert "--index-url" not in text and "--extra-index-url" not in text
    for op, args in _stages()["agent"] + _stages()["controller"]:
        if op == "RUN" and "pip install" in args:
            assert "--no-index" in args  # only the wheels the build stage made


def test_manifest_images_are_the_containerfile_targets():
    from stockade.deploy.render import base_objects

    images = {
        o["kind"]: {c["image"] for c in o["spec"]["template"]["spec"]["containers"]}
        for o in base_objects()
        if o["kind"] in ("Deployment", "DaemonSet")
    }
    text = (REPO / "Containerfile").read_text()
    for kind, target in (("Deployment", "controller"), ("DaemonSet", "agent")):
        (image,) = images[kind]
        assert f"--target {target}" in text and f"-t {image} ." in text


@pytest.mark.slow
def test_stockades_own_sbom_and_scan(tmp_path):
    """The wheel built from this tree, installed into a root filesystem with the metadata of its
    dependencies, is what `stockade sbom dir:` lists: Stockade and every declared dependency; its
    CycloneDX SBOM and the root filesystem itself are then scanned by Stockade (the image's own
    scan, as CI runs it: every package checked, exit 0 or 1 by the findings, never a scan error)."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--wheel-dir", str(wheels), str(REPO)],
        check=True, timeout=240, capture_output=True,
    )  # fmt: skip
    site = tmp_path / "root" / "usr/local/lib/python3.11/site-packages"
    (wheel,) = wheels.glob("stockade-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        check=True, timeout=240, capture_output=True,
    )  # fmt: skip
    # The Kustomize base is package data: a wheel install renders the manifests on its own.
    assert (site / "stockade/deploy/base/kustomization.yaml").is_file()
    ensure_certificate(tmp_path / "tls", ["stockade-controller.stockade.svc"], ca_name="CA")
    rendered = subprocess.run(
        [sys.executable, "-m", "stockade", "deploy", "manifests", "--cert-dir", str(tmp_path / "tls")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    assert "kind: DaemonSet" in rendered.stdout
    requires = [re.split(r"[<>=\[; ]", r)[0] for r in metadata.requires("stockade") or []]
    runtime = [r for r, full in zip(requires, metadata.requires("stockade") or [], strict=True)
               if "extra ==" not in full]  # fmt: skip
    for name in runtime:
        dist = metadata.distribution(name)
        info = Path(dist._path)  # type: ignore[attr-defined]
        shutil.copytree(info, site / info.name)
    out = subprocess.run(
        [sys.executable, "-m", "stockade", "sbom", f"dir:{tmp_path / 'root'}", "-f", "json"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"),
             "STOCKADE_DB": f"sqlite:///{tmp_path / 'store.db'}"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    names = {p["name"].lower().replace("_", "-"): p for p in _packages(json.loads(out.stdout))}
    assert names["stockade"]["version"] == metadata.version("stockade")
    for name in runtime:
        assert name.lower().replace("_", "-") in names, name
    _scan_own(tmp_path, set(names))


def _scan_own(tmp_path: Path, sbom_names: set[str]) -> None:
    from tests.scanning.scan_cli_support import make_db

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("STOCKADE_DB", None)
    db = make_db(tmp_path / "advisories.db")
    cyclonedx = tmp_path / "stockade.cdx.json"
    made = subprocess.run(
        [sys.executable, "-m", "stockade", "sbom", f"dir:{tmp_path / 'root'}", "-f", "cyclonedx",
         "--db", db],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    cyclonedx.write_text(made.stdout)
    for target in (["sbom", str(cyclonedx)], ["rootfs", str(tmp_path / "root")]):
        scan = subprocess.run(
            [sys.executable, "-m", "stockade", "scan", *target, "-f", "json", "--db", db,
             "--no-store", "--fail-on", "critical", "--allow-unchecked"],
            capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
        assert scan.returncode in (0, 1), scan.stderr  # 3 would be a scan error
        report = json.loads(scan.stdout)
        assert report["coverage"]["packages"] >= len(sbom_names)
        assert report["coverage"]["checked"] > 0
        assert scan.returncode == int(report["policy"]["failed"])
        for finding in report["findings"]:
            assert _norm(finding["package"]) in sbom_names, finding["package"]


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _packages(doc):
    return doc["packages"] if isinstance(doc, dict) else doc
