"""The demo's orchestration (``stockade demo``): the whole product on this machine, on embedded
defaults.

A guided run of the real commands, each printed before it runs: build the sample image from real
Debian, PyPI and npm packages; inventory it; import the bundled advisory records; scan it with a CI
gate; audit this host and the example workloads against the CIS benchmarks and the Pod Security
Standards; write a PCI DSS evidence report; decide the example admission requests; and, as root,
start the lab of pods, watch its traffic for card numbers in clear, and enforce the example firewall
policy. Everything goes to a work folder and its own database; the lab is removed at the end.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from stockade.model.errors import StockadeError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
LAB_PREFIX = "demo-"


class Printer(Protocol):
    """Where the demo reports what it does (the CLI prints it)."""

    def rule(self, title: str) -> None: ...
    def line(self, text: str) -> None: ...
    def command(self, text: str) -> None: ...
    def error(self, text: str) -> None: ...


class Demo:
    def __init__(self, workdir: Path, env: dict[str, str], out: Printer) -> None:
        self.workdir = workdir
        self.env = env
        self.out = out
        self.results: list[tuple[str, str]] = []

    def step(self, title: str) -> None:
        self.out.rule(title)

    def run(
        self, *args: str, ok: tuple[int, ...] = (0,), capture: bool = False, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        self.out.command(f"$ stockade {shlex.join(args)}")
        proc = subprocess.run(
            [sys.executable, "-m", "stockade", *args],
            env=self.env,
            text=True,
            timeout=timeout,
            capture_output=capture,
        )
        if proc.returncode not in ok:
            if capture:
                self.out.error(proc.stdout + proc.stderr)
            raise DemoFailed(f"stockade {args[0]} exited {proc.returncode}")
        return proc

    def note(self, what: str, outcome: str) -> None:
        self.results.append((what, outcome))


class DemoFailed(StockadeError):
    """A step of the demo did not do what it should (exit 3)."""


def _examples() -> Path:
    if not EXAMPLES.is_dir():
        raise DemoFailed(
            f"the examples folder is missing ({EXAMPLES}); run the demo from a clone of the repository"
        )
    return EXAMPLES


def _images(d: Demo) -> str:
    d.step("1. Image inventory: the sample image, built from real packages, read like any image")
    out = d.run("sample", "build", capture=True).stdout.split()
    ref = next(
        r for r in out if r.startswith("docker-archive:") and r.endswith("sample-docker-oci.tar")
    )
    d.run("sbom", ref)
    d.run("sbom", ref, "--format", "cyclonedx", "-o", str(d.workdir / "sample.cdx.json"))
    d.note("SBOM (CycloneDX)", str(d.workdir / "sample.cdx.json"))
    return ref


def _vulnerabilities(d: Demo, ref: str) -> None:
    d.step(
        "2. Vulnerabilities: offline advisory data, matching, a CI gate, SARIF for code scanning"
    )
    d.run("db", "import", str(_examples() / "advisories"))
    d.run("db", "status")
    gate = d.run("scan", "image", ref, "--fail-on", "medium", ok=(0, 1))
    d.note(
        "scan --fail-on medium",
        "build would FAIL (exit 1)" if gate.returncode == 1 else "passes (exit 0)",
    )
    d.run("scan", "image", ref, "--format", "sarif", "-o", str(d.workdir / "sample.sarif"))
    d.run("images")


def _compliance(d: Demo) -> None:
    d.step("3. CIS benchmarks on this host, workload checks on the example manifests")
    d.run("bench", "k8s", ok=(0, 1))
    d.run("bench", "docker", ok=(0, 1))
    wl = d.run(
        "bench",
        "workloads",
        str(_examples() / "admission" / "manifests"),
        "--fail-on",
        "high",
        ok=(0, 1),
    )
    d.note("bench workloads --fail-on high", "FAIL (exit 1)" if wl.returncode == 1 else "pass")


def _report(d: Demo) -> None:
    d.step("7. Compliance evidence: PCI DSS v4.0 from everything stored, network evidence included")
    d.run("report", "compliance", "--framework", "pci-dss")
    html = d.workdir / "pci-dss.html"
    d.run("report", "compliance", "--framework", "pci-dss", "--format", "html", "-o", str(html))
    d.note("PCI DSS report (HTML)", str(html))


def _admission(d: Demo) -> None:
    d.step("4. Admission control: the example policy decides the example workloads (offline test)")
    d.run("admission", "test", str(_examples() / "admission"))
    d.run(
        "admission",
        "manifest",
        "--cert-dir",
        str(d.workdir / "admission-certs"),
        "-o",
        str(d.workdir / "webhook.yaml"),
    )
    d.note("ValidatingWebhookConfiguration", str(d.workdir / "webhook.yaml"))


def _network(d: Demo) -> None:
    state = d.workdir / "lab.json"
    d.step(
        "5. Network: a lab of pods, their traffic watched for card numbers and personal data in clear"
    )
    d.run("lab", "down", "--prefix", LAB_PREFIX, "--state", str(state), capture=True)
    d.run("lab", "up", "--prefix", LAB_PREFIX, "--state", str(state))
    try:
        sensor_log = (d.workdir / "sensor.txt").open("w")
        sensor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stockade",
                "sensor",
                "--lab",
                "--state",
                str(state),
                "--duration",
                "25",
            ],
            env=d.env,
            stdout=sensor_log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(2)
        d.run("lab", "traffic", "--state", str(state), "--count", "1")
        sensor.wait(timeout=60)
        sensor_log.close()
        d.out.line((d.workdir / "sensor.txt").read_text())
        d.note("sensor: connections and DLP events", str(d.workdir / "sensor.txt"))
        _firewall(d, state)
    finally:
        d.run("lab", "down", "--prefix", LAB_PREFIX, "--state", str(state))


def _firewall(d: Demo, state: Path) -> None:
    d.step("6. Container firewall: the example segmentation policy in Protect mode")
    policy = _examples() / "firewall" / "policy.yaml"
    d.run("policy", "apply", str(policy))
    d.run("policy", "explain", "marketing/crm", "shop/orders", "8080", "--lab-state", str(state))
    log = (d.workdir / "enforcer.txt").open("w")
    enforcer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stockade",
            "enforcer",
            "--lab-state",
            str(state),
            "--duration",
            "120",
        ],
        env=d.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(300):
            if (
                "enforcing" in (d.workdir / "enforcer.txt").read_text()
                or enforcer.poll() is not None
            ):
                break
            time.sleep(0.1)
        for who, url, extra, expect in (
            ("payments", "http://10.77.0.11:8080/", [], "allowed (rule cde-api)"),
            ("crm", "http://10.77.0.11:8080/", [], "blocked (rule no-marketing-in-cde)"),
            (
                "payments",
                "http://10.77.0.11:8080/pay",
                ["-d", '{"card": "4111 1111 1111 1111"}'],
                "blocked: the enforcer answers 403 (card in clear)",
            ),
            (
                "payments",
                "https://10.77.0.11:8443/pay",
                ["-d", '{"card": "4111 1111 1111 1111"}'],
                "allowed (TLS)",
            ),
        ):
            proc = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    f"{LAB_PREFIX}{who}",
                    "curl",
                    "-sk",
                    "-m",
                    "3",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    *extra,
                    url,
                ],
                capture_output=True,
                text=True,
                timeout=15,
            )
            got = (
                "HTTP " + proc.stdout
                if proc.stdout not in ("", "000")
                else f"reset (curl exit {proc.returncode})"
            )
            d.out.line(f"  {who} -> {url}: {got}   expected: {expect}")
            d.note(f"firewall: {who} -> {url}", got)
    finally:
        enforcer.send_signal(signal.SIGTERM)
        enforcer.wait(timeout=30)
        log.close()


def run(d: Demo, *, network: bool) -> None:
    """Every step in order; the compliance report comes last so it sees all the evidence."""
    ref = _images(d)
    _vulnerabilities(d, ref)
    _compliance(d)
    _admission(d)
    if network:
        _network(d)
    else:
        d.note("network lab, sensor, firewall", "skipped (needs root; --network)")
    _report(d)
