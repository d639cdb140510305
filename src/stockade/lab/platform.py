"""``stockade up``: the live platform on one machine, on embedded defaults.

The controller (API and console) in single-node mode over a fresh SQLite store, the lab's pods with
the firewall's enforcer and the network sensor reporting to it, the sample image scanned and the CIS
benchmarks run through the controller, and lab traffic every few seconds: card numbers in clear
and over TLS, a connection the firewall blocks. It prints the console's address and a one-time
admin password as soon as the controller answers (the store, the lab and its policy are all the
console needs), then brings up the rest in a background thread, saying each part and each result
as it lands: the enforcer and the sensor, lab traffic, and the scan and the benchmarks in two lanes
of commands side by side. It stays up until Ctrl-C (or SIGTERM), or until a part fails, and then
stops every process it started and removes the lab.

The example firewall policy is applied with the card-holder data group (``cde``) in Monitor, so
the card sent in clear is seen and flagged but not yet blocked: switching the group to Protect in
the console blocks the next one. The ``data`` group is in Protect, so the marketing pod's attempt
to reach the database is refused.
"""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from stockade.lab import inventory
from stockade.lab.demo import EXAMPLES, DemoFailed, Printer
from stockade.model import StockadeError

LAB_PREFIX = "up-"
TRAFFIC_EVERY = 20.0  # seconds between rounds of lab traffic


class Platform:
    def __init__(
        self,
        workdir: Path,
        out: Printer,
        *,
        host: str = "127.0.0.1",
        port: int = 8443,
        traffic_every: float = TRAFFIC_EVERY,
        prefix: str = LAB_PREFIX,
    ) -> None:
        self.workdir = workdir
        self.out = out
        self.host = host
        self.port = port
        self.traffic_every = traffic_every
        self.prefix = prefix
        self.db = workdir / "stockade.db"  # the controller's store
        # the agents' own store, as on a real node: what they report reaches the controller only
        # through its API (a shared file would hold their events before the controller saw them)
        self.agent_db = workdir / "agents.db"
        self.state = workdir / "lab.json"
        self.certs = workdir / "tls"
        self.env = {
            **os.environ,
            "STOCKADE_DB": f"sqlite:///{self.db}",
            "XDG_DATA_HOME": str(workdir / "data"),
        }
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.running: set[subprocess.Popen[str]] = set()  # commands of cli() not yet finished
        self.stopping = threading.Event()
        self.failed: BaseException | None = None  # what stopped the work after the console
        self.later: threading.Thread | None = None
        self._lock = threading.Lock()
        self._print_lock = threading.Lock()
        self.url = f"https://{host}:{port}"
        self.password = ""
        self.token = ""

    # ------------------------------------------------------------ running commands

    def agent_env(self) -> dict[str, str]:
        return {**self.env, "STOCKADE_DB": f"sqlite:///{self.agent_db}"}

    def cli(
        self, *args: str, ok: Sequence[int] = (0,), stdin: str | None = None, agent: bool = False
    ) -> subprocess.CompletedProcess[str]:
        with subprocess.Popen(
            [sys.executable, "-m", "stockade", *args],
            env=self.agent_env() if agent else self.env,
            stdin=subprocess.PIPE if stdin is not None else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as child:
            with self._lock:  # down() ends the commands still running (a scan, a benchmark)
                self.running.add(child)
            try:
                out, err = child.communicate(stdin, timeout=600)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
                raise
            finally:
                with self._lock:
                    self.running.discard(child)
        proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
        if proc.returncode not in ok:
            if self.stopping.is_set():
                raise DemoFailed("stopped")
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise DemoFailed(
                f"stockade {' '.join(args[:3])} exited {proc.returncode}: "
                f"{detail[-1] if detail else 'no output'}"
            )
        return proc

    def start(self, name: str, *args: str, agent: bool = False) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "stockade", *args],
            env=self.agent_env() if agent else self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches this process only; it stops them in order
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                raise DemoFailed("stopped")
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise DemoFailed(
                        f"{name} exited with {proc.returncode}; see {self.workdir / (name + '.log')}"
                    )
            if ready():
                return
            time.sleep(0.2)
        raise DemoFailed(f"{what} was not ready within {timeout:.0f} s")

    def agent_args(self, name: str) -> list[str]:
        return [
            "--controller",
            self.url,
            "--controller-ca",
            str(self.certs / "ca.crt"),
            "--agent-name",
            name,
        ]

    # ------------------------------------------------------------ the steps

    def fresh_store(self) -> None:
        """What ``db migrate``, ``controller user add admin`` and ``controller token create``
        do, in this process (three interpreters' start-up fewer before the console is up)."""
        from stockade.api.auth import Principal, add_user, create_token, generate_password
        from stockade.store import open_store

        for db in (self.db, self.agent_db):
            for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                leftover.unlink(missing_ok=True)
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "unknown"
        actor = Principal(name=name, role="admin", via="cli")  # as the commands record it
        store = open_store(self.env["STOCKADE_DB"])  # creates the schema
        try:
            self.password = generate_password()
            add_user(store, name="admin", role="admin", password=self.password, actor=actor)
            self.token = create_token(store, name="agents", role="agent", actor=actor)[1]
        finally:
            store.close()
        self.env["STOCKADE_CONTROLLER_TOKEN"] = self.token

    def policy(self) -> Path:
        doc = yaml.safe_load((EXAMPLES / "firewall" / "policy.yaml").read_text(encoding="utf-8"))
        for group in doc["spec"]["groups"]:
            if group["name"] == "cde":
                group["mode"] = "monitor"
        path = self.workdir / "policy.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    def lab(self) -> None:
        self.cli("lab", "down", "--prefix", self.prefix, "--state", str(self.state))
        self.cli("lab", "up", "--prefix", self.prefix, "--state", str(self.state))
        # what `policy apply` does, in this process
        from stockade.firewall.policy.files import dump, load_files
        from stockade.firewall.policy.store import apply_policy
        from stockade.store import open_store

        policy = load_files([self.policy()])
        store = open_store(self.env["STOCKADE_DB"])
        try:
            apply_policy(store, policy, dump(policy))
        finally:
            store.close()

    def controller(self) -> None:
        self.start(
            "controller",
            "controller",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--cert-dir",
            str(self.certs),
            "--lab-state",
            str(self.state),
        )
        self.wait_for("the controller", self._healthy)

    def _healthy(self) -> bool:
        import httpx

        ca = self.certs / "ca.crt"
        if not ca.exists():
            return False
        try:
            return httpx.get(f"{self.url}/healthz", verify=str(ca), timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def agents(self) -> None:
        started = time.monotonic()
        self.start(
            "enforcer",
            "enforcer",
            "--lab-state",
            str(self.state),
            *self.agent_args("node-enforcer"),
            agent=True,
        )
        self.wait_for("the enforcer", lambda: "enforcing" in self._log("enforcer"))
        self.say(f"  the enforcer: enforcing the policy ({time.monotonic() - started:.0f} s)")
        self.start(
            "sensor",
            "sensor",
            "--lab",
            "--state",
            str(self.state),
            *self.agent_args("node-sensor"),
            agent=True,
        )
        time.sleep(1.0)
        self.say("  the sensor: started on the lab's pods")

    def _log(self, name: str) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def say(self, text: str) -> None:
        with self._print_lock:  # the lanes of results() print from their own threads
            self.out.line(text)

    def step(
        self, what: str, *args: str, ok: Sequence[int] = (0,), agent: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """One command of the results, said when it ends with its time and what the controller
        took: the command's own line on its results (else on its events)."""
        if self.stopping.is_set():
            raise DemoFailed("stopped")
        started = time.monotonic()
        proc = self.cli(*args, ok=ok, agent=agent)
        said = [line for line in proc.stderr.splitlines() if line.startswith("controller: ")]
        said = [line for line in said if " results " in line] or said
        tail = f"; {said[-1]}" if said else ""
        self.say(f"  {what} ({time.monotonic() - started:.0f} s){tail}")
        return proc

    def results(self) -> None:
        """The sample image scanned and the CIS benchmarks run, reported to the controller: two
        lanes of commands side by side (a machine with two cores runs both at once), each
        command said as it ends; the console shows each result as it arrives."""
        to_controller = self.agent_args("node-scanner")

        def image() -> None:
            built = self.step("the sample image built", "sample", "build").stdout.split()
            ref = next(
                r for r in built if r.startswith("docker-archive:") and r.endswith("docker-oci.tar")
            )
            advisories = str(EXAMPLES / "advisories")
            # the scanner's own store, as on a node
            self.step("the advisory records imported", "db", "import", advisories, agent=True)
            self.step(
                "the sample image scanned",
                *("scan", "image", ref, "--allow-unchecked", *to_controller),
                ok=(0, 1),
                agent=True,
            )

        def benchmarks() -> None:
            for what, args in (
                ("the CIS Kubernetes benchmark run", ("bench", "k8s")),
                ("the CIS Docker benchmark run", ("bench", "docker")),
                (
                    "the example workloads checked",
                    ("bench", "workloads", str(EXAMPLES / "admission" / "manifests")),
                ),
            ):
                self.step(what, *args, *to_controller, ok=(0, 1), agent=True)

        side_by_side(image, benchmarks)

    def traffic_round(self) -> None:
        self.cli("lab", "traffic", "--state", str(self.state), "--count", "1", ok=(0, 1, 3))
        # the marketing pod tries the database: the data group is in Protect, nothing allows it
        inv = inventory.load(self.state)
        crm, db = inv.pod("crm"), inv.pod("db")
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                crm.netns,
                "curl",
                "-s",
                "-m",
                "2",
                "-o",
                "/dev/null",
                f"http://{db.ipv4}:5432/",
            ],
            capture_output=True,
            timeout=10,
        )

    def traffic(self) -> None:
        while not self.stopping.is_set():
            try:
                self.traffic_round()
            except (DemoFailed, StockadeError, subprocess.TimeoutExpired) as exc:
                if not self.stopping.is_set():  # a round cut short by Ctrl-C is no error
                    self.out.error(f"lab traffic: {exc}")
            self.stopping.wait(self.traffic_every)

    # ------------------------------------------------------------ up and down

    def up(self) -> None:
        """What the console needs: the store, the lab and its policy, the controller. Returns
        once the controller answers; :meth:`rest` brings up the others."""
        self.out.rule("Stockade: bringing up the live platform on this machine")
        self.out.line("a fresh store, an admin and an agent token")
        self.fresh_store()
        self.out.line("the lab's pods and the example firewall policy (cde in Monitor)")
        self.lab()
        self.out.line("the controller and console")
        self.controller()

    def rest(self) -> None:
        """Everything after the console, each part said as it is up: the enforcer and the
        sensor, lab traffic, then the scan and the benchmarks. :func:`serve` runs it in a thread
        once it has printed the console's address, and raises what stopped it."""
        started = time.monotonic()
        try:
            self.say("the enforcer and the sensor on the lab, reporting to the controller")
            self.agents()
            threading.Thread(target=self.traffic, name="lab-traffic", daemon=True).start()
            self.say(f"  lab traffic: a round every {self.traffic_every:g} s")
            self.say("the sample image scanned, the CIS benchmarks run")
            self.results()
        except BaseException as exc:  # handed to the main thread, which raises it
            if not self.stopping.is_set():
                self.failed = exc
            return
        with self._print_lock:
            self.out.rule(
                f"Stockade: every part is up ({time.monotonic() - started:.0f} s after the console)"
            )

    def down(self) -> None:
        self.stopping.set()
        self._end_commands()
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        self.cli(
            "lab", "down", "--prefix", self.prefix, "--state", str(self.state), ok=(0, 1, 2, 3)
        )

    def _end_commands(self) -> None:
        """End the commands :meth:`rest` still runs (a scan, a benchmark, a traffic round) and
        wait for it; again while it lives, for one it started as we ended the others."""
        deadline = time.monotonic() + 30
        while True:
            with self._lock:
                for child in self.running:
                    if child.poll() is None:
                        child.terminate()
            if self.later is None or not self.later.is_alive() or time.monotonic() > deadline:
                return
            self.later.join(0.5)


def side_by_side(*lanes: Callable[[], None]) -> None:
    """Run each lane in its own thread (their commands are processes: one core each) and raise
    the first error of any once all have ended."""
    errors: list[BaseException] = []

    def run(lane: Callable[[], None]) -> None:
        try:
            lane()
        except BaseException as exc:  # raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(lane,), name="up-lane") for lane in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def serve(platform: Platform, *, until: threading.Event | None = None) -> None:
    """Bring up what the console needs, print where it is, then the rest in the background;
    wait for Ctrl-C / SIGTERM and take it all down."""
    stop = until or threading.Event()

    def handler(_sig: int, _frame: Any) -> None:
        stop.set()
        platform.stopping.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        platform.up()
        platform.out.rule("Stockade is up")
        platform.out.line(
            f"  console:  {platform.url}/ui/  (the certificate is from {platform.certs / 'ca.crt'})"
        )
        platform.out.line("  login:    admin")
        platform.out.line(f"  password: {platform.password}   (shown once; stored only as a hash)")
        platform.out.line(f"  logs:     {platform.workdir}")
        platform.out.line("  Ctrl-C stops everything and removes the lab.")
        platform.out.line(
            "  Starting now: the enforcer, the sensor, lab traffic, the sample image's scan and "
            "the CIS benchmarks; each is said below as it is done, and the console shows it as it "
            "arrives (Network map, Vulnerabilities, Compliance)."
        )
        platform.later = threading.Thread(target=platform.rest, name="up-rest", daemon=True)
        platform.later.start()
        while not stop.wait(1.0):
            if platform.failed is not None:
                raise platform.failed
            for name, proc in list(platform.procs):
                if proc.poll() is not None:
                    raise DemoFailed(
                        f"{name} stopped (exit {proc.returncode}); see {platform.workdir / (name + '.log')}"
                    )
    finally:
        platform.out.line("stopping…")
        platform.down()
        for s, h in previous.items():
            signal.signal(s, h)
