"""End to end on the lab: a card posted in clear by a lab pod is seen by ``stockade sensor --lab
--controller``, a response rule's ``capture`` action asks for a capture of the sender, the sensor
(the agent on the node) takes the request, captures the pod's veth masked and uploads the pcap;
the pcap downloaded from the API is read by tshark, holds the HTTP request, and no form of the
planted card number."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.controller import SRC, Controller, running_controller
from tests.api.lab import lab_command
from tests.api.responding import wait_for, write
from tests.support import require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]

CARD = "4111 1111 1111 1111"
PAY = "http://10.77.0.11:8080/pay"
RULES = """\
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: forensics}
spec:
  rules:
    - name: capture-card-senders
      mode: active
      cooldown: 1h
      match:
        events: [dlp.sensitive_in_clear]
        sensors: [dlp.payment_card]
      actions: [capture]
      capture: {duration: 6s, maxBytes: 2000000, filter: "tcp port 8080"}
"""


@dataclass
class Setup:
    controller: Controller
    prefix: str
    sensor: subprocess.Popen[str]
    log: Path

    def post_card(self, pod: str = "crm") -> str:
        proc = subprocess.run(
            [
                *("ip", "netns", "exec", f"{self.prefix}{pod}"),
                *("curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}"),
                *("-H", "Content-Type: application/json"),
                *("-d", f'{{"order": 7, "card_number": "{CARD}"}}', PAY),
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return proc.stdout.strip()


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require_root("ip", "curl", "tshark")
    tmp = tmp_path_factory.mktemp("captures-lab")
    prefix = f"cp{os.getpid() % 10000}-"
    state = tmp / "lab.json"
    with ExitStack() as stack:
        up = lab_command("up", "--prefix", prefix, "--state", str(state), "--no-databases")
        stack.callback(lab_command, "down", "--prefix", prefix, "--state", str(state))
        assert up.returncode == 0, up.stderr
        rules = write(tmp / "rules.yaml", RULES)
        controllers = running_controller(
            "sqlite", tmp_path_factory, "unused", "--rules", str(rules)
        )
        controller = next(controllers)
        stack.callback(lambda: next(controllers, None))
        env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "STOCKADE_CONTROLLER_TOKEN": controller.tokens["agent"],
            "STOCKADE_SPOOL_DIR": str(tmp / "spool"),
        }
        log = tmp / "sensor.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "stockade", "sensor", "--lab", "--state", str(state)),
                    *("--no-store", "--duration", "150"),
                    *("--controller", controller.base, "--controller-ca", str(controller.ca)),
                    *("--agent-name", "node-sensor"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        stack.callback(_stop, proc)

        time.sleep(3)  # the ring is set up; cards posted before it would go unseen
        assert proc.poll() is None, log.read_text()
        yield Setup(controller=controller, prefix=prefix, sensor=proc, log=log)


def _by_rule(controller: Controller) -> list[dict[str, Any]]:
    with controller.client("reader") as c:
        rows = c.get("/api/v1/captures").json()
    return [r for r in rows if r["requested_by"] == "rule:capture-card-senders"]


def test_a_card_in_clear_gets_the_sender_captured_masked(lab: Setup, tmp_path: Path) -> None:
    # the sensor reports a connection when it ends; keep posting until the rule asked
    def asked() -> list[dict[str, Any]]:
        assert lab.post_card() == "200"
        return _by_rule(lab.controller)

    [row] = wait_for(asked, timeout=40, what="a capture requested by the rule")
    assert row["filter"] == "tcp port 8080" and row["duration"] == 6

    # while it runs, the pod posts the card again: that is what the capture holds
    stop = threading.Event()

    def keep_posting() -> None:
        while not stop.is_set():
            lab.post_card()
            stop.wait(0.5)

    poster = threading.Thread(target=keep_posting)
    poster.start()
    try:
        done = wait_for(
            lambda: [r for r in _by_rule(lab.controller) if r["state"] in ("done", "failed")],
            timeout=60,
            what="the capture to be uploaded",
        )[0]
    finally:
        stop.set()
        poster.join(10)
    assert done["state"] == "done", done
    assert done["agent"] == "t-agent" and done["masked"] > 0 and done["packets"] > 0
    assert done["report"]["masked_by_agent"] > 0  # masked on the node, before the disk

    with lab.controller.client("operator") as c:
        r = c.get(f"/api/v1/captures/{done['id']}/pcap")
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.tcpdump.pcap"
    data = r.content
    assert len(data) == done["size"]
    digits = CARD.replace(" ", "")
    for form in (CARD, digits, "-".join(CARD.split())):
        assert form.encode() not in data
    assert b"4111 **** **** 1111" in data

    pcap = tmp_path / "capture.pcap"
    pcap.write_bytes(data)
    assert shutil.which("tshark")
    listing = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", "http.request"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert "POST /pay" in listing.stdout
    assert lab.sensor.poll() is None and "Traceback" not in lab.log.read_text()
